//! Replica behaviour: deterministic replay, leader-side commit, the applied
//! index living in the same transaction as the effects, snapshots.

use shoal_common::{ExecContext, SqlState, Value};
use shoal_storage::{Applied, AppliedState, Command, ProposalId, RecordedStmt, Replica, TxnRecord};

fn stmt(seq: u32, sql: &str, params: Vec<Value>) -> RecordedStmt {
    RecordedStmt { seq, sql: sql.to_string(), params, failed: false }
}

fn applied(index: u64) -> AppliedState {
    AppliedState { index, meta: Some(format!("{{\"index\":{index}}}")) }
}

/// A log whose statements use every non-deterministic source SQLite and
/// PostgreSQL offer, including a column DEFAULT a text rewrite could not see.
fn nondeterministic_log(seed: u64) -> Vec<Command> {
    let ctx = |n: i64| ExecContext { timestamp_micros: 1_700_000_000_000_000 + n * 1_234_567, seed: seed + n as u64 };
    let ddl = TxnRecord {
        ctx: ctx(0),
        stmts: vec![stmt(
            0,
            "CREATE TABLE t (id INTEGER PRIMARY KEY, created TEXT DEFAULT CURRENT_TIMESTAMP, d TEXT DEFAULT CURRENT_DATE, \
             tm TEXT DEFAULT CURRENT_TIME, r INTEGER, rb BLOB, now1 TEXT, jd REAL, epoch TEXT, u TEXT, pr REAL, pnow TEXT)",
            vec![],
        )],
        ..Default::default()
    };
    let mut commands = vec![Command { proposal: None, txns: vec![ddl], checksum: false }];
    for i in 1..=5 {
        let txn = TxnRecord {
            ctx: ctx(i),
            stmts: vec![
                stmt(
                    0,
                    "INSERT INTO t (id, r, rb, now1, jd, epoch, u, pr, pnow) VALUES (?1, random(), randomblob(16), \
                     datetime('now'), julianday('now'), strftime('%s','now'), gen_random_uuid(), shoal_random(), shoal_now())",
                    vec![Value::Integer(i)],
                ),
                // Statement 1 was a read on the leader and is not recorded; statement 2 still draws its own numbers.
                stmt(2, "UPDATE t SET r = r + random() % 1000, now1 = date('now') || time('now') WHERE id = ?1", vec![Value::Integer(i)]),
            ],
            ..Default::default()
        };
        commands.push(Command { proposal: None, txns: vec![txn], checksum: false });
    }
    commands
}

fn replay_into(dir: &std::path::Path, name: &str, log: &[Command]) -> Replica {
    let mut replica = Replica::open(&dir.join(name)).unwrap();
    for (i, command) in log.iter().enumerate() {
        assert!(matches!(replica.apply(command, applied(i as u64 + 1)).unwrap(), Applied::Replayed(_)));
    }
    replica
}

#[test]
fn same_log_gives_identical_content_on_two_replicas() {
    let dir = tempfile::tempdir().unwrap();
    let log = nondeterministic_log(7);
    let a = replay_into(dir.path(), "a.db", &log);
    let b = replay_into(dir.path(), "b.db", &log);
    assert_eq!(a.checksum().unwrap(), b.checksum().unwrap());
    assert_eq!(a.applied().index, 6);

    // The check can fail: a different seed gives different content.
    let c = replay_into(dir.path(), "c.db", &nondeterministic_log(8));
    assert_ne!(a.checksum().unwrap(), c.checksum().unwrap());

    // And the pinned time really is the entry's time, not the wall clock.
    let conn = rusqlite::Connection::open(dir.path().join("a.db")).unwrap();
    let created: String = conn.query_row("SELECT created FROM t WHERE id = 1", [], |r| r.get(0)).unwrap();
    assert_eq!(created, "2023-11-14 22:13:21");
}

