//! `shoal` — the command line of the Shoal database.
//!
//! * `shoal server` runs one node.
//! * `shoal demo` starts a node with sample data and shows how to use it.
//! * `shoal sql` is an interactive SQL shell for machines without psql.
//! * `shoal bench` runs pgbench against Shoal and PostgreSQL side by side.
//! * `shoal bench-cluster` measures replication: inserts, follower reads, failover.
//! * `shoal cluster` shows a cluster's nodes and replicas and verifies them.

mod bench;
mod bench_cluster;
mod cluster_cmd;
mod demo;
mod shell;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use shoal_server::config::{ConfigFile, ExplicitFlags, ServerConfig};

#[derive(Parser, Debug)]
#[command(name = "shoal", version, about = "Shoal: a sharded, replicated SQL database that speaks PostgreSQL")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a Shoal node.
    Server(Box<ServerArgs>),
    /// Start a local node with sample data, print how to connect, and keep it running until Ctrl-C.
    Demo(DemoArgs),
    /// An interactive SQL shell (or run one command with -c).
    Sql(shell::ShellArgs),
    /// Run pgbench workloads against Shoal and PostgreSQL side by side.
    Bench(bench::BenchArgs),
    /// Replication benchmarks on a local 3-node cluster, next to PostgreSQL with standbys and dqlite.
    BenchCluster(bench_cluster::BenchClusterArgs),
    /// Inspect and check a running cluster (status, verify).
    Cluster(cluster_cmd::ClusterArgs),
}

#[derive(clap::Args, Debug)]
struct ServerArgs {
    /// Data directory (created if missing).
    #[arg(long, default_value = "./data")]
    data: PathBuf,
    /// Address for PostgreSQL clients.
    #[arg(long, default_value = "127.0.0.1:5433")]
    pg: SocketAddr,
    /// Address for node-to-node traffic.
    #[arg(long, default_value = "127.0.0.1:5434")]
    rpc: SocketAddr,
    /// Address for the admin HTTP API (/api/status, /metrics).
    #[arg(long, default_value = "127.0.0.1:5480")]
    http: SocketAddr,
    /// RPC address of a node of the cluster to join.
    #[arg(long)]
    join: Option<SocketAddr>,
    /// A TOML file with the same settings (flags given on the command line win).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The user clients authenticate as.
    #[arg(long, default_value = "shoal")]
    user: String,
    /// Require this password (SCRAM-SHA-256). Without one, only loopback clients may connect.
    #[arg(long, env = "SHOAL_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// PEM certificate for TLS.
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// PEM private key for TLS.
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// PEM CA certificate(s) for client certificates: a certificate must be signed
    /// by it and name the user it connects as (subject CN), or FATAL 28000. With
    /// --auth password every TLS client must present one, and the password still
    /// applies; see --auth for logging in by certificate.
    #[arg(long)]
    tls_client_ca: Option<PathBuf>,
    /// Refuse plain (non-TLS) connections from every client, loopback included
    /// (FATAL 28000); cancel requests still work. Needs --tls-cert and --tls-key.
    #[arg(long)]
    tls_required: bool,
    /// How clients log in: `password` (SCRAM with --password; without one,
    /// loopback clients only), `cert` (a certificate signed by --tls-client-ca
    /// whose CN is the user, and nothing else), or `cert-or-password` (such a
    /// certificate, else the password). [default: password]
    #[arg(long, value_name = "METHOD")]
    auth: Option<shoal_server::config::AuthMethod>,
    /// Snapshot each Raft group and compact its log every this many entries
    /// (a node that falls further behind catches up from a snapshot).
    #[arg(long, default_value_t = shoal_server::config::DEFAULT_SNAPSHOT_EVERY, value_parser = clap::value_parser!(u64).range(10..))]
    snapshot_every: u64,
    /// PEM certificate for TLS between nodes (signed by --rpc-tls-ca; give all three or none).
    #[arg(long, requires_all = ["rpc_tls_key", "rpc_tls_ca"])]
    rpc_tls_cert: Option<PathBuf>,
    /// PEM private key for TLS between nodes.
    #[arg(long, requires_all = ["rpc_tls_cert", "rpc_tls_ca"])]
    rpc_tls_key: Option<PathBuf>,
    /// PEM certificate of the cluster CA: peers must present a certificate it signed.
    #[arg(long, requires_all = ["rpc_tls_cert", "rpc_tls_key"])]
    rpc_tls_ca: Option<PathBuf>,
    /// Threads running sessions, Raft and replication [default: one per CPU,
    /// or TOKIO_WORKER_THREADS]. Nodes sharing a machine run faster with the
    /// CPUs divided between them: every thread beyond the node's share only
    /// adds wake-ups (docs/benchmarks.md).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    worker_threads: Option<u16>,
}

