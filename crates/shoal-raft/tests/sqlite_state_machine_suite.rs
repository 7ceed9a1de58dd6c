//! openraft's storage conformance suite against Shoal's real pair: the
//! durable log store and the SQLite state machine (`shoal_storage::Replica`).
//!
//! The suite applies blank, membership and normal entries (whose `Command`
//! payloads are empty), builds and installs snapshots, and checks that
//! `applied_state` follows — i.e. that the applied log id and membership
//! stored inside SQLite behave as openraft requires.

// The suite's signatures are fixed by openraft and return its (large) `StorageError`.
#![allow(clippy::result_large_err)]

use std::path::Path;

use openraft::testing::Suite;
use openraft::{AnyError, StorageError, StorageIOError};
use shoal_raft::log_store::testing::LogStoreBuilder;
use shoal_raft::log_store::LogStore;
use shoal_raft::state_machine::{SharedReplica, StateMachine};
use shoal_raft::{NodeId, TypeConfig};
use shoal_storage::Replica;
use tempfile::TempDir;

type SqliteSuite = Suite<
    TypeConfig,
    LogStore<TypeConfig>,
    StateMachine,
    LogStoreBuilder<StateMachine, fn(&Path) -> Result<StateMachine, StorageError<NodeId>>>,
    TempDir,
>;

fn io_error(err: impl ToString) -> StorageError<NodeId> {
    StorageIOError::write_state_machine(AnyError::error(err.to_string())).into()
}

fn sqlite_state_machine(dir: &Path) -> Result<StateMachine, StorageError<NodeId>> {
    let replica = Replica::open(&dir.join("replica.db")).map_err(io_error)?;
    StateMachine::new(SharedReplica::new(replica), dir.join("snapshots")).map_err(io_error)
}

#[test]
fn openraft_suite_passes_with_the_sqlite_state_machine() -> Result<(), StorageError<NodeId>> {
    let make: fn(&Path) -> Result<StateMachine, StorageError<NodeId>> = sqlite_state_machine;
    SqliteSuite::test_all(LogStoreBuilder::new(make))
}
