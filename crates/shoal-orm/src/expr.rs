//! Typed columns, conditions and orderings.
//!
//! `User::AGE` is a `Column<User, i32>`: it knows its table, its name and its
//! Rust type. Comparing it produces a `Cond<S>`, where `S` is the *scope* of
//! the query the condition will be used in — the model being queried, or a
//! tuple of models once others are joined. A column may be used only in a
//! scope that contains its model; that rule is the trait [`Has`], so
//!
//! ```compile_fail
//! # use shoal_orm::prelude::*;
//! # #[derive(Model, Clone)] #[model(table = "users")] struct User { #[model(primary_key)] id: i64 }
//! # #[derive(Model, Clone)] #[model(table = "orders")] struct Order { #[model(primary_key)] id: i64 }
//! let q = User::query().filter(Order::ID.eq(1)); // Order is not part of this query
//! ```
//!
//! fails to compile ("a column of `Order` is used in a query over `User`"),
//! while after `.join(Order::USER)` both models' columns are accepted. The
//! index parameter `I` (`Here`, `There<Here>`, …) is inferred; it only tells
//! the compiler *where* in the tuple the model sits.
//!
//! Values enter conditions only as [`Value`]s that the renderer binds as
//! parameters; a condition never holds SQL text except through
//! [`crate::RawSql`], whose text is a compile-time literal.

use std::marker::PhantomData;
use std::ops::{BitAnd, BitOr, Not};

use crate::dialect::SqlWriter;
use crate::model::Model;
use crate::raw::RawSql;
use crate::value::{Bind, SqlType, Summable, TextType, Value};

/// The first position of a scope tuple.
pub struct Here;
/// One position further along a scope tuple.
pub struct There<I>(PhantomData<I>);
/// The index of expressions that belong to no model (`count_all()`).
pub struct Free;

/// "Scope `Self` contains model `M` (at position `I`)".
#[diagnostic::on_unimplemented(
    message = "a column of `{M}` is used in a query over `{Self}`",
    label = "this query cannot see `{M}`",
    note = "use a column of the queried model, or join `{M}` into the query first with `.join(…)`"
)]
pub trait Has<M, I> {}

impl<M: Model> Has<M, Here> for M {}
impl<A: Model, B: Model> Has<A, Here> for (A, B) {}
impl<A: Model, B: Model> Has<B, There<Here>> for (A, B) {}
impl<A: Model, B: Model, C: Model> Has<A, Here> for (A, B, C) {}
impl<A: Model, B: Model, C: Model> Has<B, There<Here>> for (A, B, C) {}
impl<A: Model, B: Model, C: Model> Has<C, There<There<Here>>> for (A, B, C) {}
impl<A: Model, B: Model, C: Model, D: Model> Has<A, Here> for (A, B, C, D) {}
impl<A: Model, B: Model, C: Model, D: Model> Has<B, There<Here>> for (A, B, C, D) {}
impl<A: Model, B: Model, C: Model, D: Model> Has<C, There<There<Here>>> for (A, B, C, D) {}
impl<A: Model, B: Model, C: Model, D: Model> Has<D, There<There<There<Here>>>> for (A, B, C, D) {}

/// Adding a joined model to a scope.
pub trait Extend<C> {
    type Out;
}

impl<M: Model, C: Model> Extend<C> for M {
    type Out = (M, C);
}
impl<A: Model, B: Model, C: Model> Extend<C> for (A, B) {
    type Out = (A, B, C);
}
impl<A: Model, B: Model, C: Model, D: Model> Extend<D> for (A, B, C) {
    type Out = (A, B, C, D);
}

/// An aggregate function.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AggFn {
    Count,
    CountDistinct,
    Sum,
    Avg,
    Min,
    Max,
}

/// An untyped expression, as the renderer sees it.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub enum Node {
    Column { table: &'static str, name: &'static str },
    Agg { func: AggFn, table: &'static str, name: &'static str },
    CountAll,
}

impl Node {
    pub(crate) fn render(&self, w: &mut SqlWriter) {
        match *self {
            Node::Column { table, name } => w.qualified(table, name),
            Node::CountAll => w.push("COUNT(*)"),
            Node::Agg { func, table, name } => {
                w.push(match func {
                    AggFn::Count => "COUNT(",
                    AggFn::CountDistinct => "COUNT(DISTINCT ",
                    AggFn::Sum => "SUM(",
                    AggFn::Avg => "AVG(",
                    AggFn::Min => "MIN(",
                    AggFn::Max => "MAX(",
                });
                w.qualified(table, name);
                w.push(")");
            }
        }
    }
}

