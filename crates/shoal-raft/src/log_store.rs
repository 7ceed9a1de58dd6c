//! # The durable Raft log
//!
//! [`LogStore`] is Shoal's implementation of openraft's `RaftLogStorage`: the
//! replicated log of one Raft group, kept in a directory of append-only
//! *segment* files plus one small *meta* file. It promises what Raft needs
//! and what the backup archiver (DESIGN.md §8) builds on:
//!
//! * **Durability before acknowledgement.** An append is reported flushed
//!   (openraft's `IOFlushed` callback) only after its bytes are fsynced; a
//!   vote is fsynced before `save_vote` returns.
//! * **Group commit.** One writer thread owns every file. It takes *all*
//!   commands queued while its previous fsync ran, writes them with one
//!   `write`, fsyncs once and then completes every callback — so N clients
//!   proposing at once cost one fsync, not N.
//! * **Checksummed, immutable segments.** Every record carries a CRC; a
//!   sealed segment whose entries are all committed never changes again
//!   (see [`LogStore::sealed_segments`]), so it can be shipped as is.
//! * **Crash recovery without guessing.** A torn tail (the unfinished last
//!   write of a crashed process) is truncated with a warning; damage anywhere
//!   else is a `XX001 data corrupted` error. Nothing in here panics on what
//!   it reads from disk.
//!
//! ## On disk
//!
//! ```text
//! <dir>/
//!   LOCK                        flock'ed while a LogStore has the directory open
//!   meta                        vote, committed, last_purged (JSON in one record;
//!                               replaced by write-temp + fsync + rename + fsync-dir)
//!   00000000000000000000.seg    sealed: entries 0 ..= 4095
//!   00000000000000004096.seg    sealed: entries 4096 ..= 8190
//!   00000000000000008191.seg    active: appended to, the only file that grows
//!
//! segment file (name = index of its first entry, zero padded to sort):
//! +----------------------------------------------+
//! | "SHOALSEG" | version: u32 LE | reserved: u32 |   16-byte header
//! +----------------------------------------------+
//! | record: entry first_index                    |
//! | record: entry first_index + 1                |
//! | ...                                          |
//! +----------------------------------------------+
//!
//! record:
//! +------------------+------------------+--------------------------------+
//! | len: u32 LE      | crc32: u32 LE    | payload: bincode(C::Entry)     |
//! | (payload bytes)  | (of len+payload) | (len bytes, 1 ..= 256 MiB)     |
//! +------------------+------------------+--------------------------------+
//! ```
//!
//! A segment is *sealed* once it reaches `segment_size_bytes` and the writer
//! starts the next one. Entries are consecutive across segments, so a
//! segment's last index is the next segment's first index minus one.
//!
//! The active segment is *preallocated*: the writer extends it with zeros a
//! megabyte (`preallocate_bytes`) at a time and writes records over them,
//! so the fsync of a group commit has no new file length to make durable
//! (see `writer::Writer::write_buf` for why and what it saves). Zeros after
//! the last record are free space, not a torn tail; sealing cuts them off.
//!
//! ## In memory
//!
//! `index::LogIndex` maps each present log index to `(segment, offset, len)`
//! and caches the most recent entries up to `cache_size_bytes`; older
//! entries are read back from their segment with one positioned read. Entries
//! are readable as soon as `append` returns (openraft requires it), before
//! they are durable: until the writer publishes their disk location they live
//! only in the cache, which never evicts them.
//!
//! ## Operations and their order
//!
//! Every file mutation goes through the writer's bounded queue, so they hit
//! the disk in the order openraft issued them (its rule: "all write-IO must be
//! serialized"). `save_vote`, `truncate` and `purge` wait for the writer;
//! `append` only waits for queue space; `save_committed` is persisted by the
//! writer after every append queued before it is durable (never before — a
//! committed id must not point past the durable log), at most once a second
//! and when the store closes; the caller does not wait. openraft treats it as
//! an optimization (a committed id older than the state machine's applied
//! index is raised to it on start), and writing `meta` after every group
//! would triple the fsyncs per write. Nor does every `save_committed` go
//! through the queue: openraft calls it once per entry, and waking the writer
//! thread for a value it will not write for up to a second cost a context
//! switch per entry on every replica. At most once a second it is queued;
//! in between only the in-memory mirror moves, marked with how many commands
//! were queued before it (`LogIndex::committed_unqueued_after`), and the
//! writer adopts it after a group once it has handled that many (so still
//! only after those appends are durable).
//!
//! * `truncate_after(id)` (conflict resolution) removes every entry after
//!   `id` (all of them for `None`): it deletes the segments that start after
//!   `id.index` (newest first, fsyncing the directory after each, so a
//!   crash leaves a prefix), cuts the segment that held `id.index + 1` and
//!   makes it the active segment again. Raft never truncates committed entries,
//!   which is why only *committed* sealed segments count as immutable.
//! * `purge(id)` (after a snapshot) first makes `last_purged = id` durable in
//!   `meta`, then deletes every segment whose entries are all `<= id.index`.
//!   A crash in between leaves garbage segments that the next open deletes.
//!
//! ## Recovery (`LogStore::open`)
//!
//! Segments wholly below `last_purged` are deleted unread. The rest are
//! scanned record by record, checking the CRC, decoding each entry and
//! checking that indexes are consecutive. A segment's records end where only
//! zeros follow (preallocated space). In the **last** segment, the first
//! record that is incomplete or fails its CRC, with anything but zeros
//! after it, starts a torn tail: everything from there is cut off
//! (`tracing::warn!` says how much). A torn write can
//! only be in the last segment, because a segment is fsynced before the next
//! one is created. The same damage in an earlier segment, a payload that
//! passes its CRC but does not decode, an index gap, or a durable committed
//! id beyond the recovered log is `XX001 data corrupted`: the replica must not
//! serve from a log it cannot trust.
//!
//! Limitation: damage to an *acknowledged* record in the last segment looks
//! exactly like a torn tail and is cut off too; the committed-id check catches
//! it whenever the lost entries were known to be committed. Entries that were
//! acknowledged but not yet known committed are, for Raft, replicated
//! elsewhere — the leader re-sends them.
//!
//! ## Out of scope
//!
//! Compression and encryption of segments (the archiver's job), and reading
//! segments with `mmap`.

