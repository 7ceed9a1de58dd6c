//! TLS for `postgres://` and `shoal://`: libpq's `sslmode` and
//! `sslrootcert`, over rustls (ring provider, no system libraries).
//!
//! ```text
//!   sslmode       TLS        server certificate checked          no TLS offered by the server
//!   ───────────   ────────   ─────────────────────────────────   ───────────────────────────
//!   disable       never      —                                   plain
//!   prefer (dflt) if offered no (verify-ca if sslrootcert given)  plain
//!   require       always     no (verify-ca if sslrootcert given)  error
//!   verify-ca     always     chain to sslrootcert                 error
//!   verify-full   always     chain to sslrootcert + host name     error
//! ```
//!
//! These are libpq's rules, so a URL means the same thing to `psql` and to
//! the ORM. `verify-ca` and `verify-full` without `sslrootcert` use libpq's
//! default file, `~/.postgresql/root.crt`; the ORM reads no system
//! certificate store (`sslrootcert=system` is refused with an error).
//! Without verification, TLS still checks the handshake's signatures, so it
//! keeps out a passive listener but not an active impostor — as in libpq.
//!
//! tokio-postgres knows only disable/prefer/require and refuses options it
//! does not know, so `split_url` takes `sslmode` and `sslrootcert` out of
//! the URL before tokio-postgres parses the rest, and `Tls::for_mode`
//! builds the rustls configuration once per `Db` (reading the CA file at
//! `Db::connect`, so a missing file fails there). Channel binding
//! (SCRAM-SHA-256-PLUS) comes with tokio-postgres-rustls.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::SslMode as PgSslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::{Error, Result};

/// libpq's `sslmode`, as far as a client without a client certificate
/// can honour it (`allow` is refused: it means "plain unless the server
/// insists", which no Shoal or PostgreSQL server does).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SslMode {
    Disable,
    #[default]
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// What tokio-postgres is told: whether TLS is tried, and whether a
    /// server without it is refused.
    fn negotiation(self) -> PgSslMode {
        match self {
            SslMode::Disable => PgSslMode::Disable,
            SslMode::Prefer => PgSslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => PgSslMode::Require,
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SslMode {
    type Err = Error;

    fn from_str(s: &str) -> Result<SslMode> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            "allow" => {
                return Err(Error::Config(
                    "sslmode=allow is not supported (use disable, prefer, require, verify-ca or verify-full)".into(),
                ))
            }
            other => {
                return Err(Error::Config(format!(
                    "invalid sslmode \"{other}\" (expected disable, prefer, require, verify-ca or verify-full)"
                )))
            }
        })
    }
}

/// The TLS options of a URL, and the URL without them.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct SplitUrl {
    /// The URL with `sslmode` and `sslrootcert` removed (the other query
    /// parameters byte for byte as given).
    pub url: String,
    pub mode: SslMode,
    pub root_cert: Option<PathBuf>,
}

/// Takes `sslmode` and `sslrootcert` out of a `postgres://` URL's query.
pub(crate) fn split_url(url: &str) -> Result<SplitUrl> {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, query),
        None => return Ok(SplitUrl { url: url.to_string(), mode: SslMode::default(), root_cert: None }),
    };
    let (mut mode, mut root_cert) = (None, None);
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|v| v.into_owned())
                .map_err(|_| Error::Config(format!("URL parameter {key} is not UTF-8 after percent-decoding")))
        };
        match key {
            "sslmode" => {
                if mode.replace(decode(value)?.parse::<SslMode>()?).is_some() {
                    return Err(Error::Config("sslmode is given twice in the URL".into()));
                }
            }
            "sslrootcert" => {
                let path = decode(value)?;
                if path.is_empty() {
                    return Err(Error::Config(
                        "sslrootcert is empty (give the path of a PEM file of CA certificates)".into(),
                    ));
                }
                if path == "system" {
                    return Err(Error::Config(
                        "sslrootcert=system is not supported: shoal-orm reads no system certificate store; \
                         give the path of a PEM file of CA certificates"
                            .into(),
                    ));
                }
                if root_cert.replace(PathBuf::from(path)).is_some() {
                    return Err(Error::Config("sslrootcert is given twice in the URL".into()));
                }
            }
            _ => kept.push(pair),
        }
    }
    let url = if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
    Ok(SplitUrl { url, mode: mode.unwrap_or_default(), root_cert })
}

/// How a connection is secured: what tokio-postgres negotiates and, unless
/// TLS is off, the rustls connector it uses.
#[derive(Clone)]
pub(crate) struct Tls {
    pub mode: SslMode,
    /// `None` for `sslmode=disable`.
    pub connector: Option<MakeRustlsConnect>,
    /// The CA file in use, for error messages.
    root_cert: Option<PathBuf>,
}

