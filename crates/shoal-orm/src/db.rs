//! `Db`: a pool of connections to one database, and the [`Executor`] trait
//! that every query runs through.
//!
//! ```text
//!   User::query()…all(&db)        alice.save(&tx)
//!            │                          │
//!            ▼                          ▼
//!     Executor::__fetch / __exec / __stream        (Db: a pooled connection per statement,
//!            │                                       Tx: the transaction's one connection)
//!            ├─ strict mode: count the statement's shape in this unit of work
//!            ├─ SQLite writes: wait (async) for the in-process writer slot
//!            ├─ Connection::query / execute / stream   (backend/*.rs)
//!            └─ Options::on_statement hook + tracing::debug!
//! ```
//!
//! A statement ([`Stmt`]) is SQL text in the backend's dialect, bound
//! values, and what the ORM knows about it: whether it writes, which shard
//! key values it pins ([`Route`]), whether it may read from a follower, and
//! which model's table it targets (to name constraints in errors).
//!
//! **Strict mode** counts statement shapes (the SQL text, whose values are
//! all placeholders) per *unit of work*: the lifetime of a `Db` handle made
//! by [`Db::unit_of_work`] (or the root handle), or one transaction. A
//! shape run more often than the limit fails with [`Error::RepeatedQuery`]
//! naming the SQL — that is an N+1 loop, whether it reads (`find` per id)
//! or writes (`save` per row instead of `insert_all`). Batched statements
//! are exempt: repeating an eager load's chunked `IN` query, a bulk
//! insert's chunks or a stream's pages is the cure, not the disease; so are
//! the migrator's own bookkeeping statements. Turn it on with
//! [`Options::strict`] or the `SHOAL_ORM_STRICT=<limit>` environment
//! variable (the ORM's own tests run with it on).

use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::StreamExt;

use crate::backend::shoal::ShardMap;
use crate::backend::{self, BindParams, Connection, Executed, QueryResult, RowFn, RowSink, SendRowFn, StreamTask};
use crate::dialect::Dialect;
use crate::error::{Error, Result};
use crate::model::Row;
use crate::pool::{Pool, PooledConn};
use crate::schema::TableDef;
use crate::tx::Tx;
use crate::value::Value;

/// Where a read may be served (Shoal; other backends have one server).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReadTarget {
    /// The leader: linearizable.
    #[default]
    Leader,
    /// Any replica that has applied this `Db`'s last write.
    Follower,
}

/// The shard key values a statement pins.
#[derive(Clone, Debug, PartialEq)]
pub struct Route {
    pub table: &'static str,
    pub column: &'static str,
    pub values: Vec<Value>,
}

/// One statement as a connection receives it.
#[derive(Clone, Debug)]
pub struct Stmt {
    /// The text: a model's cached statement, or one built for this call.
    pub sql: Cow<'static, str>,
    pub params: Vec<Value>,
    /// True for INSERT/UPDATE/DELETE (also with RETURNING).
    pub writes: bool,
    /// The shard key values the statement pins, if it pins them.
    pub route: Option<Route>,
    pub read_target: ReadTarget,
    /// The model table the statement targets, for naming constraints.
    pub table: Option<&'static TableDef>,
    pub in_transaction: bool,
    /// Part of a batched operation (an eager-load chunk, a bulk-insert
    /// chunk, a stream page) or the ORM's own bookkeeping: exempt from
    /// strict mode's repetition count.
    pub batched: bool,
    /// Whether the result needs column names (decoding by name). Model
    /// queries decode by position and skip building them.
    pub named: bool,
    /// At most one row can match (a primary-key lookup): an in-process
    /// backend may stop reading after it.
    pub single_row: bool,
}

impl Stmt {
    #[inline]
    pub fn read(sql: impl Into<Cow<'static, str>>, params: Vec<Value>) -> Stmt {
        Stmt {
            sql: sql.into(),
            params,
            writes: false,
            route: None,
            read_target: ReadTarget::Leader,
            table: None,
            in_transaction: false,
            batched: false,
            named: true,
            single_row: false,
        }
    }

    #[inline]
    pub fn write(sql: impl Into<Cow<'static, str>>, params: Vec<Value>) -> Stmt {
        Stmt { writes: true, ..Stmt::read(sql, params) }
    }

