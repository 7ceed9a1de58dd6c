//! A client session: PostgreSQL's transaction semantics over Shoal's groups.
//!
//! ```text
//!   Idle ──BEGIN──▶ Open{ reads on a snapshot reader } ──first write──▶ Open{ holds the write slot }
//!     ▲                 │ error                                            │ error
//!     │                 ▼                                                  ▼
//!     └──COMMIT/ROLLBACK── Failed (every statement: 25P02) ◀───────────────┘
//! ```
//!
//! * **Autocommit** reads run on a pooled connection after a read-index check
//!   (linearizable); autocommit writes go through the group's batcher.
//! * **Explicit transactions** start on a read snapshot (many can read in
//!   parallel). The first write takes the group's write slot; if anything
//!   committed since the snapshot was taken, the transaction's earlier reads
//!   may be stale, so it fails with 40001 (serialization failure) instead of
//!   committing a non-serializable history. After that the transaction runs
//!   on the writer and sees its own writes. The result is serializable per
//!   shard.
//! * **DDL** runs like a write and stores the new typed catalog in the same
//!   transaction; the session plans against its own uncommitted catalog until
//!   COMMIT publishes it.
//! * `pg_catalog`, `information_schema` and the `shoal.*` system views are
//!   in-memory schemas attached to each read connection and filled from the
//!   session's catalog (see [`crate::catalog_views`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use shoal_common::{Error, ExecContext, Result, SqlState, Value};
use shoal_pgwire::{Canceller, Column, Notice, Prepared, Session, StatementResult, TransactionStatus};
use shoal_raft::{GroupId, Reader};
use shoal_sql::Stmt;
use shoal_sql::{AdminCall, OutputColumn, Plan, Route, SettingArg, SystemReads, TxnControl, WriteKind};
use shoal_storage::determinism::StatementScope;
use shoal_storage::QueryOutput;
use shoal_storage::SessionSequences;
use sqlparser::ast::Statement;

use crate::cancel::{parse_ms_setting, CancelReason, CancelState};
use crate::catalog_views;
use crate::cluster::{self, Writer};
use crate::consistency::{
    format_token, parse_duration, parse_token, token_floor, ReadMode, ReadPoint, DEFAULT_MAX_STALENESS,
};
use crate::node::{CatalogState, Node, DATA_GROUP};

/// Statement number used for reads: they are never replayed, so their random
/// draws need no particular seed, only the transaction's timestamp.
const READ_STATEMENT: u32 = u32::MAX;

/// Runs a read on `reader`, which a cancel of the statement interrupts.
fn run_read(reader: &Reader, cancel: &CancelState, sql: &str, params: &[Value]) -> Result<QueryOutput> {
    let handle = reader.interrupt.clone();
    let _registered = cancel.register(Arc::new(move || handle.interrupt()))?;
    shoal_storage::run_read_only(&reader.conn, sql, params)
}

/// An open transaction block.
struct Txn {
    ctx: ExecContext,
    read_only: bool,
    /// The write slot, once the transaction wrote (or took a savepoint).
    writer: Option<Writer>,
    /// The read snapshot used until the first write, and its applied index.
    reader: Option<(Reader, u64)>,
    /// The catalog as this transaction sees it (its own DDL included).
    catalog: Arc<CatalogState>,
    catalog_changed: bool,
    /// An error happened: everything but ROLLBACK fails with 25P02.
    failed: bool,
    savepoints: Vec<String>,
    /// Settings changed by SET LOCAL, with the values to restore at the end.
    local_settings: Vec<(String, Option<String>)>,
    /// Open cursors (`DECLARE`), closed when the transaction ends.
    cursors: BTreeMap<String, Cursor>,
}

/// A `DECLARE`d cursor: its query's rows, materialized when declared (the
/// snapshot PostgreSQL's cursor would read), and PostgreSQL's position:
/// 0 before the first row, `k` on row `k`, `len + 1` after the last.
struct Cursor {
    columns: Arc<Vec<Column>>,
    rows: Vec<Vec<Value>>,
    pos: usize,
    /// Declared `NO SCROLL`: moving backward is refused.
    no_scroll: bool,
}

impl Cursor {
    /// Runs a FETCH or MOVE: the rows it passes over (in order), moving the position.
    fn fetch(&mut self, direction: &shoal_sql::FetchDirection) -> Result<Vec<Vec<Value>>> {
        use shoal_sql::FetchDirection as D;
        let len = self.rows.len();
        let backward = match direction {
            D::Backward(k) => *k != Some(0),
            D::Absolute(n) => Self::target(len, *n, 0) < self.pos,
            D::Relative(n) => *n < 0,
            D::Forward(_) => false,
        };
        if backward && self.no_scroll {
            return Err(Error::new(SqlState::parse("55000"), "cursor can only scan forward")
                .with_hint("Declare it with SCROLL option to enable backward scan."));
        }
        let out = match direction {
            D::Forward(Some(0)) | D::Backward(Some(0)) | D::Relative(0) => self.current(),
            D::Forward(k) => {
                let k = k.map(|k| usize::try_from(k).unwrap_or(usize::MAX)).unwrap_or(usize::MAX);
                let from = self.pos.min(len);
                let to = from.saturating_add(k).min(len);
                self.pos = if self.pos.saturating_add(k) > len { len + 1 } else { self.pos + k };
                self.rows[from..to].to_vec()
            }
            D::Backward(k) => {
                let k = k.map(|k| usize::try_from(k).unwrap_or(usize::MAX)).unwrap_or(usize::MAX);
                // Rows pos-1 down to max(pos-k, 1), nearest first.
                let last = self.pos.saturating_sub(1).min(len);
                let first = self.pos.saturating_sub(k).max(1);
                let out =
                    if last >= first { self.rows[first - 1..last].iter().rev().cloned().collect() } else { vec![] };
                self.pos = self.pos.saturating_sub(k);
                out
            }
            D::Absolute(n) => {
                self.pos = Self::target(len, *n, 0);
                self.current()
            }
            D::Relative(n) => {
                self.pos = Self::target(len, *n, self.pos);
                self.current()
            }
        };
        Ok(out)
    }

    /// The position `n` rows from `base`, or from the end for a negative
    /// absolute `n` (`base` 0), clamped to 0..=len+1.
    fn target(len: usize, n: i64, base: usize) -> usize {
        let len_i = len as i128;
        let t = if base == 0 && n < 0 { len_i + 1 + n as i128 } else { base as i128 + n as i128 };
        t.clamp(0, len_i + 1) as usize
    }

    fn current(&self) -> Vec<Vec<Value>> {
        match self.pos.checked_sub(1).and_then(|i| self.rows.get(i)) {
            Some(row) => vec![row.clone()],
            None => vec![],
        }
    }
}

/// A prepared statement's plan, kept inside [`Prepared::handle`].
struct PreparedPlan {
    statement: Option<Arc<Stmt>>,
    plan: Plan,
    catalog_tag: u64,
    client_types: Vec<Option<shoal_common::DataType>>,
}