#[test]
fn leader_commit_matches_replay() {
    let dir = tempfile::tempdir().unwrap();
    let log = nondeterministic_log(11);
    let follower = replay_into(dir.path(), "follower.db", &log);

    // The leader executes interactively, then commits its open transaction
    // when the entry carrying its proposal id is applied.
    let mut leader = Replica::open(&dir.path().join("leader.db")).unwrap();
    for (i, command) in log.iter().enumerate() {
        let proposal = ProposalId { node: 1, boot: 99, seq: i as u64 };
        leader.begin().unwrap();
        for txn in &command.txns {
            for s in &txn.stmts {
                leader.execute(&txn.ctx, s.seq, &s.sql, &s.params).unwrap();
            }
        }
        leader.push_pending(proposal).unwrap();
        let mut entry = command.clone();
        entry.proposal = Some(proposal);
        assert!(
            matches!(leader.apply(&entry, applied(i as u64 + 1)).unwrap(), Applied::Local),
            "leader must commit, not replay"
        );
    }
    assert_eq!(leader.checksum().unwrap(), follower.checksum().unwrap());
}

#[test]
fn applied_index_commits_atomically_with_effects() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    let log = nondeterministic_log(3);
    {
        let mut r = Replica::open(&path).unwrap();
        r.apply(&log[0], applied(1)).unwrap();
        // An executed but never committed leader transaction (the process dies
        // before its entry commits) leaves neither rows nor a new index.
        r.begin().unwrap();
        let t = &log[1].txns[0];
        r.execute(&t.ctx, 0, &t.stmts[0].sql, &t.stmts[0].params).unwrap();
    }
    let mut r = Replica::open(&path).unwrap();
    assert_eq!(r.applied().index, 1);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let rows: i64 = conn.query_row("SELECT count(*) FROM t", [], |row| row.get(0)).unwrap();
    assert_eq!(rows, 0);
    // Replaying from the stored index completes the log exactly once.
    for (i, command) in log.iter().enumerate().skip(1) {
        r.apply(command, applied(i as u64 + 1)).unwrap();
    }
    let rows: i64 = conn.query_row("SELECT count(*) FROM t", [], |row| row.get(0)).unwrap();
    assert_eq!(rows, 5);
}

#[test]
fn failed_statements_replay_as_failures_and_divergence_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = Replica::open(&dir.path().join("r.db")).unwrap();
    let ctx = ExecContext::default();
    let setup =
        TxnRecord { ctx, stmts: vec![stmt(0, "CREATE TABLE u (k INTEGER PRIMARY KEY)", vec![])], ..Default::default() };
    r.apply(&Command { proposal: None, txns: vec![setup], checksum: false }, applied(1)).unwrap();
    let mut dup = stmt(3, "INSERT INTO u VALUES (1)", vec![]);
    dup.failed = true;
    let txn = TxnRecord {
        ctx,
        stmts: vec![
            stmt(0, "INSERT INTO u VALUES (1)", vec![]),
            stmt(1, "SAVEPOINT s", vec![]),
            dup,
            stmt(4, "ROLLBACK TO s", vec![]),
        ],
        ..Default::default()
    };
    r.apply(&Command { proposal: None, txns: vec![txn], checksum: false }, applied(2)).unwrap();
    assert_eq!(r.applied().index, 2);

    // A statement recorded as succeeded that fails here is divergence: a
    // non-deterministic error, and nothing of the entry is applied.
    let bad = TxnRecord { ctx, stmts: vec![stmt(0, "INSERT INTO u VALUES (1)", vec![])], ..Default::default() };
    let err = r.apply(&Command { proposal: None, txns: vec![bad], checksum: false }, applied(3)).unwrap_err();
    assert!(!err.is_deterministic(), "{err}");
    assert_eq!(r.applied().index, 2);
}

/// A batch entry: single-statement transactions, one of which failed on the
/// leader after inserting rows. Replay runs those without a savepoint of
/// their own, so this checks SQLite's statement rollback leaves nothing of
/// the failed one behind.
#[test]
fn a_statement_that_failed_midway_in_a_batch_replays_without_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = ExecContext::default();
    let single = |sql: &str, failed: bool| TxnRecord {
        ctx,
        stmts: vec![RecordedStmt { failed, ..stmt(0, sql, vec![]) }],
        ..Default::default()
    };
    let log = vec![
        Command {
            proposal: None,
            txns: vec![single("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)", false)],
            checksum: false,
        },
        Command {
            proposal: None,
            txns: vec![
                single("INSERT INTO t (v) VALUES ('b')", false),
                // Three rows go in before 'b' collides: the statement fails as a whole.
                single("INSERT INTO t (v) SELECT 'x' || value FROM generate_series(1, 3) UNION ALL SELECT 'b'", true),
                single("INSERT INTO t (v) VALUES ('c')", false),
            ],
            checksum: false,
        },
    ];
    let replica = replay_into(dir.path(), "r.db", &log);
    assert_eq!(replica.applied().index, 2);
    let conn = rusqlite::Connection::open(dir.path().join("r.db")).unwrap();
    let values: Vec<String> = conn
        .prepare("SELECT v FROM t ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(values, ["b", "c"]);
}

