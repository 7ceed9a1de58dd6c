//! One error type for the whole ORM, each variant with its SQLSTATE.
//!
//! Backends translate their driver's errors into these variants at their
//! edge (`backend/*.rs`), so application code matches on meaning, never on a
//! driver or a message:
//!
//! ```
//! # use shoal_orm::Error;
//! fn explain(e: &Error) -> String {
//!     match e {
//!         Error::UniqueViolation { constraint, .. } => format!("taken ({})", constraint.as_deref().unwrap_or("?")),
//!         Error::NotFound { .. } => "no such row".into(),
//!         e if e.is_retryable() => "try again".into(),
//!         e => format!("{} {e}", e.sqlstate()),
//!     }
//! }
//! ```
//!
//! The constraint name is reported where the database says it (PostgreSQL,
//! Shoal, MySQL); SQLite names only columns for unique violations, and the
//! ORM maps those back to the model's constraint name when the statement
//! came from a model.

/// `Result<T, shoal_orm::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong, typed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A lookup that must find a row found none (`get`, `one`, `update`).
    #[error("no row in \"{table}\" matches {what}")]
    NotFound { table: String, what: String },

    /// 23505: a unique constraint or primary key already holds the value.
    #[error("unique violation{}: {message}", name_suffix(constraint))]
    UniqueViolation { constraint: Option<String>, table: Option<String>, message: String },

    /// 23503: a foreign key has no matching row, or a row is still referenced.
    #[error("foreign key violation{}: {message}", name_suffix(constraint))]
    ForeignKeyViolation { constraint: Option<String>, table: Option<String>, message: String },

    /// 23514: a CHECK constraint failed.
    #[error("check violation{}: {message}", name_suffix(constraint))]
    CheckViolation { constraint: Option<String>, table: Option<String>, message: String },

    /// 23502: NULL written to a NOT NULL column.
    #[error("not-null violation{}: {message}", name_suffix(column))]
    NotNullViolation { column: Option<String>, table: Option<String>, message: String },

    /// 40001 (or 40P01, a deadlock): the transaction lost a conflict and may
    /// succeed if run again; see [`crate::Db::transaction_with_retry`].
    #[error("serialization failure ({sqlstate}): {message}")]
    SerializationFailure { sqlstate: String, message: String },

    /// 08006: the connection broke. Whether the last statement took effect is
    /// unknown, so it is not retried automatically.
    #[error("connection lost: {message}")]
    ConnectionLost { message: String },

    /// 08001: no connection could be made (bad address, refused, pool timeout).
    #[error("cannot connect: {message}")]
    Connect { message: String },

    /// Any other error reported by the database, with its SQLSTATE.
    #[error("database error {sqlstate}: {message}")]
    Database { sqlstate: String, message: String },

    /// 22000: a value read from the database does not fit the Rust type.
    #[error("cannot decode column \"{column}\": {message}")]
    Decode { column: String, message: String },

    /// 22023: a connection URL or option the ORM cannot use.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// 0A000: the backend cannot do what was asked (named).
    #[error("not supported: {0}")]
    Unsupported(String),

    /// 25P01: the transaction handle was used after it finished.
    #[error("the transaction has already finished")]
    TransactionClosed,

    /// SO001: strict mode saw one query shape run more often than allowed in
    /// one unit of work — the signature of an N+1 loop.
    #[error(
        "strict mode: the query shape ran {count} times in one unit of work (limit {limit}); \
         load it with .with(…) or batch it: {shape}"
    )]
    RepeatedQuery { shape: String, count: u32, limit: u32 },

    /// SO002: a migration could not be generated or applied.
    #[error("migration: {0}")]
    Migration(String),

    /// An application error returned from a transaction closure.
    #[error(transparent)]
    App(Box<dyn std::error::Error + Send + Sync>),
}

fn name_suffix(name: &Option<String>) -> String {
    match name {
        Some(n) => format!(" on \"{n}\""),
        None => String::new(),
    }
}

