//! The typed SELECT builder.
//!
//! ```text
//!   User::query()                         Select<User>            scope S = User
//!     .join(User::ORDERS)                 Select<User, (User, Order)>
//!     .filter(Order::TOTAL.gt(100))       Cond<(User, Order)>     checked: Order is in scope
//!     .order_by(User::NAME.asc())
//!     .limit(10)
//!     .all(&db)                           Vec<User>
//!
//!   Order::query()
//!     .group_by(Order::USER_ID)
//!     .select((Order::USER_ID, Order::TOTAL.sum()))   Projection<Order, (i64, Option<i64>)>
//!     .all(&db)                                       Vec<(i64, Option<i64>)>
//! ```
//!
//! The builder holds an untyped description ([`QueryParts`]); the types
//! only decide what may be added and what comes out. Rendering happens at
//! the terminal call, in the executor's dialect, with every value bound.
//! A query that pins the model's shard key (`id = $1`, `id IN (…)`) carries
//! a [`Route`] so Shoal can reach one shard.

use std::marker::PhantomData;
use std::sync::Arc;

use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};

use crate::db::{Executor, Route, Stmt};
use crate::dialect::SqlWriter;
use crate::error::{Error, Result};
use crate::expr::{Agg, Column, Cond, CondNode, Extend, Has, Node, OrderBy, Selection};
use crate::model::{decode_model, FromTuple, Model, Values};
use crate::relation::{Eager, Relation};
use crate::schema::Distribution;
use crate::value::{SqlType, Summable};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum JoinKind {
    Inner,
    Left,
}

#[derive(Clone, Debug)]
struct Join {
    kind: JoinKind,
    parent_table: &'static str,
    parent_column: &'static str,
    child_table: &'static str,
    child_column: &'static str,
    /// (link table, column matching the parent, column matching the child)
    through: Option<(&'static str, &'static str, &'static str)>,
}

/// The untyped parts of a SELECT.
#[derive(Clone, Debug)]
pub struct QueryParts {
    table: &'static str,
    joins: Vec<Join>,
    filter: Vec<CondNode>,
    group: Vec<Node>,
    having: Vec<CondNode>,
    order: Vec<(Node, bool)>,
    limit: Option<u64>,
    offset: Option<u64>,
    distinct: bool,
}

impl QueryParts {
    fn new(table: &'static str) -> QueryParts {
        QueryParts {
            table,
            joins: Vec::new(),
            filter: Vec::new(),
            group: Vec::new(),
            having: Vec::new(),
            order: Vec::new(),
            limit: None,
            offset: None,
            distinct: false,
        }
    }

    /// `FROM … JOIN … WHERE … GROUP BY … HAVING …` (no ORDER/LIMIT).
    fn render_body(&self, w: &mut SqlWriter) {
        w.push(" FROM ");
        w.ident(self.table);
        for j in &self.joins {
            let kw = if j.kind == JoinKind::Inner { " JOIN " } else { " LEFT JOIN " };
            match j.through {
                Some((link, source, target)) => {
                    w.push(kw);
                    w.ident(link);
                    w.push(" ON ");
                    w.qualified(link, source);
                    w.push(" = ");
                    w.qualified(j.parent_table, j.parent_column);
                    w.push(kw);
                    w.ident(j.child_table);
                    w.push(" ON ");
                    w.qualified(j.child_table, j.child_column);
                    w.push(" = ");
                    w.qualified(link, target);
                }
                None => {
                    w.push(kw);
                    w.ident(j.child_table);
                    w.push(" ON ");
                    w.qualified(j.child_table, j.child_column);
                    w.push(" = ");
                    w.qualified(j.parent_table, j.parent_column);
                }
            }
        }
        render_where(&self.filter, " WHERE ", w);
        if !self.group.is_empty() {
            w.push(" GROUP BY ");
            for (i, n) in self.group.iter().enumerate() {
                if i > 0 {
                    w.push(", ");
                }
                n.render(w);
            }
        }
        render_where(&self.having, " HAVING ", w);
    }

