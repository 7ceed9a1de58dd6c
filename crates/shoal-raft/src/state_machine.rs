//! The openraft state machine over a SQLite [`Replica`].
//!
//! Applying an entry either commits the leader's already-executed SQLite
//! transaction (when the entry carries the proposal id of the transaction
//! open on the writer) or replays the recorded statements. Either way the
//! applied log id and membership are written in the same SQLite transaction
//! (see `shoal_storage::replica`). A failure to apply is never deterministic
//! — deterministic statement failures were settled before proposing — so it is
//! reported as a storage error and openraft stops this replica rather than
//! letting it diverge.
//!
//! Snapshots are SQLite files made with the backup API; the current one is
//! kept as `snapshot.db` with its metadata in `snapshot.json`.

// openraft's StorageError is large and its shape is fixed by the trait.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, EntryPayload, ErrorSubject, ErrorVerb, LogId, RaftSnapshotBuilder, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership,
};
use shoal_storage::{AppliedState, Replica};
use tokio::sync::watch;

use crate::types::{AppliedMeta, ApplyResponse, NodeId, TypeConfig};

/// The replica shared between the state machine (apply) and sessions
/// (leader-side execution); see `crate::group`.
pub struct SharedReplica {
    replica: Mutex<Replica>,
    /// Last applied log index, for read-index waits and metrics.
    applied_tx: watch::Sender<u64>,
    /// Bumped whenever an applied entry changed the SQL catalog.
    catalog_epoch_tx: watch::Sender<u64>,
    /// Content checksums computed at checksum entries, by log index (the
    /// newest few): `None` while computing, then the checksum or why it failed.
    checksums: Mutex<BTreeMap<u64, Option<std::result::Result<String, String>>>>,
}

/// How many checksum results a replica keeps.
const KEPT_CHECKSUMS: usize = 16;

impl SharedReplica {
    pub fn new(replica: Replica) -> Arc<SharedReplica> {
        let applied = replica.applied().index;
        Arc::new(SharedReplica {
            replica: Mutex::new(replica),
            applied_tx: watch::channel(applied).0,
            catalog_epoch_tx: watch::channel(0).0,
            checksums: Mutex::new(BTreeMap::new()),
        })
    }

    /// The checksum computed at the checksum entry `index`: `None` when this
    /// replica has none (it is still computing, or it skipped the entry by
    /// installing a later snapshot — the caller tells these apart by
    /// [`SharedReplica::checksum_pending`]).
    pub fn checksum_at(&self, index: u64) -> Option<std::result::Result<String, String>> {
        self.checksums.lock().unwrap_or_else(|p| p.into_inner()).get(&index).cloned().flatten()
    }

    /// True while the checksum for `index` is being computed.
    pub fn checksum_pending(&self, index: u64) -> bool {
        matches!(self.checksums.lock().unwrap_or_else(|p| p.into_inner()).get(&index), Some(None))
    }

    fn record_checksum(&self, index: u64, result: Option<std::result::Result<String, String>>) {
        let mut checksums = self.checksums.lock().unwrap_or_else(|p| p.into_inner());
        checksums.insert(index, result);
        while checksums.len() > KEPT_CHECKSUMS {
            checksums.pop_first();
        }
    }

    /// Locks the replica. A poisoned lock means a thread panicked while
    /// holding it; the replica is still consistent (SQLite is transactional),
    /// so the guard is recovered.
    pub fn lock(&self) -> MutexGuard<'_, Replica> {
        self.replica.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The applied index right now.
    pub fn applied_index(&self) -> u64 {
        *self.applied_tx.borrow()
    }

    /// Watches the applied index.
    pub fn applied_watch(&self) -> watch::Receiver<u64> {
        self.applied_tx.subscribe()
    }

