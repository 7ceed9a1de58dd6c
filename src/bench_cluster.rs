//! `shoal bench-cluster`: replication benchmarks, side by side, in one run.
//!
//! Starts three `shoal server` processes (this binary, fresh temp
//! directories, fsync on) and measures:
//!
//! * `replicated-insert` — durable single-row inserts with 3 replicas
//!   (pgbench custom script at the leader), next to PostgreSQL with two
//!   synchronous standbys (`synchronous_standby_names = 'ANY 1 (s1, s2)'`,
//!   `synchronous_commit = on`; built here from the machine's PostgreSQL
//!   binaries) and dqlite's own `dqlite-benchmark` (`kvwrite`, 3 nodes) when
//!   it is installed (Debian: `go-dqlite`);
//! * `follower-read` — point-select TPS served by the leader alone vs by all
//!   three replicas (`shoal.read_consistency = 'follower'` or `'bounded'`);
//! * `failover` — SIGKILL the data group's leader, time the first successful
//!   write through another node; the node is restarted between trials.
//!
//! Output is Markdown for `docs/benchmarks.md`. Peers that cannot be set up
//! here (no PostgreSQL binaries, no dqlite) are reported as skipped, with why.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::bench::{pgbench, Measured};

#[derive(clap::Args, Debug)]
pub struct BenchClusterArgs {
    /// Client counts for the throughput workloads, comma-separated.
    #[arg(long, default_value = "16,64", value_delimiter = ',')]
    clients: Vec<u32>,
    /// Seconds per throughput run.
    #[arg(long, default_value_t = 10)]
    duration: u32,
    /// Failover trials.
    #[arg(long, default_value_t = 20)]
    trials: u32,
    /// Replicated-insert runs per system and client count, alternating
    /// Shoal and PostgreSQL so background load hits both alike; the run with
    /// the median TPS is reported.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=99))]
    repeat: u32,
    /// Workloads: replicated-insert, follower-read, failover.
    #[arg(long, default_value = "replicated-insert,follower-read,failover", value_delimiter = ',')]
    workloads: Vec<String>,
    /// Rows in the point-select table.
    #[arg(long, default_value_t = 100_000)]
    rows: u32,
    /// First of the ports used (3 per Shoal node, 3 for PostgreSQL, 3 for dqlite).
    #[arg(long, default_value_t = 26700)]
    port: u16,
    /// Skip the PostgreSQL-with-standbys baseline.
    #[arg(long)]
    no_postgres: bool,
    /// Skip the dqlite baseline.
    #[arg(long)]
    no_dqlite: bool,
    /// Worker threads of each Shoal node (`shoal server --worker-threads`)
    /// [default: the machine's CPUs divided among the three nodes, at least
    /// one]: the nodes share this machine, as PostgreSQL's three servers do.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    worker_threads: Option<u16>,
}

/// One `shoal server` child process.
struct ShoalNode {
    pg: u16,
    data: PathBuf,
    rpc: u16,
    http: u16,
    join: Option<u16>,
    worker_threads: u16,
    child: Option<tokio::process::Child>,
}

impl ShoalNode {
    fn conninfo(&self) -> String {
        format!("host=127.0.0.1 port={} user=shoal dbname=shoal", self.pg)
    }

    async fn start(&mut self) -> anyhow::Result<()> {
        let exe = std::env::current_exe()?;
        let mut command = tokio::process::Command::new(exe);
        command
            .arg("server")
            .arg("--data")
            .arg(&self.data)
            .args(["--pg", &format!("127.0.0.1:{}", self.pg)])
            .args(["--rpc", &format!("127.0.0.1:{}", self.rpc)])
            .args(["--http", &format!("127.0.0.1:{}", self.http)])
            .args(["--worker-threads", &self.worker_threads.to_string()])
            .env("RUST_LOG", "error")
            .env_remove("SHOAL_PASSWORD")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        if let Some(join) = self.join {
            command.args(["--join", &format!("127.0.0.1:{join}")]);
        }
        self.child = Some(command.spawn()?);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(client) = crate::bench::connect(&self.conninfo()).await {
                if client.simple_query("SELECT 1").await.is_ok() {
                    return Ok(());
                }
            }
            anyhow::ensure!(Instant::now() < deadline, "node on port {} did not start", self.pg);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            // tokio's kill() sends SIGKILL on Unix.
            let _ = child.kill().await;
        }
    }
}

