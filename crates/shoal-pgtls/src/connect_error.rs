//! [`ConnectError`]: a session that could not be opened, explained.

use std::fmt;

use tokio_postgres::error::DbError;

/// A session that could not be opened: the server refused it, the TLS
/// handshake failed, the network failed. Under `sslmode=prefer` a failed
/// handshake is followed by one attempt without TLS, as in libpq; when that
/// fails too, both failures are kept.
///
/// `Display` is the explanation for people: the server's SQLSTATE and
/// message, or the TLS failure in terms of the TLS options as the user set
/// them, and under `prefer` both attempts. To act on the failure, match on
/// the last attempt's error:
///
/// ```no_run
/// # async fn f(tls: shoal_pgtls::Tls, config: tokio_postgres::Config) {
/// use tokio_postgres::error::SqlState;
///
/// match tls.connect(&config).await {
///     Ok(session) => drop(tokio::spawn(session.connection)),
///     Err(e) if e.as_db_error().is_some_and(|db| db.code() == &SqlState::INVALID_PASSWORD) => {
///         eprintln!("wrong password: {e}")
///     }
///     Err(e) => eprintln!("cannot connect: {e}"),
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct ConnectError {
    error: tokio_postgres::Error,
    tls_failure: Option<tokio_postgres::Error>,
    explanation: String,
}

impl ConnectError {
    pub(crate) fn new(
        error: tokio_postgres::Error,
        tls_failure: Option<tokio_postgres::Error>,
        explanation: String,
    ) -> ConnectError {
        ConnectError { error, tls_failure, explanation }
    }

    /// The last attempt's error: the only attempt's, or under `prefer` the
    /// attempt without TLS that followed a failed handshake.
    pub fn error(&self) -> &tokio_postgres::Error {
        &self.error
    }

    /// The last attempt's error, owned.
    pub fn into_error(self) -> tokio_postgres::Error {
        self.error
    }

    /// Under `prefer`, the failed TLS attempt that led to the attempt
    /// without TLS; `None` when there was one attempt.
    pub fn tls_failure(&self) -> Option<&tokio_postgres::Error> {
        self.tls_failure.as_ref()
    }

    /// The server's error, if the last attempt reached the server and it
    /// refused the session.
    pub fn as_db_error(&self) -> Option<&DbError> {
        self.error.as_db_error()
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.explanation)
    }
}

/// No `source`: the explanation already holds the messages of the errors
/// beneath it, which a reporter walking the chain would print again.
impl std::error::Error for ConnectError {}
