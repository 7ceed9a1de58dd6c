//! The catalog as SQL: `pg_catalog`, `information_schema` and Shoal's
//! system views, served from in-memory schemas attached to read connections.
//!
//! Clients and tools (psql's `\d`, SQLAlchemy's reflection, JDBC metadata)
//! query PostgreSQL's catalog tables. Each pooled read connection attaches
//! three in-memory databases named `pg_catalog`, `information_schema` and
//! `shoal`; the first two are filled from the typed catalog (by
//! `shoal_sql::catalog_schema_sql`) whenever the connection's copy is older
//! than the catalog the session plans against, and the system views are
//! refilled with live Raft state before each query that reads them.

use std::sync::Arc;

use shoal_common::{Result, Value};
use shoal_raft::{GroupStatus, NodeId, Reader};
use shoal_sql::{AdminCall, Catalog, Distribution, SystemView};
use shoal_storage::from_sqlite;

use crate::cluster::{self, NodeStatus, VerifyRow};
use crate::membership::{self, Step};
use crate::node::{CatalogState, Node};

/// A reader tag meaning "schemas attached, contents stale" (catalog tags are
/// small counters and never reach it).
const ATTACHED_EMPTY: u64 = u64::MAX;

/// Attaches the in-memory schemas (once per connection) and refreshes the
/// catalog copy if it is stale.
pub fn prepare(reader: &mut Reader, catalog: &Arc<CatalogState>) -> Result<()> {
    if reader.tag == catalog.tag {
        return Ok(());
    }
    if reader.tag == 0 {
        reader
            .conn
            .execute_batch(
                "ATTACH DATABASE ':memory:' AS pg_catalog; ATTACH DATABASE ':memory:' AS information_schema; \
                 ATTACH DATABASE ':memory:' AS shoal;",
            )
            .map_err(from_sqlite)?;
        // Attached but not yet filled: a read cut short by its time budget
        // (and run again) must not attach twice.
        reader.tag = ATTACHED_EMPTY;
    }
    for sql in shoal_sql::catalog_schema_sql(&catalog.catalog) {
        reader.conn.execute_batch(&sql).map_err(from_sqlite)?;
    }
    reader.tag = catalog.tag;
    Ok(())
}

/// A node as the system views show it: its recorded addresses and, when it
/// answered, its own status.
struct NodeRow {
    node_id: NodeId,
    pg_addr: String,
    rpc_addr: String,
    http_addr: String,
    status: Option<NodeStatus>,
}

/// Live cluster state, gathered on the async side before the query: the
/// nodes recorded in the meta group, each asked for its status (an
/// unreachable node shows as not live), and the groups as this node sees them.
pub struct SystemState {
    self_id: NodeId,
    cluster_id: String,
    nodes: Vec<NodeRow>,
    groups: Vec<GroupView>,
    replication_factor: u64,
}

/// A group as this node sees it: its kind, Raft state and members
/// (id, address, voter).
struct GroupView {
    kind: &'static str,
    status: GroupStatus,
    members: Vec<(NodeId, String, bool)>,
}

impl SystemState {
    pub async fn gather(node: &Node) -> SystemState {
        let self_id = node.identity.node_id;
        let mut nodes: Vec<NodeRow> = crate::membership::recorded_nodes(node)
            .await
            .into_iter()
            .map(|r| NodeRow {
                node_id: r.node_id,
                pg_addr: r.pg_addr,
                rpc_addr: r.rpc_addr,
                http_addr: r.http_addr,
                status: None,
            })
            .collect();
        if !nodes.iter().any(|n| n.node_id == self_id) {
            nodes.push(NodeRow {
                node_id: self_id,
                pg_addr: node.config.pg_addr.to_string(),
                rpc_addr: node.config.rpc_addr.to_string(),
                http_addr: node.config.http_addr.to_string(),
                status: None,
            });
            nodes.sort_by_key(|n| n.node_id);
        }
        let statuses = futures::future::join_all(nodes.iter().map(|n| async move {
            if n.node_id == self_id {
                Some(NodeStatus::of(node))
            } else {
                cluster::peer_status(node, &n.rpc_addr).await
            }
        }))
        .await;
        for (row, status) in nodes.iter_mut().zip(statuses) {
            row.status = status;
        }
        let groups = vec![
            GroupView { kind: "meta", status: node.meta.status(), members: node.meta.members() },
            GroupView { kind: "data", status: node.data.status(), members: node.data.members() },
        ];
        let replication_factor = membership::replication_factor(node).await;
        SystemState { self_id, cluster_id: node.identity.cluster_id.clone(), nodes, groups, replication_factor }
    }