/// One client connection's state.
pub struct ShoalSession {
    node: Arc<Node>,
    user: String,
    database: String,
    settings: BTreeMap<String, String>,
    /// Bumped by every SET (see `Session::parameter_generation`).
    settings_generation: u64,
    /// The generation at which each of `REPORTED_SETTINGS` last changed.
    reported_changed: [u64; REPORTED_SETTINGS.len()],
    txn: Option<Txn>,
    /// `shoal.read_consistency` and `shoal.max_staleness`, parsed.
    read_mode: ReadMode,
    /// `shoal.read_after`, parsed: reads wait for these applied indexes.
    read_after: Vec<(GroupId, u64)>,
    /// The log index of this session's last write (its causal token).
    last_write: u64,
    notices: Vec<Notice>,
    cancel: Arc<CancelState>,
    /// `statement_timeout` and `idle_in_transaction_session_timeout`, parsed (`None`: off).
    statement_timeout: Option<Duration>,
    idle_in_transaction_timeout: Option<Duration>,
    closed: bool,
    /// `currval`/`lastval` state: what this session's statements drew.
    sequences: SessionSequences,
}

/// Settings every session starts with (`SHOW`, ParameterStatus).
fn default_settings(node: &Node, user: &str, database: &str, application_name: &str) -> BTreeMap<String, String> {
    let pairs = [
        ("server_version", crate::SERVER_VERSION),
        ("server_version_num", "160004"),
        ("server_encoding", "UTF8"),
        ("client_encoding", "UTF8"),
        ("datestyle", "ISO, MDY"),
        ("timezone", "UTC"),
        ("intervalstyle", "postgres"),
        ("integer_datetimes", "on"),
        ("standard_conforming_strings", "on"),
        ("is_superuser", "on"),
        ("search_path", "\"$user\", public"),
        ("transaction_isolation", "serializable"),
        ("default_transaction_isolation", "serializable"),
        ("transaction_read_only", "off"),
        ("default_transaction_read_only", "off"),
        ("extra_float_digits", "1"),
        ("max_identifier_length", "63"),
        ("statement_timeout", "0"),
        ("lock_timeout", "0"),
        ("idle_in_transaction_session_timeout", "0"),
        ("lc_messages", "C"),
        ("lc_monetary", "C"),
        ("lc_numeric", "C"),
        ("lc_time", "C"),
        ("bytea_output", "hex"),
        ("client_min_messages", "notice"),
        ("default_text_search_config", "pg_catalog.english"),
        ("max_connections", "1000"),
        ("synchronous_commit", "on"),
        ("shoal.read_consistency", "linearizable"),
        ("shoal.max_staleness", DEFAULT_MAX_STALENESS),
        ("shoal.read_after", ""),
        ("shoal.causal_token", ""),
    ];
    let mut settings: BTreeMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    settings.insert("application_name".into(), application_name.into());
    settings.insert("session_authorization".into(), user.into());
    settings.insert("shoal.node_id".into(), node.identity.node_id.to_string());
    settings.insert("shoal.database".into(), database.into());
    settings
}

/// Names reported in ParameterStatus at startup, with PostgreSQL's spelling.
const REPORTED_SETTINGS: [(&str, &str); 11] = [
    ("server_version", "server_version"),
    ("server_encoding", "server_encoding"),
    ("client_encoding", "client_encoding"),
    ("datestyle", "DateStyle"),
    ("timezone", "TimeZone"),
    ("intervalstyle", "IntervalStyle"),
    ("integer_datetimes", "integer_datetimes"),
    ("standard_conforming_strings", "standard_conforming_strings"),
    ("is_superuser", "is_superuser"),
    ("application_name", "application_name"),
    ("shoal.causal_token", "shoal.causal_token"),
];

/// Settings a session reads but cannot change.
const READ_ONLY_SETTINGS: [&str; 6] = [
    "server_version",
    "server_version_num",
    "server_encoding",
    "shoal.causal_token",
    "shoal.node_id",
    "integer_datetimes",
];

fn command_tag(kind: WriteKind, rows: u64) -> String {
    match kind {
        WriteKind::Insert => format!("INSERT 0 {rows}"),
        WriteKind::Update => format!("UPDATE {rows}"),
        WriteKind::Delete => format!("DELETE {rows}"),
        WriteKind::Select => format!("SELECT {rows}"),
    }
}

fn statement_kind(plan: &Plan) -> &'static str {
    match plan {
        Plan::Query { .. } | Plan::Write { kind: WriteKind::Select, .. } => "select",
        Plan::Write { kind: WriteKind::Insert, .. } => "insert",
        Plan::Write { kind: WriteKind::Update, .. } => "update",
        Plan::Write { kind: WriteKind::Delete, .. } => "delete",
        Plan::Ddl { .. } | Plan::Distribute { .. } => "ddl",
        Plan::Transaction(_) => "transaction",
        _ => "other",
    }
}

/// The metrics kind of a statement that has not been planned.
fn ast_kind(stmt: &Stmt) -> &'static str {
    let statement = match stmt {
        Stmt::Sql(s) => s,
        Stmt::AlterSequence(_) => return "ddl",
        Stmt::Fetch(_) => return "other",
    };
    match statement {
        Statement::Query(_) => "select",
        Statement::Insert(_) => "insert",
        Statement::Update { .. } => "update",
        Statement::Delete(_) => "delete",
        Statement::CreateTable(_)
        | Statement::AlterTable { .. }
        | Statement::Drop { .. }
        | Statement::CreateIndex(_)
        | Statement::CreateView { .. }
        | Statement::CreateSequence { .. } => "ddl",
        _ if is_transaction_control(stmt) => "transaction",
        _ => "other",
    }
}

fn to_columns(columns: &[OutputColumn]) -> Vec<Column> {
    columns
        .iter()
        .map(|c| Column {
            name: c.name.clone(),
            data_type: c.data_type.clone(),
            table_oid: c.table_oid,
            column_id: c.column_id,
        })
        .collect()
}

fn aborted_error() -> Error {
    Error::new(
        SqlState::IN_FAILED_SQL_TRANSACTION,
        "current transaction is aborted, commands ignored until end of transaction block",
    )
}

impl ShoalSession {
    pub fn new(node: Arc<Node>, user: String, database: String, application_name: String) -> ShoalSession {
        let settings = default_settings(&node, &user, &database, &application_name);
        node.metrics.connections.inc();
        node.metrics.connections_total.inc();
        ShoalSession {
            node,
            user,
            database,
            settings,
            settings_generation: 0,
            reported_changed: [0; REPORTED_SETTINGS.len()],
            txn: None,
            read_mode: ReadMode::Linearizable,
            read_after: Vec::new(),
            last_write: 0,
            notices: Vec::new(),
            cancel: Arc::new(CancelState::default()),
            statement_timeout: None,
            idle_in_transaction_timeout: None,
            closed: false,
            sequences: SessionSequences::default(),
        }
    }

    /// The catalog this session plans against.
    fn catalog(&self) -> Arc<CatalogState> {
        match &self.txn {
            Some(txn) => txn.catalog.clone(),
            None => self.node.catalog(),
        }
    }

    /// A setting from the startup packet's `options` (`-c name=value`).
    pub fn apply_startup_setting(&mut self, name: &str, value: String) -> Result<()> {
        self.set(name, Some(value), false)
    }

    /// What the session's next read on `group` must have seen: its level,
    /// the floor `shoal.read_after` sets, and its own last write.
    fn read_point(&self, group: GroupId) -> ReadPoint {
        let own = if group == DATA_GROUP { self.last_write } else { 0 };
        ReadPoint { mode: self.read_mode, after: token_floor(&self.read_after, group).max(own) }
    }

