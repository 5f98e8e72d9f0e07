//! The run's state and what it leaves in the run folder: the in-memory journal (what has been
//! trained, filtered, published and measured), the trained-id ledger on disk
//! (`trained_ids.txt`), the checkpoints that snapshot both, and `summary.json`.

pub mod checkpoint;
pub mod journal;
pub mod ledger;
pub mod summary;
