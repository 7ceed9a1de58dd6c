//! Unit tests of the log store: format, recovery, truncate/purge across
//! segments, group commit. openraft's conformance suite runs separately in
//! `tests/log_store_suite.rs`.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use openraft::alias::{EntryOf, LogIdOf, VoteOf};
use openraft::impls::leader_id_adv::LeaderId;
use openraft::storage::RaftLogStorage;
use openraft::{Entry, EntryPayload, LogId, RaftLogReader};
use shoal_common::SqlState;
use tempfile::TempDir;

use super::*;

openraft::declare_raft_types!(TestConfig);

type Store = LogStore<TestConfig>;
type TestEntry = EntryOf<TestConfig>;

fn log_id(term: u64, index: u64) -> LogIdOf<TestConfig> {
    LogId::new(LeaderId { term, node_id: 0 }, index)
}

fn vote(term: u64, node_id: u64) -> VoteOf<TestConfig> {
    VoteOf::<TestConfig>::new(term, node_id)
}

fn entry(term: u64, index: u64) -> TestEntry {
    Entry { log_id: log_id(term, index), payload: EntryPayload::Normal(format!("row {index} written in term {term}")) }
}

fn entries(term: u64, indexes: std::ops::Range<u64>) -> Vec<TestEntry> {
    indexes.map(|index| entry(term, index)).collect()
}

/// fsync off: these tests check format and logic, not the disk's promises.
/// No preallocation, so file lengths are the records' (the tests of
/// preallocated segments set it themselves).
fn options() -> LogOptions {
    LogOptions { fsync: false, preallocate_bytes: 0, ..LogOptions::default() }
}

/// About five entries per segment, so a few dozen entries span many segments.
fn small_segments() -> LogOptions {
    LogOptions { segment_size_bytes: 200, ..options() }
}

fn open(dir: &Path, options: LogOptions) -> Store {
    match Store::open(dir, options) {
        Ok(store) => store,
        Err(err) => panic!("open {}: {err:?}", dir.display()),
    }
}

fn open_err(dir: &Path, options: LogOptions) -> shoal_common::Error {
    match Store::open(dir, options) {
        Ok(_) => panic!("open {} succeeded but should have failed", dir.display()),
        Err(err) => err,
    }
}

/// Appends and waits until the entries are durable.
async fn append(store: &mut Store, entries: Vec<TestEntry>) {
    let (done, flushed) = tokio::sync::oneshot::channel();
    store
        .append_with(
            entries,
            Box::new(move |result| {
                let _ = done.send(result);
            }),
        )
        .await
        .expect("append accepted");
    flushed.await.expect("writer replied").expect("append durable");
}

async fn read_all(store: &mut Store) -> Vec<TestEntry> {
    store.try_get_log_entries(..).await.expect("read")
}

fn indexes(entries: &[TestEntry]) -> Vec<u64> {
    entries.iter().map(|e| e.log_id.index).collect()
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|ext| ext == "seg"))
        .collect();
    files.sort();
    files
}

fn first_index_of(path: &Path) -> u64 {
    record::parse_segment_file_name(path.file_name().unwrap().to_str().unwrap()).unwrap()
}

fn append_bytes(path: &Path, bytes: &[u8]) {
    OpenOptions::new().append(true).open(path).unwrap().write_all(bytes).unwrap();
}

