//! Histories: what clients asked for, when, and what they learned.
//!
//! ```text
//!   client 2 ──invoke(Write k=1 v=3)──────────────complete(Ok Done)──▶
//!   client 5 ─────────invoke(Read k=1)──────complete(Ok Read(Some 3))──▶
//!   client 7 ──invoke(Write k=1 v=4)──────── timeout: Unknown ──── ∞
//!            invoke_us                      complete_us
//! ```
//!
//! Every operation ends in one of three outcomes, and the difference matters
//! to every checker:
//! - [`Outcome::Ok`]: the server acknowledged it; it took effect exactly once,
//!   somewhere between invocation and completion.
//! - [`Outcome::Failed`]: it definitely did not take effect (a constraint
//!   violation, a serialization failure, a transaction never sent `COMMIT`).
//! - [`Outcome::Unknown`]: the client cannot tell (a timeout, a connection lost
//!   after the request was sent, SQLSTATE 40003). It may take effect at any time
//!   after invocation, even after the client gave up, or never. A timeout is
//!   never a failure.
//!
//! A [`Recorder`] is shared by all clients of a run; each operation is a
//! [`Pending`] between invocation and completion, and one that is dropped
//! uncompleted (its client task was cancelled) is recorded as unknown.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Who issued an operation: one id per logical client (a sequential process).
pub type ClientId = u64;

/// What a client asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Set register `key` to `value`.
    Write { key: u64, value: i64 },
    /// Read register `key`.
    Read { key: u64 },
    /// Set register `key` to `new` if it holds `expect`.
    Cas { key: u64, expect: i64, new: i64 },
    /// Move `amount` from account `from` to account `to` in one transaction.
    Transfer { from: u64, to: u64, amount: i64 },
    /// Read every account's balance in one statement.
    ReadAll,
    /// Insert a row with a never-reused id.
    Insert { id: i64 },
}

/// What an acknowledged operation returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// A write, transfer or insert that took effect.
    Done,
    /// The register's value (`None`: no such register).
    Read(Option<i64>),
    /// Whether a compare-and-set swapped.
    Cas(bool),
    /// Every account's balance, by account id.
    Balances(BTreeMap<u64, i64>),
}

/// How an operation ended (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok(Output),
    Failed(String),
    Unknown(String),
}

impl Outcome {
    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Ok(_))
    }

    pub fn is_unknown(&self) -> bool {
        matches!(self, Outcome::Unknown(_))
    }
}

/// One completed (or abandoned) operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub client: ClientId,
    pub op: Op,
    /// Microseconds since the recorder started, taken just before the request.
    pub invoke_us: u64,
    /// Microseconds since the recorder started, when the client learned the
    /// outcome or gave up. Checkers treat an unknown op as never completing.
    pub complete_us: u64,
    pub outcome: Outcome,
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |us: u64| us as f64 / 1000.0;
        write!(f, "[client {} {:.3}..{:.3} ms] ", self.client, ms(self.invoke_us), ms(self.complete_us))?;
        match &self.op {
            Op::Write { key, value } => write!(f, "write k={key} v={value}")?,
            Op::Read { key } => write!(f, "read k={key}")?,
            Op::Cas { key, expect, new } => write!(f, "cas k={key} {expect}->{new}")?,
            Op::Transfer { from, to, amount } => write!(f, "transfer {amount} from {from} to {to}")?,
            Op::ReadAll => write!(f, "read all balances")?,
            Op::Insert { id } => write!(f, "insert id={id}")?,
        }
        match &self.outcome {
            Outcome::Ok(Output::Done) => write!(f, " → ok"),
            Outcome::Ok(Output::Read(Some(v))) => write!(f, " → ok {v}"),
            Outcome::Ok(Output::Read(None)) => write!(f, " → ok (none)"),
            Outcome::Ok(Output::Cas(swapped)) => write!(f, " → ok swapped={swapped}"),
            Outcome::Ok(Output::Balances(b)) => write!(f, " → ok {b:?} (sum {})", b.values().sum::<i64>()),
            Outcome::Failed(why) => write!(f, " → failed: {why}"),
            Outcome::Unknown(why) => write!(f, " → unknown: {why}"),
        }
    }
}

/// The operations of a run, ordered by invocation time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    pub entries: Vec<Entry>,
}

impl History {
    /// A history of `entries` in any order (hand-made histories in tests).
    pub fn new(mut entries: Vec<Entry>) -> History {
        entries.sort_by_key(|e| (e.invoke_us, e.complete_us, e.client));
        History { entries }
    }

