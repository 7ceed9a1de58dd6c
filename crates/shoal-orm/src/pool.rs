//! A small connection pool: a semaphore for the limit, a stack of idle
//! connections, and a guard that gives a connection back when dropped.
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

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::backend::{Backend, Connection};
use crate::error::{Error, Result};

pub(crate) struct Pool {
    backend: Arc<dyn Backend>,
    idle: Mutex<Vec<Box<dyn Connection>>>,
    permits: Arc<Semaphore>,
    size: usize,
    acquire_timeout: Duration,
}

impl Pool {
    pub(crate) fn new(backend: Arc<dyn Backend>, size: usize, acquire_timeout: Duration) -> Arc<Pool> {
        let size = size.max(1);
        Arc::new(Pool {
            backend,
            idle: Mutex::new(Vec::with_capacity(size)),
            permits: Arc::new(Semaphore::new(size)),
            size,
            acquire_timeout,
        })
    }

    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// A connection, waiting at most the acquire timeout for a free slot.
    pub(crate) async fn acquire(self: &Arc<Self>) -> Result<PooledConn> {
        let permit = tokio::time::timeout(self.acquire_timeout, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| Error::Connect {
                message: format!(
                    "no connection became free within {:?} (pool of {}); is a transaction or stream \
                     holding one while the same task waits for another?",
                    self.acquire_timeout, self.size
                ),
            })?
            .map_err(|_| Error::Connect { message: "the pool is closed".into() })?;
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let conn = match idle {
            Some(c) => c,
            None => self.backend.connect().await?,
        };
        Ok(PooledConn { conn: Some(conn), pool: self.clone(), _permit: permit, in_transaction: false })
    }
}

/// A connection on loan from the pool.
pub(crate) struct PooledConn {
    conn: Option<Box<dyn Connection>>,
    pool: Arc<Pool>,
    _permit: OwnedSemaphorePermit,
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
        if conn.is_broken() {
            return;
        }
        if self.in_transaction && !conn.reset_now() {
            return;
        }
        if let Ok(mut idle) = self.pool.idle.lock() {
            idle.push(conn);
        }
    }
}
