//! The error type of every Shoal layer.
//!
//! An [`Error`] carries a PostgreSQL SQLSTATE (so the wire layer can report
//! it unchanged), a message that tells the user what to fix, and whether it is
//! **deterministic**.
//!
//! The determinism rule, after toydb: when a replica applies a log entry and
//! the entry fails, a deterministic failure (unique violation, bad cast) is
//! part of the entry's outcome — every replica fails the same way, so the
//! failure is simply returned to the client. A non-deterministic failure
//! (`SQLITE_FULL`, an I/O error) means this replica can no longer follow the
//! log faithfully; it must stop instead of diverging.
//!
//! ```
//! use shoal_common::{Error, SqlState};
//! let err = Error::new(SqlState::UNIQUE_VIOLATION, "duplicate key value violates unique constraint \"users_pkey\"");
//! assert!(err.is_deterministic());
//! match err.code {
//!     SqlState::UNIQUE_VIOLATION => {} // tell the user which key
//!     _ => unreachable!(),
//! }
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};

/// A five-character PostgreSQL SQLSTATE code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SqlState(pub [u8; 5]);

impl SqlState {
    pub const SUCCESSFUL_COMPLETION: SqlState = SqlState(*b"00000");
    pub const WARNING: SqlState = SqlState(*b"01000");
    pub const CONNECTION_EXCEPTION: SqlState = SqlState(*b"08000");
    pub const CONNECTION_FAILURE: SqlState = SqlState(*b"08006");
    pub const PROTOCOL_VIOLATION: SqlState = SqlState(*b"08P01");
    pub const CONNECTION_REJECTED: SqlState = SqlState(*b"08004");
    pub const FEATURE_NOT_SUPPORTED: SqlState = SqlState(*b"0A000");
    pub const CARDINALITY_VIOLATION: SqlState = SqlState(*b"21000");
    pub const DATA_EXCEPTION: SqlState = SqlState(*b"22000");
    pub const STRING_DATA_RIGHT_TRUNCATION: SqlState = SqlState(*b"22001");
    pub const NUMERIC_VALUE_OUT_OF_RANGE: SqlState = SqlState(*b"22003");
    pub const NULL_VALUE_NOT_ALLOWED: SqlState = SqlState(*b"22004");
    pub const INVALID_DATETIME_FORMAT: SqlState = SqlState(*b"22007");
    pub const DATETIME_FIELD_OVERFLOW: SqlState = SqlState(*b"22008");
    pub const DIVISION_BY_ZERO: SqlState = SqlState(*b"22012");
    pub const SUBSTRING_ERROR: SqlState = SqlState(*b"22011");
    /// A LIKE pattern that ends with its escape character, or an ESCAPE
    /// string of more than one character (PostgreSQL uses this code for both).
    pub const INVALID_ESCAPE_SEQUENCE: SqlState = SqlState(*b"22025");
    pub const INVALID_REGULAR_EXPRESSION: SqlState = SqlState(*b"2201B");
    pub const INVALID_ARGUMENT_FOR_LOGARITHM: SqlState = SqlState(*b"2201E");
    pub const INVALID_ARGUMENT_FOR_POWER_FUNCTION: SqlState = SqlState(*b"2201F");
    pub const INVALID_PARAMETER_VALUE: SqlState = SqlState(*b"22023");
    pub const INVALID_TEXT_REPRESENTATION: SqlState = SqlState(*b"22P02");
    pub const INVALID_BINARY_REPRESENTATION: SqlState = SqlState(*b"22P03");
    pub const INVALID_JSON_TEXT: SqlState = SqlState(*b"22P05");
    pub const INTEGRITY_CONSTRAINT_VIOLATION: SqlState = SqlState(*b"23000");
    pub const NOT_NULL_VIOLATION: SqlState = SqlState(*b"23502");
    pub const FOREIGN_KEY_VIOLATION: SqlState = SqlState(*b"23503");
    pub const UNIQUE_VIOLATION: SqlState = SqlState(*b"23505");
    pub const CHECK_VIOLATION: SqlState = SqlState(*b"23514");
    pub const INVALID_TRANSACTION_STATE: SqlState = SqlState(*b"25000");
    pub const ACTIVE_SQL_TRANSACTION: SqlState = SqlState(*b"25001");
    pub const READ_ONLY_SQL_TRANSACTION: SqlState = SqlState(*b"25006");
    pub const NO_ACTIVE_SQL_TRANSACTION: SqlState = SqlState(*b"25P01");
    pub const IN_FAILED_SQL_TRANSACTION: SqlState = SqlState(*b"25P02");
    pub const INVALID_SQL_STATEMENT_NAME: SqlState = SqlState(*b"26000");
    pub const INVALID_AUTHORIZATION_SPECIFICATION: SqlState = SqlState(*b"28000");
    pub const INVALID_PASSWORD: SqlState = SqlState(*b"28P01");
    pub const INVALID_CURSOR_NAME: SqlState = SqlState(*b"34000");
    pub const INVALID_SCHEMA_NAME: SqlState = SqlState(*b"3F000");
    pub const TRANSACTION_ROLLBACK: SqlState = SqlState(*b"40000");
    pub const SERIALIZATION_FAILURE: SqlState = SqlState(*b"40001");
    pub const STATEMENT_COMPLETION_UNKNOWN: SqlState = SqlState(*b"40003");
    pub const DEADLOCK_DETECTED: SqlState = SqlState(*b"40P01");
    pub const SYNTAX_ERROR: SqlState = SqlState(*b"42601");
    pub const INSUFFICIENT_PRIVILEGE: SqlState = SqlState(*b"42501");
    pub const GROUPING_ERROR: SqlState = SqlState(*b"42803");
    pub const DATATYPE_MISMATCH: SqlState = SqlState(*b"42804");
    pub const WRONG_OBJECT_TYPE: SqlState = SqlState(*b"42809");
    pub const CANNOT_COERCE: SqlState = SqlState(*b"42846");
    pub const UNDEFINED_COLUMN: SqlState = SqlState(*b"42703");
    pub const UNDEFINED_FUNCTION: SqlState = SqlState(*b"42883");
    pub const UNDEFINED_TABLE: SqlState = SqlState(*b"42P01");
    pub const UNDEFINED_PARAMETER: SqlState = SqlState(*b"42P02");
    pub const UNDEFINED_OBJECT: SqlState = SqlState(*b"42704");
    pub const DUPLICATE_COLUMN: SqlState = SqlState(*b"42701");
    pub const DUPLICATE_DATABASE: SqlState = SqlState(*b"42P04");
    pub const DUPLICATE_OBJECT: SqlState = SqlState(*b"42710");
    pub const DUPLICATE_TABLE: SqlState = SqlState(*b"42P07");
    pub const AMBIGUOUS_COLUMN: SqlState = SqlState(*b"42702");
    pub const INVALID_COLUMN_REFERENCE: SqlState = SqlState(*b"42P10");
    pub const INVALID_TABLE_DEFINITION: SqlState = SqlState(*b"42P16");
    pub const INDETERMINATE_DATATYPE: SqlState = SqlState(*b"42P18");
    pub const UNDEFINED_PREPARED_STATEMENT: SqlState = SqlState(*b"26000");
    pub const PROGRAM_LIMIT_EXCEEDED: SqlState = SqlState(*b"54000");
    pub const OBJECT_IN_USE: SqlState = SqlState(*b"55006");
    pub const QUERY_CANCELED: SqlState = SqlState(*b"57014");
    pub const ADMIN_SHUTDOWN: SqlState = SqlState(*b"57P01");
    pub const CANNOT_CONNECT_NOW: SqlState = SqlState(*b"57P03");
    pub const DISK_FULL: SqlState = SqlState(*b"53100");
    pub const OUT_OF_MEMORY: SqlState = SqlState(*b"53200");
    pub const TOO_MANY_CONNECTIONS: SqlState = SqlState(*b"53300");
    pub const IO_ERROR: SqlState = SqlState(*b"58030");
    pub const INTERNAL_ERROR: SqlState = SqlState(*b"XX000");
    pub const DATA_CORRUPTED: SqlState = SqlState(*b"XX001");

