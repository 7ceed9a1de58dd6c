//! Sequences: `nextval`, `setval`, `currval` and `lastval` over a SQLite table.
//!
//! A sequence's state is a row of `__shoal_sequences`, a table of the
//! replica's own database:
//!
//! ```text
//!  __shoal_sequences
//!  oid (PK) │ name     │ increment │ min_value │ max_value │ cycle │ last_value │ is_called
//!  16385    │ t_id_seq │ 1         │ 1         │ 2^63-1    │ 0     │ 41         │ 1
//! ```
//!
//! `shoal_nextval(seq)` reads the row and writes the advanced value back with
//! nested statements on the *writer* connection, inside the statement that
//! called it. The advance is therefore part of the Raft entry's SQLite
//! transaction: a follower (or the leader replaying its log after a crash)
//! re-executes the same statements in the same order over the same rows and
//! hands out the same values.
//!
//! PostgreSQL's sequences are not transactional: a value is never handed
//! out twice, even when the statement or transaction that drew it fails or
//! rolls back. SQLite undoes the advance with the statement, so the writer
//! remembers what failed statements drew ([`crate::Replica::take_failed_draws`],
//! [`Drawn`]) and the Raft layer re-applies it with [`restore_statements`],
//! recorded like any statement: after a failed autocommit statement, after
//! `ROLLBACK TO SAVEPOINT`, and after `ROLLBACK` (as an entry of its own).
//!
//! `seq` is the sequence's OID (what the SQL layer emits when it resolved the
//! name at plan time) or its name as text (`nextval($1)`), parsed the way
//! PostgreSQL reads a `regclass` (`s`, `"S"`, `public.s`).
//!
//! Read connections register refusing versions of `shoal_nextval` and
//! `shoal_setval` ([`register`] with `writer = false`): a function that
//! writes must never run outside the Raft log.
//!
//! `currval` and `lastval` are session state, which SQLite does not have.
//! The session passes its state as a text parameter
//! (`shoal_currval(?k, seq)`; [`SessionSequences::encode`]), so a write that
//! uses `currval` is replayed with the value its session saw. Values drawn
//! by a statement are collected per thread while it runs and returned with
//! its output ([`take_drawn`]), from which the session updates its state.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, Error, OptionalExtension, Result};
use serde::{Deserialize, Serialize};
use shoal_common::SqlState;

use crate::sqlite_error::encode_function_error;

/// Creates the state table (run when a replica opens, like the other `__shoal_*` tables).
pub const SETUP_SQL: &str = "CREATE TABLE IF NOT EXISTS __shoal_sequences (\
     oid INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, increment INTEGER NOT NULL, \
     min_value INTEGER NOT NULL, max_value INTEGER NOT NULL, cycle INTEGER NOT NULL, \
     last_value INTEGER NOT NULL, is_called INTEGER NOT NULL);";

/// A value a statement obtained from a sequence, for the session's
/// `currval`/`lastval` state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drawn {
    pub oid: i64,
    /// The sequence's `last_value` after the call.
    pub value: i64,
    /// Its `is_called` after the call (false only after `setval(s, v, false)`,
    /// which leaves `currval` alone).
    pub called: bool,
    /// From `nextval` (which also makes the sequence `lastval`'s), not `setval`.
    pub nextval: bool,
}

thread_local! {
    /// What the statement running on this thread did to each sequence it
    /// touched: one entry per sequence (a million-row INSERT stays one
    /// entry), ordered by its last `nextval`, which is what `lastval` needs.
    static DRAWN: RefCell<Vec<Drawn>> = const { RefCell::new(Vec::new()) };
}

/// Forgets values drawn on this thread (before a statement starts).
pub fn clear_drawn() {
    DRAWN.with(|d| d.borrow_mut().clear());
}

/// The values drawn on this thread since [`clear_drawn`], in order.
pub fn take_drawn() -> Vec<Drawn> {
    DRAWN.with(|d| std::mem::take(&mut *d.borrow_mut()))
}

