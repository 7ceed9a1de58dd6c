//! Membership changes an operator asks for, and the replication factor.
//!
//! The **replication factor** (a cluster setting in the meta group's
//! `settings` table, default 3) is the number of *voting* replicas each group
//! keeps. A node that joins becomes a voter of every group that has fewer
//! voters than that, and a learner (a non-voting replica: it applies the log
//! and serves reads, but does not count toward quorums) of the others. So a
//! one-node cluster has one voter per group, a three-node cluster three, and
//! a fifth node of a five-node cluster at factor 3 is a learner everywhere.
//!
//! | SQL (also `shoal cluster …`)            | what happens, group by group, on each group's leader |
//! |-----------------------------------------|------------------------------------------------------|
//! | `shoal.set_replication_factor(n)`       | store `n`; promote learners / demote voters until each group has `min(n, nodes)` voters |
//! | `shoal.add_node(id)`                    | make node `id` a voter (added as a learner first and caught up if it holds no replica) |
//! | `shoal.remove_node(id)`                 | promote a learner to replace each voter `id` holds, then remove `id`'s replicas; record `id` as removed |
//!
//! Each step is one Raft membership change, idempotent, retried while
//! leadership moves; every call returns the steps it took.
//!
//! A removed node's id is never reused and it may not record itself again;
//! its process should be stopped (its data directory, wiped, can join again
//! as a new node).

use std::time::{Duration, Instant};

use shoal_common::{Error, ExecContext, Result, SqlState, Value};
use shoal_raft::{GroupId, NodeId, META_GROUP};

use crate::cluster::{
    self, forward, Call, DEFAULT_REPLICATION_FACTOR, MAX_REPLICATION_FACTOR, REMOVED_NODES_TABLE_SQL,
    SETTINGS_TABLE_SQL,
};
use crate::consistency::{ReadMode, ReadPoint};
use crate::node::{Node, DATA_GROUP};

/// One step a membership function took.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub group: Option<GroupId>,
    pub node_id: Option<NodeId>,
    pub action: &'static str,
    pub detail: String,
}

/// A node as recorded in the meta group.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeRecord {
    pub node_id: NodeId,
    pub pg_addr: String,
    pub rpc_addr: String,
    pub http_addr: String,
}

/// How long a membership step may keep retrying while leadership moves.
const STEP_RETRY: Duration = Duration::from_secs(15);

/// Groups in the order membership changes touch them: data first, so the
/// meta group (which records the outcome) changes last.
const GROUPS: [GroupId; 2] = [DATA_GROUP, META_GROUP];

/// The nodes recorded in this node's replica of the meta group (empty
/// before the first node recorded itself).
pub async fn recorded_nodes(node: &Node) -> Vec<NodeRecord> {
    node.meta
        .read(|reader| {
            let mut stmt = reader
                .conn
                .prepare("SELECT id, pg_addr, rpc_addr, http_addr FROM nodes ORDER BY id")
                .map_err(shoal_storage::from_sqlite)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(NodeRecord {
                        node_id: r.get::<_, i64>(0)? as NodeId,
                        pg_addr: r.get(1)?,
                        rpc_addr: r.get(2)?,
                        http_addr: r.get(3)?,
                    })
                })
                .map_err(shoal_storage::from_sqlite)?;
            rows.collect::<std::result::Result<Vec<_>, _>>().map_err(shoal_storage::from_sqlite)
        })
        .await
        .unwrap_or_default()
}

/// The cluster's replication factor, read from this node's meta replica.
pub async fn replication_factor(node: &Node) -> u64 {
    let stored = node
        .meta
        .read(|reader| {
            reader
                .conn
                .query_row("SELECT value FROM settings WHERE name = 'replication_factor'", [], |r| {
                    r.get::<_, String>(0)
                })
                .map_err(shoal_storage::from_sqlite)
        })
        .await;
    stored.ok().and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_REPLICATION_FACTOR)
}

/// Makes this node's meta replica current (membership decisions read it).
async fn fresh_meta(node: &Node) -> Result<()> {
    cluster::read_point(node, META_GROUP, ReadPoint { mode: ReadMode::Linearizable, after: 0 }).await
}

