//! shoal-raft
