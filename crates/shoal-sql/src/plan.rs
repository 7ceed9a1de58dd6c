//! The output of the SQL front: what the executor must do for one statement.
//!
//! Planning happens once, on the node the client is connected to; the plan
//! carries SQLite SQL text (never a value spliced into it: every client value
//! stays a bound parameter, `$n` becomes `?n`) plus the PostgreSQL types of
//! its parameters and output columns.

use serde::{Deserialize, Serialize};
use shoal_common::{DataType, Value};

use crate::catalog::Catalog;

/// One output column of a statement, as reported in RowDescription.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutputColumn {
    pub name: String,
    pub data_type: DataType,
    /// OID of the source table when the column is a plain table column, else 0.
    pub table_oid: u32,
    /// Attribute number in the source table (1-based), else 0.
    pub column_id: i16,
}

/// What a query reads besides user tables: the in-memory schemas the
/// executor attaches to read connections and fills before running it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemReads {
    /// `pg_catalog` / `information_schema` relations, `::regclass` casts,
    /// catalog functions.
    pub catalog: bool,
    /// The `shoal.*` system views (live Raft state).
    pub system_views: bool,
    /// A `shoal.*` administrative table function the executor runs before
    /// the query, filling its result table.
    pub admin: Option<AdminCall>,
}

/// Shoal's administrative table functions (`SELECT * FROM shoal.verify()`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminCall {
    /// `shoal.verify()`: compare the replicas of every group.
    Verify,
    /// `shoal.add_node(id)`: make a node a voting replica of every group.
    AddNode(u64),
    /// `shoal.remove_node(id)`: move a node's replicas off and remove it.
    RemoveNode(u64),
    /// `shoal.set_replication_factor(n)`: voting replicas per group.
    SetReplicationFactor(u64),
}

impl AdminCall {
    /// The result table in the `shoal` schema.
    pub fn result_view(&self) -> crate::SystemView {
        match self {
            AdminCall::Verify => crate::system_views::verify_view(),
            _ => crate::system_views::membership_view(),
        }
    }
}

/// Which kind of write a [`Plan::Write`] is; it picks the command tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteKind {
    Insert,
    Update,
    Delete,
    /// A `SELECT` that writes: it calls `nextval` or `setval`.
    Select,
}

/// The rows an `INSERT … VALUES` writes, as SQLite expressions over the
/// statement's parameters: `rows[i][j]` is the value of `columns[j]` in row
/// `i`. See [`crate::errors::unique_key_probe`].
#[derive(Clone, Debug, PartialEq)]
pub struct KeyProbe {
    pub table: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// Transaction control statements.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnControl {
    /// `BEGIN` / `START TRANSACTION`; `read_only` from `READ ONLY`.
    Begin {
        read_only: bool,
    },
    Commit,
    Rollback,
    Savepoint(String),
    Release(String),
    RollbackTo(String),
}

/// An argument of [`Plan::SetConfig`]: a literal, or the parameter `$n+1`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SettingArg {
    Literal(String),
    Param(usize),
}

/// What the executor does for one statement.
#[derive(Clone, Debug, PartialEq)]
pub enum Plan {
    /// `EXPLAIN statement`: one text row per line, saying which shards the
    /// statement reaches (resolved with the bound parameters), the SQLite
    /// SQL it runs and SQLite's plan for it. The statement itself is not run.
    Explain {
        /// A [`Plan::Query`] or [`Plan::Write`].
        statement: Box<Plan>,
        route: crate::route::Route,
    },
    /// A read-only statement run on SQLite (a `SELECT`, `VALUES`, `WITH … SELECT`,
    /// catalog queries included: `pg_catalog` and `information_schema` are
    /// attached SQLite schemas the executor fills from the catalog, and the
    /// `shoal` schema holds the system views).
    Query {
        /// SQLite SQL, with `?1`, `?2`, … for parameters.
        sql: String,
        /// The PostgreSQL type of each parameter `$1..$n`, inferred from
        /// context or taken from the client's Parse message.
        param_types: Vec<DataType>,
        columns: Vec<OutputColumn>,
        /// Set by the binder when it resolved a catalog relation or function.
        reads: SystemReads,
        /// The executor appends the session's sequence state (for `currval`,
        /// `lastval`) as one more parameter after `param_types`.
        sequence_state: bool,
    },
    /// INSERT / UPDATE / DELETE (with optional RETURNING; `columns` is empty
    /// without), or a SELECT that draws from a sequence.
    Write {
        kind: WriteKind,
        sql: String,
        param_types: Vec<DataType>,
        columns: Vec<OutputColumn>,
        /// As in [`Plan::Query`].
        sequence_state: bool,
        /// For `INSERT … VALUES`: the rows' values, to find the key of a
        /// unique violation (SQLite does not report it).
        key_probe: Option<KeyProbe>,
        /// Constants of an `INSERT … VALUES` lifted out of `sql` into
        /// parameters `?{n+1}`, … after the client's `n` (see
        /// `Binder::lift_constant`): the executor binds them after the
        /// client's values, before the sequence state.
        lifted: Vec<Value>,
    },
    /// A schema change. The executor runs `statements` (SQLite DDL, no
    /// parameters) in the current transaction, then stores `catalog` as the
    /// new catalog in the same transaction, so DDL is transactional.
    Ddl {
        statements: Vec<String>,
        catalog: Catalog,
        /// Command tag, e.g. `CREATE TABLE`.
        tag: String,
        /// Notices to send (`drop cascades to …`).
        notices: Vec<String>,
    },
    /// `SELECT create_distributed_table(…)`, `create_reference_table(…)` or
    /// `undistribute_table(…)` (see `crate::distribute`): a catalog change
    /// answered with one row holding an empty value, named `function`.
    Distribute { catalog: Catalog, function: String },
    /// A statement that changes nothing and returns nothing but a tag
    /// (e.g. `CREATE TABLE IF NOT EXISTS` on an existing table, `DISCARD ALL`),
    /// with an optional notice such as "relation already exists, skipping".
    Noop { tag: String, notice: Option<String> },
    /// Transaction control.
    Transaction(TxnControl),
    /// `SET name = value` / `SET name TO DEFAULT` (value `None`) / `RESET name`.
    /// Names are lower-cased; `SET LOCAL` sets `local`.
    Set { name: String, value: Option<String>, local: bool },
    /// `SELECT set_config(name, value, is_local)`: a SET whose arguments
    /// may be parameters; answers one row, the new value.
    SetConfig { name: SettingArg, value: SettingArg, local: SettingArg, param_types: Vec<DataType> },
    /// `SHOW name` (`SHOW ALL` is name `all`).
    Show { name: String },
    /// `DECLARE name CURSOR FOR query`: run `query` (a [`Plan::Query`]) and
    /// keep its rows for FETCH until the transaction ends.
    DeclareCursor { name: String, query: Box<Plan>, scroll: Option<bool> },
    /// `FETCH` / `MOVE`.
    Fetch(crate::parser::Fetch),
    /// `CLOSE name` (`None`: `CLOSE ALL`).
    CloseCursor(Option<String>),
    /// An empty query string.
    Empty,
}
