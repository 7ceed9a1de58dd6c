//! Three-node fault tests through `shoal-testkit`: real `shoal server`
//! processes, every group replicated on every node, node-to-node traffic
//! through fault proxies. Each scenario runs the register, bank and set
//! workloads against all nodes while its nemesis acts, then checks:
//!
//! * (a) no acknowledged insert is lost;
//! * (b) every register is linearizable (reads never stale, even from a
//!   deposed or cut-off leader);
//! * (c) every balance read sums to the bank's total;
//! * (d) afterwards every replica holds the same data (`shoal.verify()`).
//!
//! `SHOAL_SEED` replays a run's choices (the seed is printed). CI runs each
//! scenario for 10 s; `SHOAL_SOAK=1` runs `soak_every_fault` for
//! `SHOAL_SOAK_SECS` (default 300) with every kind of fault.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use shoal_testkit::{
    check_bank, check_lost_writes, check_registers, Cluster, ClusterConfig, FaultKind, Nemesis, NemesisConfig,
    Recorder, Seed, Workloads,
};
use tokio::time::Instant;

/// How long the workloads run per scenario.
const RUN: Duration = Duration::from_secs(10);

/// Every kind of fault the nemesis knows.
const EVERY_FAULT: [FaultKind; 10] = [
    FaultKind::Kill,
    FaultKind::Pause,
    FaultKind::Partition,
    FaultKind::Isolate,
    FaultKind::OneWay,
    FaultKind::Delay,
    FaultKind::KillLeader,
    FaultKind::PauseLeader,
    FaultKind::IsolateLeader,
    FaultKind::RollingRestart,
];

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
    scenario_for(port_base, kinds, RUN).await
}

async fn scenario_for(port_base: u16, kinds: Vec<FaultKind>, run: Duration) {
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
        total: run - Duration::from_secs(2),
        ..NemesisConfig::default()
    };
    let nemesis = Nemesis::generate(seed.derive(0), 3, &nemesis_config).expect("nemesis schedule");
    println!("nemesis: {:?}", nemesis.steps);
    let recorder = Recorder::new();
    let until = Instant::now() + run;
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
    let agreement = cluster.verify_replicas(1, Duration::from_secs(30)).await;
    if agreement.is_err() {
        println!("(d) failed; what each replica holds:\n{}", workloads.replica_differences(&cluster).await);
    }
    assert!(agreement.is_ok(), "(d) {agreement:?}\n{}", cluster.dump_logs());
    println!("(d) {}", agreement.unwrap_or_default());
    // How much of the write path ran pipelined (two batches in one transaction).
    let (mut batches, mut pipelined) = (0, 0);
    for node in 1..=cluster.len() {
        if let Ok(status) = cluster.status(node).await {
            batches += status["groups"][1]["write_batches"].as_u64().unwrap_or(0);
            pipelined += status["groups"][1]["pipelined_batches"].as_u64().unwrap_or(0);
        }
    }
    println!("write batches since each node's last start: {batches}, of which pipelined: {pipelined}");
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

/// The leader is SIGKILLed or cut off from the others by a partition while
/// clients write through every node: a cut-off leader must not acknowledge
/// writes or serve stale linearizable reads, and nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_killed_or_cut_off() {
    scenario(27000, vec![FaultKind::KillLeader, FaultKind::IsolateLeader]).await;
}

/// The leader is paused (SIGSTOP) past the election timeout and resumed: the
/// others elect a new leader, and the old one, waking with a stale view,
/// neither acknowledges writes nor serves stale reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_paused_past_the_election_timeout() {
    scenario(27200, vec![FaultKind::PauseLeader]).await;
}

/// Every node is restarted in turn while the workloads run.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rolling_restart_under_load() {
    scenario(27400, vec![FaultKind::RollingRestart]).await;
}

