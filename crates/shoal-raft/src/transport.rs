//! The node-to-node transport: one TCP connection per peer carries every
//! group's Raft messages and the server's own requests (joins, forwarded
//! writes, read-index checks).
//!
//! ## Wire format
//!
//! ```text
//! dialer ── Hello { magic, version, cluster id, from } ──▶ listener
//!        ◀── Welcome | Refused { reason } ─────────────────
//!        ── [u32 length][bincode Envelope::Request { id, body }] ──▶   (many in flight)
//!        ◀── [u32 length][bincode Envelope::Response { id, body }] ──   (any order)
//! ```
//!
//! * **Versioned**: the hello carries [`PROTOCOL_VERSION`]; a listener refuses
//!   any other, and anything that does not start with the magic bytes.
//! * **One cluster**: a hello naming another cluster id is refused. A node
//!   that has not joined yet says "no cluster" and may then only send service
//!   requests (the join itself), never Raft messages.
//! * **Multiplexed**: requests carry ids; the listener runs each in its own
//!   task, so a slow snapshot install for one group does not hold up another
//!   group's heartbeats.
//! * **Pipelined replication**: openraft replicates to a follower through a
//!   stream of AppendEntries. The leader sends up to 64 (`PIPELINE_WINDOW`) of a
//!   stream's requests before it waits for the oldest answer; the listener
//!   routes them, in arrival order, to one task per stream that feeds them to
//!   `Raft::stream_append`, whose answers come back in order. A stream ends
//!   at its first failure or refusal; openraft then starts a new one.
//!   Heartbeats are single requests.
//! * **Snapshots in chunks** of 1 MiB (`SNAPSHOT_CHUNK_BYTES`), each acknowledged
//!   before the next, so a snapshot never blocks the connection for long;
//!   the receiver checks the whole file's CRC-32 and the snapshot's position
//!   before installing it.
//! * **Bounded**: frames over [`MAX_FRAME_BYTES`] close the connection;
//!   decoding is size-limited, so a hostile peer cannot make us allocate more.
//!
//! Errors say whether a request may have been delivered: SQLSTATE 08006
//! (connection failure) means it certainly was not, 40003 (completion
//! unknown) that it was sent and no answer came.
//!
//! **TLS** (optional, [`Transport::set_tls`]): every connection, both ways,
//! is TLS with certificates from the cluster's CA checked on both ends
//! ([`crate::tls`]); the hello and frames then run inside it. A node with TLS
//! accepts no plain connections.
//!
//! Connections are keyed by the address dialed and re-established on the
//! next call after a failure. `SHOAL_PEER_ADDRS=2=host:port,3=host:port`
//! overrides the address used to reach a node id; the fault-injection test
//! kit uses it to route every link through its proxies.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bincode::Options;
use futures::{Stream, StreamExt};
use openraft::alias::{SnapshotMetaOf, VoteOf};
use openraft::async_runtime::WatchReceiver;
use openraft::base::{BoxFuture as RaftBoxFuture, BoxStream};
use openraft::errors::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{Backoff, RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, StreamAppendResult, VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use shoal_common::{Error, Result, SqlState};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};

use crate::state_machine::{Snapshot, SnapshotData};
use crate::types::{GroupId, NodeId, Raft, TypeConfig};

/// Bumped on any incompatible change to the messages below, including the
/// node service's calls they carry (`shoal_server::cluster::Call`; version 3:
/// cancellable `Begin`, `CancelForwarded`; version 4: openraft 0.10's
/// messages, pipelined append streams, snapshots in acknowledged chunks).
pub const PROTOCOL_VERSION: u32 = 4;
const MAGIC: [u8; 8] = *b"SHOALRPC";
/// Largest frame either side accepts (snapshot chunks are far smaller).
pub const MAX_FRAME_BYTES: u64 = 256 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// Read buffer of a connection (frames are usually far smaller).
const READ_BUFFER_BYTES: usize = 64 << 10;
/// Outgoing frames queued per connection before callers wait.
const SEND_QUEUE: usize = 1024;
/// AppendEntries requests of one stream in flight before the leader waits
/// for the oldest answer.
const PIPELINE_WINDOW: usize = 64;
/// Snapshot bytes per chunk: small enough that other groups' messages on
/// the same connection are not held up behind a snapshot.
const SNAPSHOT_CHUNK_BYTES: usize = 1 << 20;
/// How long the last chunk may take: the follower answers it only after
/// installing the whole snapshot.
const SNAPSHOT_INSTALL_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Serialize, Deserialize)]
struct Hello {
    magic: [u8; 8],
    version: u32,
    /// `None` from a node that has not joined a cluster yet.
    cluster_id: Option<String>,
    from: Option<NodeId>,
}

#[derive(Debug, Serialize, Deserialize)]
enum HelloReply {
    Welcome,
    Refused { reason: String },
}

#[derive(Debug, Serialize, Deserialize)]
enum Envelope {
    Request { id: u64, body: Request },
    Response { id: u64, body: Response },
}

/// What one node asks another. Raft's own errors travel as text: the
/// receiving side only needs to know that the call failed.
#[derive(Debug, Serialize, Deserialize)]
enum Request {
    /// One AppendEntries on its own (a heartbeat).
    AppendEntries {
        group: GroupId,
        rpc: AppendEntriesRequest<TypeConfig>,
    },
    /// One AppendEntries of a pipelined stream: the receiver hands the
    /// requests of `stream` to Raft in the order they arrive, without
    /// waiting for one to finish before passing on the next.
    StreamAppend {
        group: GroupId,
        stream: u64,
        rpc: AppendEntriesRequest<TypeConfig>,
    },
    Vote {
        group: GroupId,
        rpc: VoteRequest<TypeConfig>,
    },
    PreVote {
        group: GroupId,
        rpc: VoteRequest<TypeConfig>,
    },
    /// Part of a snapshot, sent in order and each acknowledged before the
    /// next; `offset` 0 starts a transfer, `done` installs it.
    SnapshotChunk(SnapshotChunk),
    /// An opaque request for the [`Service`] above Raft (the server's).
    Service(Vec<u8>),
}

#[derive(Debug, Serialize, Deserialize)]
struct SnapshotChunk {
    group: GroupId,
    vote: VoteOf<TypeConfig>,
    meta: SnapshotMetaOf<TypeConfig>,
    /// Of the whole snapshot.
    crc32: u32,
    offset: u64,
    data: Vec<u8>,
    done: bool,
}

