//! Opening a log directory: lock it, read `meta`, scan the segments, cut a
//! torn tail, rebuild the index and start the writer. The rules are in the
//! "Recovery" section of the `log_store` module documentation.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use openraft::entry::RaftEntry;
use openraft::RaftTypeConfig;
use serde::de::DeserializeOwned;
use serde::Serialize;
use shoal_common::Error;
use tokio::sync::mpsc;

use super::index::{LogIndex, SegmentFile, Slot};
use super::meta::{Meta, META_TMP_FILE};
use super::record::{
    check_segment_header, corrupted, decode_entry, parse_segment_file_name, unframe, HeaderError, SEGMENT_HEADER_BYTES,
};
use super::writer::{ActiveSegment, Writer};
use super::{Fsync, LogOptions, LogStore, Shared};

const LOCK_FILE: &str = "LOCK";

pub(super) fn open<C>(dir: &Path, options: LogOptions) -> Result<LogStore<C>, Error>
where
    C: RaftTypeConfig,
    C::Entry: Clone + Serialize + DeserializeOwned,
{
    fs::create_dir_all(dir).map_err(|err| Error::io(format!("creating log directory {}", dir.display()), err))?;
    let lock = lock_dir(dir)?;
    let fsync = Fsync::new(options.fsync);
    // A leftover temp file is a meta write that never got renamed: the old meta stands.
    match fs::remove_file(dir.join(META_TMP_FILE)) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(Error::io(format!("removing {}", dir.join(META_TMP_FILE).display()), err)),
    }
    let meta: Meta<C> = Meta::read(dir)?;

    let mut index = LogIndex::<C>::new(options.cache_size_bytes, meta.last_purged.clone());
    index.vote = meta.vote.clone();
    index.committed = meta.committed.clone();
    let active = scan_segments(dir, &meta, &fsync, &mut index)?;

    if let Some(committed) = &meta.committed {
        let last = index.last_log_id().map(|id| id.index);
        if last.is_none_or(|last| last < committed.index) {
            return Err(corrupted(format!(
                "the log in {} ends at {last:?} but entry {} was durably recorded as committed",
                dir.display(),
                committed.index
            )));
        }
    }

    let shared = Arc::new(Shared {
        dir: dir.to_path_buf(),
        index: Mutex::new(index),
        fsync,
        appends: AtomicU64::new(0),
        group_commits: AtomicU64::new(0),
        #[cfg(test)]
        gate: Mutex::new(()),
    });
    let (queue, receiver) = mpsc::channel(options.queue_capacity.max(1));
    let writer = Writer::new(shared.clone(), options, meta, active, lock);
    let handle = std::thread::Builder::new()
        .name("shoal-raft-log".into())
        .spawn(move || writer.run(receiver))
        .map_err(|err| Error::io("starting the Raft log writer thread", err))?;
    Ok(LogStore { shared, queue: Some(queue), writer: Some(handle), queued: 0, committed_queued_at: None })
}

/// One process, one owner: two writers appending to the same segment would
/// interleave records.
fn lock_dir(dir: &Path) -> Result<File, Error> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|err| Error::io(format!("opening {}", path.display()), err))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(Error::environment(
            shoal_common::SqlState::OBJECT_IN_USE,
            format!("the Raft log in {} is already open (by this or another process)", dir.display()),
        )),
        Err(TryLockError::Error(err)) => Err(Error::io(format!("locking {}", path.display()), err)),
    }
}

/// `(first_index, path)` of every segment, in log order.
fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, Error> {
    let io = |err| Error::io(format!("listing log directory {}", dir.display()), err);
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.ends_with(".seg") {
            continue; // LOCK, meta, and anything an operator left here
        }
        let first_index = parse_segment_file_name(name)
            .ok_or_else(|| corrupted(format!("unexpected segment file name {name} in {}", dir.display())))?;
        segments.push((first_index, entry.path()));
    }
    segments.sort();
    Ok(segments)
}

