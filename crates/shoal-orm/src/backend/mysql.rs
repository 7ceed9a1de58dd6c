//! MySQL and MariaDB through mysql_async (pure Rust: no TLS, no zlib).
//!
//! Statements use the binary protocol and mysql_async's per-connection
//! statement cache. Two session choices make MySQL answer like the others:
//! `client_found_rows`, so an UPDATE reports rows *matched* (as PostgreSQL
//! and SQLite do) rather than rows changed; and generated keys come from
//! `LAST_INSERT_ID()`, MySQL having no `RETURNING`.
//!
//! MySQL reports constraint names only inside messages; they are parsed out
//! here (`for key 'users_email_key'`, ``CONSTRAINT `orders_user_id_fkey` ``)
//! so `Error::UniqueViolation { constraint, .. }` names the constraint on
//! every backend. The primary key, which MySQL calls `PRIMARY`, is reported
//! as `<table>_pkey` like PostgreSQL.

use std::sync::Arc;

use async_trait::async_trait;
use mysql_async::consts::{ColumnFlags, ColumnType};
use mysql_async::prelude::Queryable;
use mysql_async::{Opts, OptsBuilder, Params};

use super::{Backend, Connection, Executed, QueryResult, RowSink, StreamTask};
use crate::civil;
use crate::db::{Options, Stmt};
use crate::dialect::Dialect;
use crate::error::{Error, Result};
use crate::model::Row;
use crate::value::Value;

/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 512;

/// The character set number MySQL uses for binary strings.
const BINARY_CHARSET: u16 = 63;

pub struct MysqlBackend {
    opts: Opts,
}

impl MysqlBackend {
    pub fn from_url(url: &str, _options: &Options) -> Result<MysqlBackend> {
        let url = match url.strip_prefix("mariadb://") {
            Some(rest) => format!("mysql://{rest}"),
            None => url.to_string(),
        };
        let opts = Opts::from_url(&url)
            .map_err(|e| Error::Config(format!("invalid MySQL URL {}: {e}", super::redact(&url))))?;
        let opts = OptsBuilder::from_opts(opts).client_found_rows(true).stmt_cache_size(STATEMENT_CACHE);
        Ok(MysqlBackend { opts: opts.into() })
    }
}

#[async_trait]
impl Backend for MysqlBackend {
    fn dialect(&self) -> Dialect {
        Dialect::Mysql
    }

    async fn connect(&self) -> Result<Box<dyn Connection>> {
        let conn =
            mysql_async::Conn::new(self.opts.clone()).await.map_err(|e| Error::Connect { message: e.to_string() })?;
        Ok(Box::new(MysqlConn { conn, broken: false }))
    }
}

struct MysqlConn {
    conn: mysql_async::Conn,
    broken: bool,
}

fn params(values: &[Value]) -> Params {
    if values.is_empty() {
        return Params::Empty;
    }
    Params::Positional(
        values
            .iter()
            .map(|v| match v {
                Value::Null => mysql_async::Value::NULL,
                Value::Bool(b) => mysql_async::Value::Int(i64::from(*b)),
                Value::Int(i) => mysql_async::Value::Int(*i),
                Value::Float(f) => mysql_async::Value::Double(*f),
                Value::Text(s) => mysql_async::Value::Bytes(s.as_bytes().to_vec()),
                Value::Bytes(b) => mysql_async::Value::Bytes(b.clone()),
                Value::Date(d) => {
                    let (y, m, d) = civil::civil_from_days(i64::from(*d));
                    mysql_async::Value::Date(clamp_year(y), m as u8, d as u8, 0, 0, 0, 0)
                }
                // DATETIME has no zone: an instant is stored as its UTC time.
                Value::Timestamp(t) | Value::TimestampTz(t) => {
                    let days = t.div_euclid(civil::MICROS_PER_DAY);
                    let in_day = t.rem_euclid(civil::MICROS_PER_DAY);
                    let (y, m, d) = civil::civil_from_days(days);
                    let secs = in_day / 1_000_000;
                    mysql_async::Value::Date(
                        clamp_year(y),
                        m as u8,
                        d as u8,
                        (secs / 3600) as u8,
                        (secs / 60 % 60) as u8,
                        (secs % 60) as u8,
                        (in_day % 1_000_000) as u32,
                    )
                }
                Value::Decimal(d) => mysql_async::Value::Bytes(d.as_bytes().to_vec()),
                Value::Uuid(u) => mysql_async::Value::Bytes(civil::format_uuid(u).into_bytes()),
            })
            .collect(),
    )
}

/// MySQL's years are 0–9999; others cannot be stored (the server refuses
/// the zero year the clamp produces for them, rather than storing a wrong date).
fn clamp_year(y: i64) -> u16 {
    u16::try_from(y).ok().filter(|y| *y <= 9999).unwrap_or(0)
}

