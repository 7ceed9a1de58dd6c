//! Optional TLS between nodes: mutual authentication against a cluster CA.
//!
//! Every node presents a certificate signed by the cluster's CA and accepts
//! only peers that present one too, so a machine without a CA-signed
//! certificate can neither join nor eavesdrop. A dialer checks the listener's
//! certificate against the host it dialed (an IP address or DNS name in the
//! certificate's subject alternative names). rustls with the ring provider,
//! chosen explicitly as in `shoal-pgwire`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use shoal_common::{Error, Result, SqlState};
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// The PEM files of a node's TLS identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeTlsFiles {
    /// This node's certificate (chain), signed by the CA.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The cluster CA's certificate.
    pub ca: PathBuf,
}

/// Loaded TLS configuration for both directions.
pub struct NodeTls {
    pub(crate) acceptor: TlsAcceptor,
    pub(crate) connector: TlsConnector,
}

fn bad(what: &str, path: &Path, err: impl std::fmt::Display) -> Error {
    Error::new(SqlState::INVALID_PARAMETER_VALUE, format!("{what} {}: {err}", path.display()))
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad("cannot read certificate", path, e))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| bad("invalid certificate", path, e))?;
    if certs.is_empty() {
        return Err(bad("no certificate in", path, "empty PEM"));
    }
    Ok(certs)
}

impl NodeTls {
    /// Loads the files and builds the acceptor (requires client
    /// certificates from the CA) and the connector (trusts only the CA,
    /// presents this node's certificate).
    pub fn load(files: &NodeTlsFiles) -> Result<NodeTls> {
        let certs = certificates(&files.cert)?;
        let key = |path: &Path| -> Result<PrivateKeyDer<'static>> {
            PrivateKeyDer::from_pem_file(path).map_err(|e| bad("cannot read private key", path, e))
        };
        let mut roots = RootCertStore::empty();
        for ca in certificates(&files.ca)? {
            roots.add(ca).map_err(|e| bad("unusable CA certificate", &files.ca, e))?;
        }
        let roots = Arc::new(roots);
        let provider = Arc::new(ring::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| bad("cannot verify peers with CA", &files.ca, e))?;
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| bad("TLS setup failed for", &files.cert, e))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs.clone(), key(&files.key)?)
            .map_err(|e| bad("certificate and key do not match:", &files.cert, e))?;
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad("TLS setup failed for", &files.cert, e))?
            .with_root_certificates(roots)
            .with_client_auth_cert(certs, key(&files.key)?)
            .map_err(|e| bad("certificate and key do not match:", &files.cert, e))?;
        Ok(NodeTls { acceptor: TlsAcceptor::from(Arc::new(server)), connector: TlsConnector::from(Arc::new(client)) })
    }
}

/// The name a dialer expects in the certificate of `addr` (`host:port`).
pub(crate) fn server_name(addr: &str) -> Result<ServerName<'static>> {
    let host = addr.rsplit_once(':').map(|(h, _)| h).unwrap_or(addr).trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string()).map_err(|e| {
        Error::environment(SqlState::CONNECTION_FAILURE, format!("{addr} is not a name TLS can verify: {e}"))
    })
}
