//! Workloads: concurrent clients that run seeded operations against any
//! node's PostgreSQL port and record each one in a [`Recorder`](crate::Recorder).
//!
//! ```text
//!   client k (one task, one op at a time)
//!     Session ── connect to node (k + attempt) mod N, retry the next on failure
//!       └─ op: invoke ─▶ SQL with a per-op timeout ─▶ complete(Ok | Failed | Unknown)
//! ```
//!
//! Outcomes follow the rules of [`crate::history`]. A database error is a
//! definite failure unless its SQLSTATE leaves the outcome open:
//! `40003` (statement completion unknown), class `08` (connection), `57`
//! (operator intervention: shutdown, cancel), `58` (system I/O), `53`
//! (resources) and `XX` (internal). A timeout or a broken connection after
//! the request was sent is unknown. A multi-statement transaction that fails
//! before its `COMMIT` was sent is a definite failure: nothing commits
//! without `COMMIT`. After anything but success the session reconnects, so
//! no op inherits a connection in an unknown state.
//!
//! Each workload owns its tables (`kit_*`), creates them idempotently in
//! `setup`, and runs until a deadline; the `*_final` methods read the state
//! after the faults have healed.

mod bank;
mod register;
mod set;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Result};
use tokio::time::Instant;
use tokio_postgres::{Client, NoTls};

pub use bank::BankWorkload;
pub use register::RegisterWorkload;
pub use set::SetWorkload;

use crate::history::{Outcome, Output, Pending};

/// The user Shoal's test nodes accept from loopback clients.
pub const USER: &str = "shoal";

/// The PostgreSQL addresses of a cluster's nodes and the client timeouts.
/// Cheap to clone.
#[derive(Clone, Debug)]
pub struct Endpoints {
    addrs: Arc<Vec<SocketAddr>>,
    /// Longest wait for one operation before its outcome is unknown.
    pub op_timeout: Duration,
    /// Longest wait for one connection attempt.
    pub connect_timeout: Duration,
}

impl Endpoints {
    pub fn new(addrs: Vec<SocketAddr>) -> Endpoints {
        Endpoints {
            addrs: Arc::new(addrs),
            op_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(1),
        }
    }

    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }
}

/// Connects to the node at `addr` and drives the connection on a background
/// task; the whole startup handshake must finish within `timeout`.
pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<Client> {
    let mut config = tokio_postgres::Config::new();
    config.host(addr.ip().to_string()).port(addr.port()).user(USER).dbname("shoal").connect_timeout(timeout);
    let (client, connection) = tokio::time::timeout(timeout, config.connect(NoTls))
        .await
        .map_err(|_| anyhow!("connecting to {addr}: no handshake within {timeout:?}"))?
        .map_err(|e| anyhow!("connecting to {addr}: {e}"))?;
    tokio::spawn(async move {
        // Errors reach the client through its next call.
        let _ = connection.await;
    });
    Ok(client)
}

/// Why an attempt did not succeed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// It certainly took no effect.
    Definite(String),
    /// It may have taken effect.
    Indefinite(String),
}

impl Failure {
    /// Classifies an error of a request that was sent (see the module docs).
    pub fn of(e: &tokio_postgres::Error) -> Failure {
        match e.as_db_error() {
            Some(db) => {
                let code = db.code().code();
                let text = format!("{code} {}", db.message());
                if outcome_unknown(code) {
                    Failure::Indefinite(text)
                } else {
                    Failure::Definite(text)
                }
            }
            None => Failure::Indefinite(format!("connection: {e}")),
        }
    }

    /// Any failure of a transaction before `COMMIT` was sent: it cannot have committed.
    pub fn before_commit(e: &tokio_postgres::Error) -> Failure {
        match Failure::of(e) {
            Failure::Definite(text) | Failure::Indefinite(text) => Failure::Definite(text),
        }
    }
}

/// SQLSTATEs after which the statement may or may not have taken effect.
fn outcome_unknown(code: &str) -> bool {
    code == "40003" || ["08", "53", "57", "58", "XX"].iter().any(|class| code.starts_with(class))
}

/// One client's connection to the cluster.
pub(crate) struct Session {
    endpoints: Endpoints,
    /// Index of the node to try next.
    next: usize,
    client: Option<Client>,
}

impl Session {
    /// A session that starts on node `first` (mod the number of nodes).
    pub(crate) fn new(endpoints: Endpoints, first: usize) -> Session {
        let next = first % endpoints.addrs.len().max(1);
        Session { endpoints, next, client: None }
    }

