//! Catching up and rejoining, with real `shoal server` processes
//! (`shoal-testkit`). This binary's ports: 26000-26999.
//!
//! * A node that was down while the others compacted their logs catches up
//!   from a snapshot (checksummed in transit) plus the log tail, and then
//!   holds exactly the data the others hold.
//! * A node whose data directory was wiped comes back as a new replica with a
//!   new id; its old replicas are removed so they do not count against quorums.

use std::time::Duration;

use shoal_testkit::{Cluster, ClusterConfig};

async fn count(cluster: &Cluster, node: usize, table: &str) -> i64 {
    let client = cluster.connect(node).await.expect("connect");
    client.query_one(&format!("SELECT count(*) FROM {table}"), &[]).await.expect("count").get(0)
}

/// Invariant: after catching up by snapshot, the lagging node serves every
/// acknowledged row and all replicas' checksums agree at one index.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_behind_a_compacted_log_catches_up_by_snapshot() {
    let mut config = ClusterConfig::new(env!("CARGO_BIN_EXE_shoal"), 3, 26000);
    config.port_count = 500;
    // Snapshot every 50 entries (keeping 5), so a few hundred writes compact the log.
    config.extra_args = vec!["--snapshot-every".into(), "50".into()];
    let mut cluster = Cluster::start(config).await.expect("start the cluster");
    let client = cluster.connect(1).await.expect("connect");
    client.batch_execute("CREATE TABLE events (id INT PRIMARY KEY, payload TEXT)").await.expect("create");
    client.batch_execute("INSERT INTO events VALUES (0, 'before')").await.expect("insert");

    cluster.kill9(3).expect("kill node 3");
    for id in 1..=300 {
        client
            .execute("INSERT INTO events VALUES ($1, repeat('x', 100))", &[&id])
            .await
            .expect("write while node 3 is down");
    }
    let status = cluster.status(1).await.expect("status");
    let snapshot_index = status["groups"][1]["snapshot_index"].as_u64().unwrap_or(0);
    assert!(snapshot_index > 250, "the data group compacted its log: {status}");

    cluster.restart(3).await.expect("restart node 3");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let seen = count(&cluster, 3, "events").await;
        if seen == 301 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "node 3 has {seen} of 301 rows after 30 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let log = std::fs::read_to_string(&cluster.node(3).expect("node 3").log_path).expect("node 3's log");
    assert!(log.contains("installed a snapshot from the leader"), "node 3 caught up without a snapshot:\n{log}");
    let agreement = cluster.verify_replicas(1, Duration::from_secs(30)).await.expect("replicas agree");
    println!("{agreement}");
}

/// Invariant: a wiped node rejoins as a new replica (new node id, old one
/// removed from every group), receives all data, and the cluster keeps
/// taking writes with all replicas in agreement.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wiped_node_rejoins_as_a_new_replica() {
    let mut config = ClusterConfig::new(env!("CARGO_BIN_EXE_shoal"), 3, 26500);
    config.port_count = 500;
    // Proxies route by node id = position; a rejoined node gets a new id.
    config.link_proxies = false;
    let mut cluster = Cluster::start(config).await.expect("start the cluster");
    let client = cluster.connect(1).await.expect("connect");
    client.batch_execute("CREATE TABLE items (id INT PRIMARY KEY)").await.expect("create");
    client.batch_execute("INSERT INTO items SELECT * FROM generate_series(1, 100)").await.expect("insert");

    cluster.wipe(3).await.expect("wipe node 3 and start it empty");
    let status = cluster.status(3).await.expect("status of the rejoined node");
    let new_id = status["node_id"].as_u64().expect("node id");
    assert!(new_id > 3, "a wiped node gets a new id, not {new_id}");

    client.batch_execute("INSERT INTO items VALUES (101)").await.expect("write after the rejoin");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let replicas = client
            .query("SELECT node_id FROM shoal.replicas WHERE group_id = 1 ORDER BY node_id", &[])
            .await
            .expect("replicas");
        let ids: Vec<i64> = replicas.iter().map(|r| r.get(0)).collect();
        if ids == vec![1, 2, new_id as i64] {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "data group members after the rejoin: {ids:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(count(&cluster, 3, "items").await, 101, "the rejoined node has every row");
    let agreement = cluster.verify_replicas(1, Duration::from_secs(30)).await.expect("replicas agree");
    println!("{agreement}");
}

/// Steps of a membership function, as `action node` strings.
async fn steps(client: &tokio_postgres::Client, call: &str) -> Vec<String> {
    let sql = format!("SELECT action, coalesce(node_id, 0), coalesce(group_id, -1) FROM {call} ORDER BY step");
    let rows = client.query(sql.as_str(), &[]).await.unwrap_or_else(|e| panic!("{call}: {e}"));
    rows.iter().map(|r| format!("{} {} g{}", r.get::<_, String>(0), r.get::<_, i64>(1), r.get::<_, i64>(2))).collect()
}

/// Voting members of the data group, as node 1's view reports them.
async fn data_voters(client: &tokio_postgres::Client) -> Vec<i64> {
    let rows = client
        .query("SELECT node_id FROM shoal.replicas WHERE group_id = 1 AND is_voter ORDER BY node_id", &[])
        .await
        .expect("replicas");
    rows.iter().map(|r| r.get(0)).collect()
}