    #[inline]
    pub(crate) fn on_table(mut self, table: &'static TableDef) -> Stmt {
        self.table = Some(table);
        self
    }

    #[inline]
    pub(crate) fn routed(mut self, route: Option<Route>) -> Stmt {
        self.route = route;
        self
    }

    /// The ORM's own statement (migrator bookkeeping, schema reads): not
    /// counted by strict mode, which judges the application's statements.
    pub(crate) fn bookkeeping(mut self) -> Stmt {
        self.batched = true;
        self
    }

    /// The result is decoded by position (see [`Stmt::named`]).
    #[inline]
    pub(crate) fn positional(mut self) -> Stmt {
        self.named = false;
        self
    }
}

/// What the statement hook sees.
#[derive(Debug)]
pub struct StatementEvent<'a> {
    pub sql: &'a str,
    pub params: usize,
    pub elapsed: Duration,
    pub ok: bool,
    pub writes: bool,
}

/// A callback run after every statement (logging, metrics, tests).
pub type StatementHook = Arc<dyn Fn(&StatementEvent<'_>) + Send + Sync>;

/// Connection options; `Options::default()` reads `SHOAL_ORM_STRICT`.
#[derive(Clone)]
pub struct Options {
    pub max_connections: usize,
    pub acquire_timeout: Duration,
    /// Strict mode: the most times one statement shape may run per unit of work.
    pub strict: Option<u32>,
    /// Keys per eager-load `IN` query.
    pub eager_chunk_size: usize,
    pub on_statement: Option<StatementHook>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(30),
            strict: std::env::var("SHOAL_ORM_STRICT").ok().and_then(|v| v.parse().ok()),
            eager_chunk_size: 1000,
            on_statement: None,
        }
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("strict", &self.strict)
            .field("eager_chunk_size", &self.eager_chunk_size)
            .field("on_statement", &self.on_statement.is_some())
            .finish()
    }
}

impl Options {
    pub fn max_connections(mut self, n: usize) -> Options {
        self.max_connections = n.max(1);
        self
    }
    pub fn acquire_timeout(mut self, t: Duration) -> Options {
        self.acquire_timeout = t;
        self
    }
    /// Fails a unit of work when one statement shape (read or write) runs
    /// more than `limit` times.
    pub fn strict(mut self, limit: u32) -> Options {
        self.strict = Some(limit.max(1));
        self
    }
    pub fn eager_chunk_size(mut self, n: usize) -> Options {
        self.eager_chunk_size = n.max(1);
        self
    }
    pub fn on_statement(mut self, hook: impl Fn(&StatementEvent<'_>) + Send + Sync + 'static) -> Options {
        self.on_statement = Some(Arc::new(hook));
        self
    }
}

/// Distinct shapes one unit of work tracks; beyond it new shapes are not
/// counted (a bound on memory, not a correctness limit).
const MAX_TRACKED_SHAPES: usize = 4096;

/// Strict mode's counter for one unit of work.
pub(crate) struct ShapeCounter {
    limit: u32,
    counts: Mutex<HashMap<String, u32>>,
}

impl ShapeCounter {
    fn new(limit: u32) -> Arc<ShapeCounter> {
        Arc::new(ShapeCounter { limit, counts: Mutex::new(HashMap::new()) })
    }

    fn record(&self, shape: &str) -> Result<()> {
        let Ok(mut counts) = self.counts.lock() else { return Ok(()) };
        let count = if let Some(c) = counts.get_mut(shape) {
            *c += 1;
            *c
        } else if counts.len() < MAX_TRACKED_SHAPES {
            counts.insert(shape.to_string(), 1);
            1
        } else {
            return Ok(());
        };
        if count > self.limit {
            return Err(Error::RepeatedQuery { shape: shape.to_string(), count, limit: self.limit });
        }
        Ok(())
    }
}

/// Per-handle state: the unit of work and the read target.
#[derive(Clone, Default)]
pub(crate) struct Unit {
    strict: Option<Arc<ShapeCounter>>,
    pub(crate) read_target: ReadTarget,
}

impl Unit {
    pub(crate) fn fresh(options: &Options, read_target: ReadTarget) -> Unit {
        Unit { strict: options.strict.map(ShapeCounter::new), read_target }
    }