#[derive(Debug, Serialize, Deserialize)]
enum Response {
    AppendEntries(std::result::Result<AppendEntriesResponse<TypeConfig>, String>),
    StreamAppend(std::result::Result<StreamAppendResult<TypeConfig>, String>),
    Vote(std::result::Result<VoteResponse<TypeConfig>, String>),
    /// `None`: the chunk was taken, send the next one.
    SnapshotChunk(std::result::Result<Option<SnapshotResponse<TypeConfig>>, String>),
    Service(std::result::Result<Vec<u8>, Error>),
    /// The request never reached a handler (unknown group, not allowed yet…).
    Undeliverable(String),
}

/// A boxed future, for the object-safe [`Service`] trait.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Handles the service requests peers send (see [`Transport::call_service`]).
pub trait Service: Send + Sync + 'static {
    /// Answers one request; `from` is the sender's node id if it has one.
    fn handle(&self, from: Option<NodeId>, request: Vec<u8>) -> BoxFuture<Result<Vec<u8>>>;
}

fn codec() -> impl Options {
    bincode::DefaultOptions::new().with_limit(MAX_FRAME_BYTES)
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    codec().serialize(value).map_err(|e| Error::internal(format!("encoding a peer message: {e}")))
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    codec()
        .deserialize(bytes)
        .map_err(|e| Error::environment(SqlState::PROTOCOL_VIOLATION, format!("undecodable message from a peer: {e}")))
}

/// The request certainly did not reach the peer (08006): safe to retry.
fn peer_error(message: impl Into<String>) -> Error {
    Error::environment(SqlState::CONNECTION_FAILURE, message)
}

/// The request may have reached the peer, but no answer came back (40003).
fn in_doubt(message: impl Into<String>) -> Error {
    Error::environment(SqlState::STATEMENT_COMPLETION_UNKNOWN, message)
}

async fn write_frame<W: AsyncWriteExt + Unpin>(w: &mut W, payload: &[u8]) -> std::io::Result<()> {
    w.write_all(&(payload.len() as u32).to_be_bytes()).await?;
    w.write_all(payload).await
}

async fn read_frame<R: AsyncReadExt + Unpin>(r: &mut R) -> std::io::Result<Vec<u8>> {
    let len = r.read_u32().await? as u64;
    if len > MAX_FRAME_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("peer frame of {len} bytes exceeds the {MAX_FRAME_BYTES}-byte limit"),
        ));
    }
    let mut buf = vec![0; len as usize];
    r.read_exact(&mut buf).await?;
    Ok(buf)
}

/// This node's endpoint of the transport: registered groups, the service
/// handler, and the connections to peers. Cheap to clone.
#[derive(Clone)]
pub struct Transport {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport").field("node_id", &self.node_id()).finish_non_exhaustive()
    }
}

struct Inner {
    node_id: RwLock<Option<NodeId>>,
    cluster_id: RwLock<Option<String>>,
    groups: RwLock<HashMap<GroupId, Raft>>,
    service: RwLock<Option<Arc<dyn Service>>>,
    /// Dialed connections by address.
    peers: Mutex<HashMap<String, Arc<Peer>>>,
    /// `SHOAL_PEER_ADDRS`: where to dial a node id instead of its recorded address.
    overrides: HashMap<NodeId, String>,
    next_id: AtomicU64,
    stop: watch::Sender<bool>,
    /// TLS for every connection, both ways (`None`: plain TCP).
    tls: RwLock<Option<Arc<crate::tls::NodeTls>>>,
    /// Snapshots being received, by group (a group has one leader, which
    /// sends one snapshot at a time).
    incoming_snapshots: Mutex<HashMap<GroupId, IncomingSnapshot>>,
}

/// The append streams of one served connection, by group and stream id:
/// where to pass each stream's requests (with their request ids).
type AppendStreams = HashMap<(GroupId, u64), mpsc::Sender<(u64, AppendEntriesRequest<TypeConfig>)>>;

/// A snapshot whose chunks are arriving.
struct IncomingSnapshot {
    vote: VoteOf<TypeConfig>,
    meta: SnapshotMetaOf<TypeConfig>,
    crc32: u32,
    bytes: Vec<u8>,
}

/// Refuses a snapshot that no correct leader could send: one whose last
/// entry is from a later leader than the sender's vote, or that contradicts
/// what this replica knows is committed. openraft treats both as
/// corruption and panics on them; a peer's message must not panic us.
fn check_snapshot_position(
    raft: &Raft,
    vote: &VoteOf<TypeConfig>,
    meta: &SnapshotMetaOf<TypeConfig>,
) -> std::result::Result<(), String> {
    let Some(last) = &meta.last_log_id else { return Ok(()) };
    if last.leader_id > vote.leader_id {
        return Err(format!("snapshot ending at {last} is beyond its sender's vote {vote}"));
    }
    let committed = raft.metrics().borrow_watched().local_committed;
    if let Some(committed) = committed {
        if *last > committed && last.index <= committed.index {
            return Err(format!("snapshot ending at {last} contradicts the committed log at {committed}"));
        }
    }
    Ok(())
}

/// Feeds one append stream's requests into Raft in order and sends each
/// answer back under its request's id, as Raft produces them (in order).
async fn serve_append_stream(
    raft: Raft,
    requests: mpsc::Receiver<(u64, AppendEntriesRequest<TypeConfig>)>,
    out: mpsc::Sender<Vec<u8>>,
) {
    // Ids of the requests handed to Raft and not answered yet, oldest first.
    let waiting: Arc<Mutex<VecDeque<u64>>> = Arc::default();
    let input = {
        let waiting = waiting.clone();
        futures::stream::unfold(requests, move |mut requests| {
            let waiting = waiting.clone();
            async move {
                let (id, rpc) = requests.recv().await?;
                waiting.lock().unwrap_or_else(|p| p.into_inner()).push_back(id);
                Some((rpc, requests))
            }
        })
    };
    let answers = raft.stream_append(input);
    futures::pin_mut!(answers);
    while let Some(answer) = answers.next().await {
        let Some(id) = waiting.lock().unwrap_or_else(|p| p.into_inner()).pop_front() else { break };
        let body = Response::StreamAppend(answer.map_err(|fatal| fatal.to_string()));
        let Ok(bytes) = encode(&Envelope::Response { id, body }) else { break };
        if out.send(bytes).await.is_err() {
            return;
        }
    }
    // Raft ends a stream at its first refusal; whatever was queued behind
    // it gets no answer from Raft, so the leader hears it here.
    let left: Vec<u64> = waiting.lock().unwrap_or_else(|p| p.into_inner()).drain(..).collect();
    for id in left {
        let body = Response::Undeliverable("the append stream ended before this request".into());
        if let Ok(bytes) = encode(&Envelope::Response { id, body }) {
            let _ = out.send(bytes).await;
        }
    }
}