/// A column of model `M` holding Rust type `T`: `User::AGE`.
pub struct Column<M, T> {
    table: &'static str,
    name: &'static str,
    /// `(precision, scale)` of a `NUMERIC(p, s)` column, so a value set
    /// through the column (`update_where(…).set(…)`) is rounded and checked
    /// as a model write is (`numeric.rs`).
    numeric: Option<(u32, u32)>,
    _p: PhantomData<fn() -> (M, T)>,
}

impl<M, T> Clone for Column<M, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<M, T> Copy for Column<M, T> {}

impl<M, T> std::fmt::Debug for Column<M, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.table, self.name)
    }
}

impl<M, T> Column<M, T> {
    #[doc(hidden)]
    pub const fn __new(table: &'static str, name: &'static str) -> Column<M, T> {
        Column { table, name, numeric: None, _p: PhantomData }
    }

    /// The column is `NUMERIC(precision, scale)` (set by the derive).
    #[doc(hidden)]
    pub const fn __numeric(self, precision: u32, scale: u32) -> Column<M, T> {
        Column { numeric: Some((precision, scale)), ..self }
    }

    /// `(precision, scale)` when the column is a `NUMERIC(p, s)`.
    pub const fn numeric(&self) -> Option<(u32, u32)> {
        self.numeric
    }

    /// The column's name in the database.
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// The table it belongs to.
    pub const fn table(&self) -> &'static str {
        self.table
    }

    pub(crate) fn node(&self) -> Node {
        Node::Column { table: self.table, name: self.name }
    }
}

/// An aggregate over a column of `M`, producing `T`: `Order::TOTAL.sum()`.
pub struct Agg<M, T> {
    node: Node,
    _p: PhantomData<fn() -> (M, T)>,
}

impl<M, T> Clone for Agg<M, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<M, T> Copy for Agg<M, T> {}

impl<M, T> Agg<M, T> {
    pub(crate) fn node(&self) -> Node {
        self.node
    }
}

/// `COUNT(*)`, usable in any query (in `select` and `having`).
#[derive(Clone, Copy, Debug)]
pub struct CountAll;

/// `COUNT(*)`.
pub fn count_all() -> CountAll {
    CountAll
}

impl<M, T: SqlType> Column<M, T> {
    fn agg<R>(&self, func: AggFn) -> Agg<M, R> {
        Agg { node: Node::Agg { func, table: self.table, name: self.name }, _p: PhantomData }
    }

    /// `COUNT(col)`: rows where the column is not NULL.
    pub fn count(self) -> Agg<M, i64> {
        self.agg(AggFn::Count)
    }

    /// `COUNT(DISTINCT col)`.
    pub fn count_distinct(self) -> Agg<M, i64> {
        self.agg(AggFn::CountDistinct)
    }

    /// `MIN(col)`; `None` over no rows.
    pub fn min(self) -> Agg<M, Option<T::Base>> {
        self.agg(AggFn::Min)
    }

    /// `MAX(col)`; `None` over no rows.
    pub fn max(self) -> Agg<M, Option<T::Base>> {
        self.agg(AggFn::Max)
    }
}

impl<M, T: Summable> Column<M, T> {
    /// `SUM(col)`: integers sum to `i64`, floats to `f64`; `None` over no rows.
    pub fn sum(self) -> Agg<M, Option<T::Sum>> {
        self.agg(AggFn::Sum)
    }

    /// `AVG(col)` as `f64`; `None` over no rows.
    pub fn avg(self) -> Agg<M, Option<f64>> {
        self.agg(AggFn::Avg)
    }
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    fn sql(self) -> &'static str {
        match self {
            CmpOp::Eq => " = ",
            CmpOp::Ne => " <> ",
            CmpOp::Lt => " < ",
            CmpOp::Le => " <= ",
            CmpOp::Gt => " > ",
            CmpOp::Ge => " >= ",
        }
    }
}

/// A LIKE pattern: as written, or literal text to be escaped for the dialect.
#[derive(Clone, Debug)]
pub(crate) enum Pattern {
    Raw(String),
    Contains(String),
    StartsWith(String),
    EndsWith(String),
}

