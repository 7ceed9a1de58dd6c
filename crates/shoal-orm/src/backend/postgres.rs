//! PostgreSQL through tokio-postgres (also the transport of `shoal://`).
//!
//! Statements are prepared once per connection and cached by their text, so
//! a repeated query costs one round trip (Bind/Execute), not two. PostgreSQL
//! infers each parameter's type from the statement (`$1` compared with an
//! `integer` column is an `int4`), so a [`Value`] is encoded for the type the
//! server asked for: `Int(5)` becomes an int2, int4, int8, float or numeric
//! as needed, and a value that does not fit is an error, never a silent
//! truncation.
//!
//! TLS follows the URL's `sslmode`, `sslrootcert`, `sslcert` and `sslkey`
//! (see `tls.rs`: the rules and code are `shoal-pgtls`'s).

use std::borrow::Cow;
use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt::Write as _;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::{BufMut, BytesMut};
use futures::{pin_mut, StreamExt, TryStreamExt};
use shoal_pgtls::Tls;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type};
use tokio_postgres::{Client, Config, Statement};

use super::tls;
use super::{Backend, Connection, Executed, QueryResult, RowSink, SendRowFn, StreamTask};
use crate::civil;
use crate::db::{Options, Stmt};
use crate::dialect::Dialect;
use crate::error::{Error, Result};
use crate::model::{Row, Values};
use crate::value::Value;

/// Prepared statements kept per connection before the cache is reset.
const STATEMENT_CACHE: usize = 512;

pub struct PostgresBackend {
    endpoint: Endpoint,
}

impl PostgresBackend {
    pub fn from_url(url: &str, _options: &Options) -> Result<PostgresBackend> {
        Ok(PostgresBackend { endpoint: Endpoint::from_url(url)? })
    }
}

/// Where and how to connect: tokio-postgres' configuration and the TLS
/// set-up the URL asked for.
pub(crate) struct Endpoint {
    config: Config,
    tls: Tls,
}

impl Endpoint {
    /// Parses a `postgres://` URL (or a `shoal://` one rewritten to it);
    /// TLS options it does not set come from libpq's `PGSSL*` variables.
    pub(crate) fn from_url(url: &str) -> Result<Endpoint> {
        let split = shoal_pgtls::split_conninfo(url, &shoal_pgtls::process_env).map_err(tls::config_error)?;
        let mut config: Config = split
            .conninfo
            .parse()
            .map_err(|e| Error::Config(format!("invalid PostgreSQL URL {}: {e}", super::redact(url))))?;
        let tls = Tls::new(split.tls, &mut config).map_err(tls::config_error)?;
        Ok(Endpoint { config, tls })
    }
}

#[async_trait]
impl Backend for PostgresBackend {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    async fn connect(&self) -> Result<Box<dyn Connection>> {
        Ok(Box::new(PgConn::connect(&self.endpoint).await?))
    }
}

/// One tokio-postgres session with its statement caches.
pub(crate) struct PgConn {
    client: Client,
    /// Statements whose text is `'static` (a model's cached statements,
    /// rendered once per process), keyed by the text's address and length:
    /// the text's identity is the statement's shape, so a lookup hashes two
    /// words, not the SQL.
    shapes: HashMap<(usize, usize), Statement, foldhash::fast::RandomState>,
    /// Statements built per call, keyed by SQL text with foldhash (SipHash
    /// costs several times more).
    cache: HashMap<String, Statement, foldhash::quality::RandomState>,
}

impl PgConn {
    pub(crate) async fn connect(endpoint: &Endpoint) -> Result<PgConn> {
        let failed = |e: shoal_pgtls::ConnectError| Error::Connect { message: e.to_string() };
        let session = endpoint.tls.connect(&endpoint.config).await.map_err(failed)?;
        // The connection task ends with an error only when the socket does;
        // the client sees it on its next call.
        let connection = session.connection;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(PgConn { client: session.client, shapes: HashMap::default(), cache: HashMap::default() })
    }

