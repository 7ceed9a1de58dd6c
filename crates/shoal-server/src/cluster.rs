//! A node's part in the cluster: joining, adding replicas, and routing
//! writes and linearizable reads to each group's leader.
//!
//! Every node runs the same [`NodeService`] behind the transport
//! ([`shoal_raft::Transport`]). A request that must run on a group's leader
//! ([`Call`]) is handled locally when this node leads the group and is
//! otherwise sent to the leader this node knows of, following the leader as
//! it moves (bounded retries while a group elects).
//!
//! ```text
//! session on a follower ──Autocommit / Begin·Execute·Commit──▶ leader's NodeService ──▶ Group (batcher / WriteTxn)
//!                       ──ReadIndex──▶ leader: quorum check ──▶ index; wait until applied here, read locally
//!                       ──Cancel / CancelForwarded──▶ leader: stop that statement (see crate::cancel)
//! joiner ──Register──▶ meta leader: allocate node id      ──AddReplica(g)──▶ leader of g: learner → voter
//! ```
//!
//! **Outcomes.** A forwarded request that never left this node (no leader,
//! connection refused) is retried or fails with a retryable error. One whose
//! answer was lost may or may not have committed: the session reports
//! SQLSTATE 40003 and says so, and nothing retries it blindly.
//!
//! **Remote transactions.** An interactive transaction opened from a follower
//! holds the leader's write slot; the leader keeps its [`WriteTxn`] under an
//! id and rolls it back if the origin stays silent for
//! [`REMOTE_TXN_IDLE_LIMIT`] (the origin crashed or was cut off).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use shoal_common::{Error, ExecContext, Result, SqlState, Value};
use shoal_raft::transport::BoxFuture;
use shoal_raft::{GroupId, NodeId, Service, WriteTxn, META_GROUP};
use shoal_storage::{ContentDigest, QueryOutput, StatementCancel};

use crate::cancel::{canceled, CancelState, Stopper};
use crate::consistency::{ReadMode, ReadPoint};
use crate::node::{Node, ALL_GROUPS, DATA_GROUP};

/// How long a forwarded request may take (a commit includes an fsync on a quorum).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a leader lets another node's BEGIN or autocommit write wait
/// for the write slot before answering [`Reply::SlotBusy`]: well inside
/// [`CALL_TIMEOUT`], so the answer arrives, and no transaction is begun
/// and no write run for a caller that gave up. The caller asks again, so
/// it waits as long as the transaction ahead of it lasts, as a lock wait
/// does in PostgreSQL (or until its statement_timeout or a cancel).
const SLOT_WAIT: Duration = Duration::from_secs(4);
/// How long a request may wait for its group to have a reachable leader.
const LEADER_WAIT: Duration = Duration::from_secs(10);
/// Pause between looks for a leader: short, so a write lands soon after an
/// election (connection attempts to a dead leader fail at once).
const LEADER_POLL: Duration = Duration::from_millis(20);
/// An interactive transaction opened from another node is rolled back after this long without a statement.
pub const REMOTE_TXN_IDLE_LIMIT: Duration = Duration::from_secs(60);

/// The table of nodes in the meta group.
pub const NODES_TABLE_SQL: &str =
    "CREATE TABLE IF NOT EXISTS nodes (id INTEGER PRIMARY KEY, cluster_id TEXT NOT NULL, \
     pg_addr TEXT NOT NULL, rpc_addr TEXT NOT NULL, http_addr TEXT NOT NULL, started_at TEXT NOT NULL)";
/// Nodes removed from the cluster: their ids are never reused and they may
/// not record themselves again.
pub const REMOVED_NODES_TABLE_SQL: &str = "CREATE TABLE IF NOT EXISTS removed_nodes (id INTEGER PRIMARY KEY)";
/// Cluster settings (`replication_factor`).
pub const SETTINGS_TABLE_SQL: &str = "CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value TEXT NOT NULL)";
const UPSERT_NODE_SQL: &str =
    "INSERT OR REPLACE INTO nodes (id, cluster_id, pg_addr, rpc_addr, http_addr, started_at) \
     SELECT ?1, ?2, ?3, ?4, ?5, shoal_now() WHERE NOT EXISTS (SELECT 1 FROM removed_nodes WHERE id = ?1)";
/// The replication factor when none is set: voting replicas per group.
pub const DEFAULT_REPLICATION_FACTOR: u64 = 3;
/// The largest replication factor accepted.
pub const MAX_REPLICATION_FACTOR: u64 = 7;

/// What one node asks another's [`NodeService`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Call {
    /// A new node asks for a node id (answered by the meta leader).
    Register {
        pg_addr: String,
        rpc_addr: String,
        http_addr: String,
    },
    /// Make `node_id` a replica of `group` (answered by the group's
    /// leader): a voter when `voter` says so, or (`None`) when the group has
    /// fewer voters than the replication factor, else a learner.
    AddReplica {
        group: GroupId,
        node_id: NodeId,
        rpc_addr: String,
        voter: Option<bool>,
    },
    /// Turn voter `node_id` of `group` into a learner (answered by the group's leader).
    DemoteReplica {
        group: GroupId,
        node_id: NodeId,
    },
    /// Remove `node_id` from `group` (answered by the group's leader).
    RemoveReplica {
        group: GroupId,
        node_id: NodeId,
    },
    /// The index a linearizable read must wait for (answered by the leader).
    ReadIndex {
        group: GroupId,
    },
    /// One autocommit write; `cancel_id` (chosen by the origin) names it
    /// for [`Call::CancelForwarded`].
    Autocommit {
        group: GroupId,
        ctx: ExecContext,
        sql: String,
        params: Vec<Value>,
        cancel_id: u64,
    },
    /// Cancel the forwarded statement `cancel_id` (an [`Call::Autocommit`]
    /// write not yet proposed, or a [`Call::Begin`] waiting for the write
    /// slot). Sent to the node the statement was sent to, which stops it if
    /// it runs there and otherwise passes the cancel on to the leader, as
    /// it passed the statement. Answered with [`Reply::CancelReached`].
    CancelForwarded {
        group: GroupId,
        cancel_id: u64,
    },
    /// Opens an interactive transaction on the leader; its wait for the
    /// write slot can be cancelled under `cancel_id`.
    Begin {
        group: GroupId,
        ctx: ExecContext,
        cancel_id: u64,
    },
    /// Runs statement number `statement` (counted by the origin) of `txn`.
    Execute {
        txn: u64,
        statement: u64,
        sql: String,
        params: Vec<Value>,
        record: bool,
    },
    /// Cancel statement `statement` of `txn` if it is still running.
    Cancel {
        txn: u64,
        statement: u64,
    },
    Savepoint {
        txn: u64,
        sql: String,
    },
    StoreCatalog {
        txn: u64,
        json: String,
    },
    Commit {
        txn: u64,
    },
    Rollback {
        txn: u64,
    },
    /// This node's view of itself and its replicas (for system views).
    Status,
    /// Append a checksum entry to `group` (answered by its leader).
    ProposeChecksum {
        group: GroupId,
    },
    /// This node's content digest (total and per table) at the checksum
    /// entry `index` of `group`.
    ChecksumAt {
        group: GroupId,
        index: u64,
    },
}

