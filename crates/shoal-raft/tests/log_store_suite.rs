//! openraft's storage conformance suite against [`LogStore`], with a small
//! in-memory state machine standing in for the SQLite one.
//!
//! To run the suite against another state machine, build a
//! `shoal_raft::log_store::testing::LogStoreBuilder` with a factory for it
//! (crate feature `testing`) and pass it to `Suite::test_all`, as below.

// The suite's signatures are fixed by openraft and return its (large) `StorageError`.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::RaftStateMachine;
use openraft::testing::Suite;
use openraft::{
    AnyError, BasicNode, Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, Snapshot, SnapshotMeta,
    StorageError, StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};
use shoal_raft::log_store::testing::LogStoreBuilder;
use shoal_raft::log_store::{LogOptions, LogStore};
use tempfile::TempDir;

/// The suite's application command: set a key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Put {
    pub key: String,
    pub value: String,
}

/// The previous value of the key, if any.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Previous(pub Option<String>);

openraft::declare_raft_types!(pub SuiteConfig: D = Put, R = Previous);

type NodeId = u64;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct State {
    last_applied: Option<LogId<NodeId>>,
    last_membership: StoredMembership<NodeId, BasicNode>,
    data: BTreeMap<String, String>,
}

#[derive(Clone)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, BasicNode>,
    data: Vec<u8>,
}

/// A state machine that keeps everything in memory; snapshots are the JSON
/// of its state. Clones share the state, so a clone is its snapshot builder.
#[derive(Clone, Default)]
struct MemStateMachine {
    state: Arc<Mutex<State>>,
    current_snapshot: Arc<Mutex<Option<StoredSnapshot>>>,
    snapshots_built: Arc<AtomicU64>,
}

fn io_error(err: impl ToString) -> StorageError<NodeId> {
    StorageIOError::write_state_machine(AnyError::error(err.to_string())).into()
}

fn lock<T>(mutex: &Mutex<T>) -> Result<MutexGuard<'_, T>, StorageError<NodeId>> {
    mutex.lock().map_err(|_| io_error("state machine mutex poisoned"))
}

impl RaftSnapshotBuilder<SuiteConfig> for MemStateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<SuiteConfig>, StorageError<NodeId>> {
        let (meta, data) = {
            let state = lock(&self.state)?;
            let data = serde_json::to_vec(&*state).map_err(io_error)?;
            let built = self.snapshots_built.fetch_add(1, Ordering::Relaxed) + 1;
            let last = state.last_applied.as_ref().map_or_else(|| "none".to_string(), |id| id.index.to_string());
            let meta = SnapshotMeta {
                last_log_id: state.last_applied,
                last_membership: state.last_membership.clone(),
                snapshot_id: format!("{last}-{built}"),
            };
            (meta, data)
        };
        *lock(&self.current_snapshot)? = Some(StoredSnapshot { meta: meta.clone(), data: data.clone() });
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) })
    }
}

impl RaftStateMachine<SuiteConfig> for MemStateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), StorageError<NodeId>> {
        let state = lock(&self.state)?;
        Ok((state.last_applied, state.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Previous>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<SuiteConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut state = lock(&self.state)?;
        let mut responses = Vec::new();
        for entry in entries {
            state.last_applied = Some(entry.log_id);
            let response = match entry.payload {
                EntryPayload::Blank => Previous(None),
                EntryPayload::Normal(put) => Previous(state.data.insert(put.key, put.value)),
                EntryPayload::Membership(membership) => {
                    state.last_membership = StoredMembership::new(Some(entry.log_id), membership);
                    Previous(None)
                }
            };
            responses.push(response);
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let data = snapshot.into_inner();
        let mut installed: State = serde_json::from_slice(&data).map_err(io_error)?;
        installed.last_applied = meta.last_log_id;
        installed.last_membership = meta.last_membership.clone();
        *lock(&self.state)? = installed;
        *lock(&self.current_snapshot)? = Some(StoredSnapshot { meta: meta.clone(), data });
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<SuiteConfig>>, StorageError<NodeId>> {
        Ok(lock(&self.current_snapshot)?
            .clone()
            .map(|stored| Snapshot { meta: stored.meta, snapshot: Box::new(Cursor::new(stored.data)) }))
    }
}

fn mem_state_machine(_dir: &Path) -> Result<MemStateMachine, StorageError<NodeId>> {
    Ok(MemStateMachine::default())
}

type MemSuite<F> =
    Suite<SuiteConfig, LogStore<SuiteConfig>, MemStateMachine, LogStoreBuilder<MemStateMachine, F>, TempDir>;

#[test]
fn openraft_suite_passes_with_production_options() -> Result<(), StorageError<NodeId>> {
    // fsync on, as in production: the suite then also covers the fsync path.
    let builder = LogStoreBuilder::new(mem_state_machine).with_options(LogOptions::default());
    MemSuite::test_all(builder)
}

#[test]
fn openraft_suite_passes_when_every_entry_starts_a_segment() -> Result<(), StorageError<NodeId>> {
    // 64-byte segments hold one entry each, so every truncate and purge in
    // the suite crosses segment boundaries and deletes files.
    let options = LogOptions { segment_size_bytes: 64, fsync: false, cache_size_bytes: 0, ..LogOptions::default() };
    let builder = LogStoreBuilder::new(mem_state_machine).with_options(options);
    MemSuite::test_all(builder)
}
