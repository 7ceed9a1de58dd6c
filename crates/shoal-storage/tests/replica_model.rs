//! A randomized model check of the leader side of [`Replica`]: the
//! transactions, pipelined pairs, aborts, refusals, truncations and crashes
//! a leader's writer goes through, against a follower that only replays.
//!
//! The model drives one leader replica the way `shoal-raft`'s batcher and
//! interactive transactions do (begin, execute, propose, pipeline a second
//! batch, abandon a proposal Raft refused or discarded), while a model of
//! Raft decides what the log holds: it appends or refuses each proposal,
//! lets another leader take over (truncating this leader's uncommitted
//! entries and appending its own), appends entries without effects (blank
//! and checksum entries), commits, and applies in log order. The leader may
//! crash at any point and reopen from its file. The leader runs its writes
//! whenever the model lets it, even with committed entries still to apply:
//! the replica must stay right without the group's term barrier.
//!
//! Invariants, checked after every step:
//! * what a reader of the leader's file sees is what a follower holds after
//!   replaying the log up to the leader's visible index;
//! * a proposal the leader committed from its own transaction reported
//!   the outputs the follower's replay of its entry produced.
//!
//! Seeded: the seed is printed and `SHOAL_SEED` replays a run;
//! `SHOAL_MODEL_RUNS` sets how many seeds one run tries (default 100).

use std::collections::{HashMap, VecDeque};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use shoal_common::{ExecContext, SqlState, Value};
use shoal_storage::{
    content_checksum, open_connection, Applied, AppliedState, Command, ProposalId, RecordedStmt, Replica, TxnRecord,
};

/// Steps per seed.
const STEPS: usize = 400;
/// Keys of table `t`: few, so statements collide.
const KEYS: i64 = 6;

fn applied(index: u64) -> AppliedState {
    AppliedState { index, meta: None }
}

/// A log entry as the model's Raft holds it.
#[derive(Clone, Debug)]
enum Entry {
    /// Blank, membership or checksum: no effects.
    Empty,
    Normal(Command),
}

/// Statements that never fail, whatever state they run on, so an entry
/// executed on a state the log did not lead to still replays (a statement
/// that can fail is undone before it is proposed, as the batcher does).
fn statement(rng: &mut StdRng) -> (String, Vec<Value>) {
    let key = Value::Integer(rng.gen_range(1..=KEYS));
    let n = Value::Integer(rng.gen_range(1..=9));
    match rng.gen_range(0..4) {
        0 => {
            ("INSERT INTO t (id, v) VALUES (?1, ?2) ON CONFLICT (id) DO UPDATE SET v = excluded.v".into(), vec![key, n])
        }
        1 => ("UPDATE t SET v = v * 2 + ?2 WHERE id = ?1".into(), vec![key, n]),
        2 => ("DELETE FROM t WHERE id = ?1".into(), vec![key]),
        _ => ("UPDATE t SET v = (SELECT coalesce(sum(v), 0) FROM t) WHERE id = ?1".into(), vec![key]),
    }
}

fn ctx(rng: &mut StdRng) -> ExecContext {
    ExecContext { timestamp_micros: 1_700_000_000_000_000, seed: rng.gen() }
}

/// What happened to a proposal after it went to Raft.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fate {
    /// In the log at this index (1-based).
    Appended(usize),
    /// Refused before it was appended, or cut off by another leader.
    Failed,
}

/// A transaction this leader executed and has not proposed yet.
struct Unsubmitted {
    proposal: ProposalId,
    command: Command,
    /// Each transaction's last statement's `changes`, as executed here.
    outputs: Vec<u64>,
}

struct Model {
    rng: StdRng,
    dir: tempfile::TempDir,
    leader: Replica,
    follower: Replica,
    /// Entries of the follower's log it has applied.
    follower_applied: usize,
    log: Vec<Entry>,
    committed: usize,
    /// Entries the leader has applied (its Raft applied index).
    leader_applied: usize,
    /// Proposals in their Raft round, oldest first (at most two).
    in_flight: VecDeque<(ProposalId, Fate)>,
    unsubmitted: Option<Unsubmitted>,
    /// An interactive transaction's statements so far.
    interactive: Option<(ExecContext, Vec<RecordedStmt>, Vec<u64>)>,
    /// Outputs reported for proposals the leader committed from its transaction.
    reported: HashMap<ProposalId, Vec<u64>>,
    /// Outputs as executed, by proposal, until the entry applies.
    executed: HashMap<ProposalId, Vec<u64>>,
    boot: u64,
    next_seq: u64,
}