/// An untyped condition tree.
#[derive(Clone, Debug)]
pub(crate) enum CondNode {
    Cmp(Node, CmpOp, Value),
    CmpNode(Node, CmpOp, Node),
    In(Node, Vec<Value>, bool),
    Like(Node, Pattern, bool),
    Null(Node, bool),
    And(Vec<CondNode>),
    Or(Vec<CondNode>),
    Not(Box<CondNode>),
    Raw(RawSql),
}

impl CondNode {
    pub(crate) fn render(&self, w: &mut SqlWriter) {
        match self {
            CondNode::Cmp(n, op, v) => {
                n.render(w);
                // `= NULL` is never true; say what the author meant.
                if v.is_null() && matches!(op, CmpOp::Eq | CmpOp::Ne) {
                    w.push(if *op == CmpOp::Eq { " IS NULL" } else { " IS NOT NULL" });
                } else {
                    w.push(op.sql());
                    w.bind(v.clone());
                }
            }
            CondNode::CmpNode(a, op, b) => {
                a.render(w);
                w.push(op.sql());
                b.render(w);
            }
            CondNode::In(n, values, negated) => {
                if values.is_empty() {
                    // `IN ()` is a syntax error; an empty set matches nothing.
                    w.push(if *negated { "1 = 1" } else { "1 = 0" });
                    return;
                }
                n.render(w);
                w.push(if *negated { " NOT IN (" } else { " IN (" });
                for (i, v) in values.iter().enumerate() {
                    if i > 0 {
                        w.push(", ");
                    }
                    w.bind(v.clone());
                }
                w.push(")");
            }
            CondNode::Like(n, pattern, negated) => {
                n.render(w);
                w.push(if *negated { " NOT LIKE " } else { " LIKE " });
                let (escape, clause) = w.dialect.like_escape();
                let text = match pattern {
                    Pattern::Raw(p) => p.clone(),
                    Pattern::Contains(t) => format!("%{}%", escape_like(t, escape)),
                    Pattern::StartsWith(t) => format!("{}%", escape_like(t, escape)),
                    Pattern::EndsWith(t) => format!("%{}", escape_like(t, escape)),
                };
                w.bind(Value::Text(text));
                if !matches!(pattern, Pattern::Raw(_)) {
                    w.push(clause);
                }
            }
            CondNode::Null(n, negated) => {
                n.render(w);
                w.push(if *negated { " IS NOT NULL" } else { " IS NULL" });
            }
            CondNode::And(parts) | CondNode::Or(parts) => {
                let sep = if matches!(self, CondNode::And(_)) { " AND " } else { " OR " };
                if parts.is_empty() {
                    w.push(if matches!(self, CondNode::And(_)) { "1 = 1" } else { "1 = 0" });
                    return;
                }
                w.push("(");
                for (i, p) in parts.iter().enumerate() {
                    if i > 0 {
                        w.push(sep);
                    }
                    p.render(w);
                }
                w.push(")");
            }
            CondNode::Not(inner) => {
                w.push("NOT (");
                inner.render(w);
                w.push(")");
            }
            CondNode::Raw(raw) => {
                w.push("(");
                raw.render_into(w);
                w.push(")");
            }
        }
    }

    /// The values this condition fixes for `column` of `table`, when it
    /// pins it (`col = v`, `col IN (…)`, either inside a top-level AND).
    /// Shoal's routing uses it: such a statement reaches only those shards.
    pub(crate) fn pinned_values(&self, table: &str, column: &str) -> Option<Vec<Value>> {
        let is_col = |n: &Node| matches!(n, Node::Column { table: t, name } if *t == table && *name == column);
        match self {
            CondNode::Cmp(n, CmpOp::Eq, v) if is_col(n) && !v.is_null() => Some(vec![v.clone()]),
            CondNode::In(n, values, false) if is_col(n) => Some(values.clone()),
            CondNode::And(parts) => parts.iter().find_map(|p| p.pinned_values(table, column)),
            _ => None,
        }
    }
}

/// A condition usable in a query over scope `S`.
pub struct Cond<S> {
    pub(crate) node: CondNode,
    _p: PhantomData<fn() -> S>,
}

impl<S> Clone for Cond<S> {
    fn clone(&self) -> Self {
        Cond { node: self.node.clone(), _p: PhantomData }
    }
}

impl<S> std::fmt::Debug for Cond<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.node.fmt(f)
    }
}

