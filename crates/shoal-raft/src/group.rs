//! One Raft group on this node: a Raft instance, its SQLite replica, and the
//! paths by which sessions read and write it.
//!
//! ```text
//!  sessions ──autocommit──▶ batcher ─┐                       ┌─▶ log store (fsync, group commit)
//!           ──BEGIN…COMMIT─▶ WriteTxn ┼─▶ write slot ─▶ propose┤
//!                                     │   (one writer)       └─▶ state machine: commit the open
//!                                     │                            SQLite txn, applied index inside
//!           ──SELECT──▶ read-index ──▶ reader pool (WAL snapshots)
//! ```
//!
//! * **One writer per group.** The *write slot* is held by one writer at a
//!   time: an interactive transaction for its whole life, or the batcher for
//!   one batch. The writer executes on the replica's writer connection, then
//!   proposes one entry with what it recorded. When the entry commits, the
//!   state machine commits the same SQLite transaction. Writes are therefore
//!   serial per shard (serializable), and a transaction's reads see its own
//!   writes.
//! * **Batching.** Autocommit writes queue for the batcher, which runs every
//!   queued statement in its own savepoint inside one SQLite transaction and
//!   proposes them as one entry: one Raft round and one fsync for many clients.
//!   Before it cuts a batch it yields to the runtime until a couple of
//!   yields bring nothing new, so a burst of statements from sessions still
//!   being read and parsed joins one batch (`gather_batch`).
//!   While that entry is in its Raft round, the writes that queued meanwhile
//!   run as a second batch in the same SQLite transaction and are proposed
//!   right behind it (pipelining: at most two; the replica commits both with
//!   one SQLite COMMIT, see `shoal_storage::replica`), so they do not wait a
//!   whole round before theirs starts.
//!   Each queued statement carries a cancel flag (`shoal_storage::cancel`): a
//!   cancelled one fails alone with 57014, until the batcher marks it
//!   finished just before the batch is proposed. Its session does not wait
//!   for the batcher to get there: a cancel answers at once, also while the
//!   batcher waits for the slot, and so does one of a transaction waiting
//!   for the slot ([`Group::begin_cancellable`]).
//! * **Reads** run on pooled read-only connections after Raft's read-index
//!   check, so they never block the writer and never see uncommitted data.
//!   Reads waiting at the same time share one leadership round
//!   (`ReadPolicy::ReadIndex`; why not a leader lease: ARCHITECTURE.md).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::async_runtime::WatchReceiver;
use openraft::errors::{ClientWriteError, Fatal, LinearizableReadError, RaftError};
use openraft::impls::ProgressResponder;
use openraft::{BasicNode, ReadPolicy, ServerState};
use shoal_common::{Error, ExecContext, Result, SqlState, Value};
use shoal_storage::cancel::canceled;
use shoal_storage::{
    Command, ContentDigest, ProposalId, QueryOutput, RecordedStmt, Replica, StatementCancel, StepBudget, TxnRecord,
};
use tokio::sync::{mpsc, oneshot, OwnedMutexGuard};

use crate::log_store::{LogOptions, LogStore};
use crate::state_machine::{SharedReplica, StateMachine};
use crate::transport::{GroupNetwork, Transport};
use crate::types::{GroupId, NodeId, Raft, TypeConfig};

/// How a group is opened.
#[derive(Clone, Debug)]
pub struct GroupConfig {
    pub id: GroupId,
    pub node_id: NodeId,
    /// Directory holding `replica.db`, `log/` and `snapshots/`.
    pub dir: PathBuf,
    /// This node's RPC address, recorded in the membership.
    pub rpc_addr: String,
    /// fsync the log before acknowledging (always true in production).
    pub fsync: bool,
    /// The node's transport; the group registers itself with it.
    pub transport: Transport,
    /// Whether a fresh group starts as a single voter on this node (the
    /// first node of a cluster). A joining node's groups wait to be added.
    pub bootstrap: bool,
    /// Take a snapshot (and compact the log) every this many entries.
    pub snapshot_every: u64,
}

/// How long [`Group::add_replica`] waits for a learner to catch up before
/// it promotes it; a caller that gives up first retries, and the retry
/// waits again.
const CATCH_UP_WAIT: Duration = Duration::from_secs(60);

/// The default [`GroupConfig::snapshot_every`].
pub const DEFAULT_SNAPSHOT_EVERY: u64 = 50_000;

/// A pooled read-only connection. `tag` is free for the caller to remember
/// what it prepared on the connection (the server keeps its catalog version there).
pub struct Reader {
    pub conn: shoal_storage::Connection,
    pub tag: u64,
    /// Interrupts the statement running on `conn` (query cancel).
    pub interrupt: Arc<shoal_storage::InterruptHandle>,
    budget: StepBudget,
}

/// How long a read may run on an async thread before it is moved to a
/// blocking thread (see [`shoal_storage::budget`]).
const INLINE_READ_BUDGET: Duration = Duration::from_micros(250);

impl Reader {
    /// Runs the read-only work `f` on this connection: inline when it
    /// finishes within a 250 µs budget, otherwise again from the start
    /// on a blocking thread. `f` must only read (it may run twice). The
    /// reader comes back unless the blocking task panicked.
    pub async fn run<T, F>(mut self, f: F) -> (Option<Reader>, Result<T>)
    where
        T: Send + 'static,
        F: Fn(&mut Reader) -> Result<T> + Send + 'static,
    {
        let budget = self.budget.clone();
        if let Some(result) = budget.run_within(INLINE_READ_BUDGET, || f(&mut self)) {
            return (Some(self), result);
        }
        let task = tokio::task::spawn_blocking(move || {
            let result = f(&mut self);
            (self, result)
        });
        match task.await {
            Ok((reader, result)) => (Some(reader), result),
            Err(e) => (None, Err(Error::internal(format!("read task: {e}")))),
        }
    }
}

/// A snapshot of the group's Raft state, for system views and metrics.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GroupStatus {
    pub id: GroupId,
    pub node_id: NodeId,
    pub role: String,
    pub leader: Option<NodeId>,
    pub term: u64,
    pub last_log_index: u64,
    pub committed_index: u64,
    pub applied_index: u64,
    pub snapshot_index: Option<u64>,
    pub voters: Vec<NodeId>,
    pub log_size_bytes: u64,
    pub log_fsyncs: u64,
    pub log_fsync_micros_total: u64,
    /// Batches of autocommit writes proposed by this replica as leader.
    #[serde(default)]
    pub write_batches: u64,
    /// Of those, batches that joined a transaction whose previous batch was
    /// still in its Raft round (pipelined).
    #[serde(default)]
    pub pipelined_batches: u64,
    /// Statements carried by those batches (÷ `write_batches`: the mean batch).
    #[serde(default)]
    pub batched_statements: u64,
    /// Proposals this replica made as leader (write batches and transaction
    /// commits) that committed, and the total microseconds from proposal to
    /// applied here (÷ `proposals_committed`: the mean Raft round).
    #[serde(default)]
    pub proposals_committed: u64,
    #[serde(default)]
    pub proposal_micros_total: u64,
}

struct BatchItem {
    ctx: ExecContext,
    sql: String,
    params: Vec<Value>,
    /// Set by the client's cancel request; see [`shoal_storage::cancel`].
    cancel: StatementCancel,
    reply: oneshot::Sender<Result<(QueryOutput, u64)>>,
}

/// How one batched statement ended: its output, or its error and the
/// statements that keep what it drew from sequences.
type ItemResult = std::result::Result<QueryOutput, (Error, Vec<RecordedStmt>)>;

/// Upper bound on statements per batched entry (bounds entry size and latency).
const MAX_BATCH_STATEMENTS: usize = 512;
/// Upper bound on queued autocommit writes before callers wait.
const BATCH_QUEUE_CAPACITY: usize = 4096;
/// Upper bound on idle pooled read connections.
const MAX_IDLE_READERS: usize = 64;

