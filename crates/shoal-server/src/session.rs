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
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use shoal_common::{Error, ExecContext, Result, SqlState, Value};
use shoal_pgwire::{Canceller, Column, Notice, Prepared, Session, StatementResult, TransactionStatus};
use shoal_raft::Reader;
use shoal_sql::{OutputColumn, Plan, SystemReads, TxnControl, WriteKind};
use shoal_storage::determinism::StatementScope;
use shoal_storage::{InterruptHandle, QueryOutput};
use sqlparser::ast::Statement;

use crate::catalog_views;
use crate::cluster::{self, Writer};
use crate::node::{CatalogState, Node, DATA_GROUP};

/// Statement number used for reads: they are never replayed, so their random
/// draws need no particular seed, only the transaction's timestamp.
const READ_STATEMENT: u32 = u32::MAX;

/// Interrupts whatever connection the session's statement is running on.
#[derive(Default)]
pub struct CancelState {
    running: Mutex<Option<Arc<InterruptHandle>>>,
}

impl CancelState {
    fn set(&self, handle: Option<Arc<InterruptHandle>>) {
        *self.running.lock().unwrap_or_else(|p| p.into_inner()) = handle;
    }

    fn cancel(&self) {
        if let Some(handle) = self.running.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            handle.interrupt();
        }
    }
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
}

/// A prepared statement's plan, kept inside [`Prepared::handle`].
struct PreparedPlan {
    statement: Option<Arc<Statement>>,
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
    txn: Option<Txn>,
    notices: Vec<Notice>,
    cancel: Arc<CancelState>,
    closed: bool,
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
        ("shoal.max_staleness", "0"),
    ];
    let mut settings: BTreeMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    settings.insert("application_name".into(), application_name.into());
    settings.insert("session_authorization".into(), user.into());
    settings.insert("shoal.node_id".into(), node.identity.node_id.to_string());
    settings.insert("shoal.database".into(), database.into());
    settings
}

/// Names reported in ParameterStatus at startup, with PostgreSQL's spelling.
const REPORTED_SETTINGS: [(&str, &str); 10] = [
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
];

fn command_tag(kind: WriteKind, rows: u64) -> String {
    match kind {
        WriteKind::Insert => format!("INSERT 0 {rows}"),
        WriteKind::Update => format!("UPDATE {rows}"),
        WriteKind::Delete => format!("DELETE {rows}"),
    }
}

fn statement_kind(plan: &Plan) -> &'static str {
    match plan {
        Plan::Query { .. } => "select",
        Plan::Write { kind: WriteKind::Insert, .. } => "insert",
        Plan::Write { kind: WriteKind::Update, .. } => "update",
        Plan::Write { kind: WriteKind::Delete, .. } => "delete",
        Plan::Ddl { .. } => "ddl",
        Plan::Transaction(_) => "transaction",
        _ => "other",
    }
}