mod index;
mod meta;
mod record;
mod recovery;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[cfg(test)]
mod tests;
mod writer;

use std::fmt::Debug;
use std::fs::File;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant;

use openraft::alias::{LogIdOf, VoteOf};
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader, RaftTypeConfig};
use serde::de::DeserializeOwned;
use serde::Serialize;
use shoal_common::Error;
use tokio::sync::{mpsc, oneshot};

use index::{LogIndex, ReadItem};
use writer::{Command, Done};

/// Tuning knobs of a [`LogStore`]. `Default` is what production uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogOptions {
    /// A segment is sealed and a new one started once it reaches this size.
    /// Also the unit the archiver ships, so it trades archive lag for file count.
    pub segment_size_bytes: u64,
    /// fsync data, meta and directories. Always on in production; tests turn it
    /// off for speed (everything else, including ordering, stays the same).
    pub fsync: bool,
    /// Upper bound on the bytes one group commit writes before it fsyncs and
    /// acknowledges, so a burst does not delay the first writer's ack unboundedly.
    pub max_group_bytes: usize,
    /// Recently appended entries kept decoded in memory (serving replication
    /// to followers that are nearly caught up without touching the disk).
    pub cache_size_bytes: usize,
    /// Capacity of the writer's queue, in commands (one per `append` call);
    /// a full queue makes `append` wait, which is the backpressure.
    pub queue_capacity: usize,
    /// The active segment is extended with zeros this many bytes at a time,
    /// ahead of its records, so that the fsync after each group commit
    /// writes data only, not a new file length (0: grow with each write).
    pub preallocate_bytes: u64,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            segment_size_bytes: 64 << 20,
            fsync: true,
            max_group_bytes: 4 << 20,
            cache_size_bytes: 16 << 20,
            queue_capacity: 1024,
            preallocate_bytes: 1 << 20,
        }
    }
}

/// A point-in-time summary for metrics and the admin status page.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogStats {
    /// First present entry; `None` when the log is empty.
    pub first_index: Option<u64>,
    /// Last present entry; `None` when the log is empty.
    pub last_index: Option<u64>,
    /// Total size of all segment files.
    pub size_bytes: u64,
    /// Number of segment files, the active one included.
    pub segments: usize,
    /// `append` calls since open.
    pub appends: u64,
    /// Group commits (write + fsync + acknowledge rounds) since open.
    pub group_commits: u64,
    /// fsync calls (segments, meta file and directory) since open.
    pub fsyncs: u64,
    /// Time spent in those fsyncs, and in the latest one.
    pub fsync_micros_total: u64,
    pub fsync_micros_last: u64,
}

