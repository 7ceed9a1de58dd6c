//! `shoal cluster`: look at and check a running cluster through any node.
//!
//! * `shoal cluster status` lists the nodes (live or not) and every
//!   replica's role, indexes and lag (`shoal.nodes`, `shoal.replicas`).
//! * `shoal cluster verify` runs the consistency check (`shoal.verify()`):
//!   every replica checksums its data at the same log index. It exits with 1
//!   when replicas disagree and 2 when some replica could not be checked.

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
            let sql = "SELECT group_id, log_index, node_id, agrees, left(checksum, 16) AS checksum, detail \
                       FROM shoal.verify() ORDER BY group_id, node_id";
            let messages = client.simple_query(sql).await.map_err(|e| anyhow::anyhow!(describe(&e)))?;
            println!("{}", render(&messages));
            let rows = client
                .query("SELECT bool_and(agrees), bool_and(checksum IS NOT NULL) FROM shoal.verify()", &[])
                .await
                .map_err(|e| anyhow::anyhow!(describe(&e)))?;
            let (agree, complete): (Option<bool>, Option<bool>) = (rows[0].get(0), rows[0].get(1));
            match (agree, complete) {
                (Some(false), _) => {
                    eprintln!("replicas DISAGREE: see the rows marked mismatch");
                    std::process::exit(1)
                }
                (_, Some(false)) => {
                    eprintln!("replicas that answered agree, but some could not be checked (see detail)");
                    std::process::exit(2)
                }
                _ => {
                    println!("all replicas agree");
                    Ok(())
                }
            }
        }
    }
}