/// One Raft group on this node; see the module docs.
pub struct Group {
    pub id: GroupId,
    node_id: NodeId,
    raft: Raft,
    shared: Arc<SharedReplica>,
    /// The replica's database file, for opening read connections.
    db_path: PathBuf,
    write_slot: Arc<tokio::sync::Mutex<()>>,
    boot: u64,
    next_proposal: AtomicU64,
    readers: Mutex<Vec<Reader>>,
    /// The newest known read index and when it was asked for (see [`Group::fresh_index`]).
    freshness: Mutex<Option<(Instant, u64)>>,
    batch_tx: mpsc::Sender<BatchItem>,
    /// Autocommit batches proposed, how many of them were pipelined, and
    /// the statements they carried.
    write_batches: AtomicU64,
    pipelined_batches: AtomicU64,
    batched_statements: AtomicU64,
    /// Proposals committed, and their total proposal-to-applied time.
    proposals_committed: AtomicU64,
    proposal_micros_total: AtomicU64,
    /// Callers of [`Group::leader_read_index`] waiting for the next round.
    read_index_tx: mpsc::UnboundedSender<oneshot::Sender<Result<u64>>>,
    log_stats: crate::log_store::StatsHandle,
    transport: Transport,
}

fn raft_config(snapshot_every: u64) -> Result<Arc<openraft::Config>> {
    let snapshot_every = snapshot_every.max(10);
    let config = openraft::Config {
        cluster_name: "shoal".into(),
        heartbeat_interval: 50,
        election_timeout_min: 200,
        election_timeout_max: 400,
        // A node cut off from the others first asks whether it could win
        // and does not raise its term when refused; otherwise its inflated
        // term, seen on healing, deposes a healthy leader (an election and
        // a write stall for nothing). `tests/cluster_faults.rs`,
        // `a_healed_follower_does_not_depose_the_leader`.
        enable_pre_vote: Some(true),
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(snapshot_every),
        // Entries kept behind a snapshot let a briefly lagging follower
        // catch up from the log instead of a whole snapshot.
        max_in_snapshot_log_to_keep: (snapshot_every / 10).clamp(1, 1_000),
        ..Default::default()
    };
    Ok(Arc::new(config.validate().map_err(|e| Error::internal(format!("raft config: {e}")))?))
}

impl Group {
    /// Opens the group's storage and starts its Raft instance. A fresh group
    /// is bootstrapped as a single voter on this node.
    pub async fn open(config: GroupConfig) -> Result<Arc<Group>> {
        std::fs::create_dir_all(&config.dir)?;
        let db_path = config.dir.join("replica.db");
        let replica = Replica::open(&db_path)?;
        let shared = SharedReplica::new(replica);
        let log = LogStore::<TypeConfig>::open(
            &config.dir.join("log"),
            LogOptions { fsync: config.fsync, ..LogOptions::default() },
        )?;
        let log_stats = log.stats_handle();
        let sm = StateMachine::new(shared.clone(), config.dir.join("snapshots"))?;
        let network = GroupNetwork { transport: config.transport.clone(), group: config.id };
        let raft = Raft::new(config.node_id, raft_config(config.snapshot_every)?, network, log, sm)
            .await
            .map_err(|e| Error::internal(format!("starting raft group {}: {e}", config.id)))?;
        config.transport.register_group(config.id, raft.clone());
        if config.bootstrap && !raft.is_initialized().await.map_err(|e| Error::internal(format!("raft: {e}")))? {
            let members = BTreeMap::from([(config.node_id, BasicNode { addr: config.rpc_addr.clone() })]);
            raft.initialize(members).await.map_err(|e| Error::internal(format!("initializing group: {e}")))?;
        }
        let (batch_tx, batch_rx) = mpsc::channel(BATCH_QUEUE_CAPACITY);
        let (read_index_tx, read_index_rx) = mpsc::unbounded_channel();
        tokio::spawn(run_read_index_rounds(raft.clone(), read_index_rx));
        let group = Arc::new(Group {
            id: config.id,
            node_id: config.node_id,
            raft,
            shared,
            db_path,
            write_slot: Arc::new(tokio::sync::Mutex::new(())),
            boot: rand::random(),
            next_proposal: AtomicU64::new(1),
            readers: Mutex::new(Vec::new()),
            freshness: Mutex::new(None),
            batch_tx,
            write_batches: AtomicU64::new(0),
            pipelined_batches: AtomicU64::new(0),
            batched_statements: AtomicU64::new(0),
            proposals_committed: AtomicU64::new(0),
            proposal_micros_total: AtomicU64::new(0),
            read_index_tx,
            log_stats,
            transport: config.transport.clone(),
        });
        tokio::spawn(run_batcher(Arc::downgrade(&group), batch_rx));
        tokio::spawn(run_checkpointer(Arc::downgrade(&group)));
        if config.bootstrap {
            // A single voter elects itself at once; a replica of a larger
            // group waits for its peers instead of holding up the start.
            group.wait_for_leader(Duration::from_secs(30)).await?;
        }
        Ok(group)
    }

