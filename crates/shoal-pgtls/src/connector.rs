//! [`Tls`]: the rustls set-up the options ask for, the connect call that
//! uses it (with libpq's second attempt without TLS under `prefer`), and
//! the explanation of a failed connection.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::ring;
use rustls::ClientConfig;
use tokio_postgres::config::SslMode as PgSslMode;
use tokio_postgres::{Config, NoTls};

use crate::connect_error::ConnectError;
use crate::error::ConfigError;
use crate::handshake::{Connector, Record};
use crate::identity::{default_file, ClientIdentity};
use crate::mode::SslMode;
use crate::options::{FileSetting, Param, Spelling, TlsOptions};
use crate::session::Session;
use crate::verify::{read_roots, AnyCertificate, ChainOnly};

/// A session's connection task, plain or TLS alike: the caller spawns it
/// (`tokio::spawn`), and it ends when the session's socket closes, with an
/// error only when the socket failed (the client sees that on its next
/// call).
pub type Connection = Pin<Box<dyn Future<Output = Result<(), tokio_postgres::Error>> + Send>>;

/// How connections are secured: what tokio-postgres negotiates and,
/// unless TLS is off, the rustls configuration it uses. Built once (reading
/// every file), then used for any number of connections.
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// use shoal_pgtls::{process_env, split_conninfo, Tls};
///
/// let split = split_conninfo("host=db1 user=app dbname=shoal sslmode=verify-full sslrootcert=ca.pem", &process_env)?;
/// let mut config: tokio_postgres::Config = split.conninfo.parse()?;
/// let tls = Tls::new(split.tls, &mut config)?;
/// let session = tls.connect(&config).await?; // the error explains itself
/// tokio::spawn(session.connection);
/// if let Some(encryption) = &session.encryption {
///     println!("SSL connection ({encryption})");
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Tls {
    mode: SslMode,
    /// The mode came from `PGSSLMODE`, for messages.
    mode_from_env: bool,
    /// How the user writes the options, for messages.
    spelling: Spelling,
    /// `None` for `sslmode=disable`.
    config: Option<Arc<ClientConfig>>,
    /// The CA file in use, for messages.
    root_cert: Option<PathBuf>,
    /// The client certificate file presented, for messages.
    client_cert: Option<PathBuf>,
}

