//! `exspin experiment`: the paper's comparisons (SFT, SPIN, DPO, ExSPIN and its ablations) on one
//! dataset and budget, over one seed or several, and the report that ties them together (tables
//! with means, 95% intervals and paired tests; plots; raw JSON).
//!
//! Each run (a method, or a method with one seed) is one ordinary run (`exspin run`) in a child
//! process: its peak memory is its own, a crash in one run leaves the others' results intact, and
//! a rerun of the experiment skips the finished runs and resumes the unfinished ones from their
//! checkpoints.

pub mod config;
pub mod outcome;
pub mod overrides;
pub mod plot;
pub mod report;
pub mod rounds;
pub mod runner;
pub mod stats;
pub mod summary;
