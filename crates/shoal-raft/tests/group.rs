//! A single-node group end to end: interactive transactions, batched
//! autocommit writes, and the catalog-change signal replicas reload on.

use std::time::Duration;

use shoal_common::{ExecContext, Value};
use shoal_raft::{Group, GroupConfig};

async fn open_group(dir: &std::path::Path) -> std::sync::Arc<Group> {
    Group::open(GroupConfig {
        id: 1,
        node_id: 1,
        dir: dir.to_path_buf(),
        rpc_addr: "127.0.0.1:1".into(),
        fsync: false,
        transport: shoal_raft::Transport::new(),
        bootstrap: true,
        snapshot_every: shoal_raft::DEFAULT_SNAPSHOT_EVERY,
    })
    .await
    .expect("open group")
}

#[tokio::test(flavor = "multi_thread")]
async fn only_transactions_that_store_the_catalog_signal_a_catalog_change() {
    let dir = tempfile::tempdir().unwrap();
    let group = open_group(dir.path()).await;
    let mut epochs = group.catalog_watch();
    let start = *epochs.borrow_and_update();

    let mut txn = group.begin(ExecContext::now(1)).await.unwrap();
    txn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)".into(), vec![], true).await.unwrap();
    txn.store_catalog("{\"tables\":{}}".into()).await.unwrap();
    let index = txn.commit().await.unwrap();
    assert!(index > 0);
    tokio::time::timeout(Duration::from_secs(5), epochs.changed()).await.expect("epoch bumped").unwrap();
    assert!(*epochs.borrow_and_update() > start);
    assert_eq!(group.catalog_json().unwrap().as_deref(), Some("{\"tables\":{}}"));

    // An ordinary write commits without touching the catalog epoch.
    let out =
        group.write_autocommit(ExecContext::now(2), "INSERT INTO t VALUES (?1)".into(), vec![Value::Integer(7)]).await;
    let (out, write_index) = out.unwrap();
    assert_eq!(out.changes, 1);
    assert!(write_index > index, "the write's entry follows the DDL's");
    assert!(!epochs.has_changed().unwrap(), "a data-only write must not signal a catalog change");

    // A rolled-back transaction leaves neither rows nor catalog behind.
    let mut txn = group.begin(ExecContext::now(3)).await.unwrap();
    txn.execute("INSERT INTO t VALUES (8)".into(), vec![], true).await.unwrap();
    txn.store_catalog("{}".into()).await.unwrap();
    txn.rollback().await.unwrap();
    assert_eq!(group.catalog_json().unwrap().as_deref(), Some("{\"tables\":{}}"));
    let rows = group.read(|r| shoal_storage::run_read_only(&r.conn, "SELECT count(*) FROM t", &[])).await.unwrap();
    assert_eq!(rows.rows, vec![vec![Value::Integer(1)]]);
    group.shutdown().await;
}

/// Reads run inline on the async thread only while they are short; a long
/// one is cut off by its time budget and finished on a blocking thread, with
/// the same answer either way.
#[tokio::test(flavor = "multi_thread")]
async fn long_reads_move_off_the_async_thread_and_still_answer() {
    let dir = tempfile::tempdir().unwrap();
    let group = open_group(dir.path()).await;
    let mut txn = group.begin(ExecContext::now(1)).await.unwrap();
    txn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)".into(), vec![], true).await.unwrap();
    txn.execute("INSERT INTO t SELECT value FROM generate_series(1, 1000)".into(), vec![], true).await.unwrap();
    txn.commit().await.unwrap();

    let runs = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counter = runs.clone();
    let long = group
        .read(move |r| {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            shoal_storage::run_read_only(&r.conn, "SELECT count(*) FROM t a, t b, t c WHERE a.id <= 20", &[])
        })
        .await
        .unwrap();
    assert_eq!(long.rows, vec![vec![Value::Integer(20_000_000)]]);
    assert_eq!(runs.load(std::sync::atomic::Ordering::Relaxed), 2, "cut off inline, then run to completion");

    runs.store(0, std::sync::atomic::Ordering::Relaxed);
    let counter = runs.clone();
    let short = group
        .read(move |r| {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            shoal_storage::run_read_only(&r.conn, "SELECT id FROM t WHERE id = 500", &[])
        })
        .await
        .unwrap();
    assert_eq!(short.rows, vec![vec![Value::Integer(500)]]);
    assert_eq!(runs.load(std::sync::atomic::Ordering::Relaxed), 1, "a point lookup finishes inline");
    group.shutdown().await;
}

/// A write that counts to a billion first: far longer than the tests wait.
const LONG_WRITE: &str = "INSERT INTO t SELECT 1000 + count(*) FROM \
    (WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 1000000000) SELECT i FROM r)";

async fn count(group: &Group) -> i64 {
    let out = group.read(|r| shoal_storage::run_read_only(&r.conn, "SELECT count(*) FROM t", &[])).await.unwrap();
    match out.rows[0][0] {
        Value::Integer(n) => n,
        ref other => panic!("count: {other:?}"),
    }
}

