//! Relations and batched eager loading.
//!
//! A relation constant (`User::ORDERS`) knows the two tables, the columns
//! that match, and three generated functions: read the key from a parent,
//! read it from a child, and store the children found for a parent.
//! `.with(User::ORDERS)` loads a relation for *all* parents at once:
//!
//! ```text
//!   parents: [User 1, User 2, User 3]            keys {1, 2, 3}
//!   query:   SELECT … FROM orders WHERE orders.user_id IN ($1, $2, $3) ORDER BY orders.id
//!   nested:  .with(User::ORDERS.with(Order::ITEMS)) → one more query over all orders' ids
//!   assign:  group children by key, hand each parent its group
//! ```
//!
//! One query per relation level, never one per parent. Key sets larger than
//! `Options::eager_chunk_size` are split into chunks (each one `IN` query);
//! outside a transaction the chunks run concurrently on the pool. On Shoal,
//! when the children are distributed by the column they are matched on,
//! the keys are first grouped by shard: one query per shard touched, each
//! reaching only its shard, run in parallel. A
//! many-to-many relation joins its link table in the same query and reads
//! the parent key from the extra column it selects.
//!
//! Key values are grouped by [`Value`] equality. Both sides come from Rust
//! fields through `SqlType::to_value`, so an `i32` foreign key matches an
//! `i64` primary key (both become `Value::Int`), and NULL keys match
//! nothing.

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::BoxFuture;

use crate::db::{Executor, Stmt};
use crate::dialect::SqlWriter;
use crate::error::Result;
use crate::model::{Model, Values};
use crate::query::{fetch_decoded, fetch_each};
use crate::value::Value;

/// The four kinds of relation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelationKind {
    /// The child's foreign key points at this model (`user.orders`).
    HasMany,
    /// Like `HasMany`, with at most one child (`user.profile`).
    HasOne,
    /// This model's foreign key points at the child (`order.user`).
    BelongsTo,
    /// Linked through a join table (`order.tags`).
    ManyToMany,
}

/// The join table of a many-to-many relation.
#[derive(Debug)]
#[doc(hidden)]
pub struct Through {
    pub table: &'static str,
    /// Its column holding the parent's key.
    pub source_column: &'static str,
    /// Its column holding the child's key.
    pub target_column: &'static str,
}

/// What the derive emits for a relation field.
#[doc(hidden)]
pub struct RelationSpec<P, C> {
    pub name: &'static str,
    pub kind: RelationKind,
    pub parent_table: &'static str,
    pub parent_column: &'static str,
    pub child_table: &'static str,
    pub child_column: &'static str,
    pub through: Option<Through>,
    pub parent_key: fn(&P) -> Value,
    pub child_key: fn(&C) -> Value,
    pub assign: fn(&mut P, Vec<C>),
}

/// A relation from `P` to `C`: `User::ORDERS` is a `Relation<User, Order>`.
pub struct Relation<P, C> {
    pub(crate) spec: RelationSpec<P, C>,
}

impl<P, C> Relation<P, C> {
    #[doc(hidden)]
    pub const fn __new(spec: RelationSpec<P, C>) -> Relation<P, C> {
        Relation { spec }
    }

    pub fn name(&self) -> &'static str {
        self.spec.name
    }

    pub fn kind(&self) -> RelationKind {
        self.spec.kind
    }

    /// Loads `inner` for the children too (one more query per level).
    pub fn with<E: Eager<C> + 'static>(self, inner: E) -> Nested<P, C> {
        Nested { relation: self, inner: vec![Box::new(inner)] }
    }
}

impl<P, C> Clone for RelationSpec<P, C> {
    fn clone(&self) -> Self {
        RelationSpec {
            name: self.name,
            kind: self.kind,
            parent_table: self.parent_table,
            parent_column: self.parent_column,
            child_table: self.child_table,
            child_column: self.child_column,
            through: self.through.as_ref().map(|t| Through {
                table: t.table,
                source_column: t.source_column,
                target_column: t.target_column,
            }),
            parent_key: self.parent_key,
            child_key: self.child_key,
            assign: self.assign,
        }
    }
}

impl<P, C> Clone for Relation<P, C> {
    fn clone(&self) -> Self {
        Relation { spec: self.spec.clone() }
    }
}

impl<P, C> std::fmt::Debug for Relation<P, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{} ({:?} {})", self.spec.parent_table, self.spec.name, self.spec.kind, self.spec.child_table)
    }
}

/// Something that fills relation fields on a batch of `P`s.
pub trait Eager<P>: Send + Sync {
    /// Loads for all `parents`, issuing one query per level (per chunk).
    fn load<'a>(&'a self, parents: &'a mut [P], ex: &'a dyn Executor) -> BoxFuture<'a, Result<()>>;
}