impl Call {
    /// The group whose leader must answer, if any.
    fn leader_of(&self) -> Option<GroupId> {
        match self {
            Call::Register { .. } => Some(META_GROUP),
            Call::AddReplica { group, .. }
            | Call::DemoteReplica { group, .. }
            | Call::RemoveReplica { group, .. }
            | Call::ReadIndex { group }
            | Call::ProposeChecksum { group }
            | Call::Autocommit { group, .. }
            | Call::CancelForwarded { group, .. }
            | Call::Begin { group, .. } => Some(*group),
            // Addressed to the node that holds the transaction.
            _ => None,
        }
    }
}

/// The answers to [`Call`]s.
#[derive(Debug, Serialize, Deserialize)]
pub enum Reply {
    Registered {
        node_id: NodeId,
        cluster_id: String,
    },
    Done,
    Index(u64),
    Output(QueryOutput),
    /// A write's output and the log index that carried it.
    Written(QueryOutput, u64),
    Begun {
        txn: u64,
        applied: u64,
    },
    Status(NodeStatus),
    Checksum(Option<ContentDigest>),
    /// The answer to [`Call::CancelForwarded`]: whether this node holds the
    /// statement (and set its flag, unless it was already past cancelling).
    /// `false`: not here (yet, or any more); the origin sends it again.
    CancelReached(bool),
    /// The answer to a [`Call::Begin`] or [`Call::Autocommit`] that waited
    /// `SLOT_WAIT` (4 s) for the write slot without getting it (another
    /// transaction holds it): no transaction was begun, the write never
    /// runs; the origin asks again.
    SlotBusy,
}

/// What a node reports about itself ([`Call::Status`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeStatus {
    pub node_id: NodeId,
    pub uptime_seconds: f64,
    pub groups: Vec<shoal_raft::GroupStatus>,
}

impl NodeStatus {
    /// This node's status, as reported to others.
    pub fn of(node: &Node) -> NodeStatus {
        NodeStatus {
            node_id: node.identity.node_id,
            uptime_seconds: node.started.elapsed().as_secs_f64(),
            groups: vec![node.meta.status(), node.data.status()],
        }
    }
}

/// How long a replica may take to apply a checksum entry and checksum its content.
const CHECKSUM_TIMEOUT: Duration = Duration::from_secs(60);

/// One replica's answer in a consistency check ([`verify`]).
#[derive(Clone, Debug, PartialEq)]
pub struct VerifyRow {
    pub group: GroupId,
    pub index: u64,
    pub node_id: NodeId,
    /// The content checksum, when the replica computed one.
    pub checksum: Option<String>,
    /// All replicas of the group that computed a checksum agree.
    pub agrees: bool,
    /// What happened here: `ok`, `mismatch`, or why there is no checksum.
    pub detail: String,
}

/// Checks that the replicas of every group hold the same data: each
/// group's leader appends a checksum entry, every replica checksums its
/// content at exactly that index, and the answers are compared.
pub async fn verify(node: &Node) -> Result<Vec<VerifyRow>> {
    let mut rows = Vec::new();
    for group in ALL_GROUPS {
        let index = match forward(node, group, &Call::ProposeChecksum { group }).await? {
            Reply::Index(index) => index,
            other => return Err(unexpected(&other)),
        };
        let members = node.group(group)?.members();
        let answers = ask_replicas(node, group, index, &members).await;
        let computed: std::collections::BTreeSet<&String> =
            answers.iter().filter_map(|a| a.as_ref().ok().and_then(Option::as_ref)).map(|d| &d.total).collect();
        let agrees = computed.len() <= 1;
        let mismatch = match agrees {
            true => String::new(),
            false => match differing_tables(&answers) {
                tables if tables.is_empty() => "mismatch".to_string(),
                tables => format!("mismatch in {}", tables.join(", ")),
            },
        };
        for ((member, _, _), answer) in members.iter().zip(&answers) {
            let (checksum, detail) = match answer {
                Ok(Some(digest)) => {
                    (Some(digest.total.clone()), if agrees { "ok".to_string() } else { mismatch.clone() })
                }
                Ok(None) => (None, "skipped: this replica restarted or installed a later snapshot".to_string()),
                Err(e) => (None, format!("no answer: {}", e.message)),
            };
            rows.push(VerifyRow { group, index, node_id: *member, checksum, agrees, detail });
        }
    }
    Ok(rows)
}

/// Asks every one of `members` for its content digest at the checksum
/// entry `index` of `group`: this node answers from its own, the others over
/// the transport. `Ok(None)`: that replica has no digest for the entry.
async fn ask_replicas(
    node: &Node,
    group: GroupId,
    index: u64,
    members: &[(NodeId, String, bool)],
) -> Vec<Result<Option<ContentDigest>>> {
    let payload = encode(&Call::ChecksumAt { group, index });
    futures::future::join_all(members.iter().map(|(member, addr, _)| {
        let payload = payload.clone();
        async move {
            if *member == node.identity.node_id {
                return node.group(group)?.checksum_at(index, CHECKSUM_TIMEOUT).await;
            }
            let bytes = node.transport.call_service(addr, payload?, CHECKSUM_TIMEOUT + CALL_TIMEOUT).await?;
            match decode::<Reply>(&bytes)? {
                Reply::Checksum(digest) => Ok(digest),
                other => Err(unexpected(&other)),
            }
        }
    }))
    .await
}

/// The tables whose checksums differ between the replicas that answered,
/// by name.
fn differing_tables(answers: &[Result<Option<ContentDigest>>]) -> Vec<String> {
    // Table → the checksums the replicas hold for it (a table missing on
    // a replica counts as a checksum of its own).
    let mut by_table: std::collections::BTreeMap<String, std::collections::BTreeSet<Option<String>>> =
        std::collections::BTreeMap::new();
    let digests: Vec<&Vec<(String, String)>> =
        answers.iter().filter_map(|a| a.as_ref().ok().and_then(Option::as_ref)).map(|d| &d.tables).collect();
    for digest in &digests {
        for (table, _) in digest.iter() {
            by_table.entry(table.clone()).or_default();
        }
    }
    for digest in &digests {
        let held: HashMap<&str, &str> = digest.iter().map(|(t, c)| (t.as_str(), c.as_str())).collect();
        for (table, sums) in by_table.iter_mut() {
            sums.insert(held.get(table.as_str()).map(|c| c.to_string()));
        }
    }
    by_table.into_iter().filter(|(_, sums)| sums.len() > 1).map(|(table, _)| table).collect()
}

