//! Integration tests of the `exspin` library: one binary, a module per area (ripgrep's layout).
//! Tests that need the shared datasets read them from `EXSPIN_DATA` (`.ci/run` sets it to
//! `../shared/data`) and skip with a message when it is unset.

mod classify;
mod compare;
mod data;
mod embedding;
mod eval;
mod executor;
mod fsutil;
mod hardness;
mod master_weights;
mod model;
mod module_deps;
mod require_data;
mod schema;
mod synthetic;
mod util;