    /// Counts a change of setting `name` (of any when `None`), so the
    /// connection reports the ones it sends as ParameterStatus.
    fn settings_changed(&mut self, name: Option<&str>) {
        self.settings_generation += 1;
        for ((key, _), changed) in REPORTED_SETTINGS.iter().zip(&mut self.reported_changed) {
            if name.is_none_or(|name| name == *key) {
                *changed = self.settings_generation;
            }
        }
    }

    /// Records a committed write's log index as the session's causal token.
    fn wrote(&mut self, index: u64) {
        if index > self.last_write {
            self.last_write = index;
            self.settings.insert("shoal.causal_token".into(), format_token(&[(DATA_GROUP, index)]));
            self.settings_changed(Some("shoal.causal_token"));
        }
    }

    fn plan_against_catalog(
        &self,
        statement: &Stmt,
        client_types: &[Option<shoal_common::DataType>],
    ) -> Result<(Plan, u64)> {
        let catalog = self.catalog();
        shoal_sql::plan(statement, &catalog.catalog, client_types).map(|plan| (plan, catalog.tag))
    }

    /// Plans `statement`. Outside a transaction the published catalog can
    /// lag what this session's read must see (DDL committed through another
    /// node, or by the writer of a causal token, not yet applied or published
    /// here), so a plan that misses a relation, column or object is tried
    /// once more after catching up to the session's read point and reloading
    /// the catalog from the replica. A real typo pays that round only on its
    /// error path.
    async fn plan(&mut self, statement: &Stmt, client_types: &[Option<shoal_common::DataType>]) -> Result<(Plan, u64)> {
        let mut result = self.plan_against_catalog(statement, client_types);
        if let Err(e) = &result {
            let missing = [SqlState::UNDEFINED_TABLE, SqlState::UNDEFINED_COLUMN, SqlState::UNDEFINED_OBJECT];
            if self.txn.is_none() && missing.contains(&e.code) && self.catch_up_catalog().await.is_ok() {
                result = self.plan_against_catalog(statement, client_types);
            }
        }
        if result.is_err() {
            // Statements that fail to plan never reach `run`; count them here.
            self.node.metrics.observe(ast_kind(statement), 0.0, true);
        }
        result
    }

    /// Brings this replica to the session's read point and publishes the
    /// catalog it holds.
    async fn catch_up_catalog(&mut self) -> Result<()> {
        cluster::read_point(&self.node, DATA_GROUP, self.read_point(DATA_GROUP)).await?;
        let catalog = crate::node::load_catalog(&self.node.data)?;
        self.node.publish_catalog(CatalogState::new(catalog));
        Ok(())
    }

    /// Runs one planned statement, keeping PostgreSQL's transaction rules.
    async fn run(
        &mut self,
        statement: Option<&Stmt>,
        mut plan: Plan,
        mut params: Vec<Value>,
    ) -> Result<StatementResult> {
        let started = Instant::now();
        if let Plan::Write { lifted, .. } = &mut plan {
            params.append(lifted);
        }
        let kind = statement_kind(&plan);
        let in_failed_txn = self.txn.as_ref().is_some_and(|t| t.failed);
        let ends_failure =
            matches!(plan, Plan::Transaction(TxnControl::Rollback | TxnControl::RollbackTo(_) | TxnControl::Commit));
        // Reads are always safe to run again; only a write's unknown outcome needs saying.
        let writes = matches!(plan, Plan::Write { .. } | Plan::Ddl { .. } | Plan::Transaction(TxnControl::Commit));
        // An INSERT … VALUES keeps its rows and parameters to name the key of a unique violation.
        let probe = match &mut plan {
            Plan::Write { key_probe, .. } => key_probe.take().map(|probe| (probe, params.clone())),
            _ => None,
        };
        self.cancel.start_statement(self.statement_timeout);
        let mut result =
            if in_failed_txn && !ends_failure { Err(aborted_error()) } else { self.dispatch(plan, params).await };
        self.cancel.end_statement();
        if let (Err(e), Some(reason)) = (&mut result, self.cancel.reason()) {
            if e.code == SqlState::QUERY_CANCELED {
                // Worded for what stopped it (possibly on another node).
                e.message = crate::cancel::canceled(Some(reason)).message;
            }
        }
        let mut key_detail = None;
        if let (Err(e), Some((probe, params))) = (&result, probe) {
            if e.code == SqlState::UNIQUE_VIOLATION {
                key_detail = self.unique_key(&e.message, &probe, params).await;
            }
        }
        if let (Err(_), Some(txn)) = (&result, self.txn.as_mut()) {
            txn.failed = true;
        }
        self.node.metrics.observe(kind, started.elapsed().as_secs_f64(), result.is_err());
        result.map_err(|e| {
            let mut e = self.refine_error(e, statement);
            if key_detail.is_some() {
                e.detail = key_detail;
            }
            // A write whose outcome is unknown: say whether it may simply be run again.
            if let (true, Some(statement)) = (writes && e.code == SqlState::STATEMENT_COMPLETION_UNKNOWN, statement) {
                if e.detail.is_none() {
                    e.detail = Some(crate::idempotency::classify(statement, &self.catalog().catalog).detail());
                }
            }
            e
        })
    }

    /// PostgreSQL's `Key (name)=(apple) already exists.` for a unique
    /// violation of an `INSERT … VALUES`: SQLite names only the columns, so
    /// the inserted rows are looked up again (see `shoal_sql::unique_key_probe`).
    /// `None` when the key cannot be told; the error then keeps its generic detail.
    async fn unique_key(&mut self, message: &str, probe: &shoal_sql::KeyProbe, params: Vec<Value>) -> Option<String> {
        let (sql, cols) = shoal_sql::unique_key_probe(message, probe)?;
        let output = self.read(sql, params).await.ok()?;
        let row = output.rows.into_iter().next()?;
        Some(shoal_sql::unique_violation_detail(&self.catalog().catalog, &probe.table, &cols, &row))
    }

    /// Turns SQLite's wording of constraint errors into PostgreSQL's;
    /// `statement` tells which table a foreign-key failure is about.
    fn refine_error(&self, err: Error, statement: Option<&Stmt>) -> Error {
        // Class 23: SQLite's constraint messages (including the generated
        // length and type checks) become PostgreSQL's.
        if err.code.as_str().starts_with("23") {
            let target = statement.and_then(shoal_sql::write_target);
            if let Some(mapped) = shoal_sql::map_write_error(&err.message, &self.catalog().catalog, target.as_ref()) {
                return mapped;
            }
        }
        err
    }

