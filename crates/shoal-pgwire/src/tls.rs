//! TLS: a rustls server configuration (ring provider) from PEM files, and
//! the client-certificate rule.
//!
//! The provider is chosen explicitly rather than taken from rustls' process
//! default, because which default exists depends on the features other crates
//! in the build happen to enable.
//!
//! With a client CA ([`TlsFiles::client_ca`]) the server asks every TLS
//! client for a certificate, as PostgreSQL does with `ssl_ca_file` set, and
//! applies `clientcert=verify-full`:
//!
//! ```text
//!   client presents            handshake (rustls)            after the StartupMessage
//!   ─────────────────────────  ────────────────────────────  ───────────────────────────────────
//!   nothing                    completes                     FATAL 28000 "connection requires a
//!                                                              valid client certificate"
//!   a cert the CA did not      refused: alert (unknown CA,    —
//!   sign, expired, …           bad certificate, expired …)
//!   a cert the CA signed       completes                     CN == user name? else FATAL 28000
//! ```
//!
//! A certificate that does not verify never completes the handshake (the
//! client's TLS library reports the alert, as libpq does against
//! PostgreSQL). A missing certificate is let through the handshake only so
//! the client gets a PostgreSQL error that says what to fix: no
//! authentication exchange and no session starts before
//! [`check_client_cert`] passes. Password authentication then runs as
//! configured, unless the certificate is the login (`--auth cert` or
//! `cert-or-password`, see `auth.rs`). Plain connections are not asked for
//! a certificate.

use std::io;
use std::path::Path;
use std::sync::Arc;

use pgwire::tokio::tokio_rustls::rustls::crypto::ring;
use pgwire::tokio::tokio_rustls::rustls::pki_types::pem::PemObject;
use pgwire::tokio::tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use pgwire::tokio::tokio_rustls::rustls::server::WebPkiClientVerifier;
use pgwire::tokio::tokio_rustls::rustls::{RootCertStore, ServerConfig, ServerConnection};
use pgwire::tokio::TlsAcceptor;
use shoal_common::{Error, SqlState};

use crate::TlsFiles;

fn invalid(what: &str, path: &Path, err: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("{what} {}: {err}", path.display()))
}

/// Loads the certificate chain, the private key and, when configured, the
/// client CA, and builds the acceptor.
pub(crate) fn acceptor(files: &TlsFiles) -> io::Result<TlsAcceptor> {
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| invalid("cannot read TLS certificate", &files.cert, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid("invalid TLS certificate", &files.cert, e))?;
    if certs.is_empty() {
        return Err(invalid("no certificate found in", &files.cert, "empty PEM"));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| invalid("cannot read TLS key", &files.key, e))?;
    let provider = Arc::new(ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("TLS setup failed for", &files.cert, e))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(read_client_ca(ca)?), provider)
                // A client without a certificate gets FATAL 28000 after the
                // handshake (`check_client_cert`), not a bare TLS alert.
                .allow_unauthenticated()
                .build()
                .map_err(|e| invalid("unusable TLS client CA", ca, e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(|e| invalid("TLS certificate and key do not match:", &files.cert, e))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The CA certificates client certificates must chain to.
fn read_client_ca(path: &Path) -> io::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| invalid("cannot read TLS client CA", path, e))? {
        let cert = cert.map_err(|e| invalid("invalid TLS client CA", path, e))?;
        roots.add(cert).map_err(|e| invalid("invalid certificate in TLS client CA", path, e))?;
    }
    if roots.is_empty() {
        return Err(invalid("no certificate found in TLS client CA", path, "empty PEM"));
    }
    Ok(roots)
}

/// What a TLS client proved about itself in the handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ClientCert {
    /// It presented no certificate.
    Absent,
    /// It presented one that chains to the client CA (rustls refuses the
    /// handshake otherwise) and holds its key; `common_name` is the
    /// subject's first CN, if it has one.
    Verified { common_name: Option<String> },
}

impl ClientCert {
    /// Reads the client's certificate off a finished handshake.
    pub(crate) fn of(connection: &ServerConnection) -> ClientCert {
        match connection.peer_certificates().and_then(|chain| chain.first()) {
            None => ClientCert::Absent,
            Some(leaf) => ClientCert::Verified {
                common_name: x509_certificate::X509Certificate::from_der(leaf.as_ref())
                    .ok()
                    .and_then(|cert| cert.subject_common_name()),
            },
        }
    }
}

/// The FATAL 28000 for a TLS client that presented no certificate to a
/// server that wants one.
pub(crate) fn certificate_missing(user: &str) -> Error {
    Error::new(SqlState::INVALID_AUTHORIZATION_SPECIFICATION, "connection requires a valid client certificate")
        .with_hint(format!(
            "This server checks client certificates on TLS connections: connect with a certificate signed by \
             its client CA whose common name (CN) is \"{user}\" (libpq and shoal-orm: sslcert and sslkey)."
        ))
}

/// `clientcert=verify-full`: a TLS client must have presented a verified
/// certificate whose CN is the user it connects as. Errors are FATAL 28000.
pub(crate) fn check_client_cert(cert: &ClientCert, user: &str) -> Result<(), Error> {
    let failed = |message: String| Error::new(SqlState::INVALID_AUTHORIZATION_SPECIFICATION, message);
    match cert {
        ClientCert::Absent => Err(certificate_missing(user)),
        ClientCert::Verified { common_name: Some(cn) } if cn == user => Ok(()),
        ClientCert::Verified { common_name: Some(cn) } => Err(failed(format!(
            "certificate authentication failed for user \"{user}\": the client certificate's common name (CN) is \
             \"{cn}\""
        ))
        .with_hint(format!("Connect as user \"{cn}\", or with a certificate whose CN is \"{user}\"."))),
        ClientCert::Verified { common_name: None } => Err(failed(format!(
            "certificate authentication failed for user \"{user}\": the client certificate has no common name (CN)"
        ))
        .with_hint(format!("Connect with a certificate whose subject CN is \"{user}\"."))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_common_name_must_be_the_user() {
        let cert = |cn: Option<&str>| ClientCert::Verified { common_name: cn.map(str::to_string) };
        assert!(check_client_cert(&cert(Some("alice")), "alice").is_ok());
        for (presented, needle) in [
            (ClientCert::Absent, "requires a valid client certificate"),
            (cert(Some("bob")), "common name (CN) is \"bob\""),
            (cert(None), "has no common name"),
        ] {
            let err = check_client_cert(&presented, "alice").unwrap_err();
            assert_eq!(err.code, SqlState::INVALID_AUTHORIZATION_SPECIFICATION, "{presented:?}");
            assert!(err.message.contains(needle), "{presented:?}: {}", err.message);
        }
    }
}