/// A long run with every kind of fault; only with `SHOAL_SOAK=1`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn soak_every_fault() {
    if std::env::var("SHOAL_SOAK").as_deref() != Ok("1") {
        println!("skipped: set SHOAL_SOAK=1 (and SHOAL_SOAK_SECS, default 300) to run the soak");
        return;
    }
    let secs = std::env::var("SHOAL_SOAK_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(300);
    scenario_for(27600, EVERY_FAULT.to_vec(), Duration::from_secs(secs)).await;
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
    let leader = cluster.data_leader().await.expect("data group leader");
    cluster.kill9(leader).expect("kill the leader");
    let survivor = if leader == 1 { 2 } else { 1 };
    let client = cluster.connect(survivor).await.expect("connect a survivor");
    // An autocommit write sent during the failover is routed to the new
    // leader once there is one. The one error it may meet: the survivor
    // had not yet seen its link to the dead leader close and sent the
    // write down it, so whether it ran is unknown (40003, saying the
    // statement is not idempotent). The client then checks before running
    // it again, as the error tells it to.
    let started = std::time::Instant::now();
    let insert = "INSERT INTO t VALUES (3, 'c')";
    if let Err(e) = client.batch_execute(insert).await {
        let db = e.as_db_error().unwrap_or_else(|| panic!("a write during the failover: {e}"));
        assert_eq!(db.code().code(), "40003", "the only error allowed is an in-doubt one: {db:?}");
        assert!(db.detail().is_some_and(|d| d.contains("not idempotent")), "it says whether to rerun: {db:?}");
        let present = client.query("SELECT count(*) FROM t WHERE id = 3", &[]).await.expect("check the write");
        if present[0].get::<_, i64>(0) == 0 {
            client.batch_execute(insert).await.expect("the write, run again after checking, succeeds");
        }
    }
    println!("first write after the kill took {:?}", started.elapsed());
    println!("writes resumed {:?} after the leader was killed", started.elapsed());
    cluster.restart(leader).await.expect("restart the old leader");
    let back = cluster.connect(leader).await.expect("connect the restarted node");
    let rows = back.query("SELECT count(*) FROM t", &[]).await.expect("read on the restarted node");
    assert_eq!(rows[0].get::<_, i64>(0), 3, "the restarted node caught up");
    let agreement = cluster.verify_replicas(leader, Duration::from_secs(30)).await.expect("replicas agree");
    println!("{agreement}");
}

/// Invariant: the consistency check can fail, and says where. One
/// replica's file is changed behind Shoal's back (one row of one table);
/// `shoal.verify()` reports the replicas disagreeing, naming that table and
/// no other.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn verify_names_the_table_a_damaged_replica_differs_in() {
    let mut config = ClusterConfig::new(env!("CARGO_BIN_EXE_shoal"), 3, 30000);
    config.link_proxies = false;
    let mut cluster = Cluster::start(config).await.expect("start the cluster");
    let client = cluster.connect(1).await.expect("connect");
    client
        .batch_execute(
            "CREATE TABLE kept (id INT PRIMARY KEY, v TEXT); CREATE TABLE damaged (id INT PRIMARY KEY, v TEXT); \
             INSERT INTO kept VALUES (1, 'a'), (2, 'b'); INSERT INTO damaged VALUES (1, 'a'), (2, 'b')",
        )
        .await
        .expect("create and fill two tables");
    drop(client);
    cluster.verify_replicas(1, Duration::from_secs(30)).await.expect("the replicas agree before the damage");

    let victim = if cluster.data_leader().await.expect("data leader") == 3 { 2 } else { 3 };
    cluster.kill9(victim).expect("stop the victim");
    let db = cluster.node(victim).expect("victim").data_dir.join("group-1").join("replica.db");
    let conn = shoal_storage::open_connection(&db, false).expect("open the victim's replica");
    let changed = conn.execute("UPDATE damaged SET v = 'tampered' WHERE id = 2", []).expect("damage one row");
    assert_eq!(changed, 1);
    drop(conn);
    cluster.restart(victim).await.expect("restart the victim");

    let disagreement = cluster
        .verify_replicas(1, Duration::from_secs(30))
        .await
        .expect_err("a damaged replica must not pass the consistency check");
    let report = format!("{disagreement:#}");
    println!("{report}");
    assert!(report.contains("replicas disagree") && report.contains("mismatch in damaged"), "{report}");
    assert!(!report.contains("kept"), "only the damaged table differs: {report}");
}