impl<S> Cond<S> {
    pub(crate) fn new(node: CondNode) -> Cond<S> {
        Cond { node, _p: PhantomData }
    }

    /// Both conditions hold.
    pub fn and(self, other: Cond<S>) -> Cond<S> {
        match self.node {
            CondNode::And(mut parts) => {
                parts.push(other.node);
                Cond::new(CondNode::And(parts))
            }
            node => Cond::new(CondNode::And(vec![node, other.node])),
        }
    }

    /// Either condition holds.
    pub fn or(self, other: Cond<S>) -> Cond<S> {
        match self.node {
            CondNode::Or(mut parts) => {
                parts.push(other.node);
                Cond::new(CondNode::Or(parts))
            }
            node => Cond::new(CondNode::Or(vec![node, other.node])),
        }
    }

    /// The condition does not hold.
    pub fn negate(self) -> Cond<S> {
        Cond::new(CondNode::Not(Box::new(self.node)))
    }

    /// A raw SQL condition from `sql!`, values bound.
    pub fn raw(sql: RawSql) -> Cond<S> {
        Cond::new(CondNode::Raw(sql))
    }
}

impl<S> BitAnd for Cond<S> {
    type Output = Cond<S>;
    fn bitand(self, rhs: Cond<S>) -> Cond<S> {
        self.and(rhs)
    }
}

impl<S> BitOr for Cond<S> {
    type Output = Cond<S>;
    fn bitor(self, rhs: Cond<S>) -> Cond<S> {
        self.or(rhs)
    }
}

impl<S> Not for Cond<S> {
    type Output = Cond<S>;
    fn not(self) -> Cond<S> {
        self.negate()
    }
}

/// All of the conditions (an empty list is true).
pub fn all<S>(conds: impl IntoIterator<Item = Cond<S>>) -> Cond<S> {
    Cond::new(CondNode::And(conds.into_iter().map(|c| c.node).collect()))
}

/// Any of the conditions (an empty list is false).
pub fn any<S>(conds: impl IntoIterator<Item = Cond<S>>) -> Cond<S> {
    Cond::new(CondNode::Or(conds.into_iter().map(|c| c.node).collect()))
}

/// An ORDER BY term over scope `S`.
pub struct OrderBy<S> {
    pub(crate) node: Node,
    pub(crate) desc: bool,
    _p: PhantomData<fn() -> S>,
}

impl<S> Clone for OrderBy<S> {
    fn clone(&self) -> Self {
        OrderBy { node: self.node, desc: self.desc, _p: PhantomData }
    }
}