/// How long a status request to a peer may take before it counts as down.
const STATUS_TIMEOUT: Duration = Duration::from_millis(1000);

/// Asks the node at `rpc_addr` for its status (`None`: unreachable).
pub async fn peer_status(node: &Node, rpc_addr: &str) -> Option<NodeStatus> {
    let payload = encode(&Call::Status).ok()?;
    let bytes = node.transport.call_service(rpc_addr, payload, STATUS_TIMEOUT).await.ok()?;
    match decode::<Reply>(&bytes) {
        Ok(Reply::Status(status)) => Some(status),
        _ => None,
    }
}

fn unexpected(reply: &Reply) -> Error {
    Error::internal(format!("unexpected reply from a peer: {reply:?}"))
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    bincode::serialize(value).map_err(|e| Error::internal(format!("encoding a cluster call: {e}")))
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T> {
    bincode::deserialize(bytes).map_err(|e| {
        Error::environment(SqlState::PROTOCOL_VIOLATION, format!("undecodable cluster message from a peer: {e}"))
    })
}

/// Serves [`Call`]s for this node.
pub struct NodeService {
    node: Weak<Node>,
    remote_txns: Mutex<HashMap<u64, RemoteTxnSlot>>,
    next_txn: AtomicU64,
    /// Statements from other nodes while they wait or run here (autocommit
    /// writes, BEGIN's wait for the write slot), by cancel id.
    forwarded: Mutex<HashMap<u64, StatementCancel>>,
}

struct RemoteTxnSlot {
    txn: Arc<tokio::sync::Mutex<Option<WriteTxn>>>,
    /// The transaction's running and cancelled statements, kept outside the
    /// transaction's lock, which the running statement holds.
    statements: Arc<Mutex<Statements>>,
    last_used: Instant,
}

/// A remote transaction, locked by the call that uses it.
type SharedTxn = Arc<tokio::sync::Mutex<Option<WriteTxn>>>;

/// What a remote transaction's origin asked of its statements.
#[derive(Default)]
struct Statements {
    /// The statement running now: its number and cancel flag.
    running: Option<(u64, StatementCancel)>,
    /// The highest statement number a [`Call::Cancel`] named. The origin
    /// numbers statements in order, so a cancel that overtook its statement
    /// still stops it when it arrives, and a late cancel never stops a
    /// later statement.
    cancelled: u64,
}

/// Removes a registered cancel flag when its call ends.
struct Unregister<'a, K: std::hash::Hash + Eq + Copy, V> {
    map: &'a Mutex<HashMap<K, V>>,
    key: K,
}

impl<K: std::hash::Hash + Eq + Copy, V> Drop for Unregister<'_, K, V> {
    fn drop(&mut self) {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.key);
    }
}

impl NodeService {
    /// A service for `node`; also starts the reaper of abandoned remote transactions.
    pub fn new(node: &Arc<Node>) -> Arc<NodeService> {
        let service = Arc::new(NodeService {
            node: Arc::downgrade(node),
            remote_txns: Mutex::new(HashMap::new()),
            next_txn: AtomicU64::new(1),
            forwarded: Mutex::new(HashMap::new()),
        });
        tokio::spawn(reap_remote_txns(Arc::downgrade(&service)));
        service
    }

    /// Registers a forwarded statement under its origin's `cancel_id` until
    /// the guard drops (see [`Call::CancelForwarded`]).
    fn register_forwarded(&self, cancel_id: u64) -> (StatementCancel, Unregister<'_, u64, StatementCancel>) {
        let cancel = StatementCancel::new();
        self.forwarded.lock().unwrap_or_else(|p| p.into_inner()).insert(cancel_id, cancel.clone());
        (cancel, Unregister { map: &self.forwarded, key: cancel_id })
    }

    /// Cancels the forwarded statement `cancel_id`; false when it is not here.
    fn cancel_forwarded(&self, cancel_id: u64) -> bool {
        let cancel = self.forwarded.lock().unwrap_or_else(|p| p.into_inner()).get(&cancel_id).cloned();
        match cancel {
            Some(cancel) => {
                // False when it was already proposed: it reports its real outcome.
                cancel.cancel();
                true
            }
            None => false,
        }
    }

    fn node(&self) -> Result<Arc<Node>> {
        self.node.upgrade().ok_or_else(|| Error::environment(SqlState::ADMIN_SHUTDOWN, "node is shutting down"))
    }

    fn remote_txn(&self, id: u64) -> Result<Arc<tokio::sync::Mutex<Option<WriteTxn>>>> {
        self.remote_txn_slot(id).map(|(txn, _)| txn)
    }

    /// A remote transaction and its statements' cancel state.
    fn remote_txn_slot(&self, id: u64) -> Result<(SharedTxn, Arc<Mutex<Statements>>)> {
        let mut txns = self.remote_txns.lock().unwrap_or_else(|p| p.into_inner());
        let slot = txns.get_mut(&id).ok_or_else(|| {
            Error::new(SqlState::SERIALIZATION_FAILURE, "the transaction was abandoned on the group's leader")
                .with_detail(format!("it was idle for longer than {REMOTE_TXN_IDLE_LIMIT:?}, or the leader restarted"))
                .with_hint("roll back and retry the transaction")
        })?;
        slot.last_used = Instant::now();
        Ok((slot.txn.clone(), slot.statements.clone()))
    }

    async fn handle_call(&self, call: Call) -> Result<Reply> {
        let node = self.node()?;
        if let Call::CancelForwarded { cancel_id, .. } = call {
            // The statement runs where it was delivered if that node took
            // itself for the leader; only otherwise was it passed on.
            if self.cancel_forwarded(cancel_id) {
                return Ok(Reply::CancelReached(true));
            }
        }
        if let Some(group_id) = call.leader_of() {
            if !node.group(group_id)?.is_leader() {
                // Not ours to answer: pass it on to the leader we know of.
                return forward(&node, group_id, &call).await;
            }
        }
        self.run_here(call).await
    }

