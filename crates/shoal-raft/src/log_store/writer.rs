//! The writer thread: the only code that modifies log files.
//!
//! It loops: block for one command, then take every command already queued
//! (up to `max_group_bytes`) — the ones that arrived while the previous group
//! was being fsynced — and handle them in order. Appends are staged into one
//! buffer; the group ends with one `write` and one fsync of the active
//! segment, after which every staged append is published to the index and
//! its callback completed. A vote, truncate or purge first flushes the group
//! staged before it, which is what keeps the order openraft issued.
//!
//! Any I/O failure *poisons* the writer: after a failed fsync the kernel may
//! have dropped dirty pages, so nothing on disk can be trusted to match what
//! we believe. Every later command fails with the original error, openraft
//! sees a storage error and stops this replica (the determinism rule of
//! DESIGN.md §7: an environment failure stops the replica rather than let it
//! diverge).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::mem;
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::alias::{LogIdOf, VoteOf};
use openraft::RaftTypeConfig;
use serde::de::DeserializeOwned;
use serde::Serialize;
use shoal_common::Error;
use tokio::sync::{mpsc, oneshot};

use super::index::{SegmentFile, Slot};
use super::meta::Meta;
use super::record::{segment_file_name, segment_header, SEGMENT_HEADER_BYTES};
use super::{LogOptions, Shared};

/// How often a changed committed id (and nothing else) is written to `meta`.
pub(super) const COMMITTED_PERSIST_INTERVAL: Duration = Duration::from_secs(1);

/// Completes one append: `Ok` once durable, or the error that poisoned the writer.
pub(crate) type Done = Box<dyn FnOnce(io::Result<()>) + Send>;

type Reply = oneshot::Sender<Result<(), Error>>;

/// One unit of work for the writer, in the order openraft issued it.
pub(crate) enum Command<C: RaftTypeConfig> {
    /// Framed records `(index, bytes)`, consecutive, continuing the log.
    Append {
        records: Vec<(u64, Vec<u8>)>,
        done: Done,
    },
    SaveVote {
        vote: VoteOf<C>,
        reply: Reply,
    },
    /// Not waited for; persisted at the end of the group (see the module docs of `log_store`).
    SaveCommitted {
        committed: Option<LogIdOf<C>>,
    },
    /// Remove entries `>= index`.
    Truncate {
        index: u64,
        reply: Reply,
    },
    /// Remove entries `<= log_id.index`.
    Purge {
        log_id: LogIdOf<C>,
        reply: Reply,
    },
}

impl<C: RaftTypeConfig> Command<C> {
    fn size_bytes(&self) -> usize {
        match self {
            Command::Append { records, .. } => records.iter().map(|(_, record)| record.len()).sum(),
            _ => 0,
        }
    }

    /// Answers a command the poisoned writer will not perform.
    fn fail(self, err: &Error) {
        match self {
            Command::Append { done, .. } => done(Err(to_io_error(err))),
            Command::SaveVote { reply, .. } | Command::Truncate { reply, .. } | Command::Purge { reply, .. } => {
                let _ = reply.send(Err(err.clone()));
            }
            Command::SaveCommitted { .. } => {}
        }
    }
}

fn to_io_error(err: &Error) -> io::Error {
    io::Error::other(err.to_string())
}

/// The segment that appends go to.
pub(super) struct ActiveSegment {
    pub first_index: u64,
    pub file: File,
    /// Bytes of records in the file plus bytes staged in the writer's buffer.
    pub size_bytes: u64,
    /// Bytes of records in the file: where the next write goes.
    written: u64,
    /// The file's length: its records, then the zeros written ahead of them
    /// (see [`LogOptions::preallocate_bytes`]).
    allocated: u64,
}

impl ActiveSegment {
    /// Reopens an existing segment for appending (recovery, or after a
    /// truncate) at the end of its `size_bytes` of records; zeros after
    /// them are kept as preallocated space.
    pub fn reopen(first_index: u64, segment: &SegmentFile, size_bytes: u64) -> Result<ActiveSegment, Error> {
        let io = |err| Error::io(format!("opening {} for append", segment.path.display()), err);
        let file = OpenOptions::new().write(true).open(&segment.path).map_err(io)?;
        let allocated = file.metadata().map_err(io)?.len().max(size_bytes);
        Ok(ActiveSegment { first_index, file, size_bytes, written: size_bytes, allocated })
    }
}

/// Zeros written ahead of the records, a block at a time.
static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