#[tokio::test]
async fn entries_round_trip_from_cache_and_from_disk() {
    for cache_size_bytes in [16 << 20, 0] {
        tracing::info!(cache_size_bytes, "--- with a zero cache every read after the fsync comes from disk");
        let dir = TempDir::new().unwrap();
        let mut store = open(dir.path(), LogOptions { cache_size_bytes, ..small_segments() });
        let mut expected = Vec::new();
        for batch in 0..10 {
            let batch = entries(1, batch * 5..batch * 5 + 5);
            expected.extend(batch.clone());
            append(&mut store, batch).await;
        }
        assert_eq!(read_all(&mut store).await, expected);
        assert_eq!(store.try_get_log_entries(10..20).await.unwrap(), expected[10..20]);
        assert_eq!(store.try_get_log_entries(45..=49).await.unwrap(), expected[45..]);
        assert!(store.try_get_log_entries(50..100).await.unwrap().is_empty());
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id, Some(log_id(1, 49)));
        assert_eq!(state.last_purged_log_id, None);

        let stats = store.stats();
        assert_eq!((stats.first_index, stats.last_index), (Some(0), Some(49)));
        assert_eq!(stats.segments, segment_files(dir.path()).len());
        assert!(stats.segments > 5, "small segments should roll: {stats:?}");
        let on_disk: u64 = segment_files(dir.path()).iter().map(|p| fs::metadata(p).unwrap().len()).sum();
        assert_eq!(stats.size_bytes, on_disk);
    }
}

// The gate is a std mutex on purpose: it stops the writer *thread*; nothing
// on this test's runtime ever waits for it.
#[allow(clippy::await_holding_lock)]
#[tokio::test]
async fn appended_entries_are_readable_before_they_are_durable() {
    let dir = TempDir::new().unwrap();
    let mut store = open(dir.path(), options());
    // Hold the writer so the append cannot have reached the disk yet.
    let shared = store.shared.clone();
    let gate = shared.gate.lock().unwrap();
    store.append_with(entries(1, 0..3), Box::new(|_| {})).await.unwrap();
    assert_eq!(indexes(&read_all(&mut store).await), [0, 1, 2]);
    drop(gate);
}

#[tokio::test]
async fn reopen_after_clean_close_restores_entries_vote_and_committed() {
    let dir = TempDir::new().unwrap();
    let expected = entries(1, 0..30);
    {
        let mut store = open(dir.path(), small_segments());
        append(&mut store, expected.clone()).await;
        store.save_vote(&vote(3, 7)).await.unwrap();
        store.save_committed(Some(log_id(1, 20))).await.unwrap();
    }
    let mut store = open(dir.path(), small_segments());
    assert_eq!(read_all(&mut store).await, expected);
    assert_eq!(store.read_vote().await.unwrap(), Some(vote(3, 7)));
    assert_eq!(store.read_committed().await.unwrap(), Some(log_id(1, 20)));
    assert_eq!(store.get_log_state().await.unwrap().last_log_id, Some(log_id(1, 29)));

    tracing::info!("--- the reopened log keeps appending to its last segment");
    append(&mut store, entries(2, 30..35)).await;
    drop(store);
    let mut store = open(dir.path(), small_segments());
    assert_eq!(indexes(&read_all(&mut store).await), (0..35).collect::<Vec<_>>());
}

/// Only the first of several committed ids saved within a second wakes the
/// writer; the newest must still be the one persisted, and only after the
/// appends queued before it: here they are held back by the gate until the
/// store closes. (The gate is a std mutex on purpose, as above.)
#[allow(clippy::await_holding_lock)]
#[tokio::test]
async fn committed_ids_saved_between_wake_ups_are_persisted_after_their_appends() {
    let dir = TempDir::new().unwrap();
    {
        let mut store = open(dir.path(), small_segments());
        append(&mut store, entries(1, 0..10)).await;
        store.save_committed(Some(log_id(1, 5))).await.unwrap();
        let shared = store.shared.clone();
        let gate = shared.gate.lock().unwrap();
        store.append_with(entries(1, 10..20), Box::new(|_| {})).await.unwrap();
        store.save_committed(Some(log_id(1, 15))).await.unwrap();
        store.save_committed(Some(log_id(1, 19))).await.unwrap();
        assert_eq!(store.read_committed().await.unwrap(), Some(log_id(1, 19)));
        let index = shared.lock().unwrap();
        let pending = index.committed_unqueued_after.map(|_| index.committed);
        assert_eq!(pending, Some(Some(log_id(1, 19))), "saved within a second: waits outside the queue");
        drop(index);
        drop(gate);
    }
    let mut store = open(dir.path(), small_segments());
    assert_eq!(store.read_committed().await.unwrap(), Some(log_id(1, 19)));
    assert_eq!(indexes(&read_all(&mut store).await), (0..20).collect::<Vec<_>>());
}