    #[inline]
    pub(crate) fn check(&self, stmt: &Stmt) -> Result<()> {
        match &self.strict {
            Some(counter) if !stmt.batched => counter.record(&stmt.sql),
            _ => Ok(()),
        }
    }
}

/// What every handle of one `Db` shares.
pub(crate) struct Core {
    pub(crate) pool: Arc<Pool>,
    pub(crate) dialect: Dialect,
    pub(crate) options: Options,
    /// SQLite: one writer at a time, waited for asynchronously.
    pub(crate) writer: Option<Arc<tokio::sync::Mutex<()>>>,
    pub(crate) shoal: Option<Arc<crate::backend::shoal::ShoalState>>,
    /// The backend runs in this process (SQLite): reads may run synchronously.
    pub(crate) in_process: bool,
}

impl Core {
    /// A start time when someone listens (a hook, or debug tracing); reading
    /// the clock twice per statement is measurable on in-process SQLite.
    #[inline]
    pub(crate) fn clock(&self) -> Option<Instant> {
        (self.options.on_statement.is_some() || tracing::enabled!(tracing::Level::DEBUG)).then(Instant::now)
    }

    #[inline]
    pub(crate) fn observe<T>(&self, stmt: &Stmt, start: Option<Instant>, result: &Result<T>) {
        if start.is_some() {
            self.observe_counted(stmt, stmt.params.len(), start, result);
        }
    }

    /// [`Core::observe`] for a statement with `params` parameters bound
    /// from elsewhere than `stmt.params` (see [`Executor::__exec_bound`]).
    pub(crate) fn observe_counted<T>(&self, stmt: &Stmt, params: usize, start: Option<Instant>, result: &Result<T>) {
        let Some(start) = start else { return };
        let elapsed = start.elapsed();
        match result {
            Ok(_) => tracing::debug!(sql = %stmt.sql, params, ?elapsed, "statement"),
            Err(e) => {
                tracing::debug!(sql = %stmt.sql, params, ?elapsed, error = %e, "statement failed")
            }
        }
        if let Some(hook) = &self.options.on_statement {
            hook(&StatementEvent { sql: &stmt.sql, params, elapsed, ok: result.is_ok(), writes: stmt.writes });
        }
    }

    /// Waits for SQLite's writer slot (no-op elsewhere).
    pub(crate) async fn writer_slot(&self) -> Result<Option<tokio::sync::OwnedMutexGuard<()>>> {
        match &self.writer {
            None => Ok(None),
            Some(w) => tokio::time::timeout(self.options.acquire_timeout, w.clone().lock_owned())
                .await
                .map(Some)
                .map_err(|_| Error::SerializationFailure {
                    sqlstate: "55P03".into(),
                    message: format!(
                        "waited {:?} for the SQLite writer; a transaction is holding it (inside a \
                         transaction closure, run statements on its `tx`, not on the `Db`)",
                        self.options.acquire_timeout
                    ),
                }),
        }
    }
}

/// A database: a pool of connections chosen by URL. Cheap to clone; clones
/// share the pool.
///
/// ```no_run
/// # async fn f() -> shoal_orm::Result<()> {
/// let db = shoal_orm::Db::connect("sqlite::memory:").await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Db {
    pub(crate) core: Arc<Core>,
    pub(crate) unit: Unit,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("dialect", &self.core.dialect).field("options", &self.core.options).finish()
    }
}

impl Db {
    /// Connects to `sqlite::memory:`, `sqlite://path`, `postgres://…`,
    /// `shoal://…` or `mysql://…`, with default [`Options`].
    pub async fn connect(url: &str) -> Result<Db> {
        Db::connect_with(url, Options::default()).await
    }

    /// Connects with explicit options. One connection is opened at once, so a
    /// bad address fails here rather than at the first query.
    pub async fn connect_with(url: &str, options: Options) -> Result<Db> {
        let backend = backend::from_url(url, &options)?;
        let size = backend.max_connections(options.max_connections);
        let writer = backend.single_writer().then(|| Arc::new(tokio::sync::Mutex::new(())));
        let dialect = backend.dialect();
        let shoal = backend.shoal_state();
        let in_process = backend.in_process();
        let pool = Pool::new(backend, size, options.acquire_timeout);
        drop(pool.acquire().await?);
        let unit = Unit::fresh(&options, ReadTarget::Leader);
        Ok(Db { core: Arc::new(Core { pool, dialect, options, writer, shoal, in_process }), unit })
    }

