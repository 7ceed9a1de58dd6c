//! Mapping SQLite errors to Shoal errors, with the determinism rule.
//!
//! Errors caused by the statement (constraints, unknown names, bad SQL) are
//! deterministic: every replica fails the same way. Errors caused by the
//! environment (I/O, disk full, out of memory, a busy or locked file,
//! corruption) are not: a replica that hits one during apply must stop.
//!
//! Errors raised by Shoal's own SQL functions (`crate::functions`) already
//! know their PostgreSQL SQLSTATE. SQLite passes a function's error on as text
//! only, so the code rides in that text as a `SQLSTATE xxxxx: ` prefix
//! (`encode_function_error`) and [`from_sqlite`] takes it out again.

use rusqlite::ffi;
use shoal_common::{Error, SqlState};

const FUNCTION_ERROR_PREFIX: &str = "SQLSTATE ";

/// The text of a function error carrying its SQLSTATE.
pub(crate) fn encode_function_error(code: SqlState, message: &str) -> String {
    format!("{FUNCTION_ERROR_PREFIX}{code}: {message}")
}

/// The SQLSTATE and message of a function error made by [`encode_function_error`].
fn decode_function_error(text: &str) -> Option<(SqlState, &str)> {
    let rest = text.strip_prefix(FUNCTION_ERROR_PREFIX)?;
    let (code, message) = rest.split_once(": ")?;
    let code = SqlState::parse(code);
    (code != SqlState::INTERNAL_ERROR || rest.starts_with("XX000")).then_some((code, message))
}

/// Converts a rusqlite error. A function error keeps the SQLSTATE its raiser
/// gave it; otherwise the message keeps SQLite's own text, which the SQL layer
/// may refine into PostgreSQL's wording (constraint names).
pub fn from_sqlite(err: rusqlite::Error) -> Error {
    match &err {
        rusqlite::Error::UserFunctionError(e) => {
            let text = e.to_string();
            match decode_function_error(&text) {
                Some((code, message)) => Error::new(code, message),
                None => Error::new(SqlState::INTERNAL_ERROR, text),
            }
        }
        rusqlite::Error::SqliteFailure(e, msg) => {
            let text = msg.clone().unwrap_or_else(|| e.to_string());
            if let Some((code, message)) = decode_function_error(&text) {
                return Error::new(code, message);
            }
            let code = match e.extended_code {
                ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY | ffi::SQLITE_CONSTRAINT_ROWID => {
                    SqlState::UNIQUE_VIOLATION
                }
                ffi::SQLITE_CONSTRAINT_NOTNULL => SqlState::NOT_NULL_VIOLATION,
                ffi::SQLITE_CONSTRAINT_CHECK => SqlState::CHECK_VIOLATION,
                ffi::SQLITE_CONSTRAINT_FOREIGNKEY => SqlState::FOREIGN_KEY_VIOLATION,
                _ => match e.code {
                    rusqlite::ErrorCode::ConstraintViolation => SqlState::INTEGRITY_CONSTRAINT_VIOLATION,
                    rusqlite::ErrorCode::OperationInterrupted => SqlState::QUERY_CANCELED,
                    rusqlite::ErrorCode::DiskFull => return Error::environment(SqlState::DISK_FULL, text),
                    rusqlite::ErrorCode::OutOfMemory => return Error::environment(SqlState::OUT_OF_MEMORY, text),
                    rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase => {
                        return Error::environment(SqlState::DATA_CORRUPTED, text)
                    }
                    rusqlite::ErrorCode::SystemIoFailure
                    | rusqlite::ErrorCode::CannotOpen
                    | rusqlite::ErrorCode::DatabaseBusy
                    | rusqlite::ErrorCode::DatabaseLocked
                    | rusqlite::ErrorCode::ReadOnly
                    | rusqlite::ErrorCode::FileLockingProtocolFailed => {
                        return Error::environment(SqlState::IO_ERROR, text)
                    }
                    rusqlite::ErrorCode::TooBig => SqlState::PROGRAM_LIMIT_EXCEEDED,
                    _ => classify_message(&text),
                },
            };
            if code == SqlState::QUERY_CANCELED {
                return Error::environment(code, "canceling statement due to user request");
            }
            Error::new(code, text)
        }
        rusqlite::Error::SqlInputError { msg, .. } => Error::new(classify_message(msg), msg.clone()),
        rusqlite::Error::InvalidParameterCount(given, expected) => Error::new(
            SqlState::PROTOCOL_VIOLATION,
            format!("bind message supplies {given} parameters, but prepared statement requires {expected}"),
        ),
        other => Error::internal(format!("sqlite: {other}")),
    }
}

/// Picks a SQLSTATE for SQLite's generic `SQLITE_ERROR` from its message.
fn classify_message(text: &str) -> SqlState {
    if text.starts_with("no such table") {
        SqlState::UNDEFINED_TABLE
    } else if text.starts_with("no such column") {
        SqlState::UNDEFINED_COLUMN
    } else if text.starts_with("no such function") || text.starts_with("wrong number of arguments") {
        SqlState::UNDEFINED_FUNCTION
    } else if text.contains("syntax error") || text.starts_with("near ") || text.starts_with("incomplete input") {
        SqlState::SYNTAX_ERROR
    } else if text.contains("integer overflow") {
        SqlState::NUMERIC_VALUE_OUT_OF_RANGE
    } else if text.contains("already exists") {
        SqlState::DUPLICATE_TABLE
    } else if text.contains("ambiguous column") {
        SqlState::AMBIGUOUS_COLUMN
    } else if text.contains("malformed JSON") {
        SqlState::INVALID_TEXT_REPRESENTATION
    } else {
        SqlState::INTERNAL_ERROR
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(sql: &str) -> Error {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        crate::functions::register(&conn).unwrap();
        from_sqlite(conn.query_row(sql, [], |r| r.get::<_, rusqlite::types::Value>(0)).unwrap_err())
    }

    #[test]
    fn function_errors_keep_their_sqlstate_and_message() {
        let e = error_of("SELECT pg_div(1, 0)");
        assert_eq!(e.code, SqlState::DIVISION_BY_ZERO);
        assert_eq!(e.message, "division by zero");
        assert!(e.is_deterministic());
        let e = error_of("SELECT pg_cast('abc', 'text', 'int4')");
        assert_eq!(
            (e.code, e.message.as_str()),
            (SqlState::INVALID_TEXT_REPRESENTATION, "invalid input syntax for type integer: \"abc\"")
        );
        let e = error_of("SELECT pg_cast('not a date', 'text', 'date')");
        assert_eq!(e.code, SqlState::INVALID_DATETIME_FORMAT);
        assert!(e.message.starts_with("invalid input syntax for type date"), "{}", e.message);
    }

    #[test]
    fn sqlite_errors_are_classified_and_look_alikes_are_not_decoded() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let e = from_sqlite(conn.execute_batch("SELECT * FROM missing").unwrap_err());
        assert_eq!(e.code, SqlState::UNDEFINED_TABLE);
        assert_eq!(decode_function_error("SQLSTATE oops"), None);
        assert_eq!(
            decode_function_error("SQLSTATE 22012: division by zero"),
            Some((SqlState::DIVISION_BY_ZERO, "division by zero"))
        );
    }
}
