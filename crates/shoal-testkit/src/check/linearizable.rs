//! Checker (b): per-key linearizability of a register workload.
//!
//! A history is linearizable when every acknowledged operation can be given
//! one point in time between its invocation and its completion such that,
//! taken in that order, the operations are a legal run of a single register.
//! Registers are independent, so a history is linearizable iff each key's
//! sub-history is (Herlihy & Wing's locality), and the check runs per key.
//!
//! ## The search (Wing & Gong, with Lowe's memoization, as in Porcupine)
//!
//! Invocations and completions of one key are sorted into an entry list:
//!
//! ```text
//!   head → call w1 → call r1 → ret w1 → call w2 → ret r1 → ret w2 → ret u(∞)
//!          ^^^^^^^ try to linearize the first call whose op is still unplaced
//! ```
//!
//! Walking from the head, a *call* whose operation is legal in the current
//! register state is linearized: it and its return are lifted out of the
//! list, the state advances, and the walk restarts at the head. Reaching a
//! *return* means that operation's deadline passed unplaced: backtrack (undo
//! the last linearized op, put its entries back, try the next call after it).
//! A cache of (set of linearized ops, register state) pairs already explored
//! prunes the permutations that lead to a configuration seen before.
//!
//! An **unknown** op (timeout, lost connection) completes at ∞: it may take
//! effect at any point after its invocation, or never. The search succeeds
//! once every *acknowledged* op is placed; unknown ops are placed only when
//! some read needs them. Failed ops took no effect and are left out.
//! Equal timestamps count as concurrent, so a boundary never causes a false alarm.
//!
//! Unknown ops are what makes the search expensive (any subset of them may
//! have happened), so three reductions keep it small, none of which changes
//! the verdict:
//! - unknown ops whose written value nothing observes are dropped up front;
//! - unknown ops with the same effect are interchangeable, so they are
//!   placed only in invocation order;
//! - a configuration is skipped when the memo holds one with the same placed
//!   acknowledged ops and state but a subset of its unknown ops.
//!
//! The search is still exponential in the worst case, so it is bounded by
//! [`LinearizabilityConfig::max_steps`]; a key that exhausts it is
//! [`KeyVerdict::Undecided`], never silently passed and never a hang.
//! Proving a violation is the expensive direction: the search must exhaust
//! every configuration, where a linearizable history usually needs one path.
//!
//! ## The witness
//!
//! A violation is reported with a small set of operations that cannot be
//! linearized together, found in two steps that each only *relax* the
//! history (every linearizable history stays linearizable), so the witness
//! proves the violation of the whole:
//! 1. cut the history at the earliest completion time at which the prefix is
//!    already not linearizable (ops still running at the cut become unknown);
//! 2. delete operations, delta-debugging style (chunks first, then single
//!    ops), while the rest still cannot be linearized. Only deletions that
//!    relax are tried: reads, compare-and-sets that did not swap, and writes
//!    whose values no remaining operation reads or compares against (see
//!    `delete_relaxing`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use crate::history::{Entry, History, Op, Outcome, Output};

/// Bounds and starting state of [`check_registers`].
#[derive(Clone, Debug)]
pub struct LinearizabilityConfig {
    /// Every register's value before the history (`None`: no row).
    pub initial: Option<i64>,
    /// Search steps per key before giving up with [`KeyVerdict::Undecided`].
    /// Also bounds the memo cache, one entry per step at most.
    pub max_steps: u64,
    /// Steps spent shrinking one key's witness, in total, after a violation.
    pub max_minimize_steps: u64,
}

impl Default for LinearizabilityConfig {
    fn default() -> Self {
        LinearizabilityConfig { initial: None, max_steps: 1_000_000, max_minimize_steps: 5_000_000 }
    }
}

/// The verdict on one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyVerdict {
    Linearizable,
    NotLinearizable(Witness),
    /// The search ran out of steps: neither proven nor refuted.
    Undecided {
        steps: u64,
    },
}

/// Operations of one key that cannot be linearized together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Witness {
    /// The operations, by invocation, as the history recorded them.
    pub ops: Vec<Entry>,
    /// The history was cut here: ops still running at this time count as unknown.
    pub cut_us: u64,
    /// The op whose deadline passed after the longest linearizable prefix.
    pub stuck: Option<Entry>,
    /// Whether shrinking finished (no single allowed deletion keeps the
    /// violation) or stopped at its step budget.
    pub minimal: bool,
}