/// Invariants of the read levels:
/// * a follower read given a writer's causal token sees that write, even
///   when replication to the follower is slow;
/// * a bounded-staleness read never misses a write acknowledged more than
///   `shoal.max_staleness` before it: on a follower cut off from the leader
///   it fails once the bound has passed, while a follower read still answers;
/// * `shoal.replicas` shows every replica, and a dead node's as unreachable.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn read_levels_causal_tokens_and_replica_views() {
    let mut cluster = three_nodes(28600).await;
    let leader = cluster.data_leader().await.expect("data group leader");
    let followers: Vec<usize> = (1..=3).filter(|n| *n != leader).collect();
    let follower = followers[0];
    let writer = cluster.connect(leader).await.expect("connect the leader");
    writer.batch_execute("CREATE TABLE notes (id INT PRIMARY KEY, body TEXT)").await.expect("create");

    // Causal token: slow replication to the follower, write, read there with the token.
    cluster.delay_link(leader, follower, Duration::from_millis(300)).expect("delay");
    cluster.delay_link(followers[1], follower, Duration::from_millis(300)).expect("delay");
    writer.batch_execute("INSERT INTO notes VALUES (1, 'first')").await.expect("insert");
    let token: String = writer.query_one("SHOW shoal.causal_token", &[]).await.expect("token").get(0);
    assert!(token.starts_with("g1:"), "causal token after a write: {token:?}");
    let reader = cluster.connect(follower).await.expect("connect the follower");
    reader.batch_execute("SET shoal.read_consistency = 'follower'").await.expect("follower reads");
    // Without the token the follower may lag (even miss the table): not checked.
    let before = reader.query_one("SELECT count(*) FROM notes", &[]).await.map(|r| r.get::<_, i64>(0));
    println!("follower read without the token: {before:?}");
    reader.execute("SELECT set_config('shoal.read_after', $1, false)", &[&token]).await.expect("set the token");
    let with_token: i64 = reader.query_one("SELECT count(*) FROM notes", &[]).await.expect("read").get(0);
    assert_eq!(with_token, 1, "a follower read after the writer's token sees the write");
    cluster.heal();

    // Every replica shows in shoal.replicas, with its lag.
    let rows = reader
        .query("SELECT group_id, node_id, role, lag FROM shoal.replicas ORDER BY group_id, node_id", &[])
        .await
        .expect("replicas");
    assert_eq!(rows.len(), 6, "two groups × three replicas");
    for row in &rows {
        let role: String = row.get(2);
        assert!(["leader", "follower"].contains(&role.as_str()), "{role}");
        assert!(row.get::<_, Option<i64>>(3).is_some(), "lag is known for a live replica");
    }

    // Bounded staleness on a follower cut off from the others.
    reader
        .batch_execute("SET shoal.read_consistency = 'bounded'; SET shoal.max_staleness = '1s'")
        .await
        .expect("bounded");
    reader.query_one("SELECT count(*) FROM notes", &[]).await.expect("a bounded read while connected");
    cluster.isolate(follower).expect("isolate the follower");
    writer.batch_execute("INSERT INTO notes VALUES (2, 'second')").await.expect("the majority still writes");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    match reader.query_one("SELECT count(*) FROM notes", &[]).await {
        Ok(row) => assert_eq!(row.get::<_, i64>(0), 2, "a bounded read past the bound must include the write"),
        Err(e) => println!("bounded read on the cut-off follower refused: {e}"),
    }
    reader.batch_execute("SET shoal.read_consistency = 'follower'").await.expect("follower reads");
    let stale: i64 = reader.query_one("SELECT count(*) FROM notes", &[]).await.expect("follower read").get(0);
    println!("follower read on the cut-off follower: {stale} rows");
    cluster.heal();
    reader.batch_execute("SET shoal.read_consistency = 'bounded'").await.expect("bounded");
    let healed: i64 = reader.query_one("SELECT count(*) FROM notes", &[]).await.expect("bounded after heal").get(0);
    assert_eq!(healed, 2, "after healing, a bounded read is fresh again");

    // A dead node's replicas show as unreachable.
    cluster.kill9(follower).expect("kill the follower");
    let rows = writer
        .query("SELECT role FROM shoal.replicas WHERE node_id = $1", &[&(follower as i64)])
        .await
        .expect("replicas");
    assert!(rows.iter().all(|r| r.get::<_, String>(0) == "unreachable"), "dead node's replicas");
    let live: bool = writer
        .query_one("SELECT is_live FROM shoal.nodes WHERE node_id = $1", &[&(follower as i64)])
        .await
        .expect("nodes")
        .get(0);
    assert!(!live, "a killed node is not live");
    cluster.restart(follower).await.expect("restart");
    let agreement = cluster.verify_replicas(leader, Duration::from_secs(30)).await.expect("replicas agree");
    println!("{agreement}");
}