impl Model {
    fn new(seed: u64) -> Model {
        let dir = tempfile::tempdir().unwrap();
        let mut leader = Replica::open(&dir.path().join("leader.db")).unwrap();
        let mut follower = Replica::open(&dir.path().join("follower.db")).unwrap();
        let ddl = Command {
            proposal: None,
            txns: vec![TxnRecord {
                stmts: vec![RecordedStmt {
                    seq: 0,
                    sql: "CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)".into(),
                    params: vec![],
                    failed: false,
                }],
                ..Default::default()
            }],
            checksum: false,
        };
        leader.apply(&ddl, applied(1)).unwrap();
        follower.apply(&ddl, applied(1)).unwrap();
        Model {
            rng: StdRng::seed_from_u64(seed),
            dir,
            leader,
            follower,
            follower_applied: 1,
            log: vec![Entry::Normal(ddl)],
            committed: 1,
            leader_applied: 1,
            in_flight: VecDeque::new(),
            unsubmitted: None,
            interactive: None,
            reported: HashMap::new(),
            executed: HashMap::new(),
            boot: 1,
            next_seq: 1,
        }
    }

    fn proposal(&mut self) -> ProposalId {
        self.next_seq += 1;
        ProposalId { node: 1, boot: self.boot, seq: self.next_seq }
    }

    /// Executes a batch of statements on the open transaction, as the
    /// batcher does: one transaction per statement.
    fn execute_batch(&mut self, proposal: ProposalId) {
        let mut txns = Vec::new();
        let mut outputs = Vec::new();
        for _ in 0..self.rng.gen_range(1..=3) {
            let ctx = ctx(&mut self.rng);
            let (sql, params) = statement(&mut self.rng);
            let output = self.leader.execute(&ctx, 0, &sql, &params).unwrap();
            outputs.push(output.changes);
            txns.push(TxnRecord {
                ctx,
                stmts: vec![RecordedStmt { seq: 0, sql, params, failed: false }],
                ..Default::default()
            });
        }
        let command = Command { proposal: Some(proposal), txns, checksum: false };
        self.unsubmitted = Some(Unsubmitted { proposal, command, outputs });
    }