/// A connection to a peer, plain or TLS.
trait PeerStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> PeerStream for S {}
type BoxedStream = Box<dyn PeerStream>;

impl Default for Transport {
    fn default() -> Self {
        Transport::new()
    }
}

impl Transport {
    /// A transport with no identity yet, reading `SHOAL_PEER_ADDRS`.
    pub fn new() -> Transport {
        let overrides = std::env::var("SHOAL_PEER_ADDRS").map(|v| parse_overrides(&v)).unwrap_or_default();
        Transport {
            inner: Arc::new(Inner {
                node_id: RwLock::new(None),
                cluster_id: RwLock::new(None),
                groups: RwLock::new(HashMap::new()),
                service: RwLock::new(None),
                peers: Mutex::new(HashMap::new()),
                overrides,
                next_id: AtomicU64::new(1),
                stop: watch::channel(false).0,
                tls: RwLock::new(None),
                incoming_snapshots: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Sets who this node is once its identity is known (at start, or after a join).
    pub fn set_identity(&self, node_id: NodeId, cluster_id: &str) {
        *self.inner.node_id.write().unwrap_or_else(|p| p.into_inner()) = Some(node_id);
        *self.inner.cluster_id.write().unwrap_or_else(|p| p.into_inner()) = Some(cluster_id.to_string());
        // Connections opened before (as a joiner) said "no cluster": redial.
        self.inner.peers.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Makes every connection TLS, both ways (set before serving).
    pub fn set_tls(&self, tls: crate::tls::NodeTls) {
        *self.inner.tls.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(tls));
    }

    fn tls(&self) -> Option<Arc<crate::tls::NodeTls>> {
        self.inner.tls.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// This node's id, once known.
    pub fn node_id(&self) -> Option<NodeId> {
        *self.inner.node_id.read().unwrap_or_else(|p| p.into_inner())
    }

    fn cluster_id(&self) -> Option<String> {
        self.inner.cluster_id.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Makes a group reachable by peers.
    pub fn register_group(&self, group: GroupId, raft: Raft) {
        self.inner.groups.write().unwrap_or_else(|p| p.into_inner()).insert(group, raft);
    }

    /// Installs the handler for service requests.
    pub fn set_service(&self, service: Arc<dyn Service>) {
        *self.inner.service.write().unwrap_or_else(|p| p.into_inner()) = Some(service);
    }

    /// The address to dial for `node` recorded at `addr`.
    pub fn dial_addr(&self, node: NodeId, addr: &str) -> String {
        self.inner.overrides.get(&node).cloned().unwrap_or_else(|| addr.to_string())
    }

    /// Accepts peer connections until [`Transport::shutdown`].
    pub fn serve(&self, listener: TcpListener) {
        let transport = self.clone();
        let mut stop = self.inner.stop.subscribe();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => {
                            let _ = stream.set_nodelay(true);
                            let transport = transport.clone();
                            tokio::spawn(async move { transport.serve_connection(stream).await });
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "accepting a peer connection failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    },
                    _ = async { stop.wait_for(|s| *s).await.is_ok() } => return,
                }
            }
        });
    }

    /// Stops accepting and drops the connections to peers.
    pub fn shutdown(&self) {
        let _ = self.inner.stop.send(true);
        self.inner.peers.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    async fn serve_connection(self, stream: TcpStream) {
        let mut stream: BoxedStream = match self.tls() {
            None => Box::new(stream),
            Some(tls) => match tokio::time::timeout(HELLO_TIMEOUT, tls.acceptor.accept(stream)).await {
                Ok(Ok(stream)) => Box::new(stream),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "refused a peer connection: TLS handshake failed");
                    return;
                }
                Err(_) => return,
            },
        };
        let hello = match tokio::time::timeout(HELLO_TIMEOUT, read_frame(&mut stream)).await {
            Ok(Ok(bytes)) => bytes,
            _ => return,
        };
        let (verdict, joining, from) = match decode::<Hello>(&hello) {
            Err(_) => (Err("not a Shoal peer (bad hello)".to_string()), true, None),
            Ok(h) if h.magic != MAGIC => (Err("not a Shoal peer (bad magic)".to_string()), true, None),
            Ok(h) if h.version != PROTOCOL_VERSION => {
                (Err(format!("peer speaks protocol version {}, this node {PROTOCOL_VERSION}", h.version)), true, None)
            }
            Ok(h) => match (&h.cluster_id, self.cluster_id()) {
                (Some(theirs), Some(ours)) if *theirs != ours => {
                    (Err(format!("peer belongs to cluster {theirs}, this node to cluster {ours}")), true, None)
                }
                (Some(_), None) => (Err("this node has not joined a cluster yet".to_string()), true, None),
                (theirs, _) => (Ok(()), theirs.is_none(), h.from),
            },
        };
        let reply = match &verdict {
            Ok(()) => HelloReply::Welcome,
            Err(reason) => HelloReply::Refused { reason: reason.clone() },
        };
        let Ok(reply) = encode(&reply) else { return };
        if write_frame(&mut stream, &reply).await.is_err() || verdict.is_err() {
            if let Err(reason) = verdict {
                tracing::warn!(%reason, "refused a peer connection");
            }
            return;
        }
        let (reader, writer) = tokio::io::split(stream);
        // Buffered: one read takes in every frame that has arrived.
        let mut reader = tokio::io::BufReader::with_capacity(READ_BUFFER_BYTES, reader);
        let (tx, rx) = mpsc::channel::<Vec<u8>>(SEND_QUEUE);
        tokio::spawn(write_loop(writer, rx));
        // Served connections end with the transport too, so peers redial
        // whatever replaces this node (a restart in the same process).
        let mut stop = self.inner.stop.subscribe();
        // This connection's append streams: their requests go to Raft in
        // the order they arrived, so they are routed here, not per task.
        let mut streams = AppendStreams::new();
        loop {
            let frame = tokio::select! {
                frame = read_frame(&mut reader) => frame,
                _ = async { stop.wait_for(|s| *s).await.is_ok() } => return,
            };
            let Ok(frame) = frame else { return };
            let Ok(Envelope::Request { id, body }) = decode::<Envelope>(&frame) else {
                tracing::warn!("closing a peer connection that sent an undecodable request");
                return;
            };
            if let Request::StreamAppend { group, stream, rpc } = body {
                self.route_stream_append(&mut streams, &tx, joining, id, group, stream, rpc).await;
                continue;
            }
            let transport = self.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let body = transport.dispatch(body, joining, from).await;
                if let Ok(bytes) = encode(&Envelope::Response { id, body }) {
                    let _ = tx.send(bytes).await;
                }
            });
        }
    }