/// Scans every live segment into `index`; returns the segment to append to.
fn scan_segments<C>(
    dir: &Path,
    meta: &Meta<C>,
    fsync: &Fsync,
    index: &mut LogIndex<C>,
) -> Result<Option<ActiveSegment>, Error>
where
    C: RaftTypeConfig,
    C::Entry: Clone + Serialize + DeserializeOwned,
{
    let purged_upto = meta.last_purged.as_ref().map(|id| id.index);
    let all = list_segments(dir)?;
    let mut live = Vec::with_capacity(all.len());
    for (i, (first_index, path)) in all.iter().enumerate() {
        // Wholly purged (its successor starts at or below purged + 1): a purge
        // that crashed before deleting it. Not even read — its content no
        // longer matters, damaged or not.
        let garbage = match (purged_upto, all.get(i + 1)) {
            (Some(upto), Some((next_first, _))) => next_first - 1 <= upto,
            _ => false,
        };
        if garbage {
            tracing::info!(segment = %path.display(), "deleting a log segment left behind by an interrupted purge");
            remove(path)?;
        } else {
            live.push((*first_index, path.clone()));
        }
    }

    let mut expected = purged_upto.map(|upto| upto + 1);
    let mut active = None;
    let mut deleted_any = false;
    for (i, (first_index, path)) in live.iter().enumerate() {
        let is_last = i + 1 == live.len();
        let bytes = fs::read(path).map_err(|err| Error::io(format!("reading {}", path.display()), err))?;
        let mut kept = 0u64;
        let outcome = scan_segment::<C>(&bytes, *first_index, path, |entry, slot| {
            let entry_index = entry.index();
            if purged_upto.is_some_and(|upto| entry_index <= upto) {
                return Ok(()); // the purged head of a partially purged segment
            }
            if let Some(expected) = expected {
                if entry_index != expected {
                    return Err(corrupted(format!(
                        "the log has a hole: {} starts with entry {entry_index} where entry {expected} was expected",
                        path.display()
                    )));
                }
            }
            expected = Some(entry_index + 1);
            kept += 1;
            index.push_recovered(entry, slot)
        })?;

        let size_bytes = outcome.valid_bytes;
        if let Some(reason) = outcome.torn {
            if !is_last {
                return Err(corrupted(format!("sealed log segment {} is damaged: {reason}", path.display())));
            }
            tracing::warn!(
                segment = %path.display(),
                reason = %reason,
                kept_records = outcome.records,
                dropped_bytes = bytes.len() as u64 - outcome.valid_bytes,
                "truncating the torn tail of the Raft log (an unfinished write before a crash)"
            );
            if outcome.records > 0 {
                let file = OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(|err| Error::io(format!("opening {}", path.display()), err))?;
                file.set_len(size_bytes).map_err(|err| Error::io(format!("truncating {}", path.display()), err))?;
                fsync.file(&file).map_err(|err| Error::io(format!("fsync of {}", path.display()), err))?;
            }
        }
        if outcome.records == 0 {
            if !is_last {
                return Err(corrupted(format!("sealed log segment {} holds no entries", path.display())));
            }
            // Created just before a crash, nothing made it in.
            remove(path)?;
            deleted_any = true;
            continue;
        }
        if kept == 0 && is_last {
            // Every entry is below the purge horizon (a purge ahead of the log).
            remove(path)?;
            deleted_any = true;
            continue;
        }
        let segment = SegmentFile::open(path)?;
        if is_last {
            active = Some(ActiveSegment::reopen(*first_index, &segment, size_bytes)?);
        }
        index.add_segment(*first_index, Arc::new(segment), size_bytes);
    }
    if deleted_any {
        fsync.dir(dir)?;
    }
    Ok(active)
}

fn remove(path: &Path) -> Result<(), Error> {
    fs::remove_file(path).map_err(|err| Error::io(format!("deleting {}", path.display()), err))
}

/// What a scan of one segment found.
struct ScanOutcome {
    records: u64,
    /// Bytes up to the end of the last good record (0 if even the header is torn).
    valid_bytes: u64,
    /// Why the scan stopped before the end of the file, if it did.
    torn: Option<String>,
}

/// Walks the records of one segment, handing each decoded entry and its slot
/// to `on_entry`. Framing damage ends the scan (the caller decides whether
/// that is a torn tail); anything a torn write cannot explain is an error.
fn scan_segment<C>(
    bytes: &[u8],
    first_index: u64,
    path: &Path,
    mut on_entry: impl FnMut(C::Entry, Slot) -> Result<(), Error>,
) -> Result<ScanOutcome, Error>
where
    C: RaftTypeConfig,
    C::Entry: DeserializeOwned,
{
    if bytes.iter().all(|b| *b == 0) {
        // Created and preallocated, but not even its header reached the disk.
        return Ok(ScanOutcome { records: 0, valid_bytes: 0, torn: Some("the segment holds only zeros".into()) });
    }
    match check_segment_header(bytes) {
        Ok(()) => {}
        Err(HeaderError::Truncated) => {
            return Ok(ScanOutcome { records: 0, valid_bytes: 0, torn: Some("incomplete segment header".into()) })
        }
        Err(HeaderError::Foreign(why)) => return Err(corrupted(format!("{}: {why}", path.display()))),
    }
    let mut offset = SEGMENT_HEADER_BYTES as usize;
    let mut next_index = first_index;
    let mut records = 0;
    let mut torn = None;
    while offset < bytes.len() {
        if bytes[offset..].iter().all(|b| *b == 0) {
            // Preallocated space after the last record (see the module docs of `log_store`).
            break;
        }
        let (payload, len) = match unframe(&bytes[offset..]) {
            Ok(record) => record,
            Err(err) => {
                torn = Some(format!("at offset {offset}: {err}"));
                break;
            }
        };
        // The checksum matched, so these bytes are what we wrote: failing to
        // decode them is a codec mismatch, not a torn write.
        let entry: C::Entry = decode_entry(payload)
            .map_err(|err| corrupted(format!("{} at offset {offset}: entry does not decode: {err}", path.display())))?;
        let entry_index = entry.index();
        if entry_index != next_index {
            return Err(corrupted(format!(
                "{} at offset {offset}: holds entry {entry_index} where entry {next_index} was expected",
                path.display()
            )));
        }
        // `len` is at most 8 + MAX_PAYLOAD_BYTES, which fits a u32.
        let slot = Slot { offset: offset as u64, len: len as u32 };
        on_entry(entry, slot)?;
        offset += len;
        next_index += 1;
        records += 1;
    }
    Ok(ScanOutcome { records, valid_bytes: offset as u64, torn })
}