    /// Handles a call on this node (the caller checked it leads the group).
    async fn run_here(&self, call: Call) -> Result<Reply> {
        let node = self.node()?;
        match call {
            Call::Register { pg_addr, rpc_addr, http_addr } => {
                let (node_id, replaced) = allocate_node_id(&node, &pg_addr, &rpc_addr, &http_addr).await?;
                // A node that registers again from the same address lost its
                // data directory: its old replicas are gone for good, and
                // leaving them as voters would raise every quorum.
                for old in replaced {
                    for group in [DATA_GROUP, META_GROUP] {
                        forward(&node, group, &Call::RemoveReplica { group, node_id: old }).await?;
                    }
                    tracing::info!(old, new = node_id, %rpc_addr, "a node rejoined with a wiped directory");
                }
                Ok(Reply::Registered { node_id, cluster_id: node.identity.cluster_id.clone() })
            }
            Call::RemoveReplica { group, node_id } => {
                node.group(group)?.remove_replica(node_id).await?;
                Ok(Reply::Done)
            }
            Call::AddReplica { group, node_id, rpc_addr, voter } => {
                let group = node.group(group)?;
                let voter = match voter {
                    Some(voter) => voter,
                    None => {
                        let voters = group.members().iter().filter(|(_, _, voter)| *voter).count() as u64;
                        voters < crate::membership::replication_factor(&node).await
                    }
                };
                group.add_replica(node_id, rpc_addr, voter).await?;
                Ok(Reply::Done)
            }
            Call::DemoteReplica { group, node_id } => {
                node.group(group)?.demote_replica(node_id).await?;
                Ok(Reply::Done)
            }
            Call::ReadIndex { group } => Ok(Reply::Index(node.group(group)?.leader_read_index().await?)),
            Call::Autocommit { group, ctx, sql, params, cancel_id } => {
                let (cancel, _unregister) = self.register_forwarded(cancel_id);
                let write = node.group(group)?.write_autocommit_cancellable(ctx, sql, params, cancel.clone());
                let mut write = std::pin::pin!(write);
                let (output, index) = tokio::select! {
                    written = &mut write => written?,
                    () = tokio::time::sleep(SLOT_WAIT) => {
                        // Still queued (behind a transaction holding the
                        // slot): withdrawn, it never runs, and the origin
                        // sends it again rather than time out on a write
                        // whose outcome it could not tell.
                        if cancel.withdraw() {
                            return Ok(Reply::SlotBusy);
                        }
                        write.await?
                    }
                };
                Ok(Reply::Written(output, index))
            }
            Call::CancelForwarded { cancel_id, .. } => Ok(Reply::CancelReached(self.cancel_forwarded(cancel_id))),
            Call::Begin { group, ctx, cancel_id } => {
                let group = node.group(group)?;
                let (cancel, unregister) = self.register_forwarded(cancel_id);
                let Some(txn) = group.try_begin_within(ctx, &cancel, SLOT_WAIT).await? else {
                    return Ok(Reply::SlotBusy);
                };
                drop(unregister);
                let applied = group.applied_index();
                let id = self.next_txn.fetch_add(1, Ordering::Relaxed);
                let slot = RemoteTxnSlot {
                    txn: Arc::new(tokio::sync::Mutex::new(Some(txn))),
                    statements: Arc::default(),
                    last_used: Instant::now(),
                };
                self.remote_txns.lock().unwrap_or_else(|p| p.into_inner()).insert(id, slot);
                Ok(Reply::Begun { txn: id, applied })
            }
            Call::Execute { txn, statement, sql, params, record } => {
                let (slot, statements) = self.remote_txn_slot(txn)?;
                let mut guard = slot.lock().await;
                let writer = guard.as_mut().ok_or_else(|| Error::internal("remote transaction already finished"))?;
                let cancel = StatementCancel::new();
                {
                    let mut statements = statements.lock().unwrap_or_else(|p| p.into_inner());
                    if statement <= statements.cancelled {
                        // Its cancel overtook it: it never runs.
                        return Err(shoal_storage::cancel::canceled());
                    }
                    statements.running = Some((statement, cancel.clone()));
                }
                let result = writer.execute_cancellable(sql, params, record, Some(cancel)).await;
                statements.lock().unwrap_or_else(|p| p.into_inner()).running = None;
                Ok(Reply::Output(result?))
            }
            Call::Cancel { txn, statement } => {
                let statements =
                    self.remote_txns.lock().unwrap_or_else(|p| p.into_inner()).get(&txn).map(|s| s.statements.clone());
                if let Some(statements) = statements {
                    let mut statements = statements.lock().unwrap_or_else(|p| p.into_inner());
                    statements.cancelled = statements.cancelled.max(statement);
                    // Only the statement the origin meant: a late request
                    // must not stop the transaction's next statement.
                    if let Some((_, cancel)) = statements.running.as_ref().filter(|(n, _)| *n == statement) {
                        cancel.cancel();
                    }
                }
                Ok(Reply::Done)
            }
            Call::Savepoint { txn, sql } => {
                let slot = self.remote_txn(txn)?;
                let mut guard = slot.lock().await;
                let writer = guard.as_mut().ok_or_else(|| Error::internal("remote transaction already finished"))?;
                writer.savepoint(sql).await?;
                Ok(Reply::Done)
            }
            Call::StoreCatalog { txn, json } => {
                let slot = self.remote_txn(txn)?;
                let mut guard = slot.lock().await;
                let writer = guard.as_mut().ok_or_else(|| Error::internal("remote transaction already finished"))?;
                writer.store_catalog(json).await?;
                Ok(Reply::Done)
            }
            Call::Commit { txn } => {
                // Missing means abandoned (see `remote_txn`'s error).
                let Some(slot) = self.take_txn(txn) else {
                    return Err(self
                        .remote_txn(txn)
                        .err()
                        .unwrap_or_else(|| Error::internal("remote transaction missing")));
                };
                let writer = slot.lock().await.take().ok_or_else(|| Error::internal("remote transaction finished"))?;
                Ok(Reply::Index(writer.commit().await?))
            }
            Call::Status => Ok(Reply::Status(NodeStatus::of(&node))),
            Call::ProposeChecksum { group } => Ok(Reply::Index(node.group(group)?.propose_checksum().await?)),
            Call::ChecksumAt { group, index } => {
                Ok(Reply::Checksum(node.group(group)?.checksum_at(index, CHECKSUM_TIMEOUT).await?))
            }
            Call::Rollback { txn } => {
                if let Some(slot) = self.take_txn(txn) {
                    if let Some(writer) = slot.lock().await.take() {
                        writer.rollback().await?;
                    }
                }
                Ok(Reply::Done)
            }
        }
    }

    fn take_txn(&self, id: u64) -> Option<Arc<tokio::sync::Mutex<Option<WriteTxn>>>> {
        self.remote_txns.lock().unwrap_or_else(|p| p.into_inner()).remove(&id).map(|slot| slot.txn)
    }
}

impl Service for NodeService {
    fn handle(&self, _from: Option<NodeId>, request: Vec<u8>) -> BoxFuture<Result<Vec<u8>>> {
        let call = decode::<Call>(&request);
        // The future must be 'static: work on a strong handle to self.
        let this = self.node.upgrade().and_then(|node| node.service());
        Box::pin(async move {
            let this = this.ok_or_else(|| Error::environment(SqlState::ADMIN_SHUTDOWN, "node is shutting down"))?;
            let reply = this.handle_call(call?).await?;
            encode(&reply)
        })
    }
}

