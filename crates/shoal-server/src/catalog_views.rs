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
use shoal_raft::{GroupStatus, Reader};
use shoal_sql::Catalog;
use shoal_storage::from_sqlite;

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

/// Live node and group state, captured on the async side before the query.
pub struct SystemState {
    node_id: u64,
    cluster_id: String,
    pg_addr: String,
    rpc_addr: String,
    http_addr: String,
    uptime_seconds: f64,
    groups: Vec<(String, GroupStatus)>,
}

impl SystemState {
    pub fn capture(node: &Node) -> SystemState {
        SystemState {
            node_id: node.identity.node_id,
            cluster_id: node.identity.cluster_id.clone(),
            pg_addr: node.config.pg_addr.to_string(),
            rpc_addr: node.config.rpc_addr.to_string(),
            http_addr: node.config.http_addr.to_string(),
            uptime_seconds: node.started.elapsed().as_secs_f64(),
            groups: vec![("meta".into(), node.meta.status()), ("data".into(), node.data.status())],
        }
    }
}

/// Refills the `shoal.*` tables with the captured state.
pub fn refresh_system_views(conn: &shoal_storage::Connection, state: &SystemState, catalog: &Catalog) -> Result<()> {
    // The tables' shape comes from shoal-sql, which also types them for the binder.
    let sql: String = shoal_sql::system_views().iter().map(|v| v.create_sql()).collect();
    conn.execute_batch(&sql).map_err(from_sqlite)?;
    let insert = |table: &str, values: Vec<Value>| -> Result<()> {
        let placeholders: Vec<String> = (1..=values.len()).map(|i| format!("?{i}")).collect();
        let sql = format!("INSERT INTO shoal.{table} VALUES ({})", placeholders.join(", "));
        shoal_storage::run_statement(conn, &sql, &values).map(|_| ())
    };
    insert(
        "nodes",
        vec![
            Value::Integer(state.node_id as i64),
            Value::Text(state.cluster_id.clone()),
            Value::Text(state.pg_addr.clone()),
            Value::Text(state.rpc_addr.clone()),
            Value::Text(state.http_addr.clone()),
            Value::Integer(1),
            Value::Real(state.uptime_seconds),
        ],
    )?;
    for (kind, g) in &state.groups {
        let voters: Vec<String> = g.voters.iter().map(|v| v.to_string()).collect();
        insert(
            "groups",
            vec![
                Value::Integer(g.id as i64),
                Value::Text(kind.clone()),
                g.leader.map(|l| Value::Integer(l as i64)).unwrap_or(Value::Null),
                Value::Integer(g.term as i64),
                Value::Integer(g.last_log_index as i64),
                Value::Integer(g.committed_index as i64),
                Value::Integer(g.applied_index as i64),
                g.snapshot_index.map(|s| Value::Integer(s as i64)).unwrap_or(Value::Null),
                Value::Text(voters.join(",")),
                Value::Integer(g.log_size_bytes as i64),
                Value::Integer(g.log_fsyncs as i64),
            ],
        )?;
        insert(
            "replicas",
            vec![
                Value::Integer(g.id as i64),
                Value::Integer(g.node_id as i64),
                Value::Text(g.role.clone()),
                Value::Integer(g.term as i64),
                Value::Integer(g.committed_index as i64),
                Value::Integer(g.applied_index as i64),
                Value::Integer(g.committed_index.saturating_sub(g.applied_index) as i64),
                Value::Integer(g.log_size_bytes as i64),
            ],
        )?;
    }
    for table in catalog.tables.values() {
        insert(
            "tables",
            vec![
                Value::Text(table.name.clone()),
                Value::Text("local".into()),
                Value::Integer(crate::node::DATA_GROUP as i64),
                Value::Integer(table.columns.len() as i64),
                Value::Text(table.primary_key.join(",")),
            ],
        )?;
    }
    Ok(())
}