fn record(drawn: Drawn) {
    DRAWN.with(|d| {
        let mut d = d.borrow_mut();
        match d.iter().position(|x| x.oid == drawn.oid) {
            // nextval moves the sequence last (it becomes lastval's) ...
            Some(i) if drawn.nextval => {
                d.remove(i);
                d.push(drawn);
            }
            // ... setval does not, and keeps an earlier nextval's mark.
            Some(i) => {
                let nextval = d[i].nextval;
                d[i] = Drawn { nextval, ..drawn };
            }
            None => d.push(drawn),
        }
    });
}

/// A session's `currval`/`lastval` state: the last value obtained from each
/// sequence (by OID) and the sequence `nextval` was last called on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionSequences {
    pub current: BTreeMap<i64, i64>,
    pub last: Option<i64>,
}

impl SessionSequences {
    /// Takes in the values a statement drew.
    pub fn apply(&mut self, drawn: &[Drawn]) {
        for d in drawn.iter().filter(|d| d.called) {
            self.current.insert(d.oid, d.value);
            if d.nextval {
                self.last = Some(d.oid);
            }
        }
    }

    /// The text form passed to `shoal_currval`/`shoal_lastval`:
    /// `last;oid=value,oid=value` (`last` empty when none).
    pub fn encode(&self) -> String {
        let mut out = self.last.map(|l| l.to_string()).unwrap_or_default();
        out.push(';');
        let pairs: Vec<String> = self.current.iter().map(|(o, v)| format!("{o}={v}")).collect();
        out.push_str(&pairs.join(","));
        out
    }

    /// Reads [`SessionSequences::encode`]'s form; anything malformed reads as empty.
    pub fn decode(text: &str) -> SessionSequences {
        let mut out = SessionSequences::default();
        let (last, pairs) = text.split_once(';').unwrap_or(("", ""));
        out.last = last.parse().ok();
        for pair in pairs.split(',').filter(|p| !p.is_empty()) {
            if let Some((o, v)) = pair.split_once('=') {
                if let (Ok(o), Ok(v)) = (o.parse(), v.parse()) {
                    out.current.insert(o, v);
                }
            }
        }
        out
    }
}

fn pg_error(code: SqlState, message: impl Into<String>) -> Error {
    Error::UserFunctionError(encode_function_error(code, &message.into()).into())
}

/// A second, non-owning handle on the writer connection whose statement
/// cache keeps the functions' nested statements prepared (preparing them on
/// every call made a SERIAL insert about 15 times slower). It must be
/// dropped before the connection it was made from is closed, or the close
/// would find unfinalized statements: [`crate::Replica`] drops it first.
pub struct WriterStatements(Arc<Mutex<Option<Connection>>>);

impl WriterStatements {
    /// Finalizes the cached statements (they are prepared again when next used).
    pub fn flush(&self) {
        if let Some(conn) = self.0.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            conn.flush_prepared_statement_cache();
        }
    }
}

