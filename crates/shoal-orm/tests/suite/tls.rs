//! TLS by `sslmode` against a Shoal server started with `--tls-cert` and
//! `--tls-key`, one started without, and the machine's PostgreSQL; client
//! certificates (`sslcert`, `sslkey`) against one started with
//! `--tls-client-ca` too.
//!
//! ```text
//!   test CA ──signs──▶ server certificate for "localhost" (not for 127.0.0.1)
//!           ──signs──▶ client certificates CN=shoal (the server's user), CN=alice
//!   other CA ─signs──▶ client certificate CN=shoal
//! ```
//!
//! `require` against a server without TLS must fail, so a `require` that
//! succeeds proves the session was encrypted; `verify-full` must refuse the
//! wrong CA and a host the certificate does not name, while `verify-ca`
//! accepts the latter. `prefer` whose handshake fails (a CA file that did
//! not sign the server's certificate) must try once more without TLS, as
//! libpq does, and when that is refused too say why both failed.
//!
//! `--tls-required` must refuse plain connections (loopback too) but not
//! plain cancel requests; `--auth cert` must log a certificate in without a
//! password and refuse everything else; `--auth cert-or-password` must
//! fall back to the password only when no certificate is presented.
//!
//! libpq's `PGSSL*` environment variables are tested in a child process
//! (`pgssl_variables_configure_tls`), so they never reach this process's
//! other tests.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use shoal_orm::prelude::*;

use crate::harness::{self, Kind, ShoalServer};

struct Pki {
    dir: tempfile::TempDir,
    ca: PathBuf,
    other_ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    ca_cert: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
    other_cert: rcgen::Certificate,
    other_key: rcgen::KeyPair,
}

fn ca(dir: &Path, name: &str) -> (rcgen::Certificate, rcgen::KeyPair, PathBuf) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    let cert = params.self_signed(&key).unwrap();
    let path = dir.join(format!("{name}.pem"));
    std::fs::write(&path, cert.pem()).unwrap();
    (cert, key, path)
}

impl Pki {
    /// `shoal server` flags for TLS with this PKI's server certificate, the
    /// client CA when `client_ca`, then `extra`.
    fn server_args(&self, client_ca: bool, extra: &[&str]) -> Vec<OsString> {
        let mut args: Vec<OsString> =
            vec!["--tls-cert".into(), self.cert.clone().into(), "--tls-key".into(), self.key.clone().into()];
        if client_ca {
            args.extend(["--tls-client-ca".into(), self.ca.clone().into()]);
        }
        args.extend(extra.iter().map(OsString::from));
        args
    }
}

fn pki() -> Pki {
    let dir = tempfile::Builder::new().prefix("shoal-orm-tls-").tempdir().unwrap();
    let (ca_cert, ca_key, ca_path) = ca(dir.path(), "test-ca");
    let (other_cert, other_key, other_ca) = ca(dir.path(), "other-ca");
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ca_cert, &ca_key)
        .unwrap();
    let (cert_path, key_path) = (dir.path().join("server.pem"), dir.path().join("server.key"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    Pki { dir, ca: ca_path, other_ca, cert: cert_path, key: key_path, ca_cert, ca_key, other_cert, other_key }
}

/// A client certificate and its key, as PEM files (the key 0600, as libpq
/// and the ORM insist).
struct ClientFiles {
    cert: PathBuf,
    key: PathBuf,
}

impl Pki {
    /// A client certificate whose subject CN is `cn`, signed by the test CA
    /// or, with `other`, by the other CA.
    fn client(&self, name: &str, cn: &str, other: bool) -> ClientFiles {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::CommonName, cn);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let (issuer, issuer_key) =
            if other { (&self.other_cert, &self.other_key) } else { (&self.ca_cert, &self.ca_key) };
        let cert = params.signed_by(&key, issuer, issuer_key).unwrap();
        let files = ClientFiles {
            cert: self.dir.path().join(format!("{name}.crt")),
            key: self.dir.path().join(format!("{name}.key")),
        };
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&files.key, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        files
    }
}