    /// The prepared statement for `sql`, from the caches when it has been
    /// prepared on this connection before.
    // Borrowed ('static) or owned is the point: it picks the cache.
    #[allow(clippy::ptr_arg)]
    async fn prepare(&mut self, sql: &Cow<'static, str>) -> Result<Statement> {
        let found = match sql {
            Cow::Borrowed(text) => self.shapes.get(&(text.as_ptr() as usize, text.len())),
            Cow::Owned(text) => self.cache.get(text.as_str()),
        };
        match found {
            Some(st) => Ok(st.clone()),
            // Boxed so that the rare miss (a round trip to prepare) does not
            // make every statement's future as large as `Client::prepare`'s.
            None => Box::pin(self.prepare_new(sql)).await,
        }
    }

    // Borrowed ('static) or owned is the point: it picks the cache.
    #[allow(clippy::ptr_arg)]
    async fn prepare_new(&mut self, sql: &Cow<'static, str>) -> Result<Statement> {
        let st = self.client.prepare(sql).await.map_err(map_error)?;
        match sql {
            Cow::Borrowed(text) => {
                if self.shapes.len() >= STATEMENT_CACHE {
                    self.shapes.clear();
                }
                self.shapes.insert((text.as_ptr() as usize, text.len()), st.clone());
            }
            Cow::Owned(text) => {
                if self.cache.len() >= STATEMENT_CACHE {
                    self.cache.clear();
                }
                self.cache.insert(text.clone(), st.clone());
            }
        }
        Ok(st)
    }

    /// Forgets every prepared statement (after DDL, or a stale plan).
    fn forget_statements(&mut self) {
        self.shapes.clear();
        self.cache.clear();
    }

    async fn query_once(&mut self, stmt: &Stmt) -> Result<QueryResult> {
        let st = self.prepare(&stmt.sql).await?;
        let columns: Arc<[String]> = if stmt.named {
            st.columns().iter().map(|c| c.name().to_string()).collect::<Vec<_>>().into()
        } else {
            super::no_columns()
        };
        let rows = self.client.query_raw(&st, stmt.params.iter().map(PgParam)).await.map_err(map_error)?;
        let rows: Vec<tokio_postgres::Row> = rows.try_collect().await.map_err(map_error)?;
        let mut result = QueryResult::new(columns, st.columns().len());
        result.values.reserve(rows.len() * result.width);
        for row in &rows {
            read_row(row, &mut result.values)?;
        }
        result.rows = rows.len();
        Ok(result)
    }

    /// Like `query_stmt`, decoding each row from the driver's row as it
    /// arrives (the common types without building a `Value`). A stale plan
    /// fails at Bind, before any row has reached `each`: the statement is
    /// prepared afresh and sent once more. The retry is a loop inside this
    /// one future rather than a wrapper awaiting it twice, since every
    /// model read takes this path.
    pub(crate) async fn query_each_stmt(&mut self, stmt: &Stmt, each: &mut SendRowFn<'_>) -> Result<()> {
        let mut retried = false;
        let rows = loop {
            let st = self.prepare(&stmt.sql).await?;
            // Awaited inline: `query_raw`'s future is about 1 KiB, but no
            // box holds this one on a `Db` (`query_each_inline` awaits it in
            // the caller's future), so boxing it separately only cost an
            // allocation and a 1 KiB copy per statement. A transaction's
            // read is boxed once, by `Tx::__fetch_each`, with this inside.
            match self.client.query_raw(&st, stmt.params.iter().map(PgParam)).await.map_err(map_error) {
                Err(e) if !retried && Self::stale_plan(&e) => {
                    self.forget_statements();
                    retried = true;
                }
                rows => break rows?,
            }
        };
        pin_mut!(rows);
        let mut wanted = true;
        while let Some(row) = rows.next().await {
            // Rows past the ones wanted are still read to the end, so an
            // error the server reports after them is not lost.
            let row = row.map_err(map_error)?;
            if !wanted {
                continue;
            }
            let mut live = LivePgRow { row: &row, next: 0, failed: None };
            let go = each(&mut Values::live(&mut live));
            if let Some(e) = live.failed {
                return Err(e);
            }
            wanted = go?;
        }
        Ok(())
    }

    async fn execute_once(&mut self, stmt: &Stmt) -> Result<Executed> {
        let st = self.prepare(&stmt.sql).await?;
        let n = self.client.execute_raw(&st, stmt.params.iter().map(PgParam)).await.map_err(map_error)?;
        Ok(Executed { rows_affected: n, last_insert_id: None })
    }

    /// A cached plan goes stale when DDL changes a table under it; PostgreSQL
    /// then refuses it once. Forget the cache and run the statement again.
    fn stale_plan(e: &Error) -> bool {
        matches!(e, Error::Database { sqlstate, message } if sqlstate == "0A000" && message.contains("cached plan"))
    }

