//! Sequences on a three-node cluster, with real `shoal server` processes
//! (`shoal-testkit`). This binary's ports: 24000-24999.
//!
//! Invariant: a sequence hands every value out once, whichever node the
//! client talks to (writes from followers are forwarded to the leader), a
//! value drawn by a failed statement or a rolled-back transaction stays
//! consumed, `currval` follows the session through forwarding, and every
//! replica ends with the same content (`shoal.verify()`).

use std::time::Duration;

use shoal_testkit::{Cluster, ClusterConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sequences_agree_across_replicas_and_never_repeat() {
    let config = ClusterConfig::new(env!("CARGO_BIN_EXE_shoal"), 3, 24000);
    let cluster = Cluster::start(config).await.expect("start the cluster");
    let follower = cluster.connect(2).await.expect("connect to node 2");
    follower
        .batch_execute("CREATE TABLE t (id serial PRIMARY KEY, v text UNIQUE)")
        .await
        .expect("create through node 2");

    println!("autocommit inserts through a follower draw 1, 2, 3; currval follows the session");
    for v in ["a", "b", "c"] {
        follower.execute("INSERT INTO t (v) VALUES ($1)", &[&v]).await.expect("insert");
    }
    let current: i64 = follower.query_one("SELECT currval('t_id_seq')", &[]).await.expect("currval").get(0);
    assert_eq!(current, 3);

    println!("a failed insert and a rolled-back transaction each consume a value");
    let err = follower.execute("INSERT INTO t (v) VALUES ('a')", &[]).await.expect_err("duplicate v");
    assert_eq!(err.code().map(|c| c.code()), Some("23505"));
    follower
        .batch_execute("BEGIN; INSERT INTO t (v) VALUES ('rolled back'); ROLLBACK")
        .await
        .expect("rolled-back transaction");

    println!("another node continues after them");
    let other = cluster.connect(3).await.expect("connect to node 3");
    let id: i32 = other.query_one("INSERT INTO t (v) VALUES ('d') RETURNING id", &[]).await.expect("insert").get(0);
    assert_eq!(id, 6, "values 4 and 5 were consumed by the failed insert and the rollback");
    let next: i64 = other.query_one("SELECT nextval('t_id_seq')", &[]).await.expect("nextval").get(0);
    assert_eq!(next, 7);

    let leader = cluster.connect(1).await.expect("connect to node 1");
    let ids: Vec<i32> =
        leader.query("SELECT id FROM t ORDER BY id", &[]).await.expect("read").iter().map(|r| r.get(0)).collect();
    assert_eq!(ids, vec![1, 2, 3, 6]);

    let agreement = cluster.verify_replicas(1, Duration::from_secs(30)).await.expect("replicas agree");
    println!("{agreement}");
}