/// Comparisons shared by columns and aggregates; `$m` is the model whose
/// scope membership is required (`Free` expressions need none).
macro_rules! comparisons {
    ($ty:ident) => {
        impl<M, T: SqlType> $ty<M, T> {
            fn cmp<S>(&self, op: CmpOp, v: Value) -> Cond<S> {
                Cond::new(CondNode::Cmp(self.node(), op, v))
            }

            /// `= v` (`IS NULL` when `v` is `None`).
            pub fn eq<S: Has<M, I>, I>(self, v: impl Bind<T>) -> Cond<S> {
                self.cmp(CmpOp::Eq, v.into_value())
            }
            /// `<> v` (`IS NOT NULL` when `v` is `None`).
            pub fn ne<S: Has<M, I>, I>(self, v: impl Bind<T>) -> Cond<S> {
                self.cmp(CmpOp::Ne, v.into_value())
            }
            pub fn gt<S: Has<M, I>, I>(self, v: impl Bind<T>) -> Cond<S> {
                self.cmp(CmpOp::Gt, v.into_value())
            }
            pub fn ge<S: Has<M, I>, I>(self, v: impl Bind<T>) -> Cond<S> {
                self.cmp(CmpOp::Ge, v.into_value())
            }
            pub fn lt<S: Has<M, I>, I>(self, v: impl Bind<T>) -> Cond<S> {
                self.cmp(CmpOp::Lt, v.into_value())
            }
            pub fn le<S: Has<M, I>, I>(self, v: impl Bind<T>) -> Cond<S> {
                self.cmp(CmpOp::Le, v.into_value())
            }
            /// `low <= x AND x <= high`.
            pub fn between<S: Has<M, I>, I>(self, low: impl Bind<T>, high: impl Bind<T>) -> Cond<S> {
                self.cmp::<S>(CmpOp::Ge, low.into_value()).and(self.cmp(CmpOp::Le, high.into_value()))
            }
            /// `IN (…)`; an empty list matches nothing.
            pub fn is_in<S: Has<M, I>, I, B: Bind<T>>(self, values: impl IntoIterator<Item = B>) -> Cond<S> {
                Cond::new(CondNode::In(self.node(), values.into_iter().map(Bind::into_value).collect(), false))
            }
            /// `NOT IN (…)`; an empty list matches everything.
            pub fn not_in<S: Has<M, I>, I, B: Bind<T>>(self, values: impl IntoIterator<Item = B>) -> Cond<S> {
                Cond::new(CondNode::In(self.node(), values.into_iter().map(Bind::into_value).collect(), true))
            }
            /// Compares with another column (of this or a joined model).
            pub fn eq_col<S: Has<M, I> + Has<N, J>, I, N, J>(self, other: Column<N, T>) -> Cond<S> {
                Cond::new(CondNode::CmpNode(self.node(), CmpOp::Eq, other.node()))
            }
            pub fn lt_col<S: Has<M, I> + Has<N, J>, I, N, J>(self, other: Column<N, T>) -> Cond<S> {
                Cond::new(CondNode::CmpNode(self.node(), CmpOp::Lt, other.node()))
            }
            pub fn gt_col<S: Has<M, I> + Has<N, J>, I, N, J>(self, other: Column<N, T>) -> Cond<S> {
                Cond::new(CondNode::CmpNode(self.node(), CmpOp::Gt, other.node()))
            }
            /// Ascending order.
            pub fn asc<S: Has<M, I>, I>(self) -> OrderBy<S> {
                OrderBy { node: self.node(), desc: false, _p: PhantomData }
            }
            /// Descending order.
            pub fn desc<S: Has<M, I>, I>(self) -> OrderBy<S> {
                OrderBy { node: self.node(), desc: true, _p: PhantomData }
            }
        }
    };
}

comparisons!(Column);
comparisons!(Agg);

impl CountAll {
    fn cmp<S>(op: CmpOp, v: i64) -> Cond<S> {
        Cond::new(CondNode::Cmp(Node::CountAll, op, Value::Int(v)))
    }
    pub fn eq<S>(self, v: i64) -> Cond<S> {
        CountAll::cmp(CmpOp::Eq, v)
    }
    pub fn gt<S>(self, v: i64) -> Cond<S> {
        CountAll::cmp(CmpOp::Gt, v)
    }
    pub fn ge<S>(self, v: i64) -> Cond<S> {
        CountAll::cmp(CmpOp::Ge, v)
    }
    pub fn lt<S>(self, v: i64) -> Cond<S> {
        CountAll::cmp(CmpOp::Lt, v)
    }
    pub fn le<S>(self, v: i64) -> Cond<S> {
        CountAll::cmp(CmpOp::Le, v)
    }
    pub fn asc<S>(self) -> OrderBy<S> {
        OrderBy { node: Node::CountAll, desc: false, _p: PhantomData }
    }
    pub fn desc<S>(self) -> OrderBy<S> {
        OrderBy { node: Node::CountAll, desc: true, _p: PhantomData }
    }
}

impl<M, T: SqlType> Column<M, T> {
    /// `IS NULL` on a column of a LEFT JOINed model: true where no row
    /// matched. (For a nullable column's own NULLs, use `is_null`.)
    pub fn is_absent<S: Has<M, I>, I>(self) -> Cond<S> {
        Cond::new(CondNode::Null(self.node(), false))
    }
}

impl<M, T: SqlType> Column<M, Option<T>> {
    /// `IS NULL`.
    pub fn is_null<S: Has<M, I>, I>(self) -> Cond<S> {
        Cond::new(CondNode::Null(self.node(), false))
    }
    /// `IS NOT NULL`.
    pub fn is_not_null<S: Has<M, I>, I>(self) -> Cond<S> {
        Cond::new(CondNode::Null(self.node(), true))
    }
}

/// Escapes `%`, `_` and the escape character itself for a LIKE pattern.
fn escape_like(s: &str, escape: char) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for ch in s.chars() {
        if ch == '%' || ch == '_' || ch == escape {
            out.push(escape);
        }
        out.push(ch);
    }
    out
}

