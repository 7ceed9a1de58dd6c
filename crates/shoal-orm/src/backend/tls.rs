//! TLS for `postgres://` and `shoal://`: libpq's `sslmode`,
//! `sslrootcert`, `sslcert` and `sslkey`, over rustls (ring provider, no
//! system libraries).
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
//! A client certificate (for a server that checks them, such as Shoal with
//! `--tls-client-ca` or PostgreSQL with `clientcert`) comes from `sslcert`
//! and `sslkey`, PEM files as libpq reads them, or from libpq's defaults
//! `~/.postgresql/postgresql.crt` and `.key` when those exist. It is
//! offered whenever TLS is used and the server asks for one:
//!
//! ```text
//!   sslcert            sslkey             result
//!   ─────────────────  ─────────────────  ───────────────────────────────────────────────
//!   given or default   given or default   presented (the key must match, 0600 as libpq)
//!   given or default   —                  Error::Config: a certificate without its key
//!   —                  given              Error::Config: a key without a certificate
//!   —                  — (or default)     no client certificate
//! ```
//!
//! tokio-postgres knows only disable/prefer/require and refuses options it
//! does not know, so `split_url` takes these four options out of the URL
//! before tokio-postgres parses the rest, and `Tls::new` builds the rustls
//! configuration once per `Db` (reading every file at `Db::connect`, so a
//! missing one fails there). Channel binding (SCRAM-SHA-256-PLUS) comes
//! with tokio-postgres-rustls.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::SslMode as PgSslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::{Error, Result};

/// libpq's `sslmode` (`allow` is refused: it means "plain unless the
/// server insists", which no Shoal or PostgreSQL server does).
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

/// The TLS options of a URL, as given (files are read by [`Tls::new`]).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct TlsOptions {
    pub mode: SslMode,
    /// `sslrootcert`: CA certificates to check the server against.
    pub root_cert: Option<PathBuf>,
    /// `sslcert`: the client certificate chain, leaf first.
    pub client_cert: Option<PathBuf>,
    /// `sslkey`: the client certificate's private key.
    pub client_key: Option<PathBuf>,
}

/// The TLS options of a URL, and the URL without them.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct SplitUrl {
    /// The URL with `sslmode`, `sslrootcert`, `sslcert` and `sslkey`
    /// removed (the other query parameters byte for byte as given).
    pub url: String,
    pub tls: TlsOptions,
}

/// Takes the TLS options out of a `postgres://` URL's query.
pub(crate) fn split_url(url: &str) -> Result<SplitUrl> {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, query),
        None => return Ok(SplitUrl { url: url.to_string(), tls: TlsOptions::default() }),
    };
    let mut mode = None;
    let mut tls = TlsOptions::default();
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|v| v.into_owned())
                .map_err(|_| Error::Config(format!("URL parameter {key} is not UTF-8 after percent-decoding")))
        };
        let once = |slot: &mut Option<PathBuf>, path: String, what: &str| {
            if path.is_empty() {
                return Err(Error::Config(format!("{key} is empty (give the path of {what})")));
            }
            match slot.replace(PathBuf::from(path)) {
                Some(_) => Err(Error::Config(format!("{key} is given twice in the URL"))),
                None => Ok(()),
            }
        };
        match key {
            "sslmode" => {
                if mode.replace(decode(value)?.parse::<SslMode>()?).is_some() {
                    return Err(Error::Config("sslmode is given twice in the URL".into()));
                }
            }
            "sslrootcert" => {
                let path = decode(value)?;
                if path == "system" {
                    return Err(Error::Config(
                        "sslrootcert=system is not supported: shoal-orm reads no system certificate store; \
                         give the path of a PEM file of CA certificates"
                            .into(),
                    ));
                }
                once(&mut tls.root_cert, path, "a PEM file of CA certificates")?;
            }
            "sslcert" => once(&mut tls.client_cert, decode(value)?, "a PEM file with the client certificate")?,
            "sslkey" => once(&mut tls.client_key, decode(value)?, "a PEM file with the client certificate's key")?,
            _ => kept.push(pair),
        }
    }
    tls.mode = mode.unwrap_or_default();
    let url = if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
    Ok(SplitUrl { url, tls })
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
    /// The client certificate file presented, for error messages.
    client_cert: Option<PathBuf>,
}

