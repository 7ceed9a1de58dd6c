//! What a data log entry carries: recorded transactions.
//!
//! The leader executes a transaction interactively, recording each statement
//! that may write (with its parameters and its number within the
//! transaction, which seeds its random generator). At COMMIT the recorded
//! transactions are proposed as one [`Command`]; followers — and the leader
//! itself after a crash — replay them in order.
//!
//! ```text
//! Command { proposal: Some(node 1, boot 0x5eed, seq 42),
//!           txns: [ TxnRecord { ctx: {ts, seed}, stmts: [ #0 INSERT …, #2 UPDATE … ] },   ← one client txn
//!                   TxnRecord { ctx: {ts, seed}, stmts: [ #0 INSERT … ] } ] }              ← another (batched autocommit)
//! ```

use serde::{Deserialize, Serialize};
use shoal_common::{ExecContext, Value};

/// Identifies the leader-side transaction a command came from, so that the
/// leader commits its already-executed SQLite transaction instead of
/// replaying it. `boot` is random per process start, so an entry proposed by an
/// earlier incarnation never matches a current one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProposalId {
    pub node: u64,
    pub boot: u64,
    pub seq: u64,
}

/// One statement as executed by the leader.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordedStmt {
    /// Statement number within its transaction (seeds `random()`).
    pub seq: u32,
    /// SQLite SQL with `?n` placeholders.
    pub sql: String,
    pub params: Vec<Value>,
    /// The statement failed on the leader (deterministically) and the
    /// transaction recovered with `ROLLBACK TO SAVEPOINT`; replay expects the
    /// same failure.
    pub failed: bool,
}

/// One client transaction.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TxnRecord {
    pub ctx: ExecContext,
    pub stmts: Vec<RecordedStmt>,
    /// The transaction stored a new SQL catalog ([`crate::STORE_CATALOG_SQL`]),
    /// so whoever applies it must reload the catalog it plans with.
    #[serde(default)]
    pub changes_catalog: bool,
}

/// The payload of a normal Raft entry of a data or meta group.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Command {
    pub proposal: Option<ProposalId>,
    pub txns: Vec<TxnRecord>,
    /// A consistency check: the entry changes nothing, and every replica
    /// computes its content checksum at exactly this log index, so that
    /// replicas can be compared (`shoal.verify()`).
    pub checksum: bool,
}

impl Command {
    /// True when applying this command changes the SQL catalog.
    pub fn changes_catalog(&self) -> bool {
        self.txns.iter().any(|t| t.changes_catalog)
    }
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let stmts: usize = self.txns.iter().map(|t| t.stmts.len()).sum();
        write!(f, "command({} txns, {} stmts)", self.txns.len(), stmts)
    }
}