    /// Passes request `id` of append stream `stream` to the task feeding
    /// that stream into Raft, starting the task on the stream's first
    /// request (or after an earlier one ended).
    #[allow(clippy::too_many_arguments)]
    async fn route_stream_append(
        &self,
        streams: &mut AppendStreams,
        out: &mpsc::Sender<Vec<u8>>,
        joining: bool,
        id: u64,
        group: GroupId,
        stream: u64,
        rpc: AppendEntriesRequest<TypeConfig>,
    ) {
        let answer = |body: Response| {
            let out = out.clone();
            async move {
                if let Ok(bytes) = encode(&Envelope::Response { id, body }) {
                    let _ = out.send(bytes).await;
                }
            }
        };
        if joining {
            return answer(Response::Undeliverable("Raft messages need a cluster id".into())).await;
        }
        let key = (group, stream);
        if !streams.contains_key(&key) {
            // A stream's first request (rare: a new leader, or openraft
            // starting over after a failure), so the lookups happen here and
            // not per request.
            let Some(raft) = self.group_raft(group) else {
                return answer(Response::Undeliverable(format!("group {group} is not open on this node"))).await;
            };
            // Streams end with the leader's; forget the ones whose task is gone.
            streams.retain(|_, feed| !feed.is_closed());
            let (feed, requests) = mpsc::channel(2 * PIPELINE_WINDOW);
            tokio::spawn(serve_append_stream(raft, requests, out.clone()));
            streams.insert(key, feed);
        }
        let sent = match streams.get(&key) {
            Some(feed) => feed.send((id, rpc)).await.is_ok(),
            None => false,
        };
        if !sent {
            streams.remove(&key);
            answer(Response::Undeliverable("the append stream has ended".into())).await;
        }
    }

    fn group_raft(&self, group: GroupId) -> Option<Raft> {
        self.inner.groups.read().unwrap_or_else(|p| p.into_inner()).get(&group).cloned()
    }

    async fn dispatch(&self, request: Request, joining: bool, from: Option<NodeId>) -> Response {
        if joining && !matches!(request, Request::Service(_)) {
            return Response::Undeliverable("Raft messages need a cluster id".into());
        }
        let not_open = |group: GroupId| Response::Undeliverable(format!("group {group} is not open on this node"));
        match request {
            Request::AppendEntries { group, rpc } => match self.group_raft(group) {
                Some(raft) => Response::AppendEntries(raft.append_entries(rpc).await.map_err(|e| e.to_string())),
                None => not_open(group),
            },
            Request::StreamAppend { group, .. } => {
                Response::Undeliverable(format!("group {group}: a stream request outside its connection's stream"))
            }
            Request::Vote { group, rpc } => match self.group_raft(group) {
                Some(raft) => Response::Vote(raft.vote(rpc).await.map_err(|e| e.to_string())),
                None => not_open(group),
            },
            Request::PreVote { group, rpc } => match self.group_raft(group) {
                Some(raft) => Response::Vote(raft.pre_vote(rpc).await.map_err(|e| e.to_string())),
                None => not_open(group),
            },
            Request::SnapshotChunk(chunk) => match self.group_raft(chunk.group) {
                Some(raft) => Response::SnapshotChunk(self.receive_snapshot_chunk(&raft, chunk).await),
                None => not_open(chunk.group),
            },
            Request::Service(payload) => {
                let service = self.inner.service.read().unwrap_or_else(|p| p.into_inner()).clone();
                match service {
                    Some(service) => Response::Service(service.handle(from, payload).await),
                    None => Response::Undeliverable("this node is still starting".into()),
                }
            }
        }
    }

    /// Adds a chunk to the group's incoming snapshot; the last one installs
    /// it once its checksum and log position check out.
    async fn receive_snapshot_chunk(
        &self,
        raft: &Raft,
        chunk: SnapshotChunk,
    ) -> std::result::Result<Option<SnapshotResponse<TypeConfig>>, String> {
        let complete = {
            let mut incoming = self.inner.incoming_snapshots.lock().unwrap_or_else(|p| p.into_inner());
            if chunk.offset == 0 {
                incoming.remove(&chunk.group);
            }
            let received = incoming.entry(chunk.group).or_insert_with(|| IncomingSnapshot {
                vote: chunk.vote,
                meta: chunk.meta.clone(),
                crc32: chunk.crc32,
                bytes: Vec::new(),
            });
            if received.vote != chunk.vote || received.meta != chunk.meta || received.bytes.len() as u64 != chunk.offset
            {
                incoming.remove(&chunk.group);
                return Err(format!(
                    "group {}: snapshot chunk at offset {} does not continue the transfer in progress; restart it",
                    chunk.group, chunk.offset
                ));
            }
            received.bytes.extend_from_slice(&chunk.data);
            if !chunk.done {
                return Ok(None);
            }
            incoming.remove(&chunk.group)
        };
        let Some(received) = complete else { return Err("snapshot transfer vanished".into()) };
        let data = SnapshotData { bytes: received.bytes, crc32: received.crc32 };
        data.verify().map_err(|e| format!("group {}: {e}", chunk.group))?;
        check_snapshot_position(raft, &received.vote, &received.meta)
            .map_err(|e| format!("group {}: {e}", chunk.group))?;
        let snapshot = Snapshot { meta: received.meta, snapshot: data };
        raft.install_full_snapshot(received.vote, snapshot).await.map(Some).map_err(|e| e.to_string())
    }

    fn peer(&self, addr: &str) -> Arc<Peer> {
        let mut peers = self.inner.peers.lock().unwrap_or_else(|p| p.into_inner());
        peers.entry(addr.to_string()).or_insert_with(|| Arc::new(Peer::new(addr.to_string()))).clone()
    }

    fn next_id(&self) -> u64 {
        self.inner.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The live connection to `addr`, dialing it if needed.
    async fn link(&self, addr: &str) -> Result<Arc<Link>> {
        let hello =
            Hello { magic: MAGIC, version: PROTOCOL_VERSION, cluster_id: self.cluster_id(), from: self.node_id() };
        self.peer(addr).link(&hello, self.tls()).await
    }

    async fn call(&self, addr: &str, request: Request, timeout: Duration) -> Result<Response> {
        let id = self.next_id();
        let frame = encode(&Envelope::Request { id, body: request })?;
        let attempt = async {
            let link = self.link(addr).await?;
            link.send(id, frame, addr).await?.answer(addr).await
        };
        tokio::time::timeout(timeout, attempt)
            .await
            .map_err(|_| in_doubt(format!("{addr} did not answer within {timeout:?}")))?
    }

    /// Sends a service request to the node at `addr` and returns its answer.
    pub async fn call_service(&self, addr: &str, request: Vec<u8>, timeout: Duration) -> Result<Vec<u8>> {
        match self.call(addr, Request::Service(request), timeout).await? {
            Response::Service(result) => result,
            Response::Undeliverable(reason) => Err(peer_error(format!("{addr}: {reason}"))),
            other => Err(peer_error(format!("{addr} answered a service request with {}", variant(&other)))),
        }
    }
}

fn variant(response: &Response) -> &'static str {
    match response {
        Response::AppendEntries(_) => "an append-entries response",
        Response::StreamAppend(_) => "an append-stream response",
        Response::Vote(_) => "a vote response",
        Response::SnapshotChunk(_) => "a snapshot response",
        Response::Service(_) => "a service response",
        Response::Undeliverable(_) => "an undeliverable notice",
    }
}

