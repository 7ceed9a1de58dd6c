//! Shoal's own system views: `shoal.nodes`, `shoal.groups`, `shoal.replicas`,
//! `shoal.tables`, `shoal.shards`.
//!
//! They live here, beside `pg_catalog`, so the binder resolves
//! `shoal.<view>` with PostgreSQL output types, and the server creates the
//! SQLite tables behind them from the same definitions (one source of truth).
//! The server refills them with live Raft state before each query that reads
//! them (`shoal_server::catalog_views::refresh_system_views`); this crate
//! only knows their shape.

use shoal_common::DataType;

use crate::binder::quote;

/// One system view: its name in the `shoal` schema and its typed columns.
#[derive(Clone, Debug, PartialEq)]
pub struct SystemView {
    pub name: &'static str,
    pub columns: Vec<(&'static str, DataType)>,
}

impl SystemView {
    /// `DROP` + `CREATE` of the SQLite table behind the view, in the attached `shoal` schema.
    pub fn create_sql(&self) -> String {
        let cols: Vec<String> =
            self.columns.iter().map(|(n, t)| format!("{} {}", quote(n), t.sqlite_affinity())).collect();
        format!("DROP TABLE IF EXISTS shoal.{0}; CREATE TABLE shoal.{0} ({1});", quote(self.name), cols.join(", "))
    }
}

/// Every system view, in a stable order.
pub fn system_views() -> Vec<SystemView> {
    use DataType::*;
    let v = |name, columns| SystemView { name, columns };
    vec![
        v(
            "nodes",
            vec![
                ("node_id", Int8),
                ("cluster_id", Text),
                ("pg_addr", Text),
                ("rpc_addr", Text),
                ("http_addr", Text),
                ("is_self", Bool),
                ("uptime_seconds", Float8),
                ("is_live", Bool),
            ],
        ),
        v(
            "groups",
            vec![
                ("group_id", Int8),
                ("kind", Text),
                ("leader_node", Int8),
                ("term", Int8),
                ("last_log_index", Int8),
                ("committed_index", Int8),
                ("applied_index", Int8),
                ("snapshot_index", Int8),
                ("voters", Text),
                ("log_size_bytes", Int8),
                ("log_fsyncs", Int8),
                ("replication_factor", Int8),
            ],
        ),
        v(
            "replicas",
            vec![
                ("group_id", Int8),
                ("node_id", Int8),
                ("role", Text),
                ("term", Int8),
                ("committed_index", Int8),
                ("applied_index", Int8),
                ("lag", Int8),
                ("log_size_bytes", Int8),
                ("is_voter", Bool),
            ],
        ),
        v(
            "tables",
            vec![
                ("table_name", Text),
                ("kind", Text),
                ("group_id", Int8),
                ("column_count", Int8),
                ("primary_key", Text),
                ("shard_key", Text),
                ("shard_count", Int8),
            ],
        ),
        // One row per shard of each distributed table: the hash range it
        // owns (see `shoal_common::shard`) and the group that holds it.
        v(
            "shards",
            vec![
                ("table_name", Text),
                ("shard", Int8),
                ("hash_min", Int8),
                ("hash_max", Int8),
                ("group_id", Int8),
                ("leader_node", Int8),
            ],
        ),
    ]
}

/// The result table of the membership functions (`shoal.add_node`,
/// `shoal.remove_node`, `shoal.set_replication_factor`): one row per step taken.
pub fn membership_view() -> SystemView {
    use DataType::*;
    SystemView {
        name: "membership_change",
        columns: vec![("step", Int8), ("group_id", Int8), ("node_id", Int8), ("action", Text), ("detail", Text)],
    }
}

/// The result table of `shoal.verify()`, a consistency check the server
/// runs only when a query calls it (so it is not among [`system_views`]).
pub fn verify_view() -> SystemView {
    use DataType::*;
    SystemView {
        name: "verify",
        columns: vec![
            ("group_id", Int8),
            ("log_index", Int8),
            ("node_id", Int8),
            ("checksum", Text),
            ("agrees", Bool),
            ("detail", Text),
        ],
    }
}
