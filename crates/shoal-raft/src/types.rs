//! Shoal's openraft type configuration.

use openraft::alias::{LogIdOf, StoredMembershipOf};
use serde::{Deserialize, Serialize};
pub use shoal_storage::Command;

/// Identifies a node (`shoal server` process) in the cluster.
pub type NodeId = u64;

/// Identifies a Raft group. `0` is the meta group; data groups count from 1.
pub type GroupId = u64;

/// The meta group's id.
pub const META_GROUP: GroupId = 0;

/// What applying one entry returns to the proposer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ApplyResponse {
    /// The entry's log index.
    pub index: u64,
    /// When the entry was replayed rather than committed from the
    /// proposer's open SQLite transaction: the output of each of its
    /// transactions (see [`shoal_storage::Applied::Replayed`]), which is
    /// what the proposer's sessions must be told.
    #[serde(default)]
    pub replayed: Option<Vec<shoal_storage::QueryOutput>>,
}

openraft::declare_raft_types!(
    /// Type configuration of every Shoal group. The defaults left out
    /// (`u64` terms, openraft's `LeaderId`, `Vote`, `Entry` and
    /// `BasicNode`) serialize exactly as openraft 0.9's did, so logs, votes
    /// and snapshots written before the upgrade stay readable.
    pub TypeConfig:
        D = Command,
        R = ApplyResponse,
        NodeId = NodeId,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The Raft handle of one group.
pub type Raft = openraft::Raft<TypeConfig, crate::state_machine::StateMachine>;

/// A log id of a Shoal group.
pub type LogId = LogIdOf<TypeConfig>;

/// What the state machine stores next to its applied index (as JSON in the
/// `meta` column of `__shoal_applied`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AppliedMeta {
    pub last_applied: Option<LogId>,
    pub membership: StoredMembershipOf<TypeConfig>,
}