    /// The current leader as far as this replica knows: its id and the
    /// address to dial it at.
    pub fn leader(&self) -> Option<(NodeId, String)> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        let id = m.current_leader?;
        let node = m.membership_config.membership().get_node(&id)?;
        Some((id, self.transport.dial_addr(id, &node.addr)))
    }

    /// True when this replica is the group's leader.
    pub fn is_leader(&self) -> bool {
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        m.state == ServerState::Leader && m.current_leader == Some(self.node_id)
    }

    /// Every member (voters and learners) with its recorded address.
    pub fn members(&self) -> Vec<(NodeId, String, bool)> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        let membership = m.membership_config.membership();
        let voters: std::collections::BTreeSet<NodeId> = membership.voter_ids().collect();
        membership.nodes().map(|(id, node)| (*id, node.addr.clone(), voters.contains(id))).collect()
    }

    /// Adds `node` as a replica (run on the leader): first as a learner,
    /// then, when `voter` and once it holds every entry the leader had
    /// (from a snapshot and the log tail), as a voter. An existing learner
    /// is promoted the same way.
    pub async fn add_replica(&self, node: NodeId, addr: String, voter: bool) -> Result<()> {
        let raft_error = |what: &str, e: String| {
            Error::environment(SqlState::SERIALIZATION_FAILURE, format!("group {}: {what}: {e}", self.id))
                .with_hint("retry; leadership may have moved")
        };
        let members = self.members();
        let present = members.iter().find(|(id, _, _)| *id == node);
        match present {
            Some((_, _, true)) => return Ok(()),
            Some((_, _, false)) if !voter => return Ok(()),
            Some(_) => {}
            None => {
                self.raft
                    .add_learner(node, BasicNode { addr }, true)
                    .await
                    .map_err(|e| raft_error("adding a learner", e.to_string()))?;
            }
        }
        if voter {
            self.wait_caught_up(node, CATCH_UP_WAIT).await.map_err(|e| raft_error("catching up the learner", e))?;
            self.raft
                .change_membership(openraft::ChangeMembers::AddVoterIds([node].into()), false)
                .await
                .map_err(|e| raft_error("promoting to voter", e.to_string()))?;
        }
        Ok(())
    }

    /// Waits until learner `node` holds every entry this leader had when
    /// the wait began. openraft's own check (`add_learner` with `blocking`)
    /// lets a learner within 5,000 entries through, and a voter that far
    /// behind leaves the group one failure from stalling while it catches up.
    async fn wait_caught_up(&self, node: NodeId, timeout: Duration) -> std::result::Result<(), String> {
        let Some(target) = self.raft.metrics().borrow_watched().last_log_index else { return Ok(()) };
        let caught_up = move |m: &openraft::RaftMetrics<TypeConfig>| match &m.replication {
            // Not the leader any more: the promotion that follows fails
            // and says so.
            None => true,
            Some(replication) => {
                replication.get(&node).cloned().flatten().is_some_and(|matched| matched.index >= target)
            }
        };
        self.raft
            .wait(Some(timeout))
            .metrics(caught_up, "learner caught up")
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Turns voter `node` into a learner (run on the leader): it keeps a
    /// copy of the data but no longer counts toward quorums.
    pub async fn demote_replica(&self, node: NodeId) -> Result<()> {
        if !self.members().iter().any(|(id, _, voter)| *id == node && *voter) {
            return Ok(());
        }
        self.raft.change_membership(openraft::ChangeMembers::RemoveVoters([node].into()), true).await.map_err(|e| {
            Error::environment(SqlState::SERIALIZATION_FAILURE, format!("group {}: demoting node {node}: {e}", self.id))
                .with_hint("retry; leadership may have moved")
        })?;
        Ok(())
    }

    /// Removes `node` from the group (run on the leader).
    pub async fn remove_replica(&self, node: NodeId) -> Result<()> {
        let members = self.members();
        if !members.iter().any(|(id, _, _)| *id == node) {
            return Ok(());
        }
        let error = |e: String| {
            Error::environment(SqlState::SERIALIZATION_FAILURE, format!("group {}: removing node {node}: {e}", self.id))
                .with_hint("retry; leadership may have moved")
        };
        if members.iter().any(|(id, _, voter)| *id == node && *voter) {
            self.raft
                .change_membership(openraft::ChangeMembers::RemoveVoters([node].into()), false)
                .await
                .map_err(|e| error(e.to_string()))?;
        }
        self.raft
            .change_membership(openraft::ChangeMembers::RemoveNodes([node].into()), false)
            .await
            .map_err(|e| error(e.to_string()))?;
        Ok(())
    }

    /// On the leader: confirms leadership with a quorum and returns the index
    /// a linearizable read must wait for (a follower asks for it remotely).
    /// Concurrent callers share rounds (see the module docs).
    pub async fn leader_read_index(&self) -> Result<u64> {
        if self.is_sole_voting_leader() {
            // With one voter there is no other leader to be deposed by, and
            // every acknowledged write was applied (SQLite-committed) before
            // its acknowledgement: no quorum round is needed.
            return Ok(self.shared.applied_index());
        }
        let (reply, answer) = oneshot::channel();
        self.read_index_tx
            .send(reply)
            .map_err(|_| Error::environment(SqlState::ADMIN_SHUTDOWN, "group is shutting down"))?;
        answer.await.map_err(|_| Error::environment(SqlState::ADMIN_SHUTDOWN, "group is shutting down"))?
    }

    /// Remembers that a read index asked for at `asked_at` was `index`:
    /// every write acknowledged before `asked_at` is at or below it.
    pub fn note_read_index(&self, asked_at: Instant, index: u64) {
        let mut fresh = self.freshness.lock().unwrap_or_else(|p| p.into_inner());
        if fresh.is_none_or(|(at, _)| at < asked_at) {
            *fresh = Some((asked_at, index));
        }
    }

    /// A read index asked for no earlier than `not_before`, if one is known:
    /// once applied, this replica reflects every write acknowledged before
    /// then (bounded-staleness reads).
    pub fn fresh_index(&self, not_before: Instant) -> Option<u64> {
        let fresh = self.freshness.lock().unwrap_or_else(|p| p.into_inner());
        fresh.filter(|(at, _)| *at >= not_before).map(|(_, index)| index)
    }

    /// Waits until this replica has applied `index`.
    pub async fn wait_applied(&self, index: u64, timeout: Duration) -> Result<()> {
        let mut applied = self.shared.applied_watch();
        let reached = tokio::time::timeout(timeout, async { applied.wait_for(|i| *i >= index).await.is_ok() }).await;
        match reached {
            Ok(true) => Ok(()),
            Ok(false) => Err(Error::environment(SqlState::ADMIN_SHUTDOWN, "group stopped")),
            Err(_) => Err(Error::environment(
                SqlState::SERIALIZATION_FAILURE,
                format!("group {}: this replica did not apply index {index} within {timeout:?}", self.id),
            )
            .with_hint("the replica is lagging or cut off; retry, or read from another node")),
        }
    }

    /// Waits until the group has a leader and has applied everything committed.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<()> {
        self.raft.wait(Some(timeout)).metrics(|m| m.current_leader.is_some(), "leader elected").await.map_err(|e| {
            Error::environment(SqlState::CANNOT_CONNECT_NOW, format!("group {}: no leader: {e}", self.id))
        })?;
        Ok(())
    }

    /// Waits until everything in the log at call time is applied (after a
    /// restart, the replay of committed entries).
    pub async fn catch_up(&self, timeout: Duration) -> Result<()> {
        let target = self.raft.metrics().borrow_watched().last_log_index;
        self.raft.wait(Some(timeout)).applied_index_at_least(target, "replay committed entries").await.map_err(
            |e| Error::environment(SqlState::CANNOT_CONNECT_NOW, format!("group {}: catching up: {e}", self.id)),
        )?;
        Ok(())
    }

    /// Takes a pooled read connection for a transaction's snapshot; give it
    /// back with [`Group::checkin_reader`]. What the snapshot must include
    /// (a read index) is the caller's to wait for first.
    pub fn checkout_reader(&self) -> Result<Reader> {
        self.take_reader()
    }

    /// Returns a reader taken with [`Group::checkout_reader`].
    pub fn checkin_reader(&self, reader: Reader) {
        self.return_reader(reader);
    }

    /// The applied index right now.
    pub fn applied_index(&self) -> u64 {
        self.shared.applied_index()
    }

    /// The Raft handle (membership changes, metrics).
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// The stored catalog JSON, if any.
    pub fn catalog_json(&self) -> Result<Option<String>> {
        self.shared.lock().catalog_json()
    }

    /// Watches the catalog epoch (bumped after each applied catalog change).
    pub fn catalog_watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.shared.catalog_watch()
    }

    /// On the leader: appends a checksum entry (see
    /// [`shoal_storage::Command::checksum`]) and returns its log index once
    /// it is committed.
    pub async fn propose_checksum(&self) -> Result<u64> {
        let command = Command { proposal: None, txns: Vec::new(), checksum: true };
        match self.raft.client_write(command).await {
            Ok(response) => Ok(response.log_id.index),
            Err(e) => Err(Error::environment(
                SqlState::SERIALIZATION_FAILURE,
                format!("group {}: could not append a checksum entry: {e}", self.id),
            )
            .with_hint("leadership moved; retry")),
        }
    }

    /// This replica's content checksum at the checksum entry `index`,
    /// waiting up to `timeout` for it to be applied and computed. `Ok(None)`:
    /// the replica skipped the entry (it installed a later snapshot).
    pub async fn checksum_at(&self, index: u64, timeout: Duration) -> Result<Option<ContentDigest>> {
        let deadline = tokio::time::Instant::now() + timeout;
        self.wait_applied(index, timeout).await?;
        loop {
            if let Some(result) = self.shared.checksum_at(index) {
                return result.map(Some).map_err(|e| {
                    Error::environment(SqlState::INTERNAL_ERROR, format!("checksum at index {index} failed: {e}"))
                });
            }
            if !self.shared.checksum_pending(index) {
                return Ok(None);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::environment(
                    SqlState::QUERY_CANCELED,
                    format!("group {}: the checksum at index {index} took longer than {timeout:?}", self.id),
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Raft state for system views.
    pub fn status(&self) -> GroupStatus {
        let m = self.raft.metrics().borrow_watched().clone();
        // Ours is published before a proposer hears back; openraft's
        // metrics may trail it.
        let applied = m.last_applied.map(|l| l.index).unwrap_or(0).max(self.shared.applied_index());
        let stats = self.log_stats.get();
        GroupStatus {
            id: self.id,
            node_id: self.node_id,
            role: match m.state {
                ServerState::Leader => "leader",
                ServerState::Follower => "follower",
                ServerState::Candidate => "candidate",
                ServerState::Learner => "learner",
                ServerState::Shutdown => "shutdown",
            }
            .to_string(),
            leader: m.current_leader,
            term: m.current_term,
            last_log_index: m.last_log_index.unwrap_or(0),
            committed_index: committed_index(&m).max(applied),
            applied_index: applied,
            snapshot_index: m.snapshot.map(|s| s.index),
            voters: m.membership_config.membership().voter_ids().collect(),
            log_size_bytes: stats.size_bytes,
            log_fsyncs: stats.fsyncs,
            log_fsync_micros_total: stats.fsync_micros_total,
            write_batches: self.write_batches.load(Ordering::Relaxed),
            pipelined_batches: self.pipelined_batches.load(Ordering::Relaxed),
            batched_statements: self.batched_statements.load(Ordering::Relaxed),
            proposals_committed: self.proposals_committed.load(Ordering::Relaxed),
            proposal_micros_total: self.proposal_micros_total.load(Ordering::Relaxed),
        }
    }

    /// Runs `f` on a pooled read-only connection of this replica as it is
    /// now. A linearizable read first gets a read index
    /// ([`Group::leader_read_index`], on the leader) and waits for it here
    /// ([`Group::wait_applied`]); the server does both, asking the leader
    /// when this replica follows.
    pub async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(&mut Reader) -> Result<T> + Send + 'static,
    {
        let (reader, result) = self.take_reader()?.run(f).await;
        if let Some(reader) = reader {
            self.return_reader(reader);
        }
        result
    }

    /// True when this node leads the group and is its only voter.
    fn is_sole_voting_leader(&self) -> bool {
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        if m.state != ServerState::Leader || m.current_leader != Some(self.node_id) {
            return false;
        }
        let mut voters = m.membership_config.membership().voter_ids();
        voters.next() == Some(self.node_id) && voters.next().is_none()
    }

    fn take_reader(&self) -> Result<Reader> {
        if let Some(reader) = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop() {
            return Ok(reader);
        }
        let mut conn = self.open_connection()?;
        let budget = StepBudget::install(&mut conn)?;
        let interrupt = Arc::new(conn.get_interrupt_handle());
        Ok(Reader { conn, tag: 0, interrupt, budget })
    }

    /// A new connection to the replica's database, opened without the
    /// replica's lock (which `apply` needs). It is opened read-write only so
    /// that in-memory schemas (`pg_catalog`, system views) can be attached and
    /// filled; it never writes the replica's own tables, which readers ensure
    /// by running only statements SQLite reports as read-only
    /// (`shoal_storage::run_read_only`).
    fn open_connection(&self) -> Result<shoal_storage::Connection> {
        shoal_storage::open_connection(&self.db_path, false)
    }

    fn return_reader(&self, reader: Reader) {
        let mut pool = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < MAX_IDLE_READERS && reader.conn.is_autocommit() {
            pool.push(reader);
        }
    }

    /// Runs one autocommit write through the batcher; returns once it is
    /// committed (durable on a quorum) or failed, with the log index of the
    /// entry that carried it.
    pub async fn write_autocommit(
        &self,
        ctx: ExecContext,
        sql: String,
        params: Vec<Value>,
    ) -> Result<(QueryOutput, u64)> {
        self.write_autocommit_cancellable(ctx, sql, params, StatementCancel::new()).await
    }

    /// [`Group::write_autocommit`] that `cancel` can stop while the
    /// statement waits in the queue or runs; it then fails with 57014 and
    /// the rest of its batch goes on. Once the batch is proposed, a cancel
    /// changes nothing (see [`shoal_storage::cancel`]).
    ///
    /// A cancel that wins answers at once, even while the batcher waits for
    /// the write slot (held by a transaction): the flag guarantees the item
    /// will never be proposed, and the batcher drops it unrun (or undoes it,
    /// if it is running) when it reaches it.
    pub async fn write_autocommit_cancellable(
        &self,
        ctx: ExecContext,
        sql: String,
        params: Vec<Value>,
        cancel: StatementCancel,
    ) -> Result<(QueryOutput, u64)> {
        if cancel.is_cancelled() {
            return Err(canceled());
        }
        let (reply, rx) = oneshot::channel();
        let stop = cancel.clone();
        let item = BatchItem { ctx, sql, params, cancel, reply };
        tokio::select! {
            biased;
            sent = self.batch_tx.send(item) => {
                sent.map_err(|_| Error::environment(SqlState::ADMIN_SHUTDOWN, "group is shutting down"))?
            }
            () = stop.cancelled() => return Err(canceled()),
        }
        tokio::select! {
            biased;
            answer = rx => answer
                .map_err(|_| Error::environment(SqlState::STATEMENT_COMPLETION_UNKNOWN, "write batch was dropped"))?,
            () = stop.cancelled() => Err(canceled()),
        }
    }

    /// Starts an interactive write transaction: waits for the write slot.
    pub async fn begin(self: &Arc<Self>, ctx: ExecContext) -> Result<WriteTxn> {
        self.begin_cancellable(ctx, &StatementCancel::new()).await
    }

    /// [`Group::begin`] whose wait for the write slot `cancel` interrupts
    /// (57014). Only the wait: once the slot is taken the transaction
    /// starts, and dropping the lock future on cancel leaves no waiter
    /// behind in the slot's queue.
    pub async fn begin_cancellable(self: &Arc<Self>, ctx: ExecContext, cancel: &StatementCancel) -> Result<WriteTxn> {
        let slot = tokio::select! {
            biased;
            slot = self.write_slot.clone().lock_owned() => slot,
            () = cancel.cancelled() => return Err(canceled()),
        };
        self.start_txn(slot, ctx).await
    }

    /// [`Group::begin_cancellable`] that waits for the write slot at most
    /// `wait`: `Ok(None)` when it did not get it by then (and no longer
    /// waits for it). A leader serving another node's BEGIN uses it to
    /// answer before that node's call times out: a transaction begun for a
    /// caller that gave up would hold the slot until the idle cleanup.
    pub async fn try_begin_within(
        self: &Arc<Self>,
        ctx: ExecContext,
        cancel: &StatementCancel,
        wait: Duration,
    ) -> Result<Option<WriteTxn>> {
        let slot = tokio::select! {
            biased;
            slot = self.write_slot.clone().lock_owned() => slot,
            () = cancel.cancelled() => return Err(canceled()),
            () = tokio::time::sleep(wait) => return Ok(None),
        };
        self.start_txn(slot, ctx).await.map(Some)
    }

    /// Opens the SQLite transaction of an interactive transaction holding `slot`.
    async fn start_txn(self: &Arc<Self>, slot: OwnedMutexGuard<()>, ctx: ExecContext) -> Result<WriteTxn> {
        self.await_term_applied().await?;
        let shared = self.shared.clone();
        run_blocking(move || shared.lock().begin()).await?;
        Ok(WriteTxn {
            group: self.clone(),
            _slot: slot,
            ctx,
            records: Vec::new(),
            next_seq: 0,
            open: true,
            changes_catalog: false,
            touched: Vec::new(),
        })
    }

    /// When this replica leads, waits until it has applied an entry of its
    /// own term, and with it every entry of earlier terms; not leading, it
    /// returns at once (Raft refuses the proposal). A write executed before
    /// that runs on a state that lacks the predecessor's last committed
    /// entries, so those entries abort it when they apply (a foreign entry,
    /// see [`Replica::apply`]): every write of a new term's first round
    /// would fail. After it, the writer holds exactly the state the write's
    /// entry follows in the log.
    async fn await_term_applied(&self) -> Result<()> {
        let ready = |m: &openraft::RaftMetrics<TypeConfig>| {
            m.state != ServerState::Leader || m.last_applied.is_some_and(|l| l.leader_id.term == m.current_term)
        };
        if ready(&self.raft.metrics().borrow_watched()) {
            return Ok(());
        }
        self.raft.wait(Some(TERM_START_WAIT)).metrics(ready, "the leader applied an entry of its term").await.map_err(
            |e| {
                Error::environment(
                    SqlState::SERIALIZATION_FAILURE,
                    format!("group {}: the new leader has not applied its predecessor's log yet: {e}", self.id),
                )
                .with_hint("nothing was written; retry")
            },
        )?;
        Ok(())
    }

    fn next_proposal_id(&self) -> ProposalId {
        ProposalId { node: self.node_id, boot: self.boot, seq: self.next_proposal.fetch_add(1, Ordering::Relaxed) }
    }

    /// Proposes the recorded transactions open on the writer and waits for
    /// them to commit. On failure the open SQLite transaction is rolled back.
    async fn propose(self: &Arc<Self>, txns: Vec<TxnRecord>) -> Result<u64> {
        let proposal = self.next_proposal_id();
        self.shared.lock().push_pending(proposal)?;
        // An interactive transaction's statements were answered as they
        // ran; the term barrier (`await_term_applied`) and the abort of a
        // transaction a foreign entry overtook keep them on the state its
        // entry follows.
        self.submit(proposal, txns).await.await.map(|committed| committed.index)
    }

    /// Hands `proposal` (already pending on the replica) to Raft and returns
    /// once it is queued, with a future of its outcome: the log index once
    /// committed and applied, or the error after its effects were abandoned
    /// ([`Replica::abandon`]). Entries take the order of the `submit` calls,
    /// so the batcher can queue a second proposal behind the first.
    async fn submit(self: &Arc<Self>, proposal: ProposalId, txns: Vec<TxnRecord>) -> Outcome {
        let proposed = Instant::now();
        let (responder, written) = ProgressResponder::complete_only();
        let command = Command { proposal: Some(proposal), txns, checksum: false };
        let queued = self.raft.client_write_ff(command, Some(responder)).await;
        let group = self.clone();
        Box::pin(async move {
            let failure = match queued {
                Err(fatal) => RaftError::Fatal(fatal),
                Ok(()) => match written.await {
                    Ok(Ok(written)) => {
                        let micros = u64::try_from(proposed.elapsed().as_micros()).unwrap_or(u64::MAX);
                        group.proposals_committed.fetch_add(1, Ordering::Relaxed);
                        group.proposal_micros_total.fetch_add(micros, Ordering::Relaxed);
                        return Ok(Committed { index: written.log_id.index, replayed: written.data.replayed });
                    }
                    Ok(Err(refused)) => RaftError::APIError(refused),
                    Err(_) => RaftError::Fatal(Fatal::Stopped),
                },
            };
            group.abandon(proposal)?;
            Err(group.write_error(failure))
        })
    }

    /// Gives up `proposal`'s effects on the writer (see [`Replica::abandon`]).
    fn abandon(&self, proposal: ProposalId) -> Result<()> {
        let mut replica = self.shared.lock();
        if replica.abandon(proposal)? {
            self.shared.publish_applied(&replica);
        }
        Ok(())
    }

    /// What a failed proposal tells the client. openraft 0.10 answers a
    /// proposal that reached the log only when it is applied (whoever
    /// leads by then) or discarded; a `ForwardToLeader` therefore means it
    /// was refused before it was appended (not the leader, a leadership
    /// transfer, or a new leader whose lease is not yet established), so it
    /// certainly did not commit and may be retried.
    fn write_error(&self, err: RaftError<TypeConfig, ClientWriteError<TypeConfig>>) -> Error {
        let in_doubt = |what: String| {
            Error::environment(SqlState::STATEMENT_COMPLETION_UNKNOWN, what).with_hint(
                "the outcome is unknown: a new leader may still commit it; check whether the change is present before retrying",
            )
        };
        match err {
            // The entry reached the log and was then cut off or compacted
            // away: another replica may have committed it.
            RaftError::APIError(ClientWriteError::LogEntryDiscarded(f)) => {
                in_doubt(format!("group {} lost its leader while committing (new leader: {:?})", self.id, f.leader_id))
            }
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => Error::environment(
                SqlState::SERIALIZATION_FAILURE,
                format!("this node is not the leader of group {} (leader: {:?}, {:?})", self.id, f.leader_id, f.reason),
            )
            .with_hint("the transaction was not committed; retry it"),
            RaftError::APIError(other) => Error::environment(SqlState::SERIALIZATION_FAILURE, other.to_string())
                .with_hint("the transaction was not committed; retry it"),
            RaftError::Fatal(fatal) => in_doubt(format!("group {} stopped while committing: {fatal}", self.id)),
        }
    }

    /// Stops the Raft instance.
    pub async fn shutdown(&self) {
        let _ = self.raft.shutdown().await;
    }
}

fn read_index_error(e: RaftError<TypeConfig, LinearizableReadError<TypeConfig>>) -> Error {
    match e {
        RaftError::APIError(api) => {
            Error::environment(SqlState::SERIALIZATION_FAILURE, format!("cannot serve a linearizable read: {api}"))
                .with_hint("retry; the group is electing a leader")
        }
        RaftError::Fatal(fatal) => Error::environment(SqlState::ADMIN_SHUTDOWN, format!("group stopped: {fatal}")),
    }
}

/// The commit index as far as this node knows it (it applies nothing
/// beyond it).
fn committed_index(m: &openraft::RaftMetrics<TypeConfig>) -> u64 {
    let applied = m.last_applied.map(|l| l.index).unwrap_or(0);
    m.local_committed.map(|l| l.index).unwrap_or(0).max(applied)
}

async fn run_blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::internal(format!("blocking task: {e}")))?
}

/// An interactive transaction holding the group's write slot. Dropping it
/// without commit rolls it back.
pub struct WriteTxn {
    group: Arc<Group>,
    _slot: OwnedMutexGuard<()>,
    ctx: ExecContext,
    records: Vec<RecordedStmt>,
    next_seq: u32,
    open: bool,
    /// Set by [`WriteTxn::store_catalog`].
    changes_catalog: bool,
    /// What this transaction's statements did to sequences, failed ones
    /// included: re-applied after `ROLLBACK TO` and `ROLLBACK`, because
    /// PostgreSQL never takes a sequence value back.
    touched: Vec<shoal_storage::Drawn>,
}

impl WriteTxn {
    /// The transaction's execution context.
    pub fn ctx(&self) -> ExecContext {
        self.ctx
    }

    /// True once something was recorded (the commit will propose an entry).
    pub fn has_writes(&self) -> bool {
        !self.records.is_empty()
    }

    /// Executes a statement. With `record`, it is recorded for replay
    /// (including a deterministic failure, which replay then expects).
    pub async fn execute(&mut self, sql: String, params: Vec<Value>, record: bool) -> Result<QueryOutput> {
        self.execute_cancellable(sql, params, record, None).await
    }

    /// [`WriteTxn::execute`] that `cancel` can stop (57014). The statement
    /// fails alone, as in PostgreSQL: when SQLite rolled the whole
    /// transaction back with an interrupted write, it is rebuilt from its
    /// records, so `ROLLBACK TO SAVEPOINT` still works afterwards.
    pub async fn execute_cancellable(
        &mut self,
        sql: String,
        params: Vec<Value>,
        record: bool,
        cancel: Option<StatementCancel>,
    ) -> Result<QueryOutput> {
        let seq = self.next_seq;
        self.next_seq += 1;
        let shared = self.group.shared.clone();
        let ctx = self.ctx;
        let (sql, params, result, failed_draws, lost) = tokio::task::spawn_blocking(move || {
            let mut replica = shared.lock();
            let result = match &cancel {
                Some(cancel) => replica.execute_cancellable(&ctx, seq, &sql, &params, cancel),
                None => replica.execute(&ctx, seq, &sql, &params),
            };
            let failed_draws = replica.take_failed_draws();
            (sql, params, result, failed_draws, replica.transaction_lost())
        })
        .await
        .map_err(|e| Error::internal(format!("execute task: {e}")))?;
        if lost {
            let shared = self.group.shared.clone();
            let txn = TxnRecord { ctx, stmts: self.records.clone(), changes_catalog: false };
            if let Err(e) = run_blocking(move || shared.lock().redo(&[txn])).await {
                // The transaction stays lost: everything but ROLLBACK fails.
                tracing::warn!(error = %e, "could not rebuild a transaction after a cancelled write");
            }
        }
        match &result {
            Ok(output) => self.touched.extend(output.sequences.iter().copied()),
            Err(_) => self.touched.extend(failed_draws),
        }
        if record {
            match &result {
                Ok(_) => self.records.push(RecordedStmt { seq, sql, params, failed: false }),
                Err(e) if e.is_deterministic() => self.records.push(RecordedStmt { seq, sql, params, failed: true }),
                Err(_) => {}
            }
        }
        result
    }

    /// Stores `json` as the SQL catalog in this transaction (so DDL and the
    /// catalog describing it commit together) and marks the transaction as
    /// changing the catalog, which tells every replica to reload it.
    pub async fn store_catalog(&mut self, json: String) -> Result<()> {
        self.execute(shoal_storage::STORE_CATALOG_SQL.to_string(), vec![Value::Text(json)], true).await?;
        self.changes_catalog = true;
        Ok(())
    }

    /// Runs and records `SAVEPOINT x`, `RELEASE x` or `ROLLBACK TO x`.
    pub async fn savepoint(&mut self, sql: String) -> Result<()> {
        let seq = self.next_seq;
        self.next_seq += 1;
        let shared = self.group.shared.clone();
        let stmt = sql.clone();
        run_blocking(move || shared.lock().savepoint_op(&stmt)).await?;
        let rolled_back = sql.starts_with("ROLLBACK");
        self.records.push(RecordedStmt { seq, sql, params: Vec::new(), failed: false });
        if rolled_back {
            // The savepoint's rollback took sequence advances back too; put them forward again.
            for (sql, params) in shoal_storage::sequences::restore_statements(&self.touched) {
                self.execute(sql, params, true).await?;
            }
        }
        Ok(())
    }

    /// Commits: proposes the recorded statements and waits until they are
    /// durable on a quorum and applied. Returns the entry's log index (or the
    /// current applied index when nothing was written).
    pub async fn commit(mut self) -> Result<u64> {
        self.open = false;
        if self.records.is_empty() {
            let shared = self.group.shared.clone();
            return run_blocking(move || {
                let mut replica = shared.lock();
                replica.rollback()?;
                Ok(replica.applied().index)
            })
            .await;
        }
        if self.group.shared.lock().transaction_lost() {
            // A cancelled write took the SQLite transaction with it and it
            // could not be rebuilt: there is nothing left to commit.
            let _ = self.group.shared.lock().rollback();
            return Err(Error::environment(
                SqlState::IN_FAILED_SQL_TRANSACTION,
                "the transaction was rolled back when one of its statements was cancelled",
            ));
        }
        let txn = TxnRecord {
            ctx: self.ctx,
            stmts: std::mem::take(&mut self.records),
            changes_catalog: self.changes_catalog,
        };
        self.group.propose(vec![txn]).await
    }

    /// Rolls back. If the transaction drew from sequences, their advances
    /// are then committed on their own (one small entry), since PostgreSQL
    /// never hands a sequence value out twice.
    pub async fn rollback(mut self) -> Result<()> {
        self.open = false;
        let shared = self.group.shared.clone();
        let restore = shoal_storage::sequences::restore_statements(&self.touched);
        let ctx = self.ctx;
        let stmts = run_blocking(move || {
            let mut replica = shared.lock();
            replica.rollback()?;
            if restore.is_empty() {
                return Ok(Vec::new());
            }
            replica.begin()?;
            let mut stmts = Vec::new();
            for (seq, (sql, params)) in restore.into_iter().enumerate() {
                let seq = seq as u32;
                if let Err(e) = replica.execute(&ctx, seq, &sql, &params) {
                    replica.rollback()?;
                    return Err(e);
                }
                stmts.push(RecordedStmt { seq, sql, params, failed: false });
            }
            Ok(stmts)
        })
        .await?;
        if stmts.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.group.propose(vec![TxnRecord { ctx, stmts, changes_catalog: false }]).await {
            // The rollback itself succeeded; only the sequences' advance is lost.
            tracing::warn!(error = %e, "could not keep the sequence advances of a rolled-back transaction");
        }
        Ok(())
    }
}

impl Drop for WriteTxn {
    fn drop(&mut self) {
        if self.open {
            if let Err(e) = self.group.shared.lock().rollback() {
                tracing::error!(error = %e, "rolling back an abandoned transaction failed");
            }
        }
    }
}

/// How often committed WAL content is copied into the database file.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(500);

/// Checkpoints the replica's WAL in the background, so commits never pay
/// for it (see `shoal_storage::checkpoint`).
async fn run_checkpointer(group: std::sync::Weak<Group>) {
    let mut conn = None;
    loop {
        tokio::time::sleep(CHECKPOINT_INTERVAL).await;
        let Some(group) = group.upgrade() else { return };
        let connection = match conn.take() {
            Some(c) => c,
            None => match group.open_connection() {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(group = group.id, error = %e, "checkpointer cannot open a connection");
                    continue;
                }
            },
        };
        drop(group);
        let result = tokio::task::spawn_blocking(move || {
            let result = shoal_storage::checkpoint(&connection);
            (connection, result)
        })
        .await;
        match result {
            Ok((connection, Ok(_))) => conn = Some(connection),
            Ok((connection, Err(e))) => {
                tracing::warn!(error = %e, "WAL checkpoint failed");
                conn = Some(connection);
            }
            Err(e) => tracing::warn!(error = %e, "checkpoint task failed"),
        }
    }
}