/// Cancelling one statement of a batch fails that statement alone (57014);
/// the statements before and after it in the same batch commit. SQLite rolls
/// the whole batch's transaction back when it interrupts a write, so this
/// also checks that the batch is rebuilt correctly.
#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_batched_write_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let group = open_group(dir.path()).await;
    let mut txn = group.begin(ExecContext::now(1)).await.unwrap();
    txn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)".into(), vec![], true).await.unwrap();
    txn.commit().await.unwrap();

    // Hold the write slot so the three writes queue into one batch.
    let holder = group.begin(ExecContext::now(2)).await.unwrap();
    let write = |sql: &str, cancel: shoal_storage::StatementCancel| {
        let (group, sql) = (group.clone(), sql.to_string());
        tokio::spawn(async move { group.write_autocommit_cancellable(ExecContext::now(3), sql, vec![], cancel).await })
    };
    let before = write("INSERT INTO t VALUES (1)", Default::default());
    tokio::time::sleep(Duration::from_millis(50)).await;
    let cancel = shoal_storage::StatementCancel::new();
    let long = write(LONG_WRITE, cancel.clone());
    tokio::time::sleep(Duration::from_millis(50)).await;
    let after = write("INSERT INTO t VALUES (2)", Default::default());
    tokio::time::sleep(Duration::from_millis(50)).await;
    holder.rollback().await.unwrap();

    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(cancel.cancel(), "the long write is still running");
    let err = long.await.unwrap().expect_err("cancelled");
    assert_eq!(err.code, shoal_common::SqlState::QUERY_CANCELED, "{err}");
    let (_, first) = before.await.unwrap().expect("the write before commits");
    let (_, second) = after.await.unwrap().expect("the write after commits");
    assert_eq!(first, second, "one batch, one entry");
    assert_eq!(count(&group).await, 2);

    // A cancel that comes after the write finished changes nothing.
    let late = shoal_storage::StatementCancel::new();
    group
        .write_autocommit_cancellable(ExecContext::now(4), "INSERT INTO t VALUES (3)".into(), vec![], late.clone())
        .await
        .unwrap();
    assert!(!late.cancel());
    // A cancel before the write ran: it never runs.
    let early = shoal_storage::StatementCancel::new();
    early.cancel();
    let err = group
        .write_autocommit_cancellable(ExecContext::now(5), "INSERT INTO t VALUES (4)".into(), vec![], early)
        .await
        .unwrap_err();
    assert_eq!(err.code, shoal_common::SqlState::QUERY_CANCELED);
    assert_eq!(count(&group).await, 3);
    group.shutdown().await;
}

