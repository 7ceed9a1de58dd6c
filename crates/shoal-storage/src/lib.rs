//! # shoal-storage — one replica's SQLite database
//!
//! The bottom layer of Shoal. A replica is a SQLite file (bundled SQLite, WAL
//! mode) that a Raft state machine drives. This crate knows nothing of Raft
//! or of PostgreSQL; it offers:
//!
//! * [`Replica`] — the writer connection, used for leader-side execution of a
//!   transaction and for deterministic replay of committed entries, with the
//!   applied log index stored in the same SQLite transaction as the entry's
//!   effects ([`replica`]).
//! * [`Command`] — the payload of a log entry: recorded transactions with
//!   their execution contexts ([`command`]).
//! * [`determinism`] — the `shoal` VFS and functions that pin `now`,
//!   `random()` and friends to the entry's context, so replicas never diverge.
//! * [`functions`] — PostgreSQL functions SQLite lacks (`md5`, `date_trunc`, …).
//! * [`numeric`] — exact `numeric`: the `pg_numeric` collation and arithmetic.
//! * [`sequences`] — `nextval`/`setval` advancing sequence rows inside the
//!   entry's transaction, `currval`/`lastval` from the session's state.
//! * [`budget`] — time budgets that let short reads run on an async thread.
//! * [`cancel`] — cancelling one client's statement on the shared writer.
//! * snapshots (SQLite's backup API) and a content checksum for comparing
//!   replicas at the same applied index.
//!
//! Out of scope here: consensus, SQL translation, the wire protocol.

pub mod budget;
pub mod cancel;
pub mod command;
pub mod determinism;
pub mod functions;
pub mod numeric;
pub mod replica;
pub mod sequences;
pub mod session_settings;
pub mod sqlite_error;

pub use budget::StepBudget;
pub use cancel::StatementCancel;
pub use command::{Command, ProposalId, RecordedStmt, TxnRecord};
pub use replica::{
    checkpoint, content_checksum, content_digest, open_connection, run_read_only, run_statement, snapshot_file,
    Applied, AppliedState, ContentDigest, QueryOutput, Replica, STORE_CATALOG_SQL,
};
pub use rusqlite::{Connection, InterruptHandle};
pub use sequences::{Drawn, SessionSequences};
pub use sqlite_error::from_sqlite;