/// A request sent on a link whose answer is awaited; dropping it (timeout,
/// a caller that gave up) forgets the request.
struct Awaited {
    link: Arc<Link>,
    id: u64,
    answer: oneshot::Receiver<Response>,
}

impl Awaited {
    async fn answer(mut self, addr: &str) -> Result<Response> {
        (&mut self.answer).await.map_err(|_| in_doubt(format!("connection to {addr} lost before it answered")))
    }
}

impl Drop for Awaited {
    fn drop(&mut self) {
        self.link.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.id);
    }
}

fn parse_overrides(spec: &str) -> HashMap<NodeId, String> {
    spec.split(',')
        .filter_map(|pair| {
            let (id, addr) = pair.trim().split_once('=')?;
            Some((id.trim().parse().ok()?, addr.trim().to_string()))
        })
        .collect()
}

async fn write_loop<W: AsyncWrite + Unpin>(writer: W, mut rx: mpsc::Receiver<Vec<u8>>) {
    let mut writer = BufWriter::new(writer);
    while let Some(frame) = rx.recv().await {
        if write_frame(&mut writer, &frame).await.is_err() {
            return;
        }
        // Coalesce whatever else is queued into the same flush.
        while let Ok(frame) = rx.try_recv() {
            if write_frame(&mut writer, &frame).await.is_err() {
                return;
            }
        }
        if writer.flush().await.is_err() {
            return;
        }
    }
}

/// A dialed connection to one address, re-established after failures.
struct Peer {
    addr: String,
    link: tokio::sync::Mutex<Option<Arc<Link>>>,
}

/// One live connection: a queue to its writer task and the requests
/// awaiting answers from its reader task.
struct Link {
    outgoing: mpsc::Sender<Vec<u8>>,
    pending: Arc<Mutex<HashMap<u64, oneshot::Sender<Response>>>>,
    alive: Arc<AtomicBool>,
}

impl Link {
    /// Queues request `id` (already framed) and returns its awaited answer.
    async fn send(self: &Arc<Self>, id: u64, frame: Vec<u8>, addr: &str) -> Result<Awaited> {
        let (tx, answer) = oneshot::channel();
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).insert(id, tx);
        let awaited = Awaited { link: self.clone(), id, answer };
        if self.outgoing.send(frame).await.is_err() {
            return Err(peer_error(format!("connection to {addr} closed")));
        }
        Ok(awaited)
    }
}

impl Peer {
    fn new(addr: String) -> Peer {
        Peer { addr, link: tokio::sync::Mutex::new(None) }
    }

    async fn link(&self, hello: &Hello, tls: Option<Arc<crate::tls::NodeTls>>) -> Result<Arc<Link>> {
        let mut slot = self.link.lock().await;
        if let Some(link) = slot.as_ref() {
            if link.alive.load(Ordering::Acquire) {
                return Ok(link.clone());
            }
        }
        *slot = None;
        let link = Arc::new(self.connect(hello, tls).await?);
        *slot = Some(link.clone());
        Ok(link)
    }

    async fn connect(&self, hello: &Hello, tls: Option<Arc<crate::tls::NodeTls>>) -> Result<Link> {
        let addr = &self.addr;
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| peer_error(format!("connecting to {addr} timed out")))?
            .map_err(|e| peer_error(format!("cannot connect to {addr}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let mut stream: BoxedStream = match tls {
            None => Box::new(tcp),
            Some(tls) => {
                let name = crate::tls::server_name(addr)?;
                let handshake = tokio::time::timeout(HELLO_TIMEOUT, tls.connector.connect(name, tcp)).await;
                match handshake {
                    Ok(Ok(stream)) => Box::new(stream),
                    Ok(Err(e)) => return Err(peer_error(format!("TLS handshake with {addr} failed: {e}"))),
                    Err(_) => return Err(peer_error(format!("TLS handshake with {addr} timed out"))),
                }
            }
        };
        let greeting = async {
            write_frame(&mut stream, &encode(hello)?).await?;
            let reply = read_frame(&mut stream).await?;
            decode::<HelloReply>(&reply)
        };
        match tokio::time::timeout(HELLO_TIMEOUT, greeting).await {
            Err(_) => return Err(peer_error(format!("{addr} did not answer the hello"))),
            Ok(Err(e)) => return Err(peer_error(format!("hello to {addr} failed: {}", e.message))),
            Ok(Ok(HelloReply::Refused { reason })) => {
                return Err(Error::environment(SqlState::CONNECTION_REJECTED, format!("{addr} refused us: {reason}")))
            }
            Ok(Ok(HelloReply::Welcome)) => {}
        }
        let (reader, writer) = tokio::io::split(stream);
        // Buffered: one read takes in every frame that has arrived.
        let mut reader = tokio::io::BufReader::with_capacity(READ_BUFFER_BYTES, reader);
        let (outgoing, rx) = mpsc::channel(SEND_QUEUE);
        let pending: Arc<Mutex<HashMap<u64, oneshot::Sender<Response>>>> = Arc::default();
        let alive = Arc::new(AtomicBool::new(true));
        tokio::spawn(write_loop(writer, rx));
        {
            let pending = pending.clone();
            let alive = alive.clone();
            let addr = addr.clone();
            tokio::spawn(async move {
                loop {
                    let envelope = match read_frame(&mut reader).await {
                        Ok(frame) => decode::<Envelope>(&frame),
                        Err(e) => Err(peer_error(e.to_string())),
                    };
                    match envelope {
                        Ok(Envelope::Response { id, body }) => {
                            if let Some(tx) = pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&id) {
                                let _ = tx.send(body);
                            }
                        }
                        Ok(Envelope::Request { .. }) | Err(_) => {
                            tracing::debug!(peer = %addr, "peer connection closed");
                            break;
                        }
                    }
                }
                alive.store(false, Ordering::Release);
                // Dropping the senders fails every waiting call at once.
                pending.lock().unwrap_or_else(|p| p.into_inner()).clear();
            });
        }
        Ok(Link { outgoing, pending, alive })
    }
}