async fn reap_remote_txns(service: Weak<NodeService>) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        let Some(service) = service.upgrade() else { return };
        let expired: Vec<_> = {
            let mut txns = service.remote_txns.lock().unwrap_or_else(|p| p.into_inner());
            let ids: Vec<u64> =
                txns.iter().filter(|(_, s)| s.last_used.elapsed() > REMOTE_TXN_IDLE_LIMIT).map(|(id, _)| *id).collect();
            ids.into_iter().filter_map(|id| txns.remove(&id)).collect()
        };
        for slot in expired {
            if let Some(writer) = slot.txn.lock().await.take() {
                tracing::warn!("rolling back a remote transaction whose origin went silent");
                let _ = writer.rollback().await;
            }
        }
    }
}

/// On the meta leader: gives a new node the next id and records it; also
/// returns the ids previously registered at the same RPC address.
async fn allocate_node_id(
    node: &Node,
    pg_addr: &str,
    rpc_addr: &str,
    http_addr: &str,
) -> Result<(NodeId, Vec<NodeId>)> {
    let mut txn = node.meta.begin(ExecContext::now(rand::random())).await?;
    txn.execute(NODES_TABLE_SQL.into(), vec![], true).await?;
    txn.execute(REMOVED_NODES_TABLE_SQL.into(), vec![], true).await?;
    // Ids are never reused: a node whose directory was wiped lost the log
    // it had acknowledged, so it must come back as a new replica.
    let next = txn
        .execute(
            "SELECT coalesce(max(id), 0) + 1 FROM (SELECT id FROM nodes UNION ALL SELECT id FROM removed_nodes)".into(),
            vec![],
            false,
        )
        .await?;
    let id = match next.rows.first().and_then(|r| r.first()) {
        Some(Value::Integer(id)) => *id,
        other => return Err(Error::internal(format!("allocating a node id: {other:?}"))),
    };
    let previous = txn
        .execute("SELECT id FROM nodes WHERE rpc_addr = ?1".into(), vec![Value::Text(rpc_addr.into())], false)
        .await?;
    let replaced: Vec<NodeId> = previous
        .rows
        .iter()
        .filter_map(|r| match r.first() {
            Some(Value::Integer(id)) => Some(*id as NodeId),
            _ => None,
        })
        .collect();
    if !replaced.is_empty() {
        txn.execute("DELETE FROM nodes WHERE rpc_addr = ?1".into(), vec![Value::Text(rpc_addr.into())], true).await?;
    }
    txn.execute(
        UPSERT_NODE_SQL.into(),
        vec![
            Value::Integer(id),
            Value::Text(node.identity.cluster_id.clone()),
            Value::Text(pg_addr.into()),
            Value::Text(rpc_addr.into()),
            Value::Text(http_addr.into()),
        ],
        true,
    )
    .await?;
    txn.commit().await?;
    Ok((id as NodeId, replaced))
}

/// Records (or refreshes) this node's addresses in the meta group.
pub async fn register_self(node: &Node) -> Result<()> {
    let id = node.identity.node_id as i64;
    for (sql, params) in [
        (NODES_TABLE_SQL, vec![]),
        (REMOVED_NODES_TABLE_SQL, vec![]),
        (
            UPSERT_NODE_SQL,
            vec![
                Value::Integer(id),
                Value::Text(node.identity.cluster_id.clone()),
                Value::Text(node.config.pg_addr.to_string()),
                Value::Text(node.config.rpc_addr.to_string()),
                Value::Text(node.config.http_addr.to_string()),
            ],
        ),
    ] {
        write_autocommit(node, META_GROUP, ExecContext::now(rand::random()), sql.to_string(), params).await?;
    }
    Ok(())
}

/// Runs `call` on the leader of `group`: here when this node leads it,
/// otherwise at the leader this node knows of, following leadership changes
/// while the call has certainly not been delivered.
pub(crate) async fn forward(node: &Node, group: GroupId, call: &Call) -> Result<Reply> {
    forward_until(node, group, call, None).await
}

/// Where a forwarded statement was sent (`None` until it is), so that its
/// cancel takes the same way.
type SentTo = Arc<Mutex<Option<Destination>>>;

#[derive(Clone, Debug)]
enum Destination {
    /// This node led the group and runs the statement itself.
    Here,
    /// The peer at this RPC address.
    Peer(String),
}

/// [`forward`] for a session's statement, which gives up with 57014 when
/// `cancel` fires while the call has certainly not been delivered yet
/// (waiting for a leader, or after a connection that failed), and records
/// in `sent_to` where it delivers it. Once sent, the caller waits for the
/// answer: the statement may run there, and only that node knows the outcome.
async fn forward_until(
    node: &Node,
    group: GroupId,
    call: &Call,
    stop: Option<(&CancelState, &SentTo)>,
) -> Result<Reply> {
    let mut payload = None;
    let mut last_error = None;
    let deadline = Instant::now() + LEADER_WAIT;
    let sent = |to: Destination| {
        if let Some((_, sent_to)) = stop {
            *sent_to.lock().unwrap_or_else(|p| p.into_inner()) = Some(to);
        }
    };
    loop {
        if last_error.is_some() {
            if Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(LEADER_POLL).await;
        }
        if let Some(reason) = stop.and_then(|(cancel, _)| cancel.reason()) {
            return Err(canceled(Some(reason)));
        }
        let local = node.group(group)?;
        if local.is_leader() {
            let service =
                node.service().ok_or_else(|| Error::environment(SqlState::CANNOT_CONNECT_NOW, "node is starting"))?;
            sent(Destination::Here);
            return Box::pin(service.run_here(call.clone())).await;
        }
        let Some((leader, addr)) = local.leader() else {
            last_error = Some(no_leader(group));
            continue;
        };
        if leader == node.identity.node_id {
            // Elected here a moment ago; is_leader() agrees on the next turn.
            last_error = Some(no_leader(group));
            continue;
        }
        let bytes = match &payload {
            Some(bytes) => bytes,
            None => payload.insert(encode(call)?),
        };
        sent(Destination::Peer(addr.clone()));
        match node.transport.call_service(&addr, bytes.clone(), CALL_TIMEOUT).await {
            Ok(bytes) => return decode(&bytes),
            // Never delivered: safe to try again, perhaps at a new leader.
            Err(e) if e.code == SqlState::CONNECTION_FAILURE || e.code == SqlState::CONNECTION_REJECTED => {
                last_error = Some(e)
            }
            Err(e) => return Err(e),
        }
    }
    Err(last_error.unwrap_or_else(|| no_leader(group)))
}