    pub fn dialect(&self) -> Dialect {
        self.core.dialect
    }

    pub fn options(&self) -> &Options {
        &self.core.options
    }

    /// What this `shoal://` database has been found to support so far
    /// (`None` for the other backends). Features are probed on first use.
    pub fn shoal_features(&self) -> Option<crate::backend::shoal::ShoalFeatures> {
        self.core.shoal.as_ref().map(|s| s.features())
    }

    /// A handle whose statements form a new unit of work for strict mode
    /// (take one per request, job or test).
    pub fn unit_of_work(&self) -> Db {
        Db { core: self.core.clone(), unit: Unit::fresh(&self.core.options, self.unit.read_target) }
    }

    /// A handle whose reads may be served by followers (Shoal), still
    /// reading this `Db`'s own writes; elsewhere the same as `self`.
    pub fn follower_reads(&self) -> Db {
        let mut db = self.clone();
        db.unit.read_target = ReadTarget::Follower;
        db
    }

    /// Starts a transaction; prefer [`Db::transaction`], which cannot forget
    /// to finish it. Dropping a `Tx` without committing rolls it back.
    pub async fn begin(&self) -> Result<Tx> {
        let writer = self.core.writer_slot().await?;
        let mut conn = self.core.pool.acquire().await?;
        conn.in_transaction = true;
        conn.batch(self.core.dialect.begin()).await?;
        Ok(Tx::new(self.core.clone(), conn, writer, Unit::fresh(&self.core.options, self.unit.read_target)))
    }