    async fn dispatch(&mut self, plan: Plan, mut params: Vec<Value>) -> Result<StatementResult> {
        if let Plan::Query { sequence_state: true, .. } | Plan::Write { sequence_state: true, .. } = &plan {
            // currval()/lastval() read the session's state from one more parameter.
            params.push(Value::Text(self.sequences.encode()));
        }
        match plan {
            Plan::Empty => Ok(StatementResult::Empty),
            Plan::Noop { tag, notice } => {
                if let Some(message) = notice {
                    self.notices.push(Notice {
                        severity: "NOTICE".into(),
                        code: SqlState::SUCCESSFUL_COMPLETION,
                        message,
                    });
                }
                Ok(StatementResult::Command { tag })
            }
            Plan::Query { sql, columns, reads, .. } => {
                let output = if reads == SystemReads::default() {
                    self.read(sql, params).await?
                } else {
                    self.read_catalog(sql, params, reads).await?
                };
                let tag = format!("SELECT {}", output.rows.len());
                Ok(StatementResult::Rows { columns: Arc::new(to_columns(&columns)), rows: output.rows, tag })
            }
            Plan::Write { kind, sql, columns, .. } => {
                let output = self.write(sql, params).await?;
                self.sequences.apply(&output.sequences);
                let tag = command_tag(kind, if columns.is_empty() { output.changes } else { output.rows.len() as u64 });
                if columns.is_empty() {
                    Ok(StatementResult::Command { tag })
                } else {
                    Ok(StatementResult::Rows { columns: Arc::new(to_columns(&columns)), rows: output.rows, tag })
                }
            }
            Plan::Ddl { statements, catalog, tag, notices } => {
                self.ddl(statements, catalog).await?;
                for message in notices {
                    self.notices.push(Notice {
                        severity: "NOTICE".into(),
                        code: SqlState::SUCCESSFUL_COMPLETION,
                        message,
                    });
                }
                Ok(StatementResult::Command { tag })
            }
            Plan::Distribute { catalog, function } => {
                self.ddl(Vec::new(), catalog).await?;
                Ok(StatementResult::Rows {
                    columns: Arc::new(vec![text_column(&function)]),
                    rows: vec![vec![Value::Text(String::new())]],
                    tag: "SELECT 1".into(),
                })
            }
            Plan::Transaction(control) => self.transaction(control).await,
            Plan::Set { name, value, local } => {
                self.set(&name, value, local)?;
                Ok(StatementResult::Command { tag: "SET".into() })
            }
            Plan::SetConfig { name, value, local, .. } => {
                let arg = |a: &SettingArg| -> Result<Value> {
                    match a {
                        SettingArg::Literal(text) => Ok(Value::Text(text.clone())),
                        SettingArg::Param(i) => params.get(*i).cloned().ok_or_else(|| {
                            Error::new(
                                SqlState::PROTOCOL_VIOLATION,
                                format!("set_config: parameter ${} is missing", i + 1),
                            )
                        }),
                    }
                };
                let name = match arg(&name)? {
                    Value::Null => {
                        return Err(Error::new(
                            SqlState::NULL_VALUE_NOT_ALLOWED,
                            "set_config: the setting name is null",
                        ))
                    }
                    v => v.to_string(),
                };
                let value = match arg(&value)? {
                    Value::Null => String::new(),
                    v => v.to_string(),
                };
                let local = match arg(&local)? {
                    Value::Integer(i) => i != 0,
                    Value::Text(t) => matches!(t.to_ascii_lowercase().as_str(), "true" | "t" | "on" | "yes" | "1"),
                    _ => false,
                };
                self.set(&name, Some(value), local)?;
                let current = self.settings.get(&name.to_ascii_lowercase()).cloned().unwrap_or_default();
                Ok(StatementResult::Rows {
                    columns: Arc::new(vec![text_column("set_config")]),
                    rows: vec![vec![Value::Text(current)]],
                    tag: "SELECT 1".into(),
                })
            }
            Plan::Show { name } => self.show(&name),
            Plan::Explain { statement, route } => self.explain(*statement, &route, params).await,
            Plan::DeclareCursor { name, query, scroll } => self.declare_cursor(name, *query, scroll, params).await,
            Plan::Fetch(fetch) => self.fetch(&fetch),
            Plan::CloseCursor(name) => {
                let Some(txn) = self.txn.as_mut() else {
                    return Err(cursor_missing(name.as_deref().unwrap_or("")));
                };
                match name {
                    None => txn.cursors.clear(),
                    Some(n) => {
                        txn.cursors.remove(&n).ok_or_else(|| cursor_missing(&n))?;
                    }
                }
                Ok(StatementResult::Command { tag: "CLOSE CURSOR".into() })
            }
        }
    }

    /// `EXPLAIN`: the route (which shards, resolved with the bound
    /// parameters), the SQLite SQL, and SQLite's plan for it, indented by
    /// depth. The statement itself is not run.
    async fn explain(&mut self, statement: Plan, route: &Route, mut params: Vec<Value>) -> Result<StatementResult> {
        let (sql, reads, sequence_state) = match statement {
            Plan::Query { sql, reads, sequence_state, .. } => (sql, reads, sequence_state),
            Plan::Write { sql, mut lifted, sequence_state, .. } => {
                params.append(&mut lifted);
                (sql, SystemReads::default(), sequence_state)
            }
            _ => return Err(Error::internal("EXPLAIN of a statement that is neither a query nor a write")),
        };
        let mut lines = route_lines(route, &params);
        lines.push(format!("SQLite: {sql}"));
        if sequence_state {
            params.push(Value::Text(self.sequences.encode()));
        }
        let plan_sql = format!("EXPLAIN QUERY PLAN {sql}");
        let output = if reads == SystemReads::default() {
            self.read(plan_sql, params).await?
        } else {
            self.read_catalog(plan_sql, params, reads).await?
        };
        // Rows are (id, parent, notused, detail); a step is indented under its parent.
        let mut depth: BTreeMap<i64, usize> = BTreeMap::new();
        for row in &output.rows {
            let int = |v: Option<&Value>| match v {
                Some(Value::Integer(i)) => *i,
                _ => 0,
            };
            let (id, parent) = (int(row.first()), int(row.get(1)));
            let level = depth.get(&parent).map_or(1, |d| d + 1);
            depth.insert(id, level);
            let detail = match row.get(3) {
                Some(Value::Text(t)) => t.clone(),
                _ => String::new(),
            };
            lines.push(format!("{}{detail}", "  ".repeat(level)));
        }
        Ok(StatementResult::Rows {
            columns: Arc::new(vec![text_column("QUERY PLAN")]),
            rows: lines.into_iter().map(|l| vec![Value::Text(l)]).collect(),
            tag: "EXPLAIN".into(),
        })
    }

    // ----- cursors -----------------------------------------------------------

    /// `DECLARE`: runs the query now and keeps its rows in the transaction.
    async fn declare_cursor(
        &mut self,
        name: String,
        query: Plan,
        scroll: Option<bool>,
        mut params: Vec<Value>,
    ) -> Result<StatementResult> {
        let Some(txn) = self.txn.as_ref() else {
            return Err(Error::new(SqlState::parse("25P01"), "DECLARE CURSOR can only be used in transaction blocks"));
        };
        if txn.cursors.contains_key(&name) {
            return Err(Error::new(SqlState::parse("42P03"), format!("cursor \"{name}\" already exists")));
        }
        let Plan::Query { sql, columns, reads, sequence_state, .. } = query else {
            return Err(Error::internal("a cursor's plan is not a query"));
        };
        if sequence_state {
            params.push(Value::Text(self.sequences.encode()));
        }
        let output = if reads == SystemReads::default() {
            self.read(sql, params).await?
        } else {
            self.read_catalog(sql, params, reads).await?
        };
        let cursor = Cursor {
            columns: Arc::new(to_columns(&columns)),
            rows: output.rows,
            pos: 0,
            no_scroll: scroll == Some(false),
        };
        if let Some(txn) = self.txn.as_mut() {
            txn.cursors.insert(name, cursor);
        }
        Ok(StatementResult::Command { tag: "DECLARE CURSOR".into() })
    }

