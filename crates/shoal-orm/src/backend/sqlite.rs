//! SQLite through rusqlite: the embedded default.
//!
//! The workspace's one bundled SQLite (rusqlite's `bundled` feature) is used,
//! so there is exactly one native SQLite in the build.
//!
//! Calls run inline on the calling task instead of hopping to a blocking
//! thread: a statement on a local database takes microseconds, less than the
//! hop itself, and the only waits that could block — on another writer's
//! lock — are avoided by serialising writers in memory first (see
//! `Backend::single_writer` and `db.rs`). Streams are the exception: a
//! cursor lives as long as the consumer wants, so it runs on a blocking
//! thread.
//!
//! URLs: `sqlite::memory:` (one private database per `Db`; the pool holds a
//! single connection because every connection to `:memory:` is a different
//! database), `sqlite://relative/path.db`, `sqlite:///absolute/path.db`.
//! Files use WAL, so readers never wait for the writer; foreign keys are
//! enforced on every connection.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{ffi, ToSql};

use super::{Backend, Connection, Executed, QueryResult, RowFn, RowSink, StreamTask};
use crate::civil;
use crate::db::{Options, Stmt};
use crate::dialect::Dialect;
use crate::error::{Error, Result};
use crate::model::{Row, Values};
use crate::value::Value;

/// How long a connection waits for a lock held by another process.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 256;

pub struct SqliteBackend {
    /// `None` for an in-memory database.
    path: Option<PathBuf>,
}

impl SqliteBackend {
    pub fn from_url(url: &str, _options: &Options) -> Result<SqliteBackend> {
        let rest = url.strip_prefix("sqlite:").unwrap_or(url);
        let rest = rest.split('?').next().unwrap_or("");
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let path = match rest {
            "" | ":memory:" => None,
            p => Some(PathBuf::from(p)),
        };
        Ok(SqliteBackend { path })
    }

    pub fn open(&self) -> Result<rusqlite::Connection> {
        let conn = match &self.path {
            Some(p) => rusqlite::Connection::open(p),
            None => rusqlite::Connection::open_in_memory(),
        }
        .map_err(|e| Error::Connect { message: format!("open sqlite database: {e}") })?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| map_error(e, None))?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        conn.execute_batch("PRAGMA foreign_keys = ON").map_err(|e| map_error(e, None))?;
        if self.path.is_some() {
            // journal_mode returns a row, so it cannot go through execute_batch.
            conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(())).map_err(|e| map_error(e, None))?;
        }
        Ok(conn)
    }
}

#[async_trait]
impl Backend for SqliteBackend {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    async fn connect(&self) -> Result<Box<dyn Connection>> {
        Ok(Box::new(SqliteConn { conn: self.open()?, broken: false }))
    }

    fn max_connections(&self, requested: usize) -> usize {
        if self.path.is_none() {
            1
        } else {
            requested
        }
    }

    fn single_writer(&self) -> bool {
        true
    }

    fn in_process(&self) -> bool {
        true
    }
}

struct SqliteConn {
    conn: rusqlite::Connection,
    broken: bool,
}

/// A [`Value`] as rusqlite binds it (borrowing text and bytes).
struct Bound<'a>(&'a Value);

impl ToSql for Bound<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        use rusqlite::types::Value as V;
        Ok(match self.0 {
            Value::Null => ToSqlOutput::Owned(V::Null),
            Value::Bool(b) => ToSqlOutput::Owned(V::Integer(i64::from(*b))),
            Value::Int(i) => ToSqlOutput::Owned(V::Integer(*i)),
            Value::Float(f) => ToSqlOutput::Owned(V::Real(*f)),
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Value::Bytes(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
            // Dates, times and UUIDs are fixed-width text, so that text order
            // is value order (see civil.rs).
            Value::Date(d) => ToSqlOutput::Owned(V::Text(civil::format_date(*d))),
            Value::Timestamp(t) => ToSqlOutput::Owned(V::Text(civil::format_timestamp(*t))),
            Value::TimestampTz(t) => ToSqlOutput::Owned(V::Text(civil::format_timestamptz(*t))),
            Value::Uuid(u) => ToSqlOutput::Owned(V::Text(civil::format_uuid(u))),
            Value::Decimal(d) => decimal(d)?,
        })
    }
}