/// Reads a [`LogStore`]'s live [`LogStats`]; see [`LogStore::stats_handle`].
#[derive(Clone)]
pub struct StatsHandle(Arc<dyn Fn() -> LogStats + Send + Sync>);

impl StatsHandle {
    /// The stats right now.
    pub fn get(&self) -> LogStats {
        (self.0)()
    }
}

impl std::fmt::Debug for StatsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StatsHandle")
    }
}

/// A sealed segment whose entries are all committed: its bytes never change
/// again; only a purge may delete the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedSegment {
    pub path: PathBuf,
    pub first_index: u64,
    pub last_index: u64,
    pub size_bytes: u64,
}

/// Counts and times every fsync; a no-op when fsync is disabled.
pub(crate) struct Fsync {
    enabled: bool,
    count: AtomicU64,
    micros_total: AtomicU64,
    micros_last: AtomicU64,
}

impl Fsync {
    fn new(enabled: bool) -> Fsync {
        Fsync { enabled, count: AtomicU64::new(0), micros_total: AtomicU64::new(0), micros_last: AtomicU64::new(0) }
    }

    fn timed(&self, sync: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
        if !self.enabled {
            return Ok(());
        }
        let started = Instant::now();
        sync()?;
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.micros_total.fetch_add(micros, Ordering::Relaxed);
        self.micros_last.store(micros, Ordering::Relaxed);
        Ok(())
    }

    /// `fdatasync`: file contents and the size needed to read them back.
    fn file(&self, file: &File) -> io::Result<()> {
        self.timed(|| file.sync_data())
    }

    /// Makes creations, renames and deletions in `dir` durable.
    fn dir(&self, dir: &Path) -> Result<(), Error> {
        self.timed(|| File::open(dir)?.sync_all()).map_err(|err| Error::io(format!("fsync of {}", dir.display()), err))
    }
}

/// State shared by the Raft-facing handle, its readers and the writer thread.
struct Shared<C: RaftTypeConfig> {
    dir: PathBuf,
    index: Mutex<LogIndex<C>>,
    fsync: Fsync,
    appends: AtomicU64,
    group_commits: AtomicU64,
    /// Lets a test hold the writer still while it queues commands, to make
    /// group sizes deterministic.
    #[cfg(test)]
    gate: Mutex<()>,
}

impl<C> Shared<C>
where
    C: RaftTypeConfig,
    C::Entry: Clone + Serialize + DeserializeOwned,
{
    fn lock(&self) -> Result<MutexGuard<'_, LogIndex<C>>, Error> {
        // A poisoned lock means a thread panicked mid-update: the index may be
        // inconsistent, so refuse to serve rather than guess.
        self.index.lock().map_err(|_| Error::internal("the Raft log index is poisoned by an earlier panic"))
    }

    /// For metrics only: reading a possibly half-updated index is harmless.
    fn lock_for_stats(&self) -> MutexGuard<'_, LogIndex<C>> {
        self.index.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn read(&self, start: u64, end: u64) -> Result<Vec<C::Entry>, Error> {
        // Plan under the lock, do the disk reads outside it so readers never
        // stall the writer's publish step.
        let items = self.lock()?.plan_read(start, end)?;
        items
            .into_iter()
            .map(|item| match item {
                ReadItem::Cached(entry) => Ok(entry),
                ReadItem::Disk { index, file, slot } => file.read_entry::<C>(slot, index),
            })
            .collect()
    }

    fn stats(&self) -> LogStats {
        let index = self.lock_for_stats();
        let bounds = index.bounds();
        LogStats {
            first_index: bounds.map(|(first, _)| first),
            last_index: bounds.map(|(_, last)| last),
            size_bytes: index.size_bytes(),
            segments: index.segment_count(),
            appends: self.appends.load(Ordering::Relaxed),
            group_commits: self.group_commits.load(Ordering::Relaxed),
            fsyncs: self.fsync.count.load(Ordering::Relaxed),
            fsync_micros_total: self.fsync.micros_total.load(Ordering::Relaxed),
            fsync_micros_last: self.fsync.micros_last.load(Ordering::Relaxed),
        }
    }
}