/// A relation plus the relations to load on its children.
pub struct Nested<P, C> {
    relation: Relation<P, C>,
    inner: Vec<Box<dyn Eager<C>>>,
}

impl<P, C> Nested<P, C> {
    /// Loads another relation of the children.
    pub fn with<E: Eager<C> + 'static>(mut self, inner: E) -> Nested<P, C> {
        self.inner.push(Box::new(inner));
        self
    }
}

impl<P: Model, C: Model + Clone> Eager<P> for Relation<P, C> {
    fn load<'a>(&'a self, parents: &'a mut [P], ex: &'a dyn Executor) -> BoxFuture<'a, Result<()>> {
        Box::pin(load(&self.spec, &[], parents, ex))
    }
}

impl<P: Model, C: Model + Clone> Eager<P> for Nested<P, C> {
    fn load<'a>(&'a self, parents: &'a mut [P], ex: &'a dyn Executor) -> BoxFuture<'a, Result<()>> {
        Box::pin(load(&self.relation.spec, &self.inner, parents, ex))
    }
}

impl<P, E: Eager<P> + ?Sized> Eager<P> for Arc<E> {
    fn load<'a>(&'a self, parents: &'a mut [P], ex: &'a dyn Executor) -> BoxFuture<'a, Result<()>> {
        (**self).load(parents, ex)
    }
}

/// The SELECT for one chunk of keys.
fn chunk_stmt<C: Model>(spec: &RelationSpec<impl Sized, C>, keys: &[Value], ex: &dyn Executor) -> Stmt {
    let mut w = SqlWriter::new(ex.dialect());
    w.push("SELECT ");
    for (i, col) in C::TABLE.column_names().enumerate() {
        if i > 0 {
            w.push(", ");
        }
        w.qualified(C::TABLE_NAME, col);
    }
    let filter_table;
    let filter_column;
    match &spec.through {
        Some(t) => {
            w.push(", ");
            w.qualified(t.table, t.source_column);
            w.push(" FROM ");
            w.ident(C::TABLE_NAME);
            w.push(" JOIN ");
            w.ident(t.table);
            w.push(" ON ");
            w.qualified(t.table, t.target_column);
            w.push(" = ");
            w.qualified(C::TABLE_NAME, spec.child_column);
            filter_table = t.table;
            filter_column = t.source_column;
        }
        None => {
            w.push(" FROM ");
            w.ident(C::TABLE_NAME);
            filter_table = C::TABLE_NAME;
            filter_column = spec.child_column;
        }
    }
    w.push(" WHERE ");
    w.qualified(filter_table, filter_column);
    w.push(" IN (");
    for (i, k) in keys.iter().enumerate() {
        if i > 0 {
            w.push(", ");
        }
        w.bind(k.clone());
    }
    w.push(") ORDER BY ");
    for (i, col) in C::PRIMARY_KEY.iter().enumerate() {
        if i > 0 {
            w.push(", ");
        }
        w.qualified(C::TABLE_NAME, col);
    }
    let (sql, params) = w.finish();
    let route = (spec.through.is_none())
        .then(|| match &C::TABLE.distribution {
            crate::schema::Distribution::Sharded { column, .. } if *column == spec.child_column => {
                Some(crate::db::Route { table: C::TABLE_NAME, column: spec.child_column, values: keys.to_vec() })
            }
            _ => None,
        })
        .flatten();
    let mut stmt = Stmt::read(sql, params).on_table(&C::TABLE).routed(route).positional();
    stmt.batched = true;
    stmt
}

/// The keys grouped by the shard that owns them, when the children are
/// distributed by the column they are matched on (Shoal), so each `IN`
/// query reaches one shard and the shards' queries run in parallel; one
/// group otherwise. Keys without a shard hash form a group of their own.
async fn by_shard<P: Model, C: Model>(
    spec: &RelationSpec<P, C>,
    keys: Vec<Value>,
    ex: &dyn Executor,
) -> Vec<Vec<Value>> {
    let sharded_on_key = spec.through.is_none()
        && matches!(&C::TABLE.distribution, crate::schema::Distribution::Sharded { column, .. } if *column == spec.child_column);
    if !sharded_on_key || keys.len() < 2 {
        return vec![keys];
    }
    let Some(map) = ex.__shard_map(C::TABLE_NAME).await else { return vec![keys] };
    let Some(ty) = C::TABLE.columns.iter().find(|c| c.name == spec.child_column).map(|c| c.ty) else {
        return vec![keys];
    };
    if map.len() < 2 {
        return vec![keys];
    }
    let mut groups: Vec<Vec<Value>> = vec![Vec::new(); map.len() + 1];
    for key in keys {
        let shard = map.shard_of(ty, &key).unwrap_or(map.len());
        groups[shard].push(key);
    }
    groups.retain(|g| !g.is_empty());
    groups
}

