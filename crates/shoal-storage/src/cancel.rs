//! Cancelling one statement on the shared writer connection.
//!
//! The writer connection runs statements of many clients in turn (the
//! batcher runs one client's autocommit write after another in one SQLite
//! transaction). `sqlite3_interrupt` stops whatever the connection runs at
//! the moment it is called, so a late cancel could hit the *next* client's
//! statement. Instead each statement carries a [`StatementCancel`]; while it
//! runs ([`crate::Replica::execute_cancellable`]) the writer's progress
//! handler looks at that flag, and only that flag, every
//! [`crate::budget::CHECK_EVERY_OPS`] SQLite steps.
//!
//! ```text
//!           start()            finish()
//!  Queued ─────────▶ Running ──────────▶ Finished
//!     │                 │
//!     │ cancel(),       │ cancel()
//!     │ withdraw()      ▼
//!     └──────────▶ Cancelled
//!     (a cancel after finish() is refused: the statement goes on to commit;
//!      withdraw() succeeds only before start())
//! ```
//!
//! The flag is a small state machine so that "cancelled" and "will be
//! committed" exclude each other: the batcher calls [`StatementCancel::finish`]
//! before a write is proposed to Raft, and from then on a cancel request
//! changes nothing (PostgreSQL cannot cancel a commit in progress either).
//!
//! A statement that *waits* (for the write slot, in the batcher's queue)
//! awaits [`StatementCancel::cancelled`] beside what it waits for, so it
//! gives up as soon as the cancel wins; a statement that finished is never
//! woken that way and reports its real outcome.
//!
//! **SQLite rolls back the whole transaction when it interrupts a write**
//! (`sqlite3VdbeHalt`: an interrupted statement that is not read-only aborts
//! the transaction, savepoints included). [`crate::Replica::transaction_lost`]
//! tells when that happened and [`crate::Replica::redo`] rebuilds the
//! transaction from its recorded statements, exactly as a follower replays them.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use shoal_common::{Error, SqlState};
use tokio::sync::Notify;

/// Not started: the batcher has not taken it from its queue (or, for a
/// statement that is not queued, nothing has marked it started).
const QUEUED: u8 = 0;
const CANCELLED: u8 = 1;
const FINISHED: u8 = 2;
const RUNNING: u8 = 3;

#[derive(Debug, Default)]
struct Flag {
    state: AtomicU8,
    /// Wakes [`StatementCancel::cancelled`] when the cancel wins.
    cancelled: Notify,
}

/// One statement's cancel flag; clones share it. See the module docs.
#[derive(Clone, Debug, Default)]
pub struct StatementCancel {
    flag: Arc<Flag>,
}

impl StatementCancel {
    pub fn new() -> StatementCancel {
        StatementCancel::default()
    }

    /// Asks the statement to stop. Returns false when it already finished
    /// (it will be committed; the request is ignored).
    pub fn cancel(&self) -> bool {
        self.cancel_from(&[QUEUED, RUNNING])
    }

    /// Cancels the statement only if it has not started ([`StatementCancel::start`]):
    /// true when it will certainly never run. A leader gives up a forwarded
    /// write that waited too long in the batcher's queue this way, so its
    /// origin can send it again; one that runs is left to finish.
    pub fn withdraw(&self) -> bool {
        self.cancel_from(&[QUEUED])
    }

    fn cancel_from(&self, states: &[u8]) -> bool {
        for &from in states {
            match self.flag.state.compare_exchange(from, CANCELLED, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    self.flag.cancelled.notify_waiters();
                    return true;
                }
                Err(CANCELLED) => return true,
                Err(_) => {}
            }
        }
        false
    }

    /// Marks a queued statement as started. False when a cancel came first:
    /// it must not run.
    pub fn start(&self) -> bool {
        match self.flag.state.compare_exchange(QUEUED, RUNNING, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => true,
            Err(state) => state != CANCELLED,
        }
    }

    /// True once [`StatementCancel::cancel`] won.
    pub fn is_cancelled(&self) -> bool {
        self.flag.state.load(Ordering::Acquire) == CANCELLED
    }

    /// Resolves once [`StatementCancel::cancel`] has won (at once if it
    /// already has); never, for a statement that finished. Meant to be
    /// raced against a wait, which the caller then abandons.
    pub async fn cancelled(&self) {
        loop {
            let notified = self.flag.cancelled.notified();
            let mut notified = std::pin::pin!(notified);
            // Registered before the check, so a cancel in between still wakes us.
            notified.as_mut().enable();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }

    /// Marks the statement as past the point of cancelling. Returns false
    /// when a cancel came first: the caller must undo the statement and
    /// answer [`canceled`].
    pub fn finish(&self) -> bool {
        for from in [RUNNING, QUEUED] {
            match self.flag.state.compare_exchange(from, FINISHED, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) | Err(FINISHED) => return true,
                Err(CANCELLED) => return false,
                Err(_) => {}
            }
        }
        false
    }
}

/// The error of a cancelled statement (the session words it for its reason:
/// a cancel request or `statement_timeout`).
pub fn canceled() -> Error {
    Error::environment(SqlState::QUERY_CANCELED, "canceling statement due to user request")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_and_finish_exclude_each_other() {
        let flag = StatementCancel::new();
        assert!(!flag.is_cancelled());
        assert!(flag.cancel());
        assert!(flag.cancel(), "cancelling twice is still cancelled");
        assert!(!flag.finish(), "a cancelled statement cannot finish");
        assert!(flag.is_cancelled());

        let flag = StatementCancel::new();
        let shared = flag.clone();
        assert!(flag.finish());
        assert!(flag.finish());
        assert!(!shared.cancel(), "a finished statement goes on to commit");
        assert!(!shared.is_cancelled());
    }

    #[test]
    fn only_a_statement_that_has_not_started_can_be_withdrawn() {
        let flag = StatementCancel::new();
        assert!(flag.withdraw(), "queued: withdrawn");
        assert!(!flag.start(), "a withdrawn statement never starts");
        assert!(flag.is_cancelled());

        let flag = StatementCancel::new();
        assert!(flag.start());
        assert!(!flag.withdraw(), "running: left to finish");
        assert!(!flag.is_cancelled());
        assert!(flag.cancel(), "a cancel still stops it");
        assert!(!flag.finish());

        let flag = StatementCancel::new();
        assert!(flag.start() && flag.finish());
        assert!(!flag.withdraw() && !flag.cancel());
    }

    #[test]
    fn a_waiter_wakes_on_cancel_and_never_after_finish() {
        use std::future::Future;
        use std::task::{Context, Poll, Waker};
        let mut cx = Context::from_waker(Waker::noop());

        let flag = StatementCancel::new();
        let mut waiting = std::pin::pin!(flag.cancelled());
        assert!(waiting.as_mut().poll(&mut cx).is_pending());
        assert!(flag.clone().cancel());
        assert_eq!(waiting.as_mut().poll(&mut cx), Poll::Ready(()), "woken by the cancel");
        assert_eq!(std::pin::pin!(flag.cancelled()).poll(&mut cx), Poll::Ready(()), "already cancelled");

        let flag = StatementCancel::new();
        let mut waiting = std::pin::pin!(flag.cancelled());
        assert!(waiting.as_mut().poll(&mut cx).is_pending());
        assert!(flag.finish());
        assert!(!flag.cancel());
        assert!(waiting.as_mut().poll(&mut cx).is_pending(), "a finished statement is never woken");
    }
}