/// What [`check_registers`] found, per key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinearizabilityReport {
    pub keys: BTreeMap<u64, KeyVerdict>,
    /// Register operations that entered the search (acknowledged or unknown).
    pub ops_checked: usize,
    /// Entries whose output does not fit their op (e.g. a read that returned
    /// balances): the history itself is broken.
    pub malformed: Vec<Entry>,
}

impl LinearizabilityReport {
    /// True when every key is proven linearizable and nothing was malformed.
    pub fn is_valid(&self) -> bool {
        self.malformed.is_empty() && self.keys.values().all(|v| *v == KeyVerdict::Linearizable)
    }

    /// Keys proven not linearizable, with their witnesses.
    pub fn violations(&self) -> impl Iterator<Item = (u64, &Witness)> {
        self.keys.iter().filter_map(|(k, v)| match v {
            KeyVerdict::NotLinearizable(w) => Some((*k, w)),
            _ => None,
        })
    }

    /// Keys the search could not decide within its budget.
    pub fn undecided(&self) -> Vec<u64> {
        self.keys.iter().filter(|(_, v)| matches!(v, KeyVerdict::Undecided { .. })).map(|(k, _)| *k).collect()
    }
}

impl fmt::Display for LinearizabilityReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bad = self.violations().count();
        let undecided = self.undecided().len();
        write!(
            f,
            "linearizability: {} keys, {} ops checked: {} linearizable, {bad} NOT linearizable, {undecided} undecided",
            self.keys.len(),
            self.ops_checked,
            self.keys.len() - bad - undecided,
        )?;
        for e in &self.malformed {
            write!(f, "\n  MALFORMED entry: {e}")?;
        }
        for (key, verdict) in &self.keys {
            match verdict {
                KeyVerdict::Linearizable => {}
                KeyVerdict::Undecided { steps } => write!(f, "\n  key {key}: undecided after {steps} search steps")?,
                KeyVerdict::NotLinearizable(w) => {
                    write!(
                        f,
                        "\n  key {key}: NOT linearizable; witness of {} ops ({}; ops running at {:.3} ms count as unknown):",
                        w.ops.len(),
                        if w.minimal { "no single op can be dropped" } else { "shrinking stopped at its budget" },
                        w.cut_us as f64 / 1000.0
                    )?;
                    for e in &w.ops {
                        write!(f, "\n    {e}")?;
                    }
                    if let Some(e) = &w.stuck {
                        write!(f, "\n    no legal order places: {e}")?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Checks every register op ([`Op::Write`], [`Op::Read`], [`Op::Cas`]) of
/// `history`, key by key. Other ops are ignored.
pub fn check_registers(history: &History, config: &LinearizabilityConfig) -> LinearizabilityReport {
    let mut report = LinearizabilityReport::default();
    let mut by_key: BTreeMap<u64, Vec<RegOp>> = BTreeMap::new();
    for (index, e) in history.entries.iter().enumerate() {
        match RegOp::from_entry(index, e) {
            Ok(Some((key, op))) => by_key.entry(key).or_default().push(op),
            Ok(None) => {}
            Err(()) => report.malformed.push(e.clone()),
        }
        if let Op::Write { key, .. } | Op::Read { key } | Op::Cas { key, .. } = e.op {
            by_key.entry(key).or_default();
        }
    }
    for (key, ops) in by_key {
        report.ops_checked += ops.len();
        let ops = drop_unobserved_unknowns(ops);
        let verdict = match search(&ops, config.initial, config.max_steps).0 {
            Search::Linearizable => KeyVerdict::Linearizable,
            Search::Undecided => KeyVerdict::Undecided { steps: config.max_steps },
            Search::Violation { .. } => KeyVerdict::NotLinearizable(witness(history, &ops, config)),
        };
        report.keys.insert(key, verdict);
    }
    report
}

/// What a register op does, as far as the search is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Effect {
    Write(i64),
    Read(Option<i64>),
    /// `swapped: None` is an unknown compare-and-set: it swaps iff the value matches.
    Cas {
        expect: i64,
        new: i64,
        swapped: Option<bool>,
    },
}

/// One op of a key's sub-history.
#[derive(Clone, Copy, Debug)]
struct RegOp {
    /// Index of its entry in the history.
    entry: usize,
    effect: Effect,
    invoke: u64,
    /// `None`: unknown outcome, completes at ∞.
    complete: Option<u64>,
}

impl RegOp {
    /// The op of a register entry, `Ok(None)` when it has no effect to check
    /// (failed, unknown read, not a register op), `Err` when malformed.
    fn from_entry(entry: usize, e: &Entry) -> Result<Option<(u64, RegOp)>, ()> {
        let (key, effect, definite) = match (&e.op, &e.outcome) {
            (Op::Write { .. } | Op::Read { .. } | Op::Cas { .. }, Outcome::Failed(_)) => return Ok(None),
            (Op::Read { .. }, Outcome::Unknown(_)) => return Ok(None),
            (Op::Write { key, value }, Outcome::Ok(Output::Done)) => (*key, Effect::Write(*value), true),
            (Op::Write { key, value }, Outcome::Unknown(_)) => (*key, Effect::Write(*value), false),
            (Op::Read { key }, Outcome::Ok(Output::Read(v))) => (*key, Effect::Read(*v), true),
            (Op::Cas { key, expect, new }, Outcome::Ok(Output::Cas(swapped))) => {
                (*key, Effect::Cas { expect: *expect, new: *new, swapped: Some(*swapped) }, true)
            }
            (Op::Cas { key, expect, new }, Outcome::Unknown(_)) => {
                (*key, Effect::Cas { expect: *expect, new: *new, swapped: None }, false)
            }
            (Op::Write { .. } | Op::Read { .. } | Op::Cas { .. }, Outcome::Ok(_)) => return Err(()),
            _ => return Ok(None),
        };
        // A hand-made entry that completes before it starts is read as instantaneous.
        let complete = definite.then_some(e.complete_us.max(e.invoke_us));
        Ok(Some((key, RegOp { entry, effect, invoke: e.invoke_us, complete })))
    }
}

/// The register's sequential specification: the state after `effect`, or
/// `None` when the effect is impossible in `state`.
fn step(state: Option<i64>, effect: Effect) -> Option<Option<i64>> {
    match effect {
        Effect::Write(v) => Some(Some(v)),
        Effect::Read(seen) => (seen == state).then_some(state),
        Effect::Cas { expect, new, swapped: Some(true) } => (state == Some(expect)).then_some(Some(new)),
        Effect::Cas { expect, swapped: Some(false), .. } => (state != Some(expect)).then_some(state),
        Effect::Cas { expect, new, swapped: None } => Some(if state == Some(expect) { Some(new) } else { state }),
    }
}

enum Search {
    Linearizable,
    /// `stuck`: index (into the ops) of the op whose return ended the deepest attempt.
    Violation {
        stuck: usize,
    },
    Undecided,
}

const NIL: usize = usize::MAX;

/// The entry list: nodes `0..2n` are calls and returns sorted by time, node
/// `2n` is the head sentinel.
struct EntryList {
    op: Vec<usize>,
    is_call: Vec<bool>,
    partner: Vec<usize>,
    next: Vec<usize>,
    prev: Vec<usize>,
    head: usize,
}

impl EntryList {
    fn new(ops: &[RegOp]) -> EntryList {
        let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(ops.len() * 2);
        for (i, op) in ops.iter().enumerate() {
            // Sort key (time, is_return): at equal times calls come first, so
            // touching intervals count as concurrent.
            events.push((op.invoke, false, i));
            events.push((op.complete.unwrap_or(u64::MAX), true, i));
        }
        events.sort_unstable();
        let n = events.len();
        let head = n;
        let mut list = EntryList {
            op: events.iter().map(|e| e.2).collect(),
            is_call: events.iter().map(|e| !e.1).collect(),
            partner: vec![NIL; n],
            next: vec![NIL; n + 1],
            prev: vec![NIL; n + 1],
            head,
        };
        let mut last = head;
        for k in 0..n {
            list.next[last] = k;
            list.prev[k] = last;
            last = k;
        }
        let mut call_of = vec![NIL; ops.len()];
        for k in 0..n {
            let op = list.op[k];
            if list.is_call[k] {
                call_of[op] = k;
            } else {
                list.partner[k] = call_of[op];
                list.partner[call_of[op]] = k;
            }
        }
        list
    }

    /// Takes a call and its return out of the list.
    fn lift(&mut self, call: usize) {
        for node in [call, self.partner[call]] {
            let (p, n) = (self.prev[node], self.next[node]);
            self.next[p] = n;
            if n != NIL {
                self.prev[n] = p;
            }
        }
    }

    /// Puts back what [`EntryList::lift`] took out (in reverse order).
    fn unlift(&mut self, call: usize) {
        for node in [self.partner[call], call] {
            let (p, n) = (self.prev[node], self.next[node]);
            self.next[p] = node;
            if n != NIL {
                self.prev[n] = node;
            }
        }
    }
}

/// A set of op indexes.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(len: usize) -> Bits {
        Bits(vec![0; len.div_ceil(64)])
    }
    fn contains(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }
    fn set(&mut self, i: usize, on: bool) {
        if on {
            self.0[i / 64] |= 1 << (i % 64);
        } else {
            self.0[i / 64] &= !(1 << (i % 64));
        }
    }
    fn is_subset_of(&self, other: &Bits) -> bool {
        self.0.iter().zip(&other.0).all(|(a, b)| a & !b == 0)
    }
}

/// Wing & Gong's search with memoization over one key's ops; also returns
/// the steps it took.
///
/// The memo is keyed by (acknowledged ops placed, register state) and holds
/// the sets of unknown ops placed with them. A configuration is skipped when
/// one with a subset of its unknown ops was already explored: unknown ops are
/// optional, so the configuration that spent fewer of them can do everything
/// this one can.
fn search(ops: &[RegOp], initial: Option<i64>, max_steps: u64) -> (Search, u64) {
    let definite = ops.iter().filter(|o| o.complete.is_some()).count();
    let twin_before = unknown_twins(ops);
    let mut list = EntryList::new(ops);
    let (mut placed_definite, mut placed_unknown) = (Bits::new(ops.len()), Bits::new(ops.len()));
    let mut seen: HashMap<(Bits, Option<i64>), Vec<Bits>> = HashMap::new();
    // (call node, state before it) of each linearized op, in order.
    let mut stack: Vec<(usize, Option<i64>)> = Vec::new();
    let mut deepest: Option<(usize, usize)> = None;
    let (mut state, mut placed, mut steps) = (initial, 0usize, 0u64);
    let mut node = list.next[list.head];
    loop {
        if placed == definite {
            return (Search::Linearizable, steps);
        }
        if steps == max_steps || node == NIL {
            // NIL cannot happen (an unplaced acknowledged op's return is still
            // ahead); if it did, refuse to decide rather than pass.
            return (Search::Undecided, steps);
        }
        steps += 1;
        let op = list.op[node];
        if list.is_call[node] {
            let known = ops[op].complete.is_some();
            let twin_waiting = twin_before[op].is_some_and(|twin| !placed_unknown.contains(twin));
            if let Some(next_state) = step(state, ops[op].effect).filter(|_| !twin_waiting) {
                let bits = if known { &mut placed_definite } else { &mut placed_unknown };
                bits.set(op, true);
                let explored = seen.entry((placed_definite.clone(), next_state)).or_default();
                if !explored.iter().any(|old| old.is_subset_of(&placed_unknown)) {
                    explored.retain(|old| !placed_unknown.is_subset_of(old));
                    explored.push(placed_unknown.clone());
                    stack.push((node, state));
                    state = next_state;
                    placed += usize::from(known);
                    list.lift(node);
                    node = list.next[list.head];
                    continue;
                }
                let bits = if known { &mut placed_definite } else { &mut placed_unknown };
                bits.set(op, false);
            }
            node = list.next[node];
        } else {
            if deepest.is_none_or(|(depth, _)| stack.len() > depth) {
                deepest = Some((stack.len(), op));
            }
            let Some((call, before)) = stack.pop() else {
                return (Search::Violation { stuck: deepest.map_or(op, |(_, stuck)| stuck) }, steps);
            };
            let undone = list.op[call];
            placed_definite.set(undone, false);
            placed_unknown.set(undone, false);
            placed -= usize::from(ops[undone].complete.is_some());
            state = before;
            list.unlift(call);
            node = list.next[call];
        }
    }
}

/// For each unknown op, the unknown op with the same effect invoked just
/// before it. Such twins are interchangeable (either can stand in for the
/// other at any point after both invocations), so the search places them only
/// in invocation order: without this, every subset of pending unknown ops is
/// a distinct configuration and the search is exponential in their number.
fn unknown_twins(ops: &[RegOp]) -> Vec<Option<usize>> {
    let mut order: Vec<usize> = (0..ops.len()).collect();
    order.sort_by_key(|&i| ops[i].invoke);
    let mut latest: HashMap<Effect, usize> = HashMap::new();
    let mut twin_before = vec![None; ops.len()];
    for i in order.into_iter().filter(|&i| ops[i].complete.is_none()) {
        twin_before[i] = latest.insert(ops[i].effect, i);
    }
    twin_before
}

/// Drops the unknown ops no linearization needs (see [`delete_relaxing`]).
/// Leaving an unknown op out is always allowed, so the verdict is unchanged
/// and the search smaller.
fn drop_unobserved_unknowns(ops: Vec<RegOp>) -> Vec<RegOp> {
    let unknown: Vec<bool> = ops.iter().map(|o| o.complete.is_none()).collect();
    delete_relaxing(&ops, &unknown)
}

/// Cuts `ops` at time `t`: what started later is dropped, what was still
/// running becomes unknown (reads and non-swapping compare-and-sets, which
/// change nothing, are dropped).
fn cut(ops: &[RegOp], t: u64) -> Vec<RegOp> {
    ops.iter()
        .filter(|o| o.invoke <= t)
        .filter_map(|o| match (o.complete, o.effect) {
            (Some(c), _) if c <= t => Some(*o),
            (_, Effect::Read(_) | Effect::Cas { swapped: Some(false), .. }) => None,
            (_, Effect::Cas { expect, new, .. }) => {
                Some(RegOp { effect: Effect::Cas { expect, new, swapped: None }, complete: None, ..*o })
            }
            (_, Effect::Write(_)) => Some(RegOp { complete: None, ..*o }),
        })
        .collect()
}

/// The value an op may write (`None`: it never changes the register).
fn written(effect: Effect) -> Option<i64> {
    match effect {
        Effect::Write(v) => Some(v),
        Effect::Cas { new, swapped, .. } if swapped != Some(false) => Some(new),
        _ => None,
    }
}

/// `ops` without the largest subset of the `wanted` ones whose deletion
/// relaxes the history (every linearization of `ops` still has one without
/// them): reads and non-swapping compare-and-sets always qualify, as they
/// change nothing; ops that may write qualify when no op that stays reads
/// or compares against a value they write, and no acknowledged
/// compare-and-set that failed stays (it could start to match). Ops that
/// stay behind because of these rules may in turn pin others, so the set
/// shrinks to a fixpoint.
fn delete_relaxing(ops: &[RegOp], wanted: &[bool]) -> Vec<RegOp> {
    let mut delete = wanted.to_vec();
    loop {
        let staying = || ops.iter().zip(&delete).filter(|(_, d)| !**d).map(|(o, _)| o.effect);
        let failed_cas_stays = staying().any(|e| matches!(e, Effect::Cas { swapped: Some(false), .. }));
        let observed: HashSet<i64> = staying()
            .filter_map(|e| match e {
                Effect::Read(seen) => seen,
                Effect::Cas { expect, .. } => Some(expect),
                Effect::Write(_) => None,
            })
            .collect();
        let mut changed = false;
        for (op, d) in ops.iter().zip(delete.iter_mut()) {
            if *d && written(op.effect).is_some_and(|v| failed_cas_stays || observed.contains(&v)) {
                *d = false;
                changed = true;
            }
        }
        if !changed {
            return ops.iter().zip(&delete).filter(|(_, d)| !**d).map(|(o, _)| *o).collect();
        }
    }
}

/// Shrinks a violating key history to a witness, within the step budget.
fn witness(history: &History, ops: &[RegOp], config: &LinearizabilityConfig) -> Witness {
    let mut budget = config.max_minimize_steps;
    // `None` when a search cannot decide within its share of the budget.
    let mut violates = |candidate: &[RegOp]| -> Option<bool> {
        let (result, steps) = search(candidate, config.initial, config.max_steps.min(budget));
        budget -= steps;
        match result {
            Search::Undecided => None,
            Search::Violation { .. } => Some(true),
            Search::Linearizable => Some(false),
        }
    };

    // 1. The earliest cut that already violates (monotone: a longer prefix of a
    // violating prefix still violates). The whole history violates.
    let mut times: Vec<u64> = ops.iter().filter_map(|o| o.complete).collect();
    times.sort_unstable();
    times.dedup();
    let mut minimal = true;
    let (mut lo, mut hi) = (0, times.len().saturating_sub(1));
    while lo < hi {
        let mid = (lo + hi) / 2;
        match violates(&cut(ops, times[mid])) {
            Some(true) => hi = mid,
            Some(false) => lo = mid + 1,
            None => {
                minimal = false;
                lo = hi;
            }
        }
    }
    let cut_us = times.get(hi).copied().unwrap_or(0);
    let mut current = if times.is_empty() { ops.to_vec() } else { cut(ops, cut_us) };

    // 2. Delta debugging (Zeller's ddmin) over relaxing deletions: split into
    // n chunks, try keeping one chunk, then dropping one; refine n when
    // neither keeps the violation. Ends 1-minimal: no single allowed deletion
    // keeps it.
    let mut n = 2;
    while minimal && current.len() >= 2 {
        let len = current.len();
        let mut next_n = None;
        'tries: for keep_one in [true, false] {
            for i in 0..n {
                let chunk = (i * len / n)..((i + 1) * len / n);
                let wanted: Vec<bool> = (0..len).map(|j| chunk.contains(&j) != keep_one).collect();
                let candidate = delete_relaxing(&current, &wanted);
                if candidate.len() == len {
                    continue;
                }
                match violates(&candidate) {
                    Some(true) => {
                        current = candidate;
                        next_n = Some(if keep_one { 2 } else { (n - 1).max(2) });
                        break 'tries;
                    }
                    Some(false) => {}
                    None => {
                        minimal = false;
                        break 'tries;
                    }
                }
            }
        }
        n = match next_n {
            Some(n) => n,
            None if n >= len => break,
            None => (2 * n).min(len),
        };
    }

    let stuck = match search(&current, config.initial, config.max_steps).0 {
        Search::Violation { stuck } => Some(history.entries[current[stuck].entry].clone()),
        _ => None,
    };
    let mut entries: Vec<Entry> = current.iter().map(|o| history.entries[o.entry].clone()).collect();
    entries.sort_by_key(|e| (e.invoke_us, e.complete_us));
    Witness { ops: entries, cut_us, stuck, minimal }
}

