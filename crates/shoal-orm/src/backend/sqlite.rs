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

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::PathBuf;
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{ffi, ToSql};

use super::{Backend, BindParams, Connection, Executed, QueryResult, RowFn, RowSink, StreamTask};
use crate::civil;
use crate::db::{Options, Stmt};
use crate::dialect::Dialect;
use crate::error::{Error, Result};
use crate::model::{Row, Values};
use crate::value::Value;

/// How long a connection waits for a lock held by another process.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Prepared statements kept per connection, in rusqlite's text-keyed cache
/// (statements built for one call) and in the handle cache (`Prepared`).
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
        Ok(Box::new(SqliteConn::new(self.open()?)))
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

/// A rusqlite connection at a fixed heap address that never moves or
/// changes until this is dropped, so statements prepared on it may be kept
/// beside it (see [`Prepared`]). Only shared references are ever made to it
/// (rusqlite's API is all `&self`).
struct PinnedConn(NonNull<rusqlite::Connection>);

impl PinnedConn {
    fn new(conn: rusqlite::Connection) -> PinnedConn {
        PinnedConn(NonNull::from(Box::leak(Box::new(conn))))
    }

    fn get(&self) -> &rusqlite::Connection {
        // SAFETY: the pointer came from a leaked Box and is freed only by
        // `drop`, after which `self` is gone; no `&mut` is ever made.
        unsafe { self.0.as_ref() }
    }

    /// The connection with an unbounded lifetime, for statements that
    /// [`SqliteConn`] keeps and drops before it drops this.
    ///
    /// # Safety
    /// What borrows the result must be dropped before `self`.
    unsafe fn get_unbounded(&self) -> &'static rusqlite::Connection {
        // SAFETY: as in `get`; the caller bounds the borrow's real lifetime.
        unsafe { &*self.0.as_ptr() }
    }
}

impl Drop for PinnedConn {
    fn drop(&mut self) {
        // SAFETY: allocated by `Box::leak` in `new`, freed exactly once here.
        drop(unsafe { Box::from_raw(self.0.as_ptr()) });
    }
}

/// Statements prepared once per connection and held by handle, keyed by
/// the identity of their `'static` text: a model's key lookups, inserts,
/// updates and deletes are rendered once per process (`SqlCache`), so the
/// text's address and length name the statement's shape and a lookup
/// hashes two words instead of the SQL text (rusqlite's `prepare_cached`
/// hashes the text twice and moves the statement out of and back into its
/// LRU list on every call). Text built for one call still goes through
/// rusqlite's cache.
///
/// When full, the cache is emptied (shapes are bounded by the models ×
/// statement kinds, so this is rare); DDL run through `batch` empties it
/// too, so statements over a changed schema are prepared afresh (SQLite
/// would also re-prepare them itself on their next step).
struct Prepared {
    statements: HashMap<(usize, usize), rusqlite::Statement<'static>, foldhash::fast::RandomState>,
    capacity: usize,
}

impl Prepared {
    fn new(capacity: usize) -> Prepared {
        Prepared { statements: HashMap::default(), capacity: capacity.max(1) }
    }

    fn key(sql: &'static str) -> (usize, usize) {
        (sql.as_ptr() as usize, sql.len())
    }

    /// The statement for `sql`, prepared on `conn` the first time.
    fn get(
        &mut self,
        conn: &'static rusqlite::Connection,
        sql: &'static str,
    ) -> rusqlite::Result<&mut rusqlite::Statement<'static>> {
        let key = Prepared::key(sql);
        if !self.statements.contains_key(&key) {
            let st = conn.prepare(sql)?;
            if self.statements.len() >= self.capacity {
                self.statements.clear();
            }
            self.statements.insert(key, st);
        }
        Ok(self.statements.get_mut(&key).expect("inserted above"))
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.statements.len()
    }

    fn clear(&mut self) {
        self.statements.clear();
    }
}

struct SqliteConn {
    /// Statements on `conn`: declared first so they are dropped (finalized)
    /// before it.
    prepared: Prepared,
    conn: PinnedConn,
    broken: bool,
}

// SAFETY: rusqlite::Connection is Send. The statements in `prepared` borrow
// that one connection and nothing else, are reachable only through
// `&mut SqliteConn`, and so always move between threads together with it —
// the same reason rusqlite's own statement cache, which lives inside the
// Connection, does not stop it being Send.
unsafe impl Send for SqliteConn {}

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

