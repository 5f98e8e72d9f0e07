//! The run's state and what it leaves in the run folder: the in-memory journal (what has been
//! trained, filtered, published and measured), the trained-id ledger on disk
//! (`trained_ids.txt`), the checkpoints that snapshot both, `summary.json`, the lineage of
//! configs a run had before its rounds were raised (`extend`), and the finished run a continued-SFT
//! run follows (`follow`).

pub mod checkpoint;
pub mod extend;
pub mod follow;
pub mod journal;
pub mod ledger;
pub mod summary;