impl Drop for WriterStatements {
    fn drop(&mut self) {
        // Finalizes the cached statements; the handle itself stays open.
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

/// Registers the sequence functions on `conn`; `writer` says whether it is
/// the replica's writer connection (the only one where `nextval`/`setval`
/// may run). For a writer the returned [`WriterStatements`] must be dropped
/// before `conn`.
pub fn register(conn: &Connection, writer: bool) -> Result<Option<WriterStatements>> {
    // Not deterministic in SQLite's sense: evaluated per call and row.
    let flags = FunctionFlags::SQLITE_UTF8;
    let mut cache = None;
    if writer {
        // SAFETY: the non-owning connection lives in `WriterStatements`,
        // which the caller drops before `conn` (see its docs); it is only
        // used from inside `conn`'s function calls, on the calling thread.
        let second = unsafe { Connection::from_handle(conn.handle())? };
        second.set_prepared_statement_cache_capacity(8);
        let shared = Arc::new(Mutex::new(Some(second)));
        let (a, b) = (shared.clone(), shared.clone());
        conn.create_scalar_function("shoal_nextval", 1, flags, move |ctx| with_writer(ctx, &a, nextval))?;
        conn.create_scalar_function("shoal_setval", 3, flags, move |ctx| with_writer(ctx, &b, setval))?;
        cache = Some(WriterStatements(shared));
    } else {
        for (name, n_arg, what) in [("shoal_nextval", 1, "nextval()"), ("shoal_setval", 3, "setval()")] {
            conn.create_scalar_function(name, n_arg, flags, move |_| -> Result<i64> {
                Err(pg_error(
                    SqlState::READ_ONLY_SQL_TRANSACTION,
                    format!("cannot execute {what} in a read-only transaction"),
                ))
            })?;
        }
    }
    conn.create_scalar_function("shoal_currval", 2, flags, |ctx| currval(ctx))?;
    conn.create_scalar_function("shoal_lastval", 1, flags, |ctx| lastval(ctx))?;
    Ok(cache)
}

/// Runs a writing function with the cached statements of the writer, or
/// (once they are gone) with statements prepared for this call.
fn with_writer(
    ctx: &Context<'_>,
    cache: &Mutex<Option<Connection>>,
    f: fn(&Context<'_>, &Connection) -> Result<Option<i64>>,
) -> Result<Option<i64>> {
    let guard = cache.lock().unwrap_or_else(|p| p.into_inner());
    match guard.as_ref() {
        Some(conn) => f(ctx, conn),
        None => {
            drop(guard);
            let conn = connection(ctx)?;
            f(ctx, &conn)
        }
    }
}

/// One row of `__shoal_sequences`.
struct SeqRow {
    oid: i64,
    name: String,
    increment: i64,
    min: i64,
    max: i64,
    cycle: bool,
    last_value: i64,
    is_called: bool,
}

const ROW_COLUMNS: &str = "oid, name, increment, min_value, max_value, cycle, last_value, is_called";

fn read_row(r: &rusqlite::Row<'_>) -> Result<SeqRow> {
    Ok(SeqRow {
        oid: r.get(0)?,
        name: r.get(1)?,
        increment: r.get(2)?,
        min: r.get(3)?,
        max: r.get(4)?,
        cycle: r.get::<_, i64>(5)? != 0,
        last_value: r.get(6)?,
        is_called: r.get::<_, i64>(7)? != 0,
    })
}

/// The connection a function was called on.
fn connection<'c>(ctx: &'c Context<'_>) -> Result<rusqlite::functions::ConnectionRef<'c>> {
    // SAFETY: the reference is used only within this call, on the calling
    // thread, for nested statements on the connection that runs the call.
    unsafe { ctx.get_connection() }
}

/// Splits a `regclass` text into its folded name parts (`public.s`, `"S"`).
pub fn parse_relation_name(text: &str) -> Option<Vec<String>> {
    let mut parts = Vec::new();
    let mut chars = text.trim().chars().peekable();
    loop {
        let mut part = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        part.push('"');
                    }
                    '"' => break,
                    c => part.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == '.' {
                    break;
                }
                part.push(c.to_ascii_lowercase());
                chars.next();
            }
            part = part.trim().to_string();
        }
        if part.is_empty() {
            return None;
        }
        parts.push(part);
        match chars.next() {
            None => return Some(parts),
            Some('.') => {}
            Some(_) => return None,
        }
    }
}