    /// The code as text, e.g. `"23505"`.
    pub fn as_str(&self) -> &str {
        // The constructor only ever receives ASCII literals or validated input.
        std::str::from_utf8(&self.0).unwrap_or("XX000")
    }

    /// Parses a five-character code; anything else becomes `XX000`.
    pub fn parse(code: &str) -> SqlState {
        let bytes = code.as_bytes();
        if bytes.len() == 5 && bytes.iter().all(|b| b.is_ascii_alphanumeric()) {
            let mut out = [0u8; 5];
            out.copy_from_slice(bytes);
            SqlState(out)
        } else {
            SqlState::INTERNAL_ERROR
        }
    }

    /// Class `40` (transaction rollback): the client may retry the transaction.
    pub fn is_retryable(&self) -> bool {
        self.0[0] == b'4' && self.0[1] == b'0' && *self != SqlState::STATEMENT_COMPLETION_UNKNOWN
    }
}

impl fmt::Display for SqlState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error from any layer of Shoal, ready to be sent to a PostgreSQL client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Error {
    /// The SQLSTATE reported to the client.
    pub code: SqlState,
    /// The primary message: what went wrong, in PostgreSQL's lower-case style.
    pub message: String,
    /// Optional detail (PostgreSQL's `DETAIL:` line).
    pub detail: Option<String>,
    /// Optional hint on how to fix it (PostgreSQL's `HINT:` line).
    pub hint: Option<String>,
    /// False when the error came from the environment (I/O, disk full, lost
    /// leadership) rather than from the statement itself; see the module docs.
    pub deterministic: bool,
    /// The database object the error is about, for the ErrorResponse fields
    /// drivers expose (psycopg's `diag.table_name`, JDBC's `getServerErrorMessage`).
    #[serde(default)]
    pub object: Option<Box<ErrorObject>>,
}