/// A decimal for a NUMERIC column. SQLite has no decimal type: NUMERIC
/// affinity stores integers exactly and other numbers as REAL, which keeps
/// 15 significant digits. A value it would round is refused rather than
/// silently changed.
fn decimal(d: &str) -> rusqlite::Result<ToSqlOutput<'_>> {
    use rusqlite::types::Value as V;
    if !d.contains('.') {
        if let Ok(i) = d.parse::<i64>() {
            return Ok(ToSqlOutput::Owned(V::Integer(i)));
        }
    }
    if civil::significant_digits(d) > 15 {
        return Err(rusqlite::Error::ToSqlConversionFailure(
            format!(
                "decimal {d} has more than the 15 significant digits SQLite stores exactly (it keeps NUMERIC \
                 as REAL); use a backend with an exact NUMERIC or store it as text"
            )
            .into(),
        ));
    }
    let f: f64 = d.parse().map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    Ok(ToSqlOutput::Owned(V::Real(f)))
}

fn read_value(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(f) => Value::Float(f),
        ValueRef::Text(t) => match std::str::from_utf8(t) {
            Ok(s) => Value::Text(s.to_string()),
            Err(_) => Value::Bytes(t.to_vec()),
        },
        ValueRef::Blob(b) => Value::Bytes(b.to_vec()),
    }
}

/// The row rusqlite is on, read column by column by a model's decoder.
struct LiveSqliteRow<'r> {
    row: &'r rusqlite::Row<'r>,
    next: usize,
    width: usize,
}

impl crate::model::LiveRow for LiveSqliteRow<'_> {
    fn next_ref(&mut self) -> Option<crate::value::ValueRef<'_>> {
        use crate::value::ValueRef as V;
        if self.next >= self.width {
            return None;
        }
        let i = self.next;
        self.next += 1;
        // In range by construction, so get_ref cannot fail.
        Some(match self.row.get_ref(i).ok()? {
            ValueRef::Null => V::Null,
            ValueRef::Integer(i) => V::Int(i),
            ValueRef::Real(f) => V::Float(f),
            ValueRef::Text(t) => V::Text(t),
            ValueRef::Blob(b) => V::Blob(b),
        })
    }
}

fn bind_all(stmt: &mut rusqlite::CachedStatement<'_>, params: &[Value]) -> rusqlite::Result<()> {
    for (i, v) in params.iter().enumerate() {
        stmt.raw_bind_parameter(i + 1, Bound(v))?;
    }
    Ok(())
}

fn column_names(stmt: &rusqlite::Statement<'_>) -> Arc<[String]> {
    stmt.column_names().map(str::to_string).collect::<Vec<_>>().into()
}

impl SqliteConn {
    fn query_sync(&mut self, stmt: &Stmt) -> Result<QueryResult> {
        let run = || -> rusqlite::Result<QueryResult> {
            let mut st = self.conn.prepare_cached(&stmt.sql)?;
            bind_all(&mut st, &stmt.params)?;
            let n = st.column_count();
            let columns = if stmt.named { column_names(&st) } else { super::no_columns() };
            let mut result = QueryResult::new(columns, n);
            let mut raw = st.raw_query();
            while let Some(row) = raw.next()? {
                for i in 0..n {
                    result.values.push(read_value(row.get_ref(i)?));
                }
                result.rows += 1;
                if stmt.single_row {
                    break;
                }
            }
            Ok(result)
        };
        run().map_err(|e| map_error(e, Some(stmt)))
    }

    fn query_each_sync(&mut self, stmt: &Stmt, each: &mut RowFn<'_>) -> Result<()> {
        let mapped = |e| map_error(e, Some(stmt));
        let mut st = self.conn.prepare_cached(&stmt.sql).map_err(mapped)?;
        bind_all(&mut st, &stmt.params).map_err(mapped)?;
        let width = st.column_count();
        let mut raw = st.raw_query();
        while let Some(row) = raw.next().map_err(mapped)? {
            let mut live = LiveSqliteRow { row, next: 0, width };
            if !each(&mut Values::live(&mut live))? || stmt.single_row {
                break;
            }
        }
        Ok(())
    }

    fn execute_sync(&mut self, stmt: &Stmt) -> Result<Executed> {
        let run = || -> rusqlite::Result<Executed> {
            let mut st = self.conn.prepare_cached(&stmt.sql)?;
            bind_all(&mut st, &stmt.params)?;
            let rows_affected = st.raw_execute()? as u64;
            Ok(Executed { rows_affected, last_insert_id: Some(self.conn.last_insert_rowid()) })
        };
        run().map_err(|e| map_error(e, Some(stmt)))
    }
}

#[async_trait]
impl Connection for SqliteConn {
    async fn query(&mut self, stmt: &Stmt) -> Result<QueryResult> {
        self.query_sync(stmt)
    }

    async fn execute(&mut self, stmt: &Stmt) -> Result<Executed> {
        self.execute_sync(stmt)
    }

    async fn batch(&mut self, sql: &str) -> Result<()> {
        self.conn.execute_batch(sql).map_err(|e| map_error(e, None))
    }