#[cfg(test)]
mod tests {
    use rand::Rng;

    use super::*;
    use crate::seed::Seed;

    fn e(client: u64, op: Op, invoke_us: u64, complete_us: u64, outcome: Outcome) -> Entry {
        Entry { client, op, invoke_us, complete_us, outcome }
    }
    fn write(key: u64, value: i64, from: u64, to: u64) -> Entry {
        e(1, Op::Write { key, value }, from, to, Outcome::Ok(Output::Done))
    }
    fn read(key: u64, seen: Option<i64>, from: u64, to: u64) -> Entry {
        e(2, Op::Read { key }, from, to, Outcome::Ok(Output::Read(seen)))
    }
    fn cas(key: u64, expect: i64, new: i64, swapped: bool, from: u64, to: u64) -> Entry {
        e(3, Op::Cas { key, expect, new }, from, to, Outcome::Ok(Output::Cas(swapped)))
    }
    fn unknown(entry: Entry) -> Entry {
        Entry { outcome: Outcome::Unknown("timeout".into()), ..entry }
    }
    fn check(entries: Vec<Entry>) -> LinearizabilityReport {
        check_registers(&History::new(entries), &LinearizabilityConfig::default())
    }
    fn check_from(initial: i64, entries: Vec<Entry>) -> LinearizabilityReport {
        let config = LinearizabilityConfig { initial: Some(initial), ..LinearizabilityConfig::default() };
        check_registers(&History::new(entries), &config)
    }
    fn only_witness(report: &LinearizabilityReport) -> &Witness {
        let violations: Vec<_> = report.violations().collect();
        assert_eq!(violations.len(), 1, "{report}");
        violations[0].1
    }

