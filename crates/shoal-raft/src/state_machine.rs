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
//! openraft hands `apply` a stream of entries, each with the responder of
//! its proposer, if any. The whole batch is applied under one hold of the
//! replica lock, and the responders answer only after the SQLite commit and
//! [`SharedReplica::publish_applied`], so a proposer that hears back reads
//! its own write.
//!
//! Snapshots are SQLite files made with the backup API, carried as
//! [`SnapshotData`] (bytes and CRC-32, checked before installing); the
//! current one is kept as `snapshot.db` with its metadata and checksum in
//! `snapshot.json`.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use futures::{Stream, TryStreamExt};
use openraft::alias::{SnapshotMetaOf, StoredMembershipOf};
use openraft::entry::RaftEntry;
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, RaftSnapshotBuilder, SnapshotMeta, StoredMembership};
use serde::{Deserialize, Serialize};
use shoal_storage::{Applied, AppliedState, ContentDigest, Replica};
use tokio::sync::watch;

use crate::types::{AppliedMeta, ApplyResponse, LogId, TypeConfig};

/// A snapshot as openraft passes it around: the SQLite file's bytes and
/// their CRC-32, which the receiver checks before installing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotData {
    pub bytes: Vec<u8>,
    pub crc32: u32,
}

impl SnapshotData {
    /// Wraps `bytes`, computing their checksum.
    pub fn new(bytes: Vec<u8>) -> SnapshotData {
        let crc32 = crc32fast::hash(&bytes);
        SnapshotData { bytes, crc32 }
    }

    /// Checks the bytes against the checksum they were sent with.
    pub fn verify(&self) -> std::result::Result<(), String> {
        let actual = crc32fast::hash(&self.bytes);
        if actual != self.crc32 {
            return Err(format!(
                "snapshot checksum {actual:08x} of {} received bytes does not match the sender's {:08x}",
                self.bytes.len(),
                self.crc32
            ));
        }
        Ok(())
    }
}

/// A whole snapshot: openraft's metadata and Shoal's data.
pub type Snapshot = openraft::alias::SnapshotOf<TypeConfig, SnapshotData>;

/// `snapshot.json`: the current snapshot's metadata and checksum. Files
/// written before the checksum had its own field carry it in `snapshot_id`
/// (`…-crc<hex>`), which is still read.
#[derive(Debug, Serialize, Deserialize)]
struct StoredSnapshotMeta {
    last_log_id: Option<LogId>,
    last_membership: StoredMembershipOf<TypeConfig>,
    #[serde(default)]
    snapshot_id: String,
    #[serde(default)]
    crc32: Option<u32>,
}

impl StoredSnapshotMeta {
    fn checksum(&self) -> std::result::Result<u32, String> {
        if let Some(crc) = self.crc32 {
            return Ok(crc);
        }
        let Some((_, hex)) = self.snapshot_id.rsplit_once("-crc") else {
            return Err(format!("snapshot {} carries no checksum", self.snapshot_id));
        };
        u32::from_str_radix(hex, 16).map_err(|_| format!("snapshot {}: bad checksum field", self.snapshot_id))
    }
}

/// The replica shared between the state machine (apply) and sessions
/// (leader-side execution); see `crate::group`.
pub struct SharedReplica {
    replica: Mutex<Replica>,
    /// Last applied log index, for read-index waits and metrics.
    applied_tx: watch::Sender<u64>,
    /// Bumped whenever an applied entry changed the SQL catalog.
    catalog_epoch_tx: watch::Sender<u64>,
    /// Content checksums computed at checksum entries, by log index (the
    /// newest few): `None` while computing, then the checksums or why they failed.
    checksums: Mutex<BTreeMap<u64, Option<std::result::Result<ContentDigest, String>>>>,
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
    pub fn checksum_at(&self, index: u64) -> Option<std::result::Result<ContentDigest, String>> {
        self.checksums.lock().unwrap_or_else(|p| p.into_inner()).get(&index).cloned().flatten()
    }

    /// True while the checksum for `index` is being computed.
    pub fn checksum_pending(&self, index: u64) -> bool {
        matches!(self.checksums.lock().unwrap_or_else(|p| p.into_inner()).get(&index), Some(None))
    }