/// A change to one table changes that table's checksum and the total, and
/// no other table's; the total is what `content_checksum` reports.
#[test]
fn per_table_checksums_say_which_table_changed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    let mut r = Replica::open(&path).unwrap();
    let ddl = TxnRecord {
        stmts: vec![
            stmt(0, "CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT)", vec![]),
            stmt(1, "CREATE TABLE b (id INTEGER PRIMARY KEY, v TEXT)", vec![]),
            stmt(2, "INSERT INTO a VALUES (1, 'x')", vec![]),
            stmt(3, "INSERT INTO b VALUES (1, 'x')", vec![]),
        ],
        ..Default::default()
    };
    r.apply(&Command { proposal: None, txns: vec![ddl], checksum: false }, applied(1)).unwrap();
    let reader = shoal_storage::open_connection(&path, true).unwrap();
    let before = shoal_storage::content_digest(&reader).unwrap();
    assert_eq!(before.total, shoal_storage::content_checksum(&reader).unwrap());
    let update = TxnRecord { stmts: vec![stmt(0, "UPDATE b SET v = 'y'", vec![])], ..Default::default() };
    r.apply(&Command { proposal: None, txns: vec![update], checksum: false }, applied(2)).unwrap();
    let after = shoal_storage::content_digest(&reader).unwrap();
    let changed: Vec<&str> = before
        .tables
        .iter()
        .zip(&after.tables)
        .filter(|(old, new)| old != new)
        .map(|(old, _)| old.0.as_str())
        .collect();
    assert_eq!(changed, vec!["b"]);
    assert_ne!(before.total, after.total);
}

#[test]
fn snapshot_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let log = nondeterministic_log(5);
    let source = replay_into(dir.path(), "src.db", &log);
    let snap = dir.path().join("snap.db");
    let state = shoal_storage::snapshot_file(source.path(), &snap).unwrap();
    assert_eq!(state.index, 6);
    let mut target = Replica::open(&dir.path().join("dst.db")).unwrap();
    let installed = target.install_snapshot(&snap).unwrap();
    assert_eq!(installed.index, 6);
    assert_eq!(target.checksum().unwrap(), source.checksum().unwrap());

    // A garbage snapshot is refused and the replica keeps its data.
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, b"definitely not a database").unwrap();
    assert!(target.install_snapshot(&junk).is_err());
    assert_eq!(target.checksum().unwrap(), source.checksum().unwrap());
}

/// Exact numerics computed while applying a log (division, power, sums, a
/// collated unique index) come out digit for digit the same on two replicas.
#[test]
fn numeric_arithmetic_replays_identically() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = ExecContext { timestamp_micros: 1_700_000_000_000_000, seed: 1 };
    let txn = TxnRecord {
        ctx,
        stmts: vec![
            stmt(0, "CREATE TABLE n (id INTEGER PRIMARY KEY, v TEXT COLLATE pg_numeric UNIQUE, s TEXT COLLATE pg_numeric)", vec![]),
            stmt(
                1,
                "INSERT INTO n (id, v) SELECT value, pg_num_typmod(pg_num_div(value * 7919, 3), 30, 10) FROM generate_series(1, 200)",
                vec![],
            ),
            stmt(2, "UPDATE n SET s = pg_num_power(v, 3) WHERE id % 7 = 0", vec![]),
            stmt(3, "INSERT INTO n (id, v, s) SELECT 1000, pg_num_sum(v), pg_num_avg(s) FROM n", vec![]),
        ],
        ..Default::default()
    };
    let log = vec![Command { proposal: None, txns: vec![txn], checksum: false }];
    let a = replay_into(dir.path(), "a.db", &log);
    let b = replay_into(dir.path(), "b.db", &log);
    assert_eq!(a.checksum().unwrap(), b.checksum().unwrap());
    drop(a);
    let conn = shoal_storage::replica::open_connection(&dir.path().join("a.db"), true).unwrap();
    let (v, s): (String, String) =
        conn.query_row("SELECT v, s FROM n WHERE id = 1000", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    // Σ 7919·k/3 for k = 1..200, each rounded to 10 places, summed exactly.
    assert_eq!(v, "53057300.0000000000");
    assert!(s.contains('.') && !s.contains('e'), "{s}");
}