#[derive(clap::Args, Debug)]
struct DemoArgs {
    /// Data directory; a temporary one (removed on exit) when omitted.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Address for PostgreSQL clients.
    #[arg(long, default_value = "127.0.0.1:5433")]
    pg: SocketAddr,
    /// Address for the admin HTTP API.
    #[arg(long, default_value = "127.0.0.1:5480")]
    http: SocketAddr,
    /// Nodes in the local cluster (node i listens on the given ports plus 10·(i−1)).
    #[arg(long, default_value_t = 3)]
    nodes: u16,
    /// Load the sample data, print the tour, and exit instead of waiting for Ctrl-C.
    #[arg(long)]
    exit: bool,
}

fn server_config(args: &ServerArgs, matches: &clap::ArgMatches) -> anyhow::Result<ServerConfig> {
    let mut config = ServerConfig {
        data_dir: args.data.clone(),
        pg_addr: args.pg,
        rpc_addr: args.rpc,
        http_addr: args.http,
        join: args.join,
        user: args.user.clone(),
        password: args.password.clone(),
        tls_cert: args.tls_cert.clone(),
        tls_key: args.tls_key.clone(),
        tls_client_ca: args.tls_client_ca.clone(),
        tls_required: args.tls_required,
        auth: args.auth.unwrap_or_default(),
        fsync: true,
        snapshot_every: args.snapshot_every,
        rpc_tls: match (&args.rpc_tls_cert, &args.rpc_tls_key, &args.rpc_tls_ca) {
            (Some(cert), Some(key), Some(ca)) => {
                Some(shoal_server::config::NodeTlsFiles { cert: cert.clone(), key: key.clone(), ca: ca.clone() })
            }
            _ => None,
        },
        worker_threads: args.worker_threads,
    };
    if let Some(path) = &args.config {
        let file = ConfigFile::load(path).map_err(|e| anyhow::anyhow!("{}", e.message))?;
        let explicit = |id: &str| matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine);
        let flags = ExplicitFlags {
            data: explicit("data"),
            pg: explicit("pg"),
            rpc: explicit("rpc"),
            http: explicit("http"),
            user: explicit("user"),
            auth: explicit("auth"),
            snapshot_every: explicit("snapshot_every"),
        };
        file.apply_to(&mut config, &flags);
    }
    Ok(config)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// mimalloc instead of glibc's allocator: a server's many threads allocate
/// and free small blocks (parse trees, rows, messages) across threads, where
/// glibc's arenas showed as a tenth of the leader's CPU in write profiles
/// (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches)?;
    // The demo stops a leader on purpose; Raft's complaints about the
    // unreachable node would bury its output.
    let default_filter = match cli.command {
        Command::Demo(_) => "warn,openraft=off",
        _ => "info,openraft=warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .with_writer(std::io::stderr)
        .init();
    // The server's settings are read first: they size the runtime.
    let server = match &cli.command {
        Command::Server(args) => {
            let sub = matches.subcommand_matches("server").cloned().unwrap_or_default();
            Some(server_config(args, &sub)?)
        }
        _ => None,
    };
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = server.as_ref().and_then(|config| config.worker_threads) {
        runtime.worker_threads(usize::from(threads));
    }
    let runtime = runtime.enable_all().build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Server(_) => {
                let config = server.ok_or_else(|| anyhow::anyhow!("server settings were not read"))?;
                shoal_server::run(config, shutdown_signal()).await.map_err(|e| anyhow::anyhow!("{}", e.message))
            }
            Command::Demo(args) => demo::run(args.data, args.pg, args.http, args.nodes, args.exit).await,
            Command::Sql(args) => shell::run(args).await,
            Command::Bench(args) => bench::run(args).await,
            Command::Cluster(args) => cluster_cmd::run(args).await,
            Command::BenchCluster(args) => bench_cluster::run(args).await,
        }
    })
}