async fn start(args: &[OsString]) -> Option<ShoalServer> {
    match ShoalServer::start_with(args).await {
        Ok(s) => Some(s),
        Err(e) => {
            harness::skip(Kind::Shoal, "tls", e);
            None
        }
    }
}

/// Connects and runs one statement.
async fn query(url: &str) -> shoal_orm::Result<i64> {
    let db = Db::connect(url).await?;
    sql!("SELECT 41 + 1 AS n").scalar::<i64>(&db).await
}

fn connect_error(result: shoal_orm::Result<i64>, url: &str) -> String {
    match result {
        Err(e @ Error::Connect { .. }) => {
            assert_eq!(e.sqlstate(), "08001");
            e.to_string()
        }
        other => panic!("{url}: expected a connection error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shoal_with_tls_honours_sslmode() {
    let pki = pki();
    let args = pki.server_args(false, &[]);
    let Some(server) = start(&args).await else { return };
    let port = server.pg_port;
    let ca = pki.ca.display();

    eprintln!("encrypted without checking the certificate: require, and prefer (the default)");
    for mode in ["?sslmode=require", "?sslmode=prefer", ""] {
        let url = format!("shoal://shoal@127.0.0.1:{port}/shoal{mode}");
        assert_eq!(query(&url).await.unwrap_or_else(|e| panic!("{url}: {e}")), 42);
    }

    eprintln!("verify-full: the certificate chains to the CA and names the host");
    let url = format!("shoal://shoal@localhost:{port}/shoal?sslmode=verify-full&sslrootcert={ca}");
    assert_eq!(query(&url).await.unwrap_or_else(|e| panic!("{url}: {e}")), 42);

    eprintln!("verify-ca checks the chain only, so 127.0.0.1 (not named in the certificate) passes");
    let url = format!("shoal://shoal@127.0.0.1:{port}/shoal?sslmode=verify-ca&sslrootcert={ca}");
    assert_eq!(query(&url).await.unwrap_or_else(|e| panic!("{url}: {e}")), 42);

    eprintln!("plain TCP is still allowed when asked for");
    let url = format!("shoal://shoal@127.0.0.1:{port}/shoal?sslmode=disable");
    assert_eq!(query(&url).await.unwrap(), 42);

    eprintln!("verify-full refuses a host the certificate does not name");
    let url = format!("shoal://shoal@127.0.0.1:{port}/shoal?sslmode=verify-full&sslrootcert={ca}");
    let message = connect_error(query(&url).await, &url);
    assert!(message.contains("sslmode=verify-full") && message.contains("not valid for name"), "{message}");

    eprintln!("verify-full refuses a certificate from another CA");
    let other = pki.other_ca.display();
    let url = format!("shoal://shoal@localhost:{port}/shoal?sslmode=verify-full&sslrootcert={other}");
    let message = connect_error(query(&url).await, &url);
    assert!(message.contains("sslmode=verify-full") && message.contains("UnknownIssuer"), "{message}");
    assert!(message.contains("other-ca.pem"), "the message names the CA file: {message}");

    eprintln!("require with a CA file checks the chain, as libpq does");
    let url = format!("shoal://shoal@127.0.0.1:{port}/shoal?sslmode=require&sslrootcert={other}");
    let message = connect_error(query(&url).await, &url);
    assert!(message.contains("UnknownIssuer"), "{message}");

    eprintln!("prefer with that CA file: the handshake fails, and libpq's second attempt, without TLS, connects");
    let url = format!("shoal://shoal@127.0.0.1:{port}/shoal?sslmode=prefer&sslrootcert={other}");
    assert_eq!(query(&url).await.unwrap_or_else(|e| panic!("{url}: {e}")), 42);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shoal_without_tls_refuses_require_and_prefer_falls_back() {
    let pki = pki();
    let Some(server) = start(&[]).await else { return };
    let port = server.pg_port;

    eprintln!("prefer falls back to plain TCP when the server has no TLS");
    assert_eq!(query(&format!("shoal://shoal@127.0.0.1:{port}/shoal?sslmode=prefer")).await.unwrap(), 42);

    eprintln!("require and verify-full never fall back");
    let ca = pki.ca.display();
    for mode in ["require".to_string(), format!("verify-full&sslrootcert={ca}")] {
        let url = format!("shoal://shoal@localhost:{port}/shoal?sslmode={mode}");
        let message = connect_error(query(&url).await, &url);
        assert!(message.contains("TLS"), "{message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tls_options_are_typed_errors() {
    for (url, needle) in [
        ("shoal://shoal@127.0.0.1:1/shoal?sslmode=verify", "invalid sslmode \"verify\""),
        ("postgres://u@127.0.0.1:1/db?sslmode=REQUIRE", "invalid sslmode \"REQUIRE\""),
        ("postgres://u@127.0.0.1:1/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem", "/nonexistent/ca.pem"),
    ] {
        let err = Db::connect(url).await.err().unwrap_or_else(|| panic!("{url} connected"));
        assert!(matches!(err, Error::Config(_)), "{url}: {err:?}");
        assert!(err.to_string().contains(needle), "{url}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_tls_follows_sslmode() {
    let user = match harness::pg_admin().await {
        Ok((_, user)) => user,
        Err(e) => {
            harness::skip(Kind::Postgres, "tls", e);
            return;
        }
    };
    let base = format!("postgres://{user}@127.0.0.1:5432/test");
    let encrypted = |db: Db| async move {
        sql!("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").scalar::<bool>(&db).await.unwrap()
    };
    eprintln!("sslmode=require encrypts (the machine's PostgreSQL has ssl = on), disable does not");
    let db = Db::connect(&format!("{base}?sslmode=require")).await.expect("PostgreSQL with ssl = on");
    assert!(encrypted(db).await);
    let db = Db::connect(&format!("{base}?sslmode=disable")).await.unwrap();
    assert!(!encrypted(db).await);

    eprintln!("verify-full against a CA that did not sign the server's certificate fails");
    let pki = pki();
    let url = format!("{base}?sslmode=verify-full&sslrootcert={}", pki.ca.display());
    let message = connect_error(query(&url).await, &url);
    assert!(message.contains("sslmode=verify-full"), "{message}");
}

/// tokio-postgres over rustls, as an application without the ORM would
/// connect (what `psql` does with `sslcert`/`sslkey`): the server's
/// certificate checked against the test CA, `client` presented if given.
async fn pg_connect(port: u16, pki: &Pki, client: Option<&ClientFiles>) -> Result<i32, tokio_postgres::Error> {
    let (client, _) = pg_client(port, pki, client, "sslmode=require").await?;
    Ok(client.query_one("SELECT 41 + 1", &[]).await?.get(0))
}

/// [`pg_connect`]'s session, with `options` (`sslmode=…`, `password=…`)
/// in its connection string, and the TLS connector (for cancel requests).
async fn pg_client(
    port: u16,
    pki: &Pki,
    client: Option<&ClientFiles>,
    options: &str,
) -> Result<(tokio_postgres::Client, tokio_postgres_rustls::MakeRustlsConnect), tokio_postgres::Error> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(&pki.ca).unwrap()).unwrap();
    let builder =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some(c) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_file(&c.cert).unwrap()],
                PrivateKeyDer::from_pem_file(&c.key).unwrap(),
            )
            .unwrap(),
    };
    let tls = tokio_postgres_rustls::MakeRustlsConnect::new(config);
    let conn = format!("host=localhost port={port} user=shoal dbname=shoal connect_timeout=10 {options}");
    let (client, connection) = tokio_postgres::connect(&conn, tls.clone()).await?;
    tokio::spawn(connection);
    Ok((client, tls))
}

/// The server's FATAL refusal of a tokio-postgres connection.
fn refused(result: Result<i32, tokio_postgres::Error>) -> tokio_postgres::error::DbError {
    let err = result.expect_err("the server must refuse the connection");
    let db = err.as_db_error().unwrap_or_else(|| panic!("a server error, got {err:?}")).clone();
    assert_eq!((db.code().code(), db.severity()), ("28000", "FATAL"), "{db}");
    db
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shoal_with_client_ca_checks_client_certificates() {
    let pki = pki();
    let args = pki.server_args(true, &[]);
    let Some(server) = start(&args).await else { return };
    let port = server.pg_port;
    let right = pki.client("shoal", "shoal", false);
    let other_user = pki.client("alice", "alice", false);
    let foreign = pki.client("foreign", "shoal", true);
    let ca = pki.ca.display();

    eprintln!("tokio-postgres: a certificate from the CA whose CN is the user connects");
    assert_eq!(pg_connect(port, &pki, Some(&right)).await.unwrap(), 42);

    eprintln!("tokio-postgres: no certificate, or another user's, is FATAL 28000 from the server");
    for (client, needle) in [(None, "requires a valid client certificate"), (Some(&other_user), "\"alice\"")] {
        let db = refused(pg_connect(port, &pki, client).await);
        assert!(db.message().contains(needle), "{db}");
    }

    eprintln!("tokio-postgres: a certificate from another CA is refused in the TLS handshake");
    let err = pg_connect(port, &pki, Some(&foreign)).await.unwrap_err();
    assert!(err.as_db_error().is_none(), "{err:?}");
    assert!(format!("{err:?}").contains("UnknownCA"), "{err:?}");

    eprintln!("the ORM presents sslcert/sslkey, on shoal:// and postgres:// alike");
    let files = format!("sslcert={}&sslkey={}", right.cert.display(), right.key.display());
    for url in [
        format!("shoal://shoal@127.0.0.1:{port}/shoal?sslmode=require&{files}"),
        format!("shoal://shoal@localhost:{port}/shoal?sslmode=verify-full&sslrootcert={ca}&{files}"),
        format!("postgres://shoal@localhost:{port}/shoal?sslmode=verify-full&sslrootcert={ca}&{files}"),
        format!("shoal://shoal@127.0.0.1:{port}/shoal?{files}"),
    ] {
        assert_eq!(query(&url).await.unwrap_or_else(|e| panic!("{url}: {e}")), 42);
    }

    eprintln!("the ORM without a certificate: 08001 carrying the server's 28000 and its hint");
    let url = format!("shoal://shoal@127.0.0.1:{port}/shoal?sslmode=require");
    let message = connect_error(query(&url).await, &url);
    assert!(message.contains("28000") && message.contains("requires a valid client certificate"), "{message}");
    assert!(message.contains("sslcert"), "the hint says what to set: {message}");
    eprintln!("  {message}");

    eprintln!("the ORM with another user's certificate: 08001 naming the CN and the file");
    let url = format!(
        "shoal://shoal@127.0.0.1:{port}/shoal?sslmode=require&sslcert={}&sslkey={}",
        other_user.cert.display(),
        other_user.key.display()
    );
    let message = connect_error(query(&url).await, &url);
    assert!(message.contains("28000") && message.contains("\"alice\""), "{message}");
    assert!(message.contains("alice.crt"), "{message}");
    eprintln!("  {message}");

    eprintln!("the ORM with a certificate from another CA: 08001 naming the alert and the file");
    let url = format!(
        "shoal://shoal@127.0.0.1:{port}/shoal?sslmode=require&sslcert={}&sslkey={}",
        foreign.cert.display(),
        foreign.key.display()
    );
    let message = connect_error(query(&url).await, &url);
    assert!(message.contains("UnknownCA") && message.contains("foreign.crt"), "{message}");
    eprintln!("  {message}");

    eprintln!("plain connections are not asked for a certificate");
    let url = format!("shoal://shoal@127.0.0.1:{port}/shoal?sslmode=disable");
    assert_eq!(query(&url).await.unwrap(), 42);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_client_certificate_options_are_config_errors() {
    let pki = pki();
    let right = pki.client("app", "shoal", false);
    let (cert, key) = (right.cert.display(), right.key.display());
    let missing = pki.dir.path().join("missing.crt");
    let missing = missing.display();
    for (query, needle) in [
        (format!("sslcert={cert}"), "has no private key"),
        (format!("sslkey={key}"), "without a client certificate"),
        (format!("sslcert={missing}&sslkey={key}"), "missing.crt"),
        (format!("sslcert={cert}&sslkey={missing}"), "missing.crt"),
        (format!("sslcert={key}&sslkey={key}"), "no PEM certificate"),
    ] {
        for scheme in ["shoal://shoal", "postgres://u"] {
            let url = format!("{scheme}@127.0.0.1:1/db?sslmode=require&{query}");
            let err = Db::connect(&url).await.err().unwrap_or_else(|| panic!("{url} connected"));
            assert!(matches!(err, Error::Config(_)), "{url}: {err:?}");
            assert_eq!(err.sqlstate(), "22023");
            assert!(err.to_string().contains(needle), "{url}: {err}");
        }
    }
}

/// Variables that tell [`pgssl_variables_child`] where the server is and
/// which certificate is another user's; set only by the parent test.
const CHILD_PORT: &str = "SHOAL_ORM_TEST_PGSSL_PORT";
const CHILD_ALICE: &str = "SHOAL_ORM_TEST_PGSSL_ALICE";

/// libpq's `PGSSLMODE`, `PGSSLROOTCERT`, `PGSSLCERT` and `PGSSLKEY` through
/// `Db::connect`. The variables are process-wide, and the other tests of
/// this binary connect at the same time, so they are set only in a child
/// process: this binary again, running [`pgssl_variables_child`] alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgssl_variables_configure_tls() {
    let pki = pki();
    let args = pki.server_args(true, &[]);
    let Some(server) = start(&args).await else { return };
    let right = pki.client("shoal", "shoal", false);
    let alice = pki.client("alice", "alice", false);
    let home = pki.dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap());
    child
        .args(["tls::pgssl_variables_child", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env("PGSSLMODE", "verify-full")
        .env("PGSSLROOTCERT", &pki.ca)
        .env("PGSSLCERT", &right.cert)
        .env("PGSSLKEY", &right.key)
        // No ~/.postgresql files of the machine's user can take part.
        .env("HOME", &home)
        .env(CHILD_PORT, server.pg_port.to_string())
        .env(CHILD_ALICE, &alice.cert);
    let output = tokio::task::spawn_blocking(move || child.output().unwrap()).await.unwrap();
    let log = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "the child failed:\n{log}");
    assert!(log.contains("1 passed"), "the child test did not run:\n{log}");
}

/// The child of [`pgssl_variables_configure_tls`]; without its variables
/// (run on its own with `--ignored`) it does nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run in a child process by pgssl_variables_configure_tls"]
async fn pgssl_variables_child() {
    let (Some(port), Some(alice)) = (std::env::var_os(CHILD_PORT), std::env::var_os(CHILD_ALICE)) else {
        eprintln!("not started by pgssl_variables_configure_tls; nothing to do");
        return;
    };
    let port = port.to_str().unwrap();
    let alice = PathBuf::from(alice);

    eprintln!("a URL without TLS options takes all four: verify-full against the CA, our certificate presented");
    let url = format!("shoal://shoal@localhost:{port}/shoal");
    assert_eq!(query(&url).await.unwrap_or_else(|e| panic!("{url}: {e}")), 42);
    let url = format!("postgres://shoal@localhost:{port}/shoal");
    assert_eq!(query(&url).await.unwrap_or_else(|e| panic!("{url}: {e}")), 42);

    eprintln!("PGSSLMODE=verify-full still checks the host name, and the message says where the mode came from");
    let url = format!("shoal://shoal@127.0.0.1:{port}/shoal");
    let message = connect_error(query(&url).await, &url);
    assert!(message.contains("PGSSLMODE=verify-full") && message.contains("not valid for name"), "{message}");

    eprintln!("the URL wins: sslcert/sslkey in it replace PGSSLCERT/PGSSLKEY (here another user's certificate)");
    let url = format!(
        "shoal://shoal@localhost:{port}/shoal?sslcert={}&sslkey={}",
        alice.display(),
        alice.with_extension("key").display()
    );
    let message = connect_error(query(&url).await, &url);
    assert!(message.contains("28000") && message.contains("\"alice\"") && message.contains("alice.crt"), "{message}");

    eprintln!("the URL wins: sslmode=disable replaces PGSSLMODE, and plain connections need no certificate");
    let url = format!("shoal://shoal@127.0.0.1:{port}/shoal?sslmode=disable");
    assert_eq!(query(&url).await.unwrap_or_else(|e| panic!("{url}: {e}")), 42);
}

/// A query that runs far longer than a test waits before cancelling it.
const LONG_QUERY: &str =
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000000) SELECT count(*) FROM n";

/// Runs [`LONG_QUERY`] on `client` and cancels it with `cancel`; the
/// statement's SQLSTATE.
async fn cancelled_by<F>(
    client: &tokio_postgres::Client,
    cancel: impl FnOnce(tokio_postgres::CancelToken) -> F,
) -> String
where
    F: std::future::Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
{
    let cancel = cancel(client.cancel_token());
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        cancel.await
    });
    let err = client.query_one(LONG_QUERY, &[]).await.expect_err("the long query must be cancelled");
    canceller.await.unwrap().expect("cancel request sent");
    err.as_db_error().map(|db| db.code().code().to_string()).unwrap_or_else(|| format!("{err:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shoal_with_tls_required_refuses_plain_connections() {
    let pki = pki();
    let args = pki.server_args(false, &["--tls-required"]);
    let Some(server) = start(&args).await else { return };
    let port = server.pg_port;

    eprintln!("the ORM with TLS connects: prefer (the default) and require");
    for mode in ["", "?sslmode=require"] {
        let url = format!("shoal://shoal@127.0.0.1:{port}/shoal{mode}");
        assert_eq!(query(&url).await.unwrap_or_else(|e| panic!("{url}: {e}")), 42);
    }

    eprintln!("prefer whose handshake fails: the attempt without TLS is refused, and 08001 tells both");
    let url = format!("shoal://shoal@127.0.0.1:{port}/shoal?sslmode=prefer&sslrootcert={}", pki.other_ca.display());
    let message = connect_error(query(&url).await, &url);
    assert!(
        message.contains("TLS with sslmode=prefer")
            && message.contains("UnknownIssuer")
            && message.contains("without TLS: the server refused the connection: 28000"),
        "{message}"
    );

    eprintln!("the ORM with sslmode=disable: 08001 carrying the server's 28000 and what to set");
    let url = format!("shoal://shoal@127.0.0.1:{port}/shoal?sslmode=disable");
    let message = connect_error(query(&url).await, &url);
    assert!(message.contains("28000") && message.contains("this server requires TLS"), "{message}");
    assert!(message.contains("sslmode=require"), "the hint says what to set: {message}");
    eprintln!("  {message}");

    eprintln!("tokio-postgres without TLS, from loopback: FATAL 28000");
    let conn = format!("host=127.0.0.1 port={port} user=shoal dbname=shoal");
    let plain = async {
        let (client, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        Ok(client.query_one("SELECT 1", &[]).await?.get(0))
    };
    assert!(refused(plain.await).message().contains("requires TLS"));

    eprintln!("cancel requests still work: on a plain connection of their own, and inside TLS");
    let (client, tls) = pg_client(port, &pki, None, "sslmode=prefer").await.unwrap();
    // With sslmode=prefer and no TLS connector, tokio-postgres sends the
    // cancel request in the clear, as libpq before 17 and pgjdbc do.
    let code = cancelled_by(&client, |token| async move { token.cancel_query(tokio_postgres::NoTls).await }).await;
    assert_eq!(code, "57014", "plain cancel request");
    let code = cancelled_by(&client, |token| async move { token.cancel_query(tls).await }).await;
    assert_eq!(code, "57014", "cancel request inside TLS");
    assert_eq!(client.query_one("SELECT 41 + 1", &[]).await.unwrap().get::<_, i32>(0), 42);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shoal_cert_or_password_skips_the_password_for_a_certificate() {
    let pki = pki();
    let args = pki.server_args(true, &["--auth", "cert-or-password", "--password", "s3cret"]);
    let Some(server) = start(&args).await else { return };
    let port = server.pg_port;
    let right = pki.client("shoal", "shoal", false);
    let other_user = pki.client("alice", "alice", false);
    let files = format!("sslcert={}&sslkey={}", right.cert.display(), right.key.display());

    eprintln!("tokio-postgres and the ORM with the user's certificate: no password needed");
    let (client, _) = pg_client(port, &pki, Some(&right), "sslmode=require").await.unwrap();
    assert_eq!(client.query_one("SELECT 41 + 1", &[]).await.unwrap().get::<_, i32>(0), 42);
    let url =
        format!("shoal://shoal@localhost:{port}/shoal?sslmode=verify-full&sslrootcert={}&{files}", pki.ca.display());
    assert_eq!(query(&url).await.unwrap_or_else(|e| panic!("{url}: {e}")), 42);

    eprintln!("without a certificate the password is needed, over TLS or not");
    let (client, _) = pg_client(port, &pki, None, "sslmode=require password=s3cret").await.unwrap();
    assert_eq!(client.query_one("SELECT 41 + 1", &[]).await.unwrap().get::<_, i32>(0), 42);
    for mode in ["require", "disable"] {
        let url = format!("shoal://shoal:s3cret@127.0.0.1:{port}/shoal?sslmode={mode}");
        assert_eq!(query(&url).await.unwrap_or_else(|e| panic!("{url}: {e}")), 42);
        let url = format!("shoal://shoal:wrong@127.0.0.1:{port}/shoal?sslmode={mode}");
        let message = connect_error(query(&url).await, &url);
        assert!(message.contains("28P01"), "{message}");
    }

    eprintln!("another user's certificate is refused, even with the right password");
    let db = refused(pg_client(port, &pki, Some(&other_user), "sslmode=require password=s3cret").await.map(|_| 0));
    assert!(db.message().contains("\"alice\""), "{db}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shoal_cert_auth_accepts_nothing_but_a_certificate() {
    let pki = pki();
    let args = pki.server_args(true, &["--auth", "cert"]);
    let Some(server) = start(&args).await else { return };
    let port = server.pg_port;
    let right = pki.client("shoal", "shoal", false);
    let other_user = pki.client("alice", "alice", false);
    let ca = pki.ca.display();

    eprintln!("the user's certificate logs in, from tokio-postgres and the ORM");
    assert_eq!(pg_connect(port, &pki, Some(&right)).await.unwrap(), 42);
    let files = format!("sslcert={}&sslkey={}", right.cert.display(), right.key.display());
    let url = format!("shoal://shoal@localhost:{port}/shoal?sslmode=verify-full&sslrootcert={ca}&{files}");
    assert_eq!(query(&url).await.unwrap_or_else(|e| panic!("{url}: {e}")), 42);

    eprintln!("TLS without a certificate: 28000 with a hint naming sslcert");
    let db = refused(pg_connect(port, &pki, None).await);
    assert!(db.message().contains("requires a valid client certificate"), "{db}");
    let url = format!("shoal://shoal@127.0.0.1:{port}/shoal?sslmode=require");
    let message = connect_error(query(&url).await, &url);
    assert!(message.contains("28000") && message.contains("sslcert"), "{message}");

    eprintln!("another user's certificate: 28000 naming its CN");
    let db = refused(pg_connect(port, &pki, Some(&other_user)).await);
    assert!(db.message().contains("\"alice\""), "{db}");

    eprintln!("plain, even from loopback: 28000 saying a certificate needs TLS");
    let url = format!("shoal://shoal@127.0.0.1:{port}/shoal?sslmode=disable");
    let message = connect_error(query(&url).await, &url);
    assert!(message.contains("28000") && message.contains("which needs TLS"), "{message}");
    eprintln!("  {message}");
}
