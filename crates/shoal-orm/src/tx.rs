//! Transactions and savepoints.
//!
//! ```text
//!   db.transaction(|tx| async move {          BEGIN                (SQLite: BEGIN IMMEDIATE,
//!       a.save(&tx).await?;                                          after the writer slot)
//!       tx.transaction(|sp| async move {      SAVEPOINT shoal_sp_1
//!           b.save(&sp).await?;
//!           Err(…)                            ROLLBACK TO SAVEPOINT shoal_sp_1; RELEASE …
//!       }).await.ok();
//!       Ok(())                                COMMIT
//!   })
//! ```
//!
//! A `Tx` is a handle (cheap to clone) to one connection held for the
//! transaction's life. The closure API commits when the closure returns
//! `Ok`, rolls back on `Err`, and rolls back and re-raises on panic; a `Tx`
//! dropped without either is rolled back by the pool (see `pool.rs`).
//!
//! On PostgreSQL and Shoal an error inside a transaction aborts it, and the
//! server turns a later COMMIT into a silent ROLLBACK. The ORM remembers the
//! failure and makes that COMMIT an error (25P02) instead, unless a
//! savepoint rolled back past it — so `Ok` from a transaction always means
//! committed.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::FutureExt;
use tokio::sync::OwnedMutexGuard;

use crate::backend::shoal::{FeatureState, ShardMap};
use crate::backend::{BindParams, Executed, QueryResult, RowFn, SendRowFn};
use crate::db::{
    not_in_process, run_exec, run_exec_bound, run_query, spawn_stream, ConnHolder, Core, Executor, Options, Stmt, Unit,
};
use crate::dialect::Dialect;
use crate::error::{Error, Result};
use crate::model::Row;
use crate::pool::PooledConn;

/// What all levels of one transaction share.
struct Shared {
    core: Arc<Core>,
    /// Declared before `writer`: the connection is reset or closed before
    /// SQLite's writer slot is released.
    conn: Arc<tokio::sync::Mutex<Option<PooledConn>>>,
    writer: std::sync::Mutex<Option<OwnedMutexGuard<()>>>,
    savepoints: AtomicU32,
    /// A statement failed and the server has aborted the transaction
    /// (PostgreSQL, Shoal).
    aborted: AtomicBool,
}

/// One level: the transaction itself or a savepoint inside it.
struct Level {
    savepoint: Option<String>,
    finished: AtomicBool,
}

/// An open transaction (or savepoint). Run statements on it with `&tx`.
#[derive(Clone)]
pub struct Tx {
    shared: Arc<Shared>,
    level: Arc<Level>,
    unit: Unit,
}

impl std::fmt::Debug for Tx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx").field("savepoint", &self.level.savepoint).finish()
    }
}

impl Tx {
    pub(crate) fn new(core: Arc<Core>, conn: PooledConn, writer: Option<OwnedMutexGuard<()>>, unit: Unit) -> Tx {
        Tx {
            shared: Arc::new(Shared {
                core,
                conn: Arc::new(tokio::sync::Mutex::new(Some(conn))),
                writer: std::sync::Mutex::new(writer),
                savepoints: AtomicU32::new(0),
                aborted: AtomicBool::new(false),
            }),
            level: Arc::new(Level { savepoint: None, finished: AtomicBool::new(false) }),
            unit,
        }
    }

    fn pg_like(&self) -> bool {
        matches!(self.shared.core.dialect, Dialect::Postgres | Dialect::Shoal)
    }

    /// Checks that the transaction is open and the statement passes strict
    /// mode, and marks it as running inside the transaction.
    fn admit(&self, stmt: &mut Stmt) -> Result<()> {
        self.ensure_open()?;
        self.unit.check(stmt)?;
        stmt.in_transaction = true;
        Ok(())
    }

    fn ensure_open(&self) -> Result<()> {
        if self.level.finished.load(Ordering::Acquire) {
            return Err(Error::TransactionClosed);
        }
        Ok(())
    }

    /// Runs transaction-control SQL on the connection.
    async fn control(&self, sql: &str) -> Result<()> {
        let mut guard = self.shared.conn.lock().await;
        let conn = guard.as_mut().ok_or(Error::TransactionClosed)?;
        conn.batch(sql).await
    }