impl Tls {
    /// Builds the TLS set-up the options ask for, reading their files now.
    pub(crate) fn new(options: TlsOptions, config: &mut tokio_postgres::Config) -> Result<Tls> {
        let TlsOptions { mode, root_cert, client_cert, client_key } = options;
        config.ssl_mode(mode.negotiation());
        if mode == SslMode::Disable {
            return Ok(Tls { mode, connector: None, root_cert: None, client_cert: None });
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
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Config(format!("TLS set-up: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let (client, client_cert) = match ClientIdentity::load(client_cert, client_key, home.as_deref())? {
            None => (builder.with_no_client_auth(), None),
            Some(id) => {
                let client = builder.with_client_auth_cert(id.chain, id.key).map_err(|e| {
                    Error::Config(format!(
                        "sslcert {} and sslkey {} cannot be used together: {e}",
                        id.cert_path.display(),
                        id.key_path.display()
                    ))
                })?;
                (client, Some(id.cert_path))
            }
        };
        Ok(Tls { mode, connector: Some(MakeRustlsConnect::new(client)), root_cert, client_cert })
    }

    /// Explains a failed connection: the server's error with its SQLSTATE,
    /// or the TLS failure in terms of the URL's TLS options.
    pub(crate) fn describe_failure(&self, e: &tokio_postgres::Error) -> String {
        // tokio-postgres prints only the error's kind ("db error", "error
        // performing TLS handshake"); the server's message and rustls'
        // reason are in the error's sources.
        if let Some(db) = e.as_db_error() {
            let mut message = format!("the server refused the connection: {} {}", db.code().code(), db.message());
            if let Some(hint) = db.hint() {
                message = format!("{message} (hint: {hint})");
            }
            if let (Some(cert), "28000") = (&self.client_cert, db.code().code()) {
                message = format!("{message} [client certificate: {}]", cert.display());
            }
            return message;
        }
        let mut message = e.to_string();
        let mut cause = std::error::Error::source(e);
        while let Some(c) = cause {
            let text = c.to_string();
            if !message.contains(&text) {
                message = format!("{message}: {text}");
            }
            cause = c.source();
        }
        let Some(_) = &self.connector else { return message };
        // With TLS 1.3 a server that refuses the client's certificate says
        // so with an alert after the client's half of the handshake, so it
        // surfaces as a failed read rather than a failed handshake.
        let alert = message.contains("alert");
        if !message.contains("TLS") && !alert {
            return message;
        }
        let checked = match (&self.root_cert, self.mode) {
            (None, _) => String::new(),
            (Some(path), SslMode::VerifyFull) => {
                format!(" (the server's certificate must chain to {} and name the host)", path.display())
            }
            (Some(path), _) => format!(" (the server's certificate must chain to {})", path.display()),
        };
        let presented = match (&self.client_cert, alert) {
            (Some(path), true) => format!(
                "; the server may have refused the client certificate {} (it must be signed by a CA the server \
                 trusts, and be current)",
                path.display()
            ),
            (None, true) => "; the server may require a client certificate (sslcert and sslkey)".to_string(),
            (_, false) => String::new(),
        };
        format!("TLS with sslmode={}{checked}: {message}{presented}", self.mode)
    }
}

/// A client certificate chain and its key, read from `sslcert`/`sslkey` or
/// libpq's default files.
struct ClientIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    cert_path: PathBuf,
    key_path: PathBuf,
}

impl ClientIdentity {
    /// Applies libpq's rules (module docs); `home` locates the defaults.
    fn load(cert: Option<PathBuf>, key: Option<PathBuf>, home: Option<&Path>) -> Result<Option<ClientIdentity>> {
        let default = |name: &str| home.map(|h| h.join(".postgresql").join(name)).filter(|p| p.is_file());
        let (cert_path, key_path) = match (cert, key) {
            (Some(cert), key) => {
                let key = key.or_else(|| default("postgresql.key")).ok_or_else(|| {
                    Error::Config(format!(
                        "sslcert {} has no private key: add sslkey=<PEM file> to the URL \
                         (or install ~/.postgresql/postgresql.key)",
                        cert.display()
                    ))
                })?;
                (cert, key)
            }
            (None, Some(key)) => match default("postgresql.crt") {
                Some(cert) => (cert, key),
                None => {
                    return Err(Error::Config(format!(
                        "sslkey {} is given without a client certificate: add sslcert=<PEM file> to the URL",
                        key.display()
                    )))
                }
            },
            (None, None) => match default("postgresql.crt") {
                None => return Ok(None),
                Some(cert) => {
                    let key = default("postgresql.key").ok_or_else(|| {
                        Error::Config(format!(
                            "the client certificate {} has no private key: install ~/.postgresql/postgresql.key \
                             or add sslkey=<PEM file> to the URL",
                            cert.display()
                        ))
                    })?;
                    (cert, key)
                }
            },
        };
        let bad_cert = |e: &dyn fmt::Display| Error::Config(format!("sslcert {}: {e}", cert_path.display()));
        let chain = CertificateDer::pem_file_iter(&cert_path)
            .map_err(|e| bad_cert(&e))?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| bad_cert(&e))?;
        if chain.is_empty() {
            return Err(bad_cert(&"no PEM certificate in the file"));
        }
        check_key_permissions(&key_path)?;
        let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| {
            let reason = match e {
                rustls::pki_types::pem::Error::NoItemsFound => {
                    "no PEM private key (PKCS#8, PKCS#1 or SEC1) in the file".to_string()
                }
                other => other.to_string(),
            };
            Error::Config(format!("sslkey {}: {reason}", key_path.display()))
        })?;
        Ok(Some(ClientIdentity { chain, key, cert_path, key_path }))
    }
}