    /// Runs `f` in a transaction: commit when it returns `Ok`, roll back
    /// when it returns `Err` or panics (the panic then continues).
    ///
    /// ```no_run
    /// # use shoal_orm::prelude::*;
    /// # async fn f(db: &Db) -> shoal_orm::Result<()> {
    /// let n = db.transaction(|tx| async move {
    ///     let n = sql!("UPDATE accounts SET balance = balance - {10} WHERE id = {1}").execute(&tx).await?;
    ///     sql!("UPDATE accounts SET balance = balance + {10} WHERE id = {2}").execute(&tx).await?;
    ///     Ok(n)
    /// }).await?;
    /// # Ok(()) }
    /// ```
    pub async fn transaction<T, F, Fut>(&self, f: F) -> Result<T>
    where
        F: FnOnce(Tx) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let tx = self.begin().await?;
        tx.run(f).await
    }

    /// Like [`Db::transaction`], running `f` again (up to `max_attempts`
    /// times in all) while it fails with a retryable error — a serialization
    /// failure or deadlock — with a short, growing, jittered pause between.
    pub async fn transaction_with_retry<T, F, Fut>(&self, max_attempts: u32, mut f: F) -> Result<T>
    where
        F: FnMut(Tx) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let max_attempts = max_attempts.clamp(1, MAX_RETRY_ATTEMPTS);
        let mut attempt = 1;
        loop {
            let tx = self.begin().await?;
            match tx.run_generic(&mut f).await {
                Err(e) if e.is_retryable() && attempt < max_attempts => {
                    tracing::debug!(attempt, "retrying a transaction after a retryable error");
                    tokio::time::sleep(retry_pause(attempt)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

/// The most attempts `transaction_with_retry` makes, whatever it is asked.
pub const MAX_RETRY_ATTEMPTS: u32 = 20;

/// 2, 4, 8 … ms (capped at 256 ms), plus up to the same again of jitter so
/// retrying transactions do not collide in lockstep.
fn retry_pause(attempt: u32) -> Duration {
    let base_ms = 1u64 << attempt.min(8);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::from(d.subsec_nanos()))
        .unwrap_or(0);
    Duration::from_millis(base_ms + nanos % (base_ms + 1))
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Db {}
    impl Sealed for crate::tx::Tx {}
}

/// Something statements can run on: a [`Db`] (a pooled connection per
/// statement) or a [`Tx`] (the transaction's connection). Every query and
/// write method takes `&impl Executor`, so the same code runs inside and
/// outside transactions.
pub trait Executor: Send + Sync + sealed::Sealed {
    fn dialect(&self) -> Dialect;
    #[doc(hidden)]
    fn __fetch(&self, stmt: Stmt) -> BoxFuture<'_, Result<QueryResult>>;
    /// Runs a read synchronously, decoding rows as they are stepped, when
    /// the backend is in-process and a connection is free this instant
    /// (SQLite); `None` means "use `__fetch`". Spares the boxed future, the
    /// buffered result and the pool's async wait on the hottest path.
    #[doc(hidden)]
    fn __fetch_now(&self, stmt: &Stmt, row: &mut RowFn<'_>) -> Option<Result<()>>;
    /// Runs a read and hands each row to `row` as the driver reads it
    /// (decoding straight into models where the backend can).
    #[doc(hidden)]
    fn __fetch_each<'a>(&'a self, stmt: &'a mut Stmt, row: &'a mut SendRowFn<'_>) -> BoxFuture<'a, Result<()>>;
    #[doc(hidden)]
    fn __exec(&self, stmt: Stmt) -> BoxFuture<'_, Result<Executed>>;
    /// Runs a write whose parameters the connection binds from `params`
    /// (a bulk insert's rows) rather than from `stmt.params`.
    #[doc(hidden)]
    fn __exec_bound<'a>(&'a self, stmt: Stmt, params: &'a dyn BindParams) -> BoxFuture<'a, Result<Executed>>;
    #[doc(hidden)]
    fn __stream(&self, stmt: Stmt) -> BoxStream<'static, Result<Row>>;
    /// Whether independent statements may run at once (a pool, not a
    /// transaction's single connection).
    #[doc(hidden)]
    fn __concurrent(&self) -> bool;
    #[doc(hidden)]
    fn __options(&self) -> &Options;
    /// The `Db` itself, when this is one (bulk writes wrap themselves in a
    /// transaction only when not already inside one).
    #[doc(hidden)]
    fn __as_db(&self) -> Option<&Db>;
    #[doc(hidden)]
    fn __dyn(&self) -> &dyn Executor;
    /// The shards of `table` on Shoal, for grouping eager loads; `None` on
    /// other backends, for tables that are not distributed, or when the map
    /// cannot be read (loads are then simply not grouped).
    #[doc(hidden)]
    fn __shard_map(&self, table: &'static str) -> BoxFuture<'_, Option<Arc<ShardMap>>>;
}

impl Db {
    /// Checks a statement against this unit of work (strict mode) and
    /// points it at the unit's read target.
    #[inline]
    fn admit(&self, stmt: &mut Stmt) -> Result<()> {
        self.unit.check(stmt)?;
        stmt.read_target = self.unit.read_target;
        Ok(())
    }

    /// [`Executor::__fetch_now`] past its check that the read may run in
    /// process.
    fn fetch_now(&self, stmt: &Stmt, row: &mut RowFn<'_>) -> Option<Result<()>> {
        let mut conn = self.core.pool.try_acquire()?;
        if !conn.is_blocking() {
            return None;
        }
        if let Err(e) = self.unit.check(stmt) {
            return Some(Err(e));
        }
        let start = self.core.clock();
        let result = conn.query_each_now(stmt, row).unwrap_or_else(not_in_process);
        self.core.observe(stmt, start, &result);
        Some(result)
    }

    /// [`Executor::__fetch_each`] without the box: [`fetch_rows`] awaits it
    /// inline.
    async fn fetch_each(&self, stmt: &mut Stmt, row: &mut SendRowFn<'_>) -> Result<()> {
        self.admit(stmt)?;
        let _writer = if stmt.writes { self.core.writer_slot().await? } else { None };
        let start = self.core.clock();
        let mut conn = self.core.pool.acquire_fast().await?;
        let result = conn.query_each_inline(stmt, row).await;
        self.core.observe(stmt, start, &result);
        result
    }
}

/// Runs a read and hands each row to `row` as the driver reads it (false
/// stops): synchronously when the backend is in-process and a connection
/// is free ([`Executor::__fetch_now`]); on a [`Db`], inline in the caller's
/// future, sparing the executor layer's boxed future (a key lookup on
/// PostgreSQL is a few thousand instructions, and a box is a tenth of
/// them); otherwise (a transaction) through [`Executor::__fetch_each`].
pub(crate) async fn fetch_rows(ex: &(impl Executor + ?Sized), stmt: &mut Stmt, row: &mut SendRowFn<'_>) -> Result<()> {
    if let Some(done) = ex.__fetch_now(stmt, row) {
        return done;
    }
    fetch_rows_async(ex, stmt, row).await
}

/// [`fetch_rows`] past its synchronous attempt, for a caller that made it
/// itself (a key lookup, so that SQLite's answer does not enter a future).
pub(crate) async fn fetch_rows_async(
    ex: &(impl Executor + ?Sized),
    stmt: &mut Stmt,
    row: &mut SendRowFn<'_>,
) -> Result<()> {
    match ex.__as_db() {
        Some(db) => db.fetch_each(stmt, row).await,
        None => ex.__fetch_each(stmt, row).await,
    }
}

impl Executor for Db {
    fn dialect(&self) -> Dialect {
        self.core.dialect
    }

    fn __fetch(&self, mut stmt: Stmt) -> BoxFuture<'_, Result<QueryResult>> {
        Box::pin(async move {
            self.admit(&mut stmt)?;
            let _writer = if stmt.writes { self.core.writer_slot().await? } else { None };
            let start = self.core.clock();
            let mut conn = self.core.pool.acquire_fast().await?;
            let result = match conn.query_now(&stmt) {
                Some(r) => r,
                None => conn.query(&stmt).await,
            };
            self.core.observe(&stmt, start, &result);
            result
        })
    }

    // Inline: a remote backend's read asks and is told no on every statement.
    #[inline]
    fn __fetch_now(&self, stmt: &Stmt, row: &mut RowFn<'_>) -> Option<Result<()>> {
        if stmt.writes || !self.core.in_process {
            return None;
        }
        self.fetch_now(stmt, row)
    }

    fn __fetch_each<'a>(&'a self, stmt: &'a mut Stmt, row: &'a mut SendRowFn<'_>) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.fetch_each(stmt, row))
    }

    fn __exec(&self, mut stmt: Stmt) -> BoxFuture<'_, Result<Executed>> {
        Box::pin(async move {
            self.admit(&mut stmt)?;
            let _writer = if stmt.writes { self.core.writer_slot().await? } else { None };
            let start = self.core.clock();
            let mut conn = self.core.pool.acquire_fast().await?;
            let result = match conn.execute_now(&stmt) {
                Some(r) => r,
                None => conn.execute(&stmt).await,
            };
            self.core.observe(&stmt, start, &result);
            result
        })
    }

    fn __exec_bound<'a>(&'a self, mut stmt: Stmt, params: &'a dyn BindParams) -> BoxFuture<'a, Result<Executed>> {
        Box::pin(async move {
            self.admit(&mut stmt)?;
            let _writer = if stmt.writes { self.core.writer_slot().await? } else { None };
            let mut conn = self.core.pool.acquire_fast().await?;
            run_exec_bound(&self.core, &mut *conn, stmt, params).await
        })
    }

    fn __stream(&self, mut stmt: Stmt) -> BoxStream<'static, Result<Row>> {
        if let Err(e) = self.admit(&mut stmt) {
            return futures::stream::once(async move { Err(e) }).boxed();
        }
        let core = self.core.clone();
        spawn_stream(stmt, core.clone(), async move { core.pool.acquire().await.map(ConnHolder::Pooled) })
    }

    fn __concurrent(&self) -> bool {
        self.core.pool.size() > 1
    }

    fn __options(&self) -> &Options {
        &self.core.options
    }

    fn __as_db(&self) -> Option<&Db> {
        Some(self)
    }

    fn __shard_map(&self, table: &'static str) -> BoxFuture<'_, Option<Arc<ShardMap>>> {
        Box::pin(async move {
            if let Some(known) = self.core.shoal.as_ref()?.known_shard_map(table) {
                return known;
            }
            let mut conn = self.core.pool.acquire().await.ok()?;
            conn.shard_map(table)
                .await
                .map_err(|e| tracing::debug!("shoal: the shard map of {table} could not be read: {e}"))
                .ok()
                .flatten()
        })
    }

    fn __dyn(&self) -> &dyn Executor {
        self
    }
}

/// A blocking connection that has no synchronous query path (a backend bug).
pub(crate) fn not_in_process() -> Result<()> {
    Err(Error::Unsupported("an in-process connection without a synchronous query path".into()))
}

/// A connection a stream task owns: pooled, or a transaction's (locked).
pub(crate) enum ConnHolder {
    Pooled(PooledConn),
    Tx(tokio::sync::OwnedMutexGuard<Option<PooledConn>>),
}

impl ConnHolder {
    fn conn(&mut self) -> Result<&mut PooledConn> {
        match self {
            ConnHolder::Pooled(c) => Ok(c),
            ConnHolder::Tx(guard) => guard.as_mut().ok_or(Error::TransactionClosed),
        }
    }
}

/// Runs a stream on its own task (a blocking thread for SQLite) and hands
/// its rows over a bounded channel, so a slow consumer slows the reader
/// instead of filling memory.
pub(crate) fn spawn_stream(
    stmt: Stmt,
    core: Arc<Core>,
    conn: impl Future<Output = Result<ConnHolder>> + Send + 'static,
) -> BoxStream<'static, Result<Row>> {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        let e = Error::Unsupported("streaming outside a tokio runtime".into());
        return futures::stream::once(async move { Err(e) }).boxed();
    };
    let (sink, rx) = RowSink::channel();
    let report = sink.clone();
    runtime.spawn(async move {
        let start = core.clock();
        let mut holder = match conn.await {
            Ok(h) => h,
            Err(e) => return report.fail(e).await,
        };
        let blocking = match holder.conn() {
            Ok(c) => c.is_blocking(),
            Err(e) => return report.fail(e).await,
        };
        let result: Result<()> = if blocking {
            let handle = tokio::runtime::Handle::current();
            let task_stmt = stmt.clone();
            tokio::task::spawn_blocking(move || {
                let conn = holder.conn()?;
                match conn.stream(&task_stmt, sink) {
                    StreamTask::Blocking(job) => job(),
                    StreamTask::Async(fut) => handle.block_on(fut),
                }
            })
            .await
            .unwrap_or_else(|e| Err(Error::Database { sqlstate: "XX000".into(), message: format!("stream task: {e}") }))
        } else {
            let job = holder.conn().and_then(|conn| match conn.stream(&stmt, sink) {
                StreamTask::Async(fut) => Ok(fut),
                // A connection that blocks says so through is_blocking(); one
                // that does not but hands back blocking work is refused
                // rather than allowed to stall a runtime thread.
                StreamTask::Blocking(_) => {
                    Err(Error::Unsupported("a non-blocking connection returned a blocking stream".into()))
                }
            });
            match job {
                Ok(fut) => fut.await,
                Err(e) => Err(e),
            }
        };
        core.observe(&stmt, start, &result);
        if let Err(e) = result {
            report.fail(e).await;
        }
    });
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) }).boxed()
}