    pub(crate) async fn query_stmt(&mut self, stmt: &Stmt) -> Result<QueryResult> {
        match self.query_once(stmt).await {
            Err(e) if Self::stale_plan(&e) => {
                self.forget_statements();
                self.query_once(stmt).await
            }
            r => r,
        }
    }

    pub(crate) async fn execute_stmt(&mut self, stmt: &Stmt) -> Result<Executed> {
        match self.execute_once(stmt).await {
            Err(e) if Self::stale_plan(&e) => {
                self.forget_statements();
                self.execute_once(stmt).await
            }
            r => r,
        }
    }

    pub(crate) async fn batch_sql(&mut self, sql: &str) -> Result<()> {
        let r = self.client.batch_execute(sql).await.map_err(map_error);
        if r.is_ok() && looks_like_ddl(sql) {
            self.forget_statements();
        }
        r
    }

    pub(crate) async fn stream_rows(&mut self, stmt: &Stmt, sink: &RowSink) -> Result<()> {
        let st = self.prepare(&stmt.sql).await?;
        let columns: Arc<[String]> = st.columns().iter().map(|c| c.name().to_string()).collect::<Vec<_>>().into();
        let rows = self.client.query_raw(&st, stmt.params.iter().map(PgParam)).await.map_err(map_error)?;
        pin_mut!(rows);
        while let Some(row) = rows.next().await {
            let row = row.map_err(map_error)?;
            let mut values = Vec::with_capacity(row.len());
            read_row(&row, &mut values)?;
            if !sink.send(Row::new(columns.clone(), values)).await {
                break;
            }
        }
        Ok(())
    }
}

fn looks_like_ddl(sql: &str) -> bool {
    let s = sql.trim_start().to_ascii_uppercase();
    ["CREATE", "ALTER", "DROP"].iter().any(|k| s.starts_with(k) || s.contains(&format!(";{k}")))
        || s.contains("\nALTER")
        || s.contains("\nDROP")
        || s.contains("\nCREATE")
}

#[async_trait]
impl Connection for PgConn {
    async fn query(&mut self, stmt: &Stmt) -> Result<QueryResult> {
        self.query_stmt(stmt).await
    }

    async fn query_each(&mut self, stmt: &Stmt, row: &mut SendRowFn<'_>) -> Result<()> {
        self.query_each_stmt(stmt, row).await
    }

    async fn execute(&mut self, stmt: &Stmt) -> Result<Executed> {
        self.execute_stmt(stmt).await
    }

    async fn batch(&mut self, sql: &str) -> Result<()> {
        self.batch_sql(sql).await
    }

    fn stream<'a>(&'a mut self, stmt: &'a Stmt, sink: RowSink) -> StreamTask<'a> {
        StreamTask::Async(Box::pin(async move {
            let r = self.stream_rows(stmt, &sink).await;
            if let Err(e) = r {
                sink.fail(e).await;
            }
            Ok(())
        }))
    }

    fn as_any_mut(&mut self) -> Option<&mut dyn std::any::Any> {
        Some(self)
    }

    fn is_broken(&self) -> bool {
        self.client.is_closed()
    }
}

/// Translates a tokio-postgres error: server errors by SQLSTATE with the
/// constraint, table and column the server reported; anything else is a
/// lost connection.
pub(crate) fn map_error(e: tokio_postgres::Error) -> Error {
    if let Some(db) = e.as_db_error() {
        return Error::from_sqlstate(
            db.code().code(),
            db.message().to_string(),
            db.constraint().map(str::to_string),
            db.table().map(str::to_string),
            db.column().map(str::to_string),
        );
    }
    let text = e.to_string();
    if text.contains("error serializing parameter") || text.contains("error deserializing column") {
        let detail = e.source().map(|s| s.to_string()).unwrap_or_default();
        return Error::Decode { column: String::new(), message: format!("{text}: {detail}") };
    }
    Error::ConnectionLost { message: text }
}

/// A [`Value`] encoded for whatever parameter type the server inferred.
#[derive(Debug)]
struct PgParam<'a>(&'a Value);

type BoxError = Box<dyn StdError + Sync + Send>;

fn text_like(ty: &Type) -> bool {
    matches!(*ty, Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN | Type::JSON)
}

