//! Opens a fresh, isolated database of each backend for one test case.
//!
//! ```text
//!   sqlite    sqlite::memory:                      (always available)
//!   postgres  127.0.0.1:5432 db test, schema orm_<case>_<pid>_<n>   dropped afterwards
//!   mysql     127.0.0.1:3306 database orm_<case>_<pid>_<n>          dropped afterwards
//!   shoal     a `shoal server` child on free ports in 24000-24999   killed afterwards
//! ```
//!
//! A backend that cannot be reached is skipped with a printed reason —
//! unless `SHOAL_REQUIRE_EXTERNAL=1`, which turns the skip into a failure
//! (CI sets it). Every statement the ORM sends is recorded, so cases can
//! assert how many queries an operation issued. Strict mode is on.

#![allow(dead_code)] // not every case uses every helper

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shoal_orm::{Db, Options};

/// The repetition limit strict mode runs with in the suite.
pub const STRICT_LIMIT: u32 = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
    Mysql,
    Shoal,
}

pub struct TestDb {
    pub db: Db,
    pub kind: Kind,
    pub url: String,
    log: Arc<Mutex<Vec<String>>>,
    cleanup: Option<Cleanup>,
    _server: Option<ShoalServer>,
}

enum Cleanup {
    PgSchema(String),
    MysqlDatabase(String),
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub fn required() -> bool {
    std::env::var("SHOAL_REQUIRE_EXTERNAL").is_ok_and(|v| v == "1")
}

pub fn skip(kind: Kind, case: &str, reason: String) -> Option<TestDb> {
    if required() {
        panic!("{kind:?} is required (SHOAL_REQUIRE_EXTERNAL=1) but unavailable for {case}: {reason}");
    }
    eprintln!("SKIP {case} on {kind:?}: {reason}");
    None
}

fn unique_name(case: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let short: String = case.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(24).collect();
    format!("orm_{short}_{}_{n}", std::process::id())
}

fn recording_options(log: &Arc<Mutex<Vec<String>>>) -> Options {
    let log = log.clone();
    Options::default().strict(STRICT_LIMIT).on_statement(move |e| {
        if let Ok(mut l) = log.lock() {
            l.push(e.sql.to_string());
        }
    })
}

const PG_USERS: [&str; 2] = ["postgres", "root"];

pub async fn pg_admin() -> Result<(tokio_postgres::Client, &'static str), String> {
    let mut last = String::new();
    for user in PG_USERS {
        let conn = format!("host=127.0.0.1 port=5432 user={user} dbname=test connect_timeout=5");
        match tokio_postgres::connect(&conn, tokio_postgres::NoTls).await {
            Ok((client, connection)) => {
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                return Ok((client, user));
            }
            Err(e) => last = format!("PostgreSQL at 127.0.0.1:5432 as {user}: {e}"),
        }
    }
    Err(last)
}

const MYSQL_ADMIN_URL: &str = "mysql://root@127.0.0.1:3306/test";

/// Opens a fresh database of `kind` for `case`, or `None` (skip).
pub async fn open(kind: Kind, case: &str) -> Option<TestDb> {
    open_with(kind, case, |o| o).await
}

/// Like [`open`], adjusting the options first.
pub async fn open_with(kind: Kind, case: &str, adjust: impl FnOnce(Options) -> Options) -> Option<TestDb> {
    let log = Arc::new(Mutex::new(Vec::new()));
    let options = adjust(recording_options(&log));
    let (url, cleanup, server) = match kind {
        Kind::Sqlite => ("sqlite::memory:".to_string(), None, None),
        Kind::Postgres => {
            let (admin, user) = match pg_admin().await {
                Ok(a) => a,
                Err(e) => return skip(kind, case, e),
            };
            let schema = unique_name(case);
            if let Err(e) = admin.batch_execute(&format!("CREATE SCHEMA {schema}")).await {
                return skip(kind, case, format!("create schema: {e}"));
            }
            (
                format!("postgres://{user}@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"),
                Some(Cleanup::PgSchema(schema)),
                None,
            )
        }
        Kind::Mysql => {
            let name = unique_name(case);
            let created = async {
                let mut admin =
                    mysql_async::Conn::new(mysql_async::Opts::from_url(MYSQL_ADMIN_URL).map_err(|e| e.to_string())?)
                        .await
                        .map_err(|e| format!("MariaDB at 127.0.0.1:3306: {e}"))?;
                use mysql_async::prelude::Queryable;
                admin
                    .query_drop(format!("CREATE DATABASE {name} CHARACTER SET utf8mb4"))
                    .await
                    .map_err(|e| e.to_string())?;
                let _ = admin.disconnect().await;
                Ok::<_, String>(())
            }
            .await;
            if let Err(e) = created {
                return skip(kind, case, e);
            }
            (format!("mysql://root@127.0.0.1:3306/{name}"), Some(Cleanup::MysqlDatabase(name)), None)
        }
        Kind::Shoal => match ShoalServer::start().await {
            Ok(server) => (server.url(), None, Some(server)),
            Err(e) => return skip(kind, case, e),
        },
    };
    let db = match Db::connect_with(&url, options).await {
        Ok(db) => db,
        Err(e) => return skip(kind, case, format!("connect {url}: {e}")),
    };
    Some(TestDb { db, kind, url, log, cleanup, _server: server })
}

impl TestDb {
    /// How many statements have run so far (a mark for [`TestDb::since`]).
    pub fn mark(&self) -> usize {
        self.log.lock().map(|l| l.len()).unwrap_or(0)
    }

