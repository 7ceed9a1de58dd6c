//! Fault test of one node through `shoal-testkit`: three workloads run
//! concurrently while a seeded nemesis SIGKILLs the node and restarts it on
//! the same data directory, then the histories are checked:
//!
//! ```text
//!   register clients ─┐                        (a) no acknowledged insert is lost       (set)
//!   bank clients ─────┼─▶ node 1 ◀── SIGKILL   (b) every register is linearizable       (register)
//!   set clients ──────┘         └── restart    (c) every balance read sums to the total (bank)
//! ```
//!
//! The same test runs unchanged on more nodes once replication lands; here it
//! pins the single-node promises and proves the harness end to end.
//! `SHOAL_SEED` replays a run's choices (the seed is printed).

use std::path::Path;
use std::time::Duration;

use shoal_testkit::{
    check_bank, check_lost_writes, check_registers, Cluster, ClusterConfig, FaultKind, Nemesis, NemesisConfig,
    Recorder, Seed, Workloads,
};
use tokio::time::Instant;

/// This test's port range (25000-25999).
const PORT_BASE: u16 = 25000;
/// How long the workloads run.
const RUN: Duration = Duration::from_secs(8);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn single_node_keeps_its_promises_across_sigkill() {
    let seed = Seed::from_env().expect("SHOAL_SEED");

    println!("phase 1: start one node and create the workloads' tables");
    let mut cluster =
        Cluster::start(ClusterConfig::new(env!("CARGO_BIN_EXE_shoal"), 1, PORT_BASE)).await.expect("start the cluster");
    let status = cluster.status(1).await.expect("status of node 1");
    assert_eq!(status["node_id"], 1, "{status}");
    let endpoints = cluster.endpoints();
    let workloads = Workloads::default();
    workloads.setup(&endpoints).await.expect("workload setup");
    let Workloads { registers, bank, .. } = &workloads;

    println!("phase 1b: SIGSTOP silences the node without closing its connections; SIGCONT resumes them");
    let session = cluster.connect(1).await.expect("connect to node 1");
    cluster.pause(1).expect("pause node 1");
    let stalled = tokio::time::timeout(Duration::from_millis(500), session.simple_query("SELECT 1")).await;
    assert!(stalled.is_err(), "a stopped node answered");
    cluster.resume(1).expect("resume node 1");
    let resumed = tokio::time::timeout(Duration::from_secs(10), session.simple_query("SELECT 1")).await;
    resumed.expect("no answer after SIGCONT").expect("query after SIGCONT");
    drop(session);

    let nemesis_config = NemesisConfig {
        kinds: vec![FaultKind::Kill],
        quiet: Duration::from_secs(1)..Duration::from_secs(3),
        fault: Duration::from_millis(200)..Duration::from_secs(1),
        total: RUN - Duration::from_secs(2),
        ..NemesisConfig::default()
    };
    let nemesis = Nemesis::generate(seed.derive(0), 1, &nemesis_config).expect("nemesis schedule");
    assert!(!nemesis.steps.is_empty(), "the first quiet gap ends before the schedule does, so it kills at least once");
    println!("phase 2: run the workloads for {RUN:?} while the node is killed {} time(s)", nemesis.steps.len());
    let first_pid = cluster.pid(1).expect("node 1");
    let recorder = Recorder::new();
    let until = Instant::now() + RUN;
    workloads
        .run_under(&endpoints, &recorder, seed, until, &nemesis, &mut cluster)
        .await
        .expect("workloads under faults");
    assert_ne!(cluster.pid(1).expect("node 1"), first_pid, "the node was restarted");

    println!("phase 3: read the final state, where lost writes would show");
    let present = workloads.read_final(&endpoints, &recorder).await.expect("final reads");
    let history = recorder.history();
    println!("history: {}", history.summary());

    println!("phase 4: check the three invariants");
    let lost = check_lost_writes(&history, &present);
    println!("{lost}");
    assert!(lost.is_valid(), "{lost}");
    assert!(lost.acknowledged > 0, "no insert was acknowledged, so nothing was checked");

    let linearizability = check_registers(&history, &registers.check_config());
    println!("{linearizability}");
    assert!(linearizability.is_valid(), "{linearizability}");
    assert!(history.summary().ok("write") > 0 && history.summary().ok("read") > 0, "registers barely exercised");

    let money = check_bank(&history, bank.accounts as usize, bank.total());
    println!("{money}");
    assert!(money.is_valid(), "{money}");
    assert!(money.reads_checked > 1 && money.transfers_ok > 0, "bank barely exercised: {money}");

    println!("phase 5: wiping the node starts it empty");
    cluster.wipe(1).await.expect("wipe node 1");
    let fresh = cluster.connect(1).await.expect("connect after wipe");
    let gone = fresh.simple_query("SELECT count(*) FROM kit_set").await.expect_err("the table survived the wipe");
    assert_eq!(gone.code().map(|c| c.code()), Some("42P01"), "{gone}");
    drop(fresh);

    println!("phase 6: dropping the cluster must leave no process behind");
    let pid = cluster.pid(1).expect("node 1").expect("node 1 is running");
    drop(cluster);
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "node process {pid} survived the cluster");
}
