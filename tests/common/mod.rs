//! Shared harness of the end-to-end tests: runs the real `shoal` binary as a
//! child process on its own ports and data directory.
//!
//! ```text
//!   test ──tokio-postgres──▶ 127.0.0.1:<pg port>   ┐
//!                            127.0.0.1:<rpc port>  ├─ `shoal server` (child process)
//!                            127.0.0.1:<http port> ┘     │
//!                                                        ├─ <tempdir>/data    (survives kill9 + restart)
//!                                                        └─ <tempdir>/server.log (stdout + stderr, all runs)
//! ```
//!
//! The child is SIGKILLed when the [`Server`] is dropped, so no test leaves a
//! process behind, and the temp dir is removed afterwards. When the test is
//! panicking, the server's log is printed first so the failure explains itself.

#![allow(dead_code)] // each test binary uses a different subset of the harness

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio_postgres::{Client, NoTls};

/// How long a starting server may take to accept a query.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Bytes of the server log printed when a test fails.
const LOG_TAIL_BYTES: usize = 64 * 1024;

/// The user Shoal's clients authenticate as.
pub const USER: &str = "shoal";

/// One `shoal server` child process and the directory it owns.
pub struct Server {
    pub pg_port: u16,
    pub rpc_port: u16,
    pub http_port: u16,
    password: Option<String>,
    /// More `shoal server` flags (`--tls-cert …`), for every start.
    server_args: Vec<OsString>,
    /// libpq TLS options the test's own connections add to
    /// [`Server::conn_string`] (`sslmode=require sslcert=…`); empty: plain.
    client_tls: String,
    data_dir: PathBuf,
    log_path: PathBuf,
    child: Option<Child>,
    /// Declared last: removed only after `Drop::drop` has killed the child.
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts a fresh node (trust authentication for loopback clients) and
    /// waits until it answers a query.
    pub async fn start() -> Server {
        Server::start_with(None).await
    }

    /// Starts a fresh node that requires `password` (SCRAM-SHA-256).
    pub async fn start_with_password(password: &str) -> Server {
        Server::start_with(Some(password.to_string())).await
    }

    /// Starts a fresh node with more `shoal server` flags (`--tls-cert …
    /// --tls-required`), whose sessions — the readiness probe's and
    /// [`Server::connect`]'s — add the libpq TLS options `client_tls`
    /// (`sslmode=require sslcert=… sslkey=…`) to their connection string.
    pub async fn start_with_args(server_args: &[OsString], client_tls: &str) -> Server {
        Server::start_configured(None, server_args.to_vec(), client_tls.to_string()).await
    }

    async fn start_with(password: Option<String>) -> Server {
        Server::start_configured(password, Vec::new(), String::new()).await
    }