impl ToSql for PgParam<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> std::result::Result<IsNull, BoxError> {
        match self.0 {
            Value::Null => Ok(IsNull::Yes),
            Value::Bool(b) => match *ty {
                Type::BOOL => b.to_sql(ty, out),
                Type::INT2 => i16::from(*b).to_sql(ty, out),
                Type::INT4 => i32::from(*b).to_sql(ty, out),
                Type::INT8 => i64::from(*b).to_sql(ty, out),
                _ if text_like(ty) => {
                    out.put_slice(if *b { b"true" } else { b"false" });
                    Ok(IsNull::No)
                }
                _ => Err(format!("cannot send a boolean as {ty}").into()),
            },
            Value::Int(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => {
                    i32::try_from(*i).map_err(|_| format!("{i} is out of range for integer"))?.to_sql(ty, out)
                }
                Type::INT2 => {
                    i16::try_from(*i).map_err(|_| format!("{i} is out of range for smallint"))?.to_sql(ty, out)
                }
                Type::OID => u32::try_from(*i).map_err(|_| format!("{i} is out of range for oid"))?.to_sql(ty, out),
                Type::FLOAT8 => (*i as f64).to_sql(ty, out),
                Type::FLOAT4 => (*i as f32).to_sql(ty, out),
                Type::NUMERIC => encode_numeric(&i.to_string(), out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                _ if text_like(ty) => {
                    out.put_slice(i.to_string().as_bytes());
                    Ok(IsNull::No)
                }
                _ => Err(format!("cannot send an integer as {ty}").into()),
            },
            Value::Float(f) => match *ty {
                Type::FLOAT8 => f.to_sql(ty, out),
                Type::FLOAT4 => (*f as f32).to_sql(ty, out),
                Type::NUMERIC => encode_numeric(&f.to_string(), out),
                Type::INT8 | Type::INT4 | Type::INT2 if f.fract() == 0.0 && f.abs() < 9.0e15 => {
                    PgParam(&Value::Int(*f as i64)).to_sql(ty, out)
                }
                _ if text_like(ty) => {
                    out.put_slice(f.to_string().as_bytes());
                    Ok(IsNull::No)
                }
                _ => Err(format!("cannot send a float as {ty}").into()),
            },
            Value::Text(s) => match *ty {
                Type::JSONB => {
                    out.put_u8(1);
                    out.put_slice(s.as_bytes());
                    Ok(IsNull::No)
                }
                _ if text_like(ty) => {
                    out.put_slice(s.as_bytes());
                    Ok(IsNull::No)
                }
                _ => Err(format!("cannot send text as {ty}").into()),
            },
            Value::Bytes(b) => match *ty {
                Type::BYTEA => {
                    out.put_slice(b);
                    Ok(IsNull::No)
                }
                _ => Err(format!("cannot send bytes as {ty}").into()),
            },
            Value::Date(d) => match *ty {
                Type::DATE => {
                    out.put_i32(d.checked_sub(PG_EPOCH_DAYS).ok_or("date out of range")?);
                    Ok(IsNull::No)
                }
                Type::TIMESTAMP | Type::TIMESTAMPTZ => {
                    let us = i64::from(*d) * civil::MICROS_PER_DAY;
                    PgParam(&Value::Timestamp(us)).to_sql(ty, out)
                }
                _ => as_text(ty, &civil::format_date(*d), out),
            },
            Value::Timestamp(t) | Value::TimestampTz(t) => match *ty {
                Type::TIMESTAMP | Type::TIMESTAMPTZ => {
                    out.put_i64(t.checked_sub(PG_EPOCH_MICROS).ok_or("timestamp out of range")?);
                    Ok(IsNull::No)
                }
                _ if matches!(self.0, Value::TimestampTz(_)) => as_text(ty, &civil::format_timestamptz(*t), out),
                _ => as_text(ty, &civil::format_timestamp(*t), out),
            },
            Value::Decimal(d) => match *ty {
                Type::NUMERIC => encode_numeric(d, out),
                // A float parameter (a comparison with a float column) takes the nearest double.
                Type::FLOAT8 => d.parse::<f64>()?.to_sql(ty, out),
                Type::FLOAT4 => d.parse::<f32>()?.to_sql(ty, out),
                Type::INT8 | Type::INT4 | Type::INT2 => match d.parse::<i64>() {
                    Ok(i) => PgParam(&Value::Int(i)).to_sql(ty, out),
                    Err(_) => Err(format!("cannot send {d} as {ty}").into()),
                },
                _ => as_text(ty, d, out),
            },
            Value::Uuid(u) => match *ty {
                Type::UUID => {
                    out.put_slice(u);
                    Ok(IsNull::No)
                }
                _ => as_text(ty, &civil::format_uuid(u), out),
            },
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

/// PostgreSQL counts dates and timestamps from 2000-01-01; the ORM from 1970.
const PG_EPOCH_DAYS: i32 = 10_957;
const PG_EPOCH_MICROS: i64 = 10_957 * civil::MICROS_PER_DAY;

/// A value's text form for a text-typed parameter.
fn as_text(ty: &Type, text: &str, out: &mut BytesMut) -> std::result::Result<IsNull, BoxError> {
    if !text_like(ty) {
        return Err(format!("cannot send {text} as {ty}").into());
    }
    out.put_slice(text.as_bytes());
    Ok(IsNull::No)
}

fn fixed<const N: usize>(raw: &[u8], what: &str) -> std::result::Result<[u8; N], String> {
    <[u8; N]>::try_from(raw).map_err(|_| format!("a {what} of {} bytes", raw.len()))
}

/// `date`, `timestamp`, `timestamptz` and `uuid` in binary form. Infinite
/// dates and times (`'infinity'`) have no Rust value and are refused.
fn decode_temporal(ty: &Type, raw: &[u8]) -> std::result::Result<Value, String> {
    match *ty {
        Type::DATE => {
            let d = i32::from_be_bytes(fixed(raw, "date")?);
            d.checked_add(PG_EPOCH_DAYS).map(Value::Date).ok_or_else(|| "an infinite date".to_string())
        }
        Type::TIMESTAMP | Type::TIMESTAMPTZ => {
            let t = i64::from_be_bytes(fixed(raw, "timestamp")?);
            let us = t.checked_add(PG_EPOCH_MICROS).ok_or_else(|| "an infinite timestamp".to_string())?;
            Ok(if *ty == Type::TIMESTAMP { Value::Timestamp(us) } else { Value::TimestampTz(us) })
        }
        _ => Ok(Value::Uuid(fixed(raw, "uuid")?)),
    }
}

/// Any column, read as raw bytes to be decoded by its type.
struct RawBytes<'a>(&'a [u8]);

impl<'a> FromSql<'a> for RawBytes<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> std::result::Result<Self, BoxError> {
        Ok(RawBytes(raw))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

/// A tokio-postgres row read column by column by a model's decoder:
/// integers, floats, text and bytes are borrowed from the row's buffer;
/// other types go through [`read_column`].
struct LivePgRow<'r> {
    row: &'r tokio_postgres::Row,
    next: usize,
    /// A column that could not be read (reported after the decoder returns).
    failed: Option<Error>,
}

impl crate::model::LiveRow for LivePgRow<'_> {
    fn next_ref(&mut self) -> Option<crate::value::ValueRef<'_>> {
        use crate::value::ValueRef as V;
        let i = self.next;
        let col = self.row.columns().get(i)?;
        self.next += 1;
        let raw = match self.row.try_get::<_, Option<RawBytes>>(i) {
            Ok(Some(raw)) => raw.0,
            Ok(None) => return Some(V::Null),
            Err(e) => {
                self.failed = Some(Error::Decode { column: col.name().to_string(), message: e.to_string() });
                return Some(V::Null);
            }
        };
        let fixed = |n: usize| raw.len() == n;
        Some(match *col.type_() {
            Type::INT8 if fixed(8) => V::Int(i64::from_be_bytes(raw.try_into().ok()?)),
            Type::INT4 if fixed(4) => V::Int(i64::from(i32::from_be_bytes(raw.try_into().ok()?))),
            Type::INT2 if fixed(2) => V::Int(i64::from(i16::from_be_bytes(raw.try_into().ok()?))),
            Type::FLOAT8 if fixed(8) => V::Float(f64::from_be_bytes(raw.try_into().ok()?)),
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => V::Text(raw),
            Type::BYTEA => V::Blob(raw),
            _ => {
                let mut one = Vec::with_capacity(1);
                match read_column(self.row, i, &mut one) {
                    Ok(()) => V::Owned(one.pop().unwrap_or(Value::Null)),
                    Err(e) => {
                        self.failed = Some(e);
                        V::Null
                    }
                }
            }
        })
    }
}

