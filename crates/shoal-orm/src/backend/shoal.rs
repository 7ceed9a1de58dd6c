//! `shoal://`: the PostgreSQL protocol to a Shoal cluster, plus Shoal's
//! routing hints, causal tokens and follower reads.
//!
//! A Shoal node routes every statement itself (equality or `IN` on the
//! shard key reaches only those shards), so the ORM's job is to write
//! statements that pin the shard key with bound parameters — which the
//! query builder does — and to tell the node what it pinned:
//!
//! ```text
//!   ORM statement (values bound)          session settings sent before it
//!   ─────────────────────────────         ────────────────────────────────────────────
//!   SELECT … WHERE "users"."id" = $1   ◀─ SELECT set_config('shoal.route_hint', $1, false)
//!                                          $1 = {"table":"users","column":"id","values":[7]}
//!   read on a follower                 ◀─ SET shoal.read_consistency = 'follower'
//!                                          SELECT set_config('shoal.read_after', $1, false)  ($1 = causal token)
//!   after a write / commit             ──▶ SHOW shoal.causal_token
//! ```
//!
//! Eager loads group their keys by shard ([`ShardMap`], read once per table
//! from `shoal.shards` and hashed with the server's own function), so each
//! batched `IN` query reaches one shard and the shards' queries run in
//! parallel. A stale map only costs batching, never rows: every query
//! still says which keys it wants.
//!
//! Every value travels as a bound parameter of `set_config`; none is spliced
//! into SQL text. Each feature is probed on first use: a server that answers
//! "unrecognized configuration parameter" (42704) or "function does not
//! exist" (42883) does not have it, and the ORM stops asking. Without causal
//! tokens a `Db` that has written reads from the leader even when follower
//! reads were requested, so it always reads its own writes.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use shoal_common::shard;

use super::postgres::{Endpoint, PgConn};
use super::{Backend, Connection, Executed, QueryResult, RowSink, StreamTask};
use crate::db::{Options, ReadTarget, Route, Stmt};
use crate::dialect::Dialect;
use crate::error::{Error, Result};
use crate::value::{ColumnType, Value};
use async_trait::async_trait;

// A feature starts unknown (0) until first tried.
const AVAILABLE: u8 = 1;
const ABSENT: u8 = 2;

/// A server feature found by trying it once.
#[derive(Default)]
pub struct Feature(AtomicU8);

/// What the ORM knows about one server feature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeatureState {
    /// Not tried yet.
    Unknown,
    Available,
    /// The server refused it; the ORM no longer asks.
    Absent,
}

impl Feature {
    pub fn state(&self) -> FeatureState {
        match self.0.load(Ordering::Relaxed) {
            AVAILABLE => FeatureState::Available,
            ABSENT => FeatureState::Absent,
            _ => FeatureState::Unknown,
        }
    }
    pub fn is_absent(&self) -> bool {
        self.state() == FeatureState::Absent
    }
    fn record(&self, available: bool) {
        self.0.store(if available { AVAILABLE } else { ABSENT }, Ordering::Relaxed);
    }
}

/// The Shoal features a `Db` has probed (see [`crate::Db::shoal_features`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShoalFeatures {
    /// Routing hints and read-after tokens, sent with `set_config`.
    pub routing_hints: FeatureState,
    /// `SHOW shoal.causal_token` after writes.
    pub causal_tokens: FeatureState,
}

/// Whether an error means "the server has no such setting or function".
fn means_absent(e: &Error) -> bool {
    matches!(e, Error::Database { sqlstate, .. } if sqlstate == "42704" || sqlstate == "42883" || sqlstate == "0A000")
}

/// What the ORM knows about the server, shared by every connection of a `Db`.
#[derive(Default)]
pub struct ShoalState {
    /// `set_config(…)` with a bound value (routing hints, read-after).
    pub set_config: Feature,
    /// `SHOW shoal.causal_token`.
    pub causal_token: Feature,
    /// The newest causal token this `Db` has seen.
    token: Mutex<Option<String>>,
    /// Whether this `Db` has written (reads then need the token or the leader).
    wrote: AtomicBool,
    /// The `shoal.shards` view.
    pub shard_view: Feature,
    /// Shard maps read so far, by table (`None`: not distributed).
    shard_maps: Mutex<HashMap<&'static str, Option<Arc<ShardMap>>>>,
}