/// Serves [`Group::leader_read_index`]: one leadership round (a heartbeat
/// to every voter, answered by a quorum) for every caller that queued before
/// it started. A caller that arrives while a round is in flight waits for the
/// next one, since the answer must come from a check made after its read
/// began; so concurrent linearizable reads cost one round per batch, not one
/// each.
async fn run_read_index_rounds(raft: Raft, mut rx: mpsc::UnboundedReceiver<oneshot::Sender<Result<u64>>>) {
    while let Some(first) = rx.recv().await {
        let mut waiters = vec![first];
        while let Ok(waiter) = rx.try_recv() {
            waiters.push(waiter);
        }
        let answer = raft
            .ensure_linearizable(ReadPolicy::ReadIndex)
            .await
            .map(|read_log_id| read_log_id.log_id().index)
            .map_err(read_index_error);
        for waiter in waiters {
            let _ = waiter.send(answer.clone());
        }
    }
}

/// The outcome of a submitted proposal (see [`Group::submit`]).
type Outcome = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Committed>> + Send>>;

/// A proposal that committed and was applied.
struct Committed {
    index: u64,
    /// Its transactions' outputs when it was replayed rather than committed
    /// from the writer's open transaction ([`shoal_storage::Applied`]).
    replayed: Option<Vec<QueryOutput>>,
}

