//! The in-memory view of the log: where every present entry lives on disk,
//! the cache of recent entries, the segment table and the log pointers.
//!
//! One `LogIndex` sits behind a mutex shared by the Raft-facing handle
//! (which adds *pending* entries), the writer thread (which *publishes* them
//! once fsynced, and applies truncate/purge) and any number of log readers.
//!
//! ```text
//!             first_index                        first_index + disk.len()      end = first_index + len
//!                  |                                       |                        |
//!   disk slots:    [ s s s s s s s s s s s s s s s s s s s ]                        |
//!   cache:                                   [ e e e e e e e e e e e e e e e e e e e ]
//!                                      cache_first = end - cache.len()
//! ```
//!
//! Invariants: the cache is always a suffix of the log and covers every
//! entry that is not yet durable (`cache_first <= first_index + disk.len()`),
//! so a reader always finds an entry in one of the two places; the cache
//! only evicts durable entries.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::alias::{LogIdOf, VoteOf};
use openraft::entry::RaftEntry;
use openraft::RaftTypeConfig;
use serde::de::DeserializeOwned;
use shoal_common::Error;

use super::record::{corrupted, decode_entry, unframe};
use super::SealedSegment;

/// Where one durable entry's record lives inside its segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Slot {
    pub offset: u64,
    /// The framed length: header plus payload.
    pub len: u32,
}

/// A read-only handle on one segment file. Readers clone the `Arc` and read
/// without holding the index lock; a purge may unlink the file meanwhile,
/// which is harmless because the open descriptor keeps the data alive.
pub(super) struct SegmentFile {
    pub path: PathBuf,
    file: File,
}

impl SegmentFile {
    pub fn open(path: &Path) -> Result<SegmentFile, Error> {
        let file = File::open(path).map_err(|err| Error::io(format!("opening {}", path.display()), err))?;
        Ok(SegmentFile { path: path.to_path_buf(), file })
    }

    /// Reads, verifies and decodes the entry at `slot`, which must be `index`.
    pub fn read_entry<C>(&self, slot: Slot, index: u64) -> Result<C::Entry, Error>
    where
        C: RaftTypeConfig,
        C::Entry: DeserializeOwned,
    {
        let mut buf = vec![0u8; slot.len as usize];
        self.file
            .read_exact_at(&mut buf, slot.offset)
            .map_err(|err| Error::io(format!("reading log entry {index} from {}", self.path.display()), err))?;
        let (payload, total) = unframe(&buf).map_err(|err| {
            corrupted(format!("log entry {index} in {} at offset {}: {err}", self.path.display(), slot.offset))
        })?;
        if total != buf.len() {
            return Err(corrupted(format!("log entry {index} in {} has the wrong length", self.path.display())));
        }
        let entry: C::Entry = decode_entry(payload).map_err(|err| {
            corrupted(format!("log entry {index} in {} cannot be decoded: {err}", self.path.display()))
        })?;
        if entry.index() != index {
            return Err(corrupted(format!(
                "{} holds entry {} where entry {index} was expected",
                self.path.display(),
                entry.index()
            )));
        }
        Ok(entry)
    }
}

/// One row of the segment table.
pub(super) struct SegmentInfo {
    pub file: Arc<SegmentFile>,
    pub size_bytes: u64,
}

struct Cached<E> {
    entry: E,
    size_bytes: usize,
}

/// What a reader must fetch for one index: a cached copy or a disk location.
pub(super) enum ReadItem<E> {
    Cached(E),
    Disk { index: u64, file: Arc<SegmentFile>, slot: Slot },
}

/// The file work a truncate leaves to the writer, decided under the lock.
pub(super) struct TruncatePlan {
    /// Segments that lie wholly at or after the truncation point, newest first
    /// (deleting newest first means a crash half way leaves a log prefix).
    pub delete: Vec<Arc<SegmentFile>>,
    /// The segment that now ends the log, cut to `size_bytes`; it becomes the
    /// active segment again.
    pub keep: Option<(u64, Arc<SegmentFile>, u64)>,
}

