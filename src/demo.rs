//! `shoal demo`: a local three-node cluster with sample data, a short tour,
//! and a failover as it happens.
//!
//! The nodes run in this process but talk to each other over TCP exactly as
//! separate servers do (node 1 founds the cluster, the others `--join` it).
//! The sample data is loaded through the PostgreSQL protocol, as a client
//! would, so the demo exercises the whole path: wire → SQL → Raft → SQLite.
//! Node *i* listens on the given ports plus `10·(i−1)`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use shoal_server::ServerConfig;

const SAMPLE_SQL: &str = "
CREATE TABLE IF NOT EXISTS users (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    email VARCHAR(120) UNIQUE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
) WITH (shard_key = 'id', shards = 4);
CREATE TABLE IF NOT EXISTS orders (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id),
    amount NUMERIC(10,2) NOT NULL CHECK (amount > 0),
    status TEXT NOT NULL DEFAULT 'new',
    placed_at DATE NOT NULL
) WITH (shard_key = 'user_id', shards = 4);
CREATE INDEX IF NOT EXISTS orders_user_idx ON orders (user_id);
";

const TOUR: [(&str, &str); 6] = [
    ("Orders per user", "SELECT u.name, count(o.id) AS orders, sum(o.amount) AS total FROM users u LEFT JOIN orders o ON o.user_id = u.id GROUP BY u.name ORDER BY total DESC NULLS LAST"),
    ("Running total by day", "SELECT placed_at, sum(amount) AS day_total, sum(sum(amount)) OVER (ORDER BY placed_at) AS running FROM orders GROUP BY placed_at ORDER BY placed_at LIMIT 5"),
    ("Replication state of this node", "SELECT group_id, kind, term, applied_index, log_size_bytes FROM shoal.groups ORDER BY group_id"),
    ("Tables", "SELECT table_name, kind, shard_key, shard_count FROM shoal.tables ORDER BY table_name"),
    ("Shards of orders (hash ranges; all in the data group today)", "SELECT shard, hash_min, hash_max, group_id FROM shoal.shards WHERE table_name = 'orders' ORDER BY shard"),
    ("A query that fixes the shard key reaches one shard", "EXPLAIN SELECT amount, status FROM orders WHERE user_id = 3"),
];

/// One in-process node of the demo cluster.
struct DemoNode {
    config: ServerConfig,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<shoal_common::Result<()>>>,
}

impl DemoNode {
    fn config(data_dir: &Path, index: u16, pg: SocketAddr, http: SocketAddr, join: Option<SocketAddr>) -> ServerConfig {
        let offset = 10 * index;
        let at = |addr: SocketAddr, extra: u16| SocketAddr::new(addr.ip(), addr.port().wrapping_add(offset + extra));
        ServerConfig {
            data_dir: data_dir.join(format!("node{}", index + 1)),
            pg_addr: at(pg, 0),
            rpc_addr: at(pg, 1),
            http_addr: at(http, 0),
            join,
            ..ServerConfig::default()
        }
    }

    async fn start(config: ServerConfig) -> anyhow::Result<DemoNode> {
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(shoal_server::run(config.clone(), async move {
            let _ = stop_rx.await;
        }));
        let node = DemoNode { config, stop: Some(stop_tx), task: Some(task) };
        // Ready once it answers a query (a joiner first becomes a replica).
        connect(node.config.pg_addr).await?;
        Ok(node)
    }

    async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await?.map_err(|e| anyhow::anyhow!("{}", e.message))?;
        }
        Ok(())
    }
}

/// Runs the demo.
pub async fn run(
    data: Option<PathBuf>,
    pg: SocketAddr,
    http: SocketAddr,
    nodes: u16,
    exit: bool,
) -> anyhow::Result<()> {
    let (data_dir, _temp) = match data {
        Some(dir) => (dir, None),
        None => {
            let temp = tempfile::Builder::new().prefix("shoal-demo-").tempdir()?;
            (temp.path().to_path_buf(), Some(temp))
        }
    };
    let nodes = nodes.max(1);
    let mut cluster = Vec::new();
    let first = DemoNode::config(&data_dir, 0, pg, http, None);
    let seed = first.rpc_addr;
    cluster.push(DemoNode::start(first).await?);
    for i in 1..nodes {
        // A restarted demo finds each node's identity on disk and skips the join.
        cluster.push(DemoNode::start(DemoNode::config(&data_dir, i, pg, http, Some(seed))).await?);
    }
    let client = connect(pg).await?;
    client.batch_execute(SAMPLE_SQL).await?;
    let existing = client.query_one("SELECT count(*) FROM users", &[]).await?.get::<_, i64>(0);
    if existing == 0 {
        load_sample_data(&client).await?;
    }
    println!("Shoal demo: {nodes} node(s), data in {}\n", data_dir.display());
    // The tour reads through the last node: any node answers any query.
    let reader = connect(cluster[cluster.len() - 1].config.pg_addr).await?;
    for (title, sql) in TOUR {
        println!("-- {title}\n{sql};");
        print!("{}", crate::shell::render(&reader.simple_query(sql).await?));
        println!();
    }
    drop(reader);
    if nodes >= 3 {
        failover(&mut cluster).await?;
    }
    println!("Connect with:  psql \"host={} port={} user=shoal dbname=shoal\"", pg.ip(), pg.port());
    for node in cluster.iter().skip(1) {
        println!(
            "          or:  psql \"host={} port={} user=shoal dbname=shoal\"",
            node.config.pg_addr.ip(),
            node.config.pg_addr.port()
        );
    }
    println!("          or:  cargo run --release -- sql --port {}", pg.port());
    println!("Status:        http://{http}/api/status   Metrics: http://{http}/metrics");
    if !exit {
        println!("\nPress Ctrl-C to stop.");
        let _ = tokio::signal::ctrl_c().await;
    }
    drop(client);
    for node in cluster.iter_mut().rev() {
        node.stop().await?;
    }
    Ok(())
}