    /// `FETCH` / `MOVE` on an open cursor.
    fn fetch(&mut self, fetch: &shoal_sql::Fetch) -> Result<StatementResult> {
        let cursor = self
            .txn
            .as_mut()
            .and_then(|t| t.cursors.get_mut(&fetch.cursor))
            .ok_or_else(|| cursor_missing(&fetch.cursor))?;
        let rows = cursor.fetch(&fetch.direction)?;
        if fetch.move_only {
            return Ok(StatementResult::Command { tag: format!("MOVE {}", rows.len()) });
        }
        let tag = format!("FETCH {}", rows.len());
        Ok(StatementResult::Rows { columns: cursor.columns.clone(), rows, tag })
    }

    // ----- reads -------------------------------------------------------------

    async fn read(&mut self, sql: String, params: Vec<Value>) -> Result<QueryOutput> {
        let point = self.read_point(DATA_GROUP);
        let cancel = self.cancel.clone();
        let node = self.node.clone();
        let Some(txn) = self.txn.as_mut() else {
            // now() is the statement's start time, as for an autocommit write.
            let ctx = ExecContext::now(rand::random());
            cancel.interruptible(cluster::read_point(&node, DATA_GROUP, point)).await?;
            return node
                .data
                .read(move |reader| {
                    let _scope = StatementScope::enter(&ctx, 0);
                    run_read(reader, &cancel, &sql, &params)
                })
                .await;
        };
        if let Some(writer) = txn.writer.as_mut() {
            return writer.execute(sql, params, false, &cancel).await;
        }
        if txn.reader.is_none() {
            cancel.interruptible(cluster::read_point(&node, DATA_GROUP, point)).await?;
            let reader = node.data.checkout_reader()?;
            let (reader, snapshot) = reader
                .run(|reader| {
                    // The first read fixes the snapshot; reading the applied
                    // index inside it says exactly which state it is.
                    if reader.conn.is_autocommit() {
                        reader.conn.execute_batch("BEGIN").map_err(shoal_storage::from_sqlite)?;
                    }
                    reader
                        .conn
                        .query_row("SELECT log_index FROM __shoal_applied WHERE id = 1", [], |r| r.get::<_, i64>(0))
                        .map_err(shoal_storage::from_sqlite)
                })
                .await;
            let reader = reader.ok_or_else(|| Error::internal("transaction snapshot lost"))?;
            match snapshot {
                Ok(index) => txn.reader = Some((reader, index as u64)),
                Err(e) => {
                    let _ = reader.conn.execute_batch("ROLLBACK");
                    node.data.checkin_reader(reader);
                    return Err(e);
                }
            }
        }
        let Some((reader, index)) = txn.reader.take() else {
            return Err(Error::internal("transaction snapshot missing"));
        };
        let ctx = txn.ctx;
        let (reader, result) = reader
            .run(move |reader| {
                // now() is the transaction's start time on every statement.
                let _scope = StatementScope::enter(&ctx, READ_STATEMENT);
                run_read(reader, &cancel, &sql, &params)
            })
            .await;
        let reader = reader.ok_or_else(|| Error::internal("transaction snapshot lost"))?;
        txn.reader = Some((reader, index));
        result
    }

    /// A read of the catalog or system views: on a read connection with the
    /// in-memory schemas attached and brought up to date (the system views
    /// only when the statement reads them).
    async fn read_catalog(&mut self, sql: String, params: Vec<Value>, reads: SystemReads) -> Result<QueryOutput> {
        let catalog = self.catalog();
        let status = match reads.system_views {
            true => Some(catalog_views::SystemState::gather(&self.node).await),
            false => None,
        };
        let cancel = self.cancel.clone();
        let admin = match reads.admin {
            Some(call) => {
                if self.txn.is_some() && call != AdminCall::Verify {
                    return Err(Error::new(
                        SqlState::ACTIVE_SQL_TRANSACTION,
                        "membership changes cannot run inside a transaction block",
                    )
                    .with_hint("run it on its own, outside BEGIN … COMMIT"));
                }
                Some(catalog_views::run_admin(&self.node, call).await?)
            }
            None => None,
        };
        let point = self.read_point(DATA_GROUP);
        let ctx = self.txn.as_ref().map(|t| t.ctx).unwrap_or_else(|| ExecContext::now(rand::random()));
        // current_setting() in this read sees the session's values.
        let settings: shoal_storage::session_settings::Settings = Arc::new(self.settings.clone());
        cancel.interruptible(cluster::read_point(&self.node, DATA_GROUP, point)).await?;
        self.node
            .data
            .read(move |reader| {
                let _scope = StatementScope::enter(&ctx, READ_STATEMENT);
                let _settings = shoal_storage::session_settings::SettingsScope::enter(settings.clone());
                catalog_views::prepare(reader, &catalog)?;
                if let Some(status) = &status {
                    catalog_views::refresh_system_views(&reader.conn, status, &catalog.catalog)?;
                }
                if let Some(result) = &admin {
                    catalog_views::fill_admin(&reader.conn, result)?;
                }
                run_read(reader, &cancel, &sql, &params)
            })
            .await
    }

    // ----- writes ------------------------------------------------------------

    /// Makes sure the open transaction holds the write slot, validating that
    /// its read snapshot is still current (see the module docs).
    async fn ensure_writer(&mut self) -> Result<&mut Writer> {
        let node = self.node.clone();
        let txn = self.txn.as_mut().ok_or_else(|| Error::internal("no transaction"))?;
        if txn.read_only {
            return Err(Error::new(
                SqlState::READ_ONLY_SQL_TRANSACTION,
                "cannot execute a writing statement in a read-only transaction",
            ));
        }
        if txn.writer.is_none() {
            let (writer, applied_at_begin) = Writer::begin(&node, DATA_GROUP, txn.ctx, &self.cancel).await?;
            if let Some((reader, snapshot)) = txn.reader.take() {
                let _ = reader.conn.execute_batch("ROLLBACK");
                node.data.checkin_reader(reader);
                if applied_at_begin != snapshot {
                    let _ = writer.rollback().await;
                    return Err(Error::new(
                        SqlState::SERIALIZATION_FAILURE,
                        "could not serialize access due to concurrent update",
                    )
                    .with_detail("another transaction committed after this transaction's first read")
                    .with_hint("retry the transaction; write first or read in the same statement to avoid this"));
                }
            }
            txn.writer = Some(writer);
        }
        txn.writer.as_mut().ok_or_else(|| Error::internal("writer missing"))
    }

    async fn write(&mut self, sql: String, params: Vec<Value>) -> Result<QueryOutput> {
        if self.txn.is_none() {
            let ctx = ExecContext::now(rand::random());
            let (output, index) =
                cluster::write_autocommit_cancellable(&self.node, DATA_GROUP, ctx, sql, params, &self.cancel).await?;
            self.wrote(index);
            return Ok(output);
        }
        let cancel = self.cancel.clone();
        let writer = self.ensure_writer().await?;
        writer.execute(sql, params, true, &cancel).await
    }