/// The shards of a distributed table, as `shoal.shards` lists them: each
/// one's inclusive range of the signed 64-bit shard hash, in hash order.
#[derive(Debug, PartialEq, Eq)]
pub struct ShardMap {
    ranges: Vec<(i64, i64)>,
}

impl ShardMap {
    pub fn new(mut ranges: Vec<(i64, i64)>) -> ShardMap {
        ranges.sort_unstable();
        ShardMap { ranges }
    }

    /// How many shards.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The shard (its position in hash order) that owns `key` in a column
    /// of type `ty`, hashed as the server hashes it; `None` when such a key
    /// has no shard hash (the caller then batches it on its own).
    pub fn shard_of(&self, ty: ColumnType, key: &Value) -> Option<usize> {
        let hash = match (ty, key) {
            (ColumnType::SmallInt | ColumnType::Int | ColumnType::BigInt, Value::Int(i)) => shard::hash_integer(*i),
            (ColumnType::Text, Value::Text(t)) => shard::hash_text(t),
            (ColumnType::Text, Value::Int(i)) => shard::hash_text(&i.to_string()),
            _ => return None,
        };
        let i = self.ranges.partition_point(|(min, _)| *min <= hash).checked_sub(1)?;
        (hash <= self.ranges[i].1).then_some(i)
    }
}

impl ShoalState {
    pub fn token(&self) -> Option<String> {
        self.token.lock().map(|t| t.clone()).unwrap_or(None)
    }

    /// What is already known of `table`'s shard map: `Some(None)` when it
    /// is not distributed or the server has no `shoal.shards`, `None` when
    /// it must still be read.
    pub fn known_shard_map(&self, table: &str) -> Option<Option<Arc<ShardMap>>> {
        if self.shard_view.is_absent() {
            return Some(None);
        }
        self.shard_maps.lock().ok()?.get(table).cloned()
    }

    pub fn features(&self) -> ShoalFeatures {
        ShoalFeatures { routing_hints: self.set_config.state(), causal_tokens: self.causal_token.state() }
    }
}

pub struct ShoalBackend {
    endpoint: Endpoint,
    state: Arc<ShoalState>,
}

impl ShoalBackend {
    pub fn from_url(url: &str, _options: &Options) -> Result<ShoalBackend> {
        let rest =
            url.strip_prefix("shoal://").ok_or_else(|| Error::Config("a Shoal URL starts with shoal://".into()))?;
        Ok(ShoalBackend { endpoint: Endpoint::from_url(&format!("postgres://{rest}"))?, state: Arc::default() })
    }
}

#[async_trait]
impl Backend for ShoalBackend {
    fn dialect(&self) -> Dialect {
        Dialect::Shoal
    }

    fn shoal_state(&self) -> Option<Arc<ShoalState>> {
        Some(self.state.clone())
    }

    async fn connect(&self) -> Result<Box<dyn Connection>> {
        Ok(Box::new(ShoalConn {
            pg: PgConn::connect(&self.endpoint).await?,
            state: self.state.clone(),
            sent_hint: String::new(),
            follower: false,
            sent_after: None,
        }))
    }
}

struct ShoalConn {
    pg: PgConn,
    state: Arc<ShoalState>,
    /// The routing hint this session holds ("" = none).
    sent_hint: String,
    /// Whether this session reads from followers.
    follower: bool,
    sent_after: Option<String>,
}

/// `{"table":"users","column":"id","values":[7,"a"]}`.
pub(crate) fn hint_json(route: &Route) -> String {
    fn string(s: &str, out: &mut String) {
        out.push('"');
        for ch in s.chars() {
            match ch {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if (c as u32) < 0x20 => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c => out.push(c),
            }
        }
        out.push('"');
    }
    let mut out = String::from("{\"table\":");
    string(route.table, &mut out);
    out.push_str(",\"column\":");
    string(route.column, &mut out);
    out.push_str(",\"values\":[");
    for (i, v) in route.values.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match v {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(n) => {
                let _ = write!(out, "{n}");
            }
            Value::Float(f) if f.is_finite() => {
                let _ = write!(out, "{f}");
            }
            Value::Float(_) => out.push_str("null"),
            Value::Text(s) => string(s, &mut out),
            Value::Bytes(b) => {
                out.push('"');
                for byte in b {
                    let _ = write!(out, "{byte:02x}");
                }
                out.push('"');
            }
            // Dates, times, decimals and UUIDs as their SQL text.
            other => string(&other.to_string(), &mut out),
        }
    }
    out.push_str("]}");
    out
}

