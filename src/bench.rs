//! `shoal bench`: pgbench against Shoal and PostgreSQL, side by side, in one run.
//!
//! Starts a Shoal node in this process (fresh temp directory, fsync on), prepares
//! the same tables on both systems, and drives each with the machine's
//! `pgbench` using identical custom scripts and client counts:
//!
//! * `point-select` — `SELECT v FROM bench_kv WHERE id = :id` over `--rows` rows;
//! * `insert` — one durable single-row `INSERT` per transaction
//!   (PostgreSQL runs with `synchronous_commit = on`).
//!
//! `--postgres` is a libpq connection string, TLS options (`sslmode`,
//! `sslrootcert`, `sslcert`, `sslkey`) included; they, or the `PGSSL*`
//! variables, mean the same to the connection that prepares the tables
//! (`shoal-pgtls`) as to pgbench. The Shoal node is this process's own and
//! plain, so it needs none.
//!
//! TPS is pgbench's (excluding connection time); p50/p99 latencies come from
//! pgbench's per-transaction log (`--log`). The output is a Markdown table for
//! `docs/benchmarks.md`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use shoal_server::ServerConfig;

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Client counts to run, comma-separated.
    #[arg(long, default_value = "1,16,64", value_delimiter = ',')]
    clients: Vec<u32>,
    /// Seconds per run.
    #[arg(long, default_value_t = 10)]
    duration: u32,
    /// Rows in the point-select table.
    #[arg(long, default_value_t = 100_000)]
    rows: u32,
    /// Workloads: point-select, insert.
    #[arg(long, default_value = "point-select,insert", value_delimiter = ',')]
    workloads: Vec<String>,
    /// PostgreSQL to compare with (libpq connection string, TLS options
    /// such as sslmode=require included); "none" to skip.
    #[arg(long, default_value = "host=127.0.0.1 port=5432 user=postgres dbname=test")]
    postgres: String,
    /// Port for the Shoal node under test.
    #[arg(long, default_value_t = 26433)]
    port: u16,
}

#[derive(Clone, Debug)]
pub(crate) struct Measured {
    pub(crate) tps: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
}

const SETUP: &str = "DROP TABLE IF EXISTS bench_kv; DROP TABLE IF EXISTS bench_ins; \
    CREATE TABLE bench_kv (id INTEGER PRIMARY KEY, v TEXT NOT NULL); \
    CREATE TABLE bench_ins (id BIGSERIAL PRIMARY KEY, k INTEGER NOT NULL, v TEXT NOT NULL);";

pub(crate) fn script(workload: &str, rows: u32) -> anyhow::Result<String> {
    Ok(match workload {
        "point-select" => format!("\\set id random(1, {rows})\nSELECT v FROM bench_kv WHERE id = :id;\n"),
        "insert" => "\\set k random(1, 1000000)\nINSERT INTO bench_ins (k, v) VALUES (:k, 'payload');\n".to_string(),
        other => anyhow::bail!("unknown workload {other:?} (use point-select or insert)"),
    })
}

/// Connects as pgbench will with the same `conninfo`: its `sslmode`,
/// `sslrootcert`, `sslcert` and `sslkey`, else the `PGSSL*` variables
/// pgbench inherits, mean what they mean to libpq (`shoal-pgtls`).
pub(crate) async fn connect(conninfo: &str) -> anyhow::Result<tokio_postgres::Client> {
    let split = shoal_pgtls::split_conninfo(conninfo, &shoal_pgtls::process_env)?;
    let mut config: tokio_postgres::Config = split.conninfo.parse()?;
    let tls = shoal_pgtls::Tls::new(split.tls, &mut config)?;
    let shoal_pgtls::Session { client, connection, .. } = tls.connect(&config).await?;
    tokio::spawn(connection);
    Ok(client)
}

pub(crate) async fn prepare(conninfo: &str, rows: u32) -> anyhow::Result<()> {
    let client = connect(conninfo).await?;
    client.batch_execute(SETUP).await?;
    // Load in chunks so each statement stays small.
    let mut start = 1u32;
    while start <= rows {
        let end = (start + 9_999).min(rows);
        client
            .execute(
                "INSERT INTO bench_kv (id, v) SELECT g, md5(g::text) FROM generate_series($1::int, $2::int) AS g",
                &[&(start as i32), &(end as i32)],
            )
            .await?;
        start = end + 1;
    }
    Ok(())
}