impl Tls {
    /// Builds the TLS set-up for `mode`, reading the CA file now.
    pub(crate) fn for_mode(
        mode: SslMode,
        root_cert: Option<PathBuf>,
        config: &mut tokio_postgres::Config,
    ) -> Result<Tls> {
        config.ssl_mode(mode.negotiation());
        if mode == SslMode::Disable {
            return Ok(Tls { mode, connector: None, root_cert: None });
        }
        let root_cert = match (mode, root_cert) {
            (_, Some(path)) => Some(path),
            (SslMode::VerifyCa | SslMode::VerifyFull, None) => Some(default_root_cert().ok_or_else(|| {
                Error::Config(format!(
                    "sslmode={mode} needs the CA certificate to check the server against: \
                     add sslrootcert=<PEM file> to the URL (or install ~/.postgresql/root.crt)"
                ))
            })?),
            (_, None) => None,
        };
        let provider = Arc::new(ring::default_provider());
        let verifier: Arc<dyn ServerCertVerifier> = match &root_cert {
            None => Arc::new(AnyCertificate(provider.clone())),
            Some(path) => {
                let roots = read_roots(path)?;
                let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| Error::Config(format!("sslrootcert {}: {e}", path.display())))?;
                if mode == SslMode::VerifyFull {
                    webpki
                } else {
                    // prefer and require with a CA file check the chain, as libpq does.
                    Arc::new(ChainOnly(webpki))
                }
            }
        };
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Config(format!("TLS set-up: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(Tls { mode, connector: Some(MakeRustlsConnect::new(client)), root_cert })
    }

    /// Explains a failed connection in terms of the URL's TLS options.
    pub(crate) fn describe_failure(&self, e: &tokio_postgres::Error) -> String {
        // tokio-postgres's error kinds are private; its message names the
        // TLS handshake, and rustls' reason is in the error's sources.
        let mut message = e.to_string();
        if self.connector.is_none() || !message.contains("TLS") {
            return message;
        }
        let mut cause = std::error::Error::source(e);
        while let Some(c) = cause {
            let text = c.to_string();
            if !message.contains(&text) {
                message = format!("{message}: {text}");
            }
            cause = c.source();
        }
        let checked = match (&self.root_cert, self.mode) {
            (None, _) => String::new(),
            (Some(path), SslMode::VerifyFull) => {
                format!(" (the server's certificate must chain to {} and name the host)", path.display())
            }
            (Some(path), _) => format!(" (the server's certificate must chain to {})", path.display()),
        };
        format!("TLS with sslmode={}{checked}: {message}", self.mode)
    }
}

/// libpq's default CA file, if it exists.
fn default_root_cert() -> Option<PathBuf> {
    let path = PathBuf::from(std::env::var_os("HOME")?).join(".postgresql/root.crt");
    path.is_file().then_some(path)
}

fn read_roots(path: &Path) -> Result<RootCertStore> {
    let bad = |e: &dyn fmt::Display| Error::Config(format!("sslrootcert {}: {e}", path.display()));
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(&e))? {
        roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
    }
    if roots.is_empty() {
        return Err(bad(&"no PEM certificate in the file"));
    }
    Ok(roots)
}

/// `verify-ca`: the chain must lead to a trusted CA; the name in the
/// certificate is not compared with the host. webpki checks the name only
/// after the chain, so forgiving the name error forgives nothing else.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer` and `require` without a CA file: any certificate is accepted
/// (libpq's behaviour), but the handshake's signatures are still checked.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_and_rootcert_leave_the_url() {
        let s =
            split_url("postgres://u@h/db?options=-csearch_path%3Dx&sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.pem")
                .unwrap();
        assert_eq!(s.url, "postgres://u@h/db?options=-csearch_path%3Dx");
        assert_eq!(s.mode, SslMode::VerifyFull);
        assert_eq!(s.root_cert, Some(PathBuf::from("/tmp/ca.pem")));
        let s = split_url("postgres://u@h/db?sslmode=disable").unwrap();
        assert_eq!((s.url.as_str(), s.mode), ("postgres://u@h/db", SslMode::Disable));
        assert_eq!(split_url("postgres://u@h/db").unwrap().mode, SslMode::Prefer);
    }

    #[test]
    fn bad_tls_options_are_config_errors() {
        for (url, needle) in [
            ("postgres://h/db?sslmode=verify_full", "invalid sslmode \"verify_full\""),
            ("postgres://h/db?sslmode=", "invalid sslmode \"\""),
            ("postgres://h/db?sslmode=allow", "sslmode=allow is not supported"),
            ("postgres://h/db?sslmode=require&sslmode=disable", "given twice"),
            ("postgres://h/db?sslrootcert=system", "system"),
            ("postgres://h/db?sslrootcert=", "empty"),
            ("postgres://h/db?sslmode=%FF", "not UTF-8"),
        ] {
            let err = split_url(url).unwrap_err();
            assert!(matches!(err, Error::Config(_)), "{url}: {err:?}");
            assert_eq!(err.sqlstate(), "22023");
            assert!(err.to_string().contains(needle), "{url}: {err}");
        }
    }

    #[test]
    fn a_missing_or_empty_ca_file_fails_at_set_up() {
        let mut config = tokio_postgres::Config::new();
        let err = Tls::for_mode(SslMode::VerifyFull, Some("/nonexistent/ca.pem".into()), &mut config).err().unwrap();
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
        let empty = tempfile::NamedTempFile::new().unwrap();
        let err = Tls::for_mode(SslMode::VerifyCa, Some(empty.path().into()), &mut config).err().unwrap();
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
    }
}
