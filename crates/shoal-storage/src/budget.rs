//! Time budgets for statements run on an async thread.
//!
//! Most reads are point lookups that SQLite answers in microseconds: handing
//! each one to a blocking thread costs two thread switches, more than the
//! lookup itself. So a read first runs inline on the async thread under a
//! [`StepBudget`]: SQLite's progress handler checks the clock every
//! [`CHECK_EVERY_OPS`] virtual-machine steps and interrupts the statement
//! once its deadline has passed. A read that runs out of budget is thrown
//! away and run again, without a budget, on a blocking thread — safe because
//! it is read-only, and it still sees the same snapshot inside a transaction
//! (an interrupted SELECT leaves the read transaction open).
//!
//! Only reads may run this way: an interrupted write inside an explicit
//! transaction makes SQLite roll the whole transaction back.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use shoal_common::Result;

use crate::sqlite_error::from_sqlite;

/// How many SQLite VM steps pass between two looks at the clock.
pub const CHECK_EVERY_OPS: i32 = 1000;

/// "No deadline" in [`StepBudget`]'s deadline cell.
const UNLIMITED: u64 = u64::MAX;

/// A deadline for the statements of one connection; see the module docs.
#[derive(Clone, Debug)]
pub struct StepBudget {
    inner: Arc<BudgetState>,
}

#[derive(Debug)]
struct BudgetState {
    /// Nanoseconds since [`epoch`] after which the statement is interrupted.
    deadline: AtomicU64,
    /// Set by the progress handler when it interrupted a statement.
    tripped: AtomicBool,
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_nanos() -> u64 {
    u64::try_from(epoch().elapsed().as_nanos()).unwrap_or(UNLIMITED - 1)
}

impl StepBudget {
    /// Installs the progress handler on `conn`; the budget starts unlimited.
    pub fn install(conn: &mut Connection) -> Result<StepBudget> {
        let inner = Arc::new(BudgetState { deadline: AtomicU64::new(UNLIMITED), tripped: AtomicBool::new(false) });
        let state = inner.clone();
        conn.progress_handler(
            CHECK_EVERY_OPS,
            Some(move || {
                let deadline = state.deadline.load(Ordering::Relaxed);
                if deadline != UNLIMITED && now_nanos() > deadline {
                    state.tripped.store(true, Ordering::Relaxed);
                    return true;
                }
                false
            }),
        )
        .map_err(from_sqlite)?;
        Ok(StepBudget { inner })
    }

    /// Runs `f` with statements interrupted after `limit`. Returns `None` if
    /// the budget ran out (whatever `f` returned is discarded then).
    pub fn run_within<T>(&self, limit: Duration, f: impl FnOnce() -> T) -> Option<T> {
        let deadline = now_nanos().saturating_add(u64::try_from(limit.as_nanos()).unwrap_or(UNLIMITED - 1));
        self.inner.tripped.store(false, Ordering::Relaxed);
        self.inner.deadline.store(deadline.min(UNLIMITED - 1), Ordering::Relaxed);
        let result = f();
        self.inner.deadline.store(UNLIMITED, Ordering::Relaxed);
        if self.inner.tripped.swap(false, Ordering::Relaxed) {
            None
        } else {
            Some(result)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replica::{open_connection, run_read_only};
    use shoal_common::Value;

    fn setup() -> (tempfile::TempDir, Connection, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let writer = open_connection(&path, false).unwrap();
        writer
            .execute_batch(
                "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
                 INSERT INTO t SELECT value, 'x' FROM generate_series(1, 2000);",
            )
            .unwrap();
        let reader = open_connection(&path, false).unwrap();
        (dir, writer, reader)
    }

    const SLOW: &str = "SELECT count(*) FROM t a, t b, t c WHERE a.id + b.id + c.id = -1";

    #[test]
    fn short_reads_finish_within_budget() {
        let (_dir, _writer, mut reader) = setup();
        let budget = StepBudget::install(&mut reader).unwrap();
        let out = budget
            .run_within(Duration::from_secs(5), || run_read_only(&reader, "SELECT v FROM t WHERE id = 7", &[]))
            .expect("a point lookup fits the budget")
            .unwrap();
        assert_eq!(out.rows, vec![vec![Value::Text("x".into())]]);
    }

    #[test]
    fn long_reads_are_interrupted_and_can_run_again_unlimited() {
        let (_dir, _writer, mut reader) = setup();
        let budget = StepBudget::install(&mut reader).unwrap();
        let cut = budget.run_within(Duration::from_micros(200), || run_read_only(&reader, SLOW, &[]));
        assert!(cut.is_none(), "a billion-row join cannot finish in 200µs");
        // Unlimited afterwards: a statement that needs many steps completes.
        let out = run_read_only(&reader, "SELECT count(*) FROM t a, t b WHERE a.id <= 300", &[]).unwrap();
        assert_eq!(out.rows, vec![vec![Value::Integer(600_000)]]);
    }

    #[test]
    fn an_interrupted_read_keeps_the_transaction_snapshot() {
        let (_dir, writer, mut reader) = setup();
        let budget = StepBudget::install(&mut reader).unwrap();
        reader.execute_batch("BEGIN").unwrap();
        let count = |conn: &Connection| run_read_only(conn, "SELECT count(*) FROM t", &[]).unwrap().rows;
        assert_eq!(count(&reader), vec![vec![Value::Integer(2000)]]);
        writer.execute_batch("INSERT INTO t VALUES (5000, 'y')").unwrap();
        assert!(budget.run_within(Duration::from_micros(200), || run_read_only(&reader, SLOW, &[])).is_none());
        assert!(!reader.is_autocommit(), "the read transaction is still open");
        assert_eq!(count(&reader), vec![vec![Value::Integer(2000)]], "same snapshot as before the interrupt");
        reader.execute_batch("COMMIT").unwrap();
        assert_eq!(count(&reader), vec![vec![Value::Integer(2001)]]);
    }
}