/// Appends one row's values, each decoded by its column type.
fn read_row(row: &tokio_postgres::Row, values: &mut Vec<Value>) -> Result<()> {
    for i in 0..row.columns().len() {
        read_column(row, i, values)?;
    }
    Ok(())
}

/// Appends column `i`'s value, decoded by its type.
fn read_column(row: &tokio_postgres::Row, i: usize, values: &mut Vec<Value>) -> Result<()> {
    {
        let col = &row.columns()[i];
        let decode_err = |e: tokio_postgres::Error| Error::Decode {
            column: col.name().to_string(),
            message: e.source().map(|s| s.to_string()).unwrap_or_else(|| e.to_string()),
        };
        let ty = col.type_();
        let v = match *ty {
            Type::BOOL => row.try_get::<_, Option<bool>>(i).map_err(decode_err)?.map(Value::Bool),
            Type::INT2 => row.try_get::<_, Option<i16>>(i).map_err(decode_err)?.map(|v| Value::Int(v.into())),
            Type::INT4 => row.try_get::<_, Option<i32>>(i).map_err(decode_err)?.map(|v| Value::Int(v.into())),
            Type::INT8 => row.try_get::<_, Option<i64>>(i).map_err(decode_err)?.map(Value::Int),
            Type::OID => row.try_get::<_, Option<u32>>(i).map_err(decode_err)?.map(|v| Value::Int(v.into())),
            Type::FLOAT4 => row.try_get::<_, Option<f32>>(i).map_err(decode_err)?.map(|v| Value::Float(v.into())),
            Type::FLOAT8 => row.try_get::<_, Option<f64>>(i).map_err(decode_err)?.map(Value::Float),
            Type::BYTEA => row.try_get::<_, Option<Vec<u8>>>(i).map_err(decode_err)?.map(Value::Bytes),
            Type::DATE | Type::TIMESTAMP | Type::TIMESTAMPTZ | Type::UUID => {
                match row.try_get::<_, Option<RawBytes>>(i).map_err(decode_err)? {
                    Some(raw) => Some(
                        decode_temporal(ty, raw.0)
                            .map_err(|m| Error::Decode { column: col.name().to_string(), message: m })?,
                    ),
                    None => None,
                }
            }
            Type::NUMERIC => match row.try_get::<_, Option<RawBytes>>(i).map_err(decode_err)? {
                Some(raw) => Some(
                    decode_numeric(raw.0).map_err(|m| Error::Decode { column: col.name().to_string(), message: m })?,
                ),
                None => None,
            },
            _ => match row.try_get::<_, Option<RawBytes>>(i).map_err(decode_err)? {
                Some(raw) => Some(decode_texty(ty, raw.0).ok_or_else(|| Error::Decode {
                    column: col.name().to_string(),
                    message: format!("type {ty} is not supported by shoal-orm; cast it to text in the query"),
                })?),
                None => None,
            },
        };
        values.push(v.unwrap_or(Value::Null));
    }
    Ok(())
}

