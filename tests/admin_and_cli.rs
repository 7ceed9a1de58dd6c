//! The admin HTTP API and the command line, through the real binary.
//!
//! Invariants: `/api/status` reports the node and both groups with their
//! Raft positions, and those positions move when a write commits;
//! `/metrics` is Prometheus text with query counters by kind, Raft indexes,
//! fsync figures and connection gauges; every subcommand answers `--help`;
//! `shoal sql -c` runs a statement against a server and reports errors with
//! their SQLSTATE; `shoal sql` and `shoal cluster` speak TLS as libpq does
//! (`--sslmode`, `--sslrootcert`, `--sslcert`, `--sslkey`, else `PGSSL*`),
//! so a server that requires TLS or logs in by certificate lets them in,
//! and one that refuses them says why and which flag to change; under
//! `prefer` a failed handshake is followed by one attempt without TLS, as
//! psql does, and when that is refused too the error tells both; the
//! interactive `shoal sql` says, as psql does, whether the session is
//! encrypted (`SSL connection (protocol: …, cipher: …)`, at start-up and
//! in `\conninfo`, only when it is).

mod common;

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A plain HTTP/1.0 GET (no client library needed for two endpoints).
fn http_get(port: u16, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to admin HTTP");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").expect("send request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (head.to_string(), body.to_string())
}

