//! `[cluster]`: the head's side of a rollout fleet (`exspin worker` joins it). The same settings
//! as `exspin run|resume --listen --cookie-file`; a flag given on the command line wins.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Accept fleet workers on this address (absent: no fleet). Give a loopback or private
    /// address: only nodes with the cookie get in.
    pub listen: Option<SocketAddr>,
    /// A file whose first line is the job's shared secret; workers must give the same one.
    pub cookie_file: Option<PathBuf>,
    /// Mutual TLS on every fleet link: this node's certificate, its key and the job's CA (PEM;
    /// the three go together; `--tls-cert/--tls-key/--tls-ca` win).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_ca: Option<PathBuf>,
    /// How many of the `run.generators` opponents may generate in this process when no worker
    /// takes a batch (absent: all). The others only hand batches to workers, and wait for one
    /// when none is there: 0 keeps the model off the head for generation.
    pub local_generators: Option<usize>,
    /// SQL-executor workers in this process (absent: `run.executor_workers`). 0: every batch is
    /// judged on a worker, waiting for one when none is there.
    pub local_executors: Option<usize>,
}

impl ClusterConfig {
    /// Opponents that may generate here, of `generators`.
    pub fn local_generators(&self, generators: usize) -> usize {
        self.local_generators.unwrap_or(generators).min(generators)
    }

    /// Executor workers in this process.
    pub fn local_executors(&self, executor_workers: usize) -> usize {
        self.local_executors.unwrap_or(executor_workers)
    }

    /// Problems no type rules out (`generators`: `run.generators`).
    pub fn problems(&self, generators: usize, errors: &mut Vec<String>) {
        if self.cookie_file.is_some() != self.listen.is_some() {
            errors.push(
                "cluster.listen and cluster.cookie_file go together: a fleet needs an address and \
                 the shared secret its workers give"
                    .into(),
            );
        }
        let tls = [&self.tls_cert, &self.tls_key, &self.tls_ca];
        if tls.iter().any(|f| f.is_some()) && !tls.iter().all(|f| f.is_some()) {
            errors.push(
                "cluster.tls_cert, cluster.tls_key and cluster.tls_ca go together: give all three \
                 (this node's certificate and key, and the CA that signs every node's)"
                    .into(),
            );
        }
        if let Some(n) = self.local_generators
            && n > generators
        {
            errors.push(format!(
                "cluster.local_generators = {n} exceeds run.generators = {generators}; lower it \
                 (it says how many of the opponents may generate in this process)"
            ));
        }
    }

    /// Whether some work can only be done by workers (then a fleet address is required).
    pub fn needs_workers(&self, generators: usize) -> bool {
        self.local_generators(generators) == 0 || self.local_executors == Some(0)
    }
}
