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
//! Each option the URL does not set comes from libpq's environment
//! variable for it, when that is set; the URL wins, option by option:
//!
//! ```text
//!   URL parameter   else the variable   else
//!   ─────────────   ─────────────────   ──────────────────────────────────
//!   sslmode         PGSSLMODE           prefer
//!   sslrootcert     PGSSLROOTCERT       ~/.postgresql/root.crt (verify-*)
//!   sslcert         PGSSLCERT           ~/.postgresql/postgresql.crt
//!   sslkey          PGSSLKEY            ~/.postgresql/postgresql.key
//! ```
//!
//! A variable is checked as its parameter is (an empty or unknown value,
//! a missing file: `Error::Config`, 22023), and errors name the variable,
//! so `PGSSLCERT /etc/app.crt: No such file` says where the path came
//! from. The environment reaches `split_url` as a lookup function, so
//! tests give their own instead of changing the process's.
//!
//! tokio-postgres knows only disable/prefer/require and refuses options it
//! does not know, so `split_url` takes these four options out of the URL
//! before tokio-postgres parses the rest, and `Tls::new` builds the rustls
//! configuration once per `Db` (reading every file at `Db::connect`, so a
//! missing one fails there). Channel binding (SCRAM-SHA-256-PLUS) comes
//! with tokio-postgres-rustls.

use std::ffi::OsString;
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
        SslMode::parse(s, "sslmode")
    }
}

impl SslMode {
    /// Parses `value` as set by `name` (`sslmode` or `PGSSLMODE`), naming
    /// it in the error.
    fn parse(value: &str, name: &str) -> Result<SslMode> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            "allow" => {
                return Err(Error::Config(format!(
                    "{name}=allow is not supported (use disable, prefer, require, verify-ca or verify-full)"
                )))
            }
            other => {
                return Err(Error::Config(format!(
                    "invalid {name} \"{other}\" (expected disable, prefer, require, verify-ca or verify-full)"
                )))
            }
        })
    }
}

/// A file named by a URL parameter or by libpq's environment variable for
/// it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FileSetting {
    pub path: PathBuf,
    /// What named it, for messages: the parameter (`sslcert`) or the
    /// variable (`PGSSLCERT`).
    pub name: &'static str,
}

impl FileSetting {
    fn new(name: &'static str, path: impl Into<PathBuf>) -> FileSetting {
        FileSetting { path: path.into(), name }
    }
}

impl fmt::Display for FileSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.name, self.path.display())
    }
}

/// The TLS options of a URL and the environment (files are read by
/// [`Tls::new`]).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct TlsOptions {
    pub mode: SslMode,
    /// The mode came from `PGSSLMODE` (for messages).
    pub mode_from_env: bool,
    /// `sslrootcert`: CA certificates to check the server against.
    pub root_cert: Option<FileSetting>,
    /// `sslcert`: the client certificate chain, leaf first.
    pub client_cert: Option<FileSetting>,
    /// `sslkey`: the client certificate's private key.
    pub client_key: Option<FileSetting>,
    /// `$HOME`, where libpq's default files live (`~/.postgresql/…`).
    pub home: Option<PathBuf>,
}

/// The TLS options of a URL, and the URL without them.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct SplitUrl {
    /// The URL with `sslmode`, `sslrootcert`, `sslcert` and `sslkey`
    /// removed (the other query parameters byte for byte as given).
    pub url: String,
    pub tls: TlsOptions,
}

/// The environment as [`split_url`] reads it: a variable's value, if set.
/// The process environment is `&|name| std::env::var_os(name)`; tests pass
/// their own, so they never touch (and race on) the process's.
pub(crate) type Env<'a> = &'a dyn Fn(&str) -> Option<OsString>;

/// The TLS options as the URL gives them, before the environment fills in.
#[derive(Default)]
struct UrlTls {
    mode: Option<SslMode>,
    root_cert: Option<PathBuf>,
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
}