impl Tls {
    /// Builds the TLS set-up the options ask for, reading their files now,
    /// and tells `config` whether to negotiate TLS.
    pub fn new(options: TlsOptions, config: &mut Config) -> Result<Tls, ConfigError> {
        let TlsOptions { mode, mode_from_env, spelling, root_cert, client_cert, client_key, home } = options;
        config.ssl_mode(mode.negotiation());
        if mode == SslMode::Disable {
            return Ok(Tls { mode, mode_from_env, spelling, config: None, root_cert: None, client_cert: None });
        }
        let root_cert = match (mode, root_cert) {
            (_, Some(setting)) => Some(setting),
            (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
                let path = default_file(home.as_deref(), "root.crt").ok_or_else(|| {
                    ConfigError::new(format!(
                        "{} needs the CA certificate to check the server against: {} or set PGSSLROOTCERT \
                         (or install ~/.postgresql/root.crt)",
                        spelling.mode_setting(mode, mode_from_env),
                        spelling.add(Param::RootCert)
                    ))
                })?;
                Some(FileSetting::new(spelling.name(Param::RootCert), path))
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
                    .map_err(|e| ConfigError::new(format!("{setting}: {e}")))?;
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
            .map_err(|e| ConfigError::new(format!("TLS set-up: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let identity = ClientIdentity::load(client_cert, client_key, home.as_deref(), spelling)?;
        let (client, client_cert) = match identity {
            None => (builder.with_no_client_auth(), None),
            Some(id) => {
                let client = builder.with_client_auth_cert(id.chain, id.key).map_err(|e| {
                    ConfigError::new(format!("{} and {} cannot be used together: {e}", id.cert, id.key_file))
                })?;
                (client, Some(id.cert.path))
            }
        };
        Ok(Tls {
            mode,
            mode_from_env,
            spelling,
            config: Some(Arc::new(client)),
            root_cert: root_cert.map(|s| s.path),
            client_cert,
        })
    }

    /// The `sslmode` in force.
    pub fn mode(&self) -> SslMode {
        self.mode
    }

    /// The mode as the user set it, for messages: `sslmode=require`,
    /// `--sslmode=require` or `PGSSLMODE=require`.
    pub fn mode_setting(&self) -> String {
        self.spelling.mode_setting(self.mode, self.mode_from_env)
    }

    /// The client certificate file presented to servers that ask for one.
    pub fn client_cert(&self) -> Option<&Path> {
        self.client_cert.as_deref()
    }

    /// Opens a session as `config` says, plain or over TLS as this set-up
    /// says; its [`Session::connection`] must be spawned.
    ///
    /// Under `sslmode=prefer`, as in libpq: a server that declines TLS gets
    /// a plain session on the same socket (tokio-postgres does that); a
    /// server that agrees to TLS but whose handshake then fails — its TLS
    /// is broken, or its certificate does not chain to `sslrootcert` — gets
    /// one more attempt, without TLS, on a new socket. If that fails too,
    /// the [`ConnectError`] tells both. Every stricter mode fails at the
    /// handshake. Failures after the handshake (the server's refusal, a
    /// client certificate it rejects) are not retried.
    pub async fn connect(&self, config: &Config) -> Result<Session, ConnectError> {
        let Some(tls) = &self.config else {
            return plain(config).await.map_err(|e| self.failure(e, None));
        };
        let record = Record::default();
        match config.connect(Connector::new(tls.clone(), record.clone())).await {
            Ok((client, connection)) => {
                Ok(Session { client, connection: Box::pin(connection), encryption: record.encryption() })
            }
            Err(e) if self.mode == SslMode::Prefer && record.handshake_failed() => {
                let mut without_tls = config.clone();
                without_tls.ssl_mode(PgSslMode::Disable);
                plain(&without_tls).await.map_err(|retry| self.failure(retry, Some(e)))
            }
            Err(e) => Err(self.failure(e, None)),
        }
    }

    /// The [`ConnectError`] of `error`, the last attempt's, after
    /// `tls_failure`, `prefer`'s failed TLS attempt.
    fn failure(&self, error: tokio_postgres::Error, tls_failure: Option<tokio_postgres::Error>) -> ConnectError {
        let explanation = match &tls_failure {
            None => self.explain(&error, self.config.is_some()),
            Some(first) => format!(
                "{}; then, as {} does after a failed TLS handshake, without TLS: {}",
                self.explain(first, true),
                self.mode_setting(),
                self.explain(&error, false)
            ),
        };
        ConnectError::new(error, tls_failure, explanation)
    }

    /// Explains one failed attempt, made over TLS or not: the server's
    /// error with its SQLSTATE, or the TLS failure in terms of the TLS
    /// options, as the user set them.
    fn explain(&self, e: &tokio_postgres::Error, over_tls: bool) -> String {
        // tokio-postgres prints only the error's kind ("db error", "error
        // performing TLS handshake"); the server's message and rustls'
        // reason are in the error's sources.
        if let Some(db) = e.as_db_error() {
            let mut message = format!("the server refused the connection: {} {}", db.code().code(), db.message());
            if let Some(hint) = db.hint() {
                message = format!("{message} (hint: {hint})");
            }
            if let (Some(cert), "28000", true) = (&self.client_cert, db.code().code(), over_tls) {
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
        if !over_tls {
            return message;
        }
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
            (None, true) => format!(
                "; the server may require a client certificate ({} and {})",
                self.spelling.name(Param::Cert),
                self.spelling.name(Param::Key)
            ),
            (_, false) => String::new(),
        };
        format!("TLS with {}{checked}: {message}{presented}", self.mode_setting())
    }
}

/// One attempt without TLS.
async fn plain(config: &Config) -> Result<Session, tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    Ok(Session { client, connection: Box::pin(connection), encryption: None })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_server::{server_tls, Answer, FakeServer, Login};
    use crate::options::tests::env_of;
    use crate::options::TlsSettings;
    use crate::split_conninfo;
    use crate::testutil::identity_files;

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
            let split = split_conninfo("postgres://u@h/db", &env_of(&vars)).unwrap();
            let err = Tls::new(split.tls, &mut Config::new()).err().unwrap();
            assert!(err.message().contains(&needle), "{vars:?}: {err}");
        }

        eprintln!("good files from the environment build a TLS set-up that presents the certificate");
        let vars = [("PGSSLMODE", "require"), ("PGSSLCERT", cert), ("PGSSLKEY", key), ("HOME", home)];
        let split = split_conninfo("postgres://u@h/db", &env_of(&vars)).unwrap();
        let tls = Tls::new(split.tls, &mut Config::new()).unwrap();
        assert_eq!((tls.mode(), tls.client_cert()), (SslMode::Require, Some(Path::new(cert))));
        assert_eq!(tls.mode_setting(), "PGSSLMODE=require");
    }

    fn options(mode: SslMode, root_cert: Option<PathBuf>) -> TlsOptions {
        TlsOptions { mode, root_cert: root_cert.map(|p| FileSetting::new("sslrootcert", p)), ..TlsOptions::default() }
    }

    #[test]
    fn a_missing_or_empty_ca_file_fails_at_set_up() {
        let mut config = Config::new();
        let err =
            Tls::new(options(SslMode::VerifyFull, Some("/nonexistent/ca.pem".into())), &mut config).err().unwrap();
        assert!(err.message().contains("/nonexistent/ca.pem"), "{err}");
        let empty = tempfile::NamedTempFile::new().unwrap();
        let err = Tls::new(options(SslMode::VerifyCa, Some(empty.path().into())), &mut config).err().unwrap();
        assert!(err.message().contains("no PEM certificate"), "{err}");
    }

    #[test]
    fn verify_modes_without_a_ca_file_say_how_to_give_one() {
        let home = tempfile::tempdir().unwrap();
        let vars = [("HOME", home.path().to_str().unwrap())];
        let given = TlsSettings { sslmode: Some(SslMode::VerifyFull), ..TlsSettings::default() };
        let options = given.resolve(Spelling::Flags, &env_of(&vars)).unwrap();
        let err = Tls::new(options, &mut Config::new()).err().unwrap();
        assert!(
            err.message().starts_with("--sslmode=verify-full needs the CA certificate")
                && err.message().contains("give --sslrootcert <PEM file> or set PGSSLROOTCERT"),
            "{err}"
        );
    }

    #[test]
    fn a_key_that_is_not_the_certificates_is_refused_at_set_up() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, _) = identity_files(dir.path(), "app");
        let (_, other_key) = identity_files(dir.path(), "other");
        let mismatched = TlsOptions {
            client_cert: Some(FileSetting::new("sslcert", cert)),
            client_key: Some(FileSetting::new("sslkey", other_key)),
            ..TlsOptions::default()
        };
        let err = Tls::new(mismatched, &mut Config::new()).err().unwrap();
        assert!(err.message().contains("cannot be used together"), "{err}");
    }

    #[test]
    fn disable_builds_no_tls_config_and_reads_no_file() {
        let options = TlsOptions {
            mode: SslMode::Disable,
            client_cert: Some(FileSetting::new("--sslcert", "/nonexistent/app.crt")),
            ..TlsOptions::default()
        };
        let mut config = Config::new();
        let tls = Tls::new(options, &mut config).unwrap();
        assert!(tls.config.is_none() && tls.client_cert().is_none());
        assert_eq!(config.get_ssl_mode(), tokio_postgres::config::SslMode::Disable);
    }

    /// A session as `mode` (and `root_cert` as `sslrootcert`) says, to
    /// `server`.
    async fn open(server: &FakeServer, mode: SslMode, root_cert: Option<&Path>) -> Result<Session, ConnectError> {
        let mut config = Config::new();
        config.host("127.0.0.1").port(server.port).user("app").dbname("shoal");
        let tls = Tls::new(options(mode, root_cert.map(Path::to_path_buf)), &mut config).unwrap();
        tls.connect(&config).await
    }

    /// A CA certificate that signed nothing the servers present, in `dir`.
    fn unrelated_ca(dir: &Path) -> PathBuf {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, "unrelated CA");
        let path = dir.join("other-ca.pem");
        std::fs::write(&path, params.self_signed(&key).unwrap().pem()).unwrap();
        path
    }