pub(super) struct Writer<C: RaftTypeConfig> {
    shared: Arc<Shared<C>>,
    options: LogOptions,
    /// The authoritative copy of what `meta` holds (or is about to).
    meta: Meta<C>,
    meta_dirty: bool,
    /// When `meta` was last written (throttles committed-only writes).
    last_meta_write: Instant,
    /// Commands handled since open (see `LogIndex::committed_unqueued_after`).
    handled: u64,
    active: Option<ActiveSegment>,
    poisoned: Option<Error>,
    /// Records staged for the active segment, written at the end of the group.
    buf: Vec<u8>,
    /// Whether anything was written or created since the last fsync.
    unsynced: bool,
    /// A segment file was created since the last directory fsync.
    dir_dirty: bool,
    /// Disk locations of the staged records, published after the fsync.
    staged: Vec<(u64, Slot)>,
    /// Final sizes of segments sealed during this group.
    sealed_sizes: Vec<(u64, u64)>,
    /// Callbacks of the appends in this group.
    waiting: Vec<Done>,
    /// Held (flock'ed) for as long as the writer lives.
    _lock: File,
}

impl<C> Writer<C>
where
    C: RaftTypeConfig,
    C::Entry: Clone + Serialize + DeserializeOwned,
{
    pub fn new(
        shared: Arc<Shared<C>>,
        options: LogOptions,
        meta: Meta<C>,
        active: Option<ActiveSegment>,
        lock: File,
    ) -> Writer<C> {
        Writer {
            shared,
            options,
            meta,
            meta_dirty: false,
            last_meta_write: Instant::now(),
            handled: 0,
            active,
            poisoned: None,
            buf: Vec::new(),
            unsynced: false,
            dir_dirty: false,
            staged: Vec::new(),
            sealed_sizes: Vec::new(),
            waiting: Vec::new(),
            _lock: lock,
        }
    }

    /// The thread body; returns when the queue is closed and drained.
    pub fn run(mut self, mut queue: mpsc::Receiver<Command<C>>) {
        while let Some(first) = queue.blocking_recv() {
            // Waits while a test holds the gate; the group is drained after.
            #[cfg(test)]
            drop(self.shared.gate.lock());
            let mut group_bytes = first.size_bytes();
            let mut group = vec![first];
            // Bounded twice: by bytes here, by command count via the queue's capacity.
            while group_bytes < self.options.max_group_bytes {
                match queue.try_recv() {
                    Ok(command) => {
                        group_bytes += command.size_bytes();
                        group.push(command);
                    }
                    Err(_) => break,
                }
            }
            for command in group {
                self.handle(command);
                self.handled += 1;
            }
            // Errors were handled (poison + failed callbacks) inside.
            let _ = self.flush_group();
            self.take_pending_committed();
            // The committed id alone is persisted at most every
            // COMMITTED_PERSIST_INTERVAL: writing `meta` costs two more fsyncs
            // (file and directory), and openraft only uses it to re-apply
            // sooner after a restart; the applied index lives in the state
            // machine, and a lagging committed id is raised to it on open.
            if self.meta_dirty && self.last_meta_write.elapsed() >= COMMITTED_PERSIST_INTERVAL {
                self.write_meta_if_healthy();
            }
        }
        self.take_pending_committed();
        if self.meta_dirty {
            self.write_meta_if_healthy();
        }
    }

    /// Adopts the committed id that was not queued once every command
    /// queued before it is handled; called after a group's flush, so the
    /// appends it covers are durable.
    fn take_pending_committed(&mut self) {
        let Ok(mut index) = self.shared.lock() else { return };
        if index.committed_unqueued_after.is_some_and(|after| after <= self.handled) {
            index.committed_unqueued_after = None;
            self.meta.committed = index.committed.clone();
            self.meta_dirty = true;
        }
    }

    fn write_meta_if_healthy(&mut self) {
        if self.poisoned.is_none() {
            let result = self.write_meta();
            self.check(result);
        }
    }

    fn handle(&mut self, command: Command<C>) {
        if let Some(err) = &self.poisoned {
            command.fail(err);
            return;
        }
        match command {
            Command::Append { records, done } => {
                self.waiting.push(done);
                for (index, record) in records {
                    let result = self.stage(index, &record);
                    if !self.check(result) {
                        // flush_group will fail every waiting callback, this one included.
                        return;
                    }
                }
            }
            Command::SaveCommitted { committed } => {
                // Deferred to the end of the group, after the appends queued
                // before it are durable; a later vote/purge writes it earlier
                // (also after a flush), which is just as safe.
                self.meta.committed = committed;
                self.meta_dirty = true;
            }
            Command::SaveVote { vote, reply } => {
                let result = self.flush_group().and_then(|()| {
                    self.meta.vote = Some(vote);
                    self.write_meta()
                });
                self.reply(reply, result);
            }
            Command::Truncate { index, reply } => {
                let result = self.flush_group().and_then(|()| self.truncate(index));
                self.reply(reply, result);
            }
            Command::Purge { log_id, reply } => {
                let result = self.flush_group().and_then(|()| self.purge(log_id));
                self.reply(reply, result);
            }
        }
    }

    /// Poisons the writer on error; returns whether `result` was `Ok`.
    fn check(&mut self, result: Result<(), Error>) -> bool {
        match result {
            Ok(()) => true,
            Err(err) => {
                tracing::error!(dir = %self.shared.dir.display(), error = %err, "Raft log writer failed; refusing further writes");
                self.poisoned.get_or_insert(err);
                false
            }
        }
    }

    fn reply(&mut self, reply: Reply, result: Result<(), Error>) {
        self.check(result.clone());
        // The requester may have given up (its future dropped); nothing to do then.
        let _ = reply.send(result);
    }

    /// Adds one record to the group, sealing and starting segments as needed.
    fn stage(&mut self, index: u64, record: &[u8]) -> Result<(), Error> {
        let full = self.active.as_ref().map(|active| {
            active.size_bytes >= self.options.segment_size_bytes && active.size_bytes > SEGMENT_HEADER_BYTES
        });
        match full {
            None => self.create_segment(index)?,
            Some(true) => {
                self.seal_active()?;
                self.create_segment(index)?;
            }
            Some(false) => {}
        }
        let active = self.active.as_mut().ok_or_else(|| Error::internal("log writer has no active segment"))?;
        let len = u32::try_from(record.len()).map_err(|_| Error::internal("log record larger than 4 GiB"))?;
        self.staged.push((index, Slot { offset: active.size_bytes, len }));
        active.size_bytes += record.len() as u64;
        self.buf.extend_from_slice(record);
        self.unsynced = true;
        Ok(())
    }

    /// Writes the staged bytes to the active segment (no fsync), first
    /// extending the segment with zeros when they would not fit.
    ///
    /// Why zeros: an fdatasync that must also make a new file length durable
    /// commits the file system's journal, which every process on the disk
    /// shares; overwriting blocks already written needs no journal commit.
    /// With three processes appending 300-byte records and syncing each
    /// (`bench/fdatasync.py`, docs/benchmarks.md): p50 fdatasync 255–280 µs
    /// growing the file, 208–211 µs over zeros. PostgreSQL zero-fills its
    /// WAL segments for the same reason.
    fn write_buf(&mut self) -> Result<(), Error> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = self.options.preallocate_bytes;
        let segment_size = self.options.segment_size_bytes;
        let active = self.active.as_mut().ok_or_else(|| Error::internal("log writer has no active segment"))?;
        let io = |err| Error::io(format!("appending to log segment {}", segment_file_name(active.first_index)), err);
        let end = active.written + self.buf.len() as u64;
        if chunk > 0 && end > active.allocated {
            // Up to the next multiple of the chunk, never past the segment's
            // size (it is sealed there; a record that crosses it is not).
            let target = (end.div_ceil(chunk) * chunk).min(segment_size).max(end);
            let mut at = active.allocated.max(active.written);
            while at < target {
                let n = (target - at).min(ZEROS.len() as u64) as usize;
                active.file.write_all_at(&ZEROS[..n], at).map_err(io)?;
                at += n as u64;
            }
            active.allocated = target;
        }
        active.file.write_all_at(&self.buf, active.written).map_err(io)?;
        active.written = end;
        active.allocated = active.allocated.max(end);
        self.buf.clear();
        Ok(())
    }

    /// Makes the active segment durable and immutable before the next one
    /// exists, which is what confines torn writes to the last segment.
    fn seal_active(&mut self) -> Result<(), Error> {
        self.write_buf()?;
        if let Some(active) = self.active.take() {
            let io = |err| Error::io(format!("sealing log segment {}", segment_file_name(active.first_index)), err);
            // A sealed segment holds its records and nothing else: the
            // archiver ships it byte for byte.
            if active.allocated > active.written {
                active.file.set_len(active.written).map_err(io)?;
            }
            self.shared.fsync.file(&active.file).map_err(io)?;
            self.sealed_sizes.push((active.first_index, active.size_bytes));
        }
        Ok(())
    }

    fn create_segment(&mut self, first_index: u64) -> Result<(), Error> {
        let path = self.shared.dir.join(segment_file_name(first_index));
        let io = |err| Error::io(format!("creating log segment {}", path.display()), err);
        // create_new: a leftover file with this name would mean our picture of
        // the directory is wrong; fail rather than append to it.
        let file = OpenOptions::new().create_new(true).write(true).open(&path).map_err(io)?;
        file.write_all_at(&segment_header(), 0).map_err(io)?;
        let reader = Arc::new(SegmentFile::open(&path)?);
        self.shared.lock()?.add_segment(first_index, reader, SEGMENT_HEADER_BYTES);
        self.active = Some(ActiveSegment {
            first_index,
            file,
            size_bytes: SEGMENT_HEADER_BYTES,
            written: SEGMENT_HEADER_BYTES,
            allocated: SEGMENT_HEADER_BYTES,
        });
        self.dir_dirty = true;
        self.unsynced = true;
        Ok(())
    }

    /// Ends the group: write, fsync once, publish, acknowledge.
    fn flush_group(&mut self) -> Result<(), Error> {
        if self.waiting.is_empty() && !self.unsynced {
            return self.poisoned.clone().map_or(Ok(()), Err);
        }
        let result = match self.poisoned.clone() {
            Some(err) => Err(err),
            None => self.sync_and_publish(),
        };
        self.check(result.clone());
        self.shared.group_commits.fetch_add(1, Ordering::Relaxed);
        self.staged.clear();
        self.sealed_sizes.clear();
        self.buf.clear();
        self.unsynced = false;
        for done in mem::take(&mut self.waiting) {
            done(result.as_ref().map(|_| ()).map_err(to_io_error));
        }
        result
    }

    fn sync_and_publish(&mut self) -> Result<(), Error> {
        let mut sizes = mem::take(&mut self.sealed_sizes);
        if self.unsynced {
            self.write_buf()?;
            if let Some(active) = &self.active {
                self.shared.fsync.file(&active.file).map_err(|err| {
                    Error::io(format!("fsync of log segment {}", segment_file_name(active.first_index)), err)
                })?;
            }
        }
        if let Some(active) = &self.active {
            sizes.push((active.first_index, active.size_bytes));
        }
        if self.dir_dirty {
            self.shared.fsync.dir(&self.shared.dir)?;
            self.dir_dirty = false;
        }
        self.shared.lock()?.publish(&self.staged, &sizes)
    }

    fn write_meta(&mut self) -> Result<(), Error> {
        self.meta.write(&self.shared.dir, &self.shared.fsync)?;
        self.meta_dirty = false;
        self.last_meta_write = Instant::now();
        Ok(())
    }

    fn truncate(&mut self, index: u64) -> Result<(), Error> {
        let Some(plan) = self.shared.lock()?.truncate_from(index)? else {
            return Ok(());
        };
        // The active segment is either deleted or cut below; reopen afterwards.
        self.active = None;
        for segment in &plan.delete {
            remove_segment(segment)?;
            // One directory fsync per file: newest first *and* durable in that
            // order, so a crash cannot leave a newer segment behind a hole.
            self.shared.fsync.dir(&self.shared.dir)?;
        }
        if let Some((first_index, segment, size_bytes)) = plan.keep {
            let mut active = ActiveSegment::reopen(first_index, &segment, size_bytes)?;
            let io = |err| Error::io(format!("truncating {}", segment.path.display()), err);
            active.file.set_len(size_bytes).map_err(io)?;
            active.allocated = size_bytes;
            self.shared.fsync.file(&active.file).map_err(io)?;
            self.active = Some(active);
        }
        Ok(())
    }

    fn purge(&mut self, log_id: LogIdOf<C>) -> Result<(), Error> {
        if self.meta.last_purged.as_ref().is_some_and(|purged| purged.index >= log_id.index) {
            return Ok(());
        }
        // Durable before any file goes: a crash in between leaves garbage
        // segments that recovery recognizes by `last_purged` and deletes.
        self.meta.last_purged = Some(log_id.clone());
        self.write_meta()?;
        let doomed = self.shared.lock()?.purge_upto(&log_id)?;
        for (first_index, segment) in &doomed {
            if self.active.as_ref().is_some_and(|active| active.first_index == *first_index) {
                self.active = None;
            }
            remove_segment(segment)?;
        }
        if !doomed.is_empty() {
            self.shared.fsync.dir(&self.shared.dir)?;
        }
        Ok(())
    }
}

fn remove_segment(segment: &SegmentFile) -> Result<(), Error> {
    match fs::remove_file(&segment.path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(Error::io(format!("deleting log segment {}", segment.path.display()), err)),
    }
}