/// Finds the sequence an argument names: an OID or a `regclass` text.
fn resolve(conn: &Connection, arg: ValueRef<'_>) -> Result<Option<SeqRow>> {
    let by_oid = |oid: i64| -> Result<Option<SeqRow>> {
        let row = conn
            .prepare_cached(&format!("SELECT {ROW_COLUMNS} FROM __shoal_sequences WHERE oid = ?1"))?
            .query_row([oid], read_row)
            .optional()?;
        match row {
            Some(r) => Ok(Some(r)),
            None => Err(pg_error(SqlState::UNDEFINED_TABLE, format!("relation with OID {oid} does not exist"))),
        }
    };
    match arg {
        ValueRef::Null => Ok(None),
        ValueRef::Integer(oid) => by_oid(oid),
        ValueRef::Text(t) => {
            let text = String::from_utf8_lossy(t);
            let parts = parse_relation_name(&text)
                .ok_or_else(|| pg_error(SqlState::parse("42602"), format!("invalid name syntax: \"{text}\"")))?;
            let name = match parts.as_slice() {
                [n] => n,
                [s, n] if s == "public" => n,
                [s, _] => return Err(pg_error(SqlState::parse("3F000"), format!("schema \"{s}\" does not exist"))),
                _ => {
                    return Err(pg_error(
                        SqlState::parse("42601"),
                        format!("improper relation name (too many dotted names): {text}"),
                    ))
                }
            };
            let row = conn
                .prepare_cached(&format!("SELECT {ROW_COLUMNS} FROM __shoal_sequences WHERE name = ?1"))?
                .query_row([name], read_row)
                .optional()?;
            if let Some(row) = row {
                return Ok(Some(row));
            }
            let other: Option<i64> = conn
                .prepare_cached("SELECT 1 FROM main.sqlite_schema WHERE name = ?1 AND type IN ('table', 'view')")?
                .query_row([name], |r| r.get(0))
                .optional()?;
            if other.is_some() {
                return Err(pg_error(SqlState::WRONG_OBJECT_TYPE, format!("\"{name}\" is not a sequence")));
            }
            Err(pg_error(SqlState::UNDEFINED_TABLE, format!("relation \"{name}\" does not exist")))
        }
        _ => Err(pg_error(SqlState::UNDEFINED_FUNCTION, "function nextval(bytea) does not exist")),
    }
}

/// The value `nextval` hands out next, or PostgreSQL's limit error.
fn advance(row: &SeqRow) -> Result<i64> {
    if !row.is_called {
        return Ok(row.last_value);
    }
    let next = row.last_value.checked_add(row.increment);
    match next {
        Some(v) if v >= row.min && v <= row.max => Ok(v),
        _ if row.cycle => Ok(if row.increment > 0 { row.min } else { row.max }),
        _ => {
            let (what, bound) = if row.increment > 0 { ("maximum", row.max) } else { ("minimum", row.min) };
            Err(pg_error(
                SqlState::parse("2200H"),
                format!("nextval: reached {what} value of sequence \"{}\" ({bound})", row.name),
            ))
        }
    }
}

fn store(conn: &Connection, oid: i64, value: i64, is_called: bool) -> Result<()> {
    conn.prepare_cached("UPDATE __shoal_sequences SET last_value = ?2, is_called = ?3 WHERE oid = ?1")?
        .execute(rusqlite::params![oid, value, is_called as i64])?;
    Ok(())
}

fn nextval(ctx: &Context<'_>, conn: &Connection) -> Result<Option<i64>> {
    let Some(row) = resolve(conn, ctx.get_raw(0))? else { return Ok(None) };
    let value = advance(&row)?;
    store(conn, row.oid, value, true)?;
    record(Drawn { oid: row.oid, value, called: true, nextval: true });
    Ok(Some(value))
}

fn setval(ctx: &Context<'_>, conn: &Connection) -> Result<Option<i64>> {
    let Some(row) = resolve(conn, ctx.get_raw(0))? else { return Ok(None) };
    let value = match ctx.get_raw(1) {
        ValueRef::Integer(v) => v,
        ValueRef::Null => return Ok(None),
        _ => return Err(pg_error(SqlState::DATATYPE_MISMATCH, "setval() takes a bigint value")),
    };
    let is_called = match ctx.get_raw(2) {
        ValueRef::Integer(b) => b != 0,
        ValueRef::Null => return Ok(None),
        _ => return Err(pg_error(SqlState::DATATYPE_MISMATCH, "setval() takes a boolean is_called")),
    };
    if value < row.min || value > row.max {
        return Err(pg_error(
            SqlState::NUMERIC_VALUE_OUT_OF_RANGE,
            format!("setval: value {value} is out of bounds for sequence \"{}\" ({}..{})", row.name, row.min, row.max),
        ));
    }
    store(conn, row.oid, value, is_called)?;
    record(Drawn { oid: row.oid, value, called: is_called, nextval: false });
    Ok(Some(value))
}

