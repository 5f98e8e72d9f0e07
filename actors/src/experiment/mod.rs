//! `exspin experiment`: the paper's comparisons (SFT, SPIN, DPO, ExSPIN and its ablations) on one
//! dataset, seed and budget, and the report that ties them together (tables, plots, raw JSON).
//!
//! Each method is one ordinary run (`exspin run`) in a child process: its peak memory is its own,
//! a crash in one method leaves the others' results intact, and a rerun of the experiment skips
//! the finished runs and resumes the unfinished ones from their checkpoints.

pub mod config;
pub mod outcome;
pub mod overrides;
pub mod plot;
pub mod report;
pub mod runner;