    #[test]
    fn sequential_reads_of_the_last_write_pass() {
        let report = check(vec![
            read(1, None, 0, 5),
            write(1, 1, 10, 20),
            read(1, Some(1), 30, 40),
            write(1, 2, 50, 60),
            read(1, Some(2), 70, 80),
        ]);
        assert!(report.is_valid(), "{report}");
        assert_eq!(report.ops_checked, 5);
    }

    #[test]
    fn a_read_concurrent_with_a_write_may_see_either_value() {
        for seen in [Some(1), Some(2)] {
            let report = check(vec![write(1, 1, 0, 10), write(1, 2, 20, 50), read(1, seen, 30, 40)]);
            assert!(report.is_valid(), "{seen:?}: {report}");
        }
    }

    #[test]
    fn touching_intervals_count_as_concurrent() {
        assert!(check(vec![write(1, 1, 0, 10), read(1, None, 10, 20)]).is_valid());
        assert!(!check(vec![write(1, 1, 0, 10), read(1, None, 11, 20)]).is_valid());
    }

    #[test]
    fn a_stale_read_is_a_violation_with_a_three_op_witness() {
        let report = check(vec![
            write(1, 1, 0, 10),
            read(1, Some(1), 12, 14),
            write(1, 2, 20, 30),
            read(1, Some(2), 32, 34),
            read(1, Some(1), 40, 50),
            read(1, Some(1), 60, 70),
        ]);
        let w = only_witness(&report);
        let ops: Vec<_> = w.ops.iter().map(|e| (e.invoke_us, e.complete_us)).collect();
        assert_eq!(ops, vec![(0, 10), (20, 30), (40, 50)], "{report}");
        assert!(w.minimal);
        assert_eq!(w.cut_us, 50, "the prefix up to the first stale read already violates");
        assert_eq!(w.stuck.as_ref().map(|e| e.invoke_us), Some(40), "{report}");
        assert!(report.to_string().contains("key 1: NOT linearizable; witness of 3 ops"), "{report}");
    }