async fn load<P: Model, C: Model + Clone>(
    spec: &RelationSpec<P, C>,
    inner: &[Box<dyn Eager<C>>],
    parents: &mut [P],
    ex: &dyn Executor,
) -> Result<()> {
    // Distinct non-NULL keys, in first-seen order (stable SQL for equal input).
    let parent_keys: Vec<Value> = parents.iter().map(|p| (spec.parent_key)(p)).collect();
    let mut seen: KeyMap<&Value, ()> = KeyMap::with_capacity_and_hasher(parent_keys.len(), Default::default());
    let mut keys = Vec::with_capacity(parent_keys.len());
    for k in &parent_keys {
        if !k.is_null() && seen.insert(k, ()).is_none() {
            keys.push(k.clone());
        }
    }
    if keys.is_empty() {
        for p in parents.iter_mut() {
            (spec.assign)(p, Vec::new());
        }
        return Ok(());
    }
    // Most loads have one parent per key (a user's orders); only when
    // several parents share a key (orders' user) are children cloned.
    let shared_keys = keys.len() < parent_keys.iter().filter(|k| !k.is_null()).count();
    drop(seen);

    let chunk = ex.__options().eager_chunk_size.clamp(1, ex.dialect().max_params());
    let key_count = keys.len();
    let stmts: Vec<Stmt> = by_shard(spec, keys, ex)
        .await
        .iter()
        .flat_map(|group| group.chunks(chunk).map(|c| chunk_stmt(spec, c, ex)))
        .collect();

    // Decode children; many-to-many rows carry the parent key in a last column.
    let decode = |values: &mut Values<'_>| -> Result<(C, Value)> {
        let child = C::decode(values)?;
        let key = match spec.through {
            Some(_) => values.next_value().unwrap_or(Value::Null),
            None => (spec.child_key)(&child),
        };
        Ok((child, key))
    };
    let mut by_key: KeyMap<Value, Vec<C>> = KeyMap::with_capacity_and_hasher(key_count, Default::default());
    if inner.is_empty() && !(ex.__concurrent() && stmts.len() > 1) {
        // One statement at a time: each child goes to its key's group as
        // it is decoded, with no intermediate vector of (child, key) pairs.
        for s in stmts {
            fetch_each(ex, s, |v| {
                let (child, key) = decode(v)?;
                by_key.entry(key).or_default().push(child);
                Ok(())
            })
            .await?;
        }
    } else {
        let decoded: Vec<Vec<(C, Value)>> = if ex.__concurrent() && stmts.len() > 1 {
            futures::future::try_join_all(stmts.into_iter().map(|s| fetch_decoded(ex, s, decode))).await?
        } else {
            let mut out = Vec::with_capacity(stmts.len());
            for s in stmts {
                out.push(fetch_decoded(ex, s, decode).await?);
            }
            out
        };
        if inner.is_empty() {
            for (child, key) in decoded.into_iter().flatten() {
                by_key.entry(key).or_default().push(child);
            }
        } else {
            // Nested levels load over all children at once, then they are grouped.
            let (mut children, child_keys): (Vec<C>, Vec<Value>) = decoded.into_iter().flatten().unzip();
            for nested in inner {
                nested.load(&mut children, ex).await?;
            }
            for (child, key) in children.into_iter().zip(child_keys) {
                by_key.entry(key).or_default().push(child);
            }
        }
    }

    // Hand each parent its children: moved when one parent wants a key,
    // cloned for all but the last when several do.
    let mut wanted: KeyMap<&Value, usize> = KeyMap::default();
    if shared_keys {
        for k in &parent_keys {
            *wanted.entry(k).or_insert(0) += 1;
        }
    }
    for (p, k) in parents.iter_mut().zip(&parent_keys) {
        let last = !shared_keys
            || wanted.get_mut(k).is_none_or(|n| {
                *n -= 1;
                *n == 0
            });
        let rows = match (k.is_null(), last) {
            (true, _) => Vec::new(),
            (false, true) => by_key.remove(k).unwrap_or_default(),
            (false, false) => by_key.get(k).cloned().unwrap_or_default(),
        };
        (spec.assign)(p, rows);
    }
    Ok(())
}

/// Maps keyed by values in the eager loader: foldhash's seeded hasher,
/// several times faster than SipHash on short keys and still randomly keyed.
type KeyMap<K, V> = HashMap<K, V, foldhash::quality::RandomState>;
