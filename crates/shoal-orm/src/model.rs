//! The `Model` trait, rows, and the fields that hold loaded relations.
//!
//! A model is a plain struct: its column fields are ordinary Rust values and
//! its relation fields are [`Loaded`] slots that stay empty until a query
//! asks for them with `.with(…)`. There is no lazy loading: reading an
//! unloaded relation gives `None`, never a hidden query.
//!
//! ```text
//!   SELECT "users"."id", "users"."name", …   ──▶ Row [Int(1), Text("Alice"), …]
//!                                              │  Model::decode (by position)
//!                                              ▼
//!   User { id: 1, name: "Alice", …, orders: Loaded(None) }
//!                                              │  .with(User::ORDERS): one IN query
//!                                              ▼
//!   User { …, orders: Loaded(Some(vec![Order, Order])) }
//! ```

use std::future::Future;
use std::sync::{Arc, OnceLock};

use crate::backend::Binder;
use crate::db::Executor;
use crate::dialect::Dialect;
use crate::error::{Error, Result};
use crate::expr::Cond;
use crate::query::Select;
use crate::schema::TableDef;
use crate::value::{SqlType, Value, ValueRef};
use crate::write::{self, DeleteWhere, Insert, Tracked, UpdateWhere};

/// A struct mapped to a table. Implement it with `#[derive(Model)]`.
pub trait Model: Sized + Send + Sync + Unpin + 'static {
    /// The table's name (a literal, so other models' constants can use it).
    const TABLE_NAME: &'static str;
    /// The primary key's column names.
    const PRIMARY_KEY: &'static [&'static str];
    /// Everything the table is made of.
    const TABLE: TableDef;
    /// The primary key's Rust type: the field's type, or a tuple for a
    /// composite key.
    type Key: Send;

    /// Every column's value, in declaration order.
    fn values(&self) -> Vec<Value>;
    /// Hands every column's value, in declaration order, to `to`,
    /// borrowing text and bytes from the fields (a bulk insert binds them
    /// into its statement without copying them).
    fn bind_values(&self, to: &mut dyn Binder) -> Result<()> {
        self.values().into_iter().try_for_each(|v| to.bind(ValueRef::Owned(v)))
    }
    /// A key's values, in primary-key order.
    fn key_values(key: Self::Key) -> Vec<Value>;
    /// [`Model::key_values`] pushed onto `to` (generated: a key lookup
    /// fills a reused vector instead of allocating one).
    #[doc(hidden)]
    fn __push_key_values(key: Self::Key, to: &mut Vec<Value>) {
        to.extend(Self::key_values(key));
    }
    /// This row's primary-key values.
    fn primary_key_values(&self) -> Vec<Value>;
    /// The first primary-key column's value (relations require a
    /// single-column key, checked at compile time).
    fn first_key_value(&self) -> Value;
    /// Builds a model from values in declaration order.
    fn decode(values: &mut Values<'_>) -> Result<Self>;
    /// True when the key is `auto_increment` and still zero, so INSERT
    /// leaves it to the database.
    fn generated_key_unset(&self) -> bool;
    /// Stores the key the database generated.
    fn set_generated_key(&mut self, value: Value) -> Result<()>;
    /// This model's cache of statement texts that depend only on the model
    /// and the dialect (generated: one static per model).
    #[doc(hidden)]
    fn __sql_cache() -> &'static SqlCache;

    // ------------------------------------------------------------------
    // Everything below is provided; see `query.rs` and `write.rs`.

    /// A query over this model's table.
    fn query() -> Select<Self> {
        Select::new()
    }

    /// The row with this primary key, or `None`.
    // Inline (as `get`): returned by value, the lookup's future (about
    // 1.3 KiB) would be copied into the caller's.
    #[inline]
    fn find(
        ex: &(impl Executor + ?Sized),
        key: impl Into<Self::Key>,
    ) -> impl Future<Output = Result<Option<Self>>> + Send {
        let key = write::key_params::<Self>(key.into());
        async move { Ok(write::find::<Self>(key, ex).await?.ok()) }
    }

    /// The row with this primary key; [`Error::NotFound`] when there is none.
    #[inline]
    fn get(ex: &(impl Executor + ?Sized), key: impl Into<Self::Key>) -> impl Future<Output = Result<Self>> + Send {
        let key = write::key_params::<Self>(key.into());
        async move {
            match write::find::<Self>(key, ex).await? {
                Ok(row) => Ok(row),
                Err(key) => {
                    Err(Error::NotFound { table: Self::TABLE_NAME.into(), what: format!("primary key {key:?}") })
                }
            }
        }
    }

    /// Inserts this row; a zero `auto_increment` key is filled in.
    fn insert(&mut self, ex: &(impl Executor + ?Sized)) -> impl Future<Output = Result<()>> + Send {
        write::insert(self, ex)
    }

    /// Writes every non-key column of this row; [`Error::NotFound`] if it is gone.
    fn update(&self, ex: &(impl Executor + ?Sized)) -> impl Future<Output = Result<()>> + Send {
        write::update(self, ex)
    }

    /// Inserts this row, or overwrites the row with the same primary key.
    fn save(&mut self, ex: &(impl Executor + ?Sized)) -> impl Future<Output = Result<()>> + Send {
        write::save(self, ex)
    }

    /// Deletes this row by primary key; whether it existed.
    fn delete(&self, ex: &(impl Executor + ?Sized)) -> impl Future<Output = Result<bool>> + Send {
        write::delete(self, ex)
    }

    /// Starts change tracking, so `save` writes only changed columns.
    fn track(self) -> Tracked<Self> {
        Tracked::new(self)
    }

    /// A multi-row INSERT (bulk insert, upsert with `on_conflict`).
    fn insert_all(rows: &[Self]) -> Insert<'_, Self> {
        Insert::new(rows)
    }

    /// `UPDATE … WHERE cond`.
    fn update_where(cond: Cond<Self>) -> UpdateWhere<Self> {
        UpdateWhere::new(Some(write::cond_node(cond)))
    }

    /// `UPDATE` every row (spelled out so it is never an accident).
    fn update_all() -> UpdateWhere<Self> {
        UpdateWhere::new(None)
    }

    /// `DELETE … WHERE cond`.
    fn delete_where(cond: Cond<Self>) -> DeleteWhere<Self> {
        DeleteWhere::new(Some(write::cond_node(cond)))
    }

    /// `DELETE` every row (spelled out so it is never an accident).
    fn delete_all() -> DeleteWhere<Self> {
        DeleteWhere::new(None)
    }
}