    #[test]
    fn a_value_never_written_is_a_one_op_witness() {
        let report = check(vec![write(1, 1, 0, 10), read(1, Some(7), 20, 30), write(1, 2, 40, 50)]);
        let w = only_witness(&report);
        assert_eq!(w.ops, vec![read(1, Some(7), 20, 30)], "{report}");
    }

    #[test]
    fn values_cannot_flip_back_once_a_newer_one_was_read() {
        // w2 is still running, so r_a may see it; but then r_b cannot see w1's value again.
        let entries = vec![write(1, 1, 0, 5), write(1, 2, 10, 100), read(1, Some(2), 20, 30), read(1, Some(1), 40, 50)];
        let report = check(entries.clone());
        assert_eq!(only_witness(&report).ops.len(), 4, "{report}");
        // Swapping the reads' order makes it legal.
        let mut swapped = entries;
        swapped[2] = read(1, Some(1), 20, 30);
        swapped[3] = read(1, Some(2), 40, 50);
        assert!(check(swapped).is_valid());
    }

    #[test]
    fn an_unknown_write_may_take_effect_late_or_never() {
        let late = check(vec![unknown(write(1, 1, 0, 10)), read(1, None, 20, 30), read(1, Some(1), 500, 510)]);
        assert!(late.is_valid(), "{late}");
        let never = check(vec![unknown(write(1, 1, 0, 10)), read(1, None, 20, 30), read(1, None, 500, 510)]);
        assert!(never.is_valid(), "{never}");
        // But it takes effect at most once, at one point: no flip back.
        let flip = check(vec![unknown(write(1, 1, 0, 10)), read(1, Some(1), 20, 30), read(1, None, 40, 50)]);
        assert!(!flip.is_valid(), "{flip}");
    }