    /// Announces what readers can now see of `replica` (its visible index:
    /// deferred effects of a pipelined entry are not visible until their
    /// SQLite commit). Never moves backwards.
    pub fn publish_applied(&self, replica: &Replica) {
        let visible = replica.visible_index();
        self.applied_tx.send_if_modified(|index| {
            let moved = visible > *index;
            *index = (*index).max(visible);
            moved
        });
    }

    /// Watches the catalog epoch.
    pub fn catalog_watch(&self) -> watch::Receiver<u64> {
        self.catalog_epoch_tx.subscribe()
    }

    /// Announces a catalog change (an applied entry touched the catalog, or
    /// a snapshot replaced the whole database).
    pub fn bump_catalog_epoch(&self) {
        self.catalog_epoch_tx.send_modify(|e| *e += 1);
    }
}

/// The state machine of one group.
pub struct StateMachine {
    shared: Arc<SharedReplica>,
    snapshot_dir: PathBuf,
}

fn io_error(subject: ErrorSubject<NodeId>, verb: ErrorVerb, err: impl std::fmt::Display) -> StorageError<NodeId> {
    let io = std::io::Error::other(err.to_string());
    StorageError::IO { source: StorageIOError::new(subject, verb, &io) }
}

fn sm_error(err: impl std::fmt::Display) -> StorageError<NodeId> {
    io_error(ErrorSubject::StateMachine, ErrorVerb::Write, err)
}

fn parse_meta(state: &AppliedState) -> Result<AppliedMeta, StorageError<NodeId>> {
    match &state.meta {
        None => Ok(AppliedMeta::default()),
        Some(json) => serde_json::from_str(json).map_err(|e| io_error(ErrorSubject::StateMachine, ErrorVerb::Read, e)),
    }
}

/// Opens a read connection and starts a read transaction on it, fixing its
/// view at the last committed entry (the caller holds the replica lock, so
/// nothing else commits meanwhile; an open leader-side transaction is
/// uncommitted and so not seen).
fn pin_snapshot(db_path: &std::path::Path) -> shoal_common::Result<shoal_storage::Connection> {
    let conn = shoal_storage::open_connection(db_path, true)?;
    conn.execute_batch("BEGIN").map_err(shoal_storage::from_sqlite)?;
    conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get::<_, i64>(0))
        .map_err(shoal_storage::from_sqlite)?;
    Ok(conn)
}

impl StateMachine {
    pub fn new(shared: Arc<SharedReplica>, snapshot_dir: PathBuf) -> std::io::Result<StateMachine> {
        std::fs::create_dir_all(&snapshot_dir)?;
        Ok(StateMachine { shared, snapshot_dir })
    }

    fn current_snapshot_paths(&self) -> (PathBuf, PathBuf) {
        (self.snapshot_dir.join("snapshot.db"), self.snapshot_dir.join("snapshot.json"))
    }
}

/// Builds snapshots from a consistent copy of the SQLite file.
pub struct SnapshotBuilder {
    shared: Arc<SharedReplica>,
    snapshot_dir: PathBuf,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let shared = self.shared.clone();
        let dir = self.snapshot_dir.clone();
        tokio::task::spawn_blocking(move || build_snapshot_blocking(&shared, &dir))
            .await
            .map_err(|e| io_error(ErrorSubject::Snapshot(None), ErrorVerb::Write, e))?
    }
}

fn build_snapshot_blocking(
    shared: &SharedReplica,
    dir: &std::path::Path,
) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
    let tmp = dir.join("snapshot.db.building");
    let db_path = shared.lock().path().to_path_buf();
    let state = shoal_storage::snapshot_file(&db_path, &tmp).map_err(sm_error)?;
    let meta = parse_meta(&state)?;
    let last = meta.last_applied;
    let data = std::fs::read(&tmp).map_err(|e| io_error(ErrorSubject::Snapshot(None), ErrorVerb::Read, e))?;
    // The id carries the file's checksum, which the receiver checks.
    let crc = crc32fast::hash(&data);
    let snapshot_meta = SnapshotMeta {
        last_log_id: last,
        last_membership: meta.membership,
        snapshot_id: match last {
            Some(id) => format!("{}-{}-{}-crc{crc:08x}", id.leader_id.term, id.index, state.index),
            None => format!("0-0-{}-crc{crc:08x}", state.index),
        },
    };
    persist_current(dir, &tmp, &snapshot_meta)?;
    Ok(Snapshot { meta: snapshot_meta, snapshot: Box::new(Cursor::new(data)) })
}

