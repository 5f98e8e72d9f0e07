//! `--tls-cert`, `--tls-key`, `--tls-ca`: mutual TLS on the fleet's links (head and workers).

use std::path::PathBuf;

use exspin_actors::fleet::tls::TlsFiles;

#[derive(clap::Args, Debug, Clone, Default)]
pub struct TlsArgs {
    /// This node's certificate (PEM), signed by --tls-ca. With the three --tls-* flags every
    /// fleet link is mutual TLS: a node needs the CA-signed key as well as the cookie.
    #[arg(long, value_name = "PEM", requires_all = ["tls_key", "tls_ca"])]
    pub tls_cert: Option<PathBuf>,
    /// This node's private key (PEM).
    #[arg(long, value_name = "PEM", requires_all = ["tls_cert", "tls_ca"])]
    pub tls_key: Option<PathBuf>,
    /// The job's CA certificate (PEM): the peer's certificate must be signed by it.
    #[arg(long, value_name = "PEM", requires_all = ["tls_cert", "tls_key"])]
    pub tls_ca: Option<PathBuf>,
}

impl TlsArgs {
    /// The files when all three were given (clap refuses one or two of them).
    pub fn files(&self) -> Option<TlsFiles> {
        Some(TlsFiles {
            cert: self.tls_cert.clone()?,
            key: self.tls_key.clone()?,
            ca: self.tls_ca.clone()?,
        })
    }
}

/// `[cluster]`'s TLS files when all three are set (the flags win over them).
pub fn from_cluster(cluster: &exspin_actors::config::ClusterConfig) -> Option<TlsFiles> {
    Some(TlsFiles {
        cert: cluster.tls_cert.clone()?,
        key: cluster.tls_key.clone()?,
        ca: cluster.tls_ca.clone()?,
    })
}
