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