    fn stream<'a>(&'a mut self, stmt: &'a Stmt, sink: RowSink) -> StreamTask<'a> {
        StreamTask::Blocking(Box::new(move || {
            let run = || -> rusqlite::Result<()> {
                let mut st = self.conn.prepare_cached(&stmt.sql)?;
                bind_all(&mut st, &stmt.params)?;
                let columns = column_names(&st);
                let n = columns.len();
                let mut raw = st.raw_query();
                while let Some(row) = raw.next()? {
                    let mut values = Vec::with_capacity(n);
                    for i in 0..n {
                        values.push(read_value(row.get_ref(i)?));
                    }
                    if !sink.send_blocking(Row::new(columns.clone(), values)) {
                        break;
                    }
                }
                Ok(())
            };
            run().map_err(|e| map_error(e, Some(stmt)))
        }))
    }

    fn is_blocking(&self) -> bool {
        true
    }

    fn query_now(&mut self, stmt: &Stmt) -> Option<Result<QueryResult>> {
        Some(self.query_sync(stmt))
    }

    fn query_each_now(&mut self, stmt: &Stmt, row: &mut RowFn<'_>) -> Option<Result<()>> {
        Some(self.query_each_sync(stmt, row))
    }

    fn execute_now(&mut self, stmt: &Stmt) -> Option<Result<Executed>> {
        Some(self.execute_sync(stmt))
    }

    fn is_broken(&self) -> bool {
        self.broken
    }

    fn reset_now(&mut self) -> bool {
        // Closing is not an option for `:memory:`: it would drop the database.
        self.conn.is_autocommit() || self.conn.execute_batch("ROLLBACK").is_ok()
    }
}

/// Translates a rusqlite error, naming constraints from the statement's
/// model where SQLite names only columns.
pub(crate) fn map_error(e: rusqlite::Error, stmt: Option<&Stmt>) -> Error {
    let rusqlite::Error::SqliteFailure(code, message) = &e else {
        return match e {
            rusqlite::Error::FromSqlConversionFailure(i, _, err) => {
                Error::Decode { column: format!("#{i}"), message: err.to_string() }
            }
            rusqlite::Error::ToSqlConversionFailure(err) => {
                Error::Database { sqlstate: "22003".into(), message: err.to_string() }
            }
            other => Error::Database { sqlstate: "XX000".into(), message: other.to_string() },
        };
    };
    let message = message.clone().unwrap_or_else(|| code.to_string());
    // "UNIQUE constraint failed: users.email, users.org" → (users, [email, org])
    let failed_columns = || -> (Option<String>, Vec<String>) {
        let list = message.split_once(": ").map(|(_, l)| l).unwrap_or("");
        let mut table = None;
        let mut cols = Vec::new();
        for item in list.split(", ") {
            if let Some((t, c)) = item.split_once('.') {
                table = Some(t.to_string());
                cols.push(c.to_string());
            }
        }
        (table, cols)
    };
    match code.extended_code {
        ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
            let (table, cols) = failed_columns();
            let cols_ref: Vec<&str> = cols.iter().map(String::as_str).collect();
            let constraint = stmt
                .and_then(|s| s.table)
                .filter(|t| Some(t.name) == table.as_deref())
                .and_then(|t| t.unique_constraint_on(&cols_ref));
            Error::UniqueViolation { constraint, table, message }
        }
        ffi::SQLITE_CONSTRAINT_FOREIGNKEY => Error::ForeignKeyViolation {
            constraint: None,
            table: stmt.and_then(|s| s.table).map(|t| t.name.into()),
            message,
        },
        ffi::SQLITE_CONSTRAINT_CHECK => {
            // Named checks are reported by name: "CHECK constraint failed: age_nonneg".
            let constraint = message.split_once(": ").map(|(_, n)| n.to_string());
            Error::CheckViolation { constraint, table: stmt.and_then(|s| s.table).map(|t| t.name.into()), message }
        }
        ffi::SQLITE_CONSTRAINT_NOTNULL => {
            let (table, cols) = failed_columns();
            Error::NotNullViolation { column: cols.into_iter().next(), table, message }
        }
        _ => match code.code {
            rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked => {
                Error::SerializationFailure { sqlstate: "55P03".into(), message }
            }
            rusqlite::ErrorCode::CannotOpen | rusqlite::ErrorCode::NotADatabase => Error::Connect { message },
            _ => {
                let sqlstate = if message.starts_with("no such table") {
                    "42P01"
                } else if message.starts_with("no such column") {
                    "42703"
                } else if message.contains("syntax error") {
                    "42601"
                } else if message.contains("already exists") {
                    "42P07"
                } else {
                    "XX000"
                };
                Error::Database { sqlstate: sqlstate.into(), message }
            }
        },
    }
}