/// The statements a model runs by key, rendered once per dialect.
#[doc(hidden)]
pub struct SqlCache {
    slots: [[OnceLock<String>; 4]; SqlSlot::COUNT],
}

/// Which statement a [`SqlCache`] slot holds.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub enum SqlSlot {
    Find,
    Insert,
    InsertGenerated,
    Update,
    Delete,
    Upsert,
    /// A bulk insert's full chunk: as many rows as one statement takes,
    /// keys given, no conflict clause (`write::Insert`).
    InsertChunk,
}

impl SqlSlot {
    const COUNT: usize = 7;
}

impl SqlCache {
    #[allow(clippy::new_without_default)] // used in `static` items, which need a const fn
    pub const fn new() -> SqlCache {
        SqlCache { slots: [const { [const { OnceLock::new() }; 4] }; SqlSlot::COUNT] }
    }

    /// The text for `slot` in `dialect`, rendered by `render` the first time.
    pub(crate) fn get(&'static self, slot: SqlSlot, dialect: Dialect, render: impl FnOnce() -> String) -> &'static str {
        let d = match dialect {
            Dialect::Sqlite => 0,
            Dialect::Postgres => 1,
            Dialect::Shoal => 2,
            Dialect::Mysql => 3,
        };
        self.slots[slot as usize][d].get_or_init(render)
    }
}

/// Values of one row in column order, consumed by [`Model::decode`]: from
/// a buffered result, or read straight off the driver's current row (an
/// in-process backend decodes each row as it steps, with no buffer).
pub struct Values<'a> {
    source: Source<'a>,
}

