//! TLS for the fleet's links (`--tls-cert`, `--tls-key`, `--tls-ca`): mutual, both ends show a
//! certificate signed by the job's CA, so a node needs the CA-signed key as well as the cookie.
//! ractor_cluster carries the streams (`IncomingEncryptionMode::Tls`, `client_connect_enc`);
//! this file only reads the PEM files into rustls configurations.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// The three PEM files of one node.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsFiles {
    /// This node's certificate chain (its own first).
    pub cert: PathBuf,
    /// This node's private key.
    pub key: PathBuf,
    /// The CA that signs every node of the job.
    pub ca: PathBuf,
}

fn certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow::anyhow!("reading certificates from {}: {e}", path.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "{} holds no PEM certificate (BEGIN CERTIFICATE)",
        path.display()
    );
    Ok(certs)
}

fn key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| anyhow::anyhow!("reading the private key {}: {e}", path.display()))
}

fn roots(path: &Path) -> anyhow::Result<Arc<rustls::RootCertStore>> {
    let mut roots = rustls::RootCertStore::empty();
    for c in certs(path)? {
        roots
            .add(c)
            .map_err(|e| anyhow::anyhow!("the CA {}: {e}", path.display()))?;
    }
    Ok(Arc::new(roots))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

impl TlsFiles {
    fn mismatch(&self, e: rustls::Error) -> anyhow::Error {
        anyhow::anyhow!(
            "{} and {} do not make a certificate and its key: {e}",
            self.cert.display(),
            self.key.display()
        )
    }

    /// The head's side: accepts only nodes whose certificate the CA signed.
    pub fn acceptor(&self) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            roots(&self.ca)?,
            provider(),
        )
        .build()
        .map_err(|e| anyhow::anyhow!("the CA {}: {e}", self.ca.display()))?;
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs(&self.cert)?, key(&self.key)?)
            .map_err(|e| self.mismatch(e))?;
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }

    /// A worker's side: trusts only a head whose certificate the CA signed, and shows its own.
    pub fn connector(&self) -> anyhow::Result<tokio_rustls::TlsConnector> {
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots(&self.ca)?)
            .with_client_auth_cert(certs(&self.cert)?, key(&self.key)?)
            .map_err(|e| self.mismatch(e))?;
        Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
    }
}

/// The name a head's certificate must carry for the address `HOST:PORT` (an IP or a DNS name).
pub fn server_name(addr: &str) -> anyhow::Result<ServerName<'static>> {
    let host = addr
        .rsplit_once(':')
        .map_or(addr, |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']');
    ServerName::try_from(host.to_string())
        .map_err(|e| anyhow::anyhow!("{host} (from {addr}) is not a host name or address: {e}"))
}