/// What a CA file option must not be: `system` (no system store is read).
fn check_root_cert(path: &Path, name: &str) -> Result<()> {
    if path == Path::new("system") {
        return Err(Error::Config(format!(
            "{name}=system is not supported: shoal-orm reads no system certificate store; \
             give the path of a PEM file of CA certificates"
        )));
    }
    Ok(())
}

/// Takes the TLS options out of a `postgres://` URL's query and fills the
/// ones it does not set from libpq's environment variables (`PGSSLMODE`,
/// `PGSSLROOTCERT`, `PGSSLCERT`, `PGSSLKEY`): the URL wins, as in libpq.
pub(crate) fn split_url(url: &str, env: Env<'_>) -> Result<SplitUrl> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut given = UrlTls::default();
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
                if given.mode.replace(decode(value)?.parse::<SslMode>()?).is_some() {
                    return Err(Error::Config("sslmode is given twice in the URL".into()));
                }
            }
            "sslrootcert" => {
                let path = decode(value)?;
                check_root_cert(Path::new(&path), "sslrootcert")?;
                once(&mut given.root_cert, path, ROOT_CERT_FILE)?;
            }
            "sslcert" => once(&mut given.client_cert, decode(value)?, CERT_FILE)?,
            "sslkey" => once(&mut given.client_key, decode(value)?, KEY_FILE)?,
            _ => kept.push(pair),
        }
    }
    let url = if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
    Ok(SplitUrl { url, tls: with_env(given, env)? })
}

const ROOT_CERT_FILE: &str = "a PEM file of CA certificates";
const CERT_FILE: &str = "a PEM file with the client certificate";
const KEY_FILE: &str = "a PEM file with the client certificate's key";

/// Fills what the URL left unset from the environment, validating each
/// variable as its URL parameter is validated and naming it in errors.
fn with_env(given: UrlTls, env: Env<'_>) -> Result<TlsOptions> {
    let (mode, mode_from_env) = match (given.mode, env("PGSSLMODE")) {
        (Some(mode), _) => (mode, false),
        (None, None) => (SslMode::default(), false),
        (None, Some(value)) => {
            let value = value.into_string().map_err(|_| Error::Config("PGSSLMODE is not UTF-8".into()))?;
            (SslMode::parse(&value, "PGSSLMODE")?, true)
        }
    };
    let file = |url: Option<PathBuf>, param: &'static str, var: &'static str, what: &str| match url {
        Some(path) => Ok(Some(FileSetting::new(param, path))),
        None => match env(var) {
            None => Ok(None),
            Some(value) if value.is_empty() => {
                Err(Error::Config(format!("{var} is set but empty (give the path of {what}, or unset it)")))
            }
            Some(value) => Ok(Some(FileSetting { path: value.into(), name: var })),
        },
    };
    let root_cert = file(given.root_cert, "sslrootcert", "PGSSLROOTCERT", ROOT_CERT_FILE)?;
    if let Some(root) = &root_cert {
        check_root_cert(&root.path, root.name)?;
    }
    Ok(TlsOptions {
        mode,
        mode_from_env,
        root_cert,
        client_cert: file(given.client_cert, "sslcert", "PGSSLCERT", CERT_FILE)?,
        client_key: file(given.client_key, "sslkey", "PGSSLKEY", KEY_FILE)?,
        home: env("HOME").map(PathBuf::from),
    })
}