enum Source<'a> {
    Owned(std::vec::IntoIter<Value>),
    Live(&'a mut dyn LiveRow),
}

/// A driver row being read column by column (see [`Values`]).
pub(crate) trait LiveRow {
    /// The next column's value, borrowed from the driver; `None` past the
    /// last column.
    fn next_ref(&mut self) -> Option<crate::value::ValueRef<'_>>;
}

impl Values<'static> {
    pub(crate) fn new(values: Vec<Value>) -> Values<'static> {
        Values { source: Source::Owned(values.into_iter()) }
    }
}

impl<'a> Values<'a> {
    pub(crate) fn live(row: &'a mut dyn LiveRow) -> Values<'a> {
        Values { source: Source::Live(row) }
    }

    /// The next column's value; `None` past the last column.
    pub(crate) fn next_value(&mut self) -> Option<Value> {
        match &mut self.source {
            Source::Owned(iter) => iter.next(),
            Source::Live(row) => row.next_ref().map(crate::value::ValueRef::to_value),
        }
    }

    /// The next column decoded as `T` (an error past the last column): from
    /// the driver's row directly when live, with no intermediate `Value`.
    /// (A plain `Result`, not an `Option` of one: `T` is moved once less
    /// per column, which shows on wide results.)
    #[inline]
    pub(crate) fn next_as<T: SqlType>(&mut self) -> Result<T> {
        match &mut self.source {
            Source::Owned(iter) => match iter.next() {
                Some(v) => T::from_value(v),
                None => Err(past_last_column()),
            },
            Source::Live(row) => match row.next_ref() {
                Some(v) => T::from_ref(v),
                None => Err(past_last_column()),
            },
        }
    }
}

#[cold]
fn past_last_column() -> Error {
    Error::Decode { column: String::new(), message: "the row has fewer columns than the model".into() }
}

/// A result row: values plus the column names they came with.
#[derive(Clone, Debug)]
pub struct Row {
    columns: Arc<[String]>,
    values: Vec<Value>,
}

impl Row {
    pub(crate) fn new(columns: Arc<[String]>, values: Vec<Value>) -> Row {
        Row { columns, values }
    }

    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    pub fn values(&self) -> &[Value] {
        &self.values
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub(crate) fn into_values(self) -> Vec<Value> {
        self.values
    }

    fn index_of(&self, name: &str) -> Result<usize> {
        self.columns
            .iter()
            .position(|c| c == name)
            // Unquoted aliases come back lower- or upper-cased depending on
            // the backend; accept a case-insensitive match as a fallback.
            .or_else(|| self.columns.iter().position(|c| c.eq_ignore_ascii_case(name)))
            .ok_or_else(|| Error::Decode {
                column: name.to_string(),
                message: format!("the result has no such column (it has {})", self.columns.join(", ")),
            })
    }

    /// The value of column `name`, decoded.
    pub fn get<T: SqlType>(&self, name: &str) -> Result<T> {
        let i = self.index_of(name)?;
        T::from_value(self.values[i].clone()).map_err(|e| e.in_column("", name))
    }

    /// Moves the value of column `name` out of the row, decoded.
    pub fn take<T: SqlType>(&mut self, name: &str) -> Result<T> {
        let i = self.index_of(name)?;
        T::from_value(std::mem::replace(&mut self.values[i], Value::Null)).map_err(|e| e.in_column("", name))
    }

    /// The value at position `index`, decoded.
    pub fn get_at<T: SqlType>(&self, index: usize) -> Result<T> {
        let v = self.values.get(index).cloned().ok_or_else(|| Error::Decode {
            column: format!("#{index}"),
            message: format!("the result has only {} columns", self.values.len()),
        })?;
        T::from_value(v).map_err(|e| e.in_column("", &format!("#{index}")))
    }
}

/// Decoding a whole row by column name: models, `#[derive(FromRow)]`
/// structs, and tuples (by position).
pub trait FromRow: Sized + Send + 'static {
    fn from_row(row: &mut Row) -> Result<Self>;
}

/// A struct built from a typed projection tuple (see
/// `Projection::into_struct`); derived with `#[derive(FromRow)]`.
pub trait FromTuple: Sized + Send + 'static {
    type Tuple;
    fn from_tuple(t: Self::Tuple) -> Self;
}

