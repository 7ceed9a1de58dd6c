//! Crash test: every acknowledged write survives SIGKILL, and no partial
//! transaction is ever visible.
//!
//! Each round runs a seeded workload of concurrent clients against one node:
//!
//! ```text
//!   client k ──┬─ autocommit:  INSERT INTO single (id, client) VALUES (…)
//!              └─ transaction: BEGIN
//!                              INSERT INTO txrows (id, txn) VALUES (…, T)   × 3
//!                              UPDATE counter SET n = n + 1 WHERE id = 1
//!                              COMMIT
//! ```
//!
//! and SIGKILLs the server at a seeded moment, restarts it on the same data
//! directory and checks:
//! 1. every acknowledged single row is present, and every present row was attempted;
//! 2. every transaction has all 3 rows or none, and every acknowledged one has all 3;
//! 3. `counter.n` equals the number of transactions present;
//! 4. what an earlier round found (present or absent) has not changed.
//!
//! The data directory is reused across rounds, so later rounds also recover
//! logs that earlier crashes left behind. `SHOAL_SEED` replays a run (the seed
//! is printed); `SHOAL_CRASH_ROUNDS` sets the number of rounds (default 3).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio_postgres::Client;

use common::Server;

/// Concurrent clients per round.
const CLIENTS: u64 = 4;
/// Rows per transaction.
const TXN_ROWS: u64 = 3;
/// Upper bound on operations per client per round (the kill usually comes first).
const MAX_OPS_PER_CLIENT: u64 = 100_000;
/// How long clients may take to notice the dead server and stop.
const CLIENT_STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// What the clients learned about their writes.
#[derive(Default, Clone)]
struct History {
    singles_attempted: BTreeSet<i64>,
    singles_acked: BTreeSet<i64>,
    txns_attempted: BTreeSet<i64>,
    txns_acked: BTreeSet<i64>,
}