/// Types whose binary form is their text: strings, JSON, enums and the like.
fn decode_texty(ty: &Type, raw: &[u8]) -> Option<Value> {
    let text = |b: &[u8]| std::str::from_utf8(b).ok().map(|s| Value::Text(s.to_string()));
    match *ty {
        Type::TEXT
        | Type::VARCHAR
        | Type::BPCHAR
        | Type::NAME
        | Type::UNKNOWN
        | Type::JSON
        | Type::XML
        | Type::CHAR => text(raw),
        Type::JSONB => raw.split_first().filter(|(v, _)| **v == 1).and_then(|(_, rest)| text(rest)),
        _ if matches!(ty.kind(), tokio_postgres::types::Kind::Enum(_)) => text(raw),
        _ => None,
    }
}

/// NUMERIC's binary form → exact decimal text (`NaN` becomes a float NaN).
fn decode_numeric(raw: &[u8]) -> std::result::Result<Value, String> {
    let word = |i: usize| -> std::result::Result<i16, String> {
        raw.get(i * 2..i * 2 + 2).map(|b| i16::from_be_bytes([b[0], b[1]])).ok_or_else(|| "short numeric".to_string())
    };
    let ndigits = word(0)?.max(0) as usize;
    let weight = word(1)? as i32;
    let sign = word(2)? as u16;
    let dscale = word(3)?.max(0) as usize;
    let digits: Vec<i16> = (0..ndigits).map(|k| word(4 + k)).collect::<std::result::Result<_, _>>()?;
    if sign == 0xC000 {
        return Ok(Value::Float(f64::NAN));
    }
    let digit = |k: i32| if k < 0 { 0 } else { digits.get(k as usize).copied().unwrap_or(0) };
    let mut text = String::new();
    if sign == 0x4000 {
        text.push('-');
    }
    if weight < 0 {
        text.push('0');
    } else {
        for k in 0..=weight {
            if k == 0 {
                let _ = write!(text, "{}", digit(k));
            } else {
                let _ = write!(text, "{:04}", digit(k));
            }
        }
    }
    if dscale > 0 {
        let mut frac = String::new();
        let mut k = weight + 1;
        while frac.len() < dscale {
            let _ = write!(frac, "{:04}", digit(k));
            k += 1;
        }
        frac.truncate(dscale);
        text.push('.');
        text.push_str(&frac);
    }
    crate::civil::canonical_decimal(&text).map(Value::Decimal).ok_or_else(|| format!("numeric {text}"))
}