fn applied_index(status: &serde_json::Value, kind: &str) -> u64 {
    status["groups"]
        .as_array()
        .and_then(|groups| groups.iter().find(|g| g["kind"] == kind))
        .and_then(|g| g["applied_index"].as_u64())
        .unwrap_or_else(|| panic!("no {kind} group in {status}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn status_and_metrics_follow_writes() {
    let server = common::Server::start().await;
    let (head, body) = http_get(server.http_port, "/api/status");
    assert!(head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"), "{head}");
    let before: serde_json::Value = serde_json::from_str(&body).expect("status is JSON");
    assert_eq!(before["node_id"], 1);
    assert!(before["version"].as_str().unwrap_or_default().contains("Shoal"));
    let groups = before["groups"].as_array().expect("groups");
    assert_eq!(groups.len(), 2, "meta and data groups: {before}");
    for g in groups {
        assert_eq!(g["role"], "leader", "a single node leads every group: {g}");
        assert!(g["term"].as_u64().unwrap_or(0) >= 1);
    }

    let client = server.connect().await;
    client.batch_execute("CREATE TABLE m (id INT PRIMARY KEY); INSERT INTO m VALUES (1), (2)").await.unwrap();
    client.query("SELECT * FROM m", &[]).await.unwrap();
    let _ = client.query("SELECT * FROM no_such_table", &[]).await;

    let (_, body) = http_get(server.http_port, "/api/status");
    let after: serde_json::Value = serde_json::from_str(&body).expect("status is JSON");
    assert!(applied_index(&after, "data") > applied_index(&before, "data"), "writes must advance the data group");
    assert_eq!(after["tables"], 1);
    assert!(after["connections"].as_i64().unwrap_or(0) >= 1);

    let (head, metrics) = http_get(server.http_port, "/metrics");
    assert!(head.to_ascii_lowercase().contains("content-type: text/plain"), "{head}");
    for needle in [
        "shoal_queries_total{kind=\"select\"}",
        "shoal_queries_total{kind=\"ddl\"}",
        "shoal_query_errors_total{kind=\"select\"}",
        "shoal_query_latency_seconds_bucket",
        "shoal_raft_applied_index{group=\"1\"}",
        "shoal_raft_commit_index{group=\"1\"}",
        "shoal_log_fsyncs{group=\"1\"}",
        "shoal_log_fsync_micros{group=\"1\"}",
        "shoal_write_batch_statements{group=\"1\"}",
        "shoal_raft_proposals_committed{group=\"1\"}",
        "shoal_raft_proposal_micros{group=\"1\"}",
        "shoal_connections ",
    ] {
        assert!(metrics.contains(needle), "missing {needle} in /metrics:\n{metrics}");
    }
}

#[test]
fn every_subcommand_has_help() {
    for args in [
        vec!["--help"],
        vec!["server", "--help"],
        vec!["demo", "--help"],
        vec!["sql", "--help"],
        vec!["bench", "--help"],
        vec!["bench-cluster", "--help"],
        vec!["cluster", "--help"],
        vec!["cluster", "status", "--help"],
        vec!["cluster", "verify", "--help"],
        vec!["cluster", "add-node", "--help"],
        vec!["cluster", "remove-node", "--help"],
        vec!["cluster", "replication-factor", "--help"],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_shoal")).args(&args).output().expect("run shoal");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "shoal {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
        assert!(stdout.contains("Usage:"), "shoal {args:?}:\n{stdout}");
    }
    let output = Command::new(env!("CARGO_BIN_EXE_shoal")).args(["server", "--pg", "not-an-address"]).output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("invalid value"), "a bad flag must say what is wrong");
}

#[tokio::test(flavor = "multi_thread")]
async fn sql_shell_runs_one_command() {
    let server = common::Server::start().await;
    let shoal = env!("CARGO_BIN_EXE_shoal");
    let port = server.pg_port.to_string();
    let output = Command::new(shoal)
        .args(["sql", "--port", &port, "-c", "SELECT 40 + 2 AS answer, 'x' || 'y' AS s"])
        .output()
        .expect("run shoal sql");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("answer") && stdout.contains("42") && stdout.contains("xy"), "{stdout}");
    assert!(stdout.contains("(1 row)"), "{stdout}");

    let output = Command::new(shoal).args(["sql", "--port", &port, "-c", "SELECT * FROM missing"]).output().unwrap();
    assert!(!output.status.success(), "an error must give a non-zero exit");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("42P01") && stderr.contains("missing"), "{stderr}");
}

/// `shoal cluster` against one node: status lists it, verify agrees (exit
/// 0), a membership change on a node that does not exist fails with its
/// SQLSTATE and a non-zero exit.
#[tokio::test(flavor = "multi_thread")]
async fn cluster_commands_on_one_node() {
    let server = common::Server::start().await;
    let shoal = env!("CARGO_BIN_EXE_shoal");
    let port = server.pg_port.to_string();
    let run = |args: &[&str]| Command::new(shoal).args(args).output().expect("run shoal cluster");
    let status = run(&["cluster", "status", "--port", &port]);
    let stdout = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    assert!(stdout.contains("is_live") && stdout.contains("leader"), "{stdout}");
    let verify = run(&["cluster", "verify", "--port", &port]);
    let stdout = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success(), "{stdout}{}", String::from_utf8_lossy(&verify.stderr));
    assert!(stdout.contains("all replicas agree"), "{stdout}");
    let remove = run(&["cluster", "remove-node", "7", "--port", &port]);
    assert!(!remove.status.success());
    let stderr = String::from_utf8_lossy(&remove.stderr);
    assert!(stderr.contains("42704") && stderr.contains("node 7"), "{stderr}");
    let factor = run(&["cluster", "replication-factor", "1", "--port", &port]);
    let stdout = String::from_utf8_lossy(&factor.stdout);
    assert!(factor.status.success(), "{}", String::from_utf8_lossy(&factor.stderr));
    assert!(stdout.contains("replication factor is now 1"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn config_file_settings_apply_and_flags_win() {
    let [pg, rpc, http] = common::free_ports();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("shoal.toml");
    std::fs::write(
        &config,
        format!(
            "data = \"{}\"\npg = \"127.0.0.1:{pg}\"\nrpc = \"127.0.0.1:{rpc}\"\nhttp = \"127.0.0.1:1\"\nworker-threads = 1\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    // --http on the command line overrides the file's (unusable) port 1;
    // the file's one worker thread is enough to serve.
    let mut child = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["server", "--config", config.to_str().unwrap(), "--http", &format!("127.0.0.1:{http}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let conn = format!("host=127.0.0.1 port={pg} user=shoal dbname=shoal");
    let mut connected = false;
    for _ in 0..150 {
        if let Ok(client) = common::connect_to(&conn).await {
            let row = client.query_one("SELECT 1", &[]).await.unwrap();
            connected = row.get::<_, i32>(0) == 1;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (head, _) = http_get(http, "/api/status");
    let _ = child.kill();
    let _ = child.wait();
    assert!(connected, "the server must listen on the config file's pg address");
    assert!(head.contains("200"), "the --http flag must win over the file: {head}");
    assert!(dir.path().join("data").join("node.json").exists(), "data dir from the config file");

    // A config file with an unknown key is refused with a message naming it.
    std::fs::write(&config, "bogus = 1\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["server", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("bogus"));

    // A node needs at least one worker thread.
    let output = Command::new(env!("CARGO_BIN_EXE_shoal")).args(["server", "--worker-threads", "0"]).output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--worker-threads"), "{output:?}");
}

/// A client-TLS file that is missing or holds no certificate, or a client
/// CA without a server certificate, stops `shoal server` at start with a
/// message naming the problem (flag or config file alike).
#[test]
fn bad_client_tls_files_stop_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap().self_signed(&key).unwrap();
    let (cert_path, key_path) = (dir.path().join("server.crt"), dir.path().join("server.key"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let (empty, missing, config) =
        (dir.path().join("empty.pem"), dir.path().join("missing.pem"), dir.path().join("shoal.toml"));
    std::fs::write(&empty, "").unwrap();
    std::fs::write(&config, format!("tls-client-ca = \"{}\"\n", empty.display())).unwrap();
    let tls = ["--tls-cert", cert_path.to_str().unwrap(), "--tls-key", key_path.to_str().unwrap()];
    let cases: Vec<(Vec<&str>, String)> = vec![
        (
            [&tls[..], &["--tls-client-ca", missing.to_str().unwrap()]].concat(),
            format!("cannot read TLS client CA {}", missing.display()),
        ),
        ([&tls[..], &["--config", config.to_str().unwrap()]].concat(), "no certificate found in TLS client CA".into()),
        (vec!["--tls-client-ca", cert_path.to_str().unwrap()], "--tls-client-ca needs TLS".into()),
    ];
    for (args, needle) in cases {
        refused_at_start(dir.path(), &args, &needle);
    }
}

/// Runs `shoal server` with `args` (and its own ports and data directory
/// under `dir`) and checks that it refuses to start, saying `needle`,
/// before touching the data directory.
fn refused_at_start(dir: &std::path::Path, args: &[&str], needle: &str) {
    let [pg, rpc, http] = common::free_ports();
    let data = dir.join("data");
    let output = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["server", "--data", data.to_str().unwrap()])
        .args(["--pg", &format!("127.0.0.1:{pg}"), "--rpc", &format!("127.0.0.1:{rpc}")])
        .args(["--http", &format!("127.0.0.1:{http}")])
        .args(args)
        .env_remove("SHOAL_PASSWORD")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{args:?} must not start: {stderr}");
    assert!(stderr.contains(needle), "{args:?}: expected {needle:?} in {stderr}");
    assert!(!data.exists(), "{args:?}: refused before touching the data directory");
}

/// `--tls-required` and `--auth cert`/`cert-or-password` without what they
/// need, or with what they would ignore, stop `shoal server` at start with
/// a message naming the options to fix (flag or config file alike).
#[test]
fn tls_required_and_cert_auth_need_their_settings() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca.self_signed(&key).unwrap();
    let cert =
        rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap().signed_by(&key, &ca, &key).unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    std::fs::write(path("ca.crt"), ca.pem()).unwrap();
    std::fs::write(path("server.crt"), cert.pem()).unwrap();
    std::fs::write(path("server.key"), key.serialize_pem()).unwrap();
    std::fs::write(path("required.toml"), "tls-required = true\n").unwrap();
    std::fs::write(path("bad-auth.toml"), "auth = \"trust\"\n").unwrap();
    std::fs::write(path("cert-auth.toml"), "auth = \"cert\"\n").unwrap();
    let (cert, key, ca) = (path("server.crt"), path("server.key"), path("ca.crt"));
    let (required, bad_auth, cert_auth) = (path("required.toml"), path("bad-auth.toml"), path("cert-auth.toml"));
    let tls = ["--tls-cert", &cert, "--tls-key", &key];
    let with_ca = [&tls[..], &["--tls-client-ca", &ca]].concat();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--tls-required"], "--tls-required needs TLS: give --tls-cert and --tls-key"),
        (vec!["--config", &required], "--tls-required needs TLS"),
        (
            [&tls[..], &["--auth", "cert"]].concat(),
            "--auth cert logs clients in by certificate, so it needs --tls-client-ca",
        ),
        ([&tls[..], &["--config", &cert_auth]].concat(), "needs --tls-client-ca"),
        ([&with_ca[..], &["--auth", "cert", "--password", "x"]].concat(), "--auth cert never asks for a password"),
        ([&with_ca[..], &["--auth", "cert-or-password"]].concat(), "--auth cert-or-password needs --password"),
        (vec!["--auth", "trust"], "invalid authentication method \"trust\""),
        (vec!["--config", &bad_auth], "invalid authentication method \"trust\""),
    ];
    for (args, needle) in cases {
        refused_at_start(dir.path(), &args, needle);
    }
}

/// Settings in the startup packet's `options` (libpq's PGOPTIONS) apply as
/// SET; a bad one refuses the connection with the setting's error.
#[tokio::test]
async fn startup_options_set_session_settings() {
    let server = common::Server::start().await;
    let with = |options: &str| format!("{} options='{options}'", server.conn_string());
    let client = server
        .try_connect(&with("-c shoal.read_consistency=follower -c application_name=from\\\\ options"))
        .await
        .expect("connect with options");
    let level: String = client.query_one("SHOW shoal.read_consistency", &[]).await.unwrap().get(0);
    assert_eq!(level, "follower");
    let name: String = client.query_one("SHOW application_name", &[]).await.unwrap().get(0);
    assert_eq!(name, "from options");
    let err = server.try_connect(&with("-c shoal.read_consistency=eventual")).await.expect_err("bad value");
    assert_eq!(err.code().map(|c| c.code()), Some("22023"), "{err}");
    let err = server.try_connect(&with("-D /tmp")).await.expect_err("not a -c option");
    assert_eq!(err.code().map(|c| c.code()), Some("08P01"), "{err}");
}

/// A test CA, a server certificate for "localhost" it signed, and a client
/// certificate it signed for CN=shoal (the server's user), as PEM files;
/// the client key is 0600, as libpq and `shoal sql` insist. `home` is an
/// empty home directory for the CLI, so no `~/.postgresql` of the machine
/// takes part.
struct Pki {
    dir: tempfile::TempDir,
    ca: PathBuf,
    /// A CA that signed nothing here: as `--sslrootcert`, every handshake
    /// with the server fails.
    other_ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    home: PathBuf,
}

fn pki() -> Pki {
    let dir = tempfile::Builder::new().prefix("shoal-cli-tls-").tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name.push(rcgen::DnType::CommonName, "test-ca");
    let ca = ca.self_signed(&ca_key).unwrap();
    let other_ca_key = rcgen::KeyPair::generate().unwrap();
    let mut other_ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    other_ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    other_ca.distinguished_name.push(rcgen::DnType::CommonName, "other-ca");
    let other_ca = other_ca.self_signed(&other_ca_key).unwrap();
    let server_key = rcgen::KeyPair::generate().unwrap();
    let server = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&server_key, &ca, &ca_key)
        .unwrap();
    let client_key = rcgen::KeyPair::generate().unwrap();
    let mut client = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    client.distinguished_name = rcgen::DistinguishedName::new();
    client.distinguished_name.push(rcgen::DnType::CommonName, common::USER);
    client.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let client = client.signed_by(&client_key, &ca, &ca_key).unwrap();
    for (name, pem) in [
        ("ca.pem", ca.pem()),
        ("other-ca.pem", other_ca.pem()),
        ("server.crt", server.pem()),
        ("server.key", server_key.serialize_pem()),
        ("shoal.crt", client.pem()),
        ("shoal.key", client_key.serialize_pem()),
    ] {
        std::fs::write(path(name), pem).unwrap();
    }
    set_mode(&path("shoal.key"), 0o600);
    std::fs::create_dir(path("home")).unwrap();
    Pki {
        ca: path("ca.pem"),
        other_ca: path("other-ca.pem"),
        server_cert: path("server.crt"),
        server_key: path("server.key"),
        client_cert: path("shoal.crt"),
        client_key: path("shoal.key"),
        home: path("home"),
        dir,
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

impl Pki {
    /// `--tls-cert … --tls-key …` and `more`, for `shoal server`.
    fn server_args(&self, more: &[&str]) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            "--tls-cert".into(),
            self.server_cert.clone().into(),
            "--tls-key".into(),
            self.server_key.clone().into(),
        ];
        args.extend(more.iter().map(OsString::from));
        args
    }

    /// `shoal <args>` with only the `PGSSL*` variables in `env` (none of
    /// this machine's), no SHOAL_PASSWORD, and the empty home directory.
    fn run(&self, args: &[&str], env: &[(&str, &Path)]) -> Output {
        self.command(args, env).output().expect("run shoal")
    }

    /// [`Pki::run`] of an interactive `shoal sql`, typing `input` (through
    /// a pipe, as a script would).
    fn run_typing(&self, args: &[&str], input: &str) -> Output {
        let mut child = self
            .command(args, &[])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run shoal");
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        child.wait_with_output().expect("shoal sql ends at \\q")
    }

    fn command(&self, args: &[&str], env: &[(&str, &Path)]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_shoal"));
        command.args(args).env("HOME", &self.home).env_remove("SHOAL_PASSWORD");
        for var in ["PGSSLMODE", "PGSSLROOTCERT", "PGSSLCERT", "PGSSLKEY"] {
            command.env_remove(var);
        }
        for (var, value) in env {
            command.env(var, value);
        }
        command
    }
}

/// The command succeeded and printed `SELECT 1 AS one`'s table.
#[track_caller]
fn printed_one(output: &Output, what: &str) {
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{what}: failed: {stderr}");
    assert!(stdout.contains("one") && stdout.contains("(1 row)"), "{what}: {stdout}");
}

/// The command failed; its stderr.
#[track_caller]
fn refused(output: &Output, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(!output.status.success(), "{what}: must fail, printed {}", String::from_utf8_lossy(&output.stdout));
    eprintln!("  {what}: {}", stderr.trim_end().replace('\n', "\n  "));
    stderr
}

/// `shoal sql --port <port> -c 'SELECT 1 AS one' <more>`.
fn sql_one<'a>(port: &'a str, more: &[&'a str]) -> Vec<&'a str> {
    [&["sql", "--port", port, "-c", "SELECT 1 AS one"][..], more].concat()
}

/// Against `--tls-required`: every TLS mode connects (so the session was
/// encrypted: the server refuses any other), `disable` — by flag or by
/// `PGSSLMODE` — gets the server's FATAL 28000 and a hint naming what to
/// change, and the flag wins over the variable, as in libpq.
#[tokio::test(flavor = "multi_thread")]
async fn sql_shell_speaks_tls_to_a_server_that_requires_it() {
    let pki = pki();
    let server = common::Server::start_with_args(&pki.server_args(&["--tls-required"]), "sslmode=require").await;
    let port = server.pg_port.to_string();
    let ca = pki.ca.to_str().unwrap();

    eprintln!("--sslmode require, and prefer (the default): TLS, so the server lets them in");
    printed_one(&pki.run(&sql_one(&port, &["--sslmode", "require"]), &[]), "--sslmode require");
    printed_one(&pki.run(&sql_one(&port, &[]), &[]), "no --sslmode");

    eprintln!("--sslmode verify-full checks the certificate against --sslrootcert and the host name");
    printed_one(
        &pki.run(&sql_one(&port, &["--host", "localhost", "--sslmode", "verify-full", "--sslrootcert", ca]), &[]),
        "verify-full",
    );
    let stderr =
        refused(&pki.run(&sql_one(&port, &["--sslmode", "verify-full", "--sslrootcert", ca]), &[]), "wrong host");
    assert!(stderr.contains("--sslmode=verify-full") && stderr.contains("not valid for name"), "{stderr}");

    eprintln!(
        "prefer whose handshake fails (--sslrootcert of a CA that did not sign the server's certificate): \
         the second attempt, without TLS, meets the server's 28000, and the error tells both"
    );
    let other = pki.other_ca.to_str().unwrap();
    let stderr = refused(&pki.run(&sql_one(&port, &["--sslrootcert", other]), &[]), "prefer, other CA");
    assert!(
        stderr.contains("TLS with --sslmode=prefer (the server's certificate must chain to")
            && stderr.contains("UnknownIssuer")
            && stderr.contains("without TLS: the server refused the connection: 28000")
            && stderr.contains("this server requires TLS"),
        "{stderr}"
    );
    assert!(stderr.contains("hint: the server accepts only TLS connections, and the TLS handshake failed"), "{stderr}");

    eprintln!("--sslmode disable: the server's SQLSTATE and message, and a hint naming the flag");
    let stderr = refused(&pki.run(&sql_one(&port, &["--sslmode", "disable"]), &[]), "--sslmode disable");
    assert!(stderr.contains("28000") && stderr.contains("this server requires TLS"), "{stderr}");
    assert!(stderr.contains("--sslmode=disable turns TLS off: use --sslmode require"), "{stderr}");

    eprintln!("PGSSLMODE: require connects, disable is refused with a hint naming the variable");
    let env_mode = |mode: &'static str| [("PGSSLMODE", Path::new(mode))];
    printed_one(&pki.run(&sql_one(&port, &[]), &env_mode("require")), "PGSSLMODE=require");
    let stderr = refused(&pki.run(&sql_one(&port, &[]), &env_mode("disable")), "PGSSLMODE=disable");
    assert!(stderr.contains("28000") && stderr.contains("PGSSLMODE=disable turns TLS off"), "{stderr}");

    eprintln!("the flag wins over PGSSLMODE");
    printed_one(&pki.run(&sql_one(&port, &["--sslmode", "require"]), &env_mode("disable")), "--sslmode over PGSSLMODE");

    eprintln!("a mode libpq does not know is refused before connecting, naming where it came from");
    let stderr = refused(&pki.run(&sql_one(&port, &["--sslmode", "verify"]), &[]), "--sslmode verify");
    assert!(stderr.contains("--sslmode") && stderr.contains("invalid sslmode \"verify\""), "{stderr}");
    let stderr = refused(&pki.run(&sql_one(&port, &[]), &env_mode("verify")), "PGSSLMODE=verify");
    assert!(stderr.contains("invalid PGSSLMODE \"verify\""), "{stderr}");

    eprintln!("shoal cluster takes the same flags");
    let status = pki.run(&["cluster", "status", "--port", &port, "--sslmode", "require"], &[]);
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    assert!(String::from_utf8_lossy(&status.stdout).contains("is_live"));
    let stderr = refused(&pki.run(&["cluster", "verify", "--port", &port, "--sslmode", "disable"], &[]), "cluster");
    assert!(stderr.contains("28000") && stderr.contains("--sslmode require"), "{stderr}");
}

/// Against `--auth cert`: a certificate the CA signed for CN=shoal, by
/// flags or by `PGSSLCERT`/`PGSSLKEY`, logs in with no password; without
/// one the server's 28000 comes with a hint naming the flags; a key others
/// may read is refused before connecting.
#[tokio::test(flavor = "multi_thread")]
async fn sql_shell_logs_in_by_client_certificate() {
    let pki = pki();
    let (cert, key) = (pki.client_cert.to_str().unwrap(), pki.client_key.to_str().unwrap());
    let args = pki.server_args(&["--tls-client-ca", pki.ca.to_str().unwrap(), "--auth", "cert"]);
    let server = common::Server::start_with_args(&args, &format!("sslmode=require sslcert={cert} sslkey={key}")).await;
    let port = server.pg_port.to_string();

    eprintln!("--sslcert and --sslkey (CN=shoal): logged in without a password, with require or the default");
    printed_one(&pki.run(&sql_one(&port, &["--sslmode", "require", "--sslcert", cert, "--sslkey", key]), &[]), "flags");
    printed_one(&pki.run(&sql_one(&port, &["--sslcert", cert, "--sslkey", key]), &[]), "flags, default sslmode");

    eprintln!("PGSSLCERT and PGSSLKEY do the same");
    let files = [("PGSSLCERT", pki.client_cert.as_path()), ("PGSSLKEY", pki.client_key.as_path())];
    printed_one(&pki.run(&sql_one(&port, &[]), &files), "PGSSLCERT/PGSSLKEY");

    eprintln!("no certificate: the server's 28000 and a hint naming --sslcert and --sslkey");
    let stderr = refused(&pki.run(&sql_one(&port, &["--sslmode", "require"]), &[]), "no certificate");
    assert!(stderr.contains("28000") && stderr.contains("requires a valid client certificate"), "{stderr}");
    assert!(stderr.contains("--sslcert <PEM file> --sslkey <PEM file>"), "{stderr}");

    eprintln!("plain: the certificate login needs TLS, and the hint says how to turn it on");
    let stderr = refused(&pki.run(&sql_one(&port, &["--sslmode", "disable"]), &[]), "plain");
    assert!(
        stderr.contains("28000") && stderr.contains("use --sslmode require and a client certificate (--sslcert"),
        "{stderr}"
    );

    eprintln!("a key file others may read is refused before connecting, naming the flag");
    let open_key = pki.dir.path().join("open.key");
    std::fs::copy(&pki.client_key, &open_key).unwrap();
    set_mode(&open_key, 0o644);
    let stderr = refused(
        &pki.run(&sql_one(&port, &["--sslcert", cert, "--sslkey", open_key.to_str().unwrap()]), &[]),
        "open key",
    );
    assert!(stderr.contains("--sslkey") && stderr.contains("group or world access"), "{stderr}");
}

/// What an interactive `shoal sql` types: psql's `\conninfo`, a query, `\q`.
const TYPED: &str = "\\conninfo\nSELECT 1 AS one;\n\\q\n";

/// Succeeded, answered [`TYPED`]'s `\conninfo` and query; its stdout.
#[track_caller]
fn answered(output: &Output, port: &str, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(output.status.success(), "{what}: failed: {}", String::from_utf8_lossy(&output.stderr));
    let conninfo =
        format!("You are connected to database \"shoal\" as user \"shoal\" on host \"127.0.0.1\" at port \"{port}\".");
    assert!(stdout.contains(&conninfo) && stdout.contains("(1 row)"), "{what}: {stdout}");
    stdout
}

/// As psql: the interactive shell prints `SSL connection (protocol: …,
/// cipher: …)` at start-up and in `\conninfo` for an encrypted session, and
/// nothing of the kind for a plain one; `-c` prints only the result.
#[tokio::test(flavor = "multi_thread")]
async fn sql_shell_says_whether_the_session_is_encrypted() {
    let pki = pki();
    let tls_server = common::Server::start_with_args(&pki.server_args(&[]), "sslmode=require").await;
    let plain_server = common::Server::start().await;
    let (tls_port, plain_port) = (tls_server.pg_port.to_string(), plain_server.pg_port.to_string());
    let ssl = "SSL connection (protocol: TLSv1.3, cipher: TLS13_";

    eprintln!("prefer (the default) against a server with TLS: encrypted, said at start-up and by \\conninfo");
    let stdout = answered(&pki.run_typing(&["sql", "--port", &tls_port], TYPED), &tls_port, "TLS");
    assert_eq!(stdout.matches(ssl).count(), 2, "{stdout}");
    let start_up = stdout.lines().nth(1).unwrap_or_default();
    assert!(start_up.starts_with(ssl) && start_up.ends_with(')'), "the line after the banner: {stdout}");

    eprintln!("-c: the result only, as psql -c");
    let output = pki.run(&sql_one(&tls_port, &[]), &[]);
    printed_one(&output, "-c over TLS");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("SSL connection"));

    eprintln!("plain sessions say nothing of TLS: --sslmode disable, and prefer against a server without TLS");
    for (port, more, what) in
        [(&tls_port, &["--sslmode", "disable"][..], "disable"), (&plain_port, &[][..], "server without TLS")]
    {
        let stdout = answered(&pki.run_typing(&[&["sql", "--port", port][..], more].concat(), TYPED), port, what);
        assert!(!stdout.contains("SSL connection"), "{what}: {stdout}");
    }
}

/// `prefer` as psql: a handshake that fails after the server agreed to TLS
/// (here the server's certificate does not chain to `--sslrootcert`) is
/// followed by one attempt without TLS, which this server (TLS offered,
/// not required) lets in; `require` and `verify-ca` stop at the handshake.
#[tokio::test(flavor = "multi_thread")]
async fn sql_shell_with_prefer_tries_without_tls_after_a_failed_handshake() {
    let pki = pki();
    let server = common::Server::start_with_args(&pki.server_args(&[]), "sslmode=require").await;
    let port = server.pg_port.to_string();
    let other = pki.other_ca.to_str().unwrap();

    eprintln!("prefer with a CA that did not sign the server's certificate: a plain session, so no SSL line");
    let args = ["sql", "--port", &port, "--sslmode", "prefer", "--sslrootcert", other];
    let stdout = answered(&pki.run_typing(&args, TYPED), &port, "prefer, other CA");
    assert!(!stdout.contains("SSL connection"), "{stdout}");
    printed_one(&pki.run(&sql_one(&port, &["--sslrootcert", other]), &[]), "-c, prefer by default, other CA");

    eprintln!("require and verify-ca with that CA: the failed handshake is the answer");
    for mode in ["require", "verify-ca"] {
        let stderr = refused(&pki.run(&sql_one(&port, &["--sslmode", mode, "--sslrootcert", other]), &[]), mode);
        assert!(
            stderr.contains(&format!("TLS with --sslmode={mode}"))
                && stderr.contains("UnknownIssuer")
                && !stderr.contains("without TLS"),
            "{stderr}"
        );
    }
}