    fn render_tail(&self, w: &mut SqlWriter) {
        if !self.order.is_empty() {
            w.push(" ORDER BY ");
            for (i, (n, desc)) in self.order.iter().enumerate() {
                if i > 0 {
                    w.push(", ");
                }
                n.render(w);
                if *desc {
                    w.push(" DESC");
                }
            }
        }
        let dialect = w.dialect;
        dialect.limit_offset(self.limit, self.offset, w);
    }

    fn render_select(&self, columns: &[Node], w: &mut SqlWriter) {
        w.push(if self.distinct { "SELECT DISTINCT " } else { "SELECT " });
        for (i, n) in columns.iter().enumerate() {
            if i > 0 {
                w.push(", ");
            }
            n.render(w);
        }
        self.render_body(w);
        self.render_tail(w);
    }

    /// The shard key values the WHERE clause pins for `M`, if any.
    fn route<M: Model>(&self) -> Option<Route> {
        let Distribution::Sharded { column, .. } = M::TABLE.distribution else { return None };
        let pinned = CondNode::And(self.filter.clone()).pinned_values(M::TABLE_NAME, column)?;
        Some(Route { table: M::TABLE_NAME, column, values: pinned })
    }

    /// True when the query's rows are not one per base row (a count must
    /// then count the subquery's rows).
    fn reshapes_rows(&self) -> bool {
        self.distinct || !self.group.is_empty() || self.limit.is_some() || self.offset.is_some()
    }
}

pub(crate) fn render_where(conds: &[CondNode], keyword: &str, w: &mut SqlWriter) {
    if conds.is_empty() {
        return;
    }
    w.push(keyword);
    for (i, c) in conds.iter().enumerate() {
        if i > 0 {
            w.push(" AND ");
        }
        c.render(w);
    }
}

fn model_columns<M: Model>() -> Vec<Node> {
    M::TABLE.column_names().map(|name| Node::Column { table: M::TABLE_NAME, name }).collect()
}

/// A query for rows of `M` over scope `S` (see the module docs).
pub struct Select<M: Model, S = M> {
    parts: QueryParts,
    eager: Vec<Arc<dyn Eager<M>>>,
    _p: PhantomData<fn() -> S>,
}

impl<M: Model, S> Clone for Select<M, S> {
    fn clone(&self) -> Self {
        Select { parts: self.parts.clone(), eager: self.eager.clone(), _p: PhantomData }
    }
}

impl<M: Model, S> std::fmt::Debug for Select<M, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Select").field("parts", &self.parts).field("eager", &self.eager.len()).finish()
    }
}

impl<M: Model> Select<M, M> {
    pub(crate) fn new() -> Select<M, M> {
        Select { parts: QueryParts::new(M::TABLE_NAME), eager: Vec::new(), _p: PhantomData }
    }
}

impl<M: Model, S> Select<M, S> {
    /// Keeps rows matching `cond` (several filters are ANDed).
    pub fn filter(mut self, cond: Cond<S>) -> Self {
        self.parts.filter.push(cond.node);
        self
    }

    pub fn order_by(mut self, order: OrderBy<S>) -> Self {
        self.parts.order.push((order.node, order.desc));
        self
    }

    pub fn limit(mut self, n: u64) -> Self {
        self.parts.limit = Some(n);
        self
    }

    pub fn offset(mut self, n: u64) -> Self {
        self.parts.offset = Some(n);
        self
    }

    /// `SELECT DISTINCT` (useful after a join that repeats base rows).
    pub fn distinct(mut self) -> Self {
        self.parts.distinct = true;
        self
    }