/// Binds borrowed values into a prepared statement, one position after
/// another: text and blobs straight from where they lie (SQLite copies
/// them as it binds, as it does for any text), other values as [`Bound`].
struct StatementBinder<'s, 'c> {
    st: &'s mut rusqlite::Statement<'c>,
    /// The position bound last (SQLite counts from 1).
    bound: usize,
    sql: &'s Stmt,
}

impl super::Binder for StatementBinder<'_, '_> {
    fn bind(&mut self, value: crate::value::ValueRef<'_>) -> Result<()> {
        use crate::value::ValueRef as V;
        self.bound += 1;
        let at = self.bound;
        match value {
            V::Null => self.st.raw_bind_parameter(at, rusqlite::types::Null),
            V::Int(i) => self.st.raw_bind_parameter(at, i),
            V::Float(f) => self.st.raw_bind_parameter(at, f),
            V::Text(t) => self.st.raw_bind_parameter(at, ToSqlOutput::Borrowed(ValueRef::Text(t))),
            V::Blob(b) => self.st.raw_bind_parameter(at, ToSqlOutput::Borrowed(ValueRef::Blob(b))),
            V::Owned(v) => self.st.raw_bind_parameter(at, Bound(&v)),
        }
        .map_err(|e| map_error(e, Some(self.sql)))
    }
}

fn bind_all(stmt: &mut rusqlite::Statement<'_>, params: &[Value]) -> rusqlite::Result<()> {
    for (i, v) in params.iter().enumerate() {
        stmt.raw_bind_parameter(i + 1, Bound(v))?;
    }
    Ok(())
}

fn column_names(stmt: &rusqlite::Statement<'_>) -> Arc<[String]> {
    stmt.column_names().map(str::to_string).collect::<Vec<_>>().into()
}

impl SqliteConn {
    fn new(conn: rusqlite::Connection) -> SqliteConn {
        SqliteConn { prepared: Prepared::new(STATEMENT_CACHE), conn: PinnedConn::new(conn), broken: false }
    }