/// The schema, table, column and constraint an error refers to (PostgreSQL's
/// `s`, `t`, `c` and `n` ErrorResponse fields).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorObject {
    pub schema: Option<String>,
    pub table: Option<String>,
    pub column: Option<String>,
    pub constraint: Option<String>,
}

/// The result type of every Shoal layer.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A deterministic error: every replica would produce it for the same input.
    pub fn new(code: SqlState, message: impl Into<String>) -> Error {
        Error { code, message: message.into(), detail: None, hint: None, deterministic: true, object: None }
    }

    /// A non-deterministic error: caused by this node's environment.
    pub fn environment(code: SqlState, message: impl Into<String>) -> Error {
        Error { deterministic: false, ..Error::new(code, message) }
    }

    /// Adds a `DETAIL:` line.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Error {
        self.detail = Some(detail.into());
        self
    }

    /// Adds a `HINT:` line.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Error {
        self.hint = Some(hint.into());
        self
    }

    /// Names the constraint (and its table, in schema `public`) the error is about.
    pub fn with_constraint(mut self, table: impl Into<String>, constraint: impl Into<String>) -> Error {
        let object = self.object.get_or_insert_with(Default::default);
        object.schema = Some("public".into());
        object.table = Some(table.into());
        object.constraint = Some(constraint.into());
        self
    }

    /// Names the column (and its table, in schema `public`) the error is about.
    pub fn with_column(mut self, table: impl Into<String>, column: impl Into<String>) -> Error {
        let object = self.object.get_or_insert_with(Default::default);
        object.schema = Some("public".into());
        object.table = Some(table.into());
        object.column = Some(column.into());
        self
    }

    /// See the module documentation for the determinism rule.
    pub fn is_deterministic(&self) -> bool {
        self.deterministic
    }

    /// `0A000 feature not supported`, naming the construct.
    pub fn unsupported(what: impl fmt::Display) -> Error {
        Error::new(SqlState::FEATURE_NOT_SUPPORTED, format!("{what} is not supported by Shoal"))
            .with_hint("docs/sql.md lists the supported SQL")
    }

    /// `42601 syntax error`.
    pub fn syntax(message: impl Into<String>) -> Error {
        Error::new(SqlState::SYNTAX_ERROR, message)
    }

    /// `XX000 internal error`: a bug in Shoal, never the user's fault.
    pub fn internal(message: impl Into<String>) -> Error {
        Error::environment(SqlState::INTERNAL_ERROR, message)
    }

    /// `58030 io error`.
    pub fn io(context: impl fmt::Display, err: impl fmt::Display) -> Error {
        Error::environment(SqlState::IO_ERROR, format!("{context}: {err}"))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Error {
        let code = match err.raw_os_error() {
            Some(28) => SqlState::DISK_FULL, // ENOSPC
            _ => SqlState::IO_ERROR,
        };
        Error::environment(code, format!("I/O error: {err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstate_parse_and_display() {
        assert_eq!(SqlState::parse("23505"), SqlState::UNIQUE_VIOLATION);
        assert_eq!(SqlState::parse("bad"), SqlState::INTERNAL_ERROR);
        assert_eq!(SqlState::UNIQUE_VIOLATION.to_string(), "23505");
    }

    #[test]
    fn retryable_is_class_40_except_unknown_outcome() {
        assert!(SqlState::SERIALIZATION_FAILURE.is_retryable());
        assert!(!SqlState::STATEMENT_COMPLETION_UNKNOWN.is_retryable());
        assert!(!SqlState::UNIQUE_VIOLATION.is_retryable());
    }

    #[test]
    fn environment_errors_are_not_deterministic() {
        assert!(!Error::io("log", "boom").is_deterministic());
        assert!(Error::syntax("x").is_deterministic());
        let disk_full = Error::from(std::io::Error::from_raw_os_error(28));
        assert_eq!(disk_full.code, SqlState::DISK_FULL);
    }
}