/// Three Shoal nodes; node i (1-based) has node id i (they join in order).
struct ShoalCluster {
    nodes: Vec<ShoalNode>,
}

impl ShoalCluster {
    async fn start(dir: &Path, port: u16, worker_threads: u16) -> anyhow::Result<ShoalCluster> {
        let mut nodes = Vec::new();
        for i in 0..3u16 {
            let base = port + 3 * i;
            nodes.push(ShoalNode {
                pg: base,
                rpc: base + 1,
                http: base + 2,
                data: dir.join(format!("shoal-{}", i + 1)),
                join: (i > 0).then_some(port + 1),
                worker_threads,
                child: None,
            });
        }
        for node in &mut nodes {
            node.start().await?;
        }
        Ok(ShoalCluster { nodes })
    }

    /// The index (0-based) of the node leading the data group.
    async fn leader(&self) -> anyhow::Result<usize> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            for node in self.nodes.iter().filter(|n| n.child.is_some()) {
                let Ok(client) = crate::bench::connect(&node.conninfo()).await else { continue };
                if let Ok(row) = client.query_one("SELECT leader_node FROM shoal.groups WHERE group_id = 1", &[]).await
                {
                    if let Some(id) = row.get::<_, Option<i64>>(0) {
                        if (1..=3).contains(&id) {
                            return Ok(id as usize - 1);
                        }
                    }
                }
            }
            anyhow::ensure!(Instant::now() < deadline, "no data-group leader within 30 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// PostgreSQL primary + two synchronous standbys in a temp directory, run
/// as the `postgres` user when this runs as root (PostgreSQL refuses root).
struct PostgresTrio {
    bin: PathBuf,
    dirs: Vec<PathBuf>,
    port: u16,
    as_postgres: bool,
}

impl PostgresTrio {
    fn find_bin() -> Option<PathBuf> {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("initdb").exists())
            .collect();
        versions.sort();
        versions.pop()
    }

    fn command(&self, program: &str) -> std::process::Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            std::process::Command::new(path)
        }
    }

    fn run(&self, mut command: std::process::Command, what: &str) -> anyhow::Result<()> {
        let out = command.stdin(Stdio::null()).output()?;
        anyhow::ensure!(
            out.status.success(),
            "{what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }

    fn start(dir: &Path, port: u16) -> anyhow::Result<PostgresTrio> {
        let bin =
            PostgresTrio::find_bin().ok_or_else(|| anyhow::anyhow!("no PostgreSQL binaries in /usr/lib/postgresql"))?;
        let as_postgres = nix_is_root();
        let root = dir.join("postgres");
        std::fs::create_dir_all(&root)?;
        if as_postgres {
            let status = std::process::Command::new("chown").args(["-R", "postgres:postgres"]).arg(&root).status()?;
            anyhow::ensure!(status.success(), "chown of {} failed", root.display());
        }
        let dirs: Vec<PathBuf> = ["primary", "s1", "s2"].iter().map(|n| root.join(n)).collect();
        let trio = PostgresTrio { bin, dirs, port, as_postgres };
        let mut initdb = trio.command("initdb");
        initdb.args(["-D"]).arg(&trio.dirs[0]).args(["-U", "postgres", "--auth=trust", "-E", "UTF8"]);
        trio.run(initdb, "initdb")?;
        let socket_dir = root.display().to_string();
        let conf = format!(
            "\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{socket_dir}'\n\
             wal_level = replica\nmax_wal_senders = 10\nsynchronous_commit = on\nfsync = on\n\
             synchronous_standby_names = 'ANY 1 (s1, s2)'\nmax_connections = 200\nshared_buffers = 256MB\n"
        );
        append(&trio.dirs[0].join("postgresql.conf"), &conf)?;
        trio.pg_ctl(0, "start")?;
        for (i, name) in [(1usize, "s1"), (2, "s2")] {
            let mut backup = trio.command("pg_basebackup");
            backup
                .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres", "-R", "-X", "stream", "-D"])
                .arg(&trio.dirs[i]);
            trio.run(backup, "pg_basebackup")?;
            // After pg_basebackup -R's own primary_conninfo: the later line wins.
            append(
                &trio.dirs[i].join("postgresql.auto.conf"),
                &format!(
                    "\nport = {}\nprimary_conninfo = 'host=127.0.0.1 port={port} user=postgres application_name={name}'\n",
                    port + i as u16
                ),
            )?;
            trio.pg_ctl(i, "start")?;
        }
        Ok(trio)
    }

    fn pg_ctl(&self, i: usize, action: &str) -> anyhow::Result<()> {
        let mut c = self.command("pg_ctl");
        c.args(["-D"]).arg(&self.dirs[i]).args(["-w", "-l"]).arg(self.dirs[i].with_extension("log")).arg(action);
        if action == "stop" {
            c.args(["-m", "immediate"]);
        }
        self.run(c, &format!("pg_ctl {action}"))
    }

    fn conninfo(&self) -> String {
        format!("host=127.0.0.1 port={} user=postgres dbname=postgres", self.port)
    }

    /// Waits until both standbys stream and one of them is synchronous.
    async fn wait_for_standbys(&self) -> anyhow::Result<()> {
        let client = crate::bench::connect(&self.conninfo()).await?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let row = client
                .query_one(
                    "SELECT count(*) FILTER (WHERE state = 'streaming'), \
                     count(*) FILTER (WHERE sync_state IN ('sync', 'quorum')) FROM pg_stat_replication",
                    &[],
                )
                .await?;
            let (streaming, sync): (i64, i64) = (row.get(0), row.get(1));
            if streaming == 2 && sync >= 1 {
                return Ok(());
            }
            anyhow::ensure!(Instant::now() < deadline, "standbys not streaming: {streaming} streaming, {sync} sync");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for PostgresTrio {
    fn drop(&mut self) {
        for i in (0..self.dirs.len()).rev() {
            let _ = self.pg_ctl(i, "stop");
        }
    }
}

fn nix_is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn append(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().append(true).open(path)?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

/// Runs dqlite's own benchmark (`kvwrite`) on three local nodes.
/// Returns the measurement of successful writes and the number that failed.
async fn dqlite_kvwrite(dir: &Path, port: u16, workers: u32, duration: u32) -> anyhow::Result<(Measured, u64)> {
    let cluster: Vec<String> = (0..3).map(|i| format!("127.0.0.1:{}", port + i)).collect();
    let mut children = Vec::new();
    for (i, addr) in cluster.iter().enumerate() {
        let node_dir = dir.join(format!("dqlite-{workers}-{}", i + 1));
        std::fs::create_dir_all(&node_dir)?;
        let mut c = tokio::process::Command::new("dqlite-benchmark");
        c.args(["--db", addr, "-D"]).arg(&node_dir).stdout(Stdio::null()).stderr(Stdio::null()).kill_on_drop(true);
        if i == 0 {
            c.args(["--driver", "--cluster", &cluster.join(","), "--workload", "kvwrite", "--value-size", "16"])
                .args(["--workers", &workers.to_string(), "--duration", &duration.to_string()]);
        } else {
            c.args(["--join", &cluster[0]]);
        }
        children.push(c.spawn()?);
    }
    let status = tokio::time::timeout(Duration::from_secs(u64::from(duration) + 180), children[0].wait()).await??;
    anyhow::ensure!(status.success(), "dqlite-benchmark driver failed ({status})");
    let results = dir.join(format!("dqlite-{workers}-1")).join(&cluster[0]).join("results");
    let (mut ok, mut errors, mut latencies) = (0u64, 0u64, Vec::new());
    for entry in std::fs::read_dir(&results)? {
        for line in std::fs::read_to_string(entry?.path())?.lines() {
            let mut words = line.split_whitespace();
            match (words.next(), words.next()) {
                (Some("n"), Some(n)) => ok += n.parse::<u64>().unwrap_or(0),
                (Some("n_err"), Some(n)) => errors += n.parse::<u64>().unwrap_or(0),
                (Some(ts), Some(ms)) if ts.chars().all(|c| c.is_ascii_digit()) => {
                    if let Ok(ms) = ms.parse::<f64>() {
                        latencies.push(ms);
                    }
                }
                _ => {}
            }
        }
    }
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| crate::bench::percentile(&latencies, p);
    Ok((Measured { tps: ok as f64 / f64::from(duration), p50_ms: pct(0.5), p99_ms: pct(0.99) }, errors))
}

const INSERT_SETUP: &str = "DROP TABLE IF EXISTS bench_ins; \
    CREATE TABLE bench_ins (id BIGSERIAL PRIMARY KEY, k INTEGER NOT NULL, v TEXT NOT NULL);";

/// The run with the median TPS (the lower middle one for an even count).
fn median_run(runs: &[Measured]) -> Measured {
    let mut sorted: Vec<&Measured> = runs.iter().collect();
    sorted.sort_by(|a, b| a.tps.total_cmp(&b.tps));
    sorted.get((sorted.len().max(1) - 1) / 2).map(|m| (*m).clone()).unwrap_or(Measured {
        tps: f64::NAN,
        p50_ms: f64::NAN,
        p99_ms: f64::NAN,
    })
}

fn row(workload: &str, clients: u32, system: &str, m: &Measured, note: &str) {
    println!("| {workload} | {clients} | {system} | {:.0} | {:.2} | {:.2} | {note} |", m.tps, m.p50_ms, m.p99_ms);
}

/// Runs the benchmarks and prints the tables.
pub async fn run(args: BenchClusterArgs) -> anyhow::Result<()> {
    let temp = tempfile::Builder::new().prefix("shoal-bench-cluster-").tempdir()?;
    // PostgreSQL, when run as the postgres user, must be able to enter the directory.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(temp.path(), std::fs::Permissions::from_mode(0o755))?;
    }
    // Each node's share of this machine's CPUs, at least one thread.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let worker_threads = args.worker_threads.unwrap_or_else(|| u16::try_from((cpus / 3).max(1)).unwrap_or(u16::MAX));
    eprintln!("starting three Shoal nodes ({worker_threads} worker threads each)…");
    let mut shoal = ShoalCluster::start(temp.path(), args.port, worker_threads).await?;
    let scripts = temp.path().join("scripts");
    std::fs::create_dir_all(&scripts)?;
    println!("Each Shoal node: `--worker-threads {worker_threads}` ({cpus} CPUs here).\n");
    println!("| workload | clients | system | TPS | p50 ms | p99 ms | note |");
    println!("|---|---:|---|---:|---:|---:|---|");
    let wants = |w: &str| args.workloads.iter().any(|x| x == w);

    if wants("replicated-insert") {
        let script = scripts.join("insert.sql");
        std::fs::write(&script, "\\set k random(1, 1000000)\nINSERT INTO bench_ins (k, v) VALUES (:k, 'payload');\n")?;
        let leader = shoal.leader().await?;
        let shoal_conn = shoal.nodes[leader].conninfo();
        crate::bench::connect(&shoal_conn).await?.batch_execute(INSERT_SETUP).await?;
        let postgres = if args.no_postgres {
            Err(anyhow::anyhow!("--no-postgres"))
        } else {
            eprintln!("building PostgreSQL with two synchronous standbys…");
            match PostgresTrio::start(temp.path(), args.port + 10) {
                Ok(trio) => trio.wait_for_standbys().await.map(|()| trio),
                Err(e) => Err(e),
            }
        };
        if let Ok(trio) = &postgres {
            crate::bench::connect(&trio.conninfo()).await?.batch_execute(INSERT_SETUP).await?;
        }
        let dqlite = !args.no_dqlite && which("dqlite-benchmark");
        for &clients in &args.clients {
            let (mut shoal_runs, mut postgres_runs) = (Vec::new(), Vec::new());
            for run in 1..=args.repeat {
                eprintln!("replicated-insert: {clients} clients on Shoal (run {run} of {})…", args.repeat);
                shoal_runs.push(pgbench(&shoal_conn, &script, clients, args.duration, temp.path(), &[]).await?);
                if let Ok(trio) = &postgres {
                    eprintln!("replicated-insert: {clients} clients on PostgreSQL (run {run} of {})…", args.repeat);
                    postgres_runs
                        .push(pgbench(&trio.conninfo(), &script, clients, args.duration, temp.path(), &[]).await?);
                }
            }
            let note = |runs: &[Measured]| match runs.len() {
                1 => String::new(),
                n => format!(
                    "median of {n} runs (TPS {})",
                    runs.iter().map(|m| format!("{:.0}", m.tps)).collect::<Vec<_>>().join(", ")
                ),
            };
            let s = median_run(&shoal_runs);
            row("replicated-insert", clients, "Shoal, 3 replicas", &s, &note(&shoal_runs));
            match &postgres {
                Ok(_) => {
                    let p = median_run(&postgres_runs);
                    row("replicated-insert", clients, "PostgreSQL, 2 sync standbys (ANY 1)", &p, &note(&postgres_runs));
                    println!("| | | Shoal ÷ PostgreSQL | {:.2}× | | | |", s.tps / p.tps);
                }
                Err(e) => {
                    println!("| replicated-insert | {clients} | PostgreSQL, 2 sync standbys | — | | | skipped: {e} |")
                }
            }
            if dqlite {
                eprintln!("replicated-insert: {clients} workers on dqlite…");
                match dqlite_kvwrite(temp.path(), args.port + 20, clients, args.duration).await {
                    Ok((d, failed)) => {
                        let note = format!("dqlite-benchmark, 16-byte values; {failed} failed writes not counted");
                        row("replicated-insert", clients, "dqlite kvwrite, 3 nodes", &d, &note);
                        println!("| | | Shoal ÷ dqlite | {:.2}× | | | |", s.tps / d.tps);
                    }
                    Err(e) => println!("| replicated-insert | {clients} | dqlite | — | | | failed: {e} |"),
                }
            } else {
                let why = if args.no_dqlite {
                    "--no-dqlite"
                } else {
                    "dqlite-benchmark not installed (apt-get install go-dqlite)"
                };
                println!("| replicated-insert | {clients} | dqlite | — | | | skipped: {why} |");
            }
        }
        drop(postgres);
    }

    if wants("follower-read") {
        let leader = shoal.leader().await?;
        eprintln!("preparing {} rows for point selects…", args.rows);
        crate::bench::prepare(&shoal.nodes[leader].conninfo(), args.rows).await?;
        // Every replica has the rows before any read is measured.
        for node in &shoal.nodes {
            let client = crate::bench::connect(&node.conninfo()).await?;
            client.query_one("SELECT count(*) FROM bench_kv", &[]).await?;
        }
        let script = scripts.join("point-select.sql");
        std::fs::write(&script, crate::bench::script("point-select", args.rows)?)?;
        for &clients in &args.clients {
            let leader_conn = shoal.nodes[leader].conninfo();
            for (label, level) in [("leader only, linearizable", "linearizable"), ("leader only, local", "follower")] {
                let options = format!("-c shoal.read_consistency={level}");
                let m =
                    pgbench(&leader_conn, &script, clients, args.duration, temp.path(), &[options.as_str()]).await?;
                row("follower-read", clients, &format!("Shoal, {label}"), &m, "");
            }
            for (label, options) in [
                ("3 replicas, follower", "-c shoal.read_consistency=follower"),
                ("3 replicas, bounded 1s", "-c shoal.read_consistency=bounded -c shoal.max_staleness=1s"),
            ] {
                // One pgbench per node, clients split evenly, run at once.
                let per_node = (clients / 3).max(1);
                let conninfos: Vec<String> = shoal.nodes.iter().map(ShoalNode::conninfo).collect();
                let option_list = [options];
                let runs =
                    conninfos.iter().map(|c| pgbench(c, &script, per_node, args.duration, temp.path(), &option_list));
                let results = futures::future::try_join_all(runs).await?;
                let tps: f64 = results.iter().map(|m| m.tps).sum();
                let worst = |f: fn(&Measured) -> f64| results.iter().map(f).fold(0.0, f64::max);
                let m = Measured { tps, p50_ms: worst(|m| m.p50_ms), p99_ms: worst(|m| m.p99_ms) };
                row(
                    "follower-read",
                    per_node * 3,
                    &format!("Shoal, {label}"),
                    &m,
                    "TPS summed over nodes; worst node's latencies",
                );
            }
        }
    }

    if wants("failover") {
        let mut times = Vec::new();
        let client_table = "CREATE TABLE IF NOT EXISTS bench_failover (id BIGSERIAL PRIMARY KEY, at TEXT)";
        let leader = shoal.leader().await?;
        crate::bench::connect(&shoal.nodes[leader].conninfo()).await?.batch_execute(client_table).await?;
        for trial in 1..=args.trials {
            let leader = shoal.leader().await?;
            let survivor = (leader + 1) % 3;
            let client = crate::bench::connect(&shoal.nodes[survivor].conninfo()).await?;
            client.batch_execute("INSERT INTO bench_failover (at) VALUES ('before')").await?;
            shoal.nodes[leader].kill9().await;
            let killed = Instant::now();
            loop {
                match client.batch_execute("INSERT INTO bench_failover (at) VALUES ('after')").await {
                    Ok(()) => break,
                    Err(_) if killed.elapsed() < Duration::from_secs(30) => {
                        tokio::time::sleep(Duration::from_millis(5)).await
                    }
                    Err(e) => anyhow::bail!("trial {trial}: no write within 30 s of the kill: {e}"),
                }
            }
            let took = killed.elapsed();
            eprintln!("failover trial {trial}: first write {:.0} ms after SIGKILL", took.as_secs_f64() * 1000.0);
            times.push(took.as_secs_f64() * 1000.0);
            shoal.nodes[leader].start().await?;
            // Let the restarted node catch up before the next kill.
            let back = crate::bench::connect(&shoal.nodes[leader].conninfo()).await?;
            back.query_one("SELECT count(*) FROM bench_failover", &[]).await?;
        }
        times.sort_by(f64::total_cmp);
        let pct = |p: f64| crate::bench::percentile(&times, p);
        println!();
        println!("| failover (SIGKILL of the leader → first write through another node) | trials | p50 ms | p95 ms | max ms |");
        println!("|---|---:|---:|---:|---:|");
        println!("| Shoal, 3 nodes | {} | {:.0} | {:.0} | {:.0} |", times.len(), pct(0.5), pct(0.95), pct(1.0));
    }
    for node in &mut shoal.nodes {
        node.kill9().await;
    }
    Ok(())
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|p| p.join(program).is_file()))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(tps: f64) -> Measured {
        Measured { tps, p50_ms: tps / 1000.0, p99_ms: tps / 100.0 }
    }

    #[test]
    fn the_median_run_is_reported_whole() {
        let median = median_run(&[run(300.0), run(100.0), run(200.0)]);
        assert_eq!((median.tps, median.p50_ms), (200.0, 0.2), "its latencies come with it");
        assert_eq!(median_run(&[run(4.0), run(1.0), run(3.0), run(2.0)]).tps, 2.0, "even count: lower middle");
        assert!(median_run(&[]).tps.is_nan());
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let sorted = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(crate::bench::percentile(&sorted, 0.5), 3.0);
        assert_eq!(crate::bench::percentile(&sorted, 1.0), 5.0);
        assert_eq!(crate::bench::percentile(&sorted, 0.0), 1.0);
        assert!(crate::bench::percentile(&[], 0.5).is_nan());
    }
}