/// Columns that carry binary strings (BLOB, VARBINARY) rather than text.
fn is_binary(col: &mysql_async::Column) -> bool {
    col.character_set() == BINARY_CHARSET
        && matches!(
            col.column_type(),
            ColumnType::MYSQL_TYPE_TINY_BLOB
                | ColumnType::MYSQL_TYPE_MEDIUM_BLOB
                | ColumnType::MYSQL_TYPE_LONG_BLOB
                | ColumnType::MYSQL_TYPE_BLOB
                | ColumnType::MYSQL_TYPE_VAR_STRING
                | ColumnType::MYSQL_TYPE_STRING
                | ColumnType::MYSQL_TYPE_VARCHAR
        )
        || col.flags().contains(ColumnFlags::BINARY_FLAG) && col.column_type() == ColumnType::MYSQL_TYPE_BLOB
}

fn read_value(col: &mysql_async::Column, v: mysql_async::Value) -> Result<Value> {
    Ok(match v {
        mysql_async::Value::NULL => Value::Null,
        mysql_async::Value::Int(i) => Value::Int(i),
        mysql_async::Value::UInt(u) => match i64::try_from(u) {
            Ok(i) => Value::Int(i),
            Err(_) => Value::Float(u as f64),
        },
        mysql_async::Value::Float(f) => Value::Float(f64::from(f)),
        mysql_async::Value::Double(f) => Value::Float(f),
        mysql_async::Value::Bytes(b) => match col.column_type() {
            ColumnType::MYSQL_TYPE_DECIMAL | ColumnType::MYSQL_TYPE_NEWDECIMAL => {
                let text = String::from_utf8_lossy(&b);
                Value::Decimal(civil::canonical_decimal(&text).ok_or_else(|| Error::Decode {
                    column: col.name_str().to_string(),
                    message: format!("decimal {text:?}"),
                })?)
            }
            _ if is_binary(col) => Value::Bytes(b),
            _ => match String::from_utf8(b) {
                Ok(s) => Value::Text(s),
                Err(e) => Value::Bytes(e.into_bytes()),
            },
        },
        mysql_async::Value::Date(y, mo, d, h, mi, s, us) => {
            let days =
                civil::days_from_civil(i64::from(y), u32::from(mo), u32::from(d)).ok_or_else(|| Error::Decode {
                    column: col.name_str().to_string(),
                    message: format!("{y:04}-{mo:02}-{d:02} is not a date (MySQL's zero date?)"),
                })?;
            if col.column_type() == ColumnType::MYSQL_TYPE_DATE {
                Value::Date(days as i32)
            } else {
                let secs = (i64::from(h) * 60 + i64::from(mi)) * 60 + i64::from(s);
                Value::Timestamp(days * civil::MICROS_PER_DAY + secs * 1_000_000 + i64::from(us))
            }
        }
        mysql_async::Value::Time(neg, days, h, mi, s, us) => {
            let hours = days * 24 + u32::from(h);
            let mut t = format!("{}{hours:02}:{mi:02}:{s:02}", if neg { "-" } else { "" });
            if us > 0 {
                t.push_str(&format!(".{us:06}"));
            }
            Value::Text(t)
        }
    })
}

fn read_row(row: mysql_async::Row) -> Result<Vec<Value>> {
    let columns = row.columns();
    let values = row.unwrap();
    columns.iter().zip(values).map(|(c, v)| read_value(c, v)).collect()
}

impl MysqlConn {
    fn fail(&mut self, e: mysql_async::Error, stmt: Option<&Stmt>) -> Error {
        let mapped = map_error(e, stmt);
        if matches!(mapped, Error::ConnectionLost { .. }) {
            self.broken = true;
        }
        mapped
    }

    async fn query_rows(&mut self, stmt: &Stmt) -> std::result::Result<QueryResult, mysql_async::Error> {
        let mut result = self.conn.exec_iter(stmt.sql.as_ref(), params(&stmt.params)).await?;
        let columns: Arc<[String]> = if stmt.named {
            result.columns_ref().iter().map(|c| c.name_str().to_string()).collect::<Vec<_>>().into()
        } else {
            super::no_columns()
        };
        let width = result.columns_ref().len();
        let mut rows = Vec::new();
        while let Some(row) = result.next().await? {
            rows.push(row);
        }
        drop(result);
        let mut out = QueryResult::new(columns, width);
        out.rows = rows.len();
        out.values.reserve(rows.len() * width);
        for row in rows {
            out.values.extend(read_row(row).map_err(|e| mysql_async::Error::Other(Box::new(e)))?);
        }
        Ok(out)
    }