fn no_leader(group: GroupId) -> Error {
    Error::environment(SqlState::SERIALIZATION_FAILURE, format!("group {group} has no reachable leader"))
        .with_hint("the group is electing a leader or a majority of its replicas is down; retry")
}

/// One autocommit write to `group`, on its leader; returns its output and
/// the log index that carried it.
pub async fn write_autocommit(
    node: &Node,
    group: GroupId,
    ctx: ExecContext,
    sql: String,
    params: Vec<Value>,
) -> Result<(QueryOutput, u64)> {
    let local = node.group(group)?;
    retry_not_committed(|| async {
        if local.is_leader() {
            return local.write_autocommit(ctx, sql.clone(), params.clone()).await;
        }
        let call = Call::Autocommit { group, ctx, sql: sql.clone(), params: params.clone(), cancel_id: rand::random() };
        loop {
            match forward(node, group, &call).await? {
                Reply::Written(output, index) => return Ok((output, index)),
                Reply::SlotBusy => continue,
                other => return Err(unexpected(&other)),
            }
        }
    })
    .await
}

/// Runs an autocommit write `attempt` until it commits or fails for a reason
/// other than being certainly not committed (no leader yet, or leadership
/// moved before the proposal: 40001), for up to [`LEADER_WAIT`]. So a client
/// does not see a failover; the attempt keeps its execution context. An
/// outcome that is unknown (40003) is never retried.
async fn retry_not_committed<F, Fut>(mut attempt: F) -> Result<(QueryOutput, u64)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(QueryOutput, u64)>>,
{
    let deadline = Instant::now() + LEADER_WAIT;
    loop {
        match attempt().await {
            Err(e) if e.code == SqlState::SERIALIZATION_FAILURE && Instant::now() < deadline => {
                tracing::debug!(error = %e, "autocommit write not committed; retrying at the leader");
                tokio::time::sleep(LEADER_POLL).await;
            }
            other => return other,
        }
    }
}

/// [`write_autocommit`] for a session, which `cancel` can stop: on this
/// node through the statement's cancel flag, on a remote leader with
/// [`Call::CancelForwarded`] (see `forwarded_stopper`). A write already
/// proposed is not stopped.
pub async fn write_autocommit_cancellable(
    node: &Arc<Node>,
    group: GroupId,
    ctx: ExecContext,
    sql: String,
    params: Vec<Value>,
    cancel: &CancelState,
) -> Result<(QueryOutput, u64)> {
    let local = node.group(group)?;
    retry_not_committed(|| async {
        if local.is_leader() {
            let (flag, _registered) = cancel.register_flag()?;
            return local.write_autocommit_cancellable(ctx, sql.clone(), params.clone(), flag).await;
        }
        let cancel_id: u64 = rand::random();
        let sent_to = SentTo::default();
        let _registered = cancel.register(forwarded_stopper(node, group, cancel_id, &sent_to))?;
        let call = Call::Autocommit { group, ctx, sql: sql.clone(), params: params.clone(), cancel_id };
        loop {
            match forward_until(node, group, &call, Some((cancel, &sent_to))).await? {
                Reply::Written(output, index) => return Ok((output, index)),
                // Withdrawn unrun after waiting behind a transaction: send it again.
                Reply::SlotBusy => continue,
                other => return Err(unexpected(&other)),
            }
        }
    })
    .await
}

/// How soon a cancel for a forwarded statement is sent again when it did
/// not find the statement (yet).
const CANCEL_RESEND: Duration = Duration::from_millis(10);
/// How long one cancel request may take.
const CANCEL_CALL_TIMEOUT: Duration = Duration::from_secs(1);

/// The stopper of a statement forwarded to `group`'s leader under
/// `cancel_id` (an autocommit write, or BEGIN's wait for the write slot).
///
/// The cancel goes the statement's way: to the node the statement was
/// delivered to (`sent_to`), which stops it if it runs there or passes the
/// cancel on to its leader. It can still overtake the statement (each
/// request runs in its own task there, and a statement passed on makes one
/// more hop), so one that did not find the statement is sent again every
/// [`CANCEL_RESEND`] until it does ([`Reply::CancelReached`]), or until
/// the statement's call has ended (the caller drops `sent_to`). Nothing is
/// remembered on the leader, and the resending task lives no longer than
/// the call it chases.
fn forwarded_stopper(node: &Arc<Node>, group: GroupId, cancel_id: u64, sent_to: &SentTo) -> Stopper {
    let node = Arc::downgrade(node);
    let sent_to = Arc::downgrade(sent_to);
    Arc::new(move || {
        let (node, sent_to) = (node.clone(), sent_to.clone());
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        runtime.spawn(resend_cancel(sent_to.clone(), move || {
            let (node, sent_to) = (node.clone(), sent_to.clone());
            async move {
                let node = node.upgrade().ok_or_else(|| Error::environment(SqlState::ADMIN_SHUTDOWN, "shutdown"))?;
                let destination = sent_to.upgrade().and_then(|s| s.lock().unwrap_or_else(|p| p.into_inner()).clone());
                let call = Call::CancelForwarded { group, cancel_id };
                let reply = match destination {
                    // Not sent yet: the sender sees the cancel before it sends.
                    None => return Ok(false),
                    Some(Destination::Here) => {
                        let service = node.service().ok_or_else(|| Error::internal("no node service"))?;
                        Box::pin(service.handle_call(call)).await?
                    }
                    Some(Destination::Peer(addr)) => {
                        decode(&node.transport.call_service(&addr, encode(&call)?, CANCEL_CALL_TIMEOUT).await?)?
                    }
                };
                match reply {
                    Reply::CancelReached(reached) => Ok(reached),
                    other => Err(unexpected(&other)),
                }
            }
        }));
    })
}

/// Sends a cancel with `send` (true: the statement was reached) until it
/// reaches its statement or the statement's call is over (`in_flight` gone).
async fn resend_cancel<T, F, Fut>(in_flight: Weak<T>, send: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    while in_flight.strong_count() > 0 {
        match send().await {
            Ok(true) => return,
            Ok(false) => {}
            Err(e) if e.code == SqlState::ADMIN_SHUTDOWN => return,
            Err(e) => tracing::debug!(error = %e, "could not send a cancel to the group's leader"),
        }
        tokio::time::sleep(CANCEL_RESEND).await;
    }
}