    async fn ddl(&mut self, statements: Vec<String>, catalog: shoal_sql::Catalog) -> Result<()> {
        let implicit = self.txn.is_none();
        if implicit {
            self.begin(false);
        }
        let result = self.ddl_in_txn(statements, catalog).await;
        if implicit {
            match result {
                Ok(()) => self.commit().await.map(|_| ()),
                Err(e) => {
                    self.rollback().await;
                    Err(e)
                }
            }
        } else {
            result
        }
    }

    async fn ddl_in_txn(&mut self, statements: Vec<String>, catalog: shoal_sql::Catalog) -> Result<()> {
        let json = serde_json::to_string(&catalog).map_err(|e| Error::internal(format!("encoding catalog: {e}")))?;
        let cancel = self.cancel.clone();
        let writer = self.ensure_writer().await?;
        for sql in statements {
            writer.execute(sql, Vec::new(), true, &cancel).await?;
        }
        writer.store_catalog(json).await?;
        if let Some(txn) = self.txn.as_mut() {
            txn.catalog = CatalogState::new(catalog);
            txn.catalog_changed = true;
        }
        Ok(())
    }

    // ----- transaction control ----------------------------------------------

    fn begin(&mut self, read_only: bool) {
        self.txn = Some(Txn {
            ctx: ExecContext::now(rand::random()),
            read_only,
            writer: None,
            reader: None,
            catalog: self.node.catalog(),
            catalog_changed: false,
            failed: false,
            savepoints: Vec::new(),
            cursors: BTreeMap::new(),
            local_settings: Vec::new(),
        });
    }