/// A leader's transactions drawing from a sequence (as the SQL layer emits
/// them: a SERIAL default, `nextval` in a SELECT, `setval`, a failed
/// statement whose draw is restored), executed interactively.
fn sequence_log(leader: &mut Replica) -> (Vec<Command>, Vec<i64>) {
    let ctx = ExecContext { timestamp_micros: 1_700_000_000_000_000, seed: 5 };
    let mut drawn = Vec::new();
    let mut commands = Vec::new();
    let txns: Vec<Vec<(&str, Vec<Value>)>> = vec![
        vec![
            ("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)", vec![]),
            (
                "INSERT INTO __shoal_sequences (oid, name, increment, min_value, max_value, cycle, last_value, is_called) \
                 VALUES (16385, 't_id_seq', 3, 1, 20, 1, 1, 0)",
                vec![],
            ),
        ],
        vec![("INSERT INTO t (id, v) VALUES (shoal_nextval(16385), ?1) RETURNING id", vec![Value::Text("a".into())])],
        vec![
            ("INSERT INTO t (id, v) SELECT shoal_nextval(16385), 'r' || value FROM generate_series(1, 4) RETURNING id", vec![]),
            // Fails on the unique v after drawing; the draw is restored.
            ("INSERT INTO t (id, v) VALUES (shoal_nextval('t_id_seq'), 'a') RETURNING id", vec![]),
        ],
        vec![("SELECT shoal_setval(16385, 18, 1)", vec![]), ("SELECT shoal_nextval(16385), shoal_nextval(16385)", vec![])],
    ];
    for (i, stmts) in txns.into_iter().enumerate() {
        let proposal = ProposalId { node: 1, boot: 7, seq: i as u64 };
        leader.begin().unwrap();
        let mut recorded = Vec::new();
        for (seq, (sql, params)) in stmts.into_iter().enumerate() {
            let seq = seq as u32 * 10;
            match leader.execute(&ctx, seq, sql, &params) {
                Ok(out) => {
                    drawn.extend(out.rows.iter().flatten().filter_map(|v| match v {
                        Value::Integer(n) => Some(*n),
                        _ => None,
                    }));
                    recorded.push(stmt(seq, sql, params));
                }
                Err(e) => {
                    assert!(e.is_deterministic(), "{e}");
                    recorded.push(RecordedStmt { failed: true, ..stmt(seq, sql, params) });
                    let draws = leader.take_failed_draws();
                    assert_eq!(draws.len(), 1, "the failed statement drew once");
                    for (k, (sql, params)) in
                        shoal_storage::sequences::restore_statements(&draws).into_iter().enumerate()
                    {
                        let seq = seq + 1 + k as u32;
                        leader.execute(&ctx, seq, &sql, &params).unwrap();
                        recorded.push(RecordedStmt { seq, sql, params, failed: false });
                    }
                }
            }
        }
        leader.push_pending(proposal).unwrap();
        let command = Command {
            proposal: Some(proposal),
            txns: vec![TxnRecord { ctx, stmts: recorded, ..Default::default() }],
            checksum: false,
        };
        assert!(matches!(leader.apply(&command, applied(i as u64 + 1)).unwrap(), Applied::Local));
        commands.push(command);
    }
    (commands, drawn)
}