/// The session's state as the statement started, plus what the statement
/// itself drew so far (`SELECT nextval('s'), currval('s')` sees the new value).
fn session_state(ctx: &Context<'_>, i: usize) -> SessionSequences {
    let mut state = match ctx.get_raw(i) {
        ValueRef::Text(t) => SessionSequences::decode(&String::from_utf8_lossy(t)),
        _ => SessionSequences::default(),
    };
    DRAWN.with(|d| state.apply(&d.borrow()));
    state
}

/// The statements that put sequences back where `drawn` left them: run
/// after a statement or transaction that drew from them failed or rolled
/// back, so a value is never handed out twice (PostgreSQL's sequences are
/// not transactional). Each is `(sql, [oid, last_value, is_called])`; a
/// sequence dropped meanwhile is simply not found.
pub fn restore_statements(drawn: &[Drawn]) -> Vec<(String, Vec<shoal_common::Value>)> {
    let mut last: BTreeMap<i64, (i64, bool)> = BTreeMap::new();
    for d in drawn {
        last.insert(d.oid, (d.value, d.called));
    }
    last.into_iter()
        .map(|(oid, (value, called))| {
            (
                RESTORE_SQL.to_string(),
                vec![
                    shoal_common::Value::Integer(oid),
                    shoal_common::Value::Integer(value),
                    shoal_common::Value::Integer(called as i64),
                ],
            )
        })
        .collect()
}

/// See [`restore_statements`].
pub const RESTORE_SQL: &str = "UPDATE __shoal_sequences SET last_value = ?2, is_called = ?3 WHERE oid = ?1";

fn currval(ctx: &Context<'_>) -> Result<Option<i64>> {
    let conn = connection(ctx)?;
    let Some(row) = resolve(&conn, ctx.get_raw(1))? else { return Ok(None) };
    let state = session_state(ctx, 0);
    match state.current.get(&row.oid) {
        Some(v) => Ok(Some(*v)),
        None => Err(pg_error(
            SqlState::parse("55000"),
            format!("currval of sequence \"{}\" is not yet defined in this session", row.name),
        )),
    }
}