    /// Loads a relation for every row returned, in one batched query (per
    /// level, per chunk). Nest with `User::ORDERS.with(Order::ITEMS)`.
    pub fn with<E: Eager<M> + 'static>(mut self, relation: E) -> Self {
        self.eager.push(Arc::new(relation));
        self
    }

    fn join_as<P, C: Model, I>(mut self, rel: Relation<P, C>, kind: JoinKind) -> Select<M, <S as Extend<C>>::Out>
    where
        S: Has<P, I> + Extend<C>,
    {
        let spec = &rel.spec;
        let through = spec.through.as_ref().map(|t| (t.table, t.source_column, t.target_column));
        let (parent_table, parent_column) = (spec.parent_table, spec.parent_column);
        let (child_table, child_column) = (spec.child_table, spec.child_column);
        self.parts.joins.push(Join { kind, parent_table, parent_column, child_table, child_column, through });
        Select { parts: self.parts, eager: self.eager, _p: PhantomData }
    }

    /// Inner-joins a related model, so its columns may be filtered and
    /// ordered on; rows are still `M`s.
    pub fn join<P, C: Model, I>(self, rel: Relation<P, C>) -> Select<M, <S as Extend<C>>::Out>
    where
        S: Has<P, I> + Extend<C>,
    {
        self.join_as(rel, JoinKind::Inner)
    }

    /// Left-joins a related model (its columns are NULL where nothing matches).
    pub fn left_join<P, C: Model, I>(self, rel: Relation<P, C>) -> Select<M, <S as Extend<C>>::Out>
    where
        S: Has<P, I> + Extend<C>,
    {
        self.join_as(rel, JoinKind::Left)
    }

    /// `GROUP BY` the given columns; follow with [`Select::select`].
    pub fn group_by<G: Selection<S, I>, I>(mut self, columns: G) -> Self {
        columns.nodes(&mut self.parts.group);
        self
    }

    /// `HAVING` (after `group_by`).
    pub fn having(mut self, cond: Cond<S>) -> Self {
        self.parts.having.push(cond.node);
        self
    }

    /// Chooses the columns and aggregates to return, as a typed tuple.
    pub fn select<P: Selection<S, I> + 'static, I>(self, items: P) -> Projection<S, P::Out> {
        let mut nodes = Vec::new();
        items.nodes(&mut nodes);
        let route = self.parts.route::<M>();
        let decode: fn(&mut Values<'_>) -> Result<P::Out> = P::decode;
        Projection { parts: self.parts, nodes, decode: Arc::new(decode), route, _p: PhantomData }
    }

    fn stmt(&self, ex: &(impl Executor + ?Sized)) -> Stmt {
        let mut w = SqlWriter::new(ex.dialect());
        self.parts.render_select(&model_columns::<M>(), &mut w);
        let (sql, params) = w.finish();
        Stmt::read(sql, params).on_table(&M::TABLE).routed(self.parts.route::<M>()).positional()
    }

    /// The SQL this query would send to `ex` (placeholders, not values).
    pub fn to_sql(&self, ex: &(impl Executor + ?Sized)) -> String {
        self.stmt(ex).sql.into_owned()
    }

    /// The shard key values this query pins, if it pins them.
    pub fn route(&self) -> Option<Route> {
        self.parts.route::<M>()
    }

    /// How the database would run this query, one line per row of its
    /// plan, without running it. On Shoal the first lines are the route:
    /// `Route: users: 1 of 4 shards (id = $1 → shard 3), on group 1`.
    pub async fn explain(&self, ex: &(impl Executor + ?Sized)) -> Result<Vec<String>> {
        explain(ex, self.stmt(ex)).await
    }

    async fn load_eager(&self, rows: &mut [M], ex: &(impl Executor + ?Sized)) -> Result<()> {
        for e in &self.eager {
            e.load(rows, ex.__dyn()).await?;
        }
        Ok(())
    }

    /// Every matching row, with the requested relations loaded.
    pub async fn all(self, ex: &(impl Executor + ?Sized)) -> Result<Vec<M>> {
        let mut rows: Vec<M> = fetch_decoded(ex, self.stmt(ex), M::decode).await?;
        if !rows.is_empty() {
            self.load_eager(&mut rows, ex).await?;
        }
        Ok(rows)
    }

    /// The first row (`LIMIT 1`), or `None`.
    pub async fn first(self, ex: &(impl Executor + ?Sized)) -> Result<Option<M>> {
        Ok(self.limit(1).all(ex).await?.into_iter().next())
    }

    /// The first row; [`Error::NotFound`] when there is none.
    pub async fn one(self, ex: &(impl Executor + ?Sized)) -> Result<M> {
        let what = format!("{:?}", self.parts.filter);
        self.first(ex).await?.ok_or_else(|| Error::NotFound { table: M::TABLE_NAME.into(), what })
    }

    /// The number of matching rows.
    pub async fn count(self, ex: &(impl Executor + ?Sized)) -> Result<i64> {
        let mut w = SqlWriter::new(ex.dialect());
        if self.parts.reshapes_rows() {
            w.push("SELECT COUNT(*) FROM (");
            let mut inner = self.parts.clone();
            inner.order.clear();
            inner.render_select(&model_columns::<M>(), &mut w);
            w.push(") AS shoal_count");
        } else {
            w.push("SELECT COUNT(*)");
            self.parts.render_body(&mut w);
        }
        let (sql, params) = w.finish();
        let stmt = Stmt::read(sql, params).on_table(&M::TABLE).routed(self.parts.route::<M>()).positional();
        scalar(ex, stmt).await
    }

    /// Whether any row matches.
    pub async fn exists(self, ex: &(impl Executor + ?Sized)) -> Result<bool> {
        let mut w = SqlWriter::new(ex.dialect());
        w.push("SELECT 1");
        self.parts.render_body(&mut w);
        let dialect = w.dialect;
        dialect.limit_offset(Some(1), None, &mut w);
        let (sql, params) = w.finish();
        let stmt = Stmt::read(sql, params).on_table(&M::TABLE).routed(self.parts.route::<M>()).positional();
        Ok(!ex.__fetch(stmt).await?.is_empty())
    }

    async fn aggregate<T: SqlType>(self, node: Node, ex: &(impl Executor + ?Sized)) -> Result<T> {
        let mut parts = self.parts;
        parts.order.clear();
        parts.limit = None;
        parts.offset = None;
        let mut w = SqlWriter::new(ex.dialect());
        parts.render_select(&[node], &mut w);
        let (sql, params) = w.finish();
        let stmt = Stmt::read(sql, params).on_table(&M::TABLE).routed(parts.route::<M>()).positional();
        scalar(ex, stmt).await
    }

    /// `SUM(col)` over the matching rows (`None` when there are none).
    pub async fn sum<N, T: Summable, I>(
        self,
        col: Column<N, T>,
        ex: &(impl Executor + ?Sized),
    ) -> Result<Option<T::Sum>>
    where
        S: Has<N, I>,
    {
        let agg: Agg<N, Option<T::Sum>> = col.sum();
        self.aggregate(agg.node(), ex).await
    }

    /// `AVG(col)` over the matching rows.
    pub async fn avg<N, T: Summable, I>(self, col: Column<N, T>, ex: &(impl Executor + ?Sized)) -> Result<Option<f64>>
    where
        S: Has<N, I>,
    {
        self.aggregate(col.avg().node(), ex).await
    }

    /// `MIN(col)` over the matching rows.
    pub async fn min<N, T: SqlType, I>(
        self,
        col: Column<N, T>,
        ex: &(impl Executor + ?Sized),
    ) -> Result<Option<T::Base>>
    where
        S: Has<N, I>,
    {
        self.aggregate(col.min().node(), ex).await
    }

    /// `MAX(col)` over the matching rows.
    pub async fn max<N, T: SqlType, I>(
        self,
        col: Column<N, T>,
        ex: &(impl Executor + ?Sized),
    ) -> Result<Option<T::Base>>
    where
        S: Has<N, I>,
    {
        self.aggregate(col.max().node(), ex).await
    }

    /// Rows as they arrive, for results too large to hold; the stream holds
    /// a connection until it ends or is dropped.
    ///
    /// With `.with(…)`, the rows are read in pages of
    /// `Options::eager_chunk_size` by primary key (keyset pagination: each
    /// page is one query that releases its connection, then one query per
    /// relation level), so it works inside a transaction and on a
    /// single-connection database. Such a stream is ordered by primary key:
    /// combining it with `order_by` or `offset` is an error.
    pub fn stream<'a>(self, ex: &'a (impl Executor + ?Sized)) -> BoxStream<'a, Result<M>>
    where
        S: 'a,
    {
        if self.eager.is_empty() {
            return ex.__stream(self.stmt(ex)).map(|r| r.and_then(|row| decode_model::<M>(row.into_values()))).boxed();
        }
        if !self.parts.order.is_empty() || self.parts.offset.is_some() {
            let e = Error::Unsupported(
                "stream() with .with(…) pages by primary key; drop order_by/offset or use all()".into(),
            );
            return futures::stream::once(async move { Err(e) }).boxed();
        }
        let page = ex.__options().eager_chunk_size as u64;
        let state = (self, None::<Vec<crate::value::Value>>, false);
        futures::stream::try_unfold(state, move |(this, after, done)| async move {
            if done || this.parts.limit == Some(0) {
                return Ok(None);
            }
            let mut q = this.clone();
            if let Some(last) = &after {
                q.parts.filter.push(after_key::<M>(last));
            }
            for col in M::PRIMARY_KEY {
                q.parts.order.push((Node::Column { table: M::TABLE_NAME, name: col }, false));
            }
            let want = this.parts.limit.map_or(page, |l| l.min(page));
            q.parts.limit = Some(want);
            let mut stmt = q.stmt(ex);
            stmt.batched = true;
            let mut rows: Vec<M> = fetch_decoded(ex, stmt, M::decode).await?;
            if rows.is_empty() {
                return Ok(None);
            }
            this.load_eager(&mut rows, ex).await?;
            let last = rows.last().map(|m| m.primary_key_values());
            let finished = (rows.len() as u64) < want;
            let mut next = this;
            if let Some(l) = next.parts.limit.as_mut() {
                *l -= rows.len() as u64;
            }
            Ok(Some((futures::stream::iter(rows.into_iter().map(Ok)), (next, last, finished))))
        })
        .try_flatten()
        .boxed()
    }
}