macro_rules! tuple_from_row {
    ($($t:ident $i:tt),+) => {
        impl<$($t: SqlType),+> FromRow for ($($t,)+) {
            fn from_row(row: &mut Row) -> Result<Self> {
                Ok(($(row.get_at::<$t>($i)?,)+))
            }
        }
    };
}

tuple_from_row!(A 0);
tuple_from_row!(A 0, B 1);
tuple_from_row!(A 0, B 1, C 2);
tuple_from_row!(A 0, B 1, C 2, D 3);
tuple_from_row!(A 0, B 1, C 2, D 3, E 4);
tuple_from_row!(A 0, B 1, C 2, D 3, E 4, F 5);
tuple_from_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6);
tuple_from_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);

/// A relation slot: empty until `.with(…)` fills it.
///
/// The value is boxed so a model may relate to itself (an employee's
/// manager) without becoming an infinitely large type.
#[derive(Clone, Debug, PartialEq)]
pub struct Loaded<T>(Option<Box<T>>);

impl<T> Default for Loaded<T> {
    fn default() -> Self {
        Loaded(None)
    }
}

impl<T> Loaded<T> {
    /// An empty slot (what `Default` gives).
    pub const fn not_loaded() -> Loaded<T> {
        Loaded(None)
    }

    /// The loaded value, or `None` when the query did not load it.
    pub fn get(&self) -> Option<&T> {
        self.0.as_deref()
    }

    pub fn get_mut(&mut self) -> Option<&mut T> {
        self.0.as_deref_mut()
    }

    pub fn is_loaded(&self) -> bool {
        self.0.is_some()
    }

    pub fn into_inner(self) -> Option<T> {
        self.0.map(|b| *b)
    }

    pub fn take(&mut self) -> Option<T> {
        self.0.take().map(|b| *b)
    }

    pub fn set(&mut self, value: T) {
        self.0 = Some(Box::new(value));
    }
}

impl<T> From<T> for Loaded<T> {
    fn from(value: T) -> Self {
        Loaded(Some(Box::new(value)))
    }
}

/// Rows of the child table whose foreign key points at this row.
pub type HasMany<T> = Loaded<Vec<T>>;
/// The child row whose foreign key points at this row, if any.
pub type HasOne<T> = Loaded<Option<T>>;
/// The row this row's foreign key points at (`None` for a NULL key or a
/// dangling one).
pub type BelongsTo<T> = Loaded<Option<T>>;
/// Rows linked through a join table.
pub type ManyToMany<T> = Loaded<Vec<T>>;

/// How the eager loader stores the rows it found for one parent.
pub trait RelationField<C> {
    fn assign(&mut self, rows: Vec<C>);
}

impl<C> RelationField<C> for Loaded<Vec<C>> {
    fn assign(&mut self, rows: Vec<C>) {
        self.set(rows);
    }
}

impl<C> RelationField<C> for Loaded<Option<C>> {
    fn assign(&mut self, rows: Vec<C>) {
        self.set(rows.into_iter().next());
    }
}

pub(crate) fn decode_model<M: Model>(values: Vec<Value>) -> Result<M> {
    M::decode(&mut Values::new(values))
}
