//! The actors a fleet worker hosts for a head (`exspin worker`): opponents
//! ([`generator_host`]) and SQL executors ([`executor_host`]). They build models and judge, so
//! they live apart from `crate::fleet`, the part the head's stages use (wire types, nodes,
//! picking a remote actor), which reaches no model.

pub mod executor_host;
pub mod generator_host;