/// `pk > last` for a keyset page (`a > x OR (a = x AND b > y)` for a
/// composite key, which every backend understands).
fn after_key<M: Model>(last: &[crate::value::Value]) -> CondNode {
    use crate::expr::CmpOp;
    let col = |name: &'static str| Node::Column { table: M::TABLE_NAME, name };
    let mut alternatives = Vec::new();
    for (i, name) in M::PRIMARY_KEY.iter().enumerate() {
        let mut parts: Vec<CondNode> =
            (0..i).map(|j| CondNode::Cmp(col(M::PRIMARY_KEY[j]), CmpOp::Eq, last[j].clone())).collect();
        parts.push(CondNode::Cmp(col(name), CmpOp::Gt, last[i].clone()));
        alternatives.push(CondNode::And(parts));
    }
    CondNode::Or(alternatives)
}

async fn scalar<T: SqlType>(ex: &(impl Executor + ?Sized), stmt: Stmt) -> Result<T> {
    let result = ex.__fetch(stmt).await?;
    match result.first_value() {
        Some(v) => T::from_value(v).map_err(|e| e.in_column("", "(aggregate)")),
        None => T::from_value(crate::value::Value::Null).map_err(|e| e.in_column("", "(aggregate)")),
    }
}

/// Asks `ex` for the plan of `stmt` instead of running it; each row of
/// the answer becomes one line (see [`crate::Dialect::explain_line`]).
async fn explain(ex: &(impl Executor + ?Sized), mut stmt: Stmt) -> Result<Vec<String>> {
    let dialect = ex.dialect();
    stmt.sql = format!("{}{}", dialect.explain_prefix(), stmt.sql).into();
    stmt.named = true;
    stmt.single_row = false;
    // Looking at a plan is not the application's workload: strict mode ignores it.
    stmt.batched = true;
    let result = ex.__fetch(stmt).await?;
    let columns = result.columns.clone();
    Ok(result.into_rows().map(|row| dialect.explain_line(&columns, row.values())).collect())
}