    /// Opens a savepoint; prefer [`Tx::transaction`].
    pub async fn savepoint(&self) -> Result<Tx> {
        self.ensure_open()?;
        let n = self.shared.savepoints.fetch_add(1, Ordering::Relaxed) + 1;
        let name = format!("shoal_sp_{n}");
        self.control(&format!("SAVEPOINT {name}")).await?;
        Ok(Tx {
            shared: self.shared.clone(),
            level: Arc::new(Level { savepoint: Some(name), finished: AtomicBool::new(false) }),
            unit: self.unit.clone(),
        })
    }

    /// Runs `f` inside a savepoint: released when it returns `Ok`, rolled
    /// back to when it returns `Err` or panics. The enclosing transaction
    /// goes on either way.
    pub async fn transaction<T, F, Fut>(&self, f: F) -> Result<T>
    where
        F: FnOnce(Tx) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let sp = self.savepoint().await?;
        sp.run(f).await
    }

    /// Commits the transaction, or releases the savepoint.
    pub async fn commit(self) -> Result<()> {
        self.ensure_open()?;
        self.level.finished.store(true, Ordering::Release);
        if let Some(name) = &self.level.savepoint {
            return self.control(&format!("RELEASE SAVEPOINT {name}")).await;
        }
        let mut guard = self.shared.conn.lock().await;
        let mut conn = guard.take().ok_or(Error::TransactionClosed)?;
        if self.pg_like() && self.shared.aborted.load(Ordering::Acquire) {
            let _ = conn.batch("ROLLBACK").await.map(|()| conn.in_transaction = false);
            return Err(Error::Database {
                sqlstate: "25P02".into(),
                message: "a statement failed inside this transaction, so it was rolled back, not committed".into(),
            });
        }
        conn.batch("COMMIT").await?;
        conn.in_transaction = false;
        if let Err(e) = conn.after_commit().await {
            tracing::debug!("after commit: {e}");
        }
        drop(conn);
        if let Ok(mut w) = self.shared.writer.lock() {
            w.take();
        }
        Ok(())
    }

    /// Rolls the transaction back, or rolls back to the savepoint.
    pub async fn rollback(self) -> Result<()> {
        self.ensure_open()?;
        self.level.finished.store(true, Ordering::Release);
        if let Some(name) = &self.level.savepoint {
            self.control(&format!("ROLLBACK TO SAVEPOINT {name}")).await?;
            self.shared.aborted.store(false, Ordering::Release);
            return self.control(&format!("RELEASE SAVEPOINT {name}")).await;
        }
        let mut guard = self.shared.conn.lock().await;
        let mut conn = guard.take().ok_or(Error::TransactionClosed)?;
        conn.batch("ROLLBACK").await?;
        conn.in_transaction = false;
        drop(conn);
        if let Ok(mut w) = self.shared.writer.lock() {
            w.take();
        }
        Ok(())
    }

    /// Runs `f` on this level and finishes it by the outcome.
    pub(crate) async fn run<T, E, F, Fut>(self, f: F) -> Result<T, E>
    where
        F: FnOnce(Tx) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: From<Error>,
    {
        let handle = self.clone();
        let outcome = AssertUnwindSafe(async move { f(handle).await }).catch_unwind().await;
        match outcome {
            Ok(Ok(value)) => {
                self.commit().await?;
                Ok(value)
            }
            Ok(Err(e)) => {
                if let Err(rollback_error) = self.rollback().await {
                    tracing::warn!("rollback after an error failed: {rollback_error}");
                }
                Err(e)
            }
            Err(panic) => {
                if let Err(rollback_error) = self.rollback().await {
                    tracing::warn!("rollback after a panic failed: {rollback_error}");
                }
                std::panic::resume_unwind(panic)
            }
        }
    }

    pub(crate) async fn run_generic<T, E, F, Fut>(self, f: &mut F) -> Result<T, E>
    where
        F: FnMut(Tx) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: From<Error>,
    {
        self.run(f).await
    }

    fn note<T>(&self, r: &Result<T>) {
        if r.is_err() && self.pg_like() {
            self.shared.aborted.store(true, Ordering::Release);
        }
    }
}