    /// Commits the open transaction; a failed one is rolled back instead
    /// (PostgreSQL answers COMMIT of a failed transaction with ROLLBACK).
    async fn commit(&mut self) -> Result<&'static str> {
        let Some(mut txn) = self.txn.take() else {
            self.warn(SqlState::NO_ACTIVE_SQL_TRANSACTION, "there is no transaction in progress");
            return Ok("COMMIT");
        };
        self.restore_local_settings(std::mem::take(&mut txn.local_settings));
        if let Some((reader, _)) = txn.reader.take() {
            let _ = reader.conn.execute_batch("ROLLBACK");
            self.node.data.checkin_reader(reader);
        }
        if txn.failed {
            if let Some(writer) = txn.writer.take() {
                writer.rollback().await?;
            }
            return Ok("ROLLBACK");
        }
        if let Some(writer) = txn.writer.take() {
            let index = writer.commit().await?;
            self.wrote(index);
            if txn.catalog_changed {
                self.node.publish_catalog(txn.catalog.clone());
            }
        }
        Ok("COMMIT")
    }

    async fn rollback(&mut self) {
        if let Some(mut txn) = self.txn.take() {
            self.restore_local_settings(std::mem::take(&mut txn.local_settings));
            if let Some((reader, _)) = txn.reader.take() {
                let _ = reader.conn.execute_batch("ROLLBACK");
                self.node.data.checkin_reader(reader);
            }
            if let Some(writer) = txn.writer.take() {
                if let Err(e) = writer.rollback().await {
                    tracing::warn!(error = %e, "rollback failed");
                }
            }
        }
    }

    fn warn(&mut self, code: SqlState, message: &str) {
        self.notices.push(Notice { severity: "WARNING".into(), code, message: message.into() });
    }

    async fn transaction(&mut self, control: TxnControl) -> Result<StatementResult> {
        let tag = match control {
            TxnControl::Begin { read_only } => {
                if self.txn.is_some() {
                    self.warn(SqlState::ACTIVE_SQL_TRANSACTION, "there is already a transaction in progress");
                } else {
                    self.begin(read_only);
                }
                "BEGIN"
            }
            TxnControl::Commit => self.commit().await?,
            TxnControl::Rollback => {
                if self.txn.is_none() {
                    self.warn(SqlState::NO_ACTIVE_SQL_TRANSACTION, "there is no transaction in progress");
                }
                self.rollback().await;
                "ROLLBACK"
            }
            TxnControl::Savepoint(name) => {
                self.require_txn("SAVEPOINT")?;
                let sql = format!("SAVEPOINT {}", quote_ident(&name));
                self.ensure_writer().await?.savepoint(sql).await?;
                if let Some(txn) = self.txn.as_mut() {
                    txn.savepoints.push(name);
                }
                "SAVEPOINT"
            }
            TxnControl::Release(name) => {
                self.require_txn("RELEASE SAVEPOINT")?;
                let position = self.savepoint_position(&name)?;
                let sql = format!("RELEASE {}", quote_ident(&name));
                self.ensure_writer().await?.savepoint(sql).await?;
                if let Some(txn) = self.txn.as_mut() {
                    txn.savepoints.truncate(position);
                }
                "RELEASE"
            }
            TxnControl::RollbackTo(name) => {
                self.require_txn("ROLLBACK TO SAVEPOINT")?;
                let position = self.savepoint_position(&name)?;
                let sql = format!("ROLLBACK TO {}", quote_ident(&name));
                self.ensure_writer().await?.savepoint(sql).await?;
                if let Some(txn) = self.txn.as_mut() {
                    txn.savepoints.truncate(position + 1);
                    txn.failed = false;
                }
                "ROLLBACK"
            }
        };
        Ok(StatementResult::Command { tag: tag.into() })
    }

    fn require_txn(&self, what: &str) -> Result<()> {
        if self.txn.is_none() {
            return Err(Error::new(
                SqlState::NO_ACTIVE_SQL_TRANSACTION,
                format!("{what} can only be used in transaction blocks"),
            ));
        }
        Ok(())
    }

    fn savepoint_position(&self, name: &str) -> Result<usize> {
        self.txn
            .as_ref()
            .and_then(|t| t.savepoints.iter().rposition(|s| s == name))
            .ok_or_else(|| Error::new(SqlState(*b"3B001"), format!("savepoint \"{name}\" does not exist")))
    }

    // ----- settings ----------------------------------------------------------

    /// `SET [LOCAL] name = value` (`None`: the default). A LOCAL change is
    /// undone when the transaction ends; outside one it only warns, as in
    /// PostgreSQL.
    fn set(&mut self, name: &str, value: Option<String>, local: bool) -> Result<()> {
        let name = canonical_setting(name);
        if READ_ONLY_SETTINGS.contains(&name.as_str()) {
            return Err(Error::new(SqlState(*b"55P02"), format!("parameter \"{name}\" cannot be changed")));
        }
        if local && self.txn.is_none() {
            self.warn(SqlState::NO_ACTIVE_SQL_TRANSACTION, "SET LOCAL can only be used in transaction blocks");
            return Ok(());
        }
        let previous = self.settings.get(&name).cloned();
        // Rare, and RESET ALL or a derived setting may change several.
        self.settings_changed(None);
        self.apply_setting(name.clone(), value)?;
        if local {
            if let Some(txn) = self.txn.as_mut() {
                txn.local_settings.push((name, previous));
            }
        }
        Ok(())
    }

    /// Undoes a transaction's SET LOCALs, newest first.
    fn restore_local_settings(&mut self, saved: Vec<(String, Option<String>)>) {
        if saved.is_empty() {
            return;
        }
        for (name, previous) in saved.into_iter().rev() {
            match previous {
                Some(value) => self.settings.insert(name, value),
                None => self.settings.remove(&name),
            };
        }
        self.settings_changed(None);
        // The restored values were valid when they were set.
        if let Err(e) = self.derive_read_settings().and_then(|()| self.derive_timeouts()) {
            tracing::warn!(error = %e, "restoring settings after SET LOCAL");
        }
    }

    /// Recomputes the parsed forms of the read-consistency settings.
    fn derive_read_settings(&mut self) -> Result<()> {
        let get = |k: &str| self.settings.get(k).map(String::as_str).unwrap_or("");
        let mode = match get("shoal.read_consistency") {
            "follower" => ReadMode::Follower,
            "bounded" => {
                let staleness = match get("shoal.max_staleness") {
                    "" => DEFAULT_MAX_STALENESS,
                    text => text,
                };
                ReadMode::Bounded(parse_duration("shoal.max_staleness", staleness)?)
            }
            _ => ReadMode::Linearizable,
        };
        let after = parse_token(get("shoal.read_after"))?;
        self.read_mode = mode;
        self.read_after = after;
        Ok(())
    }

    /// Recomputes the parsed forms of the timeout settings.
    fn derive_timeouts(&mut self) -> Result<()> {
        let get = |name: &str| -> Result<Option<Duration>> {
            let text = self.settings.get(name).map(String::as_str).unwrap_or("0");
            let (ms, _) = parse_ms_setting(name, text)?;
            Ok((ms > 0).then(|| Duration::from_millis(ms)))
        };
        self.statement_timeout = get("statement_timeout")?;
        self.idle_in_transaction_timeout = get("idle_in_transaction_session_timeout")?;
        Ok(())
    }

    fn apply_setting(&mut self, name: String, value: Option<String>) -> Result<()> {
        if matches!(name.as_str(), "transaction isolation level" | "session characteristics") {
            return Ok(());
        }
        let value = match value {
            Some(v) => v,
            None => {
                let defaults = default_settings(&self.node, &self.user, &self.database, "");
                match defaults.get(&name) {
                    Some(v) => v.clone(),
                    None if name.contains('.') => String::new(),
                    None => return Err(unknown_setting(&name)),
                }
            }
        };
        match name.as_str() {
            "timezone" => {
                let v = value.trim_matches('\'');
                if !["utc", "etc/utc", "gmt", "z", "+00", "+00:00", "utc0", "zulu", "universal"]
                    .contains(&v.to_ascii_lowercase().as_str())
                {
                    return Err(Error::unsupported(format!("time zone \"{v}\" (Shoal sessions run in UTC)"))
                        .with_hint("SET TIME ZONE 'UTC'"));
                }
                self.settings.insert(name, "UTC".into());
                return Ok(());
            }
            "client_encoding" => {
                let v = value.trim_matches('\'').to_ascii_uppercase().replace('-', "");
                if v != "UTF8" && v != "UNICODE" {
                    return Err(Error::unsupported(format!("client encoding \"{value}\" (only UTF8)")));
                }
                self.settings.insert(name, "UTF8".into());
                return Ok(());
            }
            "shoal.read_consistency" => {
                let v = value.to_ascii_lowercase();
                if !["linearizable", "bounded", "follower"].contains(&v.as_str()) {
                    return Err(Error::new(
                        SqlState::INVALID_PARAMETER_VALUE,
                        format!("invalid value for parameter \"shoal.read_consistency\": \"{value}\""),
                    )
                    .with_hint("use 'linearizable', 'bounded' or 'follower'"));
                }
                self.settings.insert(name, v);
                return self.derive_read_settings();
            }
            "shoal.max_staleness" => {
                parse_duration(&name, &value)?;
                self.settings.insert(name, value.trim().to_string());
                return self.derive_read_settings();
            }
            "shoal.read_after" => {
                parse_token(&value)?;
                self.settings.insert(name, value.trim().to_string());
                return self.derive_read_settings();
            }
            "statement_timeout" | "lock_timeout" | "idle_in_transaction_session_timeout" => {
                let (_, shown) = parse_ms_setting(&name, &value)?;
                self.settings.insert(name, shown);
                return self.derive_timeouts();
            }
            _ => {}
        }
        if self.settings.contains_key(&name) || name.contains('.') || ACCEPTED_SETTINGS.contains(&name.as_str()) {
            self.settings.insert(name, value);
            Ok(())
        } else {
            Err(unknown_setting(&name))
        }
    }

    fn show(&self, name: &str) -> Result<StatementResult> {
        let name = name.to_ascii_lowercase();
        let text = |column: &str, rows: Vec<Vec<Value>>| StatementResult::Rows {
            columns: Arc::new(vec![Column {
                name: column.into(),
                data_type: shoal_common::DataType::Text,
                table_oid: 0,
                column_id: 0,
            }]),
            tag: "SHOW".to_string(),
            rows,
        };
        if name == "all" {
            let rows =
                self.settings.iter().map(|(k, v)| vec![Value::Text(k.clone()), Value::Text(v.clone())]).collect();
            return Ok(StatementResult::Rows {
                columns: Arc::new(vec![text_column("name"), text_column("setting")]),
                rows,
                tag: "SHOW".into(),
            });
        }
        let key = show_column(&name);
        let value = self.settings.get(&key).cloned().ok_or_else(|| unknown_setting(&name))?;
        Ok(text(&key, vec![vec![Value::Text(value)]]))
    }

    async fn prepare_plan(
        &mut self,
        statement: Stmt,
        client_types: &[Option<shoal_common::DataType>],
    ) -> Result<Prepared> {
        let sql = statement.to_string();
        let (plan, tag) = self.plan(&statement, client_types).await?;
        let (param_types, columns) = match &plan {
            Plan::Query { param_types, columns, .. } | Plan::Write { param_types, columns, .. } => {
                (param_types.clone(), to_columns(columns))
            }
            Plan::DeclareCursor { query, .. } => match query.as_ref() {
                Plan::Query { param_types, .. } => (param_types.clone(), Vec::new()),
                _ => (Vec::new(), Vec::new()),
            },
            Plan::SetConfig { param_types, .. } => (param_types.clone(), vec![text_column("set_config")]),
            Plan::Distribute { function, .. } => (Vec::new(), vec![text_column(function)]),
            Plan::Explain { statement, .. } => match statement.as_ref() {
                Plan::Query { param_types, .. } | Plan::Write { param_types, .. } => {
                    (param_types.clone(), vec![text_column("QUERY PLAN")])
                }
                _ => (Vec::new(), vec![text_column("QUERY PLAN")]),
            },
            // Described like the rows `show` answers with.
            Plan::Show { name } if name == "all" => (Vec::new(), vec![text_column("name"), text_column("setting")]),
            Plan::Show { name } => (Vec::new(), vec![text_column(&show_column(name))]),
            _ => (Vec::new(), Vec::new()),
        };
        Ok(Prepared {
            sql,
            param_types,
            columns,
            handle: Arc::new(PreparedPlan {
                statement: Some(Arc::new(statement)),
                plan,
                catalog_tag: tag,
                client_types: client_types.to_vec(),
            }),
        })
    }
}

/// Settings clients commonly set that Shoal accepts and reports back.
const ACCEPTED_SETTINGS: [&str; 8] = [
    "application_name",
    "extra_float_digits",
    "statement_timeout",
    "lock_timeout",
    "search_path",
    "datestyle",
    "client_min_messages",
    "idle_in_transaction_session_timeout",
];