/// Sends an idempotent membership call to the group's leader, retrying
/// while leadership moves (a leader that removed itself steps down).
async fn on_leader(node: &Node, group: GroupId, call: Call) -> Result<()> {
    let deadline = Instant::now() + STEP_RETRY;
    loop {
        match forward(node, group, &call).await {
            Ok(_) => return Ok(()),
            Err(e)
                if (e.code == SqlState::SERIALIZATION_FAILURE || e.code == SqlState::STATEMENT_COMPLETION_UNKNOWN)
                    && Instant::now() < deadline =>
            {
                tracing::debug!(group, error = %e, "membership step: retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Voters and learners of `group` as this node sees them (sorted ids).
fn voters_and_learners(node: &Node, group: GroupId) -> Result<(Vec<NodeId>, Vec<NodeId>)> {
    let members = node.group(group)?.members();
    let mut voters: Vec<NodeId> = members.iter().filter(|m| m.2).map(|m| m.0).collect();
    let mut learners: Vec<NodeId> = members.iter().filter(|m| !m.2).map(|m| m.0).collect();
    voters.sort_unstable();
    learners.sort_unstable();
    Ok((voters, learners))
}

fn step(group: Option<GroupId>, node_id: Option<NodeId>, action: &'static str, detail: String) -> Step {
    Step { group, node_id, action, detail }
}

/// `shoal.set_replication_factor(n)`.
pub async fn set_replication_factor(node: &Node, factor: u64) -> Result<Vec<Step>> {
    if !(1..=MAX_REPLICATION_FACTOR).contains(&factor) {
        return Err(Error::new(
            SqlState::INVALID_PARAMETER_VALUE,
            format!("replication factor {factor} is out of range"),
        )
        .with_hint(format!("use 1 to {MAX_REPLICATION_FACTOR} (odd numbers tolerate the most failures per replica)")));
    }
    for (sql, params) in [
        (SETTINGS_TABLE_SQL, vec![]),
        (
            "INSERT OR REPLACE INTO settings (name, value) VALUES ('replication_factor', ?1)",
            vec![Value::Text(factor.to_string())],
        ),
    ] {
        cluster::write_autocommit(node, META_GROUP, ExecContext::now(rand::random()), sql.into(), params).await?;
    }
    let mut steps = vec![step(None, None, "set", format!("replication factor is now {factor}"))];
    steps.extend(rebalance(node, factor).await?);
    Ok(steps)
}

/// Promotes learners or demotes voters until every group has `factor`
/// voters (or every member votes, when there are fewer nodes).
async fn rebalance(node: &Node, factor: u64) -> Result<Vec<Step>> {
    fresh_meta(node).await?;
    let records = recorded_nodes(node).await;
    let mut steps = Vec::new();
    for group in GROUPS {
        let (mut voters, mut learners) = voters_and_learners(node, group)?;
        while (voters.len() as u64) < factor && !learners.is_empty() {
            let promoted = learners.remove(0);
            let rpc_addr = address_of(&records, promoted, node, group)?;
            on_leader(node, group, Call::AddReplica { group, node_id: promoted, rpc_addr, voter: Some(true) }).await?;
            voters.push(promoted);
            steps.push(step(Some(group), Some(promoted), "promote", "learner is now a voter".into()));
        }
        let leader = node.group(group)?.leader().map(|(id, _)| id);
        while (voters.len() as u64) > factor {
            // Demote the highest-numbered voter that is not leading.
            let Some(position) = voters.iter().rposition(|v| Some(*v) != leader) else { break };
            let demoted = voters.remove(position);
            on_leader(node, group, Call::DemoteReplica { group, node_id: demoted }).await?;
            steps.push(step(Some(group), Some(demoted), "demote", "voter is now a learner".into()));
        }
        if (voters.len() as u64) < factor {
            steps.push(step(
                Some(group),
                None,
                "short",
                format!("{} voting replicas: fewer nodes than the replication factor {factor}", voters.len()),
            ));
        }
    }
    Ok(steps)
}

/// The RPC address of `node_id`: from the meta group's record, else from
/// the group's membership.
fn address_of(records: &[NodeRecord], node_id: NodeId, node: &Node, group: GroupId) -> Result<String> {
    if let Some(record) = records.iter().find(|r| r.node_id == node_id) {
        return Ok(record.rpc_addr.clone());
    }
    node.group(group)?.members().into_iter().find(|m| m.0 == node_id).map(|m| m.1).ok_or_else(|| not_a_node(node_id))
}

fn not_a_node(node_id: NodeId) -> Error {
    Error::new(SqlState::UNDEFINED_OBJECT, format!("node {node_id} is not a node of this cluster"))
        .with_hint("SELECT node_id FROM shoal.nodes lists the nodes")
}

/// `shoal.add_node(id)`: node `id` becomes a voting replica of every group.
pub async fn add_node(node: &Node, node_id: NodeId) -> Result<Vec<Step>> {
    fresh_meta(node).await?;
    let records = recorded_nodes(node).await;
    if !records.iter().any(|r| r.node_id == node_id) {
        return Err(not_a_node(node_id));
    }
    let factor = replication_factor(node).await;
    let mut steps = Vec::new();
    for group in GROUPS {
        let (voters, learners) = voters_and_learners(node, group)?;
        if voters.contains(&node_id) {
            steps.push(step(Some(group), Some(node_id), "none", "already a voter".into()));
            continue;
        }
        if voters.len() as u64 >= factor {
            return Err(Error::new(
                SqlState::INVALID_PARAMETER_VALUE,
                format!("group {group} already has {} voting replicas, the replication factor", voters.len()),
            )
            .with_hint(format!(
                "raise it first (SELECT * FROM shoal.set_replication_factor({})) or remove a node",
                voters.len() + 1
            )));
        }
        let rpc_addr = address_of(&records, node_id, node, group)?;
        let action = if learners.contains(&node_id) { "promote" } else { "add" };
        on_leader(node, group, Call::AddReplica { group, node_id, rpc_addr, voter: Some(true) }).await?;
        steps.push(step(Some(group), Some(node_id), action, "caught up and voting".into()));
    }
    Ok(steps)
}

/// `shoal.remove_node(id)`: moves node `id`'s votes to learners where there
/// are any, removes its replicas, and records it as removed.
pub async fn remove_node(node: &Node, node_id: NodeId) -> Result<Vec<Step>> {
    fresh_meta(node).await?;
    let records = recorded_nodes(node).await;
    let member_anywhere =
        GROUPS.iter().any(|g| node.group(*g).map(|g| g.members().iter().any(|m| m.0 == node_id)).unwrap_or(false));
    if !member_anywhere && !records.iter().any(|r| r.node_id == node_id) {
        return Err(not_a_node(node_id));
    }
    let mut steps = Vec::new();
    for group in GROUPS {
        let (voters, learners) = voters_and_learners(node, group)?;
        let is_voter = voters.contains(&node_id);
        if !is_voter && !learners.contains(&node_id) {
            continue;
        }
        if is_voter {
            let replacement = learners.iter().copied().find(|l| *l != node_id);
            match replacement {
                Some(replacement) => {
                    let rpc_addr = address_of(&records, replacement, node, group)?;
                    on_leader(
                        node,
                        group,
                        Call::AddReplica { group, node_id: replacement, rpc_addr, voter: Some(true) },
                    )
                    .await?;
                    steps.push(step(Some(group), Some(replacement), "promote", format!("replaces node {node_id}")));
                }
                None if voters.len() == 1 => {
                    return Err(Error::new(
                        SqlState::INVALID_PARAMETER_VALUE,
                        format!("node {node_id} holds the only voting replica of group {group}"),
                    )
                    .with_hint("add another node first; a cluster cannot remove its last node"));
                }
                None => steps.push(step(
                    Some(group),
                    None,
                    "short",
                    format!("no learner to replace node {node_id}: {} voters remain", voters.len() - 1),
                )),
            }
        }
        on_leader(node, group, Call::RemoveReplica { group, node_id }).await?;
        steps.push(step(Some(group), Some(node_id), "remove", "replica removed".into()));
    }
    for (sql, params) in [
        (REMOVED_NODES_TABLE_SQL, vec![]),
        ("INSERT OR IGNORE INTO removed_nodes (id) VALUES (?1)", vec![Value::Integer(node_id as i64)]),
        ("DELETE FROM nodes WHERE id = ?1", vec![Value::Integer(node_id as i64)]),
    ] {
        cluster::write_autocommit(node, META_GROUP, ExecContext::now(rand::random()), sql.into(), params).await?;
    }
    steps.push(step(None, Some(node_id), "forget", "recorded as removed; stop its process".into()));
    Ok(steps)
}