    #[test]
    fn an_unknown_write_cannot_act_before_its_invocation() {
        let report = check(vec![read(1, Some(1), 0, 10), unknown(write(1, 1, 20, 30))]);
        assert!(!report.is_valid(), "{report}");
    }

    #[test]
    fn a_failed_write_must_not_take_effect() {
        let failed = e(1, Op::Write { key: 1, value: 1 }, 0, 10, Outcome::Failed("40001".into()));
        assert!(!check(vec![failed.clone(), read(1, Some(1), 20, 30)]).is_valid());
        assert!(check(vec![failed, read(1, None, 20, 30)]).is_valid());
    }

    #[test]
    fn compare_and_set_follows_the_register() {
        assert!(check_from(0, vec![cas(1, 0, 1, true, 0, 10), read(1, Some(1), 20, 30)]).is_valid());
        assert!(check_from(0, vec![cas(1, 5, 1, false, 0, 10), read(1, Some(0), 20, 30)]).is_valid());
        // Swapping from a value the register never held, or refusing to swap from the value it held.
        assert!(!check(vec![cas(1, 0, 1, true, 0, 10)]).is_valid());
        assert!(!check_from(0, vec![cas(1, 0, 1, false, 0, 10)]).is_valid());
        // An unknown compare-and-set swaps only if the value matched.
        assert!(check_from(0, vec![unknown(cas(1, 0, 1, true, 0, 10)), read(1, Some(1), 20, 30)]).is_valid());
        assert!(!check_from(0, vec![unknown(cas(1, 3, 1, true, 0, 10)), read(1, Some(1), 20, 30)]).is_valid());
    }

