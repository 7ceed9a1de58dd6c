//! Backends: the trait every database driver implements, chosen by URL.
//!
//! ```text
//!   Db::connect(url) ──scheme──▶ sqlite://   SqliteBackend   (rusqlite, in process)
//!                               postgres:// PostgresBackend (tokio-postgres)
//!                               shoal://    ShoalBackend    (tokio-postgres + routing, causal tokens)
//!                               mysql://    MysqlBackend    (mysql_async)
//!                    ▼
//!              Backend::connect() → Box<dyn Connection>   (pooled by db.rs)
//! ```
//!
//! A [`Connection`] runs one statement at a time: SQL text in the backend's
//! dialect, bound [`Value`]s, and the statement's metadata ([`Stmt`]: read
//! or write, the shard key values it pins, where reads may go). Each
//! backend converts values and errors at this edge and nowhere else.
//!
//! A bulk insert's parameters may instead be bound by the connection
//! straight from the borrowed models ([`BindParams`], [`Binder`]): SQLite
//! binds their text in place; the other backends take them as owned
//! values like any statement's.
//!
//! Streaming hands rows to a bounded channel ([`RowSink`]) from a task that
//! owns the connection; a blocking backend (SQLite) says so and is run on a
//! blocking thread, because its cursor cannot be held across an `.await`.

use std::sync::Arc;

use async_trait::async_trait;
use futures::future::BoxFuture;
use tokio::sync::mpsc;

use crate::db::{Options, Stmt};
use crate::dialect::Dialect;
use crate::error::{Error, Result};
use crate::model::{Row, Values};
use crate::value::{Value, ValueRef};

pub mod mysql;
pub mod postgres;
pub mod shoal;
pub mod sqlite;
pub mod tls;

/// A database reachable by URL.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    fn dialect(&self) -> Dialect;
    /// Opens a new connection.
    async fn connect(&self) -> Result<Box<dyn Connection>>;
    /// How many connections the pool may hold (SQLite in memory: exactly one,
    /// since each connection would be a different database).
    fn max_connections(&self, requested: usize) -> usize {
        requested
    }
    /// Whether writers must be serialised in-process before reaching the
    /// database (SQLite has one writer; waiting for it must not block a
    /// tokio worker thread).
    fn single_writer(&self) -> bool {
        false
    }
    /// Whether statements run in this process (SQLite), so reads may take
    /// the synchronous path (`Connection::query_each_now`).
    fn in_process(&self) -> bool {
        false
    }
    /// What a Shoal server has been found to support (`None` elsewhere).
    fn shoal_state(&self) -> Option<Arc<shoal::ShoalState>> {
        None
    }
}

/// The column list of a result decoded by position: shared, so a query
/// that needs no names allocates none.
pub(crate) fn no_columns() -> Arc<[String]> {
    static EMPTY: std::sync::OnceLock<Arc<[String]>> = std::sync::OnceLock::new();
    EMPTY.get_or_init(|| Arc::from(Vec::new())).clone()
}

/// The rows of one result, their values in one flat vector (row after
/// row), so decoding a thousand rows does not allocate a thousand vectors.
pub struct QueryResult {
    /// Column names when the statement asked for them (`Stmt::named`).
    pub columns: Arc<[String]>,
    /// Values per row.
    pub width: usize,
    /// How many rows.
    pub rows: usize,
    pub values: Vec<Value>,
}

impl QueryResult {
    pub(crate) fn new(columns: Arc<[String]>, width: usize) -> QueryResult {
        QueryResult { columns, width, rows: 0, values: Vec::new() }
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Each row as a [`Row`] (for decoding by name).
    pub(crate) fn into_rows(self) -> impl Iterator<Item = Row> {
        let (columns, width, rows) = (self.columns, self.width, self.rows);
        let mut values = self.values.into_iter();
        (0..rows).map(move |_| Row::new(columns.clone(), values.by_ref().take(width).collect()))
    }

    /// All values in row order, for positional decoding.
    pub(crate) fn into_values(self) -> crate::model::Values<'static> {
        crate::model::Values::new(self.values)
    }

    /// The first column of the first row.
    pub(crate) fn first_value(self) -> Option<Value> {
        (self.rows > 0 && self.width > 0).then(|| self.values.into_iter().next()).flatten()
    }
}