/// Invariant: a write whose outcome is unknown (its leader was cut off after
/// proposing it) fails with 40003, never silently, and the error says whether
/// running it again is safe: not for a plain INSERT, yes for an INSERT … ON
/// CONFLICT DO NOTHING naming its key. Neither is retried by Shoal, and
/// neither commits (the new leader never saw them).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_in_doubt_write_says_whether_it_may_be_run_again() {
    let mut cluster = three_nodes(28800).await;
    let leader = cluster.data_leader().await.expect("data group leader");
    let setup = cluster.connect(leader).await.expect("connect the leader");
    setup.batch_execute("CREATE TABLE doubt (id INT PRIMARY KEY, v TEXT)").await.expect("create");
    let plain = cluster.connect(leader).await.expect("connect");
    let keyed = cluster.connect(leader).await.expect("connect");
    cluster.isolate(leader).expect("isolate the leader");
    let plain_write = tokio::spawn(async move { plain.batch_execute("INSERT INTO doubt VALUES (1, 'plain')").await });
    let keyed_write = tokio::spawn(async move {
        keyed.batch_execute("INSERT INTO doubt (id, v) VALUES (2, 'keyed') ON CONFLICT DO NOTHING").await
    });
    // The others elect a new leader meanwhile; the old one learns of it on healing.
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.heal();
    for (write, expect) in [(plain_write, "is not idempotent"), (keyed_write, "is idempotent")] {
        let outcome =
            tokio::time::timeout(Duration::from_secs(30), write).await.expect("the write ends").expect("task");
        let err = outcome.expect_err("a write proposed by a cut-off leader is not acknowledged");
        let db = err.as_db_error().expect("a database error");
        assert_eq!(db.code().code(), "40003", "{db:?}");
        let detail = db.detail().unwrap_or_default();
        assert!(detail.contains(expect), "detail {detail:?} should say the statement {expect}");
    }
    let new_leader = cluster.data_leader().await.expect("new leader");
    let reader = cluster.connect(new_leader).await.expect("connect");
    let rows = reader.query_one("SELECT count(*) FROM doubt", &[]).await.expect("count");
    assert_eq!(rows.get::<_, i64>(0), 0, "neither in-doubt write committed");
    let agreement = cluster.verify_replicas(leader, Duration::from_secs(30)).await.expect("replicas agree");
    println!("{agreement}");
}

/// `(leader, term)` of group `group` (0 meta, 1 data) as node `node` sees it.
async fn raft_view(cluster: &Cluster, node: usize, group: usize) -> (Option<u64>, u64) {
    let status = cluster.status(node).await.expect("status");
    let group = &status["groups"][group];
    (group["leader"].as_u64(), group["term"].as_u64().expect("term"))
}

/// Every node's `(leader, term)` of `group`.
async fn raft_views(cluster: &Cluster, group: usize) -> Vec<(Option<u64>, u64)> {
    let mut views = Vec::new();
    for node in 1..=cluster.len() {
        views.push(raft_view(cluster, node, group).await);
    }
    views
}

