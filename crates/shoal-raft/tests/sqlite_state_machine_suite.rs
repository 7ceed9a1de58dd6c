//! openraft's storage conformance suite against Shoal's real pair: the
//! durable log store and the SQLite state machine (`shoal_storage::Replica`).
//!
//! The suite applies blank, membership and normal entries (whose `Command`
//! payloads are empty), builds and installs snapshots, and checks that
//! `applied_state` follows — i.e. that the applied log id and membership
//! stored inside SQLite behave as openraft requires.

use std::path::Path;

use openraft::errors::ErrorSource;
use openraft::testing::log::Suite;
use openraft::StorageError;
use shoal_raft::log_store::testing::LogStoreBuilder;
use shoal_raft::log_store::LogStore;
use shoal_raft::state_machine::{SharedReplica, StateMachine};
use shoal_raft::TypeConfig;
use shoal_storage::Replica;
use tempfile::TempDir;

type MakeStateMachine = fn(&Path) -> Result<StateMachine, StorageError<TypeConfig>>;

type SqliteSuite =
    Suite<TypeConfig, LogStore<TypeConfig>, StateMachine, LogStoreBuilder<StateMachine, MakeStateMachine>, TempDir>;

fn setup_error(err: impl ToString) -> StorageError<TypeConfig> {
    StorageError::write_state_machine(openraft::impls::BoxedErrorSource::from_string(err))
}

fn sqlite_state_machine(dir: &Path) -> Result<StateMachine, StorageError<TypeConfig>> {
    let replica = Replica::open(&dir.join("replica.db")).map_err(setup_error)?;
    StateMachine::new(SharedReplica::new(replica), dir.join("snapshots")).map_err(setup_error)
}

#[tokio::test]
async fn openraft_suite_passes_with_the_sqlite_state_machine() -> Result<(), StorageError<TypeConfig>> {
    SqliteSuite::test_all(LogStoreBuilder::new(sqlite_state_machine as MakeStateMachine)).await
}