/// Makes this node's replica of `group` fresh enough for a read at `point`
/// (see [`crate::consistency`]). Linearizable: the leader confirms its
/// leadership with a quorum and names the index the read must see
/// (read-index; here when this node leads, else asked of the leader), and
/// this replica waits until it has applied it. Bounded: the same, unless a
/// read index asked for within the bound is known and applied. Follower:
/// nothing. Then the causal floor, if any, is waited for.
pub async fn read_point(node: &Node, group: GroupId, point: ReadPoint) -> Result<()> {
    let local = node.group(group)?;
    let index = match point.mode {
        ReadMode::Follower => 0,
        ReadMode::Linearizable => read_index(node, group).await?,
        ReadMode::Bounded(max_staleness) => {
            let known = Instant::now().checked_sub(max_staleness).and_then(|since| local.fresh_index(since));
            match known {
                Some(index) => index,
                None => read_index(node, group).await?,
            }
        }
    };
    let floor = index.max(point.after);
    if floor > 0 {
        local.wait_applied(floor, CALL_TIMEOUT).await?;
    }
    Ok(())
}

/// The leader's read index for `group`, retried while leadership moves (a
/// read index is idempotent); remembered for bounded-staleness reads.
async fn read_index(node: &Node, group: GroupId) -> Result<u64> {
    let local = node.group(group)?;
    let deadline = Instant::now() + LEADER_WAIT;
    loop {
        let asked_at = Instant::now();
        let index = if local.is_leader() {
            local.leader_read_index().await
        } else {
            match forward(node, group, &Call::ReadIndex { group }).await {
                Ok(Reply::Index(index)) => Ok(index),
                Ok(other) => return Err(unexpected(&other)),
                Err(e) => Err(e),
            }
        };
        match index {
            Ok(index) => {
                local.note_read_index(asked_at, index);
                return Ok(index);
            }
            Err(e)
                if (e.code == SqlState::SERIALIZATION_FAILURE || e.code == SqlState::STATEMENT_COMPLETION_UNKNOWN)
                    && Instant::now() < deadline =>
            {
                tokio::time::sleep(LEADER_POLL).await
            }
            Err(e) => return Err(e),
        }
    }
}

/// Asks the cluster at `seed` for a node id (the joining side of `Register`).
pub async fn register_with(
    transport: &shoal_raft::Transport,
    seed: &str,
    pg_addr: &str,
    rpc_addr: &str,
    http_addr: &str,
) -> Result<(NodeId, String)> {
    let call = Call::Register { pg_addr: pg_addr.into(), rpc_addr: rpc_addr.into(), http_addr: http_addr.into() };
    let payload = encode(&call)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match transport.call_service(seed, payload.clone(), CALL_TIMEOUT).await.and_then(|b| decode::<Reply>(&b)) {
            Ok(Reply::Registered { node_id, cluster_id }) => return Ok((node_id, cluster_id)),
            Ok(other) => return Err(unexpected(&other)),
            Err(e) if Instant::now() < deadline && e.code != SqlState::CONNECTION_REJECTED => {
                tracing::info!(seed, error = %e, "waiting for the cluster to admit this node");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e.with_hint(format!("check that {seed} is the RPC address of a running Shoal node"))),
        }
    }
}

/// Asks the leaders of every group to add this node as a replica, through
/// the node at `seed` (which forwards to each group's leader).
pub async fn add_self_as_replica(node: &Node, seed: &str) -> Result<()> {
    for group in ALL_GROUPS {
        let call = Call::AddReplica {
            group,
            node_id: node.identity.node_id,
            rpc_addr: node.config.rpc_addr.to_string(),
            voter: None,
        };
        let payload = encode(&call)?;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let result = node
                .transport
                .call_service(seed, payload.clone(), Duration::from_secs(120))
                .await
                .and_then(|b| decode::<Reply>(&b));
            match result {
                Ok(_) => break,
                Err(e) if Instant::now() < deadline => {
                    tracing::info!(group, error = %e, "retrying to join the group");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(e),
            }
        }
        tracing::info!(group, "this node is now a replica");
    }
    Ok(())
}

/// An interactive transaction's writer: on this node when it leads the
/// group, otherwise held for us by the leader.
pub enum Writer {
    Local(WriteTxn),
    Remote(RemoteWriter),
}

/// The follower's handle on a transaction open on the leader.
pub struct RemoteWriter {
    node: Arc<Node>,
    group: GroupId,
    addr: String,
    txn: u64,
    has_writes: bool,
    /// Statements sent so far (names each for [`Call::Cancel`]).
    statements: u64,
}

impl Writer {
    /// Opens a transaction on the leader of `group`; also returns the
    /// leader's applied index when it took the write slot. `cancel` stops
    /// the wait for the write slot (57014), here or on the leader (see
    /// `forwarded_stopper`); a transaction that got the slot is returned
    /// even if cancelled meanwhile (its statement then fails at once).
    pub async fn begin(
        node: &Arc<Node>,
        group: GroupId,
        ctx: ExecContext,
        cancel: &CancelState,
    ) -> Result<(Writer, u64)> {
        let local = node.group(group)?;
        if local.is_leader() {
            let (flag, _registered) = cancel.register_flag()?;
            let txn = local.begin_cancellable(ctx, &flag).await?;
            return Ok((Writer::Local(txn), local.applied_index()));
        }
        let cancel_id: u64 = rand::random();
        let sent_to = SentTo::default();
        let _registered = cancel.register(forwarded_stopper(node, group, cancel_id, &sent_to))?;
        let mut deadline = Instant::now() + LEADER_WAIT;
        while Instant::now() < deadline {
            // Nothing was delivered yet: a cancel can still stop the call here.
            if let Some(reason) = cancel.reason() {
                return Err(canceled(Some(reason)));
            }
            let Some((_, addr)) = local.leader() else {
                tokio::time::sleep(LEADER_POLL).await;
                continue;
            };
            // Sent to the leader directly so later statements reach the same node.
            let payload = encode(&Call::Begin { group, ctx, cancel_id })?;
            *sent_to.lock().unwrap_or_else(|p| p.into_inner()) = Some(Destination::Peer(addr.clone()));
            match node.transport.call_service(&addr, payload, CALL_TIMEOUT).await.and_then(|b| decode::<Reply>(&b)) {
                Ok(Reply::Begun { txn, applied }) => {
                    let remote =
                        RemoteWriter { node: node.clone(), group, addr, txn, has_writes: false, statements: 0 };
                    return Ok((Writer::Remote(remote), applied));
                }
                // Still queued behind another transaction: wait on, however long it lasts.
                Ok(Reply::SlotBusy) => deadline = Instant::now() + LEADER_WAIT,
                Ok(other) => return Err(unexpected(&other)),
                Err(e) if e.code == SqlState::CONNECTION_FAILURE => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Err(e) => return Err(e),
            }
        }
        Err(no_leader(group))
    }