    /// Runs `f` on the prepared statement for `sql`: held by handle when the
    /// text is `'static` (a model's cached statement), from rusqlite's
    /// text-keyed cache otherwise.
    // Borrowed ('static) or owned is the point: it picks the cache.
    #[allow(clippy::ptr_arg)]
    fn with_statement<T>(
        &mut self,
        sql: &Cow<'static, str>,
        f: impl FnOnce(&mut rusqlite::Statement<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        match sql {
            Cow::Borrowed(text) => {
                // SAFETY: the statement is kept in `self.prepared`, which is
                // dropped before `self.conn`.
                let conn = unsafe { self.conn.get_unbounded() };
                f(self.prepared.get(conn, text)?)
            }
            Cow::Owned(text) => f(&mut *self.conn.get().prepare_cached(text)?),
        }
    }

    fn query_sync(&mut self, stmt: &Stmt) -> Result<QueryResult> {
        self.with_statement(&stmt.sql, |st| {
            bind_all(st, &stmt.params)?;
            let n = st.column_count();
            let columns = if stmt.named { column_names(st) } else { super::no_columns() };
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
        })
        .map_err(|e| map_error(e, Some(stmt)))
    }

    fn query_each_sync(&mut self, stmt: &Stmt, each: &mut RowFn<'_>) -> Result<()> {
        // The decoder's own error (not rusqlite's) stops the loop and is
        // handed back as is.
        let mut failed = None;
        self.with_statement(&stmt.sql, |st| {
            bind_all(st, &stmt.params)?;
            let width = st.column_count();
            let mut raw = st.raw_query();
            while let Some(row) = raw.next()? {
                let mut live = LiveSqliteRow { row, next: 0, width };
                match each(&mut Values::live(&mut live)) {
                    Ok(true) if !stmt.single_row => {}
                    Ok(_) => break,
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            Ok(())
        })
        .map_err(|e| map_error(e, Some(stmt)))?;
        failed.map_or(Ok(()), Err)
    }

    fn execute_sync(&mut self, stmt: &Stmt) -> Result<Executed> {
        let rows_affected = self
            .with_statement(&stmt.sql, |st| {
                bind_all(st, &stmt.params)?;
                st.raw_execute()
            })
            .map_err(|e| map_error(e, Some(stmt)))? as u64;
        Ok(Executed { rows_affected, last_insert_id: Some(self.conn.get().last_insert_rowid()) })
    }

    fn execute_bound_sync(&mut self, stmt: &Stmt, params: &dyn BindParams) -> Result<Executed> {
        // A binding error (ours, already translated) skips the execution
        // and is handed back as is.
        let mut failed = None;
        let rows_affected = self
            .with_statement(&stmt.sql, |st| {
                let done = match params.bind(&mut StatementBinder { st: &mut *st, bound: 0, sql: stmt }) {
                    Ok(()) => st.raw_execute(),
                    Err(e) => {
                        failed = Some(e);
                        Ok(0)
                    }
                };
                // SQLite keeps a copy of each bound text until it is
                // rebound or cleared. A bulk statement held by handle would
                // keep thousands of them between calls, and with them the
                // connection's lookaside memory, so that every later
                // statement's small allocations would go to malloc.
                st.clear_bindings();
                done
            })
            .map_err(|e| map_error(e, Some(stmt)))? as u64;
        if let Some(e) = failed {
            return Err(e);
        }
        Ok(Executed { rows_affected, last_insert_id: Some(self.conn.get().last_insert_rowid()) })
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
        if changes_schema(sql) {
            self.prepared.clear();
        }
        self.conn.get().execute_batch(sql).map_err(|e| map_error(e, None))
    }

    fn stream<'a>(&'a mut self, stmt: &'a Stmt, sink: RowSink) -> StreamTask<'a> {
        StreamTask::Blocking(Box::new(move || {
            let run = || -> rusqlite::Result<()> {
                let mut st = self.conn.get().prepare_cached(&stmt.sql)?;
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

    fn execute_bound_now(&mut self, stmt: &Stmt, params: &dyn BindParams) -> Option<Result<Executed>> {
        Some(self.execute_bound_sync(stmt, params))
    }

    fn is_broken(&self) -> bool {
        self.broken
    }

    fn reset_now(&mut self) -> bool {
        // Closing is not an option for `:memory:`: it would drop the database.
        self.conn.get().is_autocommit() || self.conn.get().execute_batch("ROLLBACK").is_ok()
    }
}

/// Whether parameterless SQL may change the schema (transaction control
/// and pragmas do not; anything else is assumed to).
fn changes_schema(sql: &str) -> bool {
    let body = sql.trim().trim_end_matches(';');
    if body.contains(';') {
        return true;
    }
    let word = body.split(|c: char| !c.is_ascii_alphabetic()).next().unwrap_or("");
    !["BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE", "PRAGMA"]
        .iter()
        .any(|k| word.eq_ignore_ascii_case(k))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> SqliteConn {
        let backend = SqliteBackend::from_url("sqlite::memory:", &Options::default()).unwrap();
        SqliteConn::new(backend.open().unwrap())
    }

    fn ints(c: &mut SqliteConn, sql: &'static str, params: Vec<Value>) -> Vec<i64> {
        let mut out = Vec::new();
        c.query_each_sync(&Stmt::read(sql, params), &mut |v| {
            out.push(v.next_as::<i64>()?);
            Ok(true)
        })
        .unwrap();
        out
    }

    #[test]
    fn static_statements_are_prepared_once_and_held() {
        let mut c = conn();
        c.conn.get().execute_batch("CREATE TABLE t (a INTEGER); INSERT INTO t VALUES (1), (2), (3)").unwrap();
        const Q: &str = "SELECT a FROM t WHERE a >= ? ORDER BY a";
        assert_eq!(ints(&mut c, Q, vec![Value::Int(2)]), [2, 3]);
        assert_eq!(ints(&mut c, Q, vec![Value::Int(1)]), [1, 2, 3]);
        assert_eq!(c.prepared.len(), 1, "one shape, one statement");
        // Text built per call goes through rusqlite's cache, not the handle cache.
        let owned = Stmt::read(String::from("SELECT a FROM t"), vec![]);
        c.query_sync(&owned).unwrap();
        assert_eq!(c.prepared.len(), 1);
        // Writes use the held statement too.
        let ins = Stmt::write("INSERT INTO t VALUES (?)", vec![Value::Int(4)]);
        assert_eq!(c.execute_sync(&ins).unwrap().rows_affected, 1);
        assert_eq!(c.execute_sync(&ins).unwrap().rows_affected, 1);
        assert_eq!(c.prepared.len(), 2);
        assert_eq!(ints(&mut c, Q, vec![Value::Int(4)]), [4, 4]);
    }

    #[test]
    fn a_full_cache_is_emptied_and_refilled() {
        let mut c = conn();
        c.prepared = Prepared::new(2);
        const SHAPES: [&str; 3] = ["SELECT 1", "SELECT 2", "SELECT 3"];
        for (i, sql) in SHAPES.iter().enumerate() {
            assert_eq!(ints(&mut c, sql, vec![]), [i as i64 + 1]);
            assert!(c.prepared.len() <= 2);
        }
        assert_eq!(c.prepared.len(), 1, "the third shape found the cache full and emptied it");
        for (i, sql) in SHAPES.iter().enumerate() {
            assert_eq!(ints(&mut c, sql, vec![]), [i as i64 + 1], "evicted shapes are prepared again");
        }
    }

    #[test]
    fn schema_changes_empty_the_cache_and_statements_see_the_new_schema() {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let mut c = conn();
        rt.block_on(c.batch("CREATE TABLE t (a INTEGER); INSERT INTO t VALUES (7)")).unwrap();
        const Q: &str = "SELECT * FROM t";
        assert_eq!(ints(&mut c, Q, vec![]), [7]);
        // Transaction control keeps the statements.
        rt.block_on(c.batch("BEGIN")).unwrap();
        rt.block_on(c.batch("COMMIT")).unwrap();
        assert_eq!(c.prepared.len(), 1);
        // DDL (a migration's statements arrive this way) empties the cache.
        rt.block_on(c.batch("DROP TABLE t; CREATE TABLE t (b TEXT, a INTEGER); INSERT INTO t VALUES ('x', 9)"))
            .unwrap();
        assert_eq!(c.prepared.len(), 0);
        let mut seen = Vec::new();
        c.query_each_sync(&Stmt::read(Q, vec![]), &mut |v| {
            seen.push((v.next_as::<String>()?, v.next_as::<i64>()?));
            Ok(true)
        })
        .unwrap();
        assert_eq!(seen, [("x".to_string(), 9)]);
        // DDL that bypasses `batch` does not leave a held statement stale
        // either: SQLite re-prepares it against the new schema on its next
        // step (the ORM names its columns, so their number cannot change).
        const NAMED: &str = "SELECT a FROM t ORDER BY a";
        assert_eq!(ints(&mut c, NAMED, vec![]), [9]);
        c.conn
            .get()
            .execute_batch(
                "CREATE TABLE t2 (a INTEGER, b TEXT); INSERT INTO t2 SELECT a + 1, b FROM t; DROP TABLE t; \
                 ALTER TABLE t2 RENAME TO t",
            )
            .unwrap();
        assert_eq!(ints(&mut c, NAMED, vec![]), [10]);
    }

    #[test]
    fn statements_live_and_die_with_their_connection() {
        let dir = std::env::temp_dir().join(format!("shoal-orm-prepared-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}", dir.join("db.sqlite").display());
        let backend = SqliteBackend::from_url(&url, &Options::default()).unwrap();
        let mut a = SqliteConn::new(backend.open().unwrap());
        a.conn.get().execute_batch("CREATE TABLE t (a INTEGER); INSERT INTO t VALUES (1)").unwrap();
        const Q: &str = "SELECT a FROM t";
        assert_eq!(ints(&mut a, Q, vec![]), [1]);
        // Another connection has its own statements, prepared on it.
        let mut b = SqliteConn::new(backend.open().unwrap());
        assert_eq!(b.prepared.len(), 0);
        assert_eq!(ints(&mut b, Q, vec![]), [1]);
        // A connection (and its held statements) moves to another thread…
        let a = std::thread::spawn(move || {
            assert_eq!(ints(&mut a, Q, vec![]), [1]);
            a
        })
        .join()
        .unwrap();
        // …and dropping it finalizes them first: nothing is left open, so
        // the other connection can take an exclusive lock and change the schema.
        drop(a);
        b.conn.get().execute_batch("PRAGMA locking_mode = EXCLUSIVE; DROP TABLE t").unwrap();
        drop(b);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