/// libpq refuses a private key that others may read; so does the ORM (on
/// Unix): at most 0600, or 0640 for a file owned by root.
fn check_key_permissions(path: &Path) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| Error::Config(format!("sslkey {}: {e}", path.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let too_open = if meta.uid() == 0 { meta.mode() & 0o037 != 0 } else { meta.mode() & 0o077 != 0 };
        if too_open {
            return Err(Error::Config(format!(
                "sslkey {} has group or world access (mode {:o}); it must be u=rw (0600) or less, \
                 or u=rw,g=r (0640) or less if owned by root (chmod 0600 it)",
                path.display(),
                meta.mode() & 0o777
            )));
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    Ok(())
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
    fn tls_options_leave_the_url() {
        let s = split_url(
            "postgres://u@h/db?options=-csearch_path%3Dx&sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.pem\
             &sslcert=%2Ftmp%2Fme.crt&sslkey=%2Ftmp%2Fme.key",
        )
        .unwrap();
        assert_eq!(s.url, "postgres://u@h/db?options=-csearch_path%3Dx");
        assert_eq!(s.tls.mode, SslMode::VerifyFull);
        assert_eq!(s.tls.root_cert, Some(PathBuf::from("/tmp/ca.pem")));
        assert_eq!(s.tls.client_cert, Some(PathBuf::from("/tmp/me.crt")));
        assert_eq!(s.tls.client_key, Some(PathBuf::from("/tmp/me.key")));
        let s = split_url("postgres://u@h/db?sslmode=disable").unwrap();
        assert_eq!((s.url.as_str(), s.tls.mode), ("postgres://u@h/db", SslMode::Disable));
        assert_eq!(split_url("postgres://u@h/db").unwrap().tls, TlsOptions::default());
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
            ("postgres://h/db?sslcert=", "sslcert is empty"),
            ("postgres://h/db?sslkey=a&sslkey=b", "sslkey is given twice"),
        ] {
            let err = split_url(url).unwrap_err();
            assert!(matches!(err, Error::Config(_)), "{url}: {err:?}");
            assert_eq!(err.sqlstate(), "22023");
            assert!(err.to_string().contains(needle), "{url}: {err}");
        }
    }

    fn options(mode: SslMode, root_cert: Option<PathBuf>) -> TlsOptions {
        TlsOptions { mode, root_cert, ..TlsOptions::default() }
    }

    #[test]
    fn a_missing_or_empty_ca_file_fails_at_set_up() {
        let mut config = tokio_postgres::Config::new();
        let err =
            Tls::new(options(SslMode::VerifyFull, Some("/nonexistent/ca.pem".into())), &mut config).err().unwrap();
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
        let empty = tempfile::NamedTempFile::new().unwrap();
        let err = Tls::new(options(SslMode::VerifyCa, Some(empty.path().into())), &mut config).err().unwrap();
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
    }

    /// A directory with a client certificate and key (mode 0600) in it.
    fn identity_files(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, "app");
        let cert = params.self_signed(&key).unwrap();
        let (cert_path, key_path) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        set_mode(&key_path, 0o600);
        (cert_path, key_path)
    }

    fn set_mode(path: &Path, mode: u32) {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        #[cfg(not(unix))]
        let _ = (path, mode);
    }

    fn load(cert: Option<&Path>, key: Option<&Path>, home: &Path) -> Result<Option<ClientIdentity>> {
        ClientIdentity::load(cert.map(Path::to_path_buf), key.map(Path::to_path_buf), Some(home))
    }

    #[test]
    fn client_certificates_follow_libpq_defaults() {
        let home = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = identity_files(dir.path(), "app");

        eprintln!("nothing given and no default files: no client certificate");
        assert!(load(None, None, home.path()).unwrap().is_none());

        eprintln!("given files are read; the key may be PKCS#8 (rcgen), checked against the certificate");
        let id = load(Some(&cert), Some(&key), home.path()).unwrap().unwrap();
        assert_eq!((id.chain.len(), id.cert_path, id.key_path), (1, cert.clone(), key.clone()));

        eprintln!("~/.postgresql/postgresql.crt and .key are used when present");
        let defaults = home.path().join(".postgresql");
        std::fs::create_dir(&defaults).unwrap();
        std::fs::copy(&cert, defaults.join("postgresql.crt")).unwrap();
        let err = load(None, None, home.path()).err().unwrap();
        assert!(err.to_string().contains("postgresql.crt has no private key"), "{err}");
        std::fs::copy(&key, defaults.join("postgresql.key")).unwrap();
        set_mode(&defaults.join("postgresql.key"), 0o600);
        let id = load(None, None, home.path()).unwrap().unwrap();
        assert_eq!(id.cert_path, defaults.join("postgresql.crt"));
        eprintln!("an explicit sslcert takes the default key, as libpq does");
        let id = load(Some(&cert), None, home.path()).unwrap().unwrap();
        assert_eq!((id.cert_path, id.key_path), (cert.clone(), defaults.join("postgresql.key")));
    }

    #[test]
    fn bad_client_certificate_files_are_config_errors() {
        let home = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = identity_files(dir.path(), "app");
        let (_, other_key) = identity_files(dir.path(), "other");
        let missing = dir.path().join("missing.pem");
        let open_key = dir.path().join("open.key");
        std::fs::copy(&key, &open_key).unwrap();
        set_mode(&open_key, 0o644);
        let cert_as_key = dir.path().join("cert-as.key");
        std::fs::copy(&cert, &cert_as_key).unwrap();
        set_mode(&cert_as_key, 0o600);
        let mut cases = vec![
            (Some(&cert), None, "has no private key: add sslkey"),
            (None, Some(&key), "without a client certificate"),
            (Some(&missing), Some(&key), "sslcert"),
            (Some(&cert), Some(&missing), "sslkey"),
            (Some(&key), Some(&key), "no PEM certificate"),
            (Some(&cert), Some(&cert_as_key), "no PEM private key"),
        ];
        if cfg!(unix) {
            cases.push((Some(&cert), Some(&open_key), "group or world access"));
        }
        for (c, k, needle) in cases {
            let err = load(c.map(PathBuf::as_path), k.map(PathBuf::as_path), home.path()).err().unwrap();
            assert!(matches!(err, Error::Config(_)), "{c:?} {k:?}: {err:?}");
            assert!(err.to_string().contains(needle), "{c:?} {k:?}: {err}");
        }

        eprintln!("a key that is not the certificate's is refused when the TLS set-up is built");
        let mut config = tokio_postgres::Config::new();
        let mismatched = TlsOptions { client_cert: Some(cert), client_key: Some(other_key), ..TlsOptions::default() };
        let err = Tls::new(mismatched, &mut config).err().unwrap();
        assert!(matches!(err, Error::Config(_)), "{err:?}");
        assert!(err.to_string().contains("cannot be used together"), "{err}");
    }
}
