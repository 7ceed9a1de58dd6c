//! `shoal demo`: a local node with sample data and a short tour.
//!
//! The sample data is loaded through the PostgreSQL protocol, exactly as a
//! client would, so the demo exercises the whole path: wire → SQL → Raft →
//! SQLite.

use std::net::SocketAddr;
use std::path::PathBuf;

use shoal_server::ServerConfig;

const SAMPLE_SQL: &str = "
CREATE TABLE IF NOT EXISTS users (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    email VARCHAR(120) UNIQUE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS orders (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id),
    amount NUMERIC(10,2) NOT NULL CHECK (amount > 0),
    status TEXT NOT NULL DEFAULT 'new',
    placed_at DATE NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_user_idx ON orders (user_id);
";

const TOUR: [(&str, &str); 4] = [
    ("Orders per user", "SELECT u.name, count(o.id) AS orders, sum(o.amount) AS total FROM users u LEFT JOIN orders o ON o.user_id = u.id GROUP BY u.name ORDER BY total DESC NULLS LAST"),
    ("Running total by day", "SELECT placed_at, sum(amount) AS day_total, sum(sum(amount)) OVER (ORDER BY placed_at) AS running FROM orders GROUP BY placed_at ORDER BY placed_at LIMIT 5"),
    ("Replication state of this node", "SELECT group_id, kind, term, applied_index, log_size_bytes FROM shoal.groups ORDER BY group_id"),
    ("Tables", "SELECT table_name, kind, column_count FROM shoal.tables ORDER BY table_name"),
];

/// Runs the demo.
pub async fn run(data: Option<PathBuf>, pg: SocketAddr, http: SocketAddr, exit: bool) -> anyhow::Result<()> {
    let (data_dir, _temp) = match data {
        Some(dir) => (dir, None),
        None => {
            let temp = tempfile::Builder::new().prefix("shoal-demo-").tempdir()?;
            (temp.path().to_path_buf(), Some(temp))
        }
    };
    let rpc = SocketAddr::new(pg.ip(), pg.port().wrapping_add(1));
    let config = ServerConfig {
        data_dir: data_dir.clone(),
        pg_addr: pg,
        rpc_addr: rpc,
        http_addr: http,
        ..ServerConfig::default()
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(shoal_server::run(config, async move {
        let _ = stop_rx.await;
    }));
    let client = connect(pg).await?;
    client.batch_execute(SAMPLE_SQL).await?;
    let existing = client.query_one("SELECT count(*) FROM users", &[]).await?.get::<_, i64>(0);
    if existing == 0 {
        load_sample_data(&client).await?;
    }
    println!("Shoal demo: one node, data in {}\n", data_dir.display());
    for (title, sql) in TOUR {
        println!("-- {title}\n{sql};");
        print!("{}", crate::shell::render(&client.simple_query(sql).await?));
        println!();
    }
    println!("Connect with:  psql \"host={} port={} user=shoal dbname=shoal\"", pg.ip(), pg.port());
    println!("          or:  cargo run --release -- sql --port {}", pg.port());
    println!("Status:        http://{http}/api/status   Metrics: http://{http}/metrics");
    if !exit {
        println!("\nPress Ctrl-C to stop.");
        let _ = tokio::signal::ctrl_c().await;
    }
    drop(client);
    let _ = stop_tx.send(());
    server.await?.map_err(|e| anyhow::anyhow!("{}", e.message))?;
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
