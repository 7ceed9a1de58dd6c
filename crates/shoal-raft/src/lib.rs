//! # shoal-raft — replication of Shoal's groups with openraft
//!
//! Every shard is a Raft group; so is the meta group. This crate glues
//! openraft to Shoal's storage:
//!
//! * [`types`] — the openraft type configuration: entries carry a
//!   [`shoal_storage::Command`] (recorded transactions with their execution
//!   contexts).
//! * [`log_store`] — the durable, checksummed, segmented log with group
//!   commit (many appends, one fsync).
//! * [`state_machine`] — the state machine over a SQLite replica: apply
//!   commits the leader's open transaction or replays the entry, with the
//!   applied index in the same SQLite transaction.
//! * [`group`] — one group on this node: the write slot (one writer per
//!   shard), autocommit batching, interactive write transactions, and
//!   linearizable reads via read-index.
//! * [`transport`] — the node-to-node network: one connection per peer
//!   carries every group's Raft messages and the server's own requests;
//!   [`tls`] optionally encrypts and mutually authenticates it.
//!
//! Out of scope: SQL (the executor hands in SQLite SQL) and routing between
//! groups.

pub mod group;
pub mod log_store;
pub mod state_machine;
pub mod tls;
pub mod transport;
pub mod types;

pub use group::{Group, GroupConfig, GroupStatus, Reader, WriteTxn, DEFAULT_SNAPSHOT_EVERY};
pub use tls::{NodeTls, NodeTlsFiles};
pub use transport::{Service, Transport};
pub use types::{ApplyResponse, GroupId, NodeId, Raft, TypeConfig, META_GROUP};
