//! A local cluster of real `shoal server` processes, with a fault proxy on
//! every link between them.
//!
//! ```text
//!   <tempdir>/node-1/{data/, server.log}   pg, rpc, http ports from the caller's range
//!   <tempdir>/node-2/...                   started with --join <node 1 rpc>
//!
//!   node 1 ──dials──▶ proxy(1→2) ──▶ node 2 rpc        one FaultProxy per ordered pair;
//!   node 2 ──dials──▶ proxy(2→1) ──▶ node 1 rpc        node i learns its dial addresses from
//!                                                      SHOAL_PEER_ADDRS="2=127.0.0.1:P12,3=…"
//! ```
//!
//! Node ids are 1-based cluster indexes, the ids the server assigns in join
//! order (node 1 bootstraps, the others join one at a time). Messages from
//! node a to node b travel as requests on link a→b and as responses on link
//! b→a, so [`Cluster::one_way`] drops both; [`Cluster::partition`] is one-way
//! in both directions.
//!
//! A node is ready when its `/api/status` answers and its PostgreSQL port
//! completes a startup handshake. Every child is SIGKILLed when the cluster
//! is dropped, even while the test panics (and, on Linux, when the test
//! process dies: see `die_with_parent`); a panicking test prints the tail
//! of every node's log.

mod http;
mod node;
mod ports;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Context, Result};

use node::NodeProcess;
pub use node::{NodeInfo, PEER_ADDRS_ENV};
use ports::PortLease;

use crate::proxy::{Direction, FaultProxy, LinkMode};
use crate::workload::Endpoints;

/// 1-based index of a node in its cluster.
pub type NodeId = usize;

/// Most nodes a cluster starts (each node pair gets two proxies).
pub const MAX_NODES: usize = 9;

/// How to start a [`Cluster`].
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// The `shoal` binary (`env!("CARGO_BIN_EXE_shoal")` in the root package's tests).
    pub binary: PathBuf,
    pub nodes: usize,
    /// First port of the range this cluster may use.
    pub port_base: u16,
    /// Size of the range (3 ports per node, 1 per ordered node pair).
    pub port_count: u16,
    /// How long a starting node may take to become ready.
    pub ready_timeout: Duration,
    /// Route node-to-node traffic through fault proxies (needs at least 2 nodes).
    pub link_proxies: bool,
    /// More `shoal server` arguments for every node.
    pub extra_args: Vec<String>,
}

impl ClusterConfig {
    pub fn new(binary: impl Into<PathBuf>, nodes: usize, port_base: u16) -> ClusterConfig {
        ClusterConfig {
            binary: binary.into(),
            nodes,
            port_base,
            port_count: 1000,
            ready_timeout: Duration::from_secs(30),
            link_proxies: nodes > 1,
            extra_args: Vec::new(),
        }
    }
}