    fn step(&mut self) -> String {
        let choice = self.rng.gen_range(0..100);
        match choice {
            // A batch starts a transaction (nothing in flight: the batcher
            // waits for a pipeline to settle before it starts the next).
            0..=11 if !self.busy() && self.in_flight.is_empty() && !self.leader.in_txn() => {
                let proposal = self.proposal();
                self.leader.begin().unwrap();
                self.leader.push_pending(proposal).unwrap();
                self.execute_batch(proposal);
                format!("batch {proposal:?}")
            }
            // A second batch joins the open transaction.
            12..=21 if !self.busy() && self.in_flight.len() == 1 && self.leader.can_begin_next() => {
                let proposal = self.proposal();
                assert!(self.leader.begin_next(proposal).unwrap());
                self.execute_batch(proposal);
                format!("pipelined batch {proposal:?}")
            }
            // An interactive transaction begins (it needs the write slot).
            22..=26 if !self.busy() && self.in_flight.is_empty() && !self.leader.in_txn() => {
                self.leader.begin().unwrap();
                self.interactive = Some((ctx(&mut self.rng), Vec::new(), Vec::new()));
                "interactive begin".into()
            }
            // One of its statements.
            27..=33 if self.interactive.is_some() => {
                let (sql, params) = statement(&mut self.rng);
                let (ctx, stmts, outputs) = self.interactive.as_mut().unwrap();
                let seq = stmts.len() as u32;
                match self.leader.execute(ctx, seq, &sql, &params) {
                    Ok(output) => {
                        stmts.push(RecordedStmt { seq, sql, params, failed: false });
                        outputs.push(output.changes);
                        "interactive statement".into()
                    }
                    Err(e) => {
                        assert_eq!(e.code, SqlState::SERIALIZATION_FAILURE, "{e}");
                        self.interactive = None;
                        self.leader.rollback().unwrap();
                        "interactive statement refused: aborted".into()
                    }
                }
            }
            // Its COMMIT.
            34..=37 if self.interactive.is_some() => {
                let (ctx, stmts, outputs) = self.interactive.take().unwrap();
                if stmts.is_empty() {
                    self.leader.rollback().unwrap();
                    return "interactive commit of nothing".into();
                }
                let proposal = self.proposal();
                match self.leader.push_pending(proposal) {
                    Ok(()) => {
                        let last = outputs.last().copied().unwrap_or(0);
                        let txn = TxnRecord { ctx, stmts, ..Default::default() };
                        let command = Command { proposal: Some(proposal), txns: vec![txn], checksum: false };
                        self.unsubmitted = Some(Unsubmitted { proposal, command, outputs: vec![last] });
                        format!("interactive commit {proposal:?}")
                    }
                    Err(e) => {
                        assert_eq!(e.code, SqlState::SERIALIZATION_FAILURE, "{e}");
                        "interactive commit refused: aborted".into()
                    }
                }
            }
            // Raft takes the executed transaction, or refuses it.
            38..=49 if self.unsubmitted.is_some() => {
                let Unsubmitted { proposal, command, outputs } = self.unsubmitted.take().unwrap();
                if self.rng.gen_bool(0.85) {
                    self.log.push(Entry::Normal(command));
                    self.executed.insert(proposal, outputs);
                    self.in_flight.push_back((proposal, Fate::Appended(self.log.len())));
                    format!("appended {proposal:?} at {}", self.log.len())
                } else {
                    self.in_flight.push_back((proposal, Fate::Failed));
                    format!("refused {proposal:?}")
                }
            }
            // Another leader: this one's uncommitted entries may be cut off,
            // and the new leader's entries follow.
            50..=55 => {
                let cut = self.rng.gen_bool(0.5);
                if cut {
                    self.log.truncate(self.committed);
                    for (_, fate) in self.in_flight.iter_mut() {
                        if matches!(fate, Fate::Appended(i) if *i > self.committed) {
                            *fate = Fate::Failed;
                        }
                    }
                }
                for _ in 0..self.rng.gen_range(1..=2) {
                    let txn = TxnRecord {
                        ctx: ctx(&mut self.rng),
                        stmts: {
                            let (sql, params) = statement(&mut self.rng);
                            vec![RecordedStmt { seq: 0, sql, params, failed: false }]
                        },
                        ..Default::default()
                    };
                    let foreign = ProposalId { node: 2, boot: 9, seq: self.rng.gen() };
                    self.log.push(Entry::Normal(Command { proposal: Some(foreign), txns: vec![txn], checksum: false }));
                }
                format!("foreign entries (cut: {cut}), log {}", self.log.len())
            }
            56..=60 => {
                self.log.push(Entry::Empty);
                "empty entry".into()
            }
            61..=72 if self.committed < self.log.len() => {
                self.committed = (self.committed + self.rng.gen_range(1..=3)).min(self.log.len());
                format!("committed {}", self.committed)
            }
            73..=88 if self.leader_applied < self.committed => {
                let index = self.leader_applied + 1;
                let entry = self.log[index - 1].clone();
                let how = match &entry {
                    Entry::Empty => {
                        self.leader.apply_empty(applied(index as u64)).unwrap();
                        "empty".to_string()
                    }
                    Entry::Normal(command) => {
                        let outcome = self.leader.apply(command, applied(index as u64)).unwrap();
                        if let Some(proposal) = command.proposal {
                            if let Some(executed) = self.executed.remove(&proposal) {
                                let reported = match &outcome {
                                    Applied::Local => executed,
                                    Applied::Replayed(outputs) => outputs.iter().map(|o| o.changes).collect(),
                                };
                                self.reported.insert(proposal, reported);
                            }
                        }
                        format!("{outcome:?}")
                    }
                };
                self.leader_applied = index;
                format!("leader applied {index}: {how}")
            }
            // The batcher settles the oldest proposal in flight.
            89..=94 if !self.in_flight.is_empty() => {
                let (proposal, fate) = self.in_flight[0];
                match fate {
                    Fate::Appended(index) if index <= self.leader_applied => {
                        self.in_flight.pop_front();
                        format!("settled {proposal:?}")
                    }
                    Fate::Appended(_) => "settle: still in its round".into(),
                    Fate::Failed => {
                        self.in_flight.pop_front();
                        self.executed.remove(&proposal);
                        self.leader.abandon(proposal).unwrap();
                        format!("abandoned {proposal:?}")
                    }
                }
            }
            // The process dies; it reopens with a new boot and replays.
            95 => {
                // Closed first, as a dead process's connection is: its open
                // transaction goes with it, and with it the write lock.
                let stand_in = Replica::open(&self.dir.path().join("stand-in.db")).unwrap();
                drop(std::mem::replace(&mut self.leader, stand_in));
                self.leader = Replica::open(&self.dir.path().join("leader.db")).unwrap();
                self.leader_applied = self.leader.applied().index as usize;
                self.in_flight.clear();
                self.unsubmitted = None;
                self.interactive = None;
                self.executed.clear();
                self.boot += 1;
                format!("crash: reopened at {}", self.leader_applied)
            }
            _ => "nothing".into(),
        }
    }