#[tokio::test]
async fn garbage_after_the_last_record_is_a_torn_tail() {
    let dir = TempDir::new().unwrap();
    {
        let mut store = open(dir.path(), options());
        append(&mut store, entries(1, 0..10)).await;
    }
    let segment = segment_files(dir.path()).pop().unwrap();
    let clean_len = fs::metadata(&segment).unwrap().len();
    append_bytes(&segment, &[0xAB; 37]);

    let mut store = open(dir.path(), options());
    assert_eq!(indexes(&read_all(&mut store).await), (0..10).collect::<Vec<_>>());
    assert_eq!(fs::metadata(&segment).unwrap().len(), clean_len, "the tail is cut off on disk");
    append(&mut store, vec![entry(1, 10)]).await;
    drop(store);
    let mut store = open(dir.path(), options());
    assert_eq!(indexes(&read_all(&mut store).await), (0..11).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_zero_filled_tail_is_a_torn_tail() {
    let dir = TempDir::new().unwrap();
    {
        let mut store = open(dir.path(), options());
        append(&mut store, entries(1, 0..4)).await;
    }
    // What a file system that extended the file but never wrote it leaves.
    append_bytes(&segment_files(dir.path())[0], &[0u8; 4096]);
    let mut store = open(dir.path(), options());
    assert_eq!(indexes(&read_all(&mut store).await), [0, 1, 2, 3]);
}

#[tokio::test]
async fn a_record_cut_in_the_middle_is_dropped_and_the_earlier_ones_kept() {
    let dir = TempDir::new().unwrap();
    {
        let mut store = open(dir.path(), small_segments());
        append(&mut store, entries(1, 0..12)).await;
    }
    let segment = segment_files(dir.path()).pop().unwrap();
    let len = fs::metadata(&segment).unwrap().len();
    OpenOptions::new().write(true).open(&segment).unwrap().set_len(len - 5).unwrap();

    let mut store = open(dir.path(), small_segments());
    assert_eq!(indexes(&read_all(&mut store).await), (0..11).collect::<Vec<_>>());
    assert_eq!(store.get_log_state().await.unwrap().last_log_id, Some(log_id(1, 10)));
    tracing::info!("--- the lost entry is simply appended again");
    append(&mut store, vec![entry(2, 11)]).await;
    assert_eq!(read_all(&mut store).await.last(), Some(&entry(2, 11)));
}

#[tokio::test]
async fn a_segment_left_empty_by_a_crash_is_removed() {
    let dir = TempDir::new().unwrap();
    {
        let mut store = open(dir.path(), options());
        append(&mut store, entries(1, 0..3)).await;
    }
    // A segment the writer created (header half written) just before dying.
    fs::write(dir.path().join(record::segment_file_name(3)), &record::segment_header()[..7]).unwrap();
    let mut store = open(dir.path(), options());
    assert_eq!(indexes(&read_all(&mut store).await), [0, 1, 2]);
    assert_eq!(segment_files(dir.path()).len(), 1);
    append(&mut store, vec![entry(1, 3)]).await;
}

#[tokio::test]
async fn a_flipped_byte_in_a_sealed_segment_is_corruption() {
    let dir = TempDir::new().unwrap();
    {
        let mut store = open(dir.path(), small_segments());
        append(&mut store, entries(1, 0..30)).await;
    }
    let files = segment_files(dir.path());
    assert!(files.len() >= 3);
    let victim = &files[1];
    let mut bytes = fs::read(victim).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    fs::write(victim, bytes).unwrap();

    let err = open_err(dir.path(), small_segments());
    assert_eq!(err.code, SqlState::DATA_CORRUPTED, "{err:?}");
    assert!(!err.is_deterministic());
    assert!(err.message.contains(&victim.file_name().unwrap().to_string_lossy().to_string()), "{err}");
}

#[tokio::test]
async fn losing_a_committed_entry_to_a_torn_tail_is_corruption() {
    let dir = TempDir::new().unwrap();
    {
        let mut store = open(dir.path(), options());
        append(&mut store, entries(1, 0..10)).await;
        store.save_committed(Some(log_id(1, 9))).await.unwrap();
    }
    let segment = segment_files(dir.path()).pop().unwrap();
    let len = fs::metadata(&segment).unwrap().len();
    OpenOptions::new().write(true).open(&segment).unwrap().set_len(len - 3).unwrap();
    let err = open_err(dir.path(), options());
    assert_eq!(err.code, SqlState::DATA_CORRUPTED, "{err:?}");
}

#[tokio::test]
async fn foreign_and_random_files_are_errors_or_torn_tails_never_panics() {
    // A deterministic xorshift stream; the seed is in the failure message.
    for seed in 1..=64u64 {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let dir = TempDir::new().unwrap();
        let len = (next() % 600) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if seed % 2 == 0 {
            // Half the cases get a valid header, so the record parser sees the noise.
            let header = record::segment_header();
            bytes.splice(0..0, header);
        }
        fs::write(dir.path().join(record::segment_file_name(0)), &bytes).unwrap();
        match Store::open(dir.path(), options()) {
            Ok(mut store) => assert!(read_all(&mut store).await.is_empty(), "seed {seed}"),
            Err(err) => assert_eq!(err.code, SqlState::DATA_CORRUPTED, "seed {seed}: {err:?}"),
        }
    }
    let dir = TempDir::new().unwrap();
    fs::write(dir.path().join("42.seg"), b"").unwrap();
    assert_eq!(open_err(dir.path(), options()).code, SqlState::DATA_CORRUPTED);
    let dir = TempDir::new().unwrap();
    fs::write(dir.path().join(meta::META_FILE), b"{\"vote\": null}").unwrap();
    assert_eq!(open_err(dir.path(), options()).code, SqlState::DATA_CORRUPTED);
}

#[tokio::test]
async fn truncate_across_segment_boundaries() {
    let dir = TempDir::new().unwrap();
    let mut store = open(dir.path(), small_segments());
    append(&mut store, entries(1, 0..30)).await;

    tracing::info!("--- truncate in the middle of a segment: later segments go, the holder is cut");
    store.truncate_after(Some(log_id(1, 11))).await.unwrap();
    assert_eq!(indexes(&read_all(&mut store).await), (0..12).collect::<Vec<_>>());
    assert_eq!(store.get_log_state().await.unwrap().last_log_id, Some(log_id(1, 11)));
    assert!(segment_files(dir.path()).iter().all(|p| first_index_of(p) <= 11));
    append(&mut store, entries(2, 12..20)).await;

    tracing::info!("--- truncate exactly at a segment's first entry: that segment goes whole");
    let boundary = segment_files(dir.path()).iter().map(|p| first_index_of(p)).find(|first| *first > 12).unwrap();
    store.truncate_after(Some(log_id(2, boundary - 1))).await.unwrap();
    assert!(segment_files(dir.path()).iter().all(|p| first_index_of(p) < boundary));
    append(&mut store, entries(3, boundary..boundary + 3)).await;
    let stats = store.stats();
    assert_eq!(stats.last_index, Some(boundary + 2));
    let on_disk: u64 = segment_files(dir.path()).iter().map(|p| fs::metadata(p).unwrap().len()).sum();
    assert_eq!(stats.size_bytes, on_disk);

    tracing::info!("--- the truncated and re-appended log survives a reopen");
    let before = read_all(&mut store).await;
    drop(store);
    let mut store = open(dir.path(), small_segments());
    let after = read_all(&mut store).await;
    assert_eq!(after, before);
    assert_eq!(after[11], entry(1, 11));
    assert_eq!(after[12], entry(2, 12));
    assert_eq!(after.last(), Some(&entry(3, boundary + 2)));

    tracing::info!("--- truncate everything");
    store.truncate_after(None).await.unwrap();
    assert!(read_all(&mut store).await.is_empty());
    assert_eq!(store.get_log_state().await.unwrap().last_log_id, None);
    assert!(segment_files(dir.path()).is_empty());
    append(&mut store, entries(4, 0..2)).await;
    drop(store);
    let mut store = open(dir.path(), small_segments());
    assert_eq!(read_all(&mut store).await, entries(4, 0..2));
}

#[tokio::test]
async fn purge_deletes_whole_segments_and_is_remembered() {
    let dir = TempDir::new().unwrap();
    let mut store = open(dir.path(), LogOptions { cache_size_bytes: 0, ..small_segments() });
    append(&mut store, entries(1, 0..30)).await;

    store.purge(log_id(1, 12)).await.unwrap();
    assert_eq!(indexes(&read_all(&mut store).await), (13..30).collect::<Vec<_>>());
    assert!(store.try_get_log_entries(0..13).await.unwrap().is_empty());
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 12)));
    assert_eq!(state.last_log_id, Some(log_id(1, 29)));
    let files = segment_files(dir.path());
    assert!(first_index_of(&files[0]) <= 13, "the segment holding 13 stays");
    assert!(files.len() < 2 || first_index_of(&files[1]) > 13, "no segment wholly <= 12 stays");
    assert_eq!(store.stats().first_index, Some(13));

    drop(store);
    let mut store = open(dir.path(), small_segments());
    assert_eq!(indexes(&read_all(&mut store).await), (13..30).collect::<Vec<_>>());
    assert_eq!(store.get_log_state().await.unwrap().last_purged_log_id, Some(log_id(1, 12)));

    tracing::info!("--- a snapshot ahead of the log purges everything; the log continues after it");
    store.purge(log_id(5, 40)).await.unwrap();
    assert!(read_all(&mut store).await.is_empty());
    assert!(segment_files(dir.path()).is_empty());
    let state = store.get_log_state().await.unwrap();
    assert_eq!((state.last_purged_log_id, state.last_log_id), (Some(log_id(5, 40)), Some(log_id(5, 40))));
    append(&mut store, vec![entry(5, 41)]).await;
    drop(store);
    let mut store = open(dir.path(), small_segments());
    assert_eq!(read_all(&mut store).await, vec![entry(5, 41)]);
    assert_eq!(store.get_log_state().await.unwrap().last_purged_log_id, Some(log_id(5, 40)));
}

