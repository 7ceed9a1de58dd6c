//! # shoal-orm — a portable, shard-aware ORM for Shoal, PostgreSQL, MySQL and SQLite
//!
//! ```no_run
//! use shoal_orm::prelude::*;
//!
//! #[derive(Model, Clone, Debug)]
//! #[model(table = "users", shard_key = "id")]
//! struct User {
//!     #[model(primary_key)]
//!     id: i64,
//!     name: String,
//!     age: i32,
//!     email: Option<String>,
//!     #[model(has_many(foreign_key = user_id))]
//!     orders: HasMany<Order>,
//! }
//!
//! #[derive(Model, Clone, Debug)]
//! #[model(table = "orders")]
//! struct Order {
//!     #[model(primary_key, auto_increment)]
//!     id: i64,
//!     #[model(index)]
//!     user_id: i64,
//!     total: i64,
//! }
//!
//! # async fn tour() -> shoal_orm::Result<()> {
//! let db = Db::connect("sqlite::memory:").await?;          // or shoal://, postgres://, mysql://
//! db.sync_schema(&[&User::TABLE, &Order::TABLE]).await?;    // or versioned migrations
//! let mut alice = User { id: 1, name: "Alice".into(), age: 30, email: None, orders: Default::default() };
//! alice.save(&db).await?;
//! let adults = User::query().filter(User::AGE.gt(18)).order_by(User::NAME.asc()).limit(10).all(&db).await?;
//! let with_orders = User::query().with(User::ORDERS).all(&db).await?; // 2 queries, never N+1
//! # Ok(()) }
//! ```
//!
//! ## The layers
//!
//! ```text
//!   model.rs  #[derive(Model)] structs: TableDef, Column<M,T> and Relation<P,C> constants
//!   expr.rs   typed conditions; a column outside the query's models is a compile error
//!   query.rs  SELECT builder · projections · aggregates · joins · streams
//!   write.rs  insert · update · save (upsert) · change tracking · bulk insert · update/delete by filter
//!   relation.rs  .with(…): one batched IN query per relation level (chunked, concurrent)
//!   raw.rs    sql!("… {value} …"): the only raw SQL, every value bound
//!   db.rs     Db (pool), Executor, strict mode (N+1 detector), statement hook
//!   tx.rs     transactions, savepoints, retry of serialization failures
//!   dialect.rs  every SQL difference between the backends, in one place
//!   backend/  sqlite (rusqlite) · postgres (tokio-postgres) · shoal (+ routing, causal tokens) · mysql (mysql_async)
//!   migrate/  introspect the live schema, diff against models, versioned up/down files, apply under a lock
//! ```
//!
//! ## Promises
//!
//! * No value is ever spliced into SQL text. Values reach the database as
//!   bound parameters through [`SqlWriter::bind`](dialect::SqlWriter) or the
//!   [`sql!`] macro; identifiers come from models (compile-time strings).
//! * No lazy loading: a relation is loaded only by `.with(…)`, with one
//!   query per level, and reading an unloaded one gives `None`.
//! * Every error is an [`Error`] variant with a SQLSTATE; nothing panics on
//!   bad input or bad data.
//!
//! The guide is `docs/orm.md`; a runnable tour is `examples/orm_tour.rs`.

extern crate self as shoal_orm;

pub mod backend;
// Its parsers serve the optional column types (features chrono, decimal, uuid).
#[cfg_attr(not(all(feature = "chrono", feature = "decimal", feature = "uuid")), allow(dead_code))]
mod civil;
pub mod db;
pub mod dialect;
pub mod error;
pub mod expr;
pub mod migrate;
pub mod model;
pub mod numeric;
mod pool;
#[doc(hidden)]
pub mod private;
pub mod query;
pub mod raw;
pub mod relation;
pub mod schema;
pub mod tx;
mod types;
pub mod value;
pub mod write;

#[doc(hidden)]
pub use private as __private;

pub use db::{Db, Executor, Options, ReadTarget, Route, StatementEvent, Stmt};
pub use dialect::Dialect;
pub use error::{Error, Result};
pub use expr::{all, any, count_all, Agg, Column, Cond, CountAll, OrderBy};
pub use model::{BelongsTo, FromRow, FromTuple, HasMany, HasOne, Loaded, ManyToMany, Model, Row};
pub use query::{Projection, Select};
pub use raw::RawSql;
pub use relation::{Eager, Relation, RelationKind};
pub use schema::{CheckDef, ColumnDef, Distribution, FkAction, ForeignKeyDef, IndexDef, TableDef};
pub use shoal_orm_derive::{sql, FromRow, Model};
pub use tx::Tx;
pub use value::{Bind, ColumnType, SqlType, Value};
pub use write::{Columns, Insert, Tracked};

// The optional column types' crates, so applications use the same versions.
#[cfg(feature = "chrono")]
pub use chrono;
#[cfg(feature = "decimal")]
pub use rust_decimal;
#[cfg(feature = "uuid")]
pub use uuid;

/// Everything an application usually needs: `use shoal_orm::prelude::*;`.
pub mod prelude {
    pub use crate::{
        count_all, sql, BelongsTo, Cond, Db, Error, Executor, FromRow, HasMany, HasOne, Loaded, ManyToMany, Model,
        Options, Tx,
    };
}
