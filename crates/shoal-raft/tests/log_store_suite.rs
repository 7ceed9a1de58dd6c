//! openraft's storage conformance suite against [`LogStore`], with a small
//! in-memory state machine standing in for the SQLite one.
//!
//! To run the suite against another state machine, build a
//! `shoal_raft::log_store::testing::LogStoreBuilder` with a factory for it
//! (crate feature `testing`) and pass it to `Suite::test_all`, as below.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use futures::{Stream, StreamExt};
use openraft::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use openraft::entry::RaftEntry;
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::testing::log::Suite;
use openraft::{EntryPayload, RaftSnapshotBuilder, SnapshotMeta, StorageError, StoredMembership};
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

impl std::fmt::Display for Put {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.key, self.value)
    }
}

/// The previous value of the key, if any.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Previous(pub Option<String>);

openraft::declare_raft_types!(pub SuiteConfig: D = Put, R = Previous);

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct State {
    last_applied: Option<LogIdOf<SuiteConfig>>,
    last_membership: StoredMembershipOf<SuiteConfig>,
    data: BTreeMap<String, String>,
}

type Snapshot = SnapshotOf<SuiteConfig, Vec<u8>>;

/// A state machine that keeps everything in memory; snapshots are the JSON
/// of its state. Clones share the state, so a clone is its snapshot builder.
#[derive(Clone, Default)]
struct MemStateMachine {
    state: Arc<Mutex<State>>,
    current_snapshot: Arc<Mutex<Option<Snapshot>>>,
    snapshots_built: Arc<AtomicU64>,
}

fn lock<T>(mutex: &Mutex<T>) -> io::Result<MutexGuard<'_, T>> {
    mutex.lock().map_err(|_| io::Error::other("state machine mutex poisoned"))
}

impl RaftSnapshotBuilder<SuiteConfig> for MemStateMachine {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> io::Result<Snapshot> {
        let snapshot = {
            let state = lock(&self.state)?;
            let data = serde_json::to_vec(&*state).map_err(io::Error::other)?;
            self.snapshots_built.fetch_add(1, Ordering::Relaxed);
            let meta = SnapshotMeta { last_log_id: state.last_applied, last_membership: state.last_membership.clone() };
            Snapshot { meta, snapshot: data }
        };
        *lock(&self.current_snapshot)? = Some(snapshot.clone());
        Ok(snapshot)
    }
}

impl RaftStateMachine<SuiteConfig> for MemStateMachine {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> io::Result<(Option<LogIdOf<SuiteConfig>>, StoredMembershipOf<SuiteConfig>)> {
        let state = lock(&self.state)?;
        Ok((state.last_applied, state.last_membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> io::Result<()>
    where
        Strm: Stream<Item = io::Result<EntryResponder<SuiteConfig>>> + Unpin + Send,
    {
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            let log_id = entry.log_id();
            let response = {
                let mut state = lock(&self.state)?;
                state.last_applied = Some(log_id);
                match entry.payload {
                    EntryPayload::Blank => Previous(None),
                    EntryPayload::Normal(put) => Previous(state.data.insert(put.key, put.value)),
                    EntryPayload::Membership(membership) => {
                        state.last_membership = StoredMembership::new(Some(log_id), membership);
                        Previous(None)
                    }
                }
            };
            if let Some(responder) = responder {
                responder.send(response);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMetaOf<SuiteConfig>, snapshot: Vec<u8>) -> io::Result<()> {
        let mut installed: State = serde_json::from_slice(&snapshot).map_err(io::Error::other)?;
        installed.last_applied = meta.last_log_id;
        installed.last_membership = meta.last_membership.clone();
        *lock(&self.state)? = installed;
        *lock(&self.current_snapshot)? = Some(Snapshot { meta: meta.clone(), snapshot });
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> io::Result<Option<Snapshot>> {
        Ok(lock(&self.current_snapshot)?.clone())
    }
}

fn mem_state_machine(_dir: &Path) -> Result<MemStateMachine, StorageError<SuiteConfig>> {
    Ok(MemStateMachine::default())
}

type MemSuite<F> =
    Suite<SuiteConfig, LogStore<SuiteConfig>, MemStateMachine, LogStoreBuilder<MemStateMachine, F>, TempDir>;

#[tokio::test]
async fn openraft_suite_passes_with_production_options() -> Result<(), StorageError<SuiteConfig>> {
    // fsync on, as in production: the suite then also covers the fsync path.
    let builder = LogStoreBuilder::new(mem_state_machine).with_options(LogOptions::default());
    MemSuite::test_all(builder).await
}

#[tokio::test]
async fn openraft_suite_passes_when_every_entry_starts_a_segment() -> Result<(), StorageError<SuiteConfig>> {
    // 64-byte segments hold one entry each, so every truncate and purge in
    // the suite crosses segment boundaries and deletes files.
    let options = LogOptions { segment_size_bytes: 64, fsync: false, cache_size_bytes: 0, ..LogOptions::default() };
    let builder = LogStoreBuilder::new(mem_state_machine).with_options(options);
    MemSuite::test_all(builder).await
}