/// The client half openraft uses to reach one peer for one group.
pub struct PeerClient {
    transport: Transport,
    group: GroupId,
    target: NodeId,
    addr: String,
    /// Heartbeats are single requests; only replication streams pipeline.
    heartbeat: bool,
}

/// The factory openraft asks for peer clients; one per group.
#[derive(Clone, Debug)]
pub struct GroupNetwork {
    pub transport: Transport,
    pub group: GroupId,
}

impl GroupNetwork {
    fn client(&self, target: NodeId, node: &BasicNode, heartbeat: bool) -> PeerClient {
        PeerClient {
            transport: self.transport.clone(),
            group: self.group,
            target,
            addr: self.transport.dial_addr(target, &node.addr),
            heartbeat,
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for GroupNetwork {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        self.client(target, node, false)
    }

    async fn new_heartbeat_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        self.client(target, node, true)
    }
}

/// Shoal's transport error as openraft's: not delivered (openraft backs
/// off briefly, see `backoff`), or sent with no answer.
fn rpc_error(e: Error) -> RPCError<TypeConfig> {
    if e.code == SqlState::CONNECTION_REJECTED || e.code == SqlState::CONNECTION_FAILURE {
        RPCError::Unreachable(Unreachable::from_string(e.message))
    } else {
        RPCError::Network(NetworkError::from_string(e.message))
    }
}

/// The peer answered with a response of another kind.
fn unexpected_answer(target: NodeId, response: &Response) -> RPCError<TypeConfig> {
    remote_failure(target, format!("answered with {}", variant(response)))
}

/// The peer could not handle the request (it answered with a Raft error).
fn remote_failure(target: NodeId, e: String) -> RPCError<TypeConfig> {
    RPCError::Network(NetworkError::from_string(format!("node {target}: {e}")))
}

impl PeerClient {
    async fn send(&self, request: Request, timeout: Duration) -> std::result::Result<Response, RPCError<TypeConfig>> {
        match self.transport.call(&self.addr, request, timeout).await {
            Ok(Response::Undeliverable(reason)) => Err(RPCError::Unreachable(Unreachable::from_string(reason))),
            Ok(response) => Ok(response),
            Err(e) => Err(rpc_error(e)),
        }
    }

    fn unexpected(&self, response: &Response) -> RPCError<TypeConfig> {
        unexpected_answer(self.target, response)
    }

    /// The pipelined replication stream: requests go out as openraft
    /// produces them, up to [`PIPELINE_WINDOW`] unanswered, and answers
    /// come back in order (one connection, one task per stream on the
    /// follower). The stream ends at the first failure or refusal, as
    /// openraft expects.
    async fn open_stream<S>(
        &mut self,
        mut input: S,
        option: RPCOption,
    ) -> std::result::Result<AppendAnswers, RPCError<TypeConfig>>
    where
        S: Stream<Item = AppendEntriesRequest<TypeConfig>> + Send + Unpin + 'static,
    {
        // The first request before the connection: openraft waits out its
        // backoff while producing a request, so taking one first is what
        // makes a peer that cannot be reached be retried at the backoff's
        // pace rather than in a tight loop of failed dials.
        let Some(first) = input.next().await else { return Ok(Box::pin(futures::stream::empty())) };
        let link = self.transport.link(&self.addr).await.map_err(rpc_error)?;
        let (sent, sent_rx) = mpsc::channel(PIPELINE_WINDOW);
        let sender = StreamSender {
            transport: self.transport.clone(),
            link,
            group: self.group,
            stream: self.transport.next_id(),
            addr: self.addr.clone(),
        };
        tokio::spawn(sender.run(first, input, sent));
        let (ttl, addr, target) = (option.hard_ttl(), self.addr.clone(), self.target);
        let answers = futures::stream::unfold(Some(sent_rx), move |state| {
            let addr = addr.clone();
            async move {
                let mut sent_rx: mpsc::Receiver<Result<(Awaited, tokio::time::Instant)>> = state?;
                let result = match sent_rx.recv().await? {
                    Err(e) => Err(rpc_error(e)),
                    Ok((awaited, sent_at)) => match tokio::time::timeout_at(sent_at + ttl, awaited.answer(&addr)).await
                    {
                        Err(_) => Err(RPCError::Network(NetworkError::from_string(format!(
                            "{addr} did not answer an append within {ttl:?}"
                        )))),
                        Ok(Err(e)) => Err(rpc_error(e)),
                        Ok(Ok(Response::StreamAppend(Ok(result)))) => Ok(result),
                        Ok(Ok(Response::StreamAppend(Err(e)))) => Err(remote_failure(target, e)),
                        Ok(Ok(Response::Undeliverable(reason))) => {
                            Err(RPCError::Unreachable(Unreachable::from_string(reason)))
                        }
                        Ok(Ok(other)) => Err(unexpected_answer(target, &other)),
                    },
                };
                let go_on = matches!(result, Ok(Ok(_)));
                Some((result, go_on.then_some(sent_rx)))
            }
        });
        Ok(Box::pin(answers))
    }
}

/// The answers of an append stream, in request order.
type AppendAnswers = BoxStream<'static, std::result::Result<StreamAppendResult<TypeConfig>, RPCError<TypeConfig>>>;

/// Sends one append stream's requests, keeping at most [`PIPELINE_WINDOW`]
/// of them unanswered (the capacity of the channel to the answer stream).
struct StreamSender {
    transport: Transport,
    link: Arc<Link>,
    group: GroupId,
    stream: u64,
    addr: String,
}

impl StreamSender {
    async fn run<S>(
        self,
        first: AppendEntriesRequest<TypeConfig>,
        mut input: S,
        sent: mpsc::Sender<Result<(Awaited, tokio::time::Instant)>>,
    ) where
        S: Stream<Item = AppendEntriesRequest<TypeConfig>> + Send + Unpin + 'static,
    {
        let mut first = Some(first);
        loop {
            let Ok(permit) = sent.reserve().await else { return };
            // Ends when openraft ends the stream, or drops the answers.
            let rpc = match first.take() {
                Some(rpc) => rpc,
                None => tokio::select! {
                    rpc = input.next() => match rpc {
                        Some(rpc) => rpc,
                        None => return,
                    },
                    () = sent.closed() => return,
                },
            };
            let id = self.transport.next_id();
            let request = Request::StreamAppend { group: self.group, stream: self.stream, rpc };
            let sending = match encode(&Envelope::Request { id, body: request }) {
                Ok(frame) => self.link.send(id, frame, &self.addr).await,
                Err(e) => Err(e),
            };
            let failed = sending.is_err();
            permit.send(sending.map(|awaited| (awaited, tokio::time::Instant::now())));
            if failed {
                return;
            }
        }
    }
}

impl RaftNetworkV2<TypeConfig> for PeerClient {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> std::result::Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.send(Request::AppendEntries { group: self.group, rpc }, option.hard_ttl()).await? {
            Response::AppendEntries(Ok(r)) => Ok(r),
            Response::AppendEntries(Err(e)) => Err(remote_failure(self.target, e)),
            other => Err(self.unexpected(&other)),
        }
    }

