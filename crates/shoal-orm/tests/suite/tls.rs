//! TLS by `sslmode` against a Shoal server started with `--tls-cert` and
//! `--tls-key`, one started without, and the machine's PostgreSQL.
//!
//! ```text
//!   test CA ──signs──▶ server certificate for "localhost" (not for 127.0.0.1)
//!   other CA           signs nothing this server uses
//! ```
//!
//! `require` against a server without TLS must fail, so a `require` that
//! succeeds proves the session was encrypted; `verify-full` must refuse the
//! wrong CA and a host the certificate does not name, while `verify-ca`
//! accepts the latter.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use shoal_orm::prelude::*;

use crate::harness::{self, Kind, ShoalServer};

struct Pki {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    other_ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
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

fn pki() -> Pki {
    let dir = tempfile::Builder::new().prefix("shoal-orm-tls-").tempdir().unwrap();
    let (ca_cert, ca_key, ca_path) = ca(dir.path(), "test-ca");
    let (_, _, other_ca) = ca(dir.path(), "other-ca");
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ca_cert, &ca_key)
        .unwrap();
    let (cert_path, key_path) = (dir.path().join("server.pem"), dir.path().join("server.key"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    Pki { _dir: dir, ca: ca_path, other_ca, cert: cert_path, key: key_path }
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
    let args =
        [OsString::from("--tls-cert"), pki.cert.clone().into(), OsString::from("--tls-key"), pki.key.clone().into()];
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