    #[test]
    fn keys_are_checked_independently() {
        let report =
            check(vec![write(1, 1, 0, 10), read(1, Some(1), 20, 30), write(2, 1, 0, 10), read(2, None, 20, 30)]);
        assert_eq!(report.keys[&1], KeyVerdict::Linearizable);
        assert_eq!(report.violations().map(|(k, _)| k).collect::<Vec<_>>(), vec![2]);
    }

    #[test]
    fn malformed_entries_fail_the_report() {
        let report = check(vec![e(1, Op::Read { key: 1 }, 0, 1, Outcome::Ok(Output::Done))]);
        assert!(!report.is_valid());
        assert_eq!(report.malformed.len(), 1);
    }

    #[test]
    fn an_exhausted_budget_is_undecided_not_a_pass() {
        let entries: Vec<Entry> = (0..12).map(|i| write(1, i, 0, 100)).chain([read(1, Some(99), 200, 300)]).collect();
        let config = LinearizabilityConfig { max_steps: 5, ..LinearizabilityConfig::default() };
        let report = check_registers(&History::new(entries), &config);
        assert_eq!(report.undecided(), vec![1]);
        assert!(!report.is_valid());
        assert!(report.to_string().contains("undecided after 5 search steps"), "{report}");
    }

    /// A random history of `clients` sequential clients on one register,
    /// built around known linearization points, so it is linearizable.
    /// `unknown_percent` of the ops time out (half of those take effect).
    fn random_history(seed: Seed, clients: u64, ops_per_client: u64, unknown_percent: u32) -> Vec<Entry> {
        let mut rng = seed.rng();
        // (linearization point, entry, takes effect)
        let mut planned: Vec<(u64, Entry, bool)> = Vec::new();
        for client in 0..clients {
            let mut t = rng.gen_range(0..20);
            for _ in 0..ops_per_client {
                let (invoke, complete) = (t, t + rng.gen_range(1..50));
                let point = rng.gen_range(invoke..=complete);
                let value = rng.gen_range(0..4);
                let op = match rng.gen_range(0..10) {
                    0..=3 => Op::Write { key: 1, value },
                    4..=5 => Op::Cas { key: 1, expect: value, new: rng.gen_range(0..4) },
                    _ => Op::Read { key: 1 },
                };
                let unknown = rng.gen_range(0..100) < unknown_percent;
                let takes_effect = !unknown || rng.gen_bool(0.5);
                let outcome = if unknown { Outcome::Unknown("timeout".into()) } else { Outcome::Ok(Output::Done) };
                planned.push((point, e(client, op, invoke, complete, outcome), takes_effect));
                t = complete + rng.gen_range(0..10);
            }
        }
        planned.sort_by_key(|(point, _, _)| *point);
        let mut state = None;
        let mut entries = Vec::new();
        for (_, mut entry, takes_effect) in planned {
            let output = match entry.op {
                Op::Write { value, .. } => {
                    if takes_effect {
                        state = Some(value);
                    }
                    Output::Done
                }
                Op::Cas { expect, new, .. } => {
                    let swapped = takes_effect && state == Some(expect);
                    if swapped {
                        state = Some(new);
                    }
                    Output::Cas(swapped)
                }
                _ => Output::Read(state),
            };
            if entry.outcome.is_ok() {
                entry.outcome = Outcome::Ok(output);
            }
            entries.push(entry);
        }
        entries
    }

    /// Random histories shaped like the register workload's (a few clients
    /// per key, a few timeouts) pass; corrupting one read makes them fail,
    /// with that read as the whole witness.
    #[test]
    fn random_linearizable_histories_pass_and_corrupted_ones_fail() {
        for round in 0..20 {
            let mut entries = random_history(Seed::new(0xC0FFEE).derive(round), 4, 50, 3);
            let report = check(entries.clone());
            assert!(report.is_valid(), "round {round}: {report}");

            // A read of a value nobody ever wrote cannot be linearized anywhere.
            let reads: Vec<usize> = (0..entries.len()).filter(|&i| matches!(entries[i].op, Op::Read { .. })).collect();
            let victim = reads[Seed::new(round).rng().gen_range(0..reads.len())];
            entries[victim].outcome = Outcome::Ok(Output::Read(Some(-1)));
            let report = check(entries.clone());
            assert_eq!(only_witness(&report).ops, vec![entries[victim].clone()], "round {round}: {report}");
        }
    }
}
