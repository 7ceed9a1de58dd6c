//! # shoal-testkit — fault injection against real Shoal processes
//!
//! Replication is only as good as its behaviour under failure, so this crate
//! runs real `shoal server` processes, breaks them and their network on a
//! seeded schedule while clients work, and checks what the clients saw.
//!
//! ```text
//!   Seed (SHOAL_SEED) ──┬─▶ workload clients ──tokio-postgres──▶ node pg ports ─┐
//!                       │     │ Recorder: invoke / complete                       │
//!                       │     ▼                                                   │
//!                       │   History ──▶ checkers (after heal + final reads)       │
//!                       │                                                         ▼
//!                       └─▶ Nemesis ──▶ Cluster: kill9 pause resume restart wipe
//!                                         └─ FaultProxy per ordered node pair: drop, delay, partition, heal
//! ```
//!
//! | piece | type | file |
//! |---|---|---|
//! | seeded randomness, printed for replay | [`Seed`] | `seed.rs` |
//! | N child processes on local ports, signals, logs | [`Cluster`] | `cluster/` |
//! | the network between nodes | [`FaultProxy`] | `proxy.rs` |
//! | fault schedules | [`Nemesis`] | `nemesis.rs` |
//! | what clients did and learned (ok / failed / unknown) | [`Recorder`], [`History`] | `history.rs` |
//! | register, bank and set clients | [`RegisterWorkload`], [`BankWorkload`], [`SetWorkload`] | `workload/` |
//! | invariants | [`check_lost_writes`], [`check_registers`], [`check_bank`] | `check/` |
//!
//! ## What the server must provide for multi-node clusters
//!
//! - Node 1 is started without `--join`; node k > 1 with `--join <node 1 rpc>`,
//!   one at a time, each after the previous is ready; the server gives node k
//!   the id k. Restarts pass the same flags, so a node whose data directory
//!   already holds its identity must start without needing the join target.
//! - `SHOAL_PEER_ADDRS=2=127.0.0.1:P12,3=127.0.0.1:P13` on node 1: to reach
//!   node id j, dial the given address instead of j's advertised RPC address
//!   (ids without an entry are dialed directly). Each address is a
//!   [`FaultProxy`] in front of node j's RPC port, owned by link 1→j.
//! - Readiness: `GET /api/status` answers 200 with JSON whose `node_id` is the
//!   node's id, and the PostgreSQL port completes a startup handshake.
//! - Errors: a statement that may or may not have committed is reported with
//!   SQLSTATE 40003 (or the connection drops); `40001` means not committed.
//!
//! ## Out of scope
//!
//! Deterministic simulation (real processes and sockets: a replay repeats the
//! seed's decisions, not the exact interleaving), clock skew, disk faults.

pub mod check;
pub mod cluster;
pub mod history;
pub mod nemesis;
pub mod proxy;
pub mod seed;
pub mod workload;

pub use check::{
    check_bank, check_lost_writes, check_registers, BankReport, KeyVerdict, LinearizabilityConfig,
    LinearizabilityReport, LostWritesReport, Witness,
};
pub use cluster::{Cluster, ClusterConfig, NodeId, NodeInfo};
pub use history::{ClientId, Entry, History, Op, Outcome, Output, Pending, Recorder, Summary};
pub use nemesis::{Fault, FaultKind, Nemesis, NemesisConfig, Step};
pub use proxy::{Direction, FaultProxy, LinkMode, ProxyStats};
pub use seed::Seed;
pub use workload::{BankWorkload, Endpoints, Failure, RegisterWorkload, SetWorkload, Workloads};
