//! The models behind the seams: the real candle decoder (`real/`, on the [`compute::Compute`] the
//! config opens) and the deterministic fakes that exercise the runtime in seconds.

pub mod compute;
pub mod fakes;
pub mod opponent;
pub mod real;