/// What a check found on disk, carried into the next round.
#[derive(Default)]
struct Observed {
    singles: BTreeSet<i64>,
    txns: BTreeSet<i64>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_sigkill() {
    let seed: u64 = match std::env::var("SHOAL_SEED") {
        Ok(s) => s.parse().expect("SHOAL_SEED must be an unsigned integer"),
        Err(_) => rand::random(),
    };
    let rounds: u64 =
        std::env::var("SHOAL_CRASH_ROUNDS").ok().map(|s| s.parse().expect("SHOAL_CRASH_ROUNDS")).unwrap_or(3);
    println!("seed = {seed} (replay with SHOAL_SEED={seed}), rounds = {rounds}");
    let mut rng = StdRng::seed_from_u64(seed);

    let mut server = Server::start().await;
    let setup = server.connect().await;
    setup
        .batch_execute(
            "CREATE TABLE single (id bigint PRIMARY KEY, client int NOT NULL); \
             CREATE TABLE txrows (id bigint PRIMARY KEY, txn bigint NOT NULL); \
             CREATE TABLE counter (id int PRIMARY KEY, n bigint NOT NULL); \
             INSERT INTO counter VALUES (1, 0);",
        )
        .await
        .expect("create schema");
    drop(setup);

    let history = Arc::new(Mutex::new(History::default()));
    let mut observed = Observed::default();
    for round in 0..rounds {
        let kill_after = Duration::from_millis(rng.gen_range(200..1_500));
        println!(
            "round {round}: {CLIENTS} clients, SIGKILL after {kill_after:?}, because a crash may come at any moment"
        );
        let mut clients = Vec::new();
        for k in 0..CLIENTS {
            let client = server.connect().await;
            let client_seed = rng.gen::<u64>();
            let history = Arc::clone(&history);
            clients.push(tokio::spawn(run_client(client, round, k, client_seed, history)));
        }
        tokio::time::sleep(kill_after).await;
        server.kill9();
        for task in clients {
            tokio::time::timeout(CLIENT_STOP_TIMEOUT, task)
                .await
                .expect("a client did not notice the killed server")
                .expect("client task panicked");
        }
        {
            let h = history.lock().unwrap();
            println!(
                "round {round}: acknowledged {} single rows and {} transactions so far",
                h.singles_acked.len(),
                h.txns_acked.len()
            );
        }

        println!("round {round}: restarting on the same data dir to check what survived");
        server.restart().await;
        let client = server.connect().await;
        // The clients have stopped; check against a snapshot of what they learned.
        let snapshot = history.lock().unwrap().clone();
        observed = check(&client, &snapshot, &observed, round).await;
    }
}

/// One client: a seeded mix of autocommit inserts and transactions until the
/// server dies or the op budget runs out. Ids are unique across rounds.
async fn run_client(client: Client, round: u64, k: u64, seed: u64, history: Arc<Mutex<History>>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let base = ((round * CLIENTS + k) * 10_000_000) as i64;
    for op in 0..MAX_OPS_PER_CLIENT as i64 {
        let id = base + op;
        if rng.gen_bool(0.5) {
            history.lock().unwrap().singles_attempted.insert(id);
            let sql = format!("INSERT INTO single (id, client) VALUES ({id}, {k})");
            match client.simple_query(&sql).await {
                Ok(_) => {
                    history.lock().unwrap().singles_acked.insert(id);
                }
                Err(_) => return,
            }
        } else {
            // The txn id doubles as the first row id; its rows follow it.
            history.lock().unwrap().txns_attempted.insert(id);
            let mut statements = vec!["BEGIN".to_string()];
            for r in 0..TXN_ROWS as i64 {
                statements.push(format!("INSERT INTO txrows (id, txn) VALUES ({}, {id})", id * 4 + r));
            }
            statements.push("UPDATE counter SET n = n + 1 WHERE id = 1".to_string());
            statements.push("COMMIT".to_string());
            for sql in &statements {
                if client.simple_query(sql).await.is_err() {
                    return;
                }
            }
            history.lock().unwrap().txns_acked.insert(id);
        }
    }
}

async fn check(client: &Client, h: &History, before: &Observed, round: u64) -> Observed {
    let singles: BTreeSet<i64> = query_ids(client, "SELECT id FROM single").await;
    let missing: Vec<_> = h.singles_acked.difference(&singles).collect();
    assert!(missing.is_empty(), "round {round}: acknowledged single rows lost: {missing:?}");
    let phantom: Vec<_> = singles.difference(&h.singles_attempted).collect();
    assert!(phantom.is_empty(), "round {round}: rows that were never inserted: {phantom:?}");

    let mut txns: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for row in client.query("SELECT txn, id FROM txrows", &[]).await.expect("read txrows") {
        txns.entry(row.get(0)).or_default().push(row.get(1));
    }
    for (txn, rows) in &txns {
        assert!(h.txns_attempted.contains(txn), "round {round}: transaction {txn} was never attempted");
        assert_eq!(rows.len() as u64, TXN_ROWS, "round {round}: partial transaction {txn} visible: rows {rows:?}");
    }
    let present: BTreeSet<i64> = txns.keys().copied().collect();
    let lost: Vec<_> = h.txns_acked.difference(&present).collect();
    assert!(lost.is_empty(), "round {round}: acknowledged transactions lost: {lost:?}");

    let n: i64 = client.query_one("SELECT n FROM counter WHERE id = 1", &[]).await.expect("read counter").get(0);
    assert_eq!(n, present.len() as i64, "round {round}: counter disagrees with the transactions present");

    // Outcomes decided by an earlier round's check must not change.
    for (what, then, now) in [("single row", &before.singles, &singles), ("transaction", &before.txns, &present)] {
        let gone: Vec<_> = then.difference(now).collect();
        assert!(gone.is_empty(), "round {round}: {what}s seen after an earlier crash disappeared: {gone:?}");
    }
    let earlier_ids = (round * CLIENTS * 10_000_000) as i64;
    let appeared: Vec<_> = singles.iter().filter(|id| **id < earlier_ids && !before.singles.contains(id)).collect();
    assert!(appeared.is_empty(), "round {round}: single rows of earlier rounds appeared late: {appeared:?}");
    let appeared: Vec<_> = present.iter().filter(|id| **id < earlier_ids && !before.txns.contains(id)).collect();
    assert!(appeared.is_empty(), "round {round}: transactions of earlier rounds appeared late: {appeared:?}");

    println!(
        "round {round}: ok — {} single rows ({} acknowledged), {} transactions ({} acknowledged), counter = {n}",
        singles.len(),
        h.singles_acked.len(),
        present.len(),
        h.txns_acked.len()
    );
    Observed { singles, txns: present }
}

async fn query_ids(client: &Client, sql: &str) -> BTreeSet<i64> {
    client
        .query(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {}", common::render_error(&e)))
        .iter()
        .map(|r| r.get(0))
        .collect()
}