/// How a connection is secured: what tokio-postgres negotiates and, unless
/// TLS is off, the rustls connector it uses.
#[derive(Clone)]
pub(crate) struct Tls {
    pub mode: SslMode,
    /// The mode came from `PGSSLMODE`, for error messages.
    mode_from_env: bool,
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
        let TlsOptions { mode, mode_from_env, root_cert, client_cert, client_key, home } = options;
        config.ssl_mode(mode.negotiation());
        if mode == SslMode::Disable {
            return Ok(Tls { mode, mode_from_env, connector: None, root_cert: None, client_cert: None });
        }
        let root_cert = match (mode, root_cert) {
            (_, Some(setting)) => Some(setting),
            (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
                let path = default_file(home.as_deref(), "root.crt").ok_or_else(|| {
                    Error::Config(format!(
                        "{} needs the CA certificate to check the server against: add sslrootcert=<PEM file> \
                         to the URL or set PGSSLROOTCERT (or install ~/.postgresql/root.crt)",
                        mode_setting(mode, mode_from_env)
                    ))
                })?;
                Some(FileSetting::new("sslrootcert", path))
            }
            (_, None) => None,
        };
        let provider = Arc::new(ring::default_provider());
        let verifier: Arc<dyn ServerCertVerifier> = match &root_cert {
            None => Arc::new(AnyCertificate(provider.clone())),
            Some(setting) => {
                let roots = read_roots(setting)?;
                let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| Error::Config(format!("{setting}: {e}")))?;
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
        let (client, client_cert) = match ClientIdentity::load(client_cert, client_key, home.as_deref())? {
            None => (builder.with_no_client_auth(), None),
            Some(id) => {
                let client = builder.with_client_auth_cert(id.chain, id.key).map_err(|e| {
                    Error::Config(format!("{} and {} cannot be used together: {e}", id.cert, id.key_file))
                })?;
                (client, Some(id.cert.path))
            }
        };
        Ok(Tls {
            mode,
            mode_from_env,
            connector: Some(MakeRustlsConnect::new(client)),
            root_cert: root_cert.map(|s| s.path),
            client_cert,
        })
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
        format!("TLS with {}{checked}: {message}{presented}", mode_setting(self.mode, self.mode_from_env))
    }
}

/// `sslmode=…` or `PGSSLMODE=…`, as the user set it.
fn mode_setting(mode: SslMode, from_env: bool) -> String {
    format!("{}={mode}", if from_env { "PGSSLMODE" } else { "sslmode" })
}

/// A client certificate chain and its key, read from `sslcert`/`sslkey`
/// (or `PGSSLCERT`/`PGSSLKEY`) or libpq's default files.
struct ClientIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    cert: FileSetting,
    key_file: FileSetting,
}

impl ClientIdentity {
    /// Applies libpq's rules (module docs); `home` locates the defaults.
    fn load(
        cert: Option<FileSetting>,
        key: Option<FileSetting>,
        home: Option<&Path>,
    ) -> Result<Option<ClientIdentity>> {
        let default = |name: &'static str, file: &str| default_file(home, file).map(|p| FileSetting::new(name, p));
        let (cert, key_file) = match (cert, key) {
            (Some(cert), key) => {
                let key = key.or_else(|| default("sslkey", "postgresql.key")).ok_or_else(|| {
                    Error::Config(format!(
                        "{cert} has no private key: add sslkey=<PEM file> to the URL or set PGSSLKEY \
                         (or install ~/.postgresql/postgresql.key)"
                    ))
                })?;
                (cert, key)
            }
            (None, Some(key)) => match default("sslcert", "postgresql.crt") {
                Some(cert) => (cert, key),
                None => {
                    return Err(Error::Config(format!(
                        "{key} is given without a client certificate: add sslcert=<PEM file> to the URL \
                         or set PGSSLCERT"
                    )))
                }
            },
            (None, None) => match default("sslcert", "postgresql.crt") {
                None => return Ok(None),
                Some(cert) => {
                    let key = default("sslkey", "postgresql.key").ok_or_else(|| {
                        Error::Config(format!(
                            "the client certificate {} has no private key: install ~/.postgresql/postgresql.key \
                             or add sslkey=<PEM file> to the URL (or set PGSSLKEY)",
                            cert.path.display()
                        ))
                    })?;
                    (cert, key)
                }
            },
        };
        let bad_cert = |e: &dyn fmt::Display| Error::Config(format!("{cert}: {e}"));
        let chain = CertificateDer::pem_file_iter(&cert.path)
            .map_err(|e| bad_cert(&e))?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| bad_cert(&e))?;
        if chain.is_empty() {
            return Err(bad_cert(&"no PEM certificate in the file"));
        }
        check_key_permissions(&key_file)?;
        let key = PrivateKeyDer::from_pem_file(&key_file.path).map_err(|e| {
            let reason = match e {
                rustls::pki_types::pem::Error::NoItemsFound => {
                    "no PEM private key (PKCS#8, PKCS#1 or SEC1) in the file".to_string()
                }
                other => other.to_string(),
            };
            Error::Config(format!("{key_file}: {reason}"))
        })?;
        Ok(Some(ClientIdentity { chain, key, cert, key_file }))
    }
}