#[tokio::test]
async fn segments_left_by_an_interrupted_purge_are_deleted_on_open() {
    let dir = TempDir::new().unwrap();
    {
        let mut store = open(dir.path(), small_segments());
        append(&mut store, entries(1, 0..30)).await;
    }
    let files = segment_files(dir.path());
    // As if the purge made `last_purged` durable and crashed before deleting.
    let upto = first_index_of(&files[2]) - 1;
    meta::Meta::<TestConfig> { vote: None, committed: None, last_purged: Some(log_id(1, upto)) }
        .write(dir.path(), &Fsync::new(false))
        .unwrap();
    let mut store = open(dir.path(), small_segments());
    assert_eq!(indexes(&read_all(&mut store).await), (upto + 1..30).collect::<Vec<_>>());
    assert_eq!(segment_files(dir.path()), files[2..]);
}

#[tokio::test]
async fn appends_out_of_order_are_refused() {
    let dir = TempDir::new().unwrap();
    let mut store = open(dir.path(), options());
    append(&mut store, entries(1, 0..3)).await;
    let gap = store.append_with(vec![entry(1, 5)], Box::new(|_| {})).await;
    assert!(gap.is_err());
    assert_eq!(indexes(&read_all(&mut store).await), [0, 1, 2], "a refused append leaves no trace");
}