pub(super) struct LogIndex<C: RaftTypeConfig> {
    first_index: u64,
    len: u64,
    disk: VecDeque<Slot>,
    cache: VecDeque<Cached<C::Entry>>,
    cache_bytes: usize,
    cache_limit_bytes: usize,
    last_log_id: Option<LogIdOf<C>>,
    last_purged: Option<LogIdOf<C>>,
    /// Mirrors of the durable meta file, for `read_vote`/`read_committed`.
    pub vote: Option<VoteOf<C>>,
    pub committed: Option<LogIdOf<C>>,
    /// Set while `committed` is newer than what was queued for the writer:
    /// how many commands were queued before it (see the module docs of
    /// `log_store`).
    pub committed_unqueued_after: Option<u64>,
    segments: BTreeMap<u64, SegmentInfo>,
}

impl<C> LogIndex<C>
where
    C: RaftTypeConfig,
    C::Entry: Clone + DeserializeOwned,
{
    pub fn new(cache_limit_bytes: usize, last_purged: Option<LogIdOf<C>>) -> LogIndex<C> {
        LogIndex {
            first_index: last_purged.as_ref().map_or(0, |id| id.index + 1),
            len: 0,
            disk: VecDeque::new(),
            cache: VecDeque::new(),
            cache_bytes: 0,
            cache_limit_bytes,
            last_log_id: last_purged.clone(),
            last_purged,
            vote: None,
            committed: None,
            committed_unqueued_after: None,
            segments: BTreeMap::new(),
        }
    }

    pub fn last_log_id(&self) -> Option<LogIdOf<C>> {
        self.last_log_id.clone()
    }

    pub fn last_purged(&self) -> Option<LogIdOf<C>> {
        self.last_purged.clone()
    }

    /// One past the last present entry.
    fn end(&self) -> u64 {
        self.first_index + self.len
    }

    fn cache_first(&self) -> u64 {
        self.end() - self.cache.len() as u64
    }

    /// `(first, last)` present index, `None` when the log holds no entry.
    pub fn bounds(&self) -> Option<(u64, u64)> {
        (self.len > 0).then(|| (self.first_index, self.end() - 1))
    }

    pub fn add_segment(&mut self, first_index: u64, file: Arc<SegmentFile>, size_bytes: u64) {
        self.segments.insert(first_index, SegmentInfo { file, size_bytes });
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.size_bytes).sum()
    }

    /// Accepts an entry found on disk during recovery: durable and cacheable.
    pub fn push_recovered(&mut self, entry: C::Entry, slot: Slot) -> Result<(), Error> {
        let id = entry.log_id();
        self.check_next(id.index)?;
        if self.len == 0 {
            self.first_index = id.index;
        }
        self.len += 1;
        self.disk.push_back(slot);
        self.cache_bytes += slot.len as usize;
        self.cache.push_back(Cached { entry, size_bytes: slot.len as usize });
        self.last_log_id = Some(id);
        self.evict();
        Ok(())
    }

    /// Makes freshly appended entries readable before they are durable, as
    /// `RaftLogStorage::append` requires. `entries` carries each entry with
    /// its record size (for cache accounting).
    pub fn push_pending(&mut self, entries: Vec<(C::Entry, usize)>) -> Result<(), Error> {
        // Check the whole batch first so a bad one leaves the index untouched.
        let mut expected = self.last_log_id.as_ref().map(|last| last.index + 1);
        for (entry, _) in &entries {
            let index = entry.index();
            if expected.is_some_and(|expected| expected != index) {
                return Err(Error::internal(format!(
                    "log append out of order: got entry {index}, expected {}",
                    expected.unwrap_or_default()
                )));
            }
            expected = Some(index + 1);
        }
        for (entry, size_bytes) in entries {
            let id = entry.log_id();
            if self.len == 0 {
                self.first_index = id.index;
            }
            self.len += 1;
            self.cache_bytes += size_bytes;
            self.cache.push_back(Cached { entry, size_bytes });
            self.last_log_id = Some(id);
        }
        Ok(())
    }

    /// Raft must never leave a hole: each entry is the successor of the last.
    fn check_next(&self, index: u64) -> Result<(), Error> {
        // An empty log that never purged anything may start anywhere.
        let Some(last) = &self.last_log_id else {
            return Ok(());
        };
        let expected = last.index + 1;
        if index != expected {
            return Err(Error::internal(format!("log append out of order: got entry {index}, expected {expected}")));
        }
        Ok(())
    }

    /// Records that the writer fsynced `staged` records and grew segments to
    /// the given sizes, then lets the cache shrink.
    pub fn publish(&mut self, staged: &[(u64, Slot)], segment_sizes: &[(u64, u64)]) -> Result<(), Error> {
        for (index, slot) in staged {
            let expected = self.first_index + self.disk.len() as u64;
            if *index != expected || *index >= self.end() {
                return Err(Error::internal(format!(
                    "log writer published entry {index} but the index expected {expected}"
                )));
            }
            self.disk.push_back(*slot);
        }
        for (first_index, size_bytes) in segment_sizes {
            if let Some(segment) = self.segments.get_mut(first_index) {
                segment.size_bytes = *size_bytes;
            }
        }
        self.evict();
        Ok(())
    }

    /// Drops the oldest cached entries over the byte budget, but only durable
    /// ones: a pending entry has no other copy.
    fn evict(&mut self) {
        let durable_end = self.first_index + self.disk.len() as u64;
        while self.cache_bytes > self.cache_limit_bytes && self.cache_first() < durable_end {
            match self.cache.pop_front() {
                Some(cached) => self.cache_bytes -= cached.size_bytes,
                None => break,
            }
        }
    }

    /// What to fetch for `[start, end)`, clamped to the present entries.
    pub fn plan_read(&self, start: u64, end: u64) -> Result<Vec<ReadItem<C::Entry>>, Error> {
        let start = start.max(self.first_index);
        let end = end.min(self.end());
        if start >= end {
            return Ok(Vec::new());
        }
        let cache_first = self.cache_first();
        let mut items = Vec::with_capacity((end - start).min(4096) as usize);
        for index in start..end {
            if index >= cache_first {
                items.push(ReadItem::Cached(self.cache[(index - cache_first) as usize].entry.clone()));
                continue;
            }
            let slot = self.disk.get((index - self.first_index) as usize).copied();
            let segment = self.segments.range(..=index).next_back();
            match (slot, segment) {
                (Some(slot), Some((_, segment))) => {
                    items.push(ReadItem::Disk { index, file: segment.file.clone(), slot })
                }
                _ => return Err(Error::internal(format!("log entry {index} is neither cached nor on disk"))),
            }
        }
        Ok(items)
    }

    /// One entry, read under the lock (only for the rare truncate path).
    fn entry_at(&self, index: u64) -> Result<C::Entry, Error> {
        match self.plan_read(index, index + 1)?.pop() {
            Some(ReadItem::Cached(entry)) => Ok(entry),
            Some(ReadItem::Disk { index, file, slot }) => file.read_entry::<C>(slot, index),
            None => Err(Error::internal(format!("log entry {index} is not present"))),
        }
    }

    /// Removes entries `>= index` from memory and decides the file work.
    /// Only called by the writer after it flushed, so every entry is durable.
    /// `None` when no entry is at or after `index` (nothing to do).
    pub fn truncate_from(&mut self, index: u64) -> Result<Option<TruncatePlan>, Error> {
        if index >= self.end() {
            return Ok(None);
        }
        let mut plan = TruncatePlan { delete: Vec::new(), keep: None };
        if self.disk.len() as u64 != self.len {
            return Err(Error::internal("log truncate with entries not yet durable"));
        }
        // Entries below first_index are purged already; they are not "present".
        let index = index.max(self.first_index);
        let new_last =
            if index > self.first_index { Some(self.entry_at(index - 1)?.log_id()) } else { self.last_purged.clone() };
        let cut_offset = self.disk[(index - self.first_index) as usize].offset;
        let holder_of_index = self.segments.range(..=index).next_back().map(|(first, _)| *first);

        let doomed: Vec<u64> = self.segments.range(index..).map(|(first, _)| *first).collect();
        for first in doomed.iter().rev() {
            if let Some(segment) = self.segments.remove(first) {
                plan.delete.push(segment.file);
            }
        }
        if let Some((first, segment)) = self.segments.range_mut(..index).next_back() {
            // If entry `index` sat in this segment, cut there; otherwise its
            // segment was deleted whole and this one keeps every byte.
            if holder_of_index == Some(*first) {
                segment.size_bytes = cut_offset;
            }
            plan.keep = Some((*first, segment.file.clone(), segment.size_bytes));
        }

        let removed = self.end() - index;
        self.disk.truncate((index - self.first_index) as usize);
        for _ in 0..removed.min(self.cache.len() as u64) {
            if let Some(cached) = self.cache.pop_back() {
                self.cache_bytes -= cached.size_bytes;
            }
        }
        self.len = index - self.first_index;
        self.last_log_id = new_last;
        Ok(Some(plan))
    }

    /// Forgets entries `<= log_id.index` and returns the segments that hold
    /// nothing else, oldest first. Only called by the writer after it
    /// flushed and made `last_purged` durable.
    pub fn purge_upto(&mut self, log_id: &LogIdOf<C>) -> Result<Vec<(u64, Arc<SegmentFile>)>, Error> {
        let upto = log_id.index;
        if self.last_purged.as_ref().is_some_and(|purged| purged.index >= upto) {
            return Ok(Vec::new());
        }
        if self.disk.len() as u64 != self.len {
            return Err(Error::internal("log purge with entries not yet durable"));
        }
        self.last_purged = Some(log_id.clone());
        if upto + 1 >= self.end() {
            // Everything present is purged (a snapshot may even be ahead of
            // the log): the log is empty and continues after `log_id`.
            self.disk.clear();
            self.cache.clear();
            self.cache_bytes = 0;
            self.len = 0;
            self.first_index = upto + 1;
            if self.last_log_id.as_ref().is_none_or(|last| last.index <= upto) {
                self.last_log_id = Some(log_id.clone());
            }
        } else if upto >= self.first_index {
            let dropped = upto + 1 - self.first_index;
            self.disk.drain(..dropped as usize);
            while self.cache_first() <= upto && !self.cache.is_empty() {
                if let Some(cached) = self.cache.pop_front() {
                    self.cache_bytes -= cached.size_bytes;
                }
            }
            self.len -= dropped;
            self.first_index = upto + 1;
        }

        // A segment is garbage when its last entry is purged. Its last index
        // is the next segment's first minus one; the newest segment ends the log.
        let firsts: Vec<u64> = self.segments.keys().copied().collect();
        let mut delete = Vec::new();
        for (i, first) in firsts.iter().enumerate() {
            let fully_purged = match firsts.get(i + 1) {
                Some(next) => next - 1 <= upto,
                None => self.len == 0,
            };
            if !fully_purged {
                break;
            }
            if let Some(segment) = self.segments.remove(first) {
                delete.push((*first, segment.file));
            }
        }
        Ok(delete)
    }

    /// Segments that are sealed (not the newest) and whose entries are all
    /// committed: these never change again, only purge may delete them.
    pub fn sealed_segments(&self) -> Vec<SealedSegment> {
        let committed = match &self.committed {
            Some(committed) => committed.index,
            None => return Vec::new(),
        };
        let firsts: Vec<(&u64, &SegmentInfo)> = self.segments.iter().collect();
        firsts
            .windows(2)
            .map(|pair| (pair[0], *pair[1].0 - 1))
            .take_while(|(_, last_index)| *last_index <= committed)
            .map(|((first_index, segment), last_index)| SealedSegment {
                path: segment.file.path.clone(),
                first_index: *first_index,
                last_index,
                size_bytes: segment.size_bytes,
            })
            .collect()
    }
}