    /// Counts of outcomes per kind of operation, for the test log.
    pub fn summary(&self) -> Summary {
        let mut counts: BTreeMap<&'static str, [usize; 3]> = BTreeMap::new();
        for e in &self.entries {
            let kind = match e.op {
                Op::Write { .. } => "write",
                Op::Read { .. } => "read",
                Op::Cas { .. } => "cas",
                Op::Transfer { .. } => "transfer",
                Op::ReadAll => "read-all",
                Op::Insert { .. } => "insert",
            };
            let slot = match e.outcome {
                Outcome::Ok(_) => 0,
                Outcome::Failed(_) => 1,
                Outcome::Unknown(_) => 2,
            };
            counts.entry(kind).or_default()[slot] += 1;
        }
        Summary { counts }
    }
}

/// Outcome counts per kind of operation; `Display` prints one line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// `[ok, failed, unknown]` by operation kind.
    pub counts: BTreeMap<&'static str, [usize; 3]>,
}

impl Summary {
    /// Acknowledged operations of `kind` (e.g. `"write"`).
    pub fn ok(&self, kind: &str) -> usize {
        self.counts.get(kind).map_or(0, |c| c[0])
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .counts
            .iter()
            .map(|(kind, [ok, failed, unknown])| format!("{kind}: {ok} ok, {failed} failed, {unknown} unknown"))
            .collect();
        write!(f, "{}", parts.join("; "))
    }
}

/// Collects the entries of all clients of a run. Cheap to clone (shared).
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<RecorderInner>,
}

struct RecorderInner {
    start: Instant,
    entries: Mutex<Vec<Entry>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl Recorder {
    /// A recorder whose clock starts now.
    pub fn new() -> Recorder {
        Recorder { inner: Arc::new(RecorderInner { start: Instant::now(), entries: Mutex::new(Vec::new()) }) }
    }

    /// Marks `op` as invoked by `client` now. Complete the returned
    /// [`Pending`]; dropping it records the op as unknown.
    pub fn invoke(&self, client: ClientId, op: Op) -> Pending {
        Pending { recorder: self.clone(), entry: Some((client, op, self.now_us())) }
    }

    /// The operations completed so far, ordered by invocation.
    pub fn history(&self) -> History {
        History::new(self.lock().clone())
    }

    fn now_us(&self) -> u64 {
        u64::try_from(self.inner.start.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        // A client that panicked while pushing leaves a valid Vec behind.
        self.inner.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// An invoked operation awaiting its outcome.
pub struct Pending {
    recorder: Recorder,
    entry: Option<(ClientId, Op, u64)>,
}

impl Pending {
    /// Records the outcome, timestamped now.
    pub fn complete(mut self, outcome: Outcome) {
        self.finish(outcome);
    }

    fn finish(&mut self, outcome: Outcome) {
        if let Some((client, op, invoke_us)) = self.entry.take() {
            let complete_us = self.recorder.now_us();
            self.recorder.lock().push(Entry { client, op, invoke_us, complete_us, outcome });
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        // The request may already be on the wire: an abandoned op is unknown, never failed.
        self.finish(Outcome::Unknown("client stopped before the outcome was known".into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorder_orders_by_invocation_and_abandoned_ops_are_unknown() {
        let recorder = Recorder::new();
        let first = recorder.invoke(1, Op::Write { key: 1, value: 1 });
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = recorder.invoke(2, Op::Read { key: 1 });
        second.complete(Outcome::Ok(Output::Read(None)));
        drop(first);
        let history = recorder.history();
        assert_eq!(history.entries.len(), 2);
        assert_eq!(history.entries[0].client, 1, "ordered by invocation, not completion");
        assert!(history.entries[0].outcome.is_unknown());
        assert!(history.entries[0].invoke_us <= history.entries[1].invoke_us);
        assert!(history.entries.iter().all(|e| e.invoke_us <= e.complete_us));
    }

    #[test]
    fn summary_counts_outcomes_per_kind() {
        let e = |op, outcome| Entry { client: 0, op, invoke_us: 0, complete_us: 1, outcome };
        let history = History::new(vec![
            e(Op::Insert { id: 1 }, Outcome::Ok(Output::Done)),
            e(Op::Insert { id: 2 }, Outcome::Failed("23505".into())),
            e(Op::Insert { id: 3 }, Outcome::Unknown("timeout".into())),
            e(Op::ReadAll, Outcome::Ok(Output::Balances(BTreeMap::from([(1, 5)])))),
        ]);
        let summary = history.summary();
        assert_eq!(summary.counts["insert"], [1, 1, 1]);
        assert_eq!(summary.ok("read-all"), 1);
        assert_eq!(summary.ok("write"), 0);
        assert_eq!(summary.to_string(), "insert: 1 ok, 1 failed, 1 unknown; read-all: 1 ok, 0 failed, 0 unknown");
    }
}
