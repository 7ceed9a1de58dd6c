//! Mapping SQLite errors to Shoal errors, with the determinism rule.
//!
//! Errors caused by the statement (constraints, unknown names, bad SQL) are
//! deterministic: every replica fails the same way. Errors caused by the
//! environment (I/O, disk full, out of memory, a busy or locked file,
//! corruption) are not: a replica that hits one during apply must stop.

use rusqlite::ffi;
use shoal_common::{Error, SqlState};

/// Converts a rusqlite error. The message keeps SQLite's own text, which the
/// SQL layer may refine into PostgreSQL's wording.
pub fn from_sqlite(err: rusqlite::Error) -> Error {
    match &err {
        rusqlite::Error::SqliteFailure(e, msg) => {
            let text = msg.clone().unwrap_or_else(|| e.to_string());
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