/// Invariant: a follower cut off and healed does not depose a healthy
/// leader: the leader and its term are unchanged, and no write through the
/// leader fails. The follower, refused in pre-vote while cut off, never raises
/// its term; without pre-vote it would campaign at ever higher terms, and on
/// healing its refusal of the leader's heartbeats (a higher vote) would make
/// the leader step down. Checked for both groups, and the healed follower
/// catches up. No random choices, so no seed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_healed_follower_does_not_depose_the_leader() {
    let cluster = three_nodes(27800).await;
    println!("wait until every node agrees on each group's leader and term, so nothing settles during the test");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut stable_polls = 0;
    let before = loop {
        let views = [raft_views(&cluster, 0).await, raft_views(&cluster, 1).await];
        let settled = views.iter().all(|v| v[0].0.is_some() && v.iter().all(|view| *view == v[0]));
        stable_polls = if settled { stable_polls + 1 } else { 0 };
        if stable_polls == 5 {
            break views.map(|v| v[0]);
        }
        assert!(Instant::now() < deadline, "the groups did not settle within 30 s: {views:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let [(meta_leader, meta_term), (data_leader, data_term)] = before;
    let (meta_leader, data_leader) = (meta_leader.unwrap() as usize, data_leader.unwrap() as usize);
    let follower = (1..=3).find(|n| *n != meta_leader && *n != data_leader).expect("a follower of both groups");
    println!(
        "meta: leader {meta_leader} term {meta_term}; data: leader {data_leader} term {data_term}; follower {follower}"
    );

    println!("write through the data leader throughout, counting every failure");
    let client = cluster.connect(data_leader).await.expect("connect the data leader");
    client.batch_execute("CREATE TABLE heal (id INT PRIMARY KEY)").await.expect("create");
    let acknowledged = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn({
        let (acknowledged, stop) = (acknowledged.clone(), stop.clone());
        async move {
            let (mut failures, mut slowest) = (Vec::new(), Duration::ZERO);
            let mut id = 0;
            while !stop.load(Ordering::Relaxed) {
                id += 1;
                let started = Instant::now();
                let insert = format!("INSERT INTO heal VALUES ({id})");
                match tokio::time::timeout(Duration::from_secs(5), client.batch_execute(&insert)).await {
                    Ok(Ok(())) => {
                        acknowledged.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Err(e)) => failures.push(format!("insert {id}: {e}")),
                    Err(_) => failures.push(format!("insert {id}: no answer within 5 s")),
                }
                slowest = slowest.max(started.elapsed());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (failures, slowest)
        }
    });

    println!("isolate follower {follower} for 3 s, well past the election timeout (200-400 ms)");
    let before_cut = acknowledged.load(Ordering::Relaxed);
    cluster.isolate(follower).expect("isolate");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cut_off_terms = [raft_view(&cluster, follower, 0).await.1, raft_view(&cluster, follower, 1).await.1];
    let during = acknowledged.load(Ordering::Relaxed) - before_cut;
    println!("heal, and keep writing for 2 s: the follower's links come back");
    cluster.heal();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let (failures, slowest) = writer.await.expect("writer task");
    let after = [raft_views(&cluster, 0).await, raft_views(&cluster, 1).await];
    let acknowledged = acknowledged.load(Ordering::Relaxed);
    println!(
        "follower {follower}'s terms when cut off: meta {}, data {}; every node's (leader, term) after healing: \
         meta {:?}, data {:?}",
        cut_off_terms[0], cut_off_terms[1], after[0], after[1]
    );
    println!("{acknowledged} writes acknowledged ({during} while cut off), slowest {slowest:?}, failed: {failures:?}");

    for (name, expected, views) in [("meta", before[0], &after[0]), ("data", before[1], &after[1])] {
        for (node, view) in (1..).zip(views) {
            assert_eq!(*view, expected, "{name} group on node {node}: (leader, term) changed\n{}", cluster.dump_logs());
        }
    }
    assert!(failures.is_empty(), "writes through the leader failed: {failures:?}");
    assert!(during > 0 && acknowledged > before_cut + during, "writes did not go on while cut off and after healing");

    println!("the healed follower catches up: a linearizable read there sees every write, and replicas agree");
    let reader = cluster.connect(follower).await.expect("connect the healed follower");
    let rows: i64 = reader.query_one("SELECT count(*) FROM heal", &[]).await.expect("read").get(0);
    assert_eq!(rows as u64, acknowledged, "the healed follower sees every acknowledged write");
    let agreement = cluster.verify_replicas(follower, Duration::from_secs(30)).await.expect("replicas agree");
    println!("{agreement}");
}