/// A row consumer for [`Connection::query_each_now`]: decodes one row from
/// its [`Values`]; false stops reading.
pub type RowFn<'f> = dyn FnMut(&mut Values<'_>) -> Result<bool> + 'f;

/// A row consumer that may cross an `.await` ([`Connection::query_each`]).
pub type SendRowFn<'f> = dyn FnMut(&mut Values<'_>) -> Result<bool> + Send + 'f;

/// Where a statement's parameters go, one after another, as borrowed
/// values (see [`crate::Model::bind_values`]). A backend that can bind
/// borrowed text implements it on its statement; a `Vec<Value>` collects
/// owned values for the others.
pub trait Binder {
    fn bind(&mut self, value: ValueRef<'_>) -> Result<()>;
}

impl Binder for Vec<Value> {
    fn bind(&mut self, value: ValueRef<'_>) -> Result<()> {
        self.push(value.to_value());
        Ok(())
    }
}

/// A statement's parameters that stay where they are (a bulk insert's
/// rows) until a connection binds them ([`Connection::execute_bound_now`]).
pub trait BindParams: Sync {
    /// How many parameters [`BindParams::bind`] hands over.
    fn count(&self) -> usize;
    /// Hands every parameter, in order, to `to`.
    fn bind(&self, to: &mut dyn Binder) -> Result<()>;
}

/// What a statement that returns no rows did.
#[derive(Clone, Copy, Debug, Default)]
pub struct Executed {
    pub rows_affected: u64,
    /// The key generated by the last INSERT, where the backend reports one
    /// without `RETURNING` (MySQL, SQLite).
    pub last_insert_id: Option<i64>,
}

/// A streaming job on a connection.
pub enum StreamTask<'a> {
    /// Runs on the async runtime.
    Async(BoxFuture<'a, Result<()>>),
    /// Must run on a blocking thread (it uses [`RowSink::send_blocking`]).
    Blocking(Box<dyn FnOnce() -> Result<()> + Send + 'a>),
}

/// Where a streaming connection puts its rows.
#[derive(Clone)]
pub struct RowSink {
    tx: mpsc::Sender<Result<Row>>,
}

/// Rows buffered between a streaming connection and its consumer.
pub(crate) const STREAM_BUFFER_ROWS: usize = 256;

impl RowSink {
    pub(crate) fn channel() -> (RowSink, mpsc::Receiver<Result<Row>>) {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER_ROWS);
        (RowSink { tx }, rx)
    }

    /// Sends a row; false when the consumer has gone (stop reading).
    pub async fn send(&self, row: Row) -> bool {
        self.tx.send(Ok(row)).await.is_ok()
    }

    /// Sends a row from a blocking thread; false when the consumer has gone.
    pub fn send_blocking(&self, row: Row) -> bool {
        self.tx.blocking_send(Ok(row)).is_ok()
    }

    pub(crate) async fn fail(&self, e: Error) {
        let _ = self.tx.send(Err(e)).await;
    }
}

/// One session with a database.
#[async_trait]
pub trait Connection: Send {
    /// Runs a statement that returns rows.
    async fn query(&mut self, stmt: &Stmt) -> Result<QueryResult>;
    /// Runs a query and hands each row to `row` as it is read (false
    /// stops), so a backend that can decodes rows straight from the driver
    /// into models; the default buffers the result first.
    async fn query_each(&mut self, stmt: &Stmt, row: &mut SendRowFn<'_>) -> Result<()> {
        let result = self.query(stmt).await?;
        let n = result.rows;
        let mut values = result.into_values();
        for _ in 0..n {
            if !row(&mut values)? {
                break;
            }
        }
        Ok(())
    }
    /// Runs a statement that returns no rows.
    async fn execute(&mut self, stmt: &Stmt) -> Result<Executed>;
    /// Runs parameterless SQL (transaction control, DDL), possibly several
    /// statements separated by `;` where the backend allows it.
    async fn batch(&mut self, sql: &str) -> Result<()>;
    /// Streams a query's rows into `sink`.
    fn stream<'a>(&'a mut self, stmt: &'a Stmt, sink: RowSink) -> StreamTask<'a>;
    /// The shards of a distributed table (Shoal only; `None` elsewhere, or
    /// when the table is not distributed).
    async fn shard_map(&mut self, _table: &'static str) -> Result<Option<Arc<shoal::ShardMap>>> {
        Ok(None)
    }
    /// True when calls do blocking work (the pool runs streams of such
    /// connections on a blocking thread).
    fn is_blocking(&self) -> bool {
        false
    }
    /// Runs a query synchronously when the backend works in-process (SQLite),
    /// sparing the boxed future of [`Connection::query`]; `None` otherwise.
    fn query_now(&mut self, _stmt: &Stmt) -> Option<Result<QueryResult>> {
        None
    }
    /// Runs a query in-process and hands each row to `row` while the driver
    /// is on it, so rows decode straight into models with no buffered
    /// result; `row` returns false to stop early. `None` when the backend
    /// is not in-process (callers then use [`Connection::query`]).
    fn query_each_now(&mut self, _stmt: &Stmt, _row: &mut RowFn<'_>) -> Option<Result<()>> {
        None
    }
    /// The synchronous form of [`Connection::execute`], like `query_now`.
    fn execute_now(&mut self, _stmt: &Stmt) -> Option<Result<Executed>> {
        None
    }
    /// Runs a write in-process with its parameters bound from `params`
    /// where they lie (borrowed text is not copied); `stmt.params` is
    /// empty. `None` when the backend is not in-process: the caller then
    /// collects `params` into `stmt.params` and calls
    /// [`Connection::execute`].
    fn execute_bound_now(&mut self, _stmt: &Stmt, _params: &dyn BindParams) -> Option<Result<Executed>> {
        None
    }
    /// The connection itself, for a backend whose reads the ORM awaits
    /// inline ([`query_each_inline`](trait.Connection.html#method.query_each_inline));
    /// `None` (the default) means "through `query_each`".
    #[doc(hidden)]
    fn as_any_mut(&mut self) -> Option<&mut dyn std::any::Any> {
        None
    }
    /// True when the connection is unusable and must not return to the pool.
    fn is_broken(&self) -> bool;
    /// Ends an abandoned transaction synchronously, if the backend can (it is
    /// called from `Drop`); false means "close the connection instead".
    fn reset_now(&mut self) -> bool {
        false
    }
    /// Called after a transaction commits (Shoal reads its causal token here).
    async fn after_commit(&mut self) -> Result<()> {
        Ok(())
    }
}

impl dyn Connection {
    /// [`Connection::query_each`], with PostgreSQL's read awaited inline in
    /// the caller's future: a key lookup's client work is a few thousand
    /// instructions, and the trait's boxed future (allocate, copy, free) a
    /// tenth of them. The other backends go through the box (SQLite reads
    /// are synchronous anyway, see `query_each_now`).
    pub(crate) async fn query_each_inline(&mut self, stmt: &Stmt, row: &mut SendRowFn<'_>) -> Result<()> {
        if let Some(pg) = self.as_any_mut().and_then(|c| c.downcast_mut::<postgres::PgConn>()) {
            return pg.query_each_stmt(stmt, row).await;
        }
        self.query_each(stmt, row).await
    }
}

/// Opens the backend a URL names.
pub(crate) fn from_url(url: &str, options: &Options) -> Result<Arc<dyn Backend>> {
    let scheme = url.split(':').next().unwrap_or("").to_ascii_lowercase();
    match scheme.as_str() {
        "sqlite" => Ok(Arc::new(sqlite::SqliteBackend::from_url(url, options)?)),
        "postgres" | "postgresql" => Ok(Arc::new(postgres::PostgresBackend::from_url(url, options)?)),
        "shoal" => Ok(Arc::new(shoal::ShoalBackend::from_url(url, options)?)),
        "mysql" | "mariadb" => Ok(Arc::new(mysql::MysqlBackend::from_url(url, options)?)),
        _ => Err(Error::Config(format!(
            "unknown database URL scheme \"{scheme}\" (expected sqlite:, postgres://, shoal:// or mysql://)"
        ))),
    }
}

/// Removes the password from a URL for messages and logs.
pub(crate) fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}