    fn stream_append<'s, S>(
        &'s mut self,
        input: S,
        option: RPCOption,
    ) -> RaftBoxFuture<
        's,
        std::result::Result<
            BoxStream<'s, std::result::Result<StreamAppendResult<TypeConfig>, RPCError<TypeConfig>>>,
            RPCError<TypeConfig>,
        >,
    >
    where
        S: Stream<Item = AppendEntriesRequest<TypeConfig>> + Send + Unpin + 'static,
    {
        if self.heartbeat {
            return openraft::network::stream_append_sequential(self, input, option);
        }
        Box::pin(async move {
            let answers: BoxStream<'s, _> = self.open_stream(input, option).await?;
            Ok(answers)
        })
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> std::result::Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.send(Request::Vote { group: self.group, rpc }, option.hard_ttl()).await? {
            Response::Vote(Ok(r)) => Ok(r),
            Response::Vote(Err(e)) => Err(remote_failure(self.target, e)),
            other => Err(self.unexpected(&other)),
        }
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> std::result::Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.send(Request::PreVote { group: self.group, rpc }, option.hard_ttl()).await? {
            Response::Vote(Ok(r)) => Ok(r),
            Response::Vote(Err(e)) => Err(remote_failure(self.target, e)),
            other => Err(self.unexpected(&other)),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<TypeConfig>,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> std::result::Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let cancel = std::pin::pin!(cancel);
        let mut cancel = cancel;
        let bytes = &snapshot.snapshot.bytes;
        let mut offset = 0;
        loop {
            let end = bytes.len().min(offset + SNAPSHOT_CHUNK_BYTES);
            let done = end == bytes.len();
            let chunk = SnapshotChunk {
                group: self.group,
                vote,
                meta: snapshot.meta.clone(),
                crc32: snapshot.snapshot.crc32,
                offset: offset as u64,
                data: bytes[offset..end].to_vec(),
                done,
            };
            let timeout = if done { SNAPSHOT_INSTALL_TIMEOUT } else { option.hard_ttl().max(Duration::from_secs(1)) };
            let response = tokio::select! {
                response = self.send(Request::SnapshotChunk(chunk), timeout) => response?,
                closed = &mut cancel => return Err(StreamingError::Closed(closed)),
            };
            match response {
                Response::SnapshotChunk(Ok(Some(installed))) if done => return Ok(installed),
                Response::SnapshotChunk(Ok(None)) if !done => {}
                Response::SnapshotChunk(Ok(_)) => {
                    return Err(remote_failure(self.target, "acknowledged a snapshot chunk out of turn".into()).into())
                }
                Response::SnapshotChunk(Err(e)) => return Err(remote_failure(self.target, e).into()),
                other => return Err(self.unexpected(&other).into()),
            }
            offset = end;
        }
    }

    fn backoff(&self) -> Option<Backoff> {
        // Retry an unreachable peer soon: a restarted node should rejoin
        // replication well within the one-second failover budget.
        Some(Backoff::new(std::iter::repeat(Duration::from_millis(100))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo;

    impl Service for Echo {
        fn handle(&self, from: Option<NodeId>, request: Vec<u8>) -> BoxFuture<Result<Vec<u8>>> {
            Box::pin(async move {
                if request == b"fail" {
                    return Err(Error::new(SqlState::INVALID_PARAMETER_VALUE, "asked to fail"));
                }
                let mut out = format!("{from:?}:").into_bytes();
                out.extend(request);
                Ok(out)
            })
        }
    }

    async fn listening(transport: &Transport) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        transport.serve(listener);
        addr
    }

    #[tokio::test]
    async fn service_calls_round_trip_and_errors_keep_their_sqlstate() {
        let server = Transport::new();
        server.set_identity(1, "c1");
        server.set_service(Arc::new(Echo));
        let addr = listening(&server).await;
        let client = Transport::new();
        client.set_identity(2, "c1");
        let out = client.call_service(&addr, b"hi".to_vec(), Duration::from_secs(5)).await.unwrap();
        assert_eq!(out, b"Some(2):hi");
        let err = client.call_service(&addr, b"fail".to_vec(), Duration::from_secs(5)).await.unwrap_err();
        assert_eq!(err.code, SqlState::INVALID_PARAMETER_VALUE);
        // Many calls in flight on one connection.
        let calls = (0..50).map(|i| {
            let client = client.clone();
            let addr = addr.clone();
            async move { client.call_service(&addr, vec![i], Duration::from_secs(5)).await.unwrap() }
        });
        let answers = futures_join_all(calls).await;
        for (i, answer) in answers.into_iter().enumerate() {
            assert_eq!(answer.last(), Some(&(i as u8)));
        }
        assert_eq!(client.inner.peers.lock().unwrap().len(), 1, "one connection per peer");
        server.shutdown();
    }

    /// Writes a CA and one certificate per name signed by it (for 127.0.0.1);
    /// returns the files of each node.
    fn cluster_pki(dir: &std::path::Path, tag: &str, nodes: usize) -> Vec<crate::tls::NodeTlsFiles> {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let ca_path = dir.join(format!("{tag}-ca.pem"));
        std::fs::write(&ca_path, ca.pem()).unwrap();
        (0..nodes)
            .map(|i| {
                let key = rcgen::KeyPair::generate().unwrap();
                let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
                    .unwrap()
                    .signed_by(&key, &ca, &ca_key)
                    .unwrap();
                let files = crate::tls::NodeTlsFiles {
                    cert: dir.join(format!("{tag}-{i}.pem")),
                    key: dir.join(format!("{tag}-{i}.key")),
                    ca: ca_path.clone(),
                };
                std::fs::write(&files.cert, cert.pem()).unwrap();
                std::fs::write(&files.key, key.serialize_pem()).unwrap();
                files
            })
            .collect()
    }

    #[tokio::test]
    async fn tls_peers_with_the_cluster_ca_talk_and_others_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ours = cluster_pki(dir.path(), "ours", 2);
        let theirs = cluster_pki(dir.path(), "theirs", 1);
        let server = Transport::new();
        server.set_identity(1, "c1");
        server.set_service(Arc::new(Echo));
        server.set_tls(crate::tls::NodeTls::load(&ours[0]).unwrap());
        let addr = listening(&server).await;

        let client = Transport::new();
        client.set_identity(2, "c1");
        client.set_tls(crate::tls::NodeTls::load(&ours[1]).unwrap());
        let out = client.call_service(&addr, b"secret".to_vec(), Duration::from_secs(5)).await.unwrap();
        assert_eq!(out, b"Some(2):secret");

        // No TLS: the listener's TLS handshake fails on our plain hello.
        let plain = Transport::new();
        plain.set_identity(3, "c1");
        assert!(plain.call_service(&addr, b"x".to_vec(), Duration::from_secs(5)).await.is_err());

        // TLS with another CA's certificate: refused in the handshake.
        let stranger = Transport::new();
        stranger.set_identity(4, "c1");
        stranger.set_tls(crate::tls::NodeTls::load(&theirs[0]).unwrap());
        let err = stranger.call_service(&addr, b"x".to_vec(), Duration::from_secs(5)).await.unwrap_err();
        assert_eq!(err.code, SqlState::CONNECTION_FAILURE, "{err}");

        // Unusable files are a clear error, not a panic.
        let mut broken = ours[0].clone();
        broken.key = dir.path().join("missing.key");
        let err = crate::tls::NodeTls::load(&broken).err().expect("missing key file");
        assert!(err.message.contains("missing.key"), "{}", err.message);
        server.shutdown();
    }

    #[tokio::test]
    async fn another_cluster_is_refused_and_a_joiner_may_only_use_the_service() {
        let server = Transport::new();
        server.set_identity(1, "c1");
        server.set_service(Arc::new(Echo));
        let addr = listening(&server).await;
        let stranger = Transport::new();
        stranger.set_identity(7, "other");
        let err = stranger.call_service(&addr, b"hi".to_vec(), Duration::from_secs(5)).await.unwrap_err();
        assert_eq!(err.code, SqlState::CONNECTION_REJECTED);
        assert!(err.message.contains("cluster other"), "{}", err.message);

        let joiner = Transport::new();
        let out = joiner.call_service(&addr, b"join".to_vec(), Duration::from_secs(5)).await.unwrap();
        assert_eq!(out, b"None:join");
        let raft_message = joiner
            .call(
                &addr,
                Request::Vote { group: 1, rpc: VoteRequest::new(openraft::Vote::new(1, 7), None) },
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        assert!(matches!(raft_message, Response::Undeliverable(_)), "{raft_message:?}");
        server.shutdown();
    }

    #[tokio::test]
    async fn garbage_and_oversized_frames_close_the_connection_without_harm() {
        let server = Transport::new();
        server.set_identity(1, "c1");
        server.set_service(Arc::new(Echo));
        let addr = listening(&server).await;
        // Garbage instead of a hello.
        let mut raw = TcpStream::connect(&addr).await.unwrap();
        raw.write_all(&[0, 0, 0, 5, 1, 2, 3, 4, 5]).await.unwrap();
        let reply = read_frame(&mut raw).await.unwrap();
        assert!(matches!(decode::<HelloReply>(&reply).unwrap(), HelloReply::Refused { .. }));
        // A length beyond the limit.
        let mut raw = TcpStream::connect(&addr).await.unwrap();
        raw.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
        let mut buf = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(5), raw.read(&mut buf)).await.unwrap().unwrap_or(0);
        assert_eq!(n, 0, "the server hangs up");
        // The server still serves others.
        let client = Transport::new();
        client.set_identity(2, "c1");
        assert!(client.call_service(&addr, b"ok".to_vec(), Duration::from_secs(5)).await.is_ok());
        server.shutdown();
    }

    #[tokio::test]
    async fn a_dead_peer_is_an_error_and_the_link_is_redialed_when_it_returns() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);
        let client = Transport::new();
        client.set_identity(2, "c1");
        let err = client.call_service(&addr, b"x".to_vec(), Duration::from_secs(5)).await.unwrap_err();
        assert_eq!(err.code, SqlState::CONNECTION_FAILURE);
        let server = Transport::new();
        server.set_identity(1, "c1");
        server.set_service(Arc::new(Echo));
        server.serve(TcpListener::bind(&addr).await.unwrap());
        assert!(client.call_service(&addr, b"x".to_vec(), Duration::from_secs(5)).await.is_ok());
        server.shutdown();
    }

    /// openraft waits out its backoff while it produces a stream's next
    /// request; the stream must take its first request before dialing, or
    /// an unreachable follower is redialed in a tight loop.
    #[tokio::test]
    async fn an_append_stream_takes_its_first_request_before_dialing() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);
        let transport = Transport::new();
        transport.set_identity(1, "c1");
        let mut network = GroupNetwork { transport, group: 1 };
        let mut client = network.new_client(2, &BasicNode { addr }).await;
        let taken = Arc::new(AtomicBool::new(false));
        let request = AppendEntriesRequest::<TypeConfig> {
            vote: openraft::Vote::new_committed(1, 1),
            prev_log_id: None,
            leader_commit: None,
            entries: Vec::new(),
        };
        let input = {
            let taken = taken.clone();
            futures::stream::iter([request]).inspect(move |_| taken.store(true, Ordering::SeqCst))
        };
        let opened = RaftNetworkV2::stream_append(&mut client, input, RPCOption::new(Duration::from_secs(1))).await;
        assert!(matches!(opened, Err(RPCError::Unreachable(_))), "a closed port is unreachable");
        drop(opened);
        assert!(taken.load(Ordering::SeqCst), "the first request was taken before dialing");
        // A stream with nothing to send dials nobody and ends at once.
        let empty = futures::stream::iter(Vec::<AppendEntriesRequest<TypeConfig>>::new());
        let answers = RaftNetworkV2::stream_append(&mut client, empty, RPCOption::new(Duration::from_secs(1)))
            .await
            .expect("no dial, no error");
        assert_eq!(answers.count().await, 0);
    }

    #[test]
    fn peer_address_overrides_parse() {
        let map = parse_overrides("2=127.0.0.1:7001, 3=127.0.0.1:7002,bad,x=1");
        assert_eq!(map.len(), 2);
        assert_eq!(map[&3], "127.0.0.1:7002");
    }

    async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let handles: Vec<_> = futures.map(tokio::spawn).collect();
        let mut out = Vec::new();
        for handle in handles {
            out.push(handle.await.unwrap());
        }
        out
    }
}