/// The metrics kind of a statement that has not been planned.
fn ast_kind(statement: &Statement) -> &'static str {
    match statement {
        Statement::Query(_) => "select",
        Statement::Insert(_) => "insert",
        Statement::Update { .. } => "update",
        Statement::Delete(_) => "delete",
        Statement::CreateTable(_)
        | Statement::AlterTable { .. }
        | Statement::Drop { .. }
        | Statement::CreateIndex(_)
        | Statement::CreateView { .. } => "ddl",
        _ if is_transaction_control(statement) => "transaction",
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
            txn: None,
            notices: Vec::new(),
            cancel: Arc::new(CancelState::default()),
            closed: false,
        }
    }

    /// The catalog this session plans against.
    fn catalog(&self) -> Arc<CatalogState> {
        match &self.txn {
            Some(txn) => txn.catalog.clone(),
            None => self.node.catalog(),
        }
    }

    fn linearizable(&self) -> bool {
        self.settings.get("shoal.read_consistency").map(String::as_str) != Some("follower")
    }

    fn plan(&self, statement: &Statement, client_types: &[Option<shoal_common::DataType>]) -> Result<(Plan, u64)> {
        let catalog = self.catalog();
        match shoal_sql::plan(statement, &catalog.catalog, client_types) {
            Ok(plan) => Ok((plan, catalog.tag)),
            Err(e) => {
                // Statements that fail to plan never reach `run`; count them here.
                self.node.metrics.observe(ast_kind(statement), 0.0, true);
                Err(e)
            }
        }
    }

    /// Runs one planned statement, keeping PostgreSQL's transaction rules.
    async fn run(&mut self, statement: Option<&Statement>, plan: Plan, params: Vec<Value>) -> Result<StatementResult> {
        let started = Instant::now();
        let kind = statement_kind(&plan);
        let in_failed_txn = self.txn.as_ref().is_some_and(|t| t.failed);
        let ends_failure =
            matches!(plan, Plan::Transaction(TxnControl::Rollback | TxnControl::RollbackTo(_) | TxnControl::Commit));
        let result =
            if in_failed_txn && !ends_failure { Err(aborted_error()) } else { self.dispatch(plan, params).await };
        if let (Err(_), Some(txn)) = (&result, self.txn.as_mut()) {
            txn.failed = true;
        }
        self.node.metrics.observe(kind, started.elapsed().as_secs_f64(), result.is_err());
        result.map_err(|e| self.refine_error(e, statement))
    }

    /// Turns SQLite's wording of constraint errors into PostgreSQL's;
    /// `statement` tells which table a foreign-key failure is about.
    fn refine_error(&self, err: Error, statement: Option<&Statement>) -> Error {
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

    async fn dispatch(&mut self, plan: Plan, params: Vec<Value>) -> Result<StatementResult> {
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
                let tag = command_tag(kind, if columns.is_empty() { output.changes } else { output.rows.len() as u64 });
                if columns.is_empty() {
                    Ok(StatementResult::Command { tag })
                } else {
                    Ok(StatementResult::Rows { columns: Arc::new(to_columns(&columns)), rows: output.rows, tag })
                }
            }
            Plan::Ddl { statements, catalog, tag } => {
                self.ddl(statements, catalog).await?;
                Ok(StatementResult::Command { tag })
            }
            Plan::Transaction(control) => self.transaction(control).await,
            Plan::Set { name, value, local: _ } => {
                self.set(&name, value)?;
                Ok(StatementResult::Command { tag: "SET".into() })
            }
            Plan::Show { name } => self.show(&name),
        }
    }

    // ----- reads -------------------------------------------------------------

    async fn read(&mut self, sql: String, params: Vec<Value>) -> Result<QueryOutput> {
        let linearizable = self.linearizable();
        let cancel = self.cancel.clone();
        let node = self.node.clone();
        let Some(txn) = self.txn.as_mut() else {
            // now() is the statement's start time, as for an autocommit write.
            let ctx = ExecContext::now(rand::random());
            cluster::read_point(&node, DATA_GROUP, linearizable).await?;
            return node
                .data
                .read(move |reader| {
                    let _scope = StatementScope::enter(&ctx, 0);
                    cancel.set(Some(reader.interrupt.clone()));
                    let result = shoal_storage::run_read_only(&reader.conn, &sql, &params);
                    cancel.set(None);
                    result
                })
                .await;
        };
        if let Some(writer) = txn.writer.as_mut() {
            cancel.set(writer.interrupt_handle());
            let result = writer.execute(sql, params, false).await;
            cancel.set(None);
            return result;
        }
        if txn.reader.is_none() {
            cluster::read_point(&node, DATA_GROUP, linearizable).await?;
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
                cancel.set(Some(reader.interrupt.clone()));
                let result = shoal_storage::run_read_only(&reader.conn, &sql, &params);
                cancel.set(None);
                result
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
        let status = reads.system_views.then(|| catalog_views::SystemState::capture(&self.node));
        let cancel = self.cancel.clone();
        let linearizable = self.linearizable();
        let ctx = self.txn.as_ref().map(|t| t.ctx).unwrap_or_else(|| ExecContext::now(rand::random()));
        cluster::read_point(&self.node, DATA_GROUP, linearizable).await?;
        self.node
            .data
            .read(move |reader| {
                let _scope = StatementScope::enter(&ctx, READ_STATEMENT);
                catalog_views::prepare(reader, &catalog)?;
                if let Some(status) = &status {
                    catalog_views::refresh_system_views(&reader.conn, status, &catalog.catalog)?;
                }
                cancel.set(Some(reader.interrupt.clone()));
                let result = shoal_storage::run_read_only(&reader.conn, &sql, &params);
                cancel.set(None);
                result
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
            let (writer, applied_at_begin) = Writer::begin(&node, DATA_GROUP, txn.ctx).await?;
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
            return cluster::write_autocommit(&self.node, DATA_GROUP, ctx, sql, params).await;
        }
        let cancel = self.cancel.clone();
        let writer = self.ensure_writer().await?;
        cancel.set(writer.interrupt_handle());
        let result = writer.execute(sql, params, true).await;
        cancel.set(None);
        result
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
        let writer = self.ensure_writer().await?;
        for sql in statements {
            writer.execute(sql, Vec::new(), true).await?;
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
        });
    }

    /// Commits the open transaction; a failed one is rolled back instead
    /// (PostgreSQL answers COMMIT of a failed transaction with ROLLBACK).
    async fn commit(&mut self) -> Result<&'static str> {
        let Some(mut txn) = self.txn.take() else {
            self.warn(SqlState::NO_ACTIVE_SQL_TRANSACTION, "there is no transaction in progress");
            return Ok("COMMIT");
        };
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
            writer.commit().await?;
            if txn.catalog_changed {
                self.node.publish_catalog(txn.catalog.clone());
            }
        }
        Ok("COMMIT")
    }

    async fn rollback(&mut self) {
        if let Some(mut txn) = self.txn.take() {
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

    fn set(&mut self, name: &str, value: Option<String>) -> Result<()> {
        self.settings_generation += 1;
        let name = name.to_ascii_lowercase();
        let name = match name.as_str() {
            "time zone" | "time_zone" => "timezone".to_string(),
            "names" => "client_encoding".to_string(),
            "transaction isolation level" | "session characteristics" => return Ok(()),
            _ => name,
        };
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
                return Ok(());
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
                columns: Arc::new(vec![
                    Column { name: "name".into(), data_type: shoal_common::DataType::Text, table_oid: 0, column_id: 0 },
                    Column {
                        name: "setting".into(),
                        data_type: shoal_common::DataType::Text,
                        table_oid: 0,
                        column_id: 0,
                    },
                ]),
                rows,
                tag: "SHOW".into(),
            });
        }
        let key = match name.as_str() {
            "transaction isolation level" | "transaction_isolation" => "transaction_isolation".to_string(),
            "time zone" => "timezone".to_string(),
            _ => name.clone(),
        };
        let value = self.settings.get(&key).cloned().ok_or_else(|| unknown_setting(&name))?;
        Ok(text(&key, vec![vec![Value::Text(value)]]))
    }

    fn prepare_plan(&self, statement: Statement, client_types: &[Option<shoal_common::DataType>]) -> Result<Prepared> {
        let sql = statement.to_string();
        let (plan, tag) = self.plan(&statement, client_types)?;
        let (param_types, columns) = match &plan {
            Plan::Query { param_types, columns, .. } | Plan::Write { param_types, columns, .. } => {
                (param_types.clone(), to_columns(columns))
            }
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

fn unknown_setting(name: &str) -> Error {
    Error::new(SqlState::UNDEFINED_OBJECT, format!("unrecognized configuration parameter \"{name}\""))
}

fn is_transaction_control(statement: &Statement) -> bool {
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
            let result = match self.plan(statement, &[]) {
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
            1 => self.prepare_plan(statements.remove(0), param_types),
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
            match self.plan(statement, &plan.client_types) {
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

    fn parameter_generation(&self) -> u64 {
        self.settings_generation
    }

    fn parameter_status(&self) -> Vec<(String, String)> {
        REPORTED_SETTINGS
            .iter()
            .filter_map(|(key, reported)| self.settings.get(*key).map(|v| (reported.to_string(), v.clone())))
            .collect()
    }

    fn canceller(&self) -> Canceller {
        let cancel = self.cancel.clone();
        Arc::new(move || cancel.cancel())
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