/// Invariants of membership changes:
/// * with replication factor 3, a fourth node is a learner: it serves reads
///   and forwards writes but does not vote;
/// * removing a voter first promotes a learner in its place, so the group
///   keeps three voters and survives losing another node;
/// * lowering and raising the factor demotes and promotes voters;
/// * bad requests (unknown node, factor out of range, adding past the
///   factor, inside a transaction) are refused with a SQLSTATE;
/// * every replica agrees at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replication_factor_learners_and_node_removal() {
    let mut config = ClusterConfig::new(env!("CARGO_BIN_EXE_shoal"), 4, 26000);
    config.link_proxies = false;
    let mut cluster = Cluster::start(config).await.expect("start the cluster");
    let admin = cluster.connect(1).await.expect("connect");
    assert_eq!(data_voters(&admin).await, vec![1, 2, 3], "the fourth node joins as a learner");
    let factor: i64 =
        admin.query_one("SELECT replication_factor FROM shoal.groups WHERE group_id = 1", &[]).await.unwrap().get(0);
    assert_eq!(factor, 3);

    let learner = cluster.connect(4).await.expect("connect the learner");
    learner.batch_execute("CREATE TABLE ledger (id INT PRIMARY KEY)").await.expect("DDL through a learner");
    learner.batch_execute("INSERT INTO ledger VALUES (1), (2)").await.expect("write through a learner");
    let seen: i64 = learner.query_one("SELECT count(*) FROM ledger", &[]).await.expect("read").get(0);
    assert_eq!(seen, 2, "a learner serves linearizable reads");

    let err = admin.query("SELECT * FROM shoal.add_node(4)", &[]).await.expect_err("past the factor");
    assert_eq!(err.code().map(|c| c.code()), Some("22023"), "{err}");
    let err = admin.query("SELECT * FROM shoal.remove_node(99)", &[]).await.expect_err("unknown node");
    assert_eq!(err.code().map(|c| c.code()), Some("42704"), "{err}");
    let err = admin.query("SELECT * FROM shoal.set_replication_factor(9)", &[]).await.expect_err("too many");
    assert_eq!(err.code().map(|c| c.code()), Some("22023"), "{err}");
    admin.batch_execute("BEGIN").await.unwrap();
    let err = admin.query("SELECT * FROM shoal.remove_node(2)", &[]).await.expect_err("in a transaction");
    assert_eq!(err.code().map(|c| c.code()), Some("25001"), "{err}");
    admin.batch_execute("ROLLBACK").await.unwrap();

    let removal = steps(&admin, "shoal.remove_node(2)").await;
    println!("remove_node(2): {removal:?}");
    assert!(removal.contains(&"promote 4 g1".to_string()), "a learner replaces the removed voter: {removal:?}");
    assert!(removal.contains(&"remove 2 g1".to_string()), "{removal:?}");
    assert_eq!(data_voters(&admin).await, vec![1, 3, 4]);
    let listed: i64 = admin.query_one("SELECT count(*) FROM shoal.nodes WHERE node_id = 2", &[]).await.unwrap().get(0);
    assert_eq!(listed, 0, "a removed node is no longer listed");
    cluster.kill9(2).expect("stop the removed node");

    // Node 4 now votes: with node 3 down too, {1, 4} is still a majority.
    cluster.kill9(3).expect("kill node 3");
    admin.batch_execute("INSERT INTO ledger VALUES (3)").await.expect("writes need node 4's vote now");
    cluster.restart(3).await.expect("restart node 3");

    let lowered = steps(&admin, "shoal.set_replication_factor(1)").await;
    println!("set_replication_factor(1): {lowered:?}");
    assert_eq!(data_voters(&admin).await.len(), 1, "factor 1 leaves one voter: {lowered:?}");
    admin.batch_execute("INSERT INTO ledger VALUES (4)").await.expect("write with one voter");
    let raised = steps(&admin, "shoal.set_replication_factor(3)").await;
    println!("set_replication_factor(3): {raised:?}");
    assert_eq!(data_voters(&admin).await, vec![1, 3, 4], "factor 3 promotes the learners back");

    let seen: i64 = learner.query_one("SELECT count(*) FROM ledger", &[]).await.expect("read").get(0);
    assert_eq!(seen, 4);
    let agreement = cluster.verify_replicas(1, Duration::from_secs(30)).await.expect("replicas agree");
    println!("{agreement}");
}

/// Invariant: with TLS between nodes (certificates from one CA, checked both
/// ways), the cluster forms, replicates and agrees, through the fault
/// proxies, which see only ciphertext.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_talk_over_mutual_tls() {
    let pki = tempfile::tempdir().expect("temp dir");
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap().signed_by(&key, &ca, &ca_key).unwrap();
    let path = |name: &str| pki.path().join(name).display().to_string();
    std::fs::write(path("ca.pem"), ca.pem()).unwrap();
    std::fs::write(path("node.pem"), cert.pem()).unwrap();
    std::fs::write(path("node.key"), key.serialize_pem()).unwrap();

    let mut config = ClusterConfig::new(env!("CARGO_BIN_EXE_shoal"), 3, 26000);
    config.extra_args = vec![
        "--rpc-tls-cert".into(),
        path("node.pem"),
        "--rpc-tls-key".into(),
        path("node.key"),
        "--rpc-tls-ca".into(),
        path("ca.pem"),
    ];
    let cluster = Cluster::start(config).await.expect("start a TLS cluster");
    let client = cluster.connect(3).await.expect("connect");
    client.batch_execute("CREATE TABLE sealed (id INT PRIMARY KEY)").await.expect("DDL through node 3");
    client.batch_execute("INSERT INTO sealed VALUES (1), (2), (3)").await.expect("insert");
    assert_eq!(count(&cluster, 2, "sealed").await, 3);
    let agreement = cluster.verify_replicas(1, Duration::from_secs(30)).await.expect("replicas agree");
    println!("{agreement}");
}
