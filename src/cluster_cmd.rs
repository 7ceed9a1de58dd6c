//! `shoal cluster`: look at and check a running cluster through any node.
//!
//! * `shoal cluster status` lists the nodes (live or not) and every
//!   replica's role, indexes and lag (`shoal.nodes`, `shoal.replicas`).
//! * `shoal cluster verify` runs the consistency check (`shoal.verify()`):
//!   every replica checksums its data at the same log index. It exits with 1
//!   when replicas disagree and 2 when some replica could not be checked.
//! * `shoal cluster add-node ID`, `remove-node ID`, `replication-factor N`
//!   change membership (`shoal.add_node`, `shoal.remove_node`,
//!   `shoal.set_replication_factor`) and print the steps taken.

use crate::shell::{describe, render, ConnArgs};

#[derive(clap::Args, Debug)]
pub struct ClusterArgs {
    #[command(subcommand)]
    action: ClusterAction,
}

#[derive(clap::Subcommand, Debug)]
enum ClusterAction {
    /// Show the cluster's nodes and replicas.
    Status(ConnArgs),
    /// Check that all replicas of every group hold identical data.
    Verify(ConnArgs),
    /// Make a node a voting replica of every group.
    AddNode {
        /// The node's id (see `shoal cluster status`).
        id: u64,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Move a node's replicas off and remove it from the cluster.
    RemoveNode {
        /// The node's id (see `shoal cluster status`).
        id: u64,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Set how many voting replicas each group keeps (default 3).
    ReplicationFactor {
        /// Voting replicas per group, 1 to 7.
        factor: u64,
        #[command(flatten)]
        conn: ConnArgs,
    },
}

pub async fn run(args: ClusterArgs) -> anyhow::Result<()> {
    match args.action {
        ClusterAction::Status(conn) => {
            let client = conn.connect().await?;
            for sql in [
                "SELECT node_id, pg_addr, rpc_addr, http_addr, is_live, round(uptime_seconds) AS uptime_s \
                 FROM shoal.nodes ORDER BY node_id",
                "SELECT group_id, node_id, role, is_voter, term, committed_index, applied_index, lag \
                 FROM shoal.replicas ORDER BY group_id, node_id",
            ] {
                let messages = client.simple_query(sql).await.map_err(|e| anyhow::anyhow!(describe(&e)))?;
                println!("{}", render(&messages));
            }
            Ok(())
        }
        ClusterAction::Verify(conn) => {
            let client = conn.connect().await?;
            let sql = "SELECT group_id, log_index, node_id, agrees, checksum, detail \
                       FROM shoal.verify() ORDER BY group_id, node_id";
            let rows = client.query(sql, &[]).await.map_err(|e| anyhow::anyhow!(describe(&e)))?;
            println!("{:>5} {:>10} {:>5} {:>6}  {:<16}  detail", "group", "index", "node", "agrees", "checksum");
            let (mut agree, mut complete) = (true, true);
            for row in &rows {
                let checksum: Option<String> = row.get(4);
                let agrees: bool = row.get(3);
                agree &= agrees;
                complete &= checksum.is_some();
                println!(
                    "{:>5} {:>10} {:>5} {:>6}  {:<16}  {}",
                    row.get::<_, i64>(0),
                    row.get::<_, i64>(1),
                    row.get::<_, i64>(2),
                    agrees,
                    checksum.as_deref().map(|c| &c[..c.len().min(16)]).unwrap_or("-"),
                    row.get::<_, String>(5)
                );
            }
            if !agree {
                eprintln!("replicas DISAGREE: see the rows marked mismatch");
                std::process::exit(1)
            }
            if !complete {
                eprintln!("replicas that answered agree, but some could not be checked (see detail)");
                std::process::exit(2)
            }
            println!("all replicas agree");
            Ok(())
        }
        ClusterAction::AddNode { id, conn } => membership(&conn, &format!("shoal.add_node({id})")).await,
        ClusterAction::RemoveNode { id, conn } => membership(&conn, &format!("shoal.remove_node({id})")).await,
        ClusterAction::ReplicationFactor { factor, conn } => {
            membership(&conn, &format!("shoal.set_replication_factor({factor})")).await
        }
    }
}

/// Runs a membership function and prints its steps. The argument is a
/// number clap already parsed, so formatting it into the call is safe.
async fn membership(conn: &ConnArgs, call: &str) -> anyhow::Result<()> {
    let client = conn.connect().await?;
    let sql = format!("SELECT step, group_id, node_id, action, detail FROM {call} ORDER BY step");
    let messages = client.simple_query(&sql).await.map_err(|e| anyhow::anyhow!(describe(&e)))?;
    print!("{}", render(&messages));
    Ok(())
}