    /// What `node_id` reported about `group`, if it answered.
    fn replica(&self, node_id: NodeId, group: u64) -> Option<&GroupStatus> {
        let row = self.nodes.iter().find(|n| n.node_id == node_id)?;
        row.status.as_ref()?.groups.iter().find(|g| g.id == group)
    }
}

/// Refills the `shoal.*` tables with the gathered state.
pub fn refresh_system_views(conn: &shoal_storage::Connection, state: &SystemState, catalog: &Catalog) -> Result<()> {
    // The tables' shape comes from shoal-sql, which also types them for the binder.
    let sql: String = shoal_sql::system_views().iter().map(|v| v.create_sql()).collect();
    conn.execute_batch(&sql).map_err(from_sqlite)?;
    let insert = |table: &str, values: Vec<Value>| -> Result<()> {
        let placeholders: Vec<String> = (1..=values.len()).map(|i| format!("?{i}")).collect();
        let sql = format!("INSERT INTO shoal.{table} VALUES ({})", placeholders.join(", "));
        shoal_storage::run_statement(conn, &sql, &values).map(|_| ())
    };
    let int = |v: u64| Value::Integer(v as i64);
    let opt_int = |v: Option<u64>| v.map(int).unwrap_or(Value::Null);
    for n in &state.nodes {
        insert(
            "nodes",
            vec![
                int(n.node_id),
                Value::Text(state.cluster_id.clone()),
                Value::Text(n.pg_addr.clone()),
                Value::Text(n.rpc_addr.clone()),
                Value::Text(n.http_addr.clone()),
                Value::Integer((n.node_id == state.self_id) as i64),
                n.status.as_ref().map(|s| Value::Real(s.uptime_seconds)).unwrap_or(Value::Null),
                Value::Integer(n.status.is_some() as i64),
            ],
        )?;
    }
    for GroupView { kind, status: g, members } in &state.groups {
        let voters: Vec<String> = g.voters.iter().map(|v| v.to_string()).collect();
        insert(
            "groups",
            vec![
                int(g.id),
                Value::Text(kind.to_string()),
                opt_int(g.leader),
                int(g.term),
                int(g.last_log_index),
                int(g.committed_index),
                int(g.applied_index),
                opt_int(g.snapshot_index),
                Value::Text(voters.join(",")),
                int(g.log_size_bytes),
                int(g.log_fsyncs),
                int(state.replication_factor),
            ],
        )?;
        // Lag is measured against the leader's commit index when the
        // leader answered, else against the highest any replica reported.
        let leader_commit = g
            .leader
            .and_then(|l| state.replica(l, g.id))
            .map(|l| l.committed_index)
            .or_else(|| {
                members.iter().filter_map(|(id, _, _)| state.replica(*id, g.id)).map(|r| r.committed_index).max()
            })
            .unwrap_or(g.committed_index);
        for (member, _, voter) in members {
            let row = match state.replica(*member, g.id) {
                Some(r) => vec![
                    int(g.id),
                    int(*member),
                    Value::Text(r.role.clone()),
                    int(r.term),
                    int(r.committed_index),
                    int(r.applied_index),
                    int(leader_commit.saturating_sub(r.applied_index)),
                    int(r.log_size_bytes),
                    Value::Integer(*voter as i64),
                ],
                None => vec![
                    int(g.id),
                    int(*member),
                    Value::Text("unreachable".into()),
                    Value::Null,
                    Value::Null,
                    Value::Null,
                    Value::Null,
                    Value::Null,
                    Value::Integer(*voter as i64),
                ],
            };
            insert("replicas", row)?;
        }
    }
    let data_leader = state
        .groups
        .iter()
        .find(|g| g.kind == "data")
        .and_then(|g| g.status.leader)
        .map_or(Value::Null, |id| Value::Integer(id as i64));
    for table in catalog.tables.values() {
        let (shard_key, shards) = match &table.distribution {
            Distribution::Hash { column, shards } => (Value::Text(column.clone()), *shards),
            Distribution::Local | Distribution::Reference => (Value::Null, 1),
        };
        insert(
            "tables",
            vec![
                Value::Text(table.name.clone()),
                Value::Text(table.distribution.kind().into()),
                Value::Integer(crate::node::DATA_GROUP as i64),
                Value::Integer(table.columns.len() as i64),
                Value::Text(table.primary_key.join(",")),
                shard_key.clone(),
                Value::Integer(shards as i64),
            ],
        )?;
        if let Distribution::Hash { shards, .. } = &table.distribution {
            // Every shard lives in the one data group until groups are placed apart.
            for index in 0..*shards {
                let (min, max) = shoal_common::shard::range(index, *shards);
                insert(
                    "shards",
                    vec![
                        Value::Text(table.name.clone()),
                        Value::Integer(index as i64 + 1),
                        Value::Integer(min),
                        Value::Integer(max),
                        Value::Integer(crate::node::DATA_GROUP as i64),
                        data_leader.clone(),
                    ],
                )?;
            }
        }
    }
    Ok(())
}

