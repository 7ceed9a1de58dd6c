//! Admin HTTP: `/api/status` (JSON) and `/metrics` (Prometheus text).

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::node::Node;

/// The admin router of a node.
pub fn router(node: Arc<Node>) -> Router {
    Router::new().route("/api/status", get(status)).route("/metrics", get(metrics)).with_state(node)
}

async fn status(State(node): State<Arc<Node>>) -> impl IntoResponse {
    let groups: Vec<_> = [("meta", node.meta.status()), ("data", node.data.status())]
        .into_iter()
        .map(|(kind, g)| {
            json!({
                "group_id": g.id, "kind": kind, "role": g.role, "leader": g.leader, "term": g.term,
                "last_log_index": g.last_log_index, "committed_index": g.committed_index,
                "applied_index": g.applied_index, "snapshot_index": g.snapshot_index, "voters": g.voters,
                "log_size_bytes": g.log_size_bytes, "log_fsyncs": g.log_fsyncs,
                "log_fsync_micros_total": g.log_fsync_micros_total,
                "write_batches": g.write_batches, "pipelined_batches": g.pipelined_batches,
            })
        })
        .collect();
    Json(json!({
        "node_id": node.identity.node_id,
        "cluster_id": node.identity.cluster_id,
        "version": crate::SERVER_VERSION,
        "pg_addr": node.config.pg_addr.to_string(),
        "rpc_addr": node.config.rpc_addr.to_string(),
        "uptime_seconds": node.started.elapsed().as_secs_f64(),
        "connections": node.metrics.open_connections(),
        "tables": node.catalog().catalog.tables.len(),
        "groups": groups,
    }))
}

async fn metrics(State(node): State<Arc<Node>>) -> impl IntoResponse {
    node.metrics.set_group(&node.meta.status());
    node.metrics.set_group(&node.data.status());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], node.metrics.encode())
}
