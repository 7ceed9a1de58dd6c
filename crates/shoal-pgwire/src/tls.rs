//! TLS: a rustls server configuration (ring provider) from PEM files.
//!
//! The provider is chosen explicitly rather than taken from rustls' process
//! default, because which default exists depends on the features other crates
//! in the build happen to enable.

use std::io;
use std::sync::Arc;

use pgwire::tokio::tokio_rustls::rustls::crypto::ring;
use pgwire::tokio::tokio_rustls::rustls::pki_types::pem::PemObject;
use pgwire::tokio::tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use pgwire::tokio::tokio_rustls::rustls::ServerConfig;
use pgwire::tokio::TlsAcceptor;

use crate::TlsFiles;

fn invalid(what: &str, path: &std::path::Path, err: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("{what} {}: {err}", path.display()))
}

/// Loads the certificate chain and private key and builds the acceptor.
pub(crate) fn acceptor(files: &TlsFiles) -> io::Result<TlsAcceptor> {
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| invalid("cannot read TLS certificate", &files.cert, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid("invalid TLS certificate", &files.cert, e))?;
    if certs.is_empty() {
        return Err(invalid("no certificate found in", &files.cert, "empty PEM"));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| invalid("cannot read TLS key", &files.key, e))?;
    let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("TLS setup failed for", &files.cert, e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| invalid("TLS certificate and key do not match:", &files.cert, e))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
