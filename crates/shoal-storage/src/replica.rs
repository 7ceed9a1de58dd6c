//! One replica's SQLite database.
//!
//! ```text
//!                 ┌──────────────── replica.db (WAL mode) ─────────────────┐
//!  writer conn ──▶│ user tables …                                          │◀── reader conns (snapshots)
//!  (one, owned    │ __shoal_applied (id=1, log_index, meta)  ← same txn as │
//!   by Replica)   │ __shoal_catalog (id=1, json)              the effects  │
//!                 │ __shoal_sequences (sequence state, see crate::sequences)│
//!                 └────────────────────────────────────────────────────────┘
//! ```
//!
//! The writer connection is used two ways:
//!
//! * **Leader execution.** A session's transaction runs interactively on the
//!   writer ([`Replica::begin`], [`Replica::execute`]). When its entry
//!   commits in Raft, [`Replica::apply`] writes the applied index
//!   into the *same* SQLite transaction and commits it.
//! * **Replay.** Any other entry (on a follower, or on the leader after a
//!   restart) is re-executed by `Replica::apply` with the recorded
//!   execution contexts, again storing the applied index in the same
//!   transaction. A crash therefore never applies an entry twice or half.
//!
//! Entries without SQL effects (Raft blank and membership entries) only move
//! the applied index; it is written at once when the writer is idle, or with
//! the next committed transaction otherwise. Re-applying such an entry after a
//! crash is harmless.
//!
//! **Two proposals per transaction (pipelining).** The leader's batcher may
//! start a second batch of autocommit writes in the open transaction while
//! the first is still in its Raft round ([`Replica::begin_next`]); the second
//! runs inside the savepoint `__shoal_next`. When the first commits in Raft
//! its effects are *deferred*: they stay in the open SQLite transaction, and
//! the applied state waits in memory, until the second commits too and one
//! SQLite COMMIT covers both. If the second fails, or a foreign entry comes
//! first, only the savepoint is rolled back and the first is committed
//! alone. A crash in between loses nothing: the first entry is in the Raft
//! log and SQLite's applied index still precedes it, so it is replayed.
//! Readers see deferred effects only after that COMMIT
//! ([`Replica::visible_index`]).
//!
//! **A transaction a foreign entry overtakes is aborted.** When an entry
//! that is not the open transaction's next proposal applies first, this
//! replica lost the race for that log position: the open transaction ran on
//! a state the log no longer leads to, so it is rolled back and the entry
//! replayed. From then on the transaction's statements, savepoints and
//! proposal are refused with 40001, so a proposal is only ever recorded
//! against the transaction whose effects it names. A proposal of this node
//! that is replayed after all (its transaction was given up, but Raft
//! committed the entry) reports the replay's outputs ([`Applied`]), which
//! are what every replica applied.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{params_from_iter, Connection, OpenFlags, OptionalExtension};
use shoal_common::{Error, ExecContext, Result, SqlState, Value};

use crate::cancel::{self, StatementCancel};
use crate::command::{Command, ProposalId, RecordedStmt, TxnRecord};
use crate::determinism::{self, StatementScope};
use crate::sequences::{self, Drawn};
use crate::sqlite_error::from_sqlite;

/// The applied position of a replica. `meta` is opaque to storage: the Raft
/// layer stores its log id and membership there as JSON.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AppliedState {
    pub index: u64,
    pub meta: Option<String>,
}

/// How [`Replica::apply`] applied an entry.
#[derive(Clone, Debug, PartialEq)]
pub enum Applied {
    /// The entry carried the proposal of the transaction open on the
    /// writer, whose effects were committed (or deferred, to commit with
    /// the next proposal's).
    Local,
    /// The entry was re-executed from its records: the output of each of
    /// its transactions' last statement, in order. For a proposal of this
    /// node these are what its sessions must be told, not the outputs of
    /// its own execution, which ran on a state the log did not lead to
    /// (see the module docs).
    Replayed(Vec<QueryOutput>),
}