impl Error {
    /// The SQLSTATE of this error: the database's own for database errors,
    /// PostgreSQL's nearest class for the ORM's own (`SO…` for strict mode
    /// and migrations, which have no standard code).
    pub fn sqlstate(&self) -> &str {
        match self {
            Error::NotFound { .. } => "P0002",
            Error::UniqueViolation { .. } => "23505",
            Error::ForeignKeyViolation { .. } => "23503",
            Error::CheckViolation { .. } => "23514",
            Error::NotNullViolation { .. } => "23502",
            Error::SerializationFailure { sqlstate, .. } => sqlstate,
            Error::ConnectionLost { .. } => "08006",
            Error::Connect { .. } => "08001",
            Error::Database { sqlstate, .. } => sqlstate,
            Error::Decode { .. } => "22000",
            Error::Config(_) => "22023",
            Error::Unsupported(_) => "0A000",
            Error::TransactionClosed => "25P01",
            Error::RepeatedQuery { .. } => "SO001",
            Error::Migration(_) => "SO002",
            Error::App(_) => "P0001",
        }
    }

    /// True when running the whole transaction again may succeed: a
    /// serialization failure or deadlock. Connection loss is not retryable
    /// because the outcome of the last commit is unknown.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::SerializationFailure { .. })
    }

    /// The constraint a violation names, when the database named one.
    pub fn constraint(&self) -> Option<&str> {
        match self {
            Error::UniqueViolation { constraint, .. }
            | Error::ForeignKeyViolation { constraint, .. }
            | Error::CheckViolation { constraint, .. } => constraint.as_deref(),
            _ => None,
        }
    }

    /// Wraps an application error so it can travel through a transaction
    /// closure; get it back with [`Error::downcast_app`].
    pub fn app(e: impl std::error::Error + Send + Sync + 'static) -> Error {
        Error::App(Box::new(e))
    }

    /// The application error inside an [`Error::App`], if it is an `E`.
    pub fn downcast_app<E: std::error::Error + 'static>(&self) -> Option<&E> {
        match self {
            Error::App(inner) => inner.downcast_ref::<E>(),
            _ => None,
        }
    }

    /// Builds the variant for a SQLSTATE reported by a PostgreSQL-protocol
    /// server (PostgreSQL or Shoal), with the fields it reported.
    pub(crate) fn from_sqlstate(
        sqlstate: &str,
        message: String,
        constraint: Option<String>,
        table: Option<String>,
        column: Option<String>,
    ) -> Error {
        match sqlstate {
            "23505" => Error::UniqueViolation { constraint, table, message },
            "23503" => Error::ForeignKeyViolation { constraint, table, message },
            "23514" => Error::CheckViolation { constraint, table, message },
            "23502" => Error::NotNullViolation { column, table, message },
            "40001" | "40P01" => Error::SerializationFailure { sqlstate: sqlstate.to_string(), message },
            s if s.starts_with("08") || s == "57P01" || s == "57P02" || s == "57P03" => {
                Error::ConnectionLost { message }
            }
            _ => Error::Database { sqlstate: sqlstate.to_string(), message },
        }
    }

    /// Adds the column name to a decode error raised below the model layer.
    pub(crate) fn in_column(self, table: &str, column: &str) -> Error {
        match self {
            Error::Decode { column: c, message } if c.is_empty() => {
                Error::Decode { column: format!("{table}.{column}"), message }
            }
            e => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_has_a_five_character_sqlstate() {
        let all = [
            Error::NotFound { table: "t".into(), what: "id = 1".into() },
            Error::from_sqlstate("23505", "m".into(), Some("k".into()), None, None),
            Error::from_sqlstate("23503", "m".into(), None, None, None),
            Error::from_sqlstate("23514", "m".into(), None, None, None),
            Error::from_sqlstate("23502", "m".into(), None, None, Some("c".into())),
            Error::from_sqlstate("40001", "m".into(), None, None, None),
            Error::from_sqlstate("08006", "m".into(), None, None, None),
            Error::from_sqlstate("42P01", "m".into(), None, None, None),
            Error::Connect { message: "m".into() },
            Error::Decode { column: "c".into(), message: "m".into() },
            Error::Config("m".into()),
            Error::Unsupported("m".into()),
            Error::TransactionClosed,
            Error::RepeatedQuery { shape: "s".into(), count: 3, limit: 2 },
            Error::Migration("m".into()),
        ];
        for e in &all {
            assert_eq!(e.sqlstate().len(), 5, "{e:?}");
        }
        assert_eq!(all[1].constraint(), Some("k"));
        assert!(all[5].is_retryable());
        assert!(!all[6].is_retryable(), "a lost connection leaves the commit's outcome unknown");
        assert_eq!(all[7].sqlstate(), "42P01");
    }
}