    /// A connected client, trying the nodes in turn until `until`; `None`
    /// when no node accepted a connection in time.
    pub(crate) async fn client(&mut self, until: Instant) -> Option<&Client> {
        if self.client.as_ref().is_some_and(Client::is_closed) {
            self.client = None;
        }
        while self.client.is_none() {
            if Instant::now() >= until || self.endpoints.addrs.is_empty() {
                return None;
            }
            let addr = self.endpoints.addrs[self.next];
            match connect(addr, self.endpoints.connect_timeout).await {
                Ok(client) => self.client = Some(client),
                Err(_) => {
                    self.next = (self.next + 1) % self.endpoints.addrs.len();
                    // A full round of refusals: the cluster is restarting, do not spin.
                    if self.next == 0 {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        }
        self.client.as_ref()
    }

    /// Records how an op ended, and drops the connection unless it succeeded.
    pub(crate) fn finish(
        &mut self,
        pending: Pending,
        result: Result<Result<Output, Failure>, tokio::time::error::Elapsed>,
    ) -> Outcome {
        let outcome = match result {
            Ok(Ok(output)) => Outcome::Ok(output),
            Ok(Err(Failure::Definite(why))) => Outcome::Failed(why),
            Ok(Err(Failure::Indefinite(why))) => Outcome::Unknown(why),
            Err(_) => Outcome::Unknown(format!("no answer within {:?}", self.endpoints.op_timeout)),
        };
        if !outcome.is_ok() {
            self.client = None;
            self.next = (self.next + 1) % self.endpoints.addrs.len().max(1);
        }
        pending.complete(outcome.clone());
        outcome
    }
}

/// Runs `sql` (idempotent setup) on any node until it succeeds or `timeout` passes.
/// The register, bank and set workloads run together, as every fault
/// scenario does: one setup, one run beside a nemesis, one final read.
#[derive(Clone, Debug, Default)]
pub struct Workloads {
    pub registers: RegisterWorkload,
    pub bank: BankWorkload,
    pub set: SetWorkload,
}

impl Workloads {
    /// Creates the three workloads' tables.
    pub async fn setup(&self, endpoints: &Endpoints) -> Result<()> {
        self.registers.setup(endpoints).await?;
        self.bank.setup(endpoints).await?;
        self.set.setup(endpoints).await
    }

    /// The workloads' tables, each keyed by its first column.
    pub const TABLES: [&'static str; 3] = ["kit_accounts", "kit_registers", "kit_set"];

    /// For a failed agreement check: per table, the rows on which the
    /// nodes differ (read on each node with follower reads, once the nodes
    /// have applied everything).
    pub async fn replica_differences(&self, cluster: &crate::Cluster) -> String {
        use std::collections::BTreeMap;
        let mut out = String::new();
        for table in Self::TABLES {
            // Row key (first column) → node → the row's other columns.
            let mut rows: BTreeMap<i64, BTreeMap<usize, Vec<i64>>> = BTreeMap::new();
            for node in 1..=cluster.len() {
                let read = async {
                    let client = cluster.connect(node).await?;
                    client.batch_execute("SET shoal.read_consistency = 'follower'").await?;
                    Ok::<_, anyhow::Error>(client.query(&format!("SELECT * FROM {table} ORDER BY 1"), &[]).await?)
                };
                match read.await {
                    Ok(result) => {
                        for row in result {
                            let values: Vec<i64> = (1..row.len()).map(|i| row.get(i)).collect();
                            rows.entry(row.get(0)).or_default().insert(node, values);
                        }
                    }
                    Err(e) => out.push_str(&format!("{table} on node {node}: not read: {e:#}\n")),
                }
            }
            let differing: Vec<String> = rows
                .iter()
                .filter(|(_, by_node)| {
                    by_node.len() != cluster.len() || by_node.values().any(|v| Some(v) != by_node.values().next())
                })
                .map(|(key, by_node)| format!("key {key}: {by_node:?}"))
                .collect();
            out.push_str(&format!("{table}: {} keys, {} differ: {differing:?}\n", rows.len(), differing.len()));
        }
        out
    }

    /// Runs the three workloads until `until` while `nemesis` acts on `cluster`.
    pub async fn run_under(
        &self,
        endpoints: &Endpoints,
        recorder: &crate::Recorder,
        seed: crate::Seed,
        until: Instant,
        nemesis: &crate::Nemesis,
        cluster: &mut crate::Cluster,
    ) -> Result<()> {
        let (_, _, set_run, nemesis_run) = tokio::join!(
            self.registers.run(endpoints, recorder, seed.derive(1), until),
            self.bank.run(endpoints, recorder, seed.derive(2), until),
            self.set.run(endpoints, recorder, until),
            nemesis.run(cluster),
        );
        set_run?;
        nemesis_run
    }

    /// Reads the final state into the history; returns the set's members.
    pub async fn read_final(
        &self,
        endpoints: &Endpoints,
        recorder: &crate::Recorder,
    ) -> Result<std::collections::BTreeSet<i64>> {
        self.registers.read_final(endpoints, recorder).await?;
        self.bank.read_final(endpoints, recorder).await?;
        self.set.read_final(endpoints).await
    }
}

/// Runs `clients` concurrent client tasks (`client(k)` for k in 0..clients)
/// and waits for all of them. A panicking client has already recorded its
/// pending operation as unknown, so its join error carries no news.
pub(crate) async fn run_clients<F, Fut>(clients: u64, client: F)
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let tasks: Vec<_> = (0..clients).map(|k| tokio::spawn(client(k))).collect();
    for task in tasks {
        let _ = task.await;
    }
}

pub(crate) async fn setup_sql(endpoints: &Endpoints, sql: &str, timeout: Duration) -> Result<()> {
    let until = Instant::now() + timeout;
    let mut session = Session::new(endpoints.clone(), 0);
    let mut last_error = String::from("no node accepted a connection");
    while Instant::now() < until {
        let Some(client) = session.client(until).await else { break };
        match tokio::time::timeout(endpoints.op_timeout * 5, client.batch_execute(sql)).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => last_error = e.to_string(),
            Err(_) => last_error = "timed out".into(),
        }
        session.client = None;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(anyhow!("setup did not succeed within {timeout:?} ({last_error}): {sql}"))
}

/// How long `setup` and the `*_final` reads keep retrying.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_that_leave_the_outcome_open() {
        for code in ["40003", "08006", "57P01", "57014", "58030", "53100", "XX000"] {
            assert!(outcome_unknown(code), "{code}");
        }
        for code in ["23505", "40001", "25P02", "42601", "0A000", "22012"] {
            assert!(!outcome_unknown(code), "{code}");
        }
    }

    #[tokio::test]
    async fn a_session_gives_up_at_its_deadline_when_no_node_listens() {
        // Bind and release a port so nothing listens there.
        let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let mut session = Session::new(Endpoints::new(vec![dead]), 0);
        let started = Instant::now();
        assert!(session.client(started + Duration::from_millis(200)).await.is_none());
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