/// The rows and change count a statement produced.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct QueryOutput {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
    /// Rows inserted, updated or deleted (0 for reads).
    pub changes: u64,
    /// Values the statement drew from sequences (`nextval`, `setval`), in
    /// order, for the session's `currval`/`lastval`.
    #[serde(default)]
    pub sequences: Vec<Drawn>,
}

/// One replica's SQLite database; see the module docs.
pub struct Replica {
    path: PathBuf,
    /// Dropped before `writer` (see `Drop for Replica`).
    sequence_statements: Option<sequences::WriterStatements>,
    writer: Connection,
    in_txn: bool,
    /// Proposals whose effects the open transaction holds, in log order: at
    /// most two, the second inside the savepoint `__shoal_next`.
    pending: Vec<ProposalId>,
    /// The open transaction holds the effects of an applied entry, to be
    /// committed with the next one (see the module docs).
    deferred: bool,
    applied: AppliedState,
    /// Applied state not yet persisted because the writer was busy.
    unpersisted: Option<AppliedState>,
    /// What failed statements did to sequences before they failed (see
    /// [`Replica::take_failed_draws`]).
    failed_draws: Vec<Drawn>,
    /// The cancel flag of the statement running on the writer, which the
    /// writer's progress handler watches (see [`crate::cancel`]).
    running: Arc<Mutex<Option<StatementCancel>>>,
}

/// Installs the writer's progress handler: it interrupts the running
/// statement once that statement's cancel flag is set.
fn watch_cancels(conn: &mut Connection) -> Result<Arc<Mutex<Option<StatementCancel>>>> {
    let running: Arc<Mutex<Option<StatementCancel>>> = Arc::new(Mutex::new(None));
    let slot = running.clone();
    conn.progress_handler(
        crate::budget::CHECK_EVERY_OPS,
        Some(move || {
            slot.lock().unwrap_or_else(|p| p.into_inner()).as_ref().is_some_and(StatementCancel::is_cancelled)
        }),
    )
    .map_err(from_sqlite)?;
    Ok(running)
}

const SETUP_SQL: &str = "
    CREATE TABLE IF NOT EXISTS __shoal_applied (id INTEGER PRIMARY KEY CHECK (id = 1), log_index INTEGER NOT NULL, meta TEXT);
    INSERT OR IGNORE INTO __shoal_applied (id, log_index, meta) VALUES (1, 0, NULL);
    CREATE TABLE IF NOT EXISTS __shoal_catalog (id INTEGER PRIMARY KEY CHECK (id = 1), json TEXT NOT NULL);
";

/// Stores the catalog JSON (`?1`); the only statement that writes
/// `__shoal_catalog`, run in the transaction of the DDL it describes.
pub const STORE_CATALOG_SQL: &str =
    "INSERT INTO __shoal_catalog (id, json) VALUES (1, ?1) ON CONFLICT (id) DO UPDATE SET json = excluded.json";

/// Opens a connection on the `shoal` VFS with Shoal's functions registered.
pub fn open_connection(path: &Path, read_only: bool) -> Result<Connection> {
    determinism::register_vfs();
    let mut flags = OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    flags |= if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE
    };
    let conn = Connection::open_with_flags_and_vfs(path, flags, determinism::VFS_NAME).map_err(from_sqlite)?;
    conn.busy_timeout(Duration::from_secs(10)).map_err(from_sqlite)?;
    // WAL: readers never block the writer. synchronous=NORMAL: a commit is
    // durable against a process crash; the Raft log (fsynced) covers power
    // loss, because replay restarts from the applied index stored here.
    conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA recursive_triggers = ON;").map_err(from_sqlite)?;
    if !read_only {
        // Checkpoints are taken off the commit path (see [`checkpoint`]):
        // SQLite would otherwise run one, with an fsync of the database file,
        // inside whichever COMMIT crosses the WAL size limit.
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 0;")
            .map_err(from_sqlite)?;
    }
    conn.set_prepared_statement_cache_capacity(256);
    determinism::register_functions(&conn).map_err(from_sqlite)?;
    crate::functions::register(&conn).map_err(from_sqlite)?;
    // Only the replica's writer may advance sequences ([`Replica::open`]).
    sequences::register(&conn, false).map_err(from_sqlite)?;
    Ok(conn)
}