#[test]
fn sequences_replay_to_the_same_values_and_content() {
    let dir = tempfile::tempdir().unwrap();
    let mut leader = Replica::open(&dir.path().join("leader.db")).unwrap();
    let (log, drawn) = sequence_log(&mut leader);
    // 1, 4, 7, 10, 13 (16, drawn by the failed insert, stays consumed), then setval 18: 21 wraps to 1.
    assert_eq!(drawn, vec![1, 4, 7, 10, 13, 18, 1, 4]);
    let follower = replay_into(dir.path(), "follower.db", &log);
    assert_eq!(follower.checksum().unwrap(), leader.checksum().unwrap());
    let conn = rusqlite::Connection::open(dir.path().join("follower.db")).unwrap();
    let ids: Vec<i64> = conn
        .prepare("SELECT id FROM t ORDER BY rowid")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(ids, vec![1, 4, 7, 10, 13]);
    let state: (i64, i64) = conn
        .query_row("SELECT last_value, is_called FROM __shoal_sequences", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap();
    assert_eq!(state, (4, 1));

    // After a crash, the leader replays its log from scratch to the same state.
    drop(leader);
    std::fs::remove_file(dir.path().join("leader.db")).unwrap();
    let _ = std::fs::remove_file(dir.path().join("leader.db-wal"));
    let recovered = replay_into(dir.path(), "leader.db", &log);
    assert_eq!(recovered.checksum().unwrap(), follower.checksum().unwrap());

    // The check can fail: without the restore, the sequence state differs.
    let good = replay_into(dir.path(), "good.db", &log[..3]);
    let mut bad = log[..3].to_vec();
    bad[2].txns[0].stmts.retain(|s| !s.sql.starts_with("UPDATE __shoal_sequences"));
    let other = replay_into(dir.path(), "other.db", &bad);
    assert_ne!(other.checksum().unwrap(), good.checksum().unwrap());
}

/// Micro-check of the insert path (run with `--release -- --ignored --nocapture`):
/// 10,000 single-row inserts in one transaction, ids from SQLite's
/// AUTOINCREMENT (how SERIAL worked before sequences) against ids from
/// `shoal_nextval` (how it works now).
#[test]
#[ignore]
fn serial_insert_cost() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = Replica::open(&dir.path().join("r.db")).unwrap();
    let ctx = ExecContext::default();
    r.begin().unwrap();
    for sql in [
        "CREATE TABLE auto (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT)",
        "CREATE TABLE seq (id INTEGER NOT NULL, v TEXT, PRIMARY KEY (id))",
        "INSERT INTO __shoal_sequences VALUES (16385, 'seq_id_seq', 1, 1, 9223372036854775807, 0, 1, 0)",
    ] {
        r.execute(&ctx, 0, sql, &[]).unwrap();
    }
    for (name, sql) in [
        ("autoincrement", "INSERT INTO auto (v) VALUES (?1)"),
        ("nextval", "INSERT INTO seq (v, id) VALUES (?1, shoal_nextval(16385))"),
    ] {
        let started = std::time::Instant::now();
        for i in 0..10_000 {
            r.execute(&ctx, 0, sql, &[Value::Text(format!("row {i}"))]).unwrap();
        }
        println!("{name}: 10000 inserts in {:?}", started.elapsed());
    }
    r.rollback().unwrap();
}

/// Two proposals in one leader transaction (the batcher's pipeline): the
/// first's effects wait for the second's commit, and every way the second
/// can end leaves exactly the committed entries' effects.
mod pipelined {
    use super::*;

    fn proposal(seq: u64) -> ProposalId {
        ProposalId { node: 1, boot: 7, seq }
    }

    fn insert(id: i64) -> Command {
        let ctx = ExecContext { timestamp_micros: 1_700_000_000_000_000 + id, seed: id as u64 };
        let txn = TxnRecord {
            ctx,
            stmts: vec![stmt(0, "INSERT INTO t (id) VALUES (?1)", vec![Value::Integer(id)])],
            ..Default::default()
        };
        Command { proposal: None, txns: vec![txn], checksum: false }
    }

    /// Entry 1: creates table `t`.
    fn leader_ddl() -> Command {
        let ddl =
            TxnRecord { stmts: vec![stmt(0, "CREATE TABLE t (id INTEGER PRIMARY KEY)", vec![])], ..Default::default() };
        Command { proposal: None, txns: vec![ddl], checksum: false }
    }

    /// A replica with table `t` at applied index 1, and a reader of its file.
    fn leader(dir: &std::path::Path) -> (Replica, rusqlite::Connection) {
        let mut replica = Replica::open(&dir.join("leader.db")).unwrap();
        replica.apply(&leader_ddl(), applied(1)).unwrap();
        let reader = rusqlite::Connection::open(dir.join("leader.db")).unwrap();
        (replica, reader)
    }

    fn execute(replica: &mut Replica, command: &Command) {
        for txn in &command.txns {
            for s in &txn.stmts {
                replica.execute(&txn.ctx, s.seq, &s.sql, &s.params).unwrap();
            }
        }
    }