/// The durable Raft log of one group. See the module documentation.
///
/// `C::Entry` must serialize with bincode (see `record::codec`); with
/// openraft's `serde` feature every `RaftEntry` is `Serialize +
/// DeserializeOwned` already, and `openraft::Entry` is `Clone`.
pub struct LogStore<C: RaftTypeConfig> {
    shared: Arc<Shared<C>>,
    /// `Option` so that `Drop` can close the queue before joining the writer.
    queue: Option<mpsc::Sender<Command<C>>>,
    writer: Option<JoinHandle<()>>,
    /// Commands queued for the writer since open.
    queued: u64,
    /// When a committed id last went through the queue.
    committed_queued_at: Option<Instant>,
}

impl<C> LogStore<C>
where
    C: RaftTypeConfig,
    C::Entry: Clone + Serialize + DeserializeOwned,
{
    /// Opens (creating if needed) the log in `dir`, recovering from a crash:
    /// see "Recovery" in the module documentation.
    pub fn open(dir: &Path, options: LogOptions) -> Result<LogStore<C>, Error> {
        recovery::open(dir, options)
    }

    /// The directory holding the segments.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    pub fn stats(&self) -> LogStats {
        self.shared.stats()
    }

    /// A handle that reads live stats after the store itself was handed to
    /// openraft (for metrics and system views).
    pub fn stats_handle(&self) -> StatsHandle {
        let shared = self.shared.clone();
        StatsHandle(Arc::new(move || shared.stats()))
    }

    /// Sealed segments whose entries are all committed, oldest first: the
    /// files the backup archiver may ship. They never change; a purge may
    /// delete them, so the archiver should hold back purges past what it shipped.
    pub fn sealed_segments(&self) -> Vec<SealedSegment> {
        self.shared.lock_for_stats().sealed_segments()
    }

    /// A reader sharing this log (cheap; what `get_log_reader` returns).
    pub fn reader(&self) -> LogReader<C> {
        LogReader { shared: self.shared.clone() }
    }

    /// Appends `entries`, readable on return; `done` runs on the writer thread
    /// once they are durable (or with the error that stopped the writer).
    pub(crate) async fn append_with(
        &mut self,
        entries: impl IntoIterator<Item = C::Entry>,
        done: Done,
    ) -> Result<(), Error> {
        // Entries at or below the purge point are already inside a snapshot;
        // storing them would put a hole before the log's first entry. openraft
        // itself can send them: its start-up purges up to the state machine's
        // last-applied id when the log is behind it (the storage suite does
        // exactly this), so they are dropped, not refused.
        let purged_upto = self.shared.lock()?.last_purged().map(|id| id.index);
        let mut framed = Vec::new();
        let mut cached = Vec::new();
        for entry in entries {
            if purged_upto.is_some_and(|upto| entry.index() <= upto) {
                tracing::debug!(index = entry.index(), "dropping an appended entry below the purge point");
                continue;
            }
            let record = record::encode_entry(&entry)?;
            let index = entry.index();
            cached.push((entry, record.len()));
            framed.push((index, record));
        }
        self.shared.lock()?.push_pending(cached)?;
        self.shared.appends.fetch_add(1, Ordering::Relaxed);
        self.send(Command::Append { records: framed, done }).await
    }

    async fn send(&mut self, command: Command<C>) -> Result<(), Error> {
        let queue = self.queue.as_ref().ok_or_else(|| Error::internal("the Raft log is closed"))?;
        queue.send(command).await.map_err(|_| Error::internal("the Raft log writer has stopped"))?;
        self.queued += 1;
        Ok(())
    }

    /// Sends a command that carries a reply channel and waits for the reply.
    async fn request(
        &mut self,
        command: impl FnOnce(oneshot::Sender<Result<(), Error>>) -> Command<C>,
    ) -> Result<(), Error> {
        let (reply, done) = oneshot::channel();
        self.send(command(reply)).await?;
        done.await.map_err(|_| Error::internal("the Raft log writer stopped before replying"))?
    }
}

impl<C: RaftTypeConfig> Drop for LogStore<C> {
    fn drop(&mut self) {
        // Closing the queue lets the writer finish what is queued and exit;
        // joining it means the directory lock is free when drop returns, so
        // the same process can reopen the log at once.
        self.queue.take();
        if let Some(writer) = self.writer.take() {
            if writer.join().is_err() {
                tracing::error!(dir = %self.shared.dir.display(), "the Raft log writer thread panicked");
            }
        }
    }
}