    /// Runs one statement of the transaction, which `cancel` can stop: a
    /// local statement through its cancel flag, a remote one with a
    /// [`Call::Cancel`] to the leader holding the transaction.
    pub async fn execute(
        &mut self,
        sql: String,
        params: Vec<Value>,
        record: bool,
        cancel: &CancelState,
    ) -> Result<QueryOutput> {
        match self {
            Writer::Local(txn) => {
                let (flag, _registered) = cancel.register_flag()?;
                txn.execute_cancellable(sql, params, record, Some(flag)).await
            }
            Writer::Remote(remote) => {
                remote.statements += 1;
                let (txn, statement) = (remote.txn, remote.statements);
                let (transport, addr) = (remote.node.transport.clone(), remote.addr.clone());
                let _registered = cancel.register(Arc::new(move || {
                    let (transport, addr) = (transport.clone(), addr.clone());
                    if let (Ok(runtime), Ok(payload)) =
                        (tokio::runtime::Handle::try_current(), encode(&Call::Cancel { txn, statement }))
                    {
                        runtime.spawn(async move {
                            if let Err(e) = transport.call_service(&addr, payload, CALL_TIMEOUT).await {
                                tracing::debug!(error = %e, "could not send a cancel to the group's leader");
                            }
                        });
                    }
                }))?;
                remote.has_writes |= record;
                match remote.call(Call::Execute { txn, statement, sql, params, record }).await? {
                    Reply::Output(output) => Ok(output),
                    other => Err(unexpected(&other)),
                }
            }
        }
    }

    pub async fn savepoint(&mut self, sql: String) -> Result<()> {
        match self {
            Writer::Local(txn) => txn.savepoint(sql).await,
            Writer::Remote(remote) => remote.call(Call::Savepoint { txn: remote.txn, sql }).await.map(|_| ()),
        }
    }

    pub async fn store_catalog(&mut self, json: String) -> Result<()> {
        match self {
            Writer::Local(txn) => txn.store_catalog(json).await,
            Writer::Remote(remote) => {
                remote.has_writes = true;
                remote.call(Call::StoreCatalog { txn: remote.txn, json }).await.map(|_| ())
            }
        }
    }

    /// Commits; returns the log index. After a remote commit this waits
    /// (briefly) until the local replica has applied it, so the session
    /// reads its own writes.
    pub async fn commit(self) -> Result<u64> {
        match self {
            Writer::Local(txn) => txn.commit().await,
            Writer::Remote(remote) => {
                let sent = remote
                    .node
                    .transport
                    .call_service(&remote.addr, encode(&Call::Commit { txn: remote.txn })?, CALL_TIMEOUT)
                    .await;
                let index = match sent.and_then(|b| decode::<Reply>(&b)) {
                    Ok(Reply::Index(index)) => index,
                    Ok(other) => return Err(unexpected(&other)),
                    Err(e) if e.code == SqlState::STATEMENT_COMPLETION_UNKNOWN => {
                        return Err(Error::environment(
                            SqlState::STATEMENT_COMPLETION_UNKNOWN,
                            format!("the group's leader did not confirm the commit: {}", e.message),
                        )
                        .with_hint("the transaction may or may not have committed; check before retrying"))
                    }
                    Err(e) if e.code == SqlState::CONNECTION_FAILURE => {
                        return Err(Error::environment(
                            SqlState::SERIALIZATION_FAILURE,
                            format!("lost the group's leader before COMMIT: {}", e.message),
                        )
                        .with_hint("the transaction was not committed; retry it"))
                    }
                    Err(e) => return Err(e),
                };
                let _ = remote.node.group(remote.group)?.wait_applied(index, CALL_TIMEOUT).await;
                Ok(index)
            }
        }
    }

    pub async fn rollback(self) -> Result<()> {
        match self {
            Writer::Local(txn) => txn.rollback().await,
            Writer::Remote(remote) => remote.call(Call::Rollback { txn: remote.txn }).await.map(|_| ()),
        }
    }
}

impl RemoteWriter {
    async fn call(&self, call: Call) -> Result<Reply> {
        let bytes = self.node.transport.call_service(&self.addr, encode(&call)?, CALL_TIMEOUT).await.map_err(|e| {
            if e.code == SqlState::CONNECTION_FAILURE || e.code == SqlState::STATEMENT_COMPLETION_UNKNOWN {
                // The leader holding the transaction is gone or unreachable.
                Error::environment(
                    SqlState::SERIALIZATION_FAILURE,
                    format!("lost the group's leader mid-transaction: {}", e.message),
                )
                .with_hint("the transaction was not committed; retry it")
            } else {
                e
            }
        })?;
        decode(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn service() -> Arc<NodeService> {
        Arc::new(NodeService {
            node: Weak::new(),
            remote_txns: Mutex::new(HashMap::new()),
            next_txn: AtomicU64::new(1),
            forwarded: Mutex::new(HashMap::new()),
        })
    }

    /// The cancel of a forwarded statement reaches the leader before the
    /// statement does (the transport runs each request in its own task): it
    /// is sent again until the statement is there, and then stops it.
    #[tokio::test]
    async fn a_cancel_that_overtakes_its_forwarded_statement_is_not_lost() {
        let leader = service();
        let in_flight = Arc::new(());
        let sends = Arc::new(AtomicUsize::new(0));
        let resend = tokio::spawn(resend_cancel(Arc::downgrade(&in_flight), {
            let (leader, sends) = (leader.clone(), sends.clone());
            move || {
                sends.fetch_add(1, Ordering::SeqCst);
                let reached = leader.cancel_forwarded(7);
                async move { Ok(reached) }
            }
        }));
        println!("the statement is not on the leader yet: the cancel finds nothing, and is sent again");
        tokio::time::sleep(CANCEL_RESEND * 5).await;
        assert!(sends.load(Ordering::SeqCst) >= 2, "sent again");
        assert!(!resend.is_finished());

        println!("the statement arrives: the next cancel stops it, and the resending ends");
        let (flag, registered) = leader.register_forwarded(7);
        tokio::time::timeout(Duration::from_secs(5), resend).await.expect("the resending ended").unwrap();
        assert!(flag.is_cancelled(), "the statement was cancelled");
        assert!(!flag.finish(), "so it can never be proposed");
        drop(registered);
        assert!(!leader.cancel_forwarded(7), "unregistered when its call ended");

        println!("a statement already proposed is reached, but not cancelled");
        let (flag, _registered) = leader.register_forwarded(8);
        assert!(flag.finish());
        assert!(leader.cancel_forwarded(8), "reached: the origin stops resending");
        assert!(!flag.is_cancelled(), "it reports its real outcome");
    }

    #[tokio::test]
    async fn the_resending_ends_with_the_statements_call() {
        let in_flight = Arc::new(());
        let resend = tokio::spawn(resend_cancel(Arc::downgrade(&in_flight), || async { Ok(false) }));
        tokio::time::sleep(CANCEL_RESEND * 3).await;
        assert!(!resend.is_finished(), "still sending while the call is out");
        drop(in_flight);
        tokio::time::timeout(Duration::from_secs(5), resend).await.expect("the resending ended").unwrap();
    }
}