/// Runs `stmt` and decodes every row with `decode` as the driver reads it:
/// synchronously where the backend is in-process (SQLite), else through
/// the connection's `query_each` (PostgreSQL decodes from the wire row).
pub(crate) async fn fetch_decoded<T: Send>(
    ex: &(impl Executor + ?Sized),
    stmt: Stmt,
    decode: impl Fn(&mut Values<'_>) -> Result<T> + Send + Sync,
) -> Result<Vec<T>> {
    let mut out = Vec::new();
    fetch_each(ex, stmt, |v| {
        out.push(decode(v)?);
        Ok(())
    })
    .await?;
    Ok(out)
}

/// Runs `stmt` and hands every row to `row` as the driver reads it (see
/// [`fetch_decoded`]), for callers that put rows somewhere other than a
/// vector (the eager loader groups them by key as they arrive).
pub(crate) async fn fetch_each(
    ex: &(impl Executor + ?Sized),
    mut stmt: Stmt,
    mut row: impl FnMut(&mut Values<'_>) -> Result<()> + Send,
) -> Result<()> {
    crate::db::fetch_rows(ex, &mut stmt, &mut |v| row(v).map(|()| true)).await
}

/// Builds one output value from a row's values.
type Decoder<Out> = Arc<dyn Fn(&mut Values<'_>) -> Result<Out> + Send + Sync>;

/// A query returning typed tuples (or structs) instead of models.
pub struct Projection<S, Out> {
    parts: QueryParts,
    nodes: Vec<Node>,
    decode: Decoder<Out>,
    route: Option<Route>,
    _p: PhantomData<fn() -> S>,
}

impl<S, Out: Send + 'static> Projection<S, Out> {
    pub fn filter(mut self, cond: Cond<S>) -> Self {
        self.parts.filter.push(cond.node);
        self
    }

    pub fn order_by(mut self, order: OrderBy<S>) -> Self {
        self.parts.order.push((order.node, order.desc));
        self
    }

    pub fn having(mut self, cond: Cond<S>) -> Self {
        self.parts.having.push(cond.node);
        self
    }

    pub fn limit(mut self, n: u64) -> Self {
        self.parts.limit = Some(n);
        self
    }

    pub fn offset(mut self, n: u64) -> Self {
        self.parts.offset = Some(n);
        self
    }

    pub fn distinct(mut self) -> Self {
        self.parts.distinct = true;
        self
    }

    /// Builds `T` from each tuple; `T`'s fields must have exactly the
    /// tuple's types, in order (checked at compile time).
    pub fn into_struct<T: FromTuple<Tuple = Out>>(self) -> Projection<S, T> {
        let decode = self.decode;
        Projection {
            parts: self.parts,
            nodes: self.nodes,
            decode: Arc::new(move |v: &mut Values<'_>| decode(v).map(T::from_tuple)),
            route: self.route,
            _p: PhantomData,
        }
    }

    fn stmt(&self, ex: &(impl Executor + ?Sized)) -> Stmt {
        let mut w = SqlWriter::new(ex.dialect());
        self.parts.render_select(&self.nodes, &mut w);
        let (sql, params) = w.finish();
        Stmt::read(sql, params).routed(self.route.clone()).positional()
    }

    pub fn to_sql(&self, ex: &(impl Executor + ?Sized)) -> String {
        self.stmt(ex).sql.into_owned()
    }

    /// How the database would run this query (see [`Select::explain`]).
    pub async fn explain(&self, ex: &(impl Executor + ?Sized)) -> Result<Vec<String>> {
        explain(ex, self.stmt(ex)).await
    }

    pub async fn all(self, ex: &(impl Executor + ?Sized)) -> Result<Vec<Out>> {
        let decode = self.decode.clone();
        fetch_decoded(ex, self.stmt(ex), move |v| decode(v)).await
    }

    /// The first row, or `None`.
    pub async fn first(self, ex: &(impl Executor + ?Sized)) -> Result<Option<Out>> {
        Ok(self.limit(1).all(ex).await?.into_iter().next())
    }

    /// The first row; [`Error::NotFound`] when there is none.
    pub async fn one(self, ex: &(impl Executor + ?Sized)) -> Result<Out> {
        let table = self.parts.table;
        self.first(ex).await?.ok_or_else(|| Error::NotFound { table: table.into(), what: "the projection".into() })
    }

    /// Rows as they arrive.
    pub fn stream(self, ex: &(impl Executor + ?Sized)) -> BoxStream<'static, Result<Out>> {
        let decode = self.decode.clone();
        ex.__stream(self.stmt(ex)).map(move |r| r.and_then(|row| decode(&mut Values::new(row.into_values())))).boxed()
    }
}