// The gate is a std mutex on purpose: it stops the writer *thread*; nothing
// on this test's runtime ever waits for it.
#[allow(clippy::await_holding_lock)]
#[tokio::test]
async fn group_commit_uses_fewer_fsyncs_than_appends() {
    let dir = TempDir::new().unwrap();
    let mut store = open(dir.path(), LogOptions { fsync: true, ..LogOptions::default() });
    let appends = 100;
    let (done, flushed) = std::sync::mpsc::channel();
    {
        // Hold the writer still while 100 appends queue up, as they would
        // while a slow fsync runs; then it must take them all as one group.
        let shared = store.shared.clone();
        let _gate = shared.gate.lock().unwrap();
        for index in 0..appends {
            let done = done.clone();
            store
                .append_with(
                    vec![entry(1, index)],
                    Box::new(move |result| {
                        let _ = done.send(result.is_ok());
                    }),
                )
                .await
                .unwrap();
        }
    }
    for _ in 0..appends {
        assert!(flushed.recv().unwrap(), "append failed");
    }
    let stats = store.stats();
    assert_eq!(stats.appends, appends);
    assert_eq!(stats.group_commits, 1, "{stats:?}");
    // One fsync of the segment and one of the directory that gained it.
    assert!(stats.fsyncs <= 2 && stats.fsyncs < appends, "{stats:?}");
    assert!(stats.fsync_micros_total >= stats.fsync_micros_last);
    assert_eq!(indexes(&read_all(&mut store).await), (0..appends).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_vote_is_on_disk_when_save_vote_returns() {
    let dir = TempDir::new().unwrap();
    let mut store = open(dir.path(), options());
    store.save_vote(&vote(9, 2)).await.unwrap();
    // Read the file directly while the store is still open.
    let meta = meta::Meta::<TestConfig>::read(dir.path()).unwrap();
    assert_eq!(meta.vote, Some(vote(9, 2)));
}

#[tokio::test]
async fn a_second_open_of_the_same_directory_is_refused() {
    let dir = TempDir::new().unwrap();
    let store = open(dir.path(), options());
    assert_eq!(open_err(dir.path(), options()).code, SqlState::OBJECT_IN_USE);
    drop(store);
    drop(open(dir.path(), options()));
}

#[tokio::test]
async fn sealed_segments_are_only_the_committed_ones() {
    let dir = TempDir::new().unwrap();
    let mut store = open(dir.path(), small_segments());
    append(&mut store, entries(1, 0..30)).await;
    assert!(store.sealed_segments().is_empty(), "nothing committed yet");

    store.save_committed(Some(log_id(1, 17))).await.unwrap();
    let sealed = store.sealed_segments();
    assert!(!sealed.is_empty());
    assert_eq!(sealed[0].first_index, 0);
    for pair in sealed.windows(2) {
        assert_eq!(pair[0].last_index + 1, pair[1].first_index);
    }
    assert!(sealed.iter().all(|s| s.last_index <= 17));
    let files = segment_files(dir.path());
    assert_eq!(sealed.iter().map(|s| s.path.clone()).collect::<Vec<_>>(), files[..sealed.len()]);
    assert!(sealed.iter().all(|s| fs::metadata(&s.path).unwrap().len() == s.size_bytes));

    store.save_committed(Some(log_id(1, 29))).await.unwrap();
    assert_eq!(store.sealed_segments().len(), files.len() - 1, "the active segment is never sealed");
}

/// Small segments, preallocated 64 bytes at a time (records here are ~60).
fn preallocated() -> LogOptions {
    LogOptions { preallocate_bytes: 64, ..small_segments() }
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).unwrap().len()
}

#[tokio::test]
async fn preallocated_zeros_are_free_space_not_a_torn_tail() {
    let dir = TempDir::new().unwrap();
    let mut store = open(dir.path(), LogOptions { preallocate_bytes: 4096, ..options() });
    append(&mut store, entries(1, 0..3)).await;
    let segment = segment_files(dir.path()).pop().unwrap();
    let records = store.stats().size_bytes;
    assert_eq!(file_len(&segment), 4096, "the segment is extended a chunk ahead of its records");
    assert!(records < 4096);
    drop(store);

    tracing::info!("--- reopened, the zeros stay (no cut) and appends go right after the records");
    let mut store = open(dir.path(), LogOptions { preallocate_bytes: 4096, ..options() });
    assert_eq!(file_len(&segment), 4096);
    assert_eq!(store.stats().size_bytes, records);
    append(&mut store, entries(1, 3..6)).await;
    drop(store);
    let mut store = open(dir.path(), options());
    assert_eq!(indexes(&read_all(&mut store).await), (0..6).collect::<Vec<_>>());
}

#[tokio::test]
async fn sealed_segments_lose_their_preallocated_zeros() {
    let dir = TempDir::new().unwrap();
    let mut store = open(dir.path(), preallocated());
    for batch in 0..10 {
        append(&mut store, entries(1, batch * 3..batch * 3 + 3)).await;
    }
    store.save_committed(Some(log_id(1, 29))).await.unwrap();
    let sealed = store.sealed_segments();
    assert!(sealed.len() >= 3, "small segments should roll: {sealed:?}");
    assert!(sealed.iter().all(|s| file_len(&s.path) == s.size_bytes), "{sealed:?}");
    let active = segment_files(dir.path()).pop().unwrap();
    assert!(file_len(&active) >= store.stats().size_bytes - sealed.iter().map(|s| s.size_bytes).sum::<u64>());
    let before = read_all(&mut store).await;
    drop(store);
    let mut store = open(dir.path(), preallocated());
    assert_eq!(read_all(&mut store).await, before);
}

#[tokio::test]
async fn a_torn_record_over_preallocated_zeros_is_cut() {
    let dir = TempDir::new().unwrap();
    {
        let mut store = open(dir.path(), LogOptions { preallocate_bytes: 4096, ..options() });
        append(&mut store, entries(1, 0..4)).await;
    }
    let segment = segment_files(dir.path()).pop().unwrap();
    // Where the next record would have gone: half of a record's bytes, then zeros.
    let records = {
        let store = open(dir.path(), options());
        store.stats().size_bytes
    };
    let mut torn = Vec::new();
    record::frame(b"half of a record that never finished", &mut torn).unwrap();
    torn.truncate(torn.len() / 2);
    OpenOptions::new().write(true).open(&segment).unwrap().write_all_at(&torn, records).unwrap();

    let mut store = open(dir.path(), options());
    assert_eq!(indexes(&read_all(&mut store).await), [0, 1, 2, 3]);
    assert_eq!(file_len(&segment), records, "the torn record and the zeros after it are cut off");
    append(&mut store, vec![entry(1, 4)]).await;
}

#[tokio::test]
async fn a_segment_of_zeros_left_by_a_crash_is_removed() {
    let dir = TempDir::new().unwrap();
    {
        let mut store = open(dir.path(), options());
        append(&mut store, entries(1, 0..3)).await;
    }
    // Created and extended, but its header never reached the disk.
    fs::write(dir.path().join(record::segment_file_name(3)), [0u8; 4096]).unwrap();
    let mut store = open(dir.path(), options());
    assert_eq!(indexes(&read_all(&mut store).await), [0, 1, 2]);
    assert_eq!(segment_files(dir.path()).len(), 1);
    append(&mut store, vec![entry(1, 3)]).await;
}
