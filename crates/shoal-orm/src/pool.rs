//! A small connection pool: a stack of idle connections and a count of open
//! ones under one mutex, a `Notify` for waiters, and a guard that gives a
//! connection back when dropped. (One short lock per loan and one per
//! return: on in-process SQLite the pool is on every statement's path.)
//!
//! A connection comes back only if it is healthy and outside any
//! transaction. One dropped inside a transaction (a cancelled future, a
//! transaction handle dropped without commit) is reset in place when the
//! backend can do so synchronously (SQLite rolls back), and otherwise
//! closed — closing a PostgreSQL or MySQL session rolls its transaction
//! back on the server. Either way no pooled connection is ever handed out
//! in the middle of someone else's transaction.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use crate::backend::{Backend, Connection};
use crate::error::{Error, Result};

pub(crate) struct Pool {
    backend: Arc<dyn Backend>,
    state: Mutex<State>,
    /// Woken when a connection comes back or a slot frees up.
    returned: Notify,
    size: usize,
    acquire_timeout: Duration,
}

struct State {
    idle: Vec<Box<dyn Connection>>,
    /// Connections open or being opened, idle ones included.
    open: usize,
    /// Tasks in `acquire` that found nothing free and wait to be woken: a
    /// return notifies only when there is one (most returns find none).
    waiting: usize,
}

impl Pool {
    pub(crate) fn new(backend: Arc<dyn Backend>, size: usize, acquire_timeout: Duration) -> Arc<Pool> {
        let size = size.max(1);
        Arc::new(Pool {
            backend,
            state: Mutex::new(State { idle: Vec::with_capacity(size), open: 0, waiting: 0 }),
            returned: Notify::new(),
            size,
            acquire_timeout,
        })
    }

    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// An idle connection, or the right to open one; `None` when all are
    /// out, and the caller is then counted as waiting until it calls
    /// [`Pool::stop_waiting`].
    fn take(&self) -> Option<Option<Box<dyn Connection>>> {
        let mut state = self.state.lock().ok()?;
        if let Some(c) = state.idle.pop() {
            return Some(Some(c));
        }
        if state.open < self.size {
            state.open += 1;
            return Some(None);
        }
        state.waiting += 1;
        None
    }

    fn stop_waiting(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.waiting = state.waiting.saturating_sub(1);
        }
    }

    /// A connection, waiting at most the acquire timeout for one to free up.
    pub(crate) async fn acquire(self: &Arc<Self>) -> Result<PooledConn> {
        let mut deadline = None;
        loop {
            // Register interest before looking, so a return in between wakes us.
            let notified = self.returned.notified();
            match self.take() {
                Some(Some(conn)) => return Ok(self.lend(conn)),
                Some(None) => {
                    return match self.backend.connect().await {
                        Ok(conn) => Ok(self.lend(conn)),
                        Err(e) => {
                            self.forget_one();
                            Err(e)
                        }
                    };
                }
                None => {
                    // The clock is read only when there is something to wait for.
                    let until = *deadline.get_or_insert_with(|| tokio::time::Instant::now() + self.acquire_timeout);
                    // A return between `take` and here leaves a permit in
                    // `notified`, so the wake-up is not lost.
                    let woken = tokio::time::timeout_at(until, notified).await;
                    self.stop_waiting();
                    if woken.is_err() {
                        return Err(Error::Connect {
                            message: format!(
                                "no connection became free within {:?} (pool of {}); is a transaction or \
                                 stream holding one while the same task waits for another?",
                                self.acquire_timeout, self.size
                            ),
                        });
                    }
                }
            }
        }
    }

    /// An idle connection if one is free right now (the synchronous path
    /// of in-process backends); never opens or waits.
    /// [`Pool::acquire`] for a statement's hot path: an idle connection
    /// is taken at once; only a wait (or a new connection) runs the full
    /// acquire, boxed, so the caller's future does not carry its timer and
    /// wait state on every statement.
    pub(crate) async fn acquire_fast(self: &Arc<Self>) -> Result<PooledConn> {
        match self.try_acquire() {
            Some(conn) => Ok(conn),
            None => Box::pin(self.acquire()).await,
        }
    }

    pub(crate) fn try_acquire(self: &Arc<Self>) -> Option<PooledConn> {
        let conn = self.state.lock().ok()?.idle.pop()?;
        Some(self.lend(conn))
    }

    fn lend(self: &Arc<Self>, conn: Box<dyn Connection>) -> PooledConn {
        PooledConn { conn: Some(conn), pool: self.clone(), in_transaction: false }
    }

    /// A connection closed for good: its slot is free for a new one.
    fn forget_one(&self) {
        let waiting = match self.state.lock() {
            Ok(mut state) => {
                state.open = state.open.saturating_sub(1);
                state.waiting > 0
            }
            Err(_) => true,
        };
        if waiting {
            self.returned.notify_one();
        }
    }

    fn give_back(&self, conn: Box<dyn Connection>) {
        let waiting = match self.state.lock() {
            Ok(mut state) => {
                state.idle.push(conn);
                state.waiting > 0
            }
            Err(_) => true,
        };
        if waiting {
            self.returned.notify_one();
        }
    }
}

/// A connection on loan from the pool.
pub(crate) struct PooledConn {
    conn: Option<Box<dyn Connection>>,
    pool: Arc<Pool>,
    /// Set between BEGIN and COMMIT/ROLLBACK.
    pub(crate) in_transaction: bool,
}

impl Deref for PooledConn {
    type Target = dyn Connection;
    fn deref(&self) -> &Self::Target {
        self.conn.as_deref().expect("present until drop")
    }
}

impl DerefMut for PooledConn {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.conn.as_deref_mut().expect("present until drop")
    }
}

impl Drop for PooledConn {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else { return };
        if conn.is_broken() || (self.in_transaction && !conn.reset_now()) {
            drop(conn);
            self.pool.forget_one();
        } else {
            self.pool.give_back(conn);
        }
    }
}