    fn record_checksum(&self, index: u64, result: Option<std::result::Result<ContentDigest, String>>) {
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

/// A failure openraft must see as a storage error: the replica stops
/// rather than diverge.
fn sm_error(err: impl std::fmt::Display) -> io::Error {
    io::Error::other(err.to_string())
}

fn parse_meta(state: &AppliedState) -> io::Result<AppliedMeta> {
    match &state.meta {
        None => Ok(AppliedMeta::default()),
        Some(json) => serde_json::from_str(json).map_err(|e| sm_error(format!("reading the applied state: {e}"))),
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
    pub fn new(shared: Arc<SharedReplica>, snapshot_dir: PathBuf) -> io::Result<StateMachine> {
        std::fs::create_dir_all(&snapshot_dir)?;
        Ok(StateMachine { shared, snapshot_dir })
    }

    fn current_snapshot_paths(&self) -> (PathBuf, PathBuf) {
        (self.snapshot_dir.join("snapshot.db"), self.snapshot_dir.join("snapshot.json"))
    }

    /// Applies `entries` in one hold of the replica lock and publishes what
    /// readers may now see; returns each entry's response.
    ///
    /// `proposed_here[i]` says whether entry `i` has a proposer waiting on
    /// this node, which is told a replayed entry's outputs.
    fn apply_blocking(
        &self,
        entries: &[openraft::alias::EntryOf<TypeConfig>],
        proposed_here: &[bool],
    ) -> io::Result<(Vec<ApplyResponse>, bool, Vec<PinnedChecksum>)> {
        let mut responses = Vec::with_capacity(entries.len());
        let mut catalog_changed = false;
        // Checksum entries: the index and a read connection whose snapshot
        // is pinned at exactly that index, checksummed after the lock is
        // released so applying goes on meanwhile.
        let mut pinned = Vec::new();
        let mut replica = self.shared.lock();
        let mut meta = parse_meta(replica.applied())?;
        for (entry, &proposed_here) in entries.iter().zip(proposed_here) {
            let log_id = entry.log_id();
            meta.last_applied = Some(log_id);
            if let EntryPayload::Membership(m) = &entry.payload {
                meta.membership = StoredMembership::new(Some(log_id), m.clone());
            }
            let state =
                AppliedState { index: log_id.index, meta: Some(serde_json::to_string(&meta).map_err(sm_error)?) };
            let replayed = match &entry.payload {
                EntryPayload::Normal(command) if command.checksum => {
                    replica.apply_empty(state).map_err(sm_error)?;
                    // With a pipelined entry's effects deferred, no
                    // snapshot shows exactly this index: skip it (the
                    // check reports this replica as not compared).
                    if replica.visible_index() == log_id.index {
                        self.shared.record_checksum(log_id.index, None);
                        pinned.push((log_id.index, pin_snapshot(replica.path())));
                    }
                    None
                }
                EntryPayload::Normal(command) => {
                    catalog_changed |= command.changes_catalog();
                    let applied = replica.apply(command, state).map_err(|e| {
                        tracing::error!(index = log_id.index, error = %e, "apply failed; stopping replica");
                        sm_error(e)
                    })?;
                    match applied {
                        Applied::Replayed(outputs) if proposed_here => Some(outputs),
                        Applied::Replayed(_) | Applied::Local => None,
                    }
                }
                EntryPayload::Blank | EntryPayload::Membership(_) => {
                    replica.apply_empty(state).map_err(sm_error)?;
                    None
                }
            };
            responses.push(ApplyResponse { index: log_id.index, replayed });
        }
        self.shared.publish_applied(&replica);
        Ok((responses, catalog_changed, pinned))
    }
}

/// A checksum entry's index and a read connection pinned at it.
type PinnedChecksum = (u64, shoal_common::Result<shoal_storage::Connection>);

/// Builds snapshots from a consistent copy of the SQLite file.
pub struct SnapshotBuilder {
    shared: Arc<SharedReplica>,
    snapshot_dir: PathBuf,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> io::Result<Snapshot> {
        let shared = self.shared.clone();
        let dir = self.snapshot_dir.clone();
        tokio::task::spawn_blocking(move || build_snapshot_blocking(&shared, &dir))
            .await
            .map_err(|e| sm_error(format!("building a snapshot: {e}")))?
    }
}

fn build_snapshot_blocking(shared: &SharedReplica, dir: &std::path::Path) -> io::Result<Snapshot> {
    let tmp = dir.join("snapshot.db.building");
    let db_path = shared.lock().path().to_path_buf();
    let state = shoal_storage::snapshot_file(&db_path, &tmp).map_err(sm_error)?;
    let meta = parse_meta(&state)?;
    let data = SnapshotData::new(std::fs::read(&tmp)?);
    let snapshot_meta = SnapshotMeta { last_log_id: meta.last_applied, last_membership: meta.membership };
    persist_current(dir, &tmp, &snapshot_meta, data.crc32)?;
    Ok(Snapshot { meta: snapshot_meta, snapshot: data })
}

/// Makes `db_file` the current snapshot, with `meta` and its checksum in
/// `snapshot.json`.
fn persist_current(
    dir: &std::path::Path,
    db_file: &std::path::Path,
    meta: &SnapshotMetaOf<TypeConfig>,
    crc32: u32,
) -> io::Result<()> {
    let stored = StoredSnapshotMeta {
        last_log_id: meta.last_log_id,
        last_membership: meta.last_membership.clone(),
        // For people reading the file: term, index and checksum.
        snapshot_id: match meta.last_log_id {
            Some(id) => format!("{}-{}-crc{crc32:08x}", id.leader_id.term, id.index),
            None => format!("0-0-crc{crc32:08x}"),
        },
        crc32: Some(crc32),
    };
    let json = serde_json::to_vec(&stored).map_err(sm_error)?;
    let meta_tmp = dir.join("snapshot.json.tmp");
    std::fs::write(&meta_tmp, json)?;
    std::fs::rename(db_file, dir.join("snapshot.db"))?;
    std::fs::rename(&meta_tmp, dir.join("snapshot.json"))?;
    Ok(())
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> io::Result<(Option<LogId>, StoredMembershipOf<TypeConfig>)> {
        let state = self.shared.lock().applied().clone();
        let meta = parse_meta(&state)?;
        Ok((meta.last_applied, meta.membership))
    }

    async fn apply<Strm>(&mut self, entries: Strm) -> io::Result<()>
    where
        Strm: Stream<Item = io::Result<EntryResponder<TypeConfig>>> + Unpin + Send,
    {
        // Collected first: the replica lock is not held across awaits, and
        // one lock hold per batch is what makes applying cheap.
        let items: Vec<EntryResponder<TypeConfig>> = entries.try_collect().await?;
        let (entries, responders): (Vec<_>, Vec<_>) = items.into_iter().unzip();
        let proposed_here: Vec<bool> = responders.iter().map(Option::is_some).collect();
        let (responses, catalog_changed, pinned) = self.apply_blocking(&entries, &proposed_here)?;
        // Answered only now: the SQLite commit and `publish_applied` are
        // done, so a proposer that hears back reads its own write.
        for (responder, response) in responders.into_iter().zip(responses) {
            if let Some(responder) = responder {
                responder.send(response);
            }
        }
        for (index, conn) in pinned {
            let shared = self.shared.clone();
            tokio::task::spawn_blocking(move || {
                let result = conn.and_then(|conn| {
                    let checksum = shoal_storage::content_digest(&conn);
                    let _ = conn.execute_batch("ROLLBACK");
                    checksum
                });
                shared.record_checksum(index, Some(result.map_err(|e| e.to_string())));
            });
        }
        if catalog_changed {
            self.shared.bump_catalog_epoch();
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder { shared: self.shared.clone(), snapshot_dir: self.snapshot_dir.clone() }
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMetaOf<TypeConfig>, snapshot: SnapshotData) -> io::Result<()> {
        if let Err(e) = snapshot.verify() {
            // Installing it would corrupt this replica; stopping it is the safe failure.
            tracing::error!(snapshot = %meta, error = %e, "refusing a damaged snapshot");
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
        let incoming = self.snapshot_dir.join("snapshot.db.incoming");
        std::fs::write(&incoming, &snapshot.bytes)?;
        let keep = self.snapshot_dir.join("snapshot.db.keep");
        std::fs::copy(&incoming, &keep)?;
        let installed = {
            let mut replica = self.shared.lock();
            replica.install_snapshot(&incoming).map_err(sm_error)?;
            // The file's own applied state may predate the meta openraft
            // gives (it was built from committed SQLite state); record the
            // snapshot's log id so applied_state() matches the snapshot.
            let applied = AppliedMeta { last_applied: meta.last_log_id, membership: meta.last_membership.clone() };
            let state = AppliedState {
                index: meta.last_log_id.map(|l| l.index).unwrap_or(0),
                meta: Some(serde_json::to_string(&applied).map_err(sm_error)?),
            };
            replica.apply_empty(state.clone()).map_err(sm_error)?;
            state.index
        };
        persist_current(&self.snapshot_dir, &keep, meta, snapshot.crc32)?;
        tracing::info!(snapshot = %meta, index = installed, "installed a snapshot from the leader");
        self.shared.applied_tx.send_replace(installed);
        self.shared.bump_catalog_epoch();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> io::Result<Option<Snapshot>> {
        let (db, meta_path) = self.current_snapshot_paths();
        if !db.exists() || !meta_path.exists() {
            return Ok(None);
        }
        let stored: StoredSnapshotMeta = serde_json::from_slice(&std::fs::read(&meta_path)?)
            .map_err(|e| sm_error(format!("reading {}: {e}", meta_path.display())))?;
        let crc32 = stored.checksum().map_err(sm_error)?;
        let meta = SnapshotMeta { last_log_id: stored.last_log_id, last_membership: stored.last_membership };
        Ok(Some(Snapshot { meta, snapshot: SnapshotData { bytes: std::fs::read(&db)?, crc32 } }))
    }
}

#[cfg(test)]
mod tests {
    use super::{SnapshotData, StoredSnapshotMeta};

    #[test]
    fn snapshot_checksums_catch_damage() {
        let data = SnapshotData::new(b"SQLite format 3\0 and pages".to_vec());
        assert!(data.verify().is_ok());
        let mut damaged = data.clone();
        damaged.bytes[5] ^= 1;
        assert!(damaged.verify().unwrap_err().contains("does not match"));
        let mut truncated = data.clone();
        truncated.bytes.truncate(10);
        assert!(truncated.verify().is_err(), "truncated");
    }

    #[test]
    fn snapshot_json_of_either_format_yields_the_checksum() {
        let old = r#"{"last_log_id":{"leader_id":{"term":3,"node_id":1},"index":120},
            "last_membership":{"log_id":null,"membership":{"configs":[],"nodes":{}}},
            "snapshot_id":"3-120-120-crc0000abcd"}"#;
        let stored: StoredSnapshotMeta = serde_json::from_str(old).unwrap();
        assert_eq!(stored.checksum(), Ok(0xabcd));
        assert_eq!(stored.last_log_id.map(|id| id.index), Some(120));
        let new = r#"{"last_log_id":null,"last_membership":{"log_id":null,"membership":{"configs":[],"nodes":{}}},
            "snapshot_id":"0-0-crc00000001","crc32":7}"#;
        assert_eq!(serde_json::from_str::<StoredSnapshotMeta>(new).unwrap().checksum(), Ok(7));
        let none = r#"{"last_log_id":null,"last_membership":{"log_id":null,"membership":{"configs":[],"nodes":{}}},
            "snapshot_id":"3-120-120"}"#;
        assert!(serde_json::from_str::<StoredSnapshotMeta>(none).unwrap().checksum().is_err());
        let bad = r#"{"last_log_id":null,"last_membership":{"log_id":null,"membership":{"configs":[],"nodes":{}}},
            "snapshot_id":"3-120-120-crcZZ"}"#;
        assert!(serde_json::from_str::<StoredSnapshotMeta>(bad).unwrap().checksum().is_err());
    }
}
