//! Three-node fault tests through `shoal-testkit`: real `shoal server`
//! processes, every group replicated on every node, node-to-node traffic
//! through fault proxies. Each scenario runs the register, bank and set
//! workloads against all nodes while its nemesis acts, then checks:
//!
//! * (a) no acknowledged insert is lost;
//! * (b) every register is linearizable (reads never stale, even from a
//!   deposed or cut-off leader);
//! * (c) every balance read sums to the bank's total.
//!
//! `SHOAL_SEED` replays a run's choices (the seed is printed).

use std::time::Duration;

use shoal_testkit::{
    check_bank, check_lost_writes, check_registers, Cluster, ClusterConfig, FaultKind, Nemesis, NemesisConfig,
    Recorder, Seed, Workloads,
};
use tokio::time::Instant;

/// How long the workloads run per scenario.
const RUN: Duration = Duration::from_secs(10);

async fn three_nodes(port_base: u16) -> Cluster {
    let mut config = ClusterConfig::new(env!("CARGO_BIN_EXE_shoal"), 3, port_base);
    config.link_proxies = true;
    let cluster = Cluster::start(config).await.expect("start the cluster");
    for node in 1..=3 {
        let status = cluster.status(node).await.expect("status");
        assert_eq!(status["node_id"], node as u64, "{status}");
    }
    cluster
}

/// Runs the three workloads under `kinds` of faults and checks (a)–(c).
async fn scenario(port_base: u16, kinds: Vec<FaultKind>) {
    let seed = Seed::from_env().expect("SHOAL_SEED");
    let mut cluster = three_nodes(port_base).await;
    let endpoints = cluster.endpoints();
    let workloads = Workloads::default();
    workloads.setup(&endpoints).await.expect("workload setup");
    let Workloads { registers, bank, .. } = &workloads;

    let nemesis_config = NemesisConfig {
        kinds,
        quiet: Duration::from_secs(1)..Duration::from_secs(2),
        fault: Duration::from_millis(500)..Duration::from_secs(2),
        total: RUN - Duration::from_secs(2),
        ..NemesisConfig::default()
    };
    let nemesis = Nemesis::generate(seed.derive(0), 3, &nemesis_config).expect("nemesis schedule");
    println!("nemesis: {:?}", nemesis.steps);
    let recorder = Recorder::new();
    let until = Instant::now() + RUN;
    workloads
        .run_under(&endpoints, &recorder, seed, until, &nemesis, &mut cluster)
        .await
        .expect("workloads under faults");
    cluster.heal();

    let present = workloads.read_final(&endpoints, &recorder).await.expect("final reads");
    let history = recorder.history();
    println!("history: {}", history.summary());

    let lost = check_lost_writes(&history, &present);
    println!("{lost}");
    assert!(lost.is_valid(), "{lost}");
    assert!(lost.acknowledged > 0, "no insert was acknowledged, so nothing was checked");
    let linearizability = check_registers(&history, &registers.check_config());
    println!("{linearizability}");
    assert!(linearizability.is_valid(), "{linearizability}");
    let money = check_bank(&history, bank.accounts as usize, bank.total());
    println!("{money}");
    assert!(money.is_valid(), "{money}");
    assert!(money.reads_checked > 1 && money.transfers_ok > 0, "bank barely exercised: {money}");
}

/// Any node, the leader included, is SIGKILLed and restarted during writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_any_node_during_writes() {
    scenario(28000, vec![FaultKind::Kill]).await;
}

/// Partitions, isolated nodes and paused (SIGSTOP) nodes: a leader cut off
/// from the majority must not acknowledge writes or serve stale reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partitions_and_pauses() {
    scenario(28200, vec![FaultKind::Isolate, FaultKind::Partition, FaultKind::Pause]).await;
}

/// Writes through any node reach every replica, and after the leader is
/// killed another node takes writes within the failover budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_agree_and_writes_resume_after_the_leader_dies() {
    let mut cluster = three_nodes(28400).await;
    let first = cluster.connect(2).await.expect("connect node 2");
    first.batch_execute("CREATE TABLE t (id INT PRIMARY KEY, v TEXT)").await.expect("create through a follower");
    first.batch_execute("INSERT INTO t VALUES (1, 'a'), (2, 'b')").await.expect("insert through node 2");
    drop(first);
    for node in 1..=3 {
        let client = cluster.connect(node).await.expect("connect");
        let rows = client.query("SELECT count(*) FROM t", &[]).await.expect("linearizable read");
        assert_eq!(rows[0].get::<_, i64>(0), 2, "node {node} sees every acknowledged write");
    }
    let status = cluster.status(1).await.expect("status");
    let leader = status["groups"][1]["leader"].as_u64().expect("data group leader") as usize;
    cluster.kill9(leader).expect("kill the leader");
    let survivor = if leader == 1 { 2 } else { 1 };
    let client = cluster.connect(survivor).await.expect("connect a survivor");
    let started = std::time::Instant::now();
    loop {
        match client.batch_execute("INSERT INTO t VALUES (3, 'c')").await {
            Ok(()) => break,
            Err(e) if started.elapsed() < Duration::from_secs(10) => {
                println!("write during failover: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("writes did not resume within 10 s: {e}"),
        }
    }
    println!("writes resumed {:?} after the leader was killed", started.elapsed());
    cluster.restart(leader).await.expect("restart the old leader");
    let back = cluster.connect(leader).await.expect("connect the restarted node");
    let rows = back.query("SELECT count(*) FROM t", &[]).await.expect("read on the restarted node");
    assert_eq!(rows[0].get::<_, i64>(0), 3, "the restarted node caught up");
}