    fn ids(reader: &rusqlite::Connection) -> Vec<i64> {
        let mut stmt = reader.prepare("SELECT id FROM t ORDER BY id").unwrap();
        stmt.query_map([], |r| r.get(0)).unwrap().map(|r| r.unwrap()).collect()
    }

    /// Starts the pair: entry 2 inserts 10, entry 3 inserts 20.
    fn pair(replica: &mut Replica) -> (Command, Command) {
        let (mut first, mut second) = (insert(10), insert(20));
        first.proposal = Some(proposal(1));
        second.proposal = Some(proposal(2));
        replica.begin().unwrap();
        replica.push_pending(proposal(1)).unwrap();
        execute(replica, &first);
        assert!(replica.begin_next(proposal(2)).unwrap(), "a second batch may join");
        assert!(!replica.begin_next(proposal(3)).unwrap(), "but no third");
        execute(replica, &second);
        (first, second)
    }

    #[test]
    fn both_commit_together_and_become_visible_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let (mut replica, reader) = leader(dir.path());
        let (first, second) = pair(&mut replica);
        assert!(matches!(replica.apply(&first, applied(2)).unwrap(), Applied::Local));
        assert_eq!(replica.visible_index(), 1, "the first's effects wait for the second");
        assert_eq!(ids(&reader), Vec::<i64>::new());
        assert!(matches!(replica.apply(&second, applied(3)).unwrap(), Applied::Local));
        assert_eq!(replica.visible_index(), 3);
        assert_eq!(ids(&reader), vec![10, 20]);
    }

    #[test]
    fn a_failed_second_leaves_the_applied_first_committed() {
        let dir = tempfile::tempdir().unwrap();
        let (mut replica, reader) = leader(dir.path());
        let (first, _second) = pair(&mut replica);
        replica.apply(&first, applied(2)).unwrap();
        assert!(replica.abandon(proposal(2)).unwrap(), "abandoning the second commits the first");
        assert_eq!(replica.visible_index(), 2);
        assert_eq!(ids(&reader), vec![10]);
        assert!(!replica.in_txn());
    }

    #[test]
    fn a_second_failing_before_the_first_applies_keeps_the_first_pending() {
        let dir = tempfile::tempdir().unwrap();
        let (mut replica, reader) = leader(dir.path());
        let (first, _second) = pair(&mut replica);
        assert!(!replica.abandon(proposal(2)).unwrap());
        assert!(replica.is_pending(proposal(1)) && !replica.is_pending(proposal(2)));
        assert!(matches!(replica.apply(&first, applied(2)).unwrap(), Applied::Local));
        assert_eq!(ids(&reader), vec![10]);
        assert_eq!(replica.visible_index(), 2);
    }

    #[test]
    fn a_failed_first_rolls_back_both() {
        let dir = tempfile::tempdir().unwrap();
        let (mut replica, reader) = leader(dir.path());
        pair(&mut replica);
        replica.abandon(proposal(1)).unwrap();
        assert!(!replica.in_txn() && !replica.is_pending(proposal(2)));
        assert_eq!(ids(&reader), Vec::<i64>::new());
        assert_eq!(replica.visible_index(), 1);
    }

    #[test]
    fn a_foreign_entry_after_the_first_commits_it_and_replays_in_log_order() {
        let dir = tempfile::tempdir().unwrap();
        let (mut replica, reader) = leader(dir.path());
        let (first, second) = pair(&mut replica);
        replica.apply(&first, applied(2)).unwrap();
        // A new leader's entry lands at 3, before this node's second batch.
        assert!(matches!(replica.apply(&insert(30), applied(3)).unwrap(), Applied::Replayed(_)));
        assert_eq!(ids(&reader), vec![10, 30]);
        // If the second is committed later after all, it is replayed.
        assert!(matches!(replica.apply(&second, applied(4)).unwrap(), Applied::Replayed(_)));
        assert_eq!(ids(&reader), vec![10, 20, 30]);
        assert_eq!(replica.visible_index(), 4);
    }

    /// Invariant: a transaction that a foreign entry aborted can never be
    /// proposed. Its session learns at its next statement, savepoint or
    /// COMMIT (40001), and the next transaction's effects are committed as
    /// that transaction's own, so the leader holds what a follower
    /// replaying the log holds. (Before, an aborted transaction's COMMIT
    /// could record its proposal with no transaction open; a transaction
    /// opened before that entry applied would then have had its effects
    /// committed in the aborted one's place.)
    #[test]
    fn a_transaction_aborted_by_a_foreign_entry_is_never_proposed() {
        let dir = tempfile::tempdir().unwrap();
        let (mut replica, reader) = leader(dir.path());
        let aborted = insert(10);
        replica.begin().unwrap();
        execute(&mut replica, &aborted);
        // Another leader's entry commits first: the open transaction is aborted.
        let foreign = insert(30);
        assert!(matches!(replica.apply(&foreign, applied(2)).unwrap(), Applied::Replayed(_)));
        assert!(!replica.in_txn());
        let ctx = aborted.txns[0].ctx;
        for refused in [
            replica.execute(&ctx, 1, "INSERT INTO t (id) VALUES (11)", &[]).map(drop),
            replica.savepoint_op("SAVEPOINT s"),
            replica.push_pending(proposal(1)),
        ] {
            let err = refused.expect_err("an aborted transaction goes no further");
            assert_eq!(err.code, SqlState::SERIALIZATION_FAILURE, "{err}");
            assert!(!err.is_deterministic(), "never recorded for replay: {err}");
        }

        // The next transaction (a batch; its BEGIN fails if the refused
        // SAVEPOINT opened one) commits its own effects, and only them.
        let mut batch = insert(20);
        batch.proposal = Some(proposal(2));
        replica.begin().unwrap();
        replica.push_pending(proposal(2)).unwrap();
        execute(&mut replica, &batch);
        assert!(matches!(replica.apply(&batch, applied(3)).unwrap(), Applied::Local));
        assert_eq!(ids(&reader), vec![20, 30]);

        let follower = replay_into(dir.path(), "follower", &[leader_ddl(), foreign, batch]);
        assert_eq!(replica.checksum().unwrap(), follower.checksum().unwrap());
    }

    /// Invariant: when a proposal of this node is replayed instead of
    /// committed from its transaction, what it reports is what the replay
    /// did. Here Raft refused the first of a pipelined pair (a leader lease
    /// that lapsed for a moment) and took the second, which ran on top of
    /// the first's effects.
    #[test]
    fn a_replayed_proposal_reports_the_replay_outputs() {
        let dir = tempfile::tempdir().unwrap();
        let (mut replica, reader) = leader(dir.path());
        let mut first = insert(10);
        first.proposal = Some(proposal(1));
        let ctx = ExecContext { timestamp_micros: 1_700_000_000_000_000, seed: 5 };
        let bump = "UPDATE t SET id = id + 100 WHERE id = 10";
        let second = Command {
            proposal: Some(proposal(2)),
            txns: vec![TxnRecord { ctx, stmts: vec![stmt(0, bump, vec![])], ..Default::default() }],
            checksum: false,
        };
        replica.begin().unwrap();
        replica.push_pending(proposal(1)).unwrap();
        execute(&mut replica, &first);
        assert!(replica.begin_next(proposal(2)).unwrap());
        let executed = replica.execute(&ctx, 0, bump, &[]).unwrap();
        assert_eq!(executed.changes, 1, "on the leader it ran on top of the first");

        replica.abandon(proposal(1)).unwrap();
        let applied_as = replica.apply(&second, applied(2)).unwrap();
        let Applied::Replayed(outputs) = applied_as else { panic!("expected a replay, got {applied_as:?}") };
        assert_eq!(outputs.len(), 1);
        assert_eq!(outputs[0].changes, 0, "without the first there was nothing to update");
        assert_eq!(ids(&reader), Vec::<i64>::new());
    }

    #[test]
    fn a_crash_with_deferred_effects_replays_the_first_from_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let (mut replica, _reader) = leader(dir.path());
        let (first, _second) = pair(&mut replica);
        replica.apply(&first, applied(2)).unwrap();
        drop(replica); // the process dies before the second commits
        let mut reopened = Replica::open(&dir.path().join("leader.db")).unwrap();
        assert_eq!(reopened.applied().index, 1, "SQLite's applied index precedes the deferred entry");
        let mut replayed = first.clone();
        replayed.proposal = None;
        assert!(matches!(reopened.apply(&replayed, applied(2)).unwrap(), Applied::Replayed(_)));
        let reader = rusqlite::Connection::open(dir.path().join("leader.db")).unwrap();
        assert_eq!(ids(&reader), vec![10]);
    }
}