/// Runs `stmt` on `conn`, observing it.
pub(crate) async fn run_query(core: &Core, conn: &mut dyn Connection, stmt: &Stmt) -> Result<QueryResult> {
    let start = core.clock();
    let result = match conn.query_now(stmt) {
        Some(r) => r,
        None => conn.query(stmt).await,
    };
    core.observe(stmt, start, &result);
    result
}

/// Runs a write whose parameters are in `params`: bound in place by an
/// in-process connection, collected into `stmt.params` for the others.
pub(crate) async fn run_exec_bound(
    core: &Core,
    conn: &mut dyn Connection,
    mut stmt: Stmt,
    params: &dyn BindParams,
) -> Result<Executed> {
    let start = core.clock();
    let result = match conn.execute_bound_now(&stmt, params) {
        Some(r) => r,
        None => {
            let mut values = Vec::with_capacity(params.count());
            match params.bind(&mut values) {
                Ok(()) => {
                    stmt.params = values;
                    conn.execute(&stmt).await
                }
                Err(e) => Err(e),
            }
        }
    };
    core.observe_counted(&stmt, params.count(), start, &result);
    result
}

pub(crate) async fn run_exec(core: &Core, conn: &mut dyn Connection, stmt: &Stmt) -> Result<Executed> {
    let start = core.clock();
    let result = match conn.execute_now(stmt) {
        Some(r) => r,
        None => conn.execute(stmt).await,
    };
    core.observe(stmt, start, &result);
    result
}