/// Converts a SQLite value read from a row.
pub fn value_from_ref(v: rusqlite::types::ValueRef<'_>) -> Value {
    match v {
        rusqlite::types::ValueRef::Null => Value::Null,
        rusqlite::types::ValueRef::Integer(i) => Value::Integer(i),
        rusqlite::types::ValueRef::Real(r) => Value::Real(r),
        rusqlite::types::ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        rusqlite::types::ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

fn to_sql_value(v: &Value) -> rusqlite::types::Value {
    match v {
        Value::Null => rusqlite::types::Value::Null,
        Value::Integer(i) => rusqlite::types::Value::Integer(*i),
        Value::Real(r) => rusqlite::types::Value::Real(*r),
        Value::Text(s) => rusqlite::types::Value::Text(s.clone()),
        Value::Blob(b) => rusqlite::types::Value::Blob(b.clone()),
    }
}

/// Runs one statement on `conn`, collecting its rows.
pub fn run_statement(conn: &Connection, sql: &str, params: &[Value]) -> Result<QueryOutput> {
    let mut stmt = conn.prepare_cached(sql).map_err(from_sqlite)?;
    let expected = stmt.parameter_count();
    if params.len() < expected {
        return Err(Error::new(
            SqlState::PROTOCOL_VIOLATION,
            format!("statement requires {expected} parameters, but {} were supplied", params.len()),
        ));
    }
    let columns: Vec<String> = stmt.column_names().map(|c| c.to_string()).collect();
    let width = columns.len();
    let mut rows = Vec::new();
    sequences::clear_drawn();
    {
        let mut cursor =
            stmt.query(params_from_iter(params[..expected].iter().map(to_sql_value))).map_err(from_sqlite)?;
        while let Some(row) = cursor.next().map_err(from_sqlite)? {
            let mut out = Vec::with_capacity(width);
            for i in 0..width {
                out.push(value_from_ref(row.get_ref(i).map_err(from_sqlite)?));
            }
            rows.push(out);
        }
    }
    let changes = if stmt.readonly() { 0 } else { conn.changes() };
    Ok(QueryOutput { columns, rows, changes, sequences: sequences::take_drawn() })
}

/// Copies committed WAL content into the database file without blocking the
/// writer or readers (a PASSIVE checkpoint), on a connection of its own.
/// Returns the number of WAL frames still not checkpointed.
pub fn checkpoint(conn: &Connection) -> Result<i64> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| Ok(r.get::<_, i64>(1)? - r.get::<_, i64>(2)?))
        .map_err(from_sqlite)
}

/// Runs a statement that must not write: refused (as a Shoal bug, never
/// silently executed) if SQLite says it would modify a database.
pub fn run_read_only(conn: &Connection, sql: &str, params: &[Value]) -> Result<QueryOutput> {
    let stmt = conn.prepare_cached(sql).map_err(from_sqlite)?;
    // SQLite reports `EXPLAIN <write>` as writing; explaining never writes.
    let readonly = stmt.readonly() || stmt.is_explain() != 0;
    drop(stmt);
    if !readonly {
        return Err(Error::internal(format!("refusing to run a writing statement on a read connection: {sql}")));
    }
    run_statement(conn, sql, params)
}