/// libpq refuses a private key that others may read; so does the ORM (on
/// Unix): at most 0600, or 0640 for a file owned by root.
fn check_key_permissions(key: &FileSetting) -> Result<()> {
    let meta = std::fs::metadata(&key.path).map_err(|e| Error::Config(format!("{key}: {e}")))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let too_open = if meta.uid() == 0 { meta.mode() & 0o037 != 0 } else { meta.mode() & 0o077 != 0 };
        if too_open {
            return Err(Error::Config(format!(
                "{key} has group or world access (mode {:o}); it must be u=rw (0600) or less, \
                 or u=rw,g=r (0640) or less if owned by root (chmod 0600 it)",
                meta.mode() & 0o777
            )));
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    Ok(())
}

/// One of libpq's default files, `~/.postgresql/<name>`, if it exists.
fn default_file(home: Option<&Path>, name: &str) -> Option<PathBuf> {
    home.map(|h| h.join(".postgresql").join(name)).filter(|p| p.is_file())
}

fn read_roots(setting: &FileSetting) -> Result<RootCertStore> {
    let bad = |e: &dyn fmt::Display| Error::Config(format!("{setting}: {e}"));
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&setting.path).map_err(|e| bad(&e))? {
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

    /// An empty environment.
    fn no_env(_: &str) -> Option<OsString> {
        None
    }

    /// An environment holding exactly `vars`.
    fn env_of<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| OsString::from(v))
    }

    fn url_file(name: &'static str, path: &str) -> Option<FileSetting> {
        Some(FileSetting::new(name, path))
    }

    #[test]
    fn tls_options_leave_the_url() {
        let s = split_url(
            "postgres://u@h/db?options=-csearch_path%3Dx&sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.pem\
             &sslcert=%2Ftmp%2Fme.crt&sslkey=%2Ftmp%2Fme.key",
            &no_env,
        )
        .unwrap();
        assert_eq!(s.url, "postgres://u@h/db?options=-csearch_path%3Dx");
        assert_eq!(s.tls.mode, SslMode::VerifyFull);
        assert_eq!(s.tls.root_cert, url_file("sslrootcert", "/tmp/ca.pem"));
        assert_eq!(s.tls.client_cert, url_file("sslcert", "/tmp/me.crt"));
        assert_eq!(s.tls.client_key, url_file("sslkey", "/tmp/me.key"));
        let s = split_url("postgres://u@h/db?sslmode=disable", &no_env).unwrap();
        assert_eq!((s.url.as_str(), s.tls.mode), ("postgres://u@h/db", SslMode::Disable));
        assert_eq!(split_url("postgres://u@h/db", &no_env).unwrap().tls, TlsOptions::default());
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
            let err = split_url(url, &no_env).unwrap_err();
            assert!(matches!(err, Error::Config(_)), "{url}: {err:?}");
            assert_eq!(err.sqlstate(), "22023");
            assert!(err.to_string().contains(needle), "{url}: {err}");
        }
    }

    #[test]
    fn the_environment_fills_what_the_url_leaves_unset() {
        let vars = [
            ("PGSSLMODE", "verify-full"),
            ("PGSSLROOTCERT", "/env/ca.pem"),
            ("PGSSLCERT", "/env/me.crt"),
            ("PGSSLKEY", "/env/me.key"),
            ("HOME", "/home/app"),
        ];
        let env = env_of(&vars);

        eprintln!("a URL without TLS options takes all four variables, and HOME for the defaults");
        let s = split_url("postgres://u@h/db?application_name=x", &env).unwrap();
        assert_eq!(s.url, "postgres://u@h/db?application_name=x");
        assert_eq!((s.tls.mode, s.tls.mode_from_env), (SslMode::VerifyFull, true));
        assert_eq!(s.tls.root_cert, Some(FileSetting { path: "/env/ca.pem".into(), name: "PGSSLROOTCERT" }));
        assert_eq!(s.tls.client_cert, Some(FileSetting { path: "/env/me.crt".into(), name: "PGSSLCERT" }));
        assert_eq!(s.tls.client_key, Some(FileSetting { path: "/env/me.key".into(), name: "PGSSLKEY" }));
        assert_eq!(s.tls.home, Some(PathBuf::from("/home/app")));

        eprintln!("the URL wins, option by option, as in libpq");
        let s = split_url("postgres://u@h/db?sslmode=disable&sslcert=/url/me.crt", &env).unwrap();
        assert_eq!((s.tls.mode, s.tls.mode_from_env), (SslMode::Disable, false));
        assert_eq!(s.tls.client_cert, url_file("sslcert", "/url/me.crt"));
        assert_eq!(s.tls.client_key, Some(FileSetting { path: "/env/me.key".into(), name: "PGSSLKEY" }));
        assert_eq!(s.tls.root_cert, Some(FileSetting { path: "/env/ca.pem".into(), name: "PGSSLROOTCERT" }));
    }

    #[test]
    fn bad_environment_variables_are_config_errors_naming_them() {
        for (var, value, needle) in [
            ("PGSSLMODE", "verify_full", "invalid PGSSLMODE \"verify_full\""),
            ("PGSSLMODE", "", "invalid PGSSLMODE \"\""),
            ("PGSSLMODE", "allow", "PGSSLMODE=allow is not supported"),
            ("PGSSLROOTCERT", "system", "PGSSLROOTCERT=system is not supported"),
            ("PGSSLROOTCERT", "", "PGSSLROOTCERT is set but empty"),
            ("PGSSLCERT", "", "PGSSLCERT is set but empty"),
            ("PGSSLKEY", "", "PGSSLKEY is set but empty"),
        ] {
            let vars = [(var, value)];
            let err = split_url("postgres://u@h/db", &env_of(&vars)).unwrap_err();
            assert!(matches!(err, Error::Config(_)), "{var}={value}: {err:?}");
            assert_eq!(err.sqlstate(), "22023");
            assert!(err.to_string().contains(needle), "{var}={value}: {err}");
        }

        eprintln!("a bad variable the URL overrides is never looked at");
        let vars = [("PGSSLMODE", "bogus"), ("PGSSLCERT", "")];
        let s = split_url("postgres://u@h/db?sslmode=require&sslcert=/url/me.crt", &env_of(&vars)).unwrap();
        assert_eq!(s.tls.mode, SslMode::Require);

        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStringExt;
            let invalid = |name: &str| (name == "PGSSLMODE").then(|| OsString::from_vec(vec![0xff]));
            let err = split_url("postgres://u@h/db", &invalid).unwrap_err();
            assert!(err.to_string().contains("PGSSLMODE is not UTF-8"), "{err}");
        }
    }

    #[test]
    fn files_from_the_environment_are_named_by_their_variable() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = identity_files(dir.path(), "app");
        let missing = dir.path().join("missing.pem");
        let (cert, key, missing) = (cert.to_str().unwrap(), key.to_str().unwrap(), missing.to_str().unwrap());
        let home = dir.path().join("home");
        let home = home.to_str().unwrap();
        for (vars, needle) in [
            (vec![("PGSSLMODE", "verify-ca"), ("PGSSLROOTCERT", missing)], format!("PGSSLROOTCERT {missing}")),
            (vec![("PGSSLMODE", "verify-ca"), ("HOME", home)], "PGSSLMODE=verify-ca needs the CA".to_string()),
            (vec![("PGSSLCERT", missing), ("PGSSLKEY", key)], format!("PGSSLCERT {missing}")),
            (vec![("PGSSLCERT", cert), ("PGSSLKEY", missing)], format!("PGSSLKEY {missing}")),
            (vec![("PGSSLCERT", cert), ("HOME", home)], format!("PGSSLCERT {cert} has no private key")),
            (vec![("PGSSLKEY", key), ("HOME", home)], format!("PGSSLKEY {key} is given without a client")),
        ] {
            let split = split_url("postgres://u@h/db", &env_of(&vars)).unwrap();
            let err = Tls::new(split.tls, &mut tokio_postgres::Config::new()).err().unwrap();
            assert!(matches!(err, Error::Config(_)), "{vars:?}: {err:?}");
            assert!(err.to_string().contains(&needle), "{vars:?}: {err}");
        }

        eprintln!("good files from the environment build a TLS set-up that presents the certificate");
        let vars = [("PGSSLMODE", "require"), ("PGSSLCERT", cert), ("PGSSLKEY", key), ("HOME", home)];
        let split = split_url("postgres://u@h/db", &env_of(&vars)).unwrap();
        let tls = Tls::new(split.tls, &mut tokio_postgres::Config::new()).unwrap();
        assert_eq!((tls.mode, tls.client_cert), (SslMode::Require, Some(PathBuf::from(cert))));
    }

    fn options(mode: SslMode, root_cert: Option<PathBuf>) -> TlsOptions {
        TlsOptions { mode, root_cert: root_cert.map(|p| FileSetting::new("sslrootcert", p)), ..TlsOptions::default() }
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
        let cert = cert.map(|p| FileSetting::new("sslcert", p));
        let key = key.map(|p| FileSetting::new("sslkey", p));
        ClientIdentity::load(cert, key, Some(home))
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
        assert_eq!((id.chain.len(), id.cert.path, id.key_file.path), (1, cert.clone(), key.clone()));

        eprintln!("~/.postgresql/postgresql.crt and .key are used when present");
        let defaults = home.path().join(".postgresql");
        std::fs::create_dir(&defaults).unwrap();
        std::fs::copy(&cert, defaults.join("postgresql.crt")).unwrap();
        let err = load(None, None, home.path()).err().unwrap();
        assert!(err.to_string().contains("postgresql.crt has no private key"), "{err}");
        std::fs::copy(&key, defaults.join("postgresql.key")).unwrap();
        set_mode(&defaults.join("postgresql.key"), 0o600);
        let id = load(None, None, home.path()).unwrap().unwrap();
        assert_eq!(id.cert.path, defaults.join("postgresql.crt"));
        eprintln!("an explicit sslcert takes the default key, as libpq does");
        let id = load(Some(&cert), None, home.path()).unwrap().unwrap();
        assert_eq!((id.cert.path, id.key_file.path), (cert.clone(), defaults.join("postgresql.key")));
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
        let mismatched = TlsOptions {
            client_cert: Some(FileSetting::new("sslcert", cert)),
            client_key: Some(FileSetting::new("sslkey", other_key)),
            ..TlsOptions::default()
        };
        let err = Tls::new(mismatched, &mut config).err().unwrap();
        assert!(matches!(err, Error::Config(_)), "{err:?}");
        assert!(err.to_string().contains("cannot be used together"), "{err}");
    }
}