impl Executor for Tx {
    fn dialect(&self) -> Dialect {
        self.shared.core.dialect
    }

    fn __fetch(&self, mut stmt: Stmt) -> BoxFuture<'_, Result<QueryResult>> {
        Box::pin(async move {
            self.admit(&mut stmt)?;
            stmt.read_target = self.unit.read_target;
            let mut guard = self.shared.conn.lock().await;
            let conn = guard.as_mut().ok_or(Error::TransactionClosed)?;
            let r = run_query(&self.shared.core, &mut **conn, &stmt).await;
            self.note(&r);
            r
        })
    }

    fn __fetch_now(&self, stmt: &Stmt, row: &mut RowFn<'_>) -> Option<Result<()>> {
        if !self.shared.core.in_process {
            return None;
        }
        let mut guard = self.shared.conn.try_lock().ok()?;
        let conn = guard.as_mut()?;
        if !conn.is_blocking() {
            return None;
        }
        if let Err(e) = self.ensure_open().and_then(|()| self.unit.check(stmt)) {
            return Some(Err(e));
        }
        let start = self.shared.core.clock();
        let r = conn.query_each_now(stmt, row).unwrap_or_else(not_in_process);
        self.shared.core.observe(stmt, start, &r);
        self.note(&r);
        Some(r)
    }

    fn __fetch_each<'a>(&'a self, stmt: &'a mut Stmt, row: &'a mut SendRowFn<'_>) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.admit(stmt)?;
            stmt.read_target = self.unit.read_target;
            let mut guard = self.shared.conn.lock().await;
            let conn = guard.as_mut().ok_or(Error::TransactionClosed)?;
            let start = self.shared.core.clock();
            let r = conn.query_each_inline(stmt, row).await;
            self.shared.core.observe(stmt, start, &r);
            self.note(&r);
            r
        })
    }

    fn __exec(&self, mut stmt: Stmt) -> BoxFuture<'_, Result<Executed>> {
        Box::pin(async move {
            self.admit(&mut stmt)?;
            let mut guard = self.shared.conn.lock().await;
            let conn = guard.as_mut().ok_or(Error::TransactionClosed)?;
            let r = run_exec(&self.shared.core, &mut **conn, &stmt).await;
            self.note(&r);
            r
        })
    }

    fn __exec_bound<'a>(&'a self, mut stmt: Stmt, params: &'a dyn BindParams) -> BoxFuture<'a, Result<Executed>> {
        Box::pin(async move {
            self.admit(&mut stmt)?;
            let mut guard = self.shared.conn.lock().await;
            let conn = guard.as_mut().ok_or(Error::TransactionClosed)?;
            let r = run_exec_bound(&self.shared.core, &mut **conn, stmt, params).await;
            self.note(&r);
            r
        })
    }

    fn __stream(&self, mut stmt: Stmt) -> BoxStream<'static, Result<Row>> {
        use futures::StreamExt;
        if let Err(e) = self.admit(&mut stmt) {
            return futures::stream::once(async move { Err(e) }).boxed();
        }
        let conn = self.shared.conn.clone();
        spawn_stream(stmt, self.shared.core.clone(), async move { Ok(ConnHolder::Tx(conn.lock_owned().await)) })
    }

    fn __concurrent(&self) -> bool {
        false
    }

    fn __options(&self) -> &Options {
        &self.shared.core.options
    }

    fn __as_db(&self) -> Option<&crate::Db> {
        None
    }

    fn __shard_map(&self, table: &'static str) -> BoxFuture<'_, Option<Arc<ShardMap>>> {
        Box::pin(async move {
            let state = self.shared.core.shoal.as_ref()?;
            if let Some(known) = state.known_shard_map(table) {
                return known;
            }
            // A failed read would abort the transaction: ask only a server
            // known to have the view.
            if state.shard_view.state() != FeatureState::Available {
                return None;
            }
            let mut guard = self.shared.conn.lock().await;
            guard.as_mut()?.shard_map(table).await.ok().flatten()
        })
    }

    fn __dyn(&self) -> &dyn Executor {
        self
    }
}
