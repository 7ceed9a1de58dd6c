//! Checker (a): no acknowledged write is lost.
//!
//! Compares the inserts of a history with the ids found after the faults
//! healed. Per id:
//!
//! ```text
//!                   present            absent
//!   acknowledged    ok                 LOST
//!   unknown         ok (took effect)   ok (did not)
//!   failed only     FAILED-BUT-PRESENT ok
//!   never tried     PHANTOM            —
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::REPORT_LIMIT;
use crate::history::{Entry, History, Op, Outcome};

/// What [`check_lost_writes`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LostWritesReport {
    /// Distinct ids whose insert was acknowledged.
    pub acknowledged: usize,
    /// Acknowledged inserts missing from the final state.
    pub lost: Vec<Entry>,
    /// Inserts reported as definitely failed whose id is present anyway.
    pub failed_but_present: Vec<Entry>,
    /// Ids present that no client ever tried to insert.
    pub phantoms: Vec<i64>,
    /// Ids with only unknown (or failed) outcomes that are present / absent.
    pub unknown_present: usize,
    pub unknown_absent: usize,
}

impl LostWritesReport {
    pub fn is_valid(&self) -> bool {
        self.lost.is_empty() && self.failed_but_present.is_empty() && self.phantoms.is_empty()
    }
}

impl fmt::Display for LostWritesReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "lost writes: {} acknowledged ids, {} lost, {} failed but present, {} phantom; \
             unknown outcomes: {} present, {} absent",
            self.acknowledged,
            self.lost.len(),
            self.failed_but_present.len(),
            self.phantoms.len(),
            self.unknown_present,
            self.unknown_absent
        )?;
        for (what, entries) in [("LOST", &self.lost), ("FAILED BUT PRESENT", &self.failed_but_present)] {
            for e in entries.iter().take(REPORT_LIMIT) {
                write!(f, "\n  {what}: {e}")?;
            }
            if entries.len() > REPORT_LIMIT {
                write!(f, "\n  … and {} more", entries.len() - REPORT_LIMIT)?;
            }
        }
        if !self.phantoms.is_empty() {
            let shown: Vec<_> = self.phantoms.iter().take(REPORT_LIMIT).collect();
            write!(f, "\n  PHANTOM ids (never inserted): {shown:?}")?;
        }
        Ok(())
    }
}

/// Checks every [`Op::Insert`] of `history` against `present`, the ids read
/// after healing (with every client stopped). Other ops are ignored.
pub fn check_lost_writes(history: &History, present: &BTreeSet<i64>) -> LostWritesReport {
    #[derive(Default)]
    struct Attempts<'a> {
        ok: Option<&'a Entry>,
        unknown: bool,
        failed: Option<&'a Entry>,
    }
    let mut by_id: BTreeMap<i64, Attempts> = BTreeMap::new();
    for e in &history.entries {
        if let Op::Insert { id } = e.op {
            let a = by_id.entry(id).or_default();
            match e.outcome {
                Outcome::Ok(_) => a.ok = a.ok.or(Some(e)),
                Outcome::Unknown(_) => a.unknown = true,
                Outcome::Failed(_) => a.failed = a.failed.or(Some(e)),
            }
        }
    }
    let mut report = LostWritesReport::default();
    for (id, a) in &by_id {
        let here = present.contains(id);
        match (a.ok, a.unknown, here) {
            (Some(_), _, true) => report.acknowledged += 1,
            (Some(e), _, false) => {
                report.acknowledged += 1;
                report.lost.push(e.clone());
            }
            (None, true, true) => report.unknown_present += 1,
            (None, true, false) => report.unknown_absent += 1,
            (None, false, true) => report.failed_but_present.extend(a.failed.cloned()),
            (None, false, false) => {}
        }
    }
    report.phantoms = present.iter().filter(|id| !by_id.contains_key(id)).copied().collect();
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Output;

    fn insert(id: i64, outcome: Outcome) -> Entry {
        Entry { client: 1, op: Op::Insert { id }, invoke_us: id as u64 * 10, complete_us: id as u64 * 10 + 5, outcome }
    }

    fn ok() -> Outcome {
        Outcome::Ok(Output::Done)
    }

    #[test]
    fn acknowledged_and_unknown_inserts_in_any_state_pass() {
        let history = History::new(vec![
            insert(1, ok()),
            insert(2, ok()),
            insert(3, Outcome::Unknown("timeout".into())),
            insert(4, Outcome::Unknown("connection reset".into())),
            insert(5, Outcome::Failed("23505".into())),
        ]);
        let report = check_lost_writes(&history, &BTreeSet::from([1, 2, 3]));
        assert!(report.is_valid(), "{report}");
        assert_eq!(report.acknowledged, 2);
        assert_eq!((report.unknown_present, report.unknown_absent), (1, 1));
    }

    #[test]
    fn a_missing_acknowledged_insert_is_lost() {
        let history = History::new(vec![insert(1, ok()), insert(2, ok())]);
        let report = check_lost_writes(&history, &BTreeSet::from([1]));
        assert!(!report.is_valid());
        assert_eq!(report.lost, vec![insert(2, ok())]);
        assert!(report.to_string().contains("LOST: [client 1"), "{report}");
    }

    #[test]
    fn a_failed_insert_that_took_effect_is_reported() {
        let history = History::new(vec![insert(1, Outcome::Failed("40001".into()))]);
        let report = check_lost_writes(&history, &BTreeSet::from([1]));
        assert!(!report.is_valid());
        assert_eq!(report.failed_but_present.len(), 1);
    }

    #[test]
    fn a_retry_that_succeeded_excuses_an_earlier_failure() {
        let history = History::new(vec![insert(1, Outcome::Failed("40001".into())), insert(1, ok())]);
        let report = check_lost_writes(&history, &BTreeSet::from([1]));
        assert!(report.is_valid(), "{report}");
    }

    #[test]
    fn an_id_nobody_inserted_is_a_phantom() {
        let history = History::new(vec![insert(1, ok())]);
        let report = check_lost_writes(&history, &BTreeSet::from([1, 99]));
        assert!(!report.is_valid());
        assert_eq!(report.phantoms, vec![99]);
    }
}
