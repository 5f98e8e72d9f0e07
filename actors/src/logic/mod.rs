//! The runtime's decisions without actors, each tested on its own: the replay buffer (dedup,
//! pairs per mode, bounds, credits, batches), pair building, the order prompts are drawn in, and
//! the prompt text of an example.

pub mod buffer;
pub mod follow;
pub mod judge;
pub mod pairs;
pub mod plan;
pub mod prompts;
pub mod restart_budget;
