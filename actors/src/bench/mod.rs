//! The runtime's benchmark entry points (the model and kernel benchmarks live in the `exspin`
//! command and in `benches/`).

pub mod fleet;
pub mod pipeline;
pub mod weights;
