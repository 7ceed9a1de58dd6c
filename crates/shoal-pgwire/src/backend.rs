//! The contract between the wire protocol and the database behind it.
//!
//! `shoal-pgwire` knows the PostgreSQL protocol and nothing about SQL
//! execution; `shoal-server` implements [`Backend`] and [`Session`]. Values
//! cross this boundary in their SQLite storage form ([`Value`]) together with
//! their PostgreSQL [`DataType`]; the wire layer converts to and from the
//! client's text or binary formats.

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use shoal_common::{DataType, Result, Value};

/// A column of a result, as described in RowDescription.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    pub name: String,
    pub data_type: DataType,
    /// OID of the source table, or 0.
    pub table_oid: u32,
    /// Attribute number in the source table, or 0.
    pub column_id: i16,
}

/// The outcome of one statement.
#[derive(Clone, Debug, PartialEq)]
pub enum StatementResult {
    /// A statement that returns rows (SELECT, or a write with RETURNING).
    /// `tag` is the full command tag, e.g. `SELECT 3` or `INSERT 0 1`.
    Rows { columns: Arc<Vec<Column>>, rows: Vec<Vec<Value>>, tag: String },
    /// A statement without rows, e.g. `CREATE TABLE`, `INSERT 0 5`, `BEGIN`.
    Command { tag: String },
    /// The empty query (`;` alone): EmptyQueryResponse.
    Empty,
}

/// A notice to send before the statement's result (NoticeResponse).
#[derive(Clone, Debug, PartialEq)]
pub struct Notice {
    /// `NOTICE`, `WARNING`, `INFO`.
    pub severity: String,
    pub code: shoal_common::SqlState,
    pub message: String,
}

/// Transaction status reported in ReadyForQuery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransactionStatus {
    /// `I`
    Idle,
    /// `T`
    InTransaction,
    /// `E`: an error happened; everything until ROLLBACK fails with 25P02.
    Failed,
}

/// A statement prepared by the extended protocol's Parse message.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub sql: String,
    /// The type of each `$n`, inferred when the client did not say.
    pub param_types: Vec<DataType>,
    /// The result columns (empty for statements without rows).
    pub columns: Vec<Column>,
    /// Backend-private plan, handed back to [`Session::execute`].
    pub handle: Arc<dyn std::any::Any + Send + Sync>,
}

/// What the client sent in its StartupMessage.
#[derive(Clone, Debug)]
pub struct ConnectParams {
    pub user: String,
    pub database: String,
    pub application_name: Option<String>,
    /// Settings from the `options` parameter (`-c name=value`, as libpq's
    /// `PGOPTIONS` sends them), in order.
    pub options: Vec<(String, String)>,
    pub client_addr: SocketAddr,
}

/// Parses the startup `options` parameter: words separated by spaces
/// (`\ ` is a space inside a word), each `-c name=value`, `-cname=value` or
/// `--name=value`.
pub fn parse_startup_options(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => word.extend(chars.next()),
            c if c.is_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    let mut settings = Vec::new();
    let mut words = words.into_iter();
    while let Some(word) = words.next() {
        let assignment = if word == "-c" {
            words.next().ok_or_else(|| "\"-c\" needs name=value after it".to_string())?
        } else if let Some(rest) = word.strip_prefix("--").or_else(|| word.strip_prefix("-c")) {
            rest.to_string()
        } else {
            return Err(format!("unsupported startup option \"{word}\" (use -c name=value)"));
        };
        let (name, value) =
            assignment.split_once('=').ok_or_else(|| format!("startup option \"{assignment}\" needs name=value"))?;
        settings.push((name.replace('-', "_"), value.to_string()));
    }
    Ok(settings)
}

/// Stops the statement a session is running (a CancelRequest arrived).
pub type Canceller = Arc<dyn Fn() + Send + Sync>;

/// The database behind the wire: creates sessions.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    type Session: Session;

    /// Opens a session for an authenticated client.
    async fn connect(&self, params: ConnectParams) -> Result<Self::Session>;
}

/// One client connection's state: transaction, settings, prepared plans.
#[async_trait]
pub trait Session: Send + 'static {
    /// Runs a simple-protocol query string: every statement in turn, each
    /// result in order; stops after the first error, which is the last item.
    async fn simple_query(&mut self, sql: &str) -> Vec<Result<StatementResult>>;

    /// Parses and plans one statement. `param_types[i]` is the client's type
    /// for `$i+1` (`None` = infer it).
    async fn prepare(&mut self, sql: &str, param_types: &[Option<DataType>]) -> Result<Prepared>;

    /// Executes a prepared statement with parameters already decoded to their
    /// storage form (see `shoal_common::types`).
    async fn execute(&mut self, prepared: &Prepared, params: Vec<Value>) -> Result<StatementResult>;

    /// Notices produced by the last statement, taken (drained) by the wire layer.
    fn take_notices(&mut self) -> Vec<Notice>;

    /// Status for ReadyForQuery.
    fn transaction_status(&self) -> TransactionStatus;

    /// ParameterStatus messages to send at startup and whenever they change
    /// (`server_version`, `client_encoding`, `DateStyle`, `TimeZone`, …):
    /// all of them when `since` is `None`, else at least those that changed
    /// after [`Session::parameter_generation`] was `since` (the connection
    /// drops values the client already has).
    fn parameter_status(&self, since: Option<u64>) -> Vec<(String, String)>;

    /// A number that changes whenever [`Session::parameter_status`] may
    /// return something new; the connection asks for the parameters only
    /// then, not after every statement.
    fn parameter_generation(&self) -> u64;

    /// The columns of a cursor opened with SQL `DECLARE`, which PostgreSQL
    /// also exposes as a portal of that name (psycopg describes it so).
    fn cursor_columns(&self, _name: &str) -> Option<Vec<Column>> {
        None
    }

    /// A handle that cancels this session's running statement.
    fn canceller(&self) -> Canceller;

    /// `idle_in_transaction_session_timeout`: how long the client may stay
    /// idle inside a transaction block before the connection is closed
    /// (FATAL 25P03). `None`: forever.
    fn idle_in_transaction_timeout(&self) -> Option<std::time::Duration> {
        None
    }

    /// The client went away: roll back whatever is open.
    async fn close(&mut self);
}

#[cfg(test)]
mod tests {
    use super::parse_startup_options;

    #[test]
    fn startup_options_follow_postgres() {
        let parsed = parse_startup_options(
            "-c shoal.read_consistency=follower  -capplication_name=a\\ b --statement-timeout=5s",
        )
        .unwrap();
        assert_eq!(
            parsed,
            vec![
                ("shoal.read_consistency".to_string(), "follower".to_string()),
                ("application_name".to_string(), "a b".to_string()),
                ("statement_timeout".to_string(), "5s".to_string()),
            ]
        );
        assert_eq!(parse_startup_options("").unwrap(), vec![]);
        assert!(parse_startup_options("-c").is_err());
        assert!(parse_startup_options("-c nothing").is_err());
        assert!(parse_startup_options("-D /tmp").is_err());
    }
}