impl Replica {
    /// Opens (creating if needed) the replica database at `path`.
    pub fn open(path: &Path) -> Result<Replica> {
        let mut writer = open_connection(path, false)?;
        let sequence_statements = sequences::register(&writer, true).map_err(from_sqlite)?;
        setup(&writer)?;
        let applied = read_applied(&writer)?;
        let running = watch_cancels(&mut writer)?;
        Ok(Replica {
            path: path.to_path_buf(),
            sequence_statements,
            writer,
            in_txn: false,
            pending: Vec::new(),
            deferred: false,
            applied,
            unpersisted: None,
            failed_draws: Vec::new(),
            running,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The last applied state (possibly not yet persisted, see module docs).
    pub fn applied(&self) -> &AppliedState {
        self.unpersisted.as_ref().unwrap_or(&self.applied)
    }

    /// The stored catalog JSON, if any DDL ever ran.
    pub fn catalog_json(&self) -> Result<Option<String>> {
        self.writer
            .query_row("SELECT json FROM __shoal_catalog WHERE id = 1", [], |r| r.get(0))
            .optional()
            .map_err(from_sqlite)
    }

    /// A handle that interrupts whatever the writer is running.
    pub fn interrupt_handle(&self) -> rusqlite::InterruptHandle {
        self.writer.get_interrupt_handle()
    }

    /// Starts a leader-side transaction (takes SQLite's write lock at once).
    pub fn begin(&mut self) -> Result<()> {
        if self.in_txn {
            return Err(Error::internal("writer transaction already open"));
        }
        self.control("BEGIN IMMEDIATE")?;
        self.in_txn = true;
        // Pending proposals belong to the transaction that held them; with
        // none open there are none (see `push_pending`), but a proposal
        // left here would let this transaction's effects pass for its.
        self.pending.clear();
        self.failed_draws.clear();
        Ok(())
    }

    /// Executes one statement of the open leader-side transaction.
    pub fn execute(&mut self, ctx: &ExecContext, seq: u32, sql: &str, params: &[Value]) -> Result<QueryOutput> {
        if !self.in_txn {
            return Err(transaction_aborted());
        }
        if self.transaction_lost() {
            // Never let a statement of a lost transaction autocommit on its own.
            return Err(lost_transaction());
        }
        let _scope = StatementScope::enter(ctx, seq);
        let result = run_statement(&self.writer, sql, params);
        if result.is_err() {
            self.failed_draws.extend(sequences::take_drawn());
        }
        result
    }

    /// [`Replica::execute`], stopped early when `cancel` is set (see
    /// [`crate::cancel`]). A cancelled statement fails with 57014; if it was
    /// a write, SQLite rolled back the whole transaction
    /// ([`Replica::transaction_lost`]).
    pub fn execute_cancellable(
        &mut self,
        ctx: &ExecContext,
        seq: u32,
        sql: &str,
        params: &[Value],
        cancel: &StatementCancel,
    ) -> Result<QueryOutput> {
        if cancel.is_cancelled() {
            return Err(cancel::canceled());
        }
        *self.running.lock().unwrap_or_else(|p| p.into_inner()) = Some(cancel.clone());
        let result = self.execute(ctx, seq, sql, params);
        *self.running.lock().unwrap_or_else(|p| p.into_inner()) = None;
        match result {
            Err(e) if e.code == SqlState::QUERY_CANCELED || cancel.is_cancelled() => Err(cancel::canceled()),
            other => other,
        }
    }

    /// True when the leader-side transaction is open for Shoal but SQLite
    /// rolled it back (it does so when it interrupts a write).
    pub fn transaction_lost(&self) -> bool {
        self.in_txn && self.writer.is_autocommit()
    }

    /// Rebuilds a lost transaction ([`Replica::transaction_lost`]) from
    /// what it had recorded, statement by statement as a follower replays
    /// them (including statements recorded as failed). On any difference the
    /// transaction is rolled back and an error returned.
    pub fn redo(&mut self, txns: &[TxnRecord]) -> Result<()> {
        if !self.transaction_lost() {
            return Err(Error::internal("redo of a transaction that is not lost"));
        }
        let redone = self.control("BEGIN IMMEDIATE").and_then(|()| {
            for txn in txns {
                for stmt in &txn.stmts {
                    self.replay_statement(&txn.ctx, stmt)?;
                }
            }
            Ok(())
        });
        if let Err(e) = redone {
            // Still lost: the owner can only roll back.
            if !self.writer.is_autocommit() {
                self.control("ROLLBACK")?;
            }
            return Err(e);
        }
        Ok(())
    }

    /// What statements that failed since the last call (or `begin`) had
    /// done to sequences before SQLite undid it with the statement. The
    /// caller re-applies it ([`sequences::restore_statements`]), recorded
    /// like any statement, so a value is never handed out twice.
    pub fn take_failed_draws(&mut self) -> Vec<Drawn> {
        std::mem::take(&mut self.failed_draws)
    }

    /// Runs a savepoint statement (`SAVEPOINT x`, `RELEASE x`, `ROLLBACK TO x`)
    /// in the open transaction.
    pub fn savepoint_op(&mut self, sql: &str) -> Result<()> {
        if !self.in_txn {
            // Outside a transaction SQLite's SAVEPOINT would open one that
            // no proposal owns, and the next replay's BEGIN would fail.
            return Err(transaction_aborted());
        }
        self.writer.execute_batch(sql).map_err(from_sqlite)
    }

    /// Runs one fixed transaction-control statement (BEGIN, COMMIT,
    /// SAVEPOINT …) through the statement cache: every write pays several of
    /// these, on every replica, and preparing them each time showed in
    /// profiles.
    pub fn control(&self, sql: &'static str) -> Result<()> {
        self.writer.prepare_cached(sql).and_then(|mut statement| statement.execute([])).map(drop).map_err(from_sqlite)
    }

    /// Records that `proposal` will commit the open transaction's effects
    /// (so far: since the savepoint, for a second batch). Refused (40001)
    /// when no transaction is open: a foreign entry committed first and took
    /// the transaction's effects back, so its statements ran on a state the
    /// log no longer leads to, and a proposal recorded now would make the
    /// effects of whatever transaction opens next pass for its own when its
    /// entry applies.
    pub fn push_pending(&mut self, proposal: ProposalId) -> Result<()> {
        if !self.in_txn {
            return Err(transaction_aborted());
        }
        self.pending.push(proposal);
        Ok(())
    }

    /// True when the open transaction holds effects `proposal` will commit.
    pub fn is_pending(&self, proposal: ProposalId) -> bool {
        self.pending.contains(&proposal)
    }

    /// True while a leader-side transaction is open on the writer.
    pub fn in_txn(&self) -> bool {
        self.in_txn
    }

    /// Whether [`Replica::begin_next`] would start a second batch now.
    pub fn can_begin_next(&self) -> bool {
        self.in_txn && self.pending.len() == 1 && !self.deferred
    }

    /// Starts a second batch inside the open transaction, to be committed by
    /// `proposal` after the first one's (see the module docs). Only while
    /// exactly one proposal is pending and none has been applied.
    pub fn begin_next(&mut self, proposal: ProposalId) -> Result<bool> {
        if !self.can_begin_next() {
            return Ok(false);
        }
        self.control("SAVEPOINT __shoal_next")?;
        self.pending.push(proposal);
        self.failed_draws.clear();
        Ok(true)
    }

    /// Gives up the effects `proposal` would have committed: its Raft
    /// proposal failed, or its batch had nothing to propose. A second batch
    /// is rolled back to its savepoint, and if the first was already applied
    /// it is committed now; otherwise the whole transaction is rolled back.
    /// Returns true when the applied state changed (see `visible_index`).
    pub fn abandon(&mut self, proposal: ProposalId) -> Result<bool> {
        if !self.in_txn || !self.pending.contains(&proposal) {
            return Ok(false);
        }
        if self.next_open() && self.pending.last() == Some(&proposal) {
            self.pending.pop();
            self.roll_back_next()?;
            if self.pending.is_empty() && self.deferred {
                self.commit_deferred()?;
                return Ok(true);
            }
            return Ok(false);
        }
        self.rollback()?;
        Ok(false)
    }

    /// Whether the savepoint `__shoal_next` is open: a second batch is
    /// pending, or the first was applied and the second (the only one left
    /// pending) is still open.
    fn next_open(&self) -> bool {
        self.pending.len() == 2 || self.deferred
    }

    fn roll_back_next(&mut self) -> Result<()> {
        self.control("ROLLBACK TO __shoal_next")?;
        self.control("RELEASE __shoal_next")
    }

    /// Commits the deferred effects of an applied entry with the newest
    /// applied state (entries after it, if any, had no effects).
    fn commit_deferred(&mut self) -> Result<()> {
        let applied = self.unpersisted.clone().unwrap_or_else(|| self.applied.clone());
        self.write_applied(&applied)?;
        self.control("COMMIT")?;
        self.finish_commit(applied);
        Ok(())
    }

    /// The index up to which committed SQLite content reflects every applied
    /// entry: what a reader can see. Deferred effects are not visible yet.
    pub fn visible_index(&self) -> u64 {
        match self.deferred {
            true => self.applied.index,
            false => self.applied().index,
        }
    }

    /// Rolls back the whole leader-side transaction, deferred effects
    /// included (only for a replica about to be replaced by a snapshot, or
    /// when nothing was deferred).
    pub fn rollback(&mut self) -> Result<()> {
        self.pending.clear();
        if std::mem::take(&mut self.deferred) {
            // Its applied state must not be written without its effects.
            self.unpersisted = None;
        }
        if !self.in_txn {
            return Ok(());
        }
        self.in_txn = false;
        // SQLite may have rolled back already (an interrupted write).
        if !self.writer.is_autocommit() {
            self.control("ROLLBACK")?;
        }
        self.flush_unpersisted()
    }

    /// Applies a committed entry. If it carries the proposal whose
    /// transaction is open on the writer, that transaction is committed with
    /// the applied state; otherwise the entry is replayed.
    pub fn apply(&mut self, command: &Command, applied: AppliedState) -> Result<Applied> {
        if self.in_txn && command.proposal.is_some() && command.proposal.as_ref() == self.pending.first() {
            self.pending.remove(0);
            if !self.pending.is_empty() {
                // A second batch follows in this transaction: commit both together.
                self.unpersisted = Some(applied);
                self.deferred = true;
                return Ok(Applied::Local);
            }
            self.write_applied(&applied)?;
            self.control("COMMIT")?;
            self.finish_commit(applied);
            return Ok(Applied::Local);
        }
        if self.in_txn {
            // Another entry committed while a local transaction was open: the
            // local one can no longer commit in this order (this replica lost
            // leadership). Abandon it (keeping an applied entry's deferred
            // effects); its session gets an error.
            tracing::warn!(pending = ?self.pending, "abandoning local transaction: a foreign entry committed first");
            if self.deferred {
                // Deferred means the second batch is still open in its savepoint.
                self.pending.clear();
                self.roll_back_next()?;
                self.commit_deferred()?;
            } else {
                self.rollback()?;
            }
        }
        self.replay(command, applied).map(Applied::Replayed)
    }

    /// Re-executes a command in one SQLite transaction; returns the output
    /// of each transaction's last statement.
    fn replay(&mut self, command: &Command, applied: AppliedState) -> Result<Vec<QueryOutput>> {
        self.control("BEGIN IMMEDIATE")?;
        self.in_txn = true;
        match self.replay_txns(command).and_then(|outputs| self.write_applied(&applied).map(|()| outputs)) {
            Ok(outputs) => {
                self.control("COMMIT")?;
                self.finish_commit(applied);
                Ok(outputs)
            }
            Err(err) => {
                self.in_txn = false;
                let _ = self.control("ROLLBACK");
                Err(err)
            }
        }
    }

    fn replay_txns(&mut self, command: &Command) -> Result<Vec<QueryOutput>> {
        let mut outputs = Vec::with_capacity(command.txns.len());
        for txn in &command.txns {
            // One ordinary statement needs no savepoint of its own: SQLite
            // undoes a failed statement's changes by itself (the translator
            // never emits an `OR FAIL` conflict clause, the one exception),
            // and most entries are batches of single autocommit statements.
            if let [stmt] = txn.stmts.as_slice() {
                if !is_savepoint_statement(&stmt.sql) {
                    outputs.push(self.replay_statement(&txn.ctx, stmt)?);
                    continue;
                }
            }
            self.control("SAVEPOINT __shoal_txn")?;
            let mut last = QueryOutput::default();
            for stmt in &txn.stmts {
                last = self.replay_statement(&txn.ctx, stmt)?;
            }
            self.control("RELEASE __shoal_txn")?;
            outputs.push(last);
        }
        Ok(outputs)
    }

    /// Re-executes one recorded statement; its output (empty for a
    /// savepoint statement or an expected failure).
    fn replay_statement(&mut self, ctx: &ExecContext, stmt: &RecordedStmt) -> Result<QueryOutput> {
        let _scope = StatementScope::enter(ctx, stmt.seq);
        let result = if is_savepoint_statement(&stmt.sql) {
            self.writer.execute_batch(&stmt.sql).map(|()| QueryOutput::default()).map_err(from_sqlite)
        } else {
            run_statement(&self.writer, &stmt.sql, &stmt.params)
        };
        match (result, stmt.failed) {
            (Ok(output), false) => Ok(output),
            (Err(err), true) if err.is_deterministic() => Ok(QueryOutput::default()),
            (Err(err), _) if !err.is_deterministic() => Err(err),
            (Ok(_), true) => Err(divergence(stmt, "succeeded here but failed on the leader")),
            (Err(err), _) => Err(divergence(stmt, &format!("failed here ({err}) but succeeded on the leader"))),
        }
    }

    /// Records the applied state of an entry that has no SQL effects.
    pub fn apply_empty(&mut self, applied: AppliedState) -> Result<()> {
        if self.in_txn {
            self.unpersisted = Some(applied);
            return Ok(());
        }
        self.write_applied(&applied)?;
        self.applied = applied;
        self.unpersisted = None;
        Ok(())
    }

    fn flush_unpersisted(&mut self) -> Result<()> {
        if let Some(applied) = self.unpersisted.take() {
            self.write_applied(&applied)?;
            self.applied = applied;
        }
        Ok(())
    }

    fn write_applied(&self, applied: &AppliedState) -> Result<()> {
        self.writer
            .prepare_cached("UPDATE __shoal_applied SET log_index = ?1, meta = ?2 WHERE id = 1")
            .and_then(|mut update| update.execute(rusqlite::params![applied.index as i64, applied.meta]))
            .map_err(from_sqlite)?;
        Ok(())
    }

    fn finish_commit(&mut self, applied: AppliedState) {
        self.in_txn = false;
        self.pending.clear();
        self.deferred = false;
        self.applied = applied;
        self.unpersisted = None;
    }

    /// Replaces the database with the snapshot file at `src` (which is
    /// consumed), and reopens. Any open local transaction is abandoned.
    pub fn install_snapshot(&mut self, src: &Path) -> Result<AppliedState> {
        if self.in_txn {
            self.rollback()?;
        }
        {
            let source = Connection::open_with_flags(src, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(from_sqlite)?;
            // Validate before replacing anything: a bad snapshot must not destroy the replica.
            let check: String = source.query_row("PRAGMA quick_check", [], |r| r.get(0)).map_err(from_sqlite)?;
            if check != "ok" {
                return Err(Error::environment(
                    SqlState::DATA_CORRUPTED,
                    format!("snapshot failed integrity check: {check}"),
                ));
            }
            if let Some(cache) = &self.sequence_statements {
                cache.flush();
            }
            let mut writer = std::mem::replace(&mut self.writer, Connection::open_in_memory().map_err(from_sqlite)?);
            let backup = rusqlite::backup::Backup::new(&source, &mut writer).map_err(from_sqlite)?;
            backup.run_to_completion(1024, Duration::ZERO, None).map_err(from_sqlite)?;
            drop(backup);
            self.writer = writer;
        }
        setup(&self.writer)?;
        self.applied = read_applied(&self.writer)?;
        self.unpersisted = None;
        let _ = std::fs::remove_file(src);
        Ok(self.applied.clone())
    }

    /// A checksum of all user-visible content (every table but Shoal's own
    /// bookkeeping, rows in rowid or primary-key order), for comparing replicas.
    pub fn checksum(&self) -> Result<String> {
        content_checksum(&self.writer)
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        // The sequence functions' cached statements must be finalized
        // before the writer connection closes.
        self.sequence_statements.take();
    }
}

/// The error for a statement, savepoint or commit of a leader-side
/// transaction that a foreign entry aborted (see [`Replica::apply`]).
fn transaction_aborted() -> Error {
    Error::environment(
        SqlState::SERIALIZATION_FAILURE,
        "the transaction was aborted: another leader's write committed first (the group's leadership changed)",
    )
    .with_hint("nothing of the transaction was committed; retry it")
}

fn lost_transaction() -> Error {
    Error::environment(
        SqlState::IN_FAILED_SQL_TRANSACTION,
        "the transaction was rolled back when one of its statements was cancelled",
    )
}

/// See [`Replica::checksum`].
pub fn content_checksum(conn: &Connection) -> Result<String> {
    content_digest(conn).map(|digest| digest.total)
}

/// A replica's content checksum and, to say where replicas that disagree
/// differ, one checksum per table.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ContentDigest {
    /// [`content_checksum`].
    pub total: String,
    /// Each table's rows, hashed the same way, by table name.
    pub tables: Vec<(String, String)>,
}

/// [`content_checksum`] with the checksum of each table beside it.
pub fn content_digest(conn: &Connection) -> Result<ContentDigest> {
    use sha2::{Digest, Sha256};
    let hex = |hasher: Sha256| hasher.finalize().iter().map(|b| format!("{b:02x}")).collect::<String>();
    let mut tables: Vec<(String, bool)> = {
        let mut stmt = conn
            .prepare(
                "SELECT name, (sql LIKE '%WITHOUT ROWID%') FROM sqlite_schema \
                 WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> '__shoal_applied' ORDER BY name",
            )
            .map_err(from_sqlite)?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).map_err(from_sqlite)?;
        rows.collect::<std::result::Result<_, _>>().map_err(from_sqlite)?
    };
    tables.sort();
    let mut hasher = Sha256::new();
    let mut per_table = Vec::with_capacity(tables.len());
    for (table, without_rowid) in tables {
        hasher.update(table.as_bytes());
        let mut table_hasher = Sha256::new();
        let order = if without_rowid { "" } else { " ORDER BY rowid" };
        let sql = format!("SELECT * FROM \"{}\"{order}", table.replace('"', "\"\""));
        let output = run_statement(conn, &sql, &[])?;
        for row in output.rows {
            for value in row {
                let value = format!("{value:?}");
                hasher.update(value.as_bytes());
                hasher.update([0]);
                table_hasher.update(value.as_bytes());
                table_hasher.update([0]);
            }
            hasher.update([1]);
            table_hasher.update([1]);
        }
        per_table.push((table, hex(table_hasher)));
    }
    Ok(ContentDigest { total: hex(hasher), tables: per_table })
}

/// Copies a consistent snapshot of the database at `db_path` (committed
/// state only, read through its own connection so the writer keeps going) to
/// `dest`, returning the applied state the copy contains.
pub fn snapshot_file(db_path: &Path, dest: &Path) -> Result<AppliedState> {
    let source = open_connection(db_path, true)?;
    let _ = std::fs::remove_file(dest);
    let mut target = Connection::open(dest).map_err(from_sqlite)?;
    {
        let backup = rusqlite::backup::Backup::new(&source, &mut target).map_err(from_sqlite)?;
        backup.run_to_completion(1024, Duration::ZERO, None).map_err(from_sqlite)?;
    }
    target.execute_batch("PRAGMA journal_mode = DELETE").map_err(from_sqlite)?;
    read_applied(&target)
}

/// Creates Shoal's own tables where missing.
fn setup(conn: &Connection) -> Result<()> {
    conn.execute_batch(SETUP_SQL).map_err(from_sqlite)?;
    conn.execute_batch(sequences::SETUP_SQL).map_err(from_sqlite)
}

fn read_applied(conn: &Connection) -> Result<AppliedState> {
    conn.query_row("SELECT log_index, meta FROM __shoal_applied WHERE id = 1", [], |r| {
        Ok(AppliedState { index: r.get::<_, i64>(0)? as u64, meta: r.get(1)? })
    })
    .map_err(from_sqlite)
}

fn is_savepoint_statement(sql: &str) -> bool {
    let head = sql.trim_start().get(..9).unwrap_or("").to_ascii_uppercase();
    head.starts_with("SAVEPOINT") || head.starts_with("RELEASE") || head.starts_with("ROLLBACK")
}

fn divergence(stmt: &RecordedStmt, what: &str) -> Error {
    Error::environment(SqlState::DATA_CORRUPTED, format!("replica diverged: statement {:?} {what}", stmt.sql))
}
