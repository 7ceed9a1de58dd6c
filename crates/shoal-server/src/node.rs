//! One node: its identity, its groups, the published catalog, and the
//! services it runs (PostgreSQL wire endpoint, admin HTTP).
//!
//! ```text
//! data dir/
//!   node.json        identity: node id, cluster id (refuses to join another cluster)
//!   meta/            meta group (group 0): nodes, groups, settings
//!   group-1/         data group 1: user tables + their typed catalog
//!     replica.db     SQLite (WAL)
//!     log/           Raft log segments
//!     snapshots/
//! ```
//!
//! The typed SQL catalog lives in the data group's SQLite (`__shoal_catalog`),
//! written in the same transaction as the DDL it describes, so DDL is
//! transactional; the node publishes the committed catalog for planning.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use shoal_common::{Error, ExecContext, Result, SqlState, Value};
use shoal_raft::{Group, GroupConfig, GroupId, NodeId, META_GROUP};
use shoal_sql::Catalog;

use crate::config::ServerConfig;
use crate::metrics::Metrics;

/// The id of the (single, for now) data group.
pub const DATA_GROUP: GroupId = 1;

/// A catalog as published to sessions. `tag` changes whenever the content
/// does, so a connection knows when its `pg_catalog` copy is stale.
#[derive(Debug)]
pub struct CatalogState {
    pub tag: u64,
    pub catalog: Catalog,
}

static NEXT_CATALOG_TAG: AtomicU64 = AtomicU64::new(1);

impl CatalogState {
    /// Wraps a catalog with a fresh tag.
    pub fn new(catalog: Catalog) -> Arc<CatalogState> {
        Arc::new(CatalogState { tag: NEXT_CATALOG_TAG.fetch_add(1, Ordering::Relaxed), catalog })
    }
}

/// What a node keeps about itself on disk.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    pub node_id: NodeId,
    pub cluster_id: String,
}

impl Identity {
    fn load_or_create(data_dir: &Path) -> Result<Identity> {
        let path = data_dir.join("node.json");
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                Error::environment(
                    SqlState::DATA_CORRUPTED,
                    format!("{} is not a valid identity file: {e}", path.display()),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let identity = Identity { node_id: 1, cluster_id: format!("{:032x}", rand::random::<u128>()) };
                let tmp = data_dir.join("node.json.tmp");
                let json = serde_json::to_vec_pretty(&identity).map_err(|e| Error::internal(e.to_string()))?;
                std::fs::write(&tmp, json)?;
                std::fs::File::open(&tmp)?.sync_all()?;
                std::fs::rename(&tmp, &path)?;
                Ok(identity)
            }
            Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
        }
    }
}

/// One running node.
pub struct Node {
    pub config: ServerConfig,
    pub identity: Identity,
    pub meta: Arc<Group>,
    pub data: Arc<Group>,
    catalog: RwLock<Arc<CatalogState>>,
    pub metrics: Metrics,
    pub started: Instant,
}

impl Node {
    /// Opens the data directory and starts the node's groups.
    pub async fn start(config: ServerConfig) -> Result<Arc<Node>> {
        if config.join.is_some() {
            return Err(Error::unsupported("--join (multi-node clusters)")
                .with_hint("this build runs single-node clusters; start the node without --join"));
        }
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| Error::io(format!("creating data directory {}", config.data_dir.display()), e))?;
        let identity = Identity::load_or_create(&config.data_dir)?;
        let group_config = |id: GroupId, dir: &str| GroupConfig {
            id,
            node_id: identity.node_id,
            dir: config.data_dir.join(dir),
            rpc_addr: config.rpc_addr.to_string(),
            fsync: config.fsync,
        };
        let meta = Group::open(group_config(META_GROUP, "meta")).await?;
        let data = Group::open(group_config(DATA_GROUP, "group-1")).await?;
        // Apply everything already committed before planning against the catalog.
        for group in [&meta, &data] {
            group.catch_up(Duration::from_secs(60)).await?;
        }
        let catalog = load_catalog(&data)?;
        let node = Arc::new(Node {
            config,
            identity,
            meta,
            data,
            catalog: RwLock::new(CatalogState::new(catalog)),
            metrics: Metrics::default(),
            started: Instant::now(),
        });
        node.register_in_meta().await?;
        tokio::spawn(watch_catalog(Arc::downgrade(&node)));
        Ok(node)
    }

    /// The committed catalog.
    pub fn catalog(&self) -> Arc<CatalogState> {
        self.catalog.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Publishes a catalog that has just committed.
    pub fn publish_catalog(&self, catalog: Arc<CatalogState>) {
        *self.catalog.write().unwrap_or_else(|p| p.into_inner()) = catalog;
    }

    /// Records this node in the meta group's `nodes` table.
    async fn register_in_meta(&self) -> Result<()> {
        let ctx = ExecContext::now(rand::random());
        let mut txn = self.meta.begin(ctx).await?;
        txn.execute(
            "CREATE TABLE IF NOT EXISTS nodes (id INTEGER PRIMARY KEY, cluster_id TEXT NOT NULL, pg_addr TEXT NOT NULL, \
             rpc_addr TEXT NOT NULL, http_addr TEXT NOT NULL, started_at TEXT NOT NULL)"
                .into(),
            vec![],
            true,
        )
        .await?;
        txn.execute(
            "INSERT OR REPLACE INTO nodes (id, cluster_id, pg_addr, rpc_addr, http_addr, started_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, shoal_now())"
                .into(),
            vec![
                Value::Integer(self.identity.node_id as i64),
                Value::Text(self.identity.cluster_id.clone()),
                Value::Text(self.config.pg_addr.to_string()),
                Value::Text(self.config.rpc_addr.to_string()),
                Value::Text(self.config.http_addr.to_string()),
            ],
            true,
        )
        .await?;
        txn.commit().await?;
        Ok(())
    }

    /// Stops the groups.
    pub async fn shutdown(&self) {
        self.data.shutdown().await;
        self.meta.shutdown().await;
    }
}

/// Reads the committed catalog of a data group.
pub fn load_catalog(group: &Group) -> Result<Catalog> {
    match group.catalog_json()? {
        None => Ok(Catalog::default()),
        Some(json) => serde_json::from_str(&json).map_err(|e| {
            Error::environment(
                SqlState::DATA_CORRUPTED,
                format!("stored catalog of group {} is unreadable: {e}", group.id),
            )
        }),
    }
}

/// Reloads the catalog when an applied entry changed it (replays after a
/// restart; on followers once replication lands). A session that committed DDL
/// publishes its catalog itself, so this only catches changes made elsewhere.
async fn watch_catalog(node: std::sync::Weak<Node>) {
    let Some(mut epochs) = node.upgrade().map(|n| n.data.catalog_watch()) else { return };
    while epochs.changed().await.is_ok() {
        let Some(node) = node.upgrade() else { return };
        match load_catalog(&node.data) {
            Ok(catalog) if catalog != node.catalog().catalog => node.publish_catalog(CatalogState::new(catalog)),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "reloading the catalog failed"),
        }
    }
}