    /// A transaction is executed but not yet handed to Raft, or open.
    fn busy(&self) -> bool {
        self.unsubmitted.is_some() || self.interactive.is_some()
    }

    /// Checks both invariants.
    fn check(&mut self, seed: u64, history: &[String]) {
        let visible = self.leader.visible_index() as usize;
        while self.follower_applied < visible {
            let index = self.follower_applied + 1;
            match &self.log[index - 1] {
                Entry::Empty => self.follower.apply_empty(applied(index as u64)).unwrap(),
                Entry::Normal(command) => {
                    let outcome = self.follower.apply(command, applied(index as u64)).unwrap();
                    let Applied::Replayed(outputs) = outcome else { panic!("a follower only replays") };
                    if let Some(reported) = command.proposal.and_then(|p| self.reported.remove(&p)) {
                        let replayed: Vec<u64> = outputs.iter().map(|o| o.changes).collect();
                        assert_eq!(
                            reported,
                            replayed,
                            "seed {seed}: entry {index} reported outputs its replay did not produce; steps:\n{}",
                            history.join("\n")
                        );
                    }
                }
            }
            self.follower_applied = index;
        }
        // After a crash the leader's visible index may fall behind the
        // follower's, by entries without effects only.
        if (visible..self.follower_applied).any(|i| matches!(self.log[i], Entry::Normal(_))) {
            panic!("seed {seed}: the leader's visible index {visible} went back past an entry with effects");
        }
        let reader = open_connection(&self.dir.path().join("leader.db"), true).unwrap();
        let leader_sum = content_checksum(&reader).unwrap();
        let follower_sum = self.follower.checksum().unwrap();
        assert_eq!(
            leader_sum,
            follower_sum,
            "seed {seed}: the leader's visible content at index {visible} is not the log's; steps:\n{}",
            history.join("\n")
        );
    }
}

fn run(seed: u64) {
    let mut model = Model::new(seed);
    let mut history = Vec::new();
    for _ in 0..STEPS {
        let step = model.step();
        history.push(step);
        model.check(seed, &history);
    }
}

#[test]
fn the_leader_commits_exactly_what_the_log_replays() {
    if let Some(seed) = std::env::var("SHOAL_SEED").ok().and_then(|s| s.parse().ok()) {
        println!("SHOAL_SEED={seed}");
        run(seed);
        return;
    }
    let runs = std::env::var("SHOAL_MODEL_RUNS").ok().and_then(|s| s.parse().ok()).unwrap_or(100);
    let first: u64 = rand::random();
    println!("seeds SHOAL_SEED={first} and the {} after it", runs - 1);
    for i in 0..runs {
        run(first.wrapping_add(i));
    }
}