    /// The statements run since `mark`.
    pub fn since(&self, mark: usize) -> Vec<String> {
        self.log.lock().map(|l| l[mark.min(l.len())..].to_vec()).unwrap_or_default()
    }

    /// Another `Db` on the same database with other options.
    pub async fn connect_with(&self, options: Options) -> Db {
        Db::connect_with(&self.url, options).await.expect("second connection to the test database")
    }

    pub async fn with_schema(self) -> TestDb {
        self.db.sync_schema(&crate::models::all_tables()).await.expect("create the suite's tables");
        self
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(cleanup) = self.cleanup.take() else { return };
        // Drop runs outside async context guarantees; clean up on a thread
        // with its own runtime so it works during a panic too.
        let done = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async move {
                match cleanup {
                    Cleanup::PgSchema(schema) => {
                        if let Ok((admin, _)) = pg_admin().await {
                            let _ = admin.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await;
                        }
                    }
                    Cleanup::MysqlDatabase(name) => {
                        use mysql_async::prelude::Queryable;
                        if let Ok(opts) = mysql_async::Opts::from_url(MYSQL_ADMIN_URL) {
                            if let Ok(mut admin) = mysql_async::Conn::new(opts).await {
                                let _ = admin.query_drop(format!("DROP DATABASE IF EXISTS {name}")).await;
                                let _ = admin.disconnect().await;
                            }
                        }
                    }
                }
            });
        });
        let _ = done.join();
    }
}

/// A `shoal server` child process.
pub struct ShoalServer {
    pub pg_port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

/// Where the `shoal` binary is: `SHOAL_BIN`, else `$CARGO_TARGET_DIR/debug/shoal`,
/// else `<workspace>/target/debug/shoal`.
pub fn shoal_binary() -> Result<PathBuf, String> {
    if let Ok(p) = std::env::var("SHOAL_BIN") {
        let p = PathBuf::from(p);
        return if p.is_file() { Ok(p) } else { Err(format!("SHOAL_BIN={} is not a file", p.display())) };
    }
    let mut candidates = Vec::new();
    if let Ok(t) = std::env::var("CARGO_TARGET_DIR") {
        candidates.push(PathBuf::from(t).join("debug/shoal"));
    }
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    candidates.push(workspace.join("target/debug/shoal"));
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| "no shoal binary (set SHOAL_BIN or build it with `cargo build --bin shoal`)".to_string())
}