/// Waiting for the write slot is interrupted by a cancel, as PostgreSQL
/// interrupts a lock wait: a queued autocommit write and a transaction's
/// BEGIN, both behind an open transaction, give up at once with 57014. They
/// leave nothing behind: the cancelled write never runs, and the slot and
/// the batcher's queue serve the next writers as soon as the holder ends.
#[tokio::test(flavor = "multi_thread")]
async fn a_cancel_interrupts_waiting_for_the_write_slot() {
    use shoal_common::SqlState;
    use shoal_storage::StatementCancel;
    let dir = tempfile::tempdir().unwrap();
    let group = open_group(dir.path()).await;
    let mut txn = group.begin(ExecContext::now(1)).await.unwrap();
    txn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)".into(), vec![], true).await.unwrap();
    txn.commit().await.unwrap();
    let mut holder = group.begin(ExecContext::now(2)).await.unwrap();
    holder.execute("INSERT INTO t VALUES (1)".into(), vec![], true).await.unwrap();

    println!("a queued autocommit write gives up as soon as it is cancelled");
    let cancel = StatementCancel::new();
    let queued = tokio::spawn({
        let (group, cancel) = (group.clone(), cancel.clone());
        async move {
            group
                .write_autocommit_cancellable(ExecContext::now(3), "INSERT INTO t VALUES (2)".into(), vec![], cancel)
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!queued.is_finished(), "it waits for the slot");
    assert!(cancel.cancel());
    let err =
        tokio::time::timeout(Duration::from_secs(1), queued).await.expect("answered at once").unwrap().unwrap_err();
    assert_eq!(err.code, SqlState::QUERY_CANCELED, "{err}");

    println!("so does BEGIN's wait for the slot");
    let cancel = StatementCancel::new();
    let waiting = tokio::spawn({
        let (group, cancel) = (group.clone(), cancel.clone());
        async move { group.begin_cancellable(ExecContext::now(4), &cancel).await.map(|_| ()) }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiting.is_finished(), "it waits for the slot");
    assert!(cancel.cancel());
    let err =
        tokio::time::timeout(Duration::from_secs(1), waiting).await.expect("answered at once").unwrap().unwrap_err();
    assert_eq!(err.code, SqlState::QUERY_CANCELED, "{err}");

    println!("the holder commits: the next writers get the slot, and the cancelled write never ran");
    holder.commit().await.unwrap();
    let write = group.write_autocommit(ExecContext::now(5), "INSERT INTO t VALUES (3)".into(), vec![]);
    tokio::time::timeout(Duration::from_secs(5), write).await.expect("the batcher took the slot").unwrap();
    let txn = tokio::time::timeout(Duration::from_secs(5), group.begin(ExecContext::now(6))).await;
    txn.expect("the slot is free").unwrap().rollback().await.unwrap();
    let rows =
        group.read(|r| shoal_storage::run_read_only(&r.conn, "SELECT id FROM t ORDER BY id", &[])).await.unwrap().rows;
    assert_eq!(rows, vec![vec![Value::Integer(1)], vec![Value::Integer(3)]]);
    group.shutdown().await;
}

/// A cancelled write inside a transaction fails alone, as in PostgreSQL:
/// the transaction's earlier writes survive SQLite's rollback of the whole
/// transaction, so `ROLLBACK TO SAVEPOINT` recovers and COMMIT keeps them.
#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_write_in_a_transaction_can_be_rolled_back_to_a_savepoint() {
    let dir = tempfile::tempdir().unwrap();
    let group = open_group(dir.path()).await;
    let mut txn = group.begin(ExecContext::now(1)).await.unwrap();
    txn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)".into(), vec![], true).await.unwrap();
    txn.commit().await.unwrap();

    let mut txn = group.begin(ExecContext::now(2)).await.unwrap();
    txn.execute("INSERT INTO t VALUES (1)".into(), vec![], true).await.unwrap();
    txn.savepoint("SAVEPOINT a".into()).await.unwrap();
    txn.execute("INSERT INTO t VALUES (2)".into(), vec![], true).await.unwrap();
    let cancel = shoal_storage::StatementCancel::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.cancel();
    });
    let err = txn.execute_cancellable(LONG_WRITE.into(), vec![], true, Some(cancel)).await.unwrap_err();
    assert_eq!(err.code, shoal_common::SqlState::QUERY_CANCELED, "{err}");
    txn.savepoint("ROLLBACK TO a".into()).await.expect("the savepoint survived the cancel");
    txn.execute("INSERT INTO t VALUES (3)".into(), vec![], true).await.unwrap();
    txn.commit().await.unwrap();
    let rows =
        group.read(|r| shoal_storage::run_read_only(&r.conn, "SELECT id FROM t ORDER BY id", &[])).await.unwrap().rows;
    assert_eq!(rows, vec![vec![Value::Integer(1)], vec![Value::Integer(3)]]);
    group.shutdown().await;
}

/// Invariants of the pipelined batcher under a steady stream of autocommit
/// writes from many clients: every acknowledged write is there exactly once,
/// batches do pipeline, and an interactive transaction still gets the write
/// slot between pipelines (it is not starved by the stream).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pipelined_batches_keep_every_write_and_let_transactions_in() {
    let dir = tempfile::tempdir().unwrap();
    let group = open_group(dir.path()).await;
    let mut txn = group.begin(ExecContext::now(1)).await.unwrap();
    txn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, writer INTEGER)".into(), vec![], true).await.unwrap();
    txn.commit().await.unwrap();

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for writer in 0..16i64 {
        let (group, stop) = (group.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut acknowledged = 0i64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let id = writer * 1_000_000 + acknowledged;
                let sql = "INSERT INTO t VALUES (?1, ?2)".to_string();
                group
                    .write_autocommit(
                        ExecContext::now(id as u64),
                        sql,
                        vec![Value::Integer(id), Value::Integer(writer)],
                    )
                    .await
                    .expect("an autocommit write");
                acknowledged += 1;
            }
            acknowledged
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // An interactive transaction in the middle of the stream.
    let started = std::time::Instant::now();
    let mut txn = tokio::time::timeout(Duration::from_secs(10), group.begin(ExecContext::now(2)))
        .await
        .expect("a transaction gets the write slot while autocommit writes stream")
        .unwrap();
    txn.execute("INSERT INTO t VALUES (-1, -1)".into(), vec![], true).await.unwrap();
    txn.commit().await.unwrap();
    println!("transaction waited {:?} for the slot and committed", started.elapsed());
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = 1; // the transaction's row
    for writer in writers {
        total += writer.await.unwrap();
    }
    assert_eq!(count(&group).await, total, "every acknowledged write is there, once");
    let status = group.status();
    println!(
        "{} batches of {} statements, {} pipelined; {} proposals committed in {} µs",
        status.write_batches,
        status.batched_statements,
        status.pipelined_batches,
        status.proposals_committed,
        status.proposal_micros_total
    );
    assert!(status.write_batches > 0 && status.pipelined_batches <= status.write_batches);
    // Every acknowledged autocommit write was one statement of a batch.
    assert_eq!(status.batched_statements as i64, total - 1);
    // The batches and the two transactions' COMMITs (CREATE TABLE, and the
    // one mid-stream), each timed from proposal to applied.
    assert_eq!(status.proposals_committed, status.write_batches + 2);
    assert!(status.proposal_micros_total > 0);
    group.shutdown().await;
}
