//! Checkers: pure functions from a [`History`](crate::History) (plus the state
//! read after the faults healed) to a report that says whether an invariant
//! held and, when it did not, which operations show it.
//!
//! | checker | invariant | workload |
//! |---|---|---|
//! | [`check_lost_writes`] | every acknowledged insert is in the final state; nothing definitely failed or never attempted is | [`SetWorkload`](crate::SetWorkload) |
//! | [`check_registers`] | each register's history is linearizable (per key) | [`RegisterWorkload`](crate::RegisterWorkload) |
//! | [`check_bank`] | every balance snapshot sums to the initial total and has no negative balance | [`BankWorkload`](crate::BankWorkload) |
//!
//! Unknown outcomes are never held against the system: an unknown insert may
//! or may not be present, an unknown write may take effect at any time after
//! its invocation. Each report counts what it actually checked, so a test can
//! assert it was not vacuous.

mod bank;
mod linearizable;
mod lost_writes;

pub use bank::{check_bank, BankReport};
pub use linearizable::{check_registers, KeyVerdict, LinearizabilityConfig, LinearizabilityReport, Witness};
pub use lost_writes::{check_lost_writes, LostWritesReport};

/// How many offending entries a report prints before "… and N more".
const REPORT_LIMIT: usize = 20;
