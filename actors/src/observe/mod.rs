//! Observability: each stage's busy time, the Prometheus endpoint, the per-stage progress bars.

pub mod memory;
pub mod stage_bars;
pub mod stats;
pub mod telemetry;