impl<M, T: TextType> Column<M, T> {
    /// `LIKE pattern`, with `%` and `_` as wildcards (bound, never spliced).
    /// Case sensitivity follows the backend: MySQL's default collation
    /// ignores case, the others do not.
    pub fn like<S: Has<M, I>, I>(self, pattern: &str) -> Cond<S> {
        Cond::new(CondNode::Like(self.node(), Pattern::Raw(pattern.to_string()), false))
    }
    /// `NOT LIKE pattern`.
    pub fn not_like<S: Has<M, I>, I>(self, pattern: &str) -> Cond<S> {
        Cond::new(CondNode::Like(self.node(), Pattern::Raw(pattern.to_string()), true))
    }
    /// Contains `text` literally (wildcards in `text` are escaped).
    pub fn contains<S: Has<M, I>, I>(self, text: &str) -> Cond<S> {
        Cond::new(CondNode::Like(self.node(), Pattern::Contains(text.to_string()), false))
    }
    /// Starts with `text` literally.
    pub fn starts_with<S: Has<M, I>, I>(self, text: &str) -> Cond<S> {
        Cond::new(CondNode::Like(self.node(), Pattern::StartsWith(text.to_string()), false))
    }
    /// Ends with `text` literally.
    pub fn ends_with<S: Has<M, I>, I>(self, text: &str) -> Cond<S> {
        Cond::new(CondNode::Like(self.node(), Pattern::EndsWith(text.to_string()), false))
    }
}

/// A typed item of a projection: a column, an aggregate, `count_all()`, or
/// a tuple of those.
pub trait Selection<S, I>: Send {
    type Out: Send + 'static;
    #[doc(hidden)]
    fn nodes(&self, out: &mut Vec<Node>);
    #[doc(hidden)]
    fn decode(values: &mut crate::model::Values<'_>) -> crate::Result<Self::Out>;
}

fn decode_one<T: SqlType>(values: &mut crate::model::Values<'_>) -> crate::Result<T> {
    crate::private::decode_next(values, "", "")
}

impl<S: Has<M, I>, M, I, T: SqlType> Selection<S, I> for Column<M, T> {
    type Out = T;
    fn nodes(&self, out: &mut Vec<Node>) {
        out.push(self.node());
    }
    fn decode(values: &mut crate::model::Values<'_>) -> crate::Result<T> {
        decode_one(values)
    }
}

impl<S: Has<M, I>, M, I, T: SqlType> Selection<S, I> for Agg<M, T> {
    type Out = T;
    fn nodes(&self, out: &mut Vec<Node>) {
        out.push(self.node);
    }
    fn decode(values: &mut crate::model::Values<'_>) -> crate::Result<T> {
        decode_one(values)
    }
}

impl<S> Selection<S, Free> for CountAll {
    type Out = i64;
    fn nodes(&self, out: &mut Vec<Node>) {
        out.push(Node::CountAll);
    }
    fn decode(values: &mut crate::model::Values<'_>) -> crate::Result<i64> {
        decode_one(values)
    }
}

macro_rules! tuple_selection {
    ($($t:ident $i:ident),+) => {
        impl<S, $($t: Selection<S, $i>, $i),+> Selection<S, ($($i,)+)> for ($($t,)+) {
            type Out = ($($t::Out,)+);
            #[allow(non_snake_case)]
            fn nodes(&self, out: &mut Vec<Node>) {
                let ($($t,)+) = self;
                $($t.nodes(out);)+
            }
            fn decode(values: &mut crate::model::Values<'_>) -> crate::Result<Self::Out> {
                Ok(($($t::decode(values)?,)+))
            }
        }
    };
}

tuple_selection!(A IA);
tuple_selection!(A IA, B IB);
tuple_selection!(A IA, B IB, C IC);
tuple_selection!(A IA, B IB, C IC, D ID);
tuple_selection!(A IA, B IB, C IC, D ID, E IE);
tuple_selection!(A IA, B IB, C IC, D ID, E IE, F IF);
tuple_selection!(A IA, B IB, C IC, D ID, E IE, F IF, G IG);
tuple_selection!(A IA, B IB, C IC, D ID, E IE, F IF, G IG, H IH);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_escaping_keeps_wildcards_literal() {
        assert_eq!(escape_like("50%_off!", '!'), "50!%!_off!!");
        assert_eq!(escape_like("a\\b%", '\\'), "a\\\\b\\%");
    }
}
