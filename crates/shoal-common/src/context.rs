//! The execution context of a transaction.
//!
//! Followers re-execute the statements the leader executed, so every source
//! of non-determinism is pinned to values chosen once by the leader and
//! recorded in the log entry: the transaction's timestamp (what `now()`,
//! `CURRENT_TIMESTAMP` and SQLite's `'now'` return) and a random seed (what
//! `random()`, `randomblob()` and `gen_random_uuid()` draw from).

use serde::{Deserialize, Serialize};

/// Timestamp and seed a transaction runs with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecContext {
    /// Transaction start time, microseconds since the Unix epoch (UTC).
    pub timestamp_micros: i64,
    /// Seed of the transaction's pseudo-random number generator.
    pub seed: u64,
}

impl ExecContext {
    /// A context with the current wall-clock time and a fresh random seed.
    pub fn now(seed: u64) -> ExecContext {
        let timestamp_micros = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as i64)
            .unwrap_or(0);
        ExecContext { timestamp_micros, seed }
    }

    /// The seed for the `n`-th statement of the transaction: each statement
    /// restarts its generator, so replaying only the writing statements of a
    /// transaction still draws the same numbers for each of them.
    pub fn statement_seed(&self, n: u32) -> u64 {
        // SplitMix64 step: cheap, well-distributed, stable across versions.
        let mut z = self.seed.wrapping_add(0x9E37_79B9_7F4A_7C15u64.wrapping_mul(n as u64 + 1));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}