/// A decimal string → NUMERIC's binary form.
fn encode_numeric(text: &str, out: &mut BytesMut) -> std::result::Result<IsNull, BoxError> {
    if text == "NaN" {
        out.put_i16(0);
        out.put_i16(0);
        out.put_u16(0xC000);
        out.put_u16(0);
        return Ok(IsNull::No);
    }
    let (neg, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int_part, frac_part) = body.split_once('.').unwrap_or((body, ""));
    if int_part.is_empty() && frac_part.is_empty()
        || !int_part.bytes().chain(frac_part.bytes()).all(|b| b.is_ascii_digit())
    {
        return Err(format!("cannot send {text} as numeric").into());
    }
    let int_part = int_part.trim_start_matches('0');
    let dscale = frac_part.len();
    let int_padded = format!("{}{int_part}", "0".repeat((4 - int_part.len() % 4) % 4));
    let frac_padded = format!("{frac_part}{}", "0".repeat((4 - frac_part.len() % 4) % 4));
    let group = |s: &str| -> Vec<i16> {
        s.as_bytes().chunks(4).map(|c| std::str::from_utf8(c).unwrap_or("0").parse().unwrap_or(0)).collect()
    };
    let int_groups = group(&int_padded);
    let mut digits = int_groups.clone();
    digits.extend(group(&frac_padded));
    let mut weight = int_groups.len() as i32 - 1;
    while digits.first() == Some(&0) {
        digits.remove(0);
        weight -= 1;
    }
    while digits.last() == Some(&0) {
        digits.pop();
    }
    if digits.is_empty() {
        weight = 0;
    }
    out.put_i16(i16::try_from(digits.len()).map_err(|_| "numeric too long")?);
    out.put_i16(i16::try_from(weight).map_err(|_| "numeric out of range")?);
    out.put_u16(if neg && !digits.is_empty() { 0x4000 } else { 0 });
    out.put_u16(u16::try_from(dscale).map_err(|_| "numeric scale out of range")?);
    for d in digits {
        out.put_i16(d);
    }
    Ok(IsNull::No)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(text: &str) -> Value {
        let mut buf = BytesMut::new();
        encode_numeric(text, &mut buf).unwrap();
        decode_numeric(&buf).unwrap()
    }

    #[test]
    fn numeric_round_trips() {
        for text in ["0", "12345678", "-42", "10000", "3.25", "-0.0005", "123456789.125", "99999999999999999999"] {
            assert_eq!(round_trip(text), Value::Decimal(text.into()), "{text}");
        }
        assert_eq!(round_trip("12.50"), Value::Decimal("12.50".into()), "the scale is kept");
        assert_eq!(
            round_trip("12345678901234567890.123456789012"),
            Value::Decimal("12345678901234567890.123456789012".into())
        );
    }

    #[test]
    fn numeric_refuses_garbage() {
        let mut buf = BytesMut::new();
        assert!(encode_numeric("1e5", &mut buf).is_err());
        assert!(encode_numeric("", &mut buf).is_err());
        assert!(decode_numeric(&[0, 1]).is_err());
    }
}