/// The setting `SHOW name` reads, which also names its result column.
fn show_column(name: &str) -> String {
    match name.to_ascii_lowercase().as_str() {
        "transaction isolation level" | "transaction_isolation" => "transaction_isolation".to_string(),
        "time zone" => "timezone".to_string(),
        other => other.to_string(),
    }
}

/// A setting's name as stored: lower case, with PostgreSQL's aliases resolved.
fn canonical_setting(name: &str) -> String {
    let name = name.to_ascii_lowercase();
    match name.as_str() {
        "time zone" | "time_zone" => "timezone".to_string(),
        "names" => "client_encoding".to_string(),
        _ => name,
    }
}

/// The `Route:` lines of `EXPLAIN`: per distributed table, the shards
/// reached and why; every shard lives in the data group today.
fn route_lines(route: &Route, params: &[Value]) -> Vec<String> {
    let mut lines = Vec::new();
    for t in &route.distributed {
        let shards = t.shards(params);
        let (n, k) = (t.shard_count, shards.len());
        let line = match &t.keys {
            None => format!("Route: {}: all {n} shards ({}), on group {DATA_GROUP}", t.table, t.why_all),
            Some(_) => {
                let numbers: Vec<String> = shards.iter().map(|s| (s + 1).to_string()).collect();
                let noun = if k == 1 { "shard" } else { "shards" };
                format!(
                    "Route: {}: {k} of {n} shards ({} → {noun} {}), on group {DATA_GROUP}",
                    t.table,
                    t.keys_text(),
                    numbers.join(", ")
                )
            }
        };
        lines.push(line);
    }
    if !route.reference.is_empty() {
        lines.push(format!("Route: reference tables {}: the copy on group {DATA_GROUP}", route.reference.join(", ")));
    }
    if lines.is_empty() {
        lines.push(format!("Route: group {DATA_GROUP} (no distributed table)"));
    }
    lines
}

fn text_column(name: &str) -> Column {
    Column { name: name.into(), data_type: shoal_common::DataType::Text, table_oid: 0, column_id: 0 }
}

fn cursor_missing(name: &str) -> Error {
    Error::new(SqlState::INVALID_CURSOR_NAME, format!("cursor \"{name}\" does not exist"))
}

fn unknown_setting(name: &str) -> Error {
    Error::new(SqlState::UNDEFINED_OBJECT, format!("unrecognized configuration parameter \"{name}\""))
}

fn is_transaction_control(statement: &Stmt) -> bool {
    let Stmt::Sql(statement) = statement else { return false };
    matches!(
        statement,
        Statement::StartTransaction { .. }
            | Statement::Commit { .. }
            | Statement::Rollback { .. }
            | Statement::Savepoint { .. }
            | Statement::ReleaseSavepoint { .. }
    )
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[async_trait]
impl Session for ShoalSession {
    async fn simple_query(&mut self, sql: &str) -> Vec<Result<StatementResult>> {
        let statements = match shoal_sql::parse(sql) {
            Ok(statements) => statements,
            Err(e) => {
                if let Some(txn) = self.txn.as_mut() {
                    txn.failed = true;
                }
                return vec![Err(e)];
            }
        };
        if statements.is_empty() {
            return vec![Ok(StatementResult::Empty)];
        }
        // Several statements in one Query message form one implicit
        // transaction, as in PostgreSQL, unless they manage transactions.
        let implicit = statements.len() > 1 && self.txn.is_none() && !statements.iter().any(is_transaction_control);
        if implicit {
            self.begin(false);
        }
        let mut results = Vec::with_capacity(statements.len());
        for statement in &statements {
            let result = match self.plan(statement, &[]).await {
                Ok((plan, _)) => self.run(Some(statement), plan, Vec::new()).await,
                Err(e) => {
                    if let Some(txn) = self.txn.as_mut() {
                        txn.failed = true;
                    }
                    Err(e)
                }
            };
            let failed = result.is_err();
            results.push(result);
            if failed {
                break;
            }
        }
        if implicit {
            if results.iter().any(|r| r.is_err()) {
                self.rollback().await;
            } else if let Err(e) = self.commit().await {
                results.push(Err(e));
            }
        }
        results
    }

    async fn prepare(&mut self, sql: &str, param_types: &[Option<shoal_common::DataType>]) -> Result<Prepared> {
        let mut statements = shoal_sql::parse(sql)?;
        match statements.len() {
            0 => Ok(Prepared {
                sql: String::new(),
                param_types: Vec::new(),
                columns: Vec::new(),
                handle: Arc::new(PreparedPlan {
                    statement: None,
                    plan: Plan::Empty,
                    catalog_tag: 0,
                    client_types: Vec::new(),
                }),
            }),
            1 => self.prepare_plan(statements.remove(0), param_types).await,
            _ => Err(Error::syntax("cannot insert multiple commands into a prepared statement")),
        }
    }

    async fn execute(&mut self, prepared: &Prepared, params: Vec<Value>) -> Result<StatementResult> {
        let Some(plan) = prepared.handle.downcast_ref::<PreparedPlan>() else {
            return Err(Error::internal("foreign prepared statement"));
        };
        let Some(statement) = plan.statement.as_ref() else {
            return Ok(StatementResult::Empty);
        };
        // Re-plan when the catalog changed since Parse (a column was added…).
        let current = if plan.catalog_tag == self.catalog().tag {
            plan.plan.clone()
        } else {
            match self.plan(statement, &plan.client_types).await {
                Ok((p, _)) => p,
                Err(e) => {
                    if let Some(txn) = self.txn.as_mut() {
                        txn.failed = true;
                    }
                    return Err(e);
                }
            }
        };
        let statement = statement.clone();
        self.run(Some(&statement), current, params).await
    }

    fn take_notices(&mut self) -> Vec<Notice> {
        std::mem::take(&mut self.notices)
    }

    fn transaction_status(&self) -> TransactionStatus {
        match &self.txn {
            None => TransactionStatus::Idle,
            Some(txn) if txn.failed => TransactionStatus::Failed,
            Some(_) => TransactionStatus::InTransaction,
        }
    }

    fn cursor_columns(&self, name: &str) -> Option<Vec<Column>> {
        self.txn.as_ref()?.cursors.get(name).map(|c| c.columns.as_ref().clone())
    }

    fn parameter_generation(&self) -> u64 {
        self.settings_generation
    }

    fn parameter_status(&self, since: Option<u64>) -> Vec<(String, String)> {
        REPORTED_SETTINGS
            .iter()
            .zip(self.reported_changed)
            .filter(|(_, changed)| since.is_none_or(|since| *changed > since))
            .filter_map(|((key, reported), _)| self.settings.get(*key).map(|v| (reported.to_string(), v.clone())))
            .collect()
    }

    fn canceller(&self) -> Canceller {
        let cancel = self.cancel.clone();
        Arc::new(move || cancel.cancel(CancelReason::User))
    }

    fn idle_in_transaction_timeout(&self) -> Option<Duration> {
        self.idle_in_transaction_timeout
    }

    async fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.rollback().await;
        self.node.metrics.connections.dec();
    }
}

impl Drop for ShoalSession {
    fn drop(&mut self) {
        if !self.closed {
            // The WriteTxn and Reader inside roll back on drop.
            self.node.metrics.connections.dec();
        }
    }
}