type Reply = oneshot::Sender<Result<(QueryOutput, u64)>>;

/// A session waiting for a batch: where to answer, the output of its
/// statement's execution, and the position of its transaction in the
/// batch's entry.
struct Waiting {
    reply: Reply,
    output: QueryOutput,
    txn: usize,
}

/// A batch whose entry is in its Raft round: its outcome and the sessions
/// waiting for it.
struct InFlight {
    outcome: Outcome,
    waiting: Vec<Waiting>,
}

/// Answers a batch's sessions. A replayed entry's outputs replace those of
/// the batch's execution: the batch's transaction was given up (a snapshot
/// install, say) while Raft still committed its entry, so what every
/// replica applied is the replay.
fn deliver(waiting: Vec<Waiting>, outcome: Result<Committed>) {
    match outcome {
        Ok(Committed { index, mut replayed }) => {
            for Waiting { reply, output, txn } in waiting {
                let output = match replayed.as_mut().and_then(|outputs| outputs.get_mut(txn)) {
                    Some(applied) => std::mem::take(applied),
                    None => output,
                };
                let _ = reply.send(Ok((output, index)));
            }
        }
        Err(e) => {
            for Waiting { reply, .. } in waiting {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}

/// How long a new leader's first writes wait for it to apply its
/// predecessor's entries ([`Group::await_term_applied`]).
const TERM_START_WAIT: Duration = Duration::from_secs(2);

/// At most this many batches are in their Raft round at once (the replica
/// holds at most two proposals per transaction; see its module docs).
const PIPELINE_DEPTH: usize = 2;

/// What the batcher waits for next.
enum Wake {
    Settled(Result<Committed>),
    Item(Option<BatchItem>),
}

/// The batcher task: see the module docs. It holds the write slot from a
/// pipeline's first batch until none is in flight, and starts the next
/// batch while the previous one is in its Raft round when the replica lets
/// it join the open transaction ([`Replica::begin_next`]), so a round's
/// latency is not paid twice by the writes that queued during it.
async fn run_batcher(group: std::sync::Weak<Group>, mut rx: mpsc::Receiver<BatchItem>) {
    let mut in_flight: std::collections::VecDeque<InFlight> = std::collections::VecDeque::new();
    let mut slot = None;
    // Items that start the next batch, oldest first.
    let mut next: Vec<BatchItem> = Vec::new();
    loop {
        if in_flight.is_empty() {
            // Between pipelines the slot is given up (and queued for again),
            // so interactive transactions waiting for it take their turn.
            slot = None;
        }
        if next.is_empty() {
            let depth = in_flight.len();
            let wake = match in_flight.front_mut() {
                None => Wake::Item(rx.recv().await),
                Some(front) if depth < PIPELINE_DEPTH => {
                    tokio::select! {
                        biased;
                        settled = &mut front.outcome => Wake::Settled(settled),
                        item = rx.recv() => Wake::Item(item),
                    }
                }
                Some(front) => Wake::Settled((&mut front.outcome).await),
            };
            match wake {
                Wake::Settled(outcome) => {
                    if let Some(batch) = in_flight.pop_front() {
                        deliver(batch.waiting, outcome);
                    }
                    continue;
                }
                Wake::Item(Some(item)) => next.push(item),
                Wake::Item(None) => {
                    while let Some(batch) = in_flight.pop_front() {
                        deliver(batch.waiting, batch.outcome.await);
                    }
                    return;
                }
            }
        }
        let Some(group) = group.upgrade() else { return };
        if slot.is_none() {
            slot = Some(group.write_slot.clone().lock_owned().await);
        }
        let items = gather_batch(std::mem::take(&mut next), &mut rx).await;
        match run_batch(&group, items, in_flight.front_mut()).await {
            Started::Proposed(batch) => in_flight.push_back(batch),
            Started::Done => {}
            Started::NotNow(items) => match in_flight.pop_front() {
                // The open transaction takes no second batch yet: settle
                // the oldest in flight, then start with these items.
                Some(batch) => {
                    deliver(batch.waiting, batch.outcome.await);
                    next = items;
                }
                None => {
                    let busy = Error::internal("the group's writer holds a transaction no batch owns");
                    for item in items {
                        let _ = item.reply.send(Err(busy.clone()));
                    }
                }
            },
        }
    }
}

/// A batch is cut once this many yields in a row brought no statement.
const QUIET_YIELDS: u32 = 2;
/// At most this many yields gather one batch.
const MAX_GATHER_YIELDS: u32 = 16;

/// Everything queued joins the batch `items` starts; then the batcher yields
/// to the runtime, and takes what arrived, until [`QUIET_YIELDS`] yields in
/// a row bring nothing. Under load statements arrive in bursts: a batch's
/// answers go out together, so its clients' next statements come back
/// together, and the sessions holding them need a few polls each (read,
/// parse, plan) before they queue. A batch cut at the first arrival leaves
/// the rest of the burst to the next batch, which then also needs a Raft
/// round and an fsync on every replica of its own. A yielded task runs
/// after the tasks already runnable and after the runtime polls its
/// sockets, so an idle group pays only a few microseconds. On the 16-client
/// insert benchmark this took batches from 6 to about 12 statements and
/// CPU per insert down by a third (docs/benchmarks.md).
async fn gather_batch(mut items: Vec<BatchItem>, rx: &mut mpsc::Receiver<BatchItem>) -> Vec<BatchItem> {
    let take_queued = |items: &mut Vec<BatchItem>, rx: &mut mpsc::Receiver<BatchItem>| {
        while items.len() < MAX_BATCH_STATEMENTS {
            match rx.try_recv() {
                Ok(item) => items.push(item),
                Err(_) => break,
            }
        }
    };
    take_queued(&mut items, rx);
    let mut quiet = 0;
    for _ in 0..MAX_GATHER_YIELDS {
        if quiet >= QUIET_YIELDS || items.len() >= MAX_BATCH_STATEMENTS {
            break;
        }
        tokio::task::yield_now().await;
        let before = items.len();
        take_queued(&mut items, rx);
        quiet = if items.len() == before { quiet + 1 } else { 0 };
    }
    items
}

/// Re-applies what a failed batched statement drew from sequences; returns
/// the statements, recorded in the batch's entry.
fn restore_draws(
    replica: &mut Replica,
    ctx: &ExecContext,
    draws: &[shoal_storage::Drawn],
) -> Result<Vec<RecordedStmt>> {
    let mut restore = Vec::new();
    for (seq, (sql, params)) in shoal_storage::sequences::restore_statements(draws).into_iter().enumerate() {
        let seq = seq as u32;
        replica.execute(ctx, seq, &sql, &params)?;
        restore.push(RecordedStmt { seq, sql, params, failed: false });
    }
    Ok(restore)
}

/// After SQLite rolled back a batch's transaction with the cancelled
/// statement of `cancelled`, redoes the items `done` before it (as followers
/// will replay them) and keeps the cancelled statement's sequence draws.
fn redo_batch(
    replica: &mut Replica,
    done: &[(BatchItem, ItemResult)],
    cancelled: &BatchItem,
) -> Result<Vec<RecordedStmt>> {
    let draws = replica.take_failed_draws();
    let txns: Vec<TxnRecord> = done
        .iter()
        .map(|(item, result)| {
            let stmts = match result {
                Ok(_) => {
                    vec![RecordedStmt { seq: 0, sql: item.sql.clone(), params: item.params.clone(), failed: false }]
                }
                Err((_, restore)) => restore.clone(),
            };
            TxnRecord { changes_catalog: false, ctx: item.ctx, stmts }
        })
        .collect();
    replica.redo(&txns)?;
    restore_draws(replica, &cancelled.ctx, &draws)
}

/// The error of the first batch of a pipeline when Raft has already
/// answered it with one. Its outcome is polled once: ready, it is kept for
/// the batcher to deliver as usual.
fn first_refused(first: &mut InFlight) -> Option<Error> {
    use futures::FutureExt;
    let settled = (&mut first.outcome).now_or_never()?;
    let refused = settled.as_ref().err().cloned();
    first.outcome = Box::pin(std::future::ready(settled));
    refused
}

/// How [`run_batch`] ended.
enum Started {
    /// Its entry is in its Raft round.
    Proposed(InFlight),
    /// Every session already has its answer (nothing to propose, or the
    /// environment failed).
    Done,
    /// The writer's open transaction cannot take another batch yet.
    NotNow(Vec<BatchItem>),
}

/// Executes `items` on the writer — in a new transaction when nothing is in
/// flight, or as the second batch of the open one when `first` is in
/// flight — each statement in its own savepoint, and submits what succeeded
/// as one entry. A pipeline is at most that pair, so nothing is in flight
/// between pipelines and the batcher gives the write slot up there.
async fn run_batch(group: &Arc<Group>, items: Vec<BatchItem>, mut first: Option<&mut InFlight>) -> Started {
    let alone = first.is_none();
    if alone {
        if let Err(e) = group.await_term_applied().await {
            for item in items {
                let _ = item.reply.send(Err(e.clone()));
            }
            return Started::Done;
        }
    }
    // Checked here too, so a batch that cannot join yet costs no trip to a
    // blocking thread (a third of all attempts under steady load). Only a
    // "yes" can change before the batch runs, so the check below stays.
    if !alone && !group.shared.lock().can_begin_next() {
        return Started::NotNow(items);
    }
    let shared = group.shared.clone();
    let proposal = group.next_proposal_id();
    let executed = tokio::task::spawn_blocking(move || {
        let mut replica = shared.lock();
        let second = replica.in_txn();
        if !second && !alone {
            // The previous pipeline's last entry committed, but its outcome
            // is still to be delivered: start after it.
            return Ok(Err(items));
        }
        if second {
            match replica.begin_next(proposal) {
                Ok(true) => {}
                Ok(false) => return Ok(Err(items)),
                Err(e) => return Err((items, e)),
            }
        } else {
            if let Err(e) = replica.begin().and_then(|()| replica.push_pending(proposal)) {
                return Err((items, e));
            }
        }
        let mut done = Vec::with_capacity(items.len());
        for item in items {
            let outcome = (|| -> Result<ItemResult> {
                if !item.cancel.start() {
                    // Cancelled (or withdrawn) while it queued: never run.
                    return Ok(Err((canceled(), Vec::new())));
                }
                replica.control("SAVEPOINT __shoal_stmt")?;
                // Interrupting a write makes SQLite roll back the whole
                // transaction; in a pipelined batch that would take the
                // proposed first batch's effects with it, so a running
                // statement there is not interrupted (a cancel still stops
                // it from being proposed, below).
                let result = match second {
                    true => replica.execute(&item.ctx, 0, &item.sql, &item.params),
                    false => replica.execute_cancellable(&item.ctx, 0, &item.sql, &item.params, &item.cancel),
                };
                match result {
                    // finish(): from here on a cancel is refused, the write goes to Raft.
                    Ok(output) if item.cancel.finish() => {
                        replica.control("RELEASE __shoal_stmt")?;
                        Ok(Ok(output))
                    }
                    Err(e) if e.code == SqlState::QUERY_CANCELED && replica.transaction_lost() => {
                        // SQLite rolled back the whole batch with the
                        // interrupted write; the loop below rebuilds it.
                        Ok(Err((e, Vec::new())))
                    }
                    Err(e) if e.is_deterministic() || e.code == SqlState::QUERY_CANCELED => {
                        replica.control("ROLLBACK TO __shoal_stmt")?;
                        replica.control("RELEASE __shoal_stmt")?;
                        // Keep what the failed statement drew from sequences
                        // (PostgreSQL never takes a value back), as a
                        // transaction of its own in this entry.
                        let draws = replica.take_failed_draws();
                        Ok(Err((e, restore_draws(&mut replica, &item.ctx, &draws)?)))
                    }
                    // Cancelled just after it ran: undone like a failure.
                    Ok(_) => {
                        replica.control("ROLLBACK TO __shoal_stmt")?;
                        replica.control("RELEASE __shoal_stmt")?;
                        let draws = replica.take_failed_draws();
                        Ok(Err((canceled(), restore_draws(&mut replica, &item.ctx, &draws)?)))
                    }
                    Err(e) => Err(e),
                }
            })();
            let outcome = match outcome {
                Ok(Err((e, _))) if replica.transaction_lost() => {
                    redo_batch(&mut replica, &done, &item).map(|restore| Err((e, restore)))
                }
                other => other,
            };
            match outcome {
                Ok(result) => done.push((item, result)),
                Err(fatal) => {
                    // The environment failed: nothing of this batch may commit.
                    let _ = replica.abandon(proposal);
                    let mut all: Vec<BatchItem> = done.into_iter().map(|(i, _)| i).collect();
                    all.push(item);
                    return Err((all, fatal));
                }
            }
        }
        Ok(Ok((done, second)))
    })
    .await;
    let (done, pipelined) = match executed {
        Ok(Ok(Ok(executed))) => executed,
        Ok(Ok(Err(items))) => return Started::NotNow(items),
        Ok(Err((items, err))) => {
            for item in items {
                let _ = item.reply.send(Err(err.clone()));
            }
            group.shared.publish_applied(&group.shared.lock());
            return Started::Done;
        }
        Err(join) => {
            tracing::error!(error = %join, "batch task failed");
            return Started::Done;
        }
    };
    let mut txns = Vec::new();
    let mut waiting = Vec::new();
    for (item, result) in done {
        match result {
            Ok(output) => {
                waiting.push(Waiting { reply: item.reply, output, txn: txns.len() });
                txns.push(TxnRecord {
                    changes_catalog: false,
                    ctx: item.ctx,
                    stmts: vec![RecordedStmt { seq: 0, sql: item.sql, params: item.params, failed: false }],
                });
            }
            Err((e, restore)) => {
                if !restore.is_empty() {
                    txns.push(TxnRecord { changes_catalog: false, ctx: item.ctx, stmts: restore });
                }
                let _ = item.reply.send(Err(e));
            }
        }
    }
    if txns.is_empty() {
        if let Err(e) = group.abandon(proposal) {
            tracing::error!(error = %e, "abandoning an empty batch failed");
        }
        return Started::Done;
    }
    if let Some(first) = first.as_mut() {
        // The second ran on top of the first's effects, so it must not
        // reach the log if the first did not: replayed without them, one
        // of its statements could fail where it succeeded here, and every
        // replica would stop on it. Raft handles requests in order, so once
        // this no-op has been through its loop the first was appended or
        // refused; a refusal has already answered (and rolled back both).
        let _ = group.raft.with_raft_state(|_| ()).await;
        if let Some(refused) = first_refused(first) {
            let _ = group.abandon(proposal);
            let err = Error::environment(
                SqlState::SERIALIZATION_FAILURE,
                format!("the write batch this one was pipelined behind did not commit: {}", refused.message),
            )
            .with_hint("this write was not committed; retry it");
            for Waiting { reply, .. } in waiting {
                let _ = reply.send(Err(err.clone()));
            }
            return Started::Done;
        }
    }
    group.write_batches.fetch_add(1, Ordering::Relaxed);
    group.batched_statements.fetch_add(waiting.len() as u64, Ordering::Relaxed);
    if pipelined {
        group.pipelined_batches.fetch_add(1, Ordering::Relaxed);
    }
    Started::Proposed(InFlight { outcome: group.submit(proposal, txns).await, waiting })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(n: usize) -> BatchItem {
        let (reply, _) = oneshot::channel();
        BatchItem {
            ctx: ExecContext::now(1),
            sql: format!("-- {n}"),
            params: Vec::new(),
            cancel: StatementCancel::new(),
            reply,
        }
    }

    fn output(changes: u64) -> QueryOutput {
        QueryOutput { changes, ..QueryOutput::default() }
    }

    /// A batch's sessions are told their own statement's outcome: its
    /// execution's output when the entry committed from the open
    /// transaction, the replay's when it was replayed (the entry's
    /// transactions include ones of failed statements, which wait for
    /// nothing, so positions are not session order).
    #[tokio::test(flavor = "current_thread")]
    async fn a_replayed_batch_answers_with_the_replay_outputs() {
        for replayed in [false, true] {
            let (a, a_rx) = oneshot::channel();
            let (b, b_rx) = oneshot::channel();
            let waiting =
                vec![Waiting { reply: a, output: output(1), txn: 0 }, Waiting { reply: b, output: output(1), txn: 2 }];
            let outputs = replayed.then(|| vec![output(0), QueryOutput::default(), output(7)]);
            deliver(waiting, Ok(Committed { index: 9, replayed: outputs }));
            let (a, b) = (a_rx.await.unwrap().unwrap(), b_rx.await.unwrap().unwrap());
            let expected = if replayed { (0, 7) } else { (1, 1) };
            assert_eq!((a.0.changes, b.0.changes), expected, "replayed: {replayed}");
            assert_eq!((a.1, b.1), (9, 9));
        }
    }

    /// A pipeline's second batch is submitted only if Raft did not already
    /// refuse the first; peeking at the first's outcome keeps it for the
    /// batcher, whatever it was.
    #[tokio::test(flavor = "current_thread")]
    async fn a_refused_first_batch_is_seen_and_its_outcome_kept() {
        let in_flight = |outcome: Outcome| InFlight { outcome, waiting: Vec::new() };
        let refusal = Error::environment(SqlState::SERIALIZATION_FAILURE, "not the leader");
        let mut refused = in_flight(Box::pin(std::future::ready(Err(refusal))));
        assert_eq!(first_refused(&mut refused).map(|e| e.message), Some("not the leader".to_string()));
        assert!(refused.outcome.await.is_err(), "the refusal is still delivered");

        let mut committed = in_flight(Box::pin(std::future::ready(Ok(Committed { index: 4, replayed: None }))));
        assert!(first_refused(&mut committed).is_none());
        assert_eq!(committed.outcome.await.unwrap().index, 4);

        let (tx, rx) = oneshot::channel::<u64>();
        let mut open = in_flight(Box::pin(async move {
            let index = rx.await.map_err(|_| Error::internal("dropped"))?;
            Ok(Committed { index, replayed: None })
        }));
        assert!(first_refused(&mut open).is_none(), "still in its round");
        tx.send(9).unwrap();
        assert_eq!(open.outcome.await.unwrap().index, 9);
    }

    /// Sessions that need a few polls before they queue (reading, parsing,
    /// planning) still make the batch their burst started: session `i`
    /// yields `i` times first. Without gathering, the batch would hold only
    /// what was queued when the batcher woke.
    #[tokio::test(flavor = "current_thread")]
    async fn a_burst_of_sessions_joins_one_batch() {
        let (tx, mut rx) = mpsc::channel(64);
        for i in 0..8 {
            let tx = tx.clone();
            tokio::spawn(async move {
                for _ in 0..i {
                    tokio::task::yield_now().await;
                }
                tx.send(item(i)).await.unwrap();
            });
        }
        drop(tx);
        let first = rx.recv().await.unwrap();
        let queued_at_wake_up = rx.len();
        let batch = gather_batch(vec![first], &mut rx).await;
        assert!(queued_at_wake_up < 7, "the test needs sessions still on their way ({queued_at_wake_up} queued)");
        let sql: Vec<&str> = batch.iter().map(|item| item.sql.as_str()).collect();
        assert_eq!(sql, (0..8).map(|i| format!("-- {i}")).collect::<Vec<_>>());
    }

    /// An idle group cuts the batch after a couple of empty yields, and a
    /// full batch is cut at once, leaving the rest queued.
    #[tokio::test(flavor = "current_thread")]
    async fn gathering_stops_when_quiet_or_full() {
        let (tx, mut rx) = mpsc::channel(MAX_BATCH_STATEMENTS + 10);
        let batch = gather_batch(vec![item(0)], &mut rx).await;
        assert_eq!(batch.len(), 1);
        // A session one poll away joins; one that arrives only after
        // QUIET_YIELDS empty yields waits for the next batch.
        let late = QUIET_YIELDS as usize + 3;
        for (n, polls) in [(1, 1), (2, late)] {
            let tx = tx.clone();
            tokio::spawn(async move {
                for _ in 0..polls {
                    tokio::task::yield_now().await;
                }
                tx.send(item(n)).await.unwrap();
            });
        }
        let batch = gather_batch(vec![item(0)], &mut rx).await;
        let sql: Vec<&str> = batch.iter().map(|item| item.sql.as_str()).collect();
        assert_eq!(sql, ["-- 0", "-- 1"]);
        assert_eq!(rx.recv().await.map(|item| item.sql), Some("-- 2".to_string()));
        for i in 0..MAX_BATCH_STATEMENTS + 10 {
            tx.send(item(i)).await.unwrap();
        }
        let batch = gather_batch(Vec::new(), &mut rx).await;
        assert_eq!(batch.len(), MAX_BATCH_STATEMENTS);
        assert_eq!(rx.len(), 10);
    }
}