/// Checks a received snapshot against the checksum in its id
/// (`…-crc<hex>`, as `build_snapshot_blocking` names it).
fn check_snapshot_crc(snapshot_id: &str, data: &[u8]) -> std::result::Result<(), String> {
    let Some((_, hex)) = snapshot_id.rsplit_once("-crc") else {
        return Err(format!("snapshot {snapshot_id} carries no checksum"));
    };
    let expected = u32::from_str_radix(hex, 16).map_err(|_| format!("snapshot {snapshot_id}: bad checksum field"))?;
    let actual = crc32fast::hash(data);
    if actual != expected {
        return Err(format!(
            "snapshot {snapshot_id}: checksum {actual:08x} of {} received bytes does not match",
            data.len()
        ));
    }
    Ok(())
}

fn persist_current(
    dir: &std::path::Path,
    db_file: &std::path::Path,
    meta: &SnapshotMeta<NodeId, BasicNode>,
) -> Result<(), StorageError<NodeId>> {
    let json = serde_json::to_vec(meta).map_err(sm_error)?;
    let meta_tmp = dir.join("snapshot.json.tmp");
    std::fs::write(&meta_tmp, json).map_err(sm_error)?;
    std::fs::rename(db_file, dir.join("snapshot.db")).map_err(sm_error)?;
    std::fs::rename(&meta_tmp, dir.join("snapshot.json")).map_err(sm_error)?;
    Ok(())
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), StorageError<NodeId>> {
        let state = self.shared.lock().applied().clone();
        let meta = parse_meta(&state)?;
        Ok((meta.last_applied, meta.membership))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<ApplyResponse>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = openraft::Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut responses = Vec::new();
        let mut catalog_changed = false;
        // Checksum entries: the index and a read connection whose snapshot
        // is pinned at exactly that index, checksummed after the lock is
        // released so applying goes on meanwhile.
        let mut pinned = Vec::new();
        {
            let mut replica = self.shared.lock();
            let mut meta = parse_meta(replica.applied())?;
            for entry in entries {
                meta.last_applied = Some(entry.log_id);
                if let EntryPayload::Membership(m) = &entry.payload {
                    meta.membership = StoredMembership::new(Some(entry.log_id), m.clone());
                }
                let state = AppliedState {
                    index: entry.log_id.index,
                    meta: Some(serde_json::to_string(&meta).map_err(sm_error)?),
                };
                let committed_local = match &entry.payload {
                    EntryPayload::Normal(command) if command.checksum => {
                        replica.apply_empty(state).map_err(sm_error)?;
                        // With a pipelined entry's effects deferred, no
                        // snapshot shows exactly this index: skip it (the
                        // check reports this replica as not compared).
                        if replica.visible_index() == entry.log_id.index {
                            self.shared.record_checksum(entry.log_id.index, None);
                            pinned.push((entry.log_id.index, pin_snapshot(replica.path())));
                        }
                        false
                    }
                    EntryPayload::Normal(command) => {
                        catalog_changed |= command.changes_catalog();
                        replica.apply(command, state).map_err(|e| {
                            tracing::error!(index = entry.log_id.index, error = %e, "apply failed; stopping replica");
                            sm_error(e)
                        })?
                    }
                    EntryPayload::Blank | EntryPayload::Membership(_) => {
                        replica.apply_empty(state).map_err(sm_error)?;
                        false
                    }
                };
                responses.push(ApplyResponse { index: entry.log_id.index, committed_local });
            }
            self.shared.publish_applied(&replica);
        }
        for (index, conn) in pinned {
            let shared = self.shared.clone();
            tokio::task::spawn_blocking(move || {
                let result = conn.and_then(|conn| {
                    let checksum = shoal_storage::content_checksum(&conn);
                    let _ = conn.execute_batch("ROLLBACK");
                    checksum
                });
                shared.record_checksum(index, Some(result.map_err(|e| e.to_string())));
            });
        }
        if catalog_changed {
            self.shared.bump_catalog_epoch();
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder { shared: self.shared.clone(), snapshot_dir: self.snapshot_dir.clone() }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let subject = ErrorSubject::Snapshot(Some(meta.signature()));
        let data = snapshot.into_inner();
        if let Err(e) = check_snapshot_crc(&meta.snapshot_id, &data) {
            // Installing it would corrupt this replica; stopping it is the safe failure.
            tracing::error!(snapshot = %meta.snapshot_id, error = %e, "refusing a damaged snapshot");
            return Err(io_error(subject, ErrorVerb::Read, e));
        }
        let incoming = self.snapshot_dir.join("snapshot.db.incoming");
        std::fs::write(&incoming, data).map_err(|e| io_error(subject.clone(), ErrorVerb::Write, e))?;
        let keep = self.snapshot_dir.join("snapshot.db.keep");
        std::fs::copy(&incoming, &keep).map_err(|e| io_error(subject.clone(), ErrorVerb::Write, e))?;
        let installed = {
            let mut replica = self.shared.lock();
            replica.install_snapshot(&incoming).map_err(|e| io_error(subject.clone(), ErrorVerb::Write, e))?;
            // The file's own applied state may predate the meta openraft
            // gives (it was built from committed SQLite state); record the
            // snapshot's log id so applied_state() matches the snapshot.
            let state = AppliedState {
                index: meta.last_log_id.map(|l| l.index).unwrap_or(0),
                meta: Some(
                    serde_json::to_string(&AppliedMeta {
                        last_applied: meta.last_log_id,
                        membership: meta.last_membership.clone(),
                    })
                    .map_err(sm_error)?,
                ),
            };
            replica.apply_empty(state.clone()).map_err(sm_error)?;
            state.index
        };
        persist_current(&self.snapshot_dir, &keep, meta)?;
        tracing::info!(snapshot = %meta.snapshot_id, index = installed, "installed a snapshot from the leader");
        self.shared.applied_tx.send_replace(installed);
        self.shared.bump_catalog_epoch();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        let (db, meta_path) = self.current_snapshot_paths();
        if !db.exists() || !meta_path.exists() {
            return Ok(None);
        }
        let subject = ErrorSubject::Snapshot(None);
        let meta_json = std::fs::read(&meta_path).map_err(|e| io_error(subject.clone(), ErrorVerb::Read, e))?;
        let meta: SnapshotMeta<NodeId, BasicNode> =
            serde_json::from_slice(&meta_json).map_err(|e| io_error(subject.clone(), ErrorVerb::Read, e))?;
        let data = std::fs::read(&db).map_err(|e| io_error(subject, ErrorVerb::Read, e))?;
        Ok(Some(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) }))
    }
}

#[cfg(test)]
mod tests {
    use super::check_snapshot_crc;

    #[test]
    fn snapshot_checksums_catch_damage() {
        let data = b"SQLite format 3\0 and pages".to_vec();
        let id = format!("3-120-120-crc{:08x}", crc32fast::hash(&data));
        assert!(check_snapshot_crc(&id, &data).is_ok());
        let mut damaged = data.clone();
        damaged[5] ^= 1;
        assert!(check_snapshot_crc(&id, &damaged).unwrap_err().contains("does not match"));
        assert!(check_snapshot_crc(&id, &data[..10]).is_err(), "truncated");
        assert!(check_snapshot_crc("3-120-120", &data).is_err(), "no checksum");
        assert!(check_snapshot_crc("3-120-120-crcZZ", &data).is_err(), "bad field");
    }
}