    async fn stream_rows(&mut self, stmt: &Stmt, sink: &RowSink) -> std::result::Result<(), mysql_async::Error> {
        let mut result = self.conn.exec_iter(stmt.sql.as_ref(), params(&stmt.params)).await?;
        let columns: Arc<[String]> =
            result.columns_ref().iter().map(|c| c.name_str().to_string()).collect::<Vec<_>>().into();
        while let Some(row) = result.next().await? {
            let values = read_row(row).map_err(|e| mysql_async::Error::Other(Box::new(e)))?;
            if !sink.send(Row::new(columns.clone(), values)).await {
                // Drain the rest so the connection stays usable.
                while result.next().await?.is_some() {}
                break;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Connection for MysqlConn {
    async fn query(&mut self, stmt: &Stmt) -> Result<QueryResult> {
        match self.query_rows(stmt).await {
            Ok(r) => Ok(r),
            Err(e) => Err(self.fail(e, Some(stmt))),
        }
    }

    async fn execute(&mut self, stmt: &Stmt) -> Result<Executed> {
        match self.conn.exec_drop(stmt.sql.as_ref(), params(&stmt.params)).await {
            Ok(()) => Ok(Executed {
                rows_affected: self.conn.affected_rows(),
                last_insert_id: self.conn.last_insert_id().and_then(|id| i64::try_from(id).ok()),
            }),
            Err(e) => Err(self.fail(e, Some(stmt))),
        }
    }

    async fn batch(&mut self, sql: &str) -> Result<()> {
        match self.conn.query_drop(sql).await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.fail(e, None)),
        }
    }

    fn stream<'a>(&'a mut self, stmt: &'a Stmt, sink: RowSink) -> StreamTask<'a> {
        StreamTask::Async(Box::pin(async move {
            if let Err(e) = self.stream_rows(stmt, &sink).await {
                let e = self.fail(e, Some(stmt));
                sink.fail(e).await;
            }
            Ok(())
        }))
    }

    fn is_broken(&self) -> bool {
        self.broken
    }
}

/// The last `'…'`-quoted or `` `…` ``-quoted name after `marker` in a message.
fn quoted_after(message: &str, marker: &str, quote: char) -> Option<String> {
    // The last occurrence: user data quoted earlier in the message cannot fake it.
    let rest = &message[message.rfind(marker)? + marker.len()..];
    let rest = rest.trim_start().strip_prefix(quote)?;
    rest.split(quote).next().map(str::to_string)
}

fn map_error(e: mysql_async::Error, stmt: Option<&Stmt>) -> Error {
    let table = || stmt.and_then(|s| s.table).map(|t| t.name.to_string());
    match e {
        mysql_async::Error::Server(s) => {
            let message = s.message.clone();
            match s.code {
                1062 | 1586 => {
                    let constraint = quoted_after(&message, "for key", '\'').map(|k| {
                        // MySQL 8 says 'table.key'; MariaDB says 'key'.
                        let k = k.rsplit('.').next().unwrap_or(&k).to_string();
                        match (k.as_str(), table()) {
                            ("PRIMARY", Some(t)) => format!("{t}_pkey"),
                            _ => k,
                        }
                    });
                    Error::UniqueViolation { constraint, table: table(), message }
                }
                1451 | 1452 | 1216 | 1217 => Error::ForeignKeyViolation {
                    constraint: quoted_after(&message, "CONSTRAINT", '`'),
                    table: table(),
                    message,
                },
                3819 => Error::CheckViolation {
                    constraint: quoted_after(&message, "Check constraint", '\''),
                    table: table(),
                    message,
                },
                4025 => Error::CheckViolation {
                    constraint: quoted_after(&message, "CONSTRAINT", '`'),
                    table: table(),
                    message,
                },
                1048 | 1364 => Error::NotNullViolation {
                    column: quoted_after(&message, "Column", '\'').or_else(|| quoted_after(&message, "Field", '\'')),
                    table: table(),
                    message,
                },
                1213 => Error::SerializationFailure { sqlstate: "40001".into(), message },
                // Killed or gone away: the session is over.
                1927 | 2006 | 2013 => Error::ConnectionLost { message },
                1205 => Error::SerializationFailure { sqlstate: "55P03".into(), message },
                1146 => Error::Database { sqlstate: "42P01".into(), message },
                1054 => Error::Database { sqlstate: "42703".into(), message },
                1064 => Error::Database { sqlstate: "42601".into(), message },
                1050 => Error::Database { sqlstate: "42P07".into(), message },
                _ => Error::Database { sqlstate: s.state.clone(), message },
            }
        }
        mysql_async::Error::Io(io) => Error::ConnectionLost { message: io.to_string() },
        mysql_async::Error::Driver(d) => match d {
            mysql_async::DriverError::ConnectionClosed | mysql_async::DriverError::PoolDisconnected => {
                Error::ConnectionLost { message: d.to_string() }
            }
            other => Error::Database { sqlstate: "XX000".into(), message: other.to_string() },
        },
        mysql_async::Error::Other(inner) => match inner.downcast::<Error>() {
            Ok(e) => *e,
            Err(other) => Error::Database { sqlstate: "XX000".into(), message: other.to_string() },
        },
        other => Error::Database { sqlstate: "XX000".into(), message: other.to_string() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constraint_names_from_messages() {
        assert_eq!(
            quoted_after("Duplicate entry 'a@b' for key 'users_email_key'", "for key", '\''),
            Some("users_email_key".into())
        );
        assert_eq!(
            quoted_after(
                "Cannot add or update a child row: a foreign key constraint fails (`test`.`orders`, CONSTRAINT `orders_user_id_fkey` FOREIGN KEY …",
                "CONSTRAINT",
                '`'
            ),
            Some("orders_user_id_fkey".into())
        );
        assert_eq!(quoted_after("no marker here", "CONSTRAINT", '`'), None);
    }
}
