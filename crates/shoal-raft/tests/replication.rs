//! Three replicas of one group in one process, over the real transport.
//!
//! Invariant: every acknowledged write is on every replica, whether it
//! reached a replica through the pipelined append streams (many writers at
//! once, so several AppendEntries are in flight per follower) or through a
//! snapshot (a replica added after the log was compacted, its snapshot
//! larger than one transfer chunk), and the replicas' contents agree.

use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use shoal_common::{ExecContext, Value};
use shoal_raft::{Group, GroupConfig, Transport};
use tokio::net::TcpListener;

const CLUSTER: &str = "replication-test";
/// Bytes per row: 300 rows make a SQLite file of over 2 MiB, so the
/// snapshot travels in several 1 MiB chunks.
const ROW_BYTES: usize = 8_000;

struct Node {
    group: Arc<Group>,
    transport: Transport,
    addr: String,
}

async fn start_node(id: u64, dir: &std::path::Path, bootstrap: bool) -> Node {
    let transport = Transport::new();
    transport.set_identity(id, CLUSTER);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    transport.serve(listener);
    let group = Group::open(GroupConfig {
        id: 1,
        node_id: id,
        dir: dir.join(format!("n{id}")),
        rpc_addr: addr.clone(),
        fsync: false,
        transport: transport.clone(),
        bootstrap,
        // A snapshot every 10 entries, keeping one entry behind it: a
        // replica added later cannot catch up from the log alone.
        snapshot_every: 10,
    })
    .await
    .expect("open group");
    Node { group, transport, addr }
}

/// Inserts rows `ids` from one task per row, all at once; returns the
/// highest log index acknowledged.
async fn insert_concurrently(leader: &Arc<Group>, ids: std::ops::Range<i64>) -> u64 {
    let writes: Vec<_> = ids
        .map(|id| {
            let leader = leader.clone();
            tokio::spawn(async move {
                let params = vec![Value::Integer(id), Value::Text("x".repeat(ROW_BYTES))];
                leader
                    .write_autocommit(ExecContext::now(id as u64), "INSERT INTO t VALUES (?1, ?2)".into(), params)
                    .await
            })
        })
        .collect();
    let mut last = 0;
    for write in writes {
        let (_, index) = write.await.unwrap().expect("an acknowledged write");
        last = last.max(index);
    }
    last
}

/// The replica's rows as (count, sum of ids, total bytes).
async fn contents(group: &Group) -> Vec<Value> {
    let out = group
        .read(|r| shoal_storage::run_read_only(&r.conn, "SELECT count(*), sum(id), sum(length(v)) FROM t", &[]))
        .await
        .unwrap();
    out.rows[0].clone()
}

/// The first entry index of a log directory (segment files are named by it).
fn first_log_index(log_dir: &std::path::Path) -> u64 {
    std::fs::read_dir(log_dir)
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().to_str()?.strip_suffix(".seg")?.parse().ok())
        .min()
        .expect("a segment file")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_reach_every_replica_by_stream_or_by_chunked_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let n1 = start_node(1, dir.path(), true).await;
    let mut txn = n1.group.begin(ExecContext::now(0)).await.unwrap();
    txn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)".into(), vec![], true).await.unwrap();
    txn.commit().await.unwrap();

    let n2 = start_node(2, dir.path(), false).await;
    n1.group.add_replica(2, n2.addr.clone(), true).await.expect("add node 2");
    // Many writers at once: batches follow one another faster than a
    // round trip, so each follower has several appends in flight.
    let rows_index = insert_concurrently(&n1.group, 0..300).await;
    // One entry per write from here, until the leader has a snapshot of
    // every row and has purged its log up to it (its policy takes one every
    // 10 entries and keeps one entry behind it).
    let mut id = 300;
    loop {
        let m = n1.group.raft().metrics().borrow_watched().clone();
        let covered = m.snapshot.is_some_and(|s| s.index >= rows_index);
        if covered && m.purged.is_some_and(|p| p.index + 1 >= rows_index) {
            break;
        }
        assert!(id < 500, "the leader took no snapshot of every row and purged its log: {m:?}");
        insert_concurrently(&n1.group, id..id + 1).await;
        id += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let n3 = start_node(3, dir.path(), false).await;
    let leader_log = n1.group.raft().metrics().borrow_watched().last_log_index.unwrap();
    n1.group.add_replica(3, n3.addr.clone(), true).await.expect("add node 3");
    // Promoted only once it held what the leader had when it was added.
    let matched = n1.group.raft().metrics().borrow_watched().replication.clone().unwrap()[&3];
    assert!(
        matched.is_some_and(|m| m.index >= leader_log),
        "node 3 became a voter at {matched:?}, before {leader_log}"
    );
    let last = insert_concurrently(&n1.group, id..id + 30).await;
    let rows = id + 30;

    let expected = vec![Value::Integer(rows), Value::Integer((0..rows).sum()), Value::Integer(rows * ROW_BYTES as i64)];
    for node in [&n1, &n2, &n3] {
        node.group.wait_applied(last, Duration::from_secs(30)).await.expect("replica applies the last write");
        assert_eq!(contents(&node.group).await, expected, "replica {} has every write", node.addr);
    }
    // Node 3's log starts after the snapshot it installed: it never held
    // the early entries (the others still do: a 64 MiB segment is never
    // purged while it is the active one).
    assert_eq!(first_log_index(&dir.path().join("n1/log")), 0);
    let first = first_log_index(&dir.path().join("n3/log"));
    assert!(first > 1, "node 3 caught up by snapshot, its log starts at {first}");
    let installed = std::fs::metadata(dir.path().join("n3/snapshots/snapshot.db")).expect("node 3 has a snapshot");
    assert!(installed.len() > 2 << 20, "the snapshot spans several chunks ({} bytes)", installed.len());

    for node in [n1, n2, n3] {
        node.group.shutdown().await;
        node.transport.shutdown();
    }
}