    #[tokio::test]
    async fn prefer_tries_once_more_without_tls_after_a_failed_handshake() {
        let server = FakeServer::start(Answer::Broken, Login::Accept).await;
        let session = open(&server, SslMode::Prefer, None).await.unwrap();
        assert_eq!((session.encryption, server.sockets()), (None, 2), "a plain session on a second socket");

        eprintln!("when the server refuses the plain attempt too, the error tells both attempts");
        let server = FakeServer::start(Answer::Broken, Login::Refuse("this server requires TLS")).await;
        let err = open(&server, SslMode::Prefer, None).await.err().expect("refused");
        assert_eq!(server.sockets(), 2);
        assert!(err.tls_failure().is_some_and(|e| e.as_db_error().is_none()), "{err:?}");
        assert_eq!(err.as_db_error().map(|db| db.code().code()), Some("28000"));
        let message = err.to_string();
        assert!(
            message.starts_with("TLS with sslmode=prefer: error performing TLS handshake")
                && message.contains("then, as sslmode=prefer does after a failed TLS handshake, without TLS: ")
                && message.ends_with("the server refused the connection: 28000 this server requires TLS"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn prefer_tries_without_tls_after_a_certificate_that_does_not_chain_as_libpq_does() {
        let dir = tempfile::tempdir().unwrap();
        let other_ca = unrelated_ca(dir.path());
        let server = FakeServer::start(Answer::Serve(server_tls(rustls::ALL_VERSIONS)), Login::Accept).await;
        let session = open(&server, SslMode::Prefer, Some(&other_ca)).await.unwrap();
        assert_eq!((session.encryption, server.sockets()), (None, 2));

        eprintln!("require and verify-ca with the same CA file: the verdict stands, on one socket");
        for mode in [SslMode::Require, SslMode::VerifyCa, SslMode::VerifyFull] {
            let server = FakeServer::start(Answer::Serve(server_tls(rustls::ALL_VERSIONS)), Login::Accept).await;
            let err = open(&server, mode, Some(&other_ca)).await.err().expect("a certificate the CA did not sign");
            assert_eq!((server.sockets(), err.tls_failure().is_none()), (1, true), "{mode}");
            let message = err.to_string();
            assert!(message.contains("must chain to") && message.contains("UnknownIssuer"), "{mode}: {message}");
        }
    }

    #[tokio::test]
    async fn stricter_modes_and_later_failures_are_not_retried() {
        let server = FakeServer::start(Answer::Broken, Login::Accept).await;
        let err = open(&server, SslMode::Require, None).await.err().expect("a broken TLS");
        assert_eq!((server.sockets(), err.tls_failure().is_none()), (1, true));
        assert!(err.to_string().starts_with("TLS with sslmode=require: error performing TLS handshake"), "{err}");

        eprintln!("a refusal after a completed handshake is the server's answer, not a TLS failure");
        let server = FakeServer::start(Answer::Serve(server_tls(rustls::ALL_VERSIONS)), Login::Refuse("no")).await;
        let err = open(&server, SslMode::Prefer, None).await.err().expect("refused");
        assert_eq!((server.sockets(), err.tls_failure().is_none()), (1, true));
        assert_eq!(err.to_string(), "the server refused the connection: 28000 no");
    }

    #[tokio::test]
    async fn a_declined_ssl_request_is_plain_on_the_same_socket() {
        let server = FakeServer::start(Answer::Decline, Login::Accept).await;
        let session = open(&server, SslMode::Prefer, None).await.unwrap();
        assert_eq!((session.encryption, server.sockets()), (None, 1));
        let err = refusal(&server, SslMode::Require).await;
        assert!(err.contains("server does not support TLS"), "{err}");
    }

    async fn refusal(server: &FakeServer, mode: SslMode) -> String {
        match open(server, mode, None).await {
            Ok(_) => "connected".to_string(),
            Err(e) => e.to_string(),
        }
    }

    #[tokio::test]
    async fn a_session_says_what_its_tls_negotiated() {
        let server = FakeServer::start(Answer::Serve(server_tls(&[&rustls::version::TLS13])), Login::Accept).await;
        let encryption = open(&server, SslMode::Require, None).await.unwrap().encryption.expect("TLS");
        assert_eq!(encryption.protocol, "TLSv1.3");
        assert!(encryption.cipher.starts_with("TLS13_"), "{encryption}");
        assert_eq!(encryption.to_string(), format!("protocol: TLSv1.3, cipher: {}", encryption.cipher));

        let server = FakeServer::start(Answer::Serve(server_tls(&[&rustls::version::TLS12])), Login::Accept).await;
        let encryption = open(&server, SslMode::Prefer, None).await.unwrap().encryption.expect("TLS");
        assert_eq!(encryption.protocol, "TLSv1.2");
        assert!(encryption.cipher.starts_with("TLS_ECDHE_ECDSA_WITH_"), "{encryption}");
    }
}
