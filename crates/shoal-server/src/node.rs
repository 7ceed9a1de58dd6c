//! One node: its identity, its groups, the published catalog, and the
//! services it runs (PostgreSQL wire endpoint, admin HTTP).
//!
//! A node founds a cluster (no `--join`: node 1, its groups bootstrapped as
//! single voters) or joins one: the node at `--join` has the meta leader
//! give it an id, then every group's leader adds it as a learner, catches it
//! up and promotes it to voter (`cluster.rs`). A restarted node finds its
//! identity on disk and ignores `--join`.
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
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use shoal_common::{Error, Result, SqlState};
use shoal_raft::{Group, GroupConfig, GroupId, NodeId, Transport, META_GROUP};
use shoal_sql::Catalog;

use crate::cluster::{self, NodeService};
use crate::config::ServerConfig;
use crate::metrics::Metrics;

/// The id of the (single, for now) data group.
pub const DATA_GROUP: GroupId = 1;

/// Every group this node holds a replica of, meta first.
pub const ALL_GROUPS: [GroupId; 2] = [META_GROUP, DATA_GROUP];

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
    fn path(data_dir: &Path) -> std::path::PathBuf {
        data_dir.join("node.json")
    }

    fn load(data_dir: &Path) -> Result<Option<Identity>> {
        let path = Identity::path(data_dir);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                Error::environment(
                    SqlState::DATA_CORRUPTED,
                    format!("{} is not a valid identity file: {e}", path.display()),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
        }
    }

    fn save(&self, data_dir: &Path) -> Result<()> {
        let tmp = data_dir.join("node.json.tmp");
        let json = serde_json::to_vec_pretty(self).map_err(|e| Error::internal(e.to_string()))?;
        std::fs::write(&tmp, json)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, Identity::path(data_dir))?;
        std::fs::File::open(data_dir)?.sync_all()?;
        Ok(())
    }
}

/// One running node.
pub struct Node {
    pub config: ServerConfig,
    pub identity: Identity,
    pub transport: Transport,
    pub meta: Arc<Group>,
    pub data: Arc<Group>,
    catalog: RwLock<Arc<CatalogState>>,
    service: OnceLock<Arc<NodeService>>,
    pub metrics: Metrics,
    pub started: Instant,
}

impl Node {
    /// Opens the data directory, joins or founds the cluster, and starts the
    /// node's groups; peers reach it through `rpc_listener`.
    pub async fn start(config: ServerConfig, rpc_listener: tokio::net::TcpListener) -> Result<Arc<Node>> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| Error::io(format!("creating data directory {}", config.data_dir.display()), e))?;
        let transport = Transport::new();
        if let Some(files) = &config.rpc_tls {
            transport.set_tls(shoal_raft::NodeTls::load(files)?);
        }
        // Who we are: from disk; else admitted by the cluster at --join; else
        // the first node of a new cluster.
        let (identity, joined_now) = match (Identity::load(&config.data_dir)?, config.join) {
            (Some(identity), _) => (identity, false),
            (None, Some(seed)) => {
                let (node_id, cluster_id) = cluster::register_with(
                    &transport,
                    &seed.to_string(),
                    &config.pg_addr.to_string(),
                    &config.rpc_addr.to_string(),
                    &config.http_addr.to_string(),
                )
                .await?;
                let identity = Identity { node_id, cluster_id };
                identity.save(&config.data_dir)?;
                tracing::info!(node_id, seed = %seed, "joined the cluster");
                (identity, true)
            }
            (None, None) => {
                let identity = Identity { node_id: 1, cluster_id: format!("{:032x}", rand::random::<u128>()) };
                identity.save(&config.data_dir)?;
                (identity, false)
            }
        };
        transport.set_identity(identity.node_id, &identity.cluster_id);
        transport.serve(rpc_listener);
        // Only the founding node bootstraps its groups; others are added.
        let bootstrap = config.join.is_none();
        let group_config = |id: GroupId, dir: &str| GroupConfig {
            id,
            node_id: identity.node_id,
            dir: config.data_dir.join(dir),
            rpc_addr: config.rpc_addr.to_string(),
            fsync: config.fsync,
            transport: transport.clone(),
            bootstrap,
            snapshot_every: config.snapshot_every,
        };
        let meta = Group::open(group_config(META_GROUP, "meta")).await?;
        let data = Group::open(group_config(DATA_GROUP, "group-1")).await?;
        // A single-node cluster applies everything already committed before
        // planning against the catalog, and can record itself at once.
        let alone = bootstrap && meta.members().len() <= 1;
        if alone {
            for group in [&meta, &data] {
                group.catch_up(Duration::from_secs(60)).await?;
            }
        }
        let catalog = load_catalog(&data)?;
        let node = Arc::new(Node {
            config,
            identity,
            transport,
            meta,
            data,
            catalog: RwLock::new(CatalogState::new(catalog)),
            service: OnceLock::new(),
            metrics: Metrics::default(),
            started: Instant::now(),
        });
        let service = NodeService::new(&node);
        let _ = node.service.set(service.clone());
        node.transport.set_service(service);
        tokio::spawn(watch_catalog(Arc::downgrade(&node)));
        if joined_now {
            if let Some(seed) = node.config.join {
                cluster::add_self_as_replica(&node, &seed.to_string()).await?;
            }
        }
        if alone {
            cluster::register_self(&node).await?;
        } else {
            // Needs a quorum; the node serves (and its sessions retry) meanwhile.
            let weak = Arc::downgrade(&node);
            tokio::spawn(async move {
                for _ in 0..120 {
                    let Some(node) = weak.upgrade() else { return };
                    match cluster::register_self(&node).await {
                        Ok(()) => return,
                        Err(e) => tracing::debug!(error = %e, "recording this node's addresses; retrying"),
                    }
                    drop(node);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            });
        }
        Ok(node)
    }

    /// The service answering peers' calls.
    pub fn service(&self) -> Option<Arc<NodeService>> {
        self.service.get().cloned()
    }

    /// One of this node's groups.
    pub fn group(&self, id: GroupId) -> Result<&Arc<Group>> {
        match id {
            META_GROUP => Ok(&self.meta),
            DATA_GROUP => Ok(&self.data),
            other => Err(Error::internal(format!("group {other} is not on this node"))),
        }
    }

    /// The committed catalog.
    pub fn catalog(&self) -> Arc<CatalogState> {
        self.catalog.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Publishes a catalog that has just committed.
    pub fn publish_catalog(&self, catalog: Arc<CatalogState>) {
        *self.catalog.write().unwrap_or_else(|p| p.into_inner()) = catalog;
    }

    /// Stops the groups and the transport.
    pub async fn shutdown(&self) {
        self.data.shutdown().await;
        self.meta.shutdown().await;
        self.transport.shutdown();
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