/// What an administrative function returned, for its result table.
pub enum AdminResult {
    Verify(Vec<VerifyRow>),
    Membership(Vec<Step>),
}

/// Runs the administrative function a query calls.
pub async fn run_admin(node: &Node, call: AdminCall) -> Result<AdminResult> {
    Ok(match call {
        AdminCall::Verify => AdminResult::Verify(cluster::verify(node).await?),
        AdminCall::AddNode(id) => AdminResult::Membership(membership::add_node(node, id).await?),
        AdminCall::RemoveNode(id) => AdminResult::Membership(membership::remove_node(node, id).await?),
        AdminCall::SetReplicationFactor(n) => {
            AdminResult::Membership(membership::set_replication_factor(node, n).await?)
        }
    })
}

/// Fills the result table of an administrative function.
pub fn fill_admin(conn: &shoal_storage::Connection, result: &AdminResult) -> Result<()> {
    let int = |v: u64| Value::Integer(v as i64);
    let opt = |v: Option<u64>| v.map(int).unwrap_or(Value::Null);
    let (view, rows): (SystemView, Vec<Vec<Value>>) = match result {
        AdminResult::Verify(rows) => (
            shoal_sql::verify_view(),
            rows.iter()
                .map(|r| {
                    vec![
                        int(r.group),
                        int(r.index),
                        int(r.node_id),
                        r.checksum.clone().map(Value::Text).unwrap_or(Value::Null),
                        Value::Integer(r.agrees as i64),
                        Value::Text(r.detail.clone()),
                    ]
                })
                .collect(),
        ),
        AdminResult::Membership(steps) => (
            shoal_sql::membership_view(),
            steps
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    vec![
                        int(i as u64 + 1),
                        opt(s.group),
                        opt(s.node_id),
                        Value::Text(s.action.to_string()),
                        Value::Text(s.detail.clone()),
                    ]
                })
                .collect(),
        ),
    };
    conn.execute_batch(&view.create_sql()).map_err(from_sqlite)?;
    let placeholders: Vec<String> = (1..=view.columns.len()).map(|i| format!("?{i}")).collect();
    let sql = format!("INSERT INTO shoal.{} VALUES ({})", view.name, placeholders.join(", "));
    for row in rows {
        shoal_storage::run_statement(conn, &sql, &row)?;
    }
    Ok(())
}
