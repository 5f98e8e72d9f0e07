//! The rollout fleet on `ractor_cluster`: a head (`exspin run --listen HOST:PORT --cookie-file F`)
//! and workers (`exspin worker --join HOST:PORT --cookie-file F`) that host work for it.
//!
//! What exists: workers host SQL-executor actors (`crate::hosts::executor_host`) that join the
//! process group [`EXECUTORS_GROUP`], and opponents (`crate::hosts::generator_host`) in
//! [`GENERATORS_GROUP`]; ractor_cluster synchronises the group to the head, whose executor stage
//! sends each batch of generations to a remote executor ([`remote`]) when one is there, and its
//! opponents send prompts to a remote opponent likewise. When none is there or the remote call
//! fails (a worker killed or its link dropped), the batch goes to the head's own opponent or
//! executors where `[cluster]` allows them, else to another worker, so no sample is lost or
//! reaches the buffer twice. Only nodes with the job's cookie get in ([`node`]). What crosses
//! nodes is the versioned, serialized [`wire`] types; reply ports and actor refs stay local.
//!
//! Links may be mutual TLS ([`tls`]). Workers read published versions from the head's run folder
//! on a shared filesystem, or copy them over the link ([`weights`], `exspin worker
//! --fetch-weights`).

pub mod db_hash;
pub mod node;
pub mod remote;
pub mod tls;
pub mod weights;
pub mod wire;

/// The process group of the workers' executor actors.
pub const EXECUTORS_GROUP: &str = "exspin.executors";
/// The process group of the workers' opponent actors.
pub const GENERATORS_GROUP: &str = "exspin.generators";

/// Serves this process's metrics in the Prometheus format on 127.0.0.1:`port` until the returned
/// endpoint is dropped (a worker's `--metrics-port`; a head's is `[metrics] prometheus_port`).
pub fn serve_metrics(port: u16) -> anyhow::Result<crate::observe::telemetry::Endpoint> {
    crate::observe::telemetry::serve(port)
}