/// Running nodes, their links, and the directory that holds their files.
pub struct Cluster {
    config: ClusterConfig,
    nodes: Vec<NodeProcess>,
    /// `(from, to)` → the proxy `from` dials to reach `to`.
    links: BTreeMap<(NodeId, NodeId), FaultProxy>,
    _ports: PortLease,
    /// Declared last: removed only after `Drop::drop` has killed the children.
    dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts node 1, then each other node joining node 1, one at a time,
    /// each waited for until ready.
    pub async fn start(config: ClusterConfig) -> Result<Cluster> {
        remember_panic_messages();
        ensure!((1..=MAX_NODES).contains(&config.nodes), "a cluster has 1 to {MAX_NODES} nodes");
        ensure!(config.binary.is_file(), "no shoal binary at {}", config.binary.display());
        ensure!(!config.link_proxies || config.nodes > 1, "link proxies need at least 2 nodes");
        let dir = tempfile::Builder::new().prefix("shoal-cluster-").tempdir().context("creating the cluster dir")?;
        let mut ports = PortLease::new(config.port_base, config.port_count);
        let localhost = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));

        let mut infos = Vec::new();
        for id in 1..=config.nodes {
            let node_dir = dir.path().join(format!("node-{id}"));
            std::fs::create_dir_all(&node_dir)?;
            infos.push(NodeInfo {
                id,
                pg_addr: localhost(ports.take()?),
                rpc_addr: localhost(ports.take()?),
                http_addr: localhost(ports.take()?),
                data_dir: node_dir.join("data"),
                log_path: node_dir.join("server.log"),
            });
        }
        let mut links = BTreeMap::new();
        if config.link_proxies {
            for from in 1..=config.nodes {
                for to in (1..=config.nodes).filter(|to| *to != from) {
                    let proxy = FaultProxy::start_on(ports.take_listener()?, infos[to - 1].rpc_addr)
                        .with_context(|| format!("starting the proxy of link {from}→{to}"))?;
                    links.insert((from, to), proxy);
                }
            }
        }
        let nodes = infos
            .into_iter()
            .map(|info| {
                let peer_addrs: Vec<String> = links
                    .iter()
                    .filter(|((from, _), _)| *from == info.id)
                    .map(|((_, to), proxy)| format!("{to}={}", proxy.local_addr()))
                    .collect();
                NodeProcess::new(info, peer_addrs.join(","))
            })
            .collect();
        let mut cluster = Cluster { config, nodes, links, _ports: ports, dir };
        for id in 1..=cluster.len() {
            let join = (id > 1).then(|| cluster.nodes[0].info.rpc_addr);
            cluster.launch(id, join).await?;
        }
        eprintln!("shoal-testkit: {} node(s) ready in {}", cluster.len(), cluster.dir.path().display());
        Ok(cluster)
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Always false: a cluster has at least one node.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Addresses and paths of node `id`.
    pub fn node(&self, id: NodeId) -> Result<&NodeInfo> {
        self.get(id).map(|n| &n.info)
    }

    /// Every node's PostgreSQL address, for workload clients.
    pub fn endpoints(&self) -> Endpoints {
        Endpoints::new(self.nodes.iter().map(|n| n.info.pg_addr).collect())
    }

    /// A client session on node `id`.
    pub async fn connect(&self, id: NodeId) -> Result<tokio_postgres::Client> {
        crate::workload::connect(self.node(id)?.pg_addr, Duration::from_secs(10)).await
    }

    /// Node `id`'s `/api/status` document.
    pub async fn status(&self, id: NodeId) -> Result<serde_json::Value> {
        self.get(id)?.status().await
    }

    /// The node that leads the data group (group 1) now, as the first
    /// running, unpaused node that knows a leader reports it.
    pub async fn data_leader(&mut self) -> Result<NodeId> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            for id in 1..=self.len() {
                let node = &mut self.nodes[id - 1];
                if !node.is_running() || node.is_paused() {
                    continue;
                }
                if let Ok(status) = node.status().await {
                    if let Some(leader) = status["groups"][1]["leader"].as_u64() {
                        if (1..=self.len() as u64).contains(&leader) {
                            return Ok(leader as NodeId);
                        }
                    }
                }
            }
            ensure!(std::time::Instant::now() < deadline, "no node reported a data-group leader within 10 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The process id of node `id`, if it is running.
    pub fn pid(&self, id: NodeId) -> Result<Option<u32>> {
        Ok(self.get(id)?.pid())
    }

    /// Whether node `id`'s process is alive (paused counts as alive).
    pub fn is_running(&mut self, id: NodeId) -> Result<bool> {
        Ok(self.get_mut(id)?.is_running())
    }

    /// SIGKILLs node `id` (no-op if it is not running).
    pub fn kill9(&mut self, id: NodeId) -> Result<()> {
        self.get_mut(id)?.kill9();
        Ok(())
    }

    /// SIGSTOPs node `id`: its sockets stay open but it answers nothing.
    pub fn pause(&mut self, id: NodeId) -> Result<()> {
        self.get_mut(id)?.pause()
    }

    /// SIGCONTs node `id`.
    pub fn resume(&mut self, id: NodeId) -> Result<()> {
        self.get_mut(id)?.resume()
    }

    /// Kills node `id` if needed and starts it again on the same data
    /// directory and ports; returns when it is ready.
    pub async fn restart(&mut self, id: NodeId) -> Result<()> {
        self.get_mut(id)?.kill9();
        let join = (id > 1).then(|| self.nodes[0].info.rpc_addr);
        self.launch(id, join).await
    }

    /// Kills node `id`, deletes its data directory and starts it empty,
    /// joining the first other node that is running (a 1-node cluster starts
    /// a new cluster instead).
    pub async fn wipe(&mut self, id: NodeId) -> Result<()> {
        let node = self.get_mut(id)?;
        node.kill9();
        match std::fs::remove_dir_all(&node.info.data_dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("wiping {}", node.info.data_dir.display()));
            }
            _ => {}
        }
        let mut join = None;
        for other in (1..=self.len()).filter(|other| *other != id) {
            let node = &mut self.nodes[other - 1];
            if node.is_running() && !node.is_paused() {
                join = Some(node.info.rpc_addr);
                break;
            }
        }
        ensure!(join.is_some() || self.len() == 1, "wipe({id}): no running node to join");
        self.launch(id, join).await
    }

    /// The proxy node `from` dials to reach node `to`.
    pub fn link(&self, from: NodeId, to: NodeId) -> Result<&FaultProxy> {
        self.links.get(&(from, to)).ok_or_else(|| {
            anyhow!("no link {from}→{to}: the cluster has {} nodes, link proxies {}", self.len(), self.link_state())
        })
    }

    /// Drops every message from node `from` to node `to`; the other way still works.
    pub fn one_way(&self, from: NodeId, to: NodeId) -> Result<()> {
        self.link(from, to)?.set(Direction::ToUpstream, LinkMode::Drop);
        self.link(to, from)?.set(Direction::ToClient, LinkMode::Drop);
        Ok(())
    }

    /// No message crosses between a node of `side_a` and a node of `side_b`.
    pub fn partition(&self, side_a: &[NodeId], side_b: &[NodeId]) -> Result<()> {
        for a in side_a {
            ensure!(!side_b.contains(a), "node {a} is on both sides of the partition");
        }
        for &a in side_a {
            for &b in side_b {
                self.one_way(a, b)?;
                self.one_way(b, a)?;
            }
        }
        Ok(())
    }

    /// Cuts node `id` off from every other node.
    pub fn isolate(&self, id: NodeId) -> Result<()> {
        self.get(id)?;
        let others: Vec<NodeId> = (1..=self.len()).filter(|other| *other != id).collect();
        self.partition(&[id], &others)
    }

    /// Delays every message between nodes `a` and `b`, both ways, by `delay`.
    pub fn delay_link(&self, a: NodeId, b: NodeId, delay: Duration) -> Result<()> {
        self.link(a, b)?.set_both(LinkMode::Delay(delay));
        self.link(b, a)?.set_both(LinkMode::Delay(delay));
        Ok(())
    }

    /// Every link passes again.
    pub fn heal(&self) {
        for proxy in self.links.values() {
            proxy.heal();
        }
    }

    /// Checks that every replica of every group holds the same data
    /// (`shoal.verify()` through node `via`). Replicas that cannot answer yet
    /// (still catching up) are asked again until `timeout`; any disagreement
    /// fails at once. Returns a one-line summary.
    pub async fn verify_replicas(&self, via: NodeId, timeout: Duration) -> Result<String> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let attempt = async {
                let client = self.connect(via).await?;
                let rows = client
                    .query(
                        "SELECT group_id, node_id, log_index, agrees, checksum IS NOT NULL, detail \
                         FROM shoal.verify() ORDER BY group_id, node_id",
                        &[],
                    )
                    .await?;
                Ok::<_, anyhow::Error>(
                    rows.iter()
                        .map(|r| {
                            (r.get::<_, i64>(0), r.get::<_, i64>(1), r.get::<_, i64>(2), r.get(3), r.get(4), r.get(5))
                        })
                        .collect::<Vec<(i64, i64, i64, bool, bool, String)>>(),
                )
            };
            let describe = |rows: &[(i64, i64, i64, bool, bool, String)]| {
                rows.iter()
                    .map(|(g, n, i, _, _, d)| format!("group {g} node {n} @{i}: {d}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            let problem = match attempt.await {
                Ok(rows) if rows.iter().any(|r| !r.3) => bail!("replicas disagree: {}", describe(&rows)),
                Ok(rows) if !rows.is_empty() && rows.iter().all(|r| r.4) => {
                    return Ok(format!("{} replicas agree: {}", rows.len(), describe(&rows)));
                }
                Ok(rows) => format!("not every replica answered: {}", describe(&rows)),
                Err(e) => format!("{e:#}"),
            };
            if std::time::Instant::now() >= deadline {
                bail!("consistency check incomplete after {timeout:?}: {problem}");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// The tail of every node's log, for a failing test's output.
    pub fn dump_logs(&self) -> String {
        let mut out = String::new();
        for node in &self.nodes {
            out.push_str(&format!(
                "===== node {} log ({}) =====\n{}\n",
                node.info.id,
                node.info.log_path.display(),
                node.log_tail()
            ));
        }
        out
    }

    fn get(&self, id: NodeId) -> Result<&NodeProcess> {
        let len = self.len();
        id.checked_sub(1).and_then(|i| self.nodes.get(i)).ok_or_else(|| anyhow!("no node {id} (nodes are 1..={len})"))
    }

    fn get_mut(&mut self, id: NodeId) -> Result<&mut NodeProcess> {
        let len = self.len();
        id.checked_sub(1)
            .and_then(|i| self.nodes.get_mut(i))
            .ok_or_else(|| anyhow!("no node {id} (nodes are 1..={len})"))
    }

    fn link_state(&self) -> &'static str {
        if self.config.link_proxies {
            "on"
        } else {
            "off"
        }
    }

    /// Spawns node `id` and waits until it is ready. With link proxies, the
    /// node must report the id its peers route to it by.
    async fn launch(&mut self, id: NodeId, join: Option<SocketAddr>) -> Result<()> {
        let config = &self.config;
        let node = &mut self.nodes[id - 1];
        node.spawn(&config.binary, join, &config.extra_args)?;
        let status = node.wait_ready(config.ready_timeout).await?;
        if config.link_proxies {
            let reported = status.get("node_id").and_then(serde_json::Value::as_u64);
            if reported != Some(id as u64) {
                bail!(
                    "node {id} reports node_id {reported:?}: {PEER_ADDRS_ENV} routes by cluster index, \
                     so nodes must get ids 1..N in join order"
                );
            }
        }
        Ok(())
    }
}

thread_local! {
    /// The message of this thread's latest panic, for [`Cluster`]'s `Drop`.
    static LAST_PANIC: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Installs (once per process) a panic hook that keeps each panic's
/// location and message for the panicking thread, then runs the hook that
/// was there before (which prints it as usual).
fn remember_panic_messages() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let location = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(a panic without a message)".to_string());
            let _ = LAST_PANIC.try_with(|last| *last.borrow_mut() = Some(format!("at {location}: {message}")));
            previous(info);
        }));
    });
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill9();
        }
        if std::thread::panicking() {
            eprintln!("{}", self.dump_logs());
            // The logs bury the panic message printed before them; output
            // is often read from its end (CI excerpts), so say it again.
            if let Some(message) = LAST_PANIC.with(|last| last.borrow_mut().take()) {
                eprintln!("===== the test failed (message repeated after the node logs) =====\n{message}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// A stand-in for the `shoal` binary: a shell script with `body`.
    fn fake_binary(dir: &std::path::Path, body: &str) -> PathBuf {
        let path = dir.join("fake-shoal");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// A port range no other test of this crate uses: starts at a port the OS just handed out.
    fn port_base() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    }

    /// A cluster dropped while its test panics repeats the panic's message
    /// after the node logs; this checks the message is kept for that.
    #[test]
    fn a_panic_message_is_kept_for_the_cluster_drop() {
        remember_panic_messages();
        let caught = std::panic::catch_unwind(|| panic!("register 3 read a stale value {}", 7));
        assert!(caught.is_err());
        let kept = LAST_PANIC.with(|last| last.borrow_mut().take()).expect("the message was kept");
        assert!(kept.contains("register 3 read a stale value 7") && kept.contains("cluster/mod.rs"), "{kept}");
    }

    #[tokio::test]
    async fn a_node_that_exits_at_startup_fails_the_start_with_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let binary = fake_binary(dir.path(), "echo \"fake server got: $*\"; echo boom >&2; exit 3");
        let err = Cluster::start(ClusterConfig::new(binary, 1, port_base())).await.err().expect("start must fail");
        let text = format!("{err:#}");
        assert!(text.contains("node 1 exited during startup"), "{text}");
        assert!(text.contains("boom"), "stderr is in the log: {text}");
        assert!(text.contains("fake server got: server --data"), "stdout and the flags are in the log: {text}");
        assert!(!text.contains("--join"), "node 1 bootstraps: {text}");
    }

    #[tokio::test]
    async fn nodes_learn_their_proxied_peer_addresses_from_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let binary = fake_binary(dir.path(), "echo \"peers=$SHOAL_PEER_ADDRS.\"; exit 1");
        let err = Cluster::start(ClusterConfig::new(binary, 3, port_base())).await.err().expect("start must fail");
        let text = format!("{err:#}");
        let line = text.lines().find(|l| l.starts_with("peers=")).unwrap_or_else(|| panic!("{text}"));
        let peers: Vec<&str> = line["peers=".len()..line.len() - 1].split(',').collect();
        assert_eq!(peers.len(), 2, "{line}");
        for (peer, id) in peers.iter().zip(["2", "3"]) {
            let (peer_id, addr) = peer.split_once('=').unwrap();
            assert_eq!(peer_id, id);
            assert!(addr.parse::<SocketAddr>().is_ok_and(|a| a.ip().is_loopback()), "{line}");
        }
    }

    #[tokio::test]
    async fn a_node_that_never_answers_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let binary = fake_binary(dir.path(), "exec sleep 30");
        let config =
            ClusterConfig { ready_timeout: Duration::from_millis(300), ..ClusterConfig::new(binary, 1, port_base()) };
        let err = Cluster::start(config).await.err().expect("start must fail");
        assert!(format!("{err:#}").contains("node 1 not ready after 300ms"), "{err:#}");
    }

    #[tokio::test]
    async fn bad_configurations_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let binary = fake_binary(dir.path(), "exit 0");
        for (config, expected) in [
            (ClusterConfig::new(&binary, 0, port_base()), "1 to 9 nodes"),
            (ClusterConfig::new(dir.path().join("missing"), 1, port_base()), "no shoal binary"),
            (ClusterConfig { link_proxies: true, ..ClusterConfig::new(&binary, 1, port_base()) }, "at least 2 nodes"),
        ] {
            let err = Cluster::start(config).await.err().expect("start must fail");
            assert!(err.to_string().contains(expected), "{err}");
        }
    }
}
