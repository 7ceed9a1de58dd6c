//! The admin HTTP API and the command line, through the real binary.
//!
//! Invariants: `/api/status` reports the node and both groups with their
//! Raft positions, and those positions move when a write commits;
//! `/metrics` is Prometheus text with query counters by kind, Raft indexes,
//! fsync figures and connection gauges; every subcommand answers `--help`;
//! `shoal sql -c` runs a statement against a server and reports errors with
//! their SQLSTATE.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;

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
            "data = \"{}\"\npg = \"127.0.0.1:{pg}\"\nrpc = \"127.0.0.1:{rpc}\"\nhttp = \"127.0.0.1:1\"\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    // --http on the command line overrides the file's (unusable) port 1.
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
