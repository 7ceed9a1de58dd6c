//! # shoal-common — the vocabulary every layer of Shoal shares
//!
//! Shoal is layered bottom-up as `storage → raft → sql → server → pgwire`.
//! Each layer speaks in the types defined here so that no layer has to know
//! the internals of another:
//!
//! * [`Error`] — one error type with a PostgreSQL SQLSTATE and the
//!   *determinism rule* (see [`error`]): a deterministic error is one every
//!   replica would hit identically (a constraint violation), so it is returned
//!   to the client; a non-deterministic one (disk full, I/O) must stop the
//!   replica rather than let it diverge.
//! * [`DataType`] — the PostgreSQL types Shoal exposes on the wire, and how
//!   each one is stored in SQLite (the *storage representation*, documented on
//!   the enum; the SQL translator and the wire encoder both rely on it).
//! * [`Value`] — a value as SQLite stores it. Its PostgreSQL meaning comes
//!   from the [`DataType`] it travels with.
//! * [`ExecContext`] — the timestamp and random seed a transaction runs with,
//!   recorded in the Raft log so every replica computes the same `now()` and
//!   `random()`.
//! * [`shard`] — the shard hash: which shard of a distributed table a key
//!   belongs to, computed the same way by the server and the ORM.

pub mod context;
pub mod convert;
pub mod error;
pub mod numeric;
pub mod shard;
pub mod types;
pub mod value;

pub use context::ExecContext;
pub use error::{Error, ErrorObject, Result, SqlState};
pub use types::DataType;
pub use value::Value;