/// A read-only handle on a [`LogStore`], used by openraft's replication tasks.
pub struct LogReader<C: RaftTypeConfig> {
    shared: Arc<Shared<C>>,
}

impl<C: RaftTypeConfig> Clone for LogReader<C> {
    fn clone(&self) -> Self {
        LogReader { shared: self.shared.clone() }
    }
}

/// `[start, end)` from any range over log indexes.
fn index_bounds(range: &impl RangeBounds<u64>) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(start) => *start,
        Bound::Excluded(start) => start.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(end) => end.saturating_add(1),
        Bound::Excluded(end) => *end,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

/// Shoal's error as openraft's storage error (the SQLSTATE stays in the text).
fn io_error(err: Error) -> io::Error {
    io::Error::other(err.to_string())
}

impl<C> RaftLogReader<C> for LogReader<C>
where
    C: RaftTypeConfig,
    C::Entry: Clone + Serialize + DeserializeOwned,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> io::Result<Vec<C::Entry>> {
        let (start, end) = index_bounds(&range);
        self.shared.read(start, end).map_err(io_error)
    }

    async fn read_vote(&mut self) -> io::Result<Option<VoteOf<C>>> {
        Ok(self.shared.lock().map_err(io_error)?.vote.clone())
    }
}

/// The store reads as its readers do.
impl<C> RaftLogReader<C> for LogStore<C>
where
    C: RaftTypeConfig,
    C::Entry: Clone + Serialize + DeserializeOwned,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> io::Result<Vec<C::Entry>> {
        self.reader().try_get_log_entries(range).await
    }

    async fn read_vote(&mut self) -> io::Result<Option<VoteOf<C>>> {
        self.reader().read_vote().await
    }
}

impl<C> RaftLogStorage<C> for LogStore<C>
where
    C: RaftTypeConfig,
    C::Entry: Clone + Serialize + DeserializeOwned,
{
    type LogReader = LogReader<C>;

    async fn get_log_state(&mut self) -> io::Result<LogState<C>> {
        let index = self.shared.lock().map_err(io_error)?;
        Ok(LogState { last_purged_log_id: index.last_purged(), last_log_id: index.last_log_id() })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.reader()
    }

    async fn save_vote(&mut self, vote: &VoteOf<C>) -> io::Result<()> {
        self.request(|reply| Command::SaveVote { vote: vote.clone(), reply }).await.map_err(io_error)?;
        // Published only once durable: readers (openraft's replication
        // checks the vote through them) never see a vote a crash could undo.
        self.shared.lock().map_err(io_error)?.vote = Some(vote.clone());
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogIdOf<C>>) -> io::Result<()> {
        let queue_it = self.committed_queued_at.is_none_or(|at| at.elapsed() >= writer::COMMITTED_PERSIST_INTERVAL);
        {
            let mut index = self.shared.lock().map_err(io_error)?;
            index.committed = committed.clone();
            // Queued now, it is persisted in order and needs no mark.
            index.committed_unqueued_after = (!queue_it).then_some(self.queued);
        }
        if !queue_it {
            return Ok(());
        }
        self.send(Command::SaveCommitted { committed }).await.map_err(io_error)?;
        self.committed_queued_at = Some(Instant::now());
        Ok(())
    }

    async fn read_committed(&mut self) -> io::Result<Option<LogIdOf<C>>> {
        Ok(self.shared.lock().map_err(io_error)?.committed.clone())
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<C>) -> io::Result<()>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<C::Entry> = entries.into_iter().collect();
        self.append_with(entries, Box::new(move |result| callback.io_completed(result))).await.map_err(io_error)
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogIdOf<C>>) -> io::Result<()> {
        // Everything after `last_log_id` goes; `None` empties the log.
        let first_removed = last_log_id.map_or(0, |id| id.index() + 1);
        self.request(|reply| Command::Truncate { index: first_removed, reply }).await.map_err(io_error)
    }

    async fn purge(&mut self, log_id: LogIdOf<C>) -> io::Result<()> {
        self.request(|reply| Command::Purge { log_id, reply }).await.map_err(io_error)
    }
}