    async fn start_configured(password: Option<String>, server_args: Vec<OsString>, client_tls: String) -> Server {
        let dir = tempfile::Builder::new().prefix("shoal-test-").tempdir().expect("create temp dir");
        let [pg_port, rpc_port, http_port] = free_ports();
        let mut server = Server {
            pg_port,
            rpc_port,
            http_port,
            password,
            server_args,
            client_tls,
            data_dir: dir.path().join("data"),
            log_path: dir.path().join("server.log"),
            child: None,
            _dir: dir,
        };
        server.spawn();
        server.wait_ready().await;
        server
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// `host=… port=… user=shoal dbname=shoal [password=…] [TLS options]`.
    pub fn conn_string(&self) -> String {
        let mut s = format!("host=127.0.0.1 port={} user={USER} dbname=shoal connect_timeout=10", self.pg_port);
        if let Some(pw) = &self.password {
            s.push_str(&format!(" password={pw}"));
        }
        if !self.client_tls.is_empty() {
            s.push(' ');
            s.push_str(&self.client_tls);
        }
        s
    }

    /// A new client session; panics (with the server log) if it cannot connect.
    pub async fn connect(&self) -> Client {
        match self.try_connect(&self.conn_string()).await {
            Ok(client) => client,
            Err(e) => panic!("connect to shoal on port {}: {e}", self.pg_port),
        }
    }

    /// Connects with an explicit connection string (for authentication tests).
    pub async fn try_connect(&self, conn_string: &str) -> Result<Client, tokio_postgres::Error> {
        if self.client_tls.is_empty() {
            connect_to(conn_string).await
        } else {
            connect_tls(conn_string).await
        }
    }

    /// SIGKILLs the node (`Child::kill` sends SIGKILL on unix) and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the node again on the same data directory and ports, and waits
    /// until it answers a query. Kills a still-running child first.
    pub async fn restart(&mut self) {
        self.kill9();
        self.spawn();
        self.wait_ready().await;
    }

    /// The last part of the server log (all runs of this node).
    pub fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = File::open(&self.log_path) {
            let _ = file.read_to_string(&mut text);
        }
        if text.len() > LOG_TAIL_BYTES {
            let mut start = text.len() - LOG_TAIL_BYTES;
            while !text.is_char_boundary(start) {
                start += 1;
            }
            text = format!("[… earlier log omitted …]\n{}", &text[start..]);
        }
        text
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "spawn while a child is running");
        let log = OpenOptions::new().create(true).append(true).open(&self.log_path).expect("open server log");
        let log_err = log.try_clone().expect("clone log handle");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_shoal"));
        cmd.arg("server")
            .arg("--data")
            .arg(&self.data_dir)
            .arg("--pg")
            .arg(format!("127.0.0.1:{}", self.pg_port))
            .arg("--rpc")
            .arg(format!("127.0.0.1:{}", self.rpc_port))
            .arg("--http")
            .arg(format!("127.0.0.1:{}", self.http_port))
            .args(&self.server_args)
            .env_remove("SHOAL_PASSWORD")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err));
        if let Some(pw) = &self.password {
            cmd.arg("--password").arg(pw);
        }
        let child = cmd.spawn().expect("spawn shoal server");
        self.child = Some(child);
    }

    /// Polls with real connections until one runs `SELECT 1`, the child exits,
    /// or [`READY_TIMEOUT`] passes.
    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("shoal server exited during startup ({status}); log:\n{}", self.log_tail());
                }
            }
            let last_error = match self.try_connect(&self.conn_string()).await {
                Ok(client) => match client.simple_query("SELECT 1").await {
                    Ok(_) => return,
                    Err(e) => e.to_string(),
                },
                Err(e) => e.to_string(),
            };
            if Instant::now() > deadline {
                panic!(
                    "shoal server not ready on port {} after {READY_TIMEOUT:?} ({last_error}); log:\n{}",
                    self.pg_port,
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!(
                "===== shoal server log ({}) =====\n{}\n===== end of log =====",
                self.log_path.display(),
                self.log_tail()
            );
        }
    }
}

/// Connects and drives the connection on a background task.
pub async fn connect_to(conn_string: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(conn_string, NoTls).await?;
    tokio::spawn(async move {
        // Errors surface through the client's next call; nothing to do here.
        let _ = connection.await;
    });
    Ok(client)
}

/// Connects with the libpq TLS options in `conn_string` (`sslmode`,
/// `sslrootcert`, `sslcert`, `sslkey`, read by `shoal-pgtls`; the
/// environment is not consulted, so `PGSSL*` of the machine cannot take
/// part) and drives the connection on a background task. Panics on a bad
/// option: that is the test's mistake.
pub async fn connect_tls(conn_string: &str) -> Result<Client, tokio_postgres::Error> {
    let split = shoal_pgtls::split_conninfo(conn_string, &|_| None).expect("TLS options of a test");
    let mut config: tokio_postgres::Config = split.conninfo.parse()?;
    let tls = shoal_pgtls::Tls::new(split.tls, &mut config).expect("TLS files of a test");
    let shoal_pgtls::Session { client, connection, .. } =
        tls.connect(&config).await.map_err(shoal_pgtls::ConnectError::into_error)?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Three distinct free loopback ports: bound together (so they differ) and
/// released for the server to take. Never a well-known database port.
pub fn free_ports() -> [u16; 3] {
    loop {
        let listeners: Vec<TcpListener> =
            (0..3).map(|_| TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port")).collect();
        let ports: Vec<u16> = listeners.iter().map(|l| l.local_addr().expect("local addr").port()).collect();
        if ports.iter().all(|p| ![5432, 5433, 5434, 3306].contains(p)) {
            return [ports[0], ports[1], ports[2]];
        }
    }
}

/// The SQLSTATE of a database error, or `None` for connection-level errors.
pub fn sqlstate(e: &tokio_postgres::Error) -> Option<String> {
    e.as_db_error().map(|db| db.code().code().to_string())
}

/// Renders an error as `SQLSTATE message`, the form the tests match on.
pub fn render_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} {}", db.code().code(), db.message()),
        None => format!("connection error: {e}"),
    }
}

/// Asserts that `result` is an error with SQLSTATE `code`.
#[track_caller]
pub fn assert_sqlstate<T: std::fmt::Debug>(result: Result<T, tokio_postgres::Error>, code: &str, what: &str) {
    match result {
        Ok(v) => panic!("{what}: expected SQLSTATE {code}, but it succeeded: {v:?}"),
        Err(e) => assert_eq!(
            sqlstate(&e).as_deref(),
            Some(code),
            "{what}: expected SQLSTATE {code}, got {}",
            render_error(&e)
        ),
    }
}
