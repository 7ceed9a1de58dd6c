//! Checker (c): money is neither created nor destroyed.
//!
//! Transfers move money between accounts inside transactions; every
//! acknowledged [`Op::ReadAll`] is one consistent snapshot, so it must show
//! every account, no negative balance, and the initial total. A torn
//! transaction, a lost write or a stale read mixed with a fresh one shows up
//! as a wrong sum.

use std::fmt;

use super::REPORT_LIMIT;
use crate::history::{Entry, History, Op, Outcome, Output};

/// What [`check_bank`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BankReport {
    /// Acknowledged balance reads checked.
    pub reads_checked: usize,
    /// Acknowledged transfers (for the log: a bank run that moved no money
    /// checked little).
    pub transfers_ok: usize,
    /// Each offending read and what is wrong with it.
    pub violations: Vec<(Entry, String)>,
}

impl BankReport {
    pub fn is_valid(&self) -> bool {
        self.violations.is_empty()
    }
}

impl fmt::Display for BankReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bank: {} balance reads checked, {} transfers acknowledged, {} violations",
            self.reads_checked,
            self.transfers_ok,
            self.violations.len()
        )?;
        for (entry, why) in self.violations.iter().take(REPORT_LIMIT) {
            write!(f, "\n  {why}: {entry}")?;
        }
        if self.violations.len() > REPORT_LIMIT {
            write!(f, "\n  … and {} more", self.violations.len() - REPORT_LIMIT)?;
        }
        Ok(())
    }
}

/// Checks every acknowledged [`Op::ReadAll`] of `history`: `accounts`
/// accounts, none negative, summing to `total`.
pub fn check_bank(history: &History, accounts: usize, total: i64) -> BankReport {
    let mut report = BankReport::default();
    for e in &history.entries {
        match (&e.op, &e.outcome) {
            (Op::Transfer { .. }, Outcome::Ok(_)) => report.transfers_ok += 1,
            (Op::ReadAll, Outcome::Ok(Output::Balances(balances))) => {
                report.reads_checked += 1;
                let mut problems = Vec::new();
                if balances.len() != accounts {
                    problems.push(format!("{} accounts instead of {accounts}", balances.len()));
                }
                // i128: a corrupted balance near i64::MAX must not overflow the check itself.
                let sum: i128 = balances.values().map(|b| i128::from(*b)).sum();
                if sum != i128::from(total) {
                    problems.push(format!("total {sum} instead of {total}"));
                }
                let negative: Vec<_> = balances.iter().filter(|(_, b)| **b < 0).collect();
                if !negative.is_empty() {
                    problems.push(format!("negative balances {negative:?}"));
                }
                if !problems.is_empty() {
                    report.violations.push((e.clone(), problems.join(", ")));
                }
            }
            (Op::ReadAll, Outcome::Ok(other)) => {
                report.violations.push((e.clone(), format!("a balance read returned {other:?}")));
            }
            _ => {}
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn read_all(at: u64, balances: &[(u64, i64)]) -> Entry {
        Entry {
            client: 9,
            op: Op::ReadAll,
            invoke_us: at,
            complete_us: at + 1,
            outcome: Outcome::Ok(Output::Balances(balances.iter().copied().collect::<BTreeMap<_, _>>())),
        }
    }

    fn transfer(at: u64, outcome: Outcome) -> Entry {
        Entry { client: 1, op: Op::Transfer { from: 1, to: 2, amount: 5 }, invoke_us: at, complete_us: at + 1, outcome }
    }

    #[test]
    fn conserved_totals_pass_whatever_transfers_did() {
        let history = History::new(vec![
            read_all(0, &[(1, 10), (2, 10)]),
            transfer(2, Outcome::Ok(Output::Done)),
            transfer(3, Outcome::Unknown("timeout".into())),
            read_all(4, &[(1, 5), (2, 15)]),
            read_all(5, &[(1, 0), (2, 20)]),
            // Failed and unknown reads carry no balances to check.
            Entry { outcome: Outcome::Unknown("timeout".into()), ..read_all(6, &[]) },
        ]);
        let report = check_bank(&history, 2, 20);
        assert!(report.is_valid(), "{report}");
        assert_eq!((report.reads_checked, report.transfers_ok), (3, 1));
    }

    #[test]
    fn a_changed_total_is_a_violation() {
        let history = History::new(vec![read_all(0, &[(1, 10), (2, 10)]), read_all(5, &[(1, 5), (2, 10)])]);
        let report = check_bank(&history, 2, 20);
        assert_eq!(report.violations.len(), 1);
        assert_eq!(report.violations[0].1, "total 15 instead of 20");
        assert_eq!(report.violations[0].0.invoke_us, 5);
    }

    #[test]
    fn negative_balances_and_missing_accounts_are_violations() {
        let history = History::new(vec![read_all(0, &[(1, -5), (2, 25)]), read_all(1, &[(1, 20)])]);
        let report = check_bank(&history, 2, 20);
        assert_eq!(report.violations.len(), 2, "{report}");
        assert!(report.violations[0].1.contains("negative balances"), "{report}");
        assert!(report.violations[1].1.contains("1 accounts instead of 2"), "{report}");
    }

    #[test]
    fn extreme_balances_do_not_overflow_the_check() {
        let history = History::new(vec![read_all(0, &[(1, i64::MAX), (2, i64::MAX)])]);
        let report = check_bank(&history, 2, 20);
        assert!(!report.is_valid());
    }
}
