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
//!            cancel()                 finish()
//!  Running ───────────▶ Cancelled    Running ─────────▶ Finished
//!     (a cancel after finish() is refused: the statement goes on to commit)
//! ```
//!
//! The flag is a small state machine so that "cancelled" and "will be
//! committed" exclude each other: the batcher calls [`StatementCancel::finish`]
//! before a write is proposed to Raft, and from then on a cancel request
//! changes nothing (PostgreSQL cannot cancel a commit in progress either).
//!
//! **SQLite rolls back the whole transaction when it interrupts a write**
//! (`sqlite3VdbeHalt`: an interrupted statement that is not read-only aborts
//! the transaction, savepoints included). [`crate::Replica::transaction_lost`]
//! tells when that happened and [`crate::Replica::redo`] rebuilds the
//! transaction from its recorded statements, exactly as a follower replays them.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use shoal_common::{Error, SqlState};

const RUNNING: u8 = 0;
const CANCELLED: u8 = 1;
const FINISHED: u8 = 2;

/// One statement's cancel flag; clones share it. See the module docs.
#[derive(Clone, Debug, Default)]
pub struct StatementCancel {
    state: Arc<AtomicU8>,
}

impl StatementCancel {
    pub fn new() -> StatementCancel {
        StatementCancel::default()
    }

    /// Asks the statement to stop. Returns false when it already finished
    /// (it will be committed; the request is ignored).
    pub fn cancel(&self) -> bool {
        match self.state.compare_exchange(RUNNING, CANCELLED, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => true,
            Err(state) => state == CANCELLED,
        }
    }

    /// True once [`StatementCancel::cancel`] won.
    pub fn is_cancelled(&self) -> bool {
        self.state.load(Ordering::Acquire) == CANCELLED
    }

    /// Marks the statement as past the point of cancelling. Returns false
    /// when a cancel came first: the caller must undo the statement and
    /// answer [`canceled`].
    pub fn finish(&self) -> bool {
        match self.state.compare_exchange(RUNNING, FINISHED, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => true,
            Err(state) => state == FINISHED,
        }
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
}