/// Three free loopback ports in 24000-24999.
fn free_ports() -> Option<[u16; 3]> {
    let seed = std::process::id() as usize * 7919 + COUNTER.fetch_add(1, Ordering::Relaxed) as usize * 104_729;
    for attempt in 0..200 {
        let base = 24000 + ((seed + attempt * 37) % 997) as u16;
        let ports = [base, 24000 + (base - 24000 + 331) % 1000, 24000 + (base - 24000 + 662) % 1000];
        let held: Vec<TcpListener> = ports.iter().filter_map(|p| TcpListener::bind(("127.0.0.1", *p)).ok()).collect();
        if held.len() == 3 {
            return Some(ports);
        }
    }
    None
}

/// Attempts at starting a server; a port taken between choosing it and the
/// server binding it costs one attempt.
const START_ATTEMPTS: usize = 5;

impl ShoalServer {
    pub async fn start() -> Result<ShoalServer, String> {
        ShoalServer::start_with(&[]).await
    }

    /// Starts a server with extra command-line arguments (`--tls-cert …`).
    pub async fn start_with(args: &[std::ffi::OsString]) -> Result<ShoalServer, String> {
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            match ShoalServer::start_once(args).await {
                Ok(s) => return Ok(s),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    async fn start_once(args: &[std::ffi::OsString]) -> Result<ShoalServer, String> {
        let bin = shoal_binary()?;
        let dir = tempfile::Builder::new().prefix("shoal-orm-").tempdir().map_err(|e| e.to_string())?;
        let [pg, rpc, http] = free_ports().ok_or("no three free ports in 24000-24999")?;
        let log = std::fs::File::create(dir.path().join("server.log")).map_err(|e| e.to_string())?;
        let log_err = log.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(&bin)
            .arg("server")
            .arg("--data")
            .arg(dir.path().join("data"))
            .arg("--pg")
            .arg(format!("127.0.0.1:{pg}"))
            .arg("--rpc")
            .arg(format!("127.0.0.1:{rpc}"))
            .arg("--http")
            .arg(format!("127.0.0.1:{http}"))
            .args(args)
            .env_remove("SHOAL_PASSWORD")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", bin.display()))?;
        let mut server = ShoalServer { pg_port: pg, child, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        let password = args.windows(2).find(|w| w[0] == "--password").map(|w| w[1].to_string_lossy().into_owned());
        let password = password.map(|p| format!(" password={p}")).unwrap_or_default();
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!("shoal server exited at start ({status}): {}", server.log()));
            }
            let conn = format!("host=127.0.0.1 port={pg} user=shoal dbname=shoal connect_timeout=2{password}");
            match tokio_postgres::connect(&conn, tokio_postgres::NoTls).await {
                Ok((client, connection)) => {
                    tokio::spawn(async move {
                        let _ = connection.await;
                    });
                    if client.simple_query("SELECT 1").await.is_ok() {
                        return Ok(server);
                    }
                }
                // A server that refuses plain logins (--tls-required, --auth
                // cert) answers only after its node has started: it is up.
                Err(e) if e.as_db_error().is_some_and(|db| db.code().code() == "28000") => return Ok(server),
                Err(_) => {}
            }
            if Instant::now() > deadline {
                return Err(format!("shoal server not ready after 30 s: {}", server.log()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self) -> String {
        format!("shoal://shoal@127.0.0.1:{}/shoal", self.pg_port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ShoalServer {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = self.log();
            let mut start = log.len().saturating_sub(16 * 1024);
            while !log.is_char_boundary(start) {
                start += 1;
            }
            eprintln!("===== shoal server log =====\n{}\n===== end =====", &log[start..]);
        }
    }
}

impl TestDb {
    /// Kills the Shoal server (for connection-loss tests); false elsewhere.
    pub fn kill_server(&mut self) -> bool {
        match &mut self._server {
            Some(s) => {
                s.kill();
                true
            }
            None => false,
        }
    }
}

/// Kills a MySQL session from the admin connection (connection-loss tests).
pub async fn mysql_kill(id: i64) {
    use mysql_async::prelude::Queryable;
    let opts = mysql_async::Opts::from_url(MYSQL_ADMIN_URL).expect("admin URL");
    let mut admin = mysql_async::Conn::new(opts).await.expect("admin connection");
    admin.query_drop(format!("KILL {id}")).await.expect("KILL");
    let _ = admin.disconnect().await;
}