fn lastval(ctx: &Context<'_>) -> Result<i64> {
    let conn = connection(ctx)?;
    let state = session_state(ctx, 0);
    let undefined = || pg_error(SqlState::parse("55000"), "lastval is not yet defined in this session");
    let oid = state.last.ok_or_else(undefined)?;
    // A dropped sequence has no lastval any more (as in PostgreSQL).
    let exists: Option<i64> = conn
        .prepare_cached("SELECT 1 FROM __shoal_sequences WHERE oid = ?1")?
        .query_row([oid], |r| r.get(0))
        .optional()?;
    match (exists, state.current.get(&oid)) {
        (Some(_), Some(v)) => Ok(*v),
        _ => Err(undefined()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(SETUP_SQL).unwrap();
        // Uncached: the statements are prepared per call (and nothing outlives `conn`).
        drop(register(&conn, true).unwrap());
        conn.execute_batch(
            "INSERT INTO __shoal_sequences VALUES (16385, 's', 1, 1, 3, 0, 1, 0);
             INSERT INTO __shoal_sequences VALUES (16386, 'Down', -2, -5, -1, 1, -1, 0);
             CREATE TABLE t (x);",
        )
        .unwrap();
        conn
    }

    fn one(conn: &Connection, sql: &str) -> std::result::Result<Option<i64>, shoal_common::Error> {
        conn.query_row(sql, [], |r| r.get(0)).map_err(crate::from_sqlite)
    }

    #[test]
    fn nextval_counts_up_to_the_limit_then_fails_with_2200h() {
        let conn = db();
        clear_drawn();
        for want in 1..=3 {
            assert_eq!(one(&conn, "SELECT shoal_nextval('s')").unwrap(), Some(want));
        }
        let err = one(&conn, "SELECT shoal_nextval(16385)").unwrap_err();
        assert_eq!(err.code.as_str(), "2200H");
        assert_eq!(err.message, "nextval: reached maximum value of sequence \"s\" (3)");
        let drawn = take_drawn();
        assert_eq!(drawn, vec![Drawn { oid: 16385, value: 3, called: true, nextval: true }]);
    }

    #[test]
    fn cycling_descending_sequence_wraps_to_its_maximum() {
        let conn = db();
        let got: Vec<i64> = (0..4).map(|_| one(&conn, "SELECT shoal_nextval('\"Down\"')").unwrap().unwrap()).collect();
        assert_eq!(got, vec![-1, -3, -5, -1]);
    }

    #[test]
    fn setval_checks_bounds_and_is_called() {
        let conn = db();
        assert_eq!(one(&conn, "SELECT shoal_setval('public.s', 2, 0)").unwrap(), Some(2));
        assert_eq!(one(&conn, "SELECT shoal_nextval('s')").unwrap(), Some(2));
        assert_eq!(one(&conn, "SELECT shoal_nextval('s')").unwrap(), Some(3));
        let err = one(&conn, "SELECT shoal_setval('s', 0, 1)").unwrap_err();
        assert_eq!(err.code, SqlState::NUMERIC_VALUE_OUT_OF_RANGE);
        assert_eq!(err.message, "setval: value 0 is out of bounds for sequence \"s\" (1..3)");
    }

    #[test]
    fn unknown_names_and_tables_are_refused() {
        let conn = db();
        let err = one(&conn, "SELECT shoal_nextval('nope')").unwrap_err();
        assert_eq!((err.code, err.message.as_str()), (SqlState::UNDEFINED_TABLE, "relation \"nope\" does not exist"));
        let err = one(&conn, "SELECT shoal_nextval('t')").unwrap_err();
        assert_eq!(err.code, SqlState::WRONG_OBJECT_TYPE);
        assert_eq!(one(&conn, "SELECT shoal_nextval(NULL)").unwrap(), None);
    }

    #[test]
    fn currval_and_lastval_read_the_session_state() {
        let conn = db();
        let err = one(&conn, "SELECT shoal_currval(';', 's')").unwrap_err();
        assert_eq!(err.code, SqlState::parse("55000"));
        assert_eq!(err.message, "currval of sequence \"s\" is not yet defined in this session");
        let mut state = SessionSequences::default();
        state.apply(&[
            Drawn { oid: 16385, value: 7, called: true, nextval: true },
            Drawn { oid: 16386, value: 4, called: true, nextval: false },
        ]);
        assert_eq!(SessionSequences::decode(&state.encode()), state);
        let sql = format!("SELECT shoal_currval('{}', 'Down')", state.encode());
        let err = one(&conn, &sql).unwrap_err();
        assert_eq!(err.code, SqlState::UNDEFINED_TABLE, "names are folded: Down is down");
        let sql = format!("SELECT shoal_currval('{}', '\"Down\"')", state.encode());
        assert_eq!(one(&conn, &sql).unwrap(), Some(4));
        let sql = format!("SELECT shoal_lastval('{}')", state.encode());
        assert_eq!(one(&conn, &sql).unwrap(), Some(7));
        let err = one(&conn, "SELECT shoal_lastval(';')").unwrap_err();
        assert_eq!(err.message, "lastval is not yet defined in this session");
    }

    #[test]
    fn read_connections_refuse_nextval() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(SETUP_SQL).unwrap();
        register(&conn, false).unwrap();
        let err = one(&conn, "SELECT shoal_nextval('s')").unwrap_err();
        assert_eq!(err.code, SqlState::READ_ONLY_SQL_TRANSACTION);
    }

    #[test]
    fn relation_names_parse_like_regclass() {
        assert_eq!(parse_relation_name("Foo"), Some(vec!["foo".to_string()]));
        assert_eq!(parse_relation_name("public.\"A\"\"b\""), Some(vec!["public".to_string(), "A\"b".to_string()]));
        assert_eq!(parse_relation_name("a..b"), None);
        assert_eq!(parse_relation_name("\"open"), None);
    }
}