/// Runs pgbench once and reads TPS and latency percentiles; `options` are
/// more `-c name=value` settings for the sessions (PGOPTIONS).
pub(crate) async fn pgbench(
    conninfo: &str,
    script_path: &Path,
    clients: u32,
    duration: u32,
    log_dir: &Path,
    options: &[&str],
) -> anyhow::Result<Measured> {
    let prefix = log_dir.join(format!("run-{clients}-{}", rand::random::<u32>()));
    let threads = clients.clamp(1, 2);
    let output = tokio::process::Command::new("pgbench")
        .args(["-n", "-M", "prepared", "--log", "--log-prefix"])
        .arg(&prefix)
        .args(["-c", &clients.to_string(), "-j", &threads.to_string(), "-T", &duration.to_string(), "-f"])
        .arg(script_path)
        .arg(conninfo)
        .env(
            "PGOPTIONS",
            std::iter::once("-c synchronous_commit=on").chain(options.iter().copied()).collect::<Vec<_>>().join(" "),
        )
        .stdin(Stdio::null())
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        anyhow::bail!("pgbench failed: {}{}", stdout, String::from_utf8_lossy(&output.stderr));
    }
    let tps = stdout
        .lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse::<f64>().ok())
        .ok_or_else(|| anyhow::anyhow!("no tps in pgbench output: {stdout}"))?;
    let mut latencies_ms = Vec::new();
    let parent = prefix.parent().unwrap_or(log_dir);
    let stem = prefix.file_name().and_then(|s| s.to_str()).unwrap_or_default().to_string();
    for entry in std::fs::read_dir(parent)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(&stem) {
            for line in std::fs::read_to_string(entry.path())?.lines() {
                // client_id transaction_no time_us script_no time_epoch time_us
                if let Some(us) = line.split_whitespace().nth(2).and_then(|v| v.parse::<u64>().ok()) {
                    latencies_ms.push(us as f64 / 1000.0);
                }
            }
        }
    }
    latencies_ms.sort_by(f64::total_cmp);
    Ok(Measured { tps, p50_ms: percentile(&latencies_ms, 0.50), p99_ms: percentile(&latencies_ms, 0.99) })
}

/// The `p` quantile (0..=1, nearest rank) of ascending `sorted`; NaN when empty.
pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted.get(((sorted.len().max(1) - 1) as f64 * p).round() as usize).copied().unwrap_or(f64::NAN)
}

/// Runs the benchmark and prints the table.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let temp = tempfile::Builder::new().prefix("shoal-bench-").tempdir()?;
    let pg_addr = SocketAddr::from(([127, 0, 0, 1], args.port));
    let config = ServerConfig {
        data_dir: temp.path().join("data"),
        pg_addr,
        rpc_addr: SocketAddr::from(([127, 0, 0, 1], args.port.wrapping_add(1))),
        http_addr: SocketAddr::from(([127, 0, 0, 1], args.port.wrapping_add(2))),
        ..ServerConfig::default()
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(shoal_server::run(config, async move {
        let _ = stop_rx.await;
    }));
    let shoal = format!("host=127.0.0.1 port={} user=shoal dbname=shoal", args.port);
    for _ in 0..100 {
        if connect(&shoal).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut targets = vec![("Shoal", shoal.clone())];
    if args.postgres != "none" {
        targets.push(("PostgreSQL", args.postgres.clone()));
    }
    for (name, conninfo) in &targets {
        eprintln!("preparing {name} ({} rows)…", args.rows);
        prepare(conninfo, args.rows).await?;
    }
    let scripts = temp.path().join("scripts");
    std::fs::create_dir_all(&scripts)?;
    println!("| workload | clients | system | TPS | p50 ms | p99 ms | Shoal/PostgreSQL TPS |");
    println!("|---|---:|---|---:|---:|---:|---:|");
    for workload in &args.workloads {
        let path = scripts.join(format!("{workload}.sql"));
        std::fs::write(&path, script(workload, args.rows)?)?;
        for &clients in &args.clients {
            let mut results = Vec::new();
            for (name, conninfo) in &targets {
                eprintln!("{workload}: {clients} clients on {name}…");
                let m = pgbench(conninfo, &path, clients, args.duration, temp.path(), &[]).await?;
                results.push((*name, m));
            }
            let ratio = match results.as_slice() {
                [(_, shoal), (_, pg)] if pg.tps > 0.0 => format!("{:.2}", shoal.tps / pg.tps),
                _ => "—".to_string(),
            };
            for (name, m) in &results {
                let ratio_cell = if *name == "Shoal" { ratio.as_str() } else { "" };
                println!(
                    "| {workload} | {clients} | {name} | {:.0} | {:.2} | {:.2} | {ratio_cell} |",
                    m.tps, m.p50_ms, m.p99_ms
                );
            }
        }
    }
    let _ = stop_tx.send(());
    server.await?.map_err(|e| anyhow::anyhow!("{}", e.message))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `client`'s session is encrypted, as PostgreSQL sees it.
    async fn encrypted(client: &tokio_postgres::Client) -> bool {
        client.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).await.unwrap().get(0)
    }

    /// `--postgres`'s sslmode reaches the connection that prepares the
    /// tables, as it reaches pgbench (the machine's PostgreSQL has ssl = on,
    /// Debian's default); a mode libpq does not know is refused.
    #[tokio::test]
    async fn the_postgres_connection_string_chooses_tls() {
        let base = "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=5";
        let plain = match connect(&format!("{base} sslmode=disable")).await {
            Ok(client) => client,
            Err(e) if std::env::var("SHOAL_REQUIRE_EXTERNAL").is_ok_and(|v| v == "1") => {
                panic!("PostgreSQL required (SHOAL_REQUIRE_EXTERNAL=1) but unreachable: {e}")
            }
            Err(e) => {
                println!("skipping: no PostgreSQL on 127.0.0.1:5432: {e}");
                return;
            }
        };
        assert!(!encrypted(&plain).await);
        let tls = connect(&format!("{base} sslmode=require")).await.expect("PostgreSQL with ssl = on");
        assert!(encrypted(&tls).await);
        let err = connect(&format!("{base} sslmode=verify")).await.expect_err("an unknown sslmode");
        assert!(err.to_string().contains("invalid sslmode \"verify\""), "{err}");
    }
}
