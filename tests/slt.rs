//! SQL behaviour as sqllogictest transcripts, run through the real wire
//! protocol against Shoal and against PostgreSQL.
//!
//! Every `tests/slt/*.slt` file runs against a fresh `shoal server` (label
//! `shoal`) and, when one is reachable, against the machine's PostgreSQL on
//! 127.0.0.1:5432 (label `postgres`, user `postgres`, a fresh database
//! `shoal_slt_<random>` per file created from database `test`). The expected
//! output in the files is PostgreSQL 16's; records that only make sense on
//! Shoal carry `onlyif shoal`, and PostgreSQL-only ones `onlyif postgres`.
//!
//! Statements go through the simple query protocol, so every value is text:
//! SQL NULL is written `NULL`, the empty string `(empty)`. An error renders as
//! `SQLSTATE message` (`23505 duplicate key value violates unique constraint
//! "t_pkey"`), so a file may write `statement error 23505`, `statement error
//! (23505)` or match on the message.
//!
//! Unlike `Runner::run_file`, the harness keeps going after a failing record
//! and reports every failure of every file at the end, so one run lists all
//! the work left. `SHOAL_SLT=name` runs only files whose name contains `name`.
//! Without PostgreSQL the comparison is skipped with a message, unless
//! `SHOAL_REQUIRE_EXTERNAL=1`.

mod common;

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType, Record, Runner};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use common::Server;

/// The PostgreSQL the files are compared against.
const POSTGRES_ADMIN: &str = "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=5";

/// One client session, as sqllogictest sees it.
struct PgSession {
    client: Client,
    engine: &'static str,
}

/// A database error as `SQLSTATE message`, or a connection failure.
#[derive(Debug)]
struct SqlError {
    sqlstate: Option<String>,
    rendered: String,
}

impl std::fmt::Display for SqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.rendered)
    }
}

impl std::error::Error for SqlError {}

impl From<tokio_postgres::Error> for SqlError {
    fn from(e: tokio_postgres::Error) -> SqlError {
        SqlError { sqlstate: common::sqlstate(&e), rendered: common::render_error(&e) }
    }
}

#[async_trait]
impl AsyncDB for PgSession {
    type Error = SqlError;
    type ColumnType = DefaultColumnType;

    /// Runs `sql` with the simple query protocol and returns the result of
    /// its last statement.
    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SqlError> {
        let messages = self.client.simple_query(sql).await?;
        let mut current: Option<(usize, Vec<Vec<String>>)> = None;
        let mut last = DBOutput::StatementComplete(0);
        for message in messages {
            match message {
                SimpleQueryMessage::RowDescription(columns) => current = Some((columns.len(), Vec::new())),
                SimpleQueryMessage::Row(row) => {
                    let values = (0..row.len())
                        .map(|i| match row.get(i) {
                            None => "NULL".to_string(),
                            Some("") => "(empty)".to_string(),
                            Some(v) => v.to_string(),
                        })
                        .collect();
                    match current.as_mut() {
                        Some((_, rows)) => rows.push(values),
                        None => current = Some((row.len(), vec![values])),
                    }
                }
                SimpleQueryMessage::CommandComplete(count) => {
                    last = match current.take() {
                        Some((width, rows)) => DBOutput::Rows { types: vec![DefaultColumnType::Any; width], rows },
                        None => DBOutput::StatementComplete(count),
                    };
                }
                _ => {}
            }
        }
        Ok(last)
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        self.engine
    }

    async fn sleep(dur: std::time::Duration) {
        tokio::time::sleep(dur).await;
    }

    fn error_sql_state(err: &SqlError) -> Option<String> {
        err.sqlstate.clone()
    }
}

async fn session(conn_string: String, engine: &'static str) -> Result<PgSession, SqlError> {
    let client = common::connect_to(&conn_string).await?;
    Ok(PgSession { client, engine })
}

/// Runs every record of `path`, collecting (not stopping at) failures.
async fn run_file(path: &Path, conn_string: String, engine: &'static str) -> Vec<String> {
    let records = match sqllogictest::parse_file::<DefaultColumnType>(path) {
        Ok(records) => records,
        Err(e) => return vec![format!("parse error: {e}")],
    };
    let make = move || session(conn_string.clone(), engine);
    let mut runner = Runner::new(make);
    runner.add_label(engine);
    let mut failures = Vec::new();
    for record in records {
        if let Record::Halt { .. } = record {
            break;
        }
        if let Err(e) = runner.run_async(record).await {
            failures.push(e.display(false).to_string());
        }
    }
    runner.shutdown_async().await;
    failures
}

fn slt_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slt");
    let filter = std::env::var("SHOAL_SLT").ok();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read tests/slt")
        .map(|entry| entry.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .filter(|p| filter.as_ref().is_none_or(|f| p.file_name().unwrap().to_string_lossy().contains(f.as_str())))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .slt files in {}", dir.display());
    files
}

fn require_external() -> bool {
    std::env::var("SHOAL_REQUIRE_EXTERNAL").is_ok_and(|v| v == "1")
}

/// Connects to the reference PostgreSQL, or says why it cannot.
async fn postgres_admin() -> Option<Client> {
    match tokio_postgres::connect(POSTGRES_ADMIN, NoTls).await {
        Ok((client, connection)) => {
            tokio::spawn(async move {
                let _ = connection.await;
            });
            Some(client)
        }
        Err(e) => {
            if require_external() {
                panic!("PostgreSQL required (SHOAL_REQUIRE_EXTERNAL=1) but unreachable: {e}");
            }
            println!("skipping PostgreSQL comparison: {e}");
            None
        }
    }
}

/// Runs `path` in a fresh PostgreSQL database that is dropped afterwards.
async fn run_on_postgres(admin: &Client, path: &Path) -> Vec<String> {
    let db = format!("shoal_slt_{:016x}", rand::random::<u64>());
    if let Err(e) = admin.simple_query(&format!("CREATE DATABASE {db}")).await {
        return vec![format!("CREATE DATABASE {db}: {}", common::render_error(&e))];
    }
    let conn_string = format!("host=127.0.0.1 port=5432 user=postgres dbname={db} connect_timeout=5");
    let failures = run_file(path, conn_string, "postgres").await;
    if let Err(e) = admin.simple_query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).await {
        println!("warning: could not drop {db}: {}", common::render_error(&e));
    }
    failures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqllogictest_files() {
    let files = slt_files();
    let postgres = postgres_admin().await;
    let mut report = Vec::new();
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();

        // A fresh node per file: the files reuse table names and Shoal has one
        // namespace per node, whatever the dbname.
        println!("{name}: running against a fresh shoal server");
        let server = Server::start().await;
        let failures = run_file(path, server.conn_string(), "shoal").await;
        if !failures.is_empty() {
            println!("{name}: server log tail:\n{}", tail_lines(&server.log_tail(), 40));
        }
        drop(server);
        println!("{name} on shoal: {} failing record(s)", failures.len());
        report.extend(failures.into_iter().map(|f| format!("[shoal] {name}: {f}")));

        if let Some(admin) = &postgres {
            let failures = run_on_postgres(admin, path).await;
            println!("{name} on postgres: {} failing record(s)", failures.len());
            report.extend(failures.into_iter().map(|f| format!("[postgres] {name}: {f}")));
        }
    }
    if !report.is_empty() {
        for failure in &report {
            println!("----\n{failure}");
        }
        panic!("{} sqllogictest record(s) failed (listed above)", report.len());
    }
}

fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