/// Stops the data group's leader, times how long until another node takes a
/// write, then brings the old leader back and shows it caught up.
async fn failover(cluster: &mut [DemoNode]) -> anyhow::Result<()> {
    let probe = connect(cluster[0].config.pg_addr).await?;
    let leader: Option<i64> =
        probe.query_one("SELECT leader_node FROM shoal.groups WHERE kind = 'data'", &[]).await?.get(0);
    drop(probe);
    // Nodes joined in order, so node id i is the demo's i-th node.
    let Some((leader, leader_index)) =
        leader.and_then(|id| Some((id, usize::try_from(id).ok()?.checked_sub(1)?))).filter(|(_, i)| *i < cluster.len())
    else {
        println!("(no leader is known right now; skipping the failover)");
        return Ok(());
    };
    let survivor = if leader_index == 0 { 1 } else { 0 };
    println!("-- Failover: stopping node {leader}, the data group's leader");
    cluster[leader_index].stop().await?;
    let stopped = Instant::now();
    let client = connect(cluster[survivor].config.pg_addr).await?;
    let mut attempts = 0;
    loop {
        attempts += 1;
        match client.execute("UPDATE orders SET status = 'shipped' WHERE id = 1", &[]).await {
            Ok(_) => break,
            Err(_) if stopped.elapsed() < Duration::from_secs(30) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => anyhow::bail!("no write succeeded within 30 s of the failover: {e}"),
        }
    }
    let new_leader: Option<i64> =
        client.query_one("SELECT leader_node FROM shoal.groups WHERE kind = 'data'", &[]).await?.get(0);
    let new_leader = new_leader.map_or_else(|| "another node".to_string(), |id| format!("node {id}"));
    println!(
        "   {new_leader} leads now; the first write through node {} succeeded {} ms after the leader stopped ({attempts} attempt(s))",
        survivor + 1,
        stopped.elapsed().as_millis()
    );
    println!("-- Restarting node {leader}: it catches up from the others");
    let config = cluster[leader_index].config.clone();
    cluster[leader_index] = DemoNode::start(config).await?;
    let back = connect(cluster[leader_index].config.pg_addr).await?;
    let shipped: i64 =
        back.query_one("SELECT count(*) FROM orders WHERE id = 1 AND status = 'shipped'", &[]).await?.get(0);
    println!("   node {leader} sees the write made while it was down: {}\n", if shipped == 1 { "yes" } else { "no" });
    let replicas = back
        .simple_query(
            "SELECT group_id, node_id, role, term, applied_index FROM shoal.replicas ORDER BY group_id, node_id",
        )
        .await?;
    print!("{}", crate::shell::render(&replicas));
    println!();
    Ok(())
}

async fn connect(pg: SocketAddr) -> anyhow::Result<tokio_postgres::Client> {
    let conninfo = format!("host={} port={} user=shoal dbname=shoal", pg.ip(), pg.port());
    let mut last_error = None;
    for _ in 0..100 {
        match tokio_postgres::connect(&conninfo, tokio_postgres::NoTls).await {
            Ok((client, connection)) => {
                tokio::spawn(connection);
                return Ok(client);
            }
            Err(e) => last_error = Some(e),
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Err(anyhow::anyhow!("the demo node did not accept connections on {pg}: {last_error:?}"))
}

async fn load_sample_data(client: &tokio_postgres::Client) -> anyhow::Result<()> {
    let names = ["Ada", "Grace", "Edsger", "Barbara", "Leslie", "Tony", "Frances", "Ken"];
    let insert_user = client.prepare("INSERT INTO users (name, email) VALUES ($1, $2) RETURNING id").await?;
    let insert_order = client
        .prepare("INSERT INTO orders (user_id, amount, status, placed_at) VALUES ($1, $2::text::numeric, $3, $4::text::date)")
        .await?;
    for (i, name) in names.iter().enumerate() {
        let email = format!("{}@example.com", name.to_lowercase());
        let id: i64 = client.query_one(&insert_user, &[name, &email]).await?.get(0);
        for n in 0..(i + 1) {
            let amount = format!("{}.{:02}", 10 + (i * 7 + n * 13) % 90, (i * 31 + n * 17) % 100);
            let status = if n % 3 == 0 { "shipped" } else { "new" };
            let day = format!("2026-11-{:02}", 1 + (i + n) % 20);
            client.execute(&insert_order, &[&id, &amount, &status, &day]).await?;
        }
    }
    Ok(())
}