impl ShoalConn {
    /// `SELECT set_config(name, $1, false)`; false when the server lacks it.
    async fn set_config(&mut self, name: &'static str, value: String) -> Result<bool> {
        if self.state.set_config.is_absent() {
            return Ok(false);
        }
        let sql = match name {
            "shoal.route_hint" => "SELECT set_config('shoal.route_hint', $1, false)",
            _ => "SELECT set_config('shoal.read_after', $1, false)",
        };
        match self.pg.query_stmt(&Stmt::read(sql.to_string(), vec![Value::Text(value)])).await {
            Ok(_) => {
                self.state.set_config.record(true);
                Ok(true)
            }
            Err(e) if means_absent(&e) => {
                tracing::debug!("shoal: set_config is not available ({e}); routing hints and read-after are off");
                self.state.set_config.record(false);
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Reads `table`'s shards from `shoal.shards` and caches them (callers
    /// look in [`ShoalState::known_shard_map`] first); a server without the
    /// view is remembered as such.
    async fn read_shard_map(&mut self, table: &'static str) -> Result<Option<Arc<ShardMap>>> {
        let sql = "SELECT hash_min, hash_max FROM shoal.shards WHERE table_name = $1";
        let result = match self.pg.query_stmt(&Stmt::read(sql, vec![Value::Text(table.into())])).await {
            Ok(result) => result,
            // No `shoal` schema (3F000) or view (42P01): not a Shoal server.
            Err(e)
                if means_absent(&e)
                    || matches!(&e, Error::Database { sqlstate, .. } if sqlstate == "3F000" || sqlstate == "42P01") =>
            {
                tracing::debug!("shoal: no shoal.shards ({e}); eager loads are not grouped by shard");
                self.state.shard_view.record(false);
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        self.state.shard_view.record(true);
        let mut ranges = Vec::with_capacity(result.rows);
        let mut values = result.values.into_iter();
        while let (Some(Value::Int(min)), Some(Value::Int(max))) = (values.next(), values.next()) {
            ranges.push((min, max));
        }
        let map = (!ranges.is_empty()).then(|| Arc::new(ShardMap::new(ranges)));
        if let Ok(mut maps) = self.state.shard_maps.lock() {
            maps.insert(table, map.clone());
        }
        Ok(map)
    }

    /// Brings the session's routing hint and read target in line with `stmt`.
    async fn prepare_session(&mut self, stmt: &Stmt) -> Result<()> {
        let hint = stmt.route.as_ref().map(hint_json).unwrap_or_default();
        if hint != self.sent_hint && self.set_config("shoal.route_hint", hint.clone()).await? {
            self.sent_hint = hint;
        }
        let want_follower = stmt.read_target == ReadTarget::Follower && !stmt.writes && self.follower_is_safe().await?;
        if want_follower != self.follower {
            let level = if want_follower { "follower" } else { "linearizable" };
            self.pg.batch_sql(&format!("SET shoal.read_consistency = '{level}'")).await?;
            self.follower = want_follower;
        }
        Ok(())
    }

    /// A follower read is safe when this `Db` never wrote, or when the
    /// server accepted the token of its last write.
    async fn follower_is_safe(&mut self) -> Result<bool> {
        if !self.state.wrote.load(Ordering::Relaxed) {
            return Ok(true);
        }
        let Some(token) = self.state.token() else { return Ok(false) };
        if self.sent_after.as_deref() == Some(token.as_str()) {
            return Ok(true);
        }
        if self.set_config("shoal.read_after", token.clone()).await? {
            self.sent_after = Some(token);
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// Records that this `Db` wrote, and the causal token if the server has one.
    async fn after_write(&mut self) -> Result<()> {
        self.state.wrote.store(true, Ordering::Relaxed);
        if self.state.causal_token.is_absent() {
            return Ok(());
        }
        match self.pg.query_stmt(&Stmt::read("SHOW shoal.causal_token", Vec::new())).await {
            Ok(result) => {
                self.state.causal_token.record(true);
                if let Some(Value::Text(t)) = result.first_value() {
                    if let Ok(mut slot) = self.state.token.lock() {
                        *slot = Some(t);
                    }
                }
                Ok(())
            }
            Err(e) if means_absent(&e) => {
                tracing::debug!("shoal: causal tokens are not available ({e}); follower reads fall back to the leader");
                self.state.causal_token.record(false);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl Connection for ShoalConn {
    async fn query(&mut self, stmt: &Stmt) -> Result<QueryResult> {
        self.prepare_session(stmt).await?;
        let r = self.pg.query_stmt(stmt).await?;
        if stmt.writes && !stmt.in_transaction {
            self.after_write().await?;
        }
        Ok(r)
    }

    async fn execute(&mut self, stmt: &Stmt) -> Result<Executed> {
        self.prepare_session(stmt).await?;
        let r = self.pg.execute_stmt(stmt).await?;
        if stmt.writes && !stmt.in_transaction {
            self.after_write().await?;
        }
        Ok(r)
    }

    async fn batch(&mut self, sql: &str) -> Result<()> {
        self.pg.batch_sql(sql).await
    }

    fn stream<'a>(&'a mut self, stmt: &'a Stmt, sink: RowSink) -> StreamTask<'a> {
        StreamTask::Async(Box::pin(async move {
            let r = match self.prepare_session(stmt).await {
                Ok(()) => self.pg.stream_rows(stmt, &sink).await,
                Err(e) => Err(e),
            };
            if let Err(e) = r {
                sink.fail(e).await;
            }
            Ok(())
        }))
    }

    fn is_broken(&self) -> bool {
        Connection::is_broken(&self.pg)
    }

    async fn after_commit(&mut self) -> Result<()> {
        self.after_write().await
    }

    async fn shard_map(&mut self, table: &'static str) -> Result<Option<Arc<ShardMap>>> {
        self.read_shard_map(table).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_maps_place_keys_as_the_server_does() {
        // Listed out of order, as a view may: the map sorts by hash.
        let map = ShardMap::new((0..4).rev().map(|i| shard::range(i, 4)).collect());
        assert_eq!(map.len(), 4);
        for k in -50..50 {
            let server = shard::shard_of(shard::hash_integer(k), 4) as usize;
            assert_eq!(map.shard_of(ColumnType::BigInt, &Value::Int(k)), Some(server));
            assert_eq!(map.shard_of(ColumnType::SmallInt, &Value::Int(k)), Some(server), "any integer width");
            let text = shard::shard_of(shard::hash_text(&k.to_string()), 4) as usize;
            assert_eq!(map.shard_of(ColumnType::Text, &Value::Text(k.to_string())), Some(text));
            assert_eq!(map.shard_of(ColumnType::Text, &Value::Int(k)), Some(text), "stored as text, hashed as text");
        }
        assert_eq!(map.shard_of(ColumnType::Double, &Value::Float(1.0)), None, "no shard hash: batched apart");
        assert_eq!(map.shard_of(ColumnType::BigInt, &Value::Text("1".into())), None);
        // A hash no listed range covers (a map read mid-change) has no shard.
        let gap = ShardMap::new(vec![shard::range(0, 2)]);
        let high = (0..100).find(|k| shard::shard_of(shard::hash_integer(*k), 2) == 1).unwrap();
        assert_eq!(gap.shard_of(ColumnType::BigInt, &Value::Int(high)), None);
    }

    #[test]
    fn hints_are_json_with_escaped_values() {
        let route = Route {
            table: "users",
            column: "name",
            values: vec![Value::Text("a\"b\\c\n".into()), Value::Int(3), Value::Null],
        };
        assert_eq!(hint_json(&route), r#"{"table":"users","column":"name","values":["a\"b\\c\u000a",3,null]}"#);
    }
}
