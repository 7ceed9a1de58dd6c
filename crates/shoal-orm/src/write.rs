//! INSERT, UPDATE, DELETE and upsert.
//!
//! | call | SQL |
//! |---|---|
//! | `m.insert(&db)` | `INSERT … VALUES …` (+ `RETURNING id` for a generated key) |
//! | `m.update(&db)` | `UPDATE … SET <every non-key column> WHERE <key>`; `NotFound` if no row |
//! | `m.save(&db)` | insert a new generated-key row, else upsert on the primary key |
//! | `m.track()` … `t.save(&db)` | `UPDATE … SET <changed columns only> WHERE <original key>` |
//! | `M::insert_all(&rows)…execute(&db)` | multi-row `INSERT`, chunked, atomic, optional `ON CONFLICT` |
//! | `M::update_where(cond).set(..)` | `UPDATE … WHERE cond` |
//! | `M::delete_where(cond)` | `DELETE … WHERE cond` |
//!
//! An `auto_increment` key holding zero is "not assigned yet": the INSERT
//! leaves the column out and stores the generated value back into the
//! model (from `RETURNING`, or MySQL's `LAST_INSERT_ID()`).
//!
//! Statements carry the model's table so constraint errors name the
//! constraint even on SQLite, and a [`Route`] when the row's shard key is
//! known, so Shoal writes go to one shard.

use std::borrow::Cow;
use std::cell::Cell;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

use crate::backend::{BindParams, Binder};
use crate::db::{fetch_rows_async, Executor, Route, Stmt};
use crate::dialect::{Dialect, SqlWriter};
use crate::error::{Error, Result};
use crate::expr::{Column, Cond, CondNode};
use crate::model::{Model, SqlSlot, Values};
use crate::query::render_where;
use crate::schema::{ColumnDef, Distribution};
use crate::value::{Bind, SqlType, Summable, Value, ValueRef};

/// The route of a row: its shard key value.
fn row_route<M: Model>(values: &[Value]) -> Option<Route> {
    let Distribution::Sharded { column, .. } = M::TABLE.distribution else { return None };
    let i = M::TABLE.columns.iter().position(|c| c.name == column)?;
    Some(Route { table: M::TABLE_NAME, column, values: vec![values.get(i)?.clone()] })
}

fn key_columns<M: Model>() -> impl Iterator<Item = &'static str> {
    M::PRIMARY_KEY.iter().copied()
}

fn non_key_columns<M: Model>() -> impl Iterator<Item = (usize, &'static str)> {
    M::TABLE.columns.iter().enumerate().filter(|(_, c)| !c.primary_key).map(|(i, c)| (i, c.name))
}

/// `WHERE key = …` of a single-table statement. Columns are unqualified:
/// the text is shorter, and drivers hash it on every call to find their
/// prepared statement.
fn render_key_filter<M: Model>(key: &[Value], w: &mut SqlWriter) {
    w.push(" WHERE ");
    for (i, (col, v)) in key_columns::<M>().zip(key).enumerate() {
        if i > 0 {
            w.push(" AND ");
        }
        w.ident(col);
        w.push(" = ");
        w.bind(v.clone());
    }
}

fn key_text(key: &[Value]) -> String {
    let parts: Vec<String> = key.iter().map(|v| v.to_string()).collect();
    format!("primary key ({})", parts.join(", "))
}

/// `INSERT INTO t (cols) VALUES (…), (…)` for rows given as value lists.
fn render_insert<M: Model>(dialect: Dialect, columns: &[usize], rows: &[Vec<Value>]) -> SqlWriter {
    let mut w = SqlWriter::new(dialect);
    w.push("INSERT INTO ");
    w.ident(M::TABLE_NAME);
    w.push(" (");
    for (i, &c) in columns.iter().enumerate() {
        if i > 0 {
            w.push(", ");
        }
        w.ident(M::TABLE.columns[c].name);
    }
    w.push(") VALUES ");
    for (r, row) in rows.iter().enumerate() {
        if r > 0 {
            w.push(", ");
        }
        w.push("(");
        for (i, &c) in columns.iter().enumerate() {
            if i > 0 {
                w.push(", ");
            }
            w.bind(row[c].clone());
        }
        w.push(")");
    }
    w
}

/// A model's values as written: `NUMERIC(p, s)` values rounded to their
/// scale, and refused when they overflow the precision (see `numeric.rs`).
fn written_values<M: Model>(model: &M) -> Result<Vec<Value>> {
    let mut values = model.values();
    crate::numeric::conform_row(M::TABLE_NAME, M::TABLE.columns, &mut values)?;
    Ok(values)
}

/// Inserts one row, storing a generated key back into it.
pub(crate) async fn insert<M: Model>(model: &mut M, ex: &(impl Executor + ?Sized)) -> Result<()> {
    let values = written_values(model)?;
    let generate = model.generated_key_unset();
    let dialect = ex.dialect();
    let route = row_route::<M>(&values);
    let columns = || -> Vec<usize> {
        (0..M::TABLE.columns.len()).filter(|&i| !(generate && M::TABLE.columns[i].auto_increment)).collect()
    };
    let params: Vec<Value> = if generate {
        values.iter().zip(M::TABLE.columns).filter(|(_, c)| !c.auto_increment).map(|(v, _)| v.clone()).collect()
    } else {
        values.clone()
    };
    let returning = generate && dialect.has_returning();
    let slot = if generate { SqlSlot::InsertGenerated } else { SqlSlot::Insert };
    let sql = M::__sql_cache().get(slot, dialect, || {
        let mut w = render_insert::<M>(dialect, &columns(), std::slice::from_ref(&values));
        if returning {
            w.push(" RETURNING ");
            w.ident(M::PRIMARY_KEY[0]);
        }
        w.finish().0
    });
    let stmt = Stmt::write(sql, params).on_table(&M::TABLE).routed(route);
    if returning {
        let result = ex.__fetch(stmt.positional()).await?;
        let key = result.first_value().ok_or_else(|| Error::Database {
            sqlstate: "XX000".into(),
            message: "INSERT … RETURNING returned no row".into(),
        })?;
        model.set_generated_key(key).map_err(|e| e.in_column(M::TABLE_NAME, M::PRIMARY_KEY[0]))
    } else {
        let done = ex.__exec(stmt).await?;
        if generate {
            let id = done.last_insert_id.ok_or_else(|| Error::Database {
                sqlstate: "XX000".into(),
                message: "the database reported no generated key".into(),
            })?;
            model.set_generated_key(Value::Int(id))?;
        }
        Ok(())
    }
}

/// Updates every non-key column of one row by its key.
pub(crate) async fn update<M: Model>(model: &M, ex: &(impl Executor + ?Sized)) -> Result<()> {
    let values = written_values(model)?;
    let changed: Vec<usize> = non_key_columns::<M>().map(|(i, _)| i).collect();
    update_columns::<M>(&values, &model.primary_key_values(), &changed, ex, Some(SqlSlot::Update)).await
}

/// `UPDATE … SET <columns> WHERE <key>`; `slot` caches the text when the
/// column list is always the same (every non-key column).
async fn update_columns<M: Model>(
    values: &[Value],
    key: &[Value],
    columns: &[usize],
    ex: &(impl Executor + ?Sized),
    slot: Option<SqlSlot>,
) -> Result<()> {
    let dialect = ex.dialect();
    let mut params: Vec<Value> = columns.iter().map(|&i| values[i].clone()).collect();
    params.extend(key.iter().cloned());
    let render = || render_update::<M>(dialect, values, key, columns);
    let sql: Cow<'static, str> = match slot {
        Some(slot) => M::__sql_cache().get(slot, dialect, render).into(),
        None => render().into(),
    };
    let done = ex.__exec(Stmt::write(sql, params).on_table(&M::TABLE).routed(row_route::<M>(values))).await?;
    if done.rows_affected == 0 {
        return Err(Error::NotFound { table: M::TABLE_NAME.into(), what: key_text(key) });
    }
    Ok(())
}

fn render_update<M: Model>(dialect: Dialect, values: &[Value], key: &[Value], columns: &[usize]) -> String {
    let mut w = SqlWriter::new(dialect);
    w.push("UPDATE ");
    w.ident(M::TABLE_NAME);
    w.push(" SET ");
    if columns.is_empty() {
        // Nothing but key columns: a no-op assignment still checks the row exists.
        let pk = M::PRIMARY_KEY[0];
        w.ident(pk);
        w.push(" = ");
        w.ident(pk);
    }
    for (n, &i) in columns.iter().enumerate() {
        if n > 0 {
            w.push(", ");
        }
        w.ident(M::TABLE.columns[i].name);
        w.push(" = ");
        w.bind(values[i].clone());
    }
    render_key_filter::<M>(key, &mut w);
    w.finish().0
}

/// Inserts a new row or overwrites the one with the same primary key.
pub(crate) async fn save<M: Model>(model: &mut M, ex: &(impl Executor + ?Sized)) -> Result<()> {
    if model.generated_key_unset() {
        return insert(model, ex).await;
    }
    let dialect = ex.dialect();
    let values = written_values(model)?;
    if dialect == Dialect::Mysql {
        // ON DUPLICATE KEY UPDATE would fire on any unique key, not only the
        // primary key; update by key, then insert if nothing matched.
        return match update::<M>(model, ex).await {
            Err(Error::NotFound { .. }) => insert(model, ex).await,
            other => other,
        };
    }
    let sql = M::__sql_cache().get(SqlSlot::Upsert, dialect, || {
        let all: Vec<usize> = (0..values.len()).collect();
        let mut w = render_insert::<M>(dialect, &all, std::slice::from_ref(&values));
        let set: Vec<&str> = non_key_columns::<M>().map(|(_, c)| c).collect();
        dialect.upsert(M::PRIMARY_KEY, &set, &mut w);
        w.finish().0
    });
    let route = row_route::<M>(&values);
    ex.__exec(Stmt::write(sql, values).on_table(&M::TABLE).routed(route)).await?;
    Ok(())
}

/// Deletes one row by its key; whether a row was deleted.
pub(crate) async fn delete<M: Model>(model: &M, ex: &(impl Executor + ?Sized)) -> Result<bool> {
    let dialect = ex.dialect();
    let key = model.primary_key_values();
    let sql = M::__sql_cache().get(SqlSlot::Delete, dialect, || {
        let mut w = SqlWriter::new(dialect);
        w.push("DELETE FROM ");
        w.ident(M::TABLE_NAME);
        render_key_filter::<M>(&key, &mut w);
        w.finish().0
    });
    let route = row_route::<M>(&model.values());
    let done = ex.__exec(Stmt::write(sql, key).on_table(&M::TABLE).routed(route)).await?;
    Ok(done.rows_affected > 0)
}

thread_local! {
    /// The parameter vector of this thread's last key lookup that found
    /// its row, emptied and kept for the next one: a lookup is a few
    /// thousand instructions on PostgreSQL, and allocating and freeing
    /// the key's vector a few percent of them.
    static SPARE_KEY_PARAMS: Cell<Vec<Value>> = const { Cell::new(Vec::new()) };
}

/// Keys longer than this give their vector back to the allocator.
const SPARE_KEY_PARAMS_MAX: usize = 8;

/// A key's values as a lookup's parameters, in this thread's spare vector
/// when it has one (see [`find`], which gives it back).
#[inline]
pub(crate) fn key_params<M: Model>(key: M::Key) -> Vec<Value> {
    let mut params = SPARE_KEY_PARAMS.with(Cell::take);
    M::__push_key_values(key, &mut params);
    params
}

/// Fetches one row by primary key: the row, or the key back for a
/// "not found" message (so the hot path never copies it). `key` comes
/// from [`key_params`]; a found row's lookup leaves it as the thread's
/// spare.
pub(crate) async fn find<M: Model>(
    key: Vec<Value>,
    ex: &(impl Executor + ?Sized),
) -> Result<std::result::Result<M, Vec<Value>>> {
    let dialect = ex.dialect();
    let sql = M::__sql_cache().get(SqlSlot::Find, dialect, || {
        let mut w = SqlWriter::new(dialect);
        w.push("SELECT ");
        for (i, col) in M::TABLE.column_names().enumerate() {
            if i > 0 {
                w.push(", ");
            }
            w.ident(col);
        }
        w.push(" FROM ");
        w.ident(M::TABLE_NAME);
        render_key_filter::<M>(&key, &mut w);
        w.finish().0
    });
    let route = match M::TABLE.distribution {
        Distribution::Sharded { column, .. } => M::PRIMARY_KEY.iter().position(|c| *c == column).map(|i| Route {
            table: M::TABLE_NAME,
            column,
            values: vec![key[i].clone()],
        }),
        _ => None,
    };
    let mut stmt = Stmt::read(sql, key).on_table(&M::TABLE).routed(route).positional();
    stmt.single_row = true;
    let mut found = None;
    let mut keep = |v: &mut Values<'_>| {
        found = Some(M::decode(v)?);
        Ok(false)
    };
    // In-process SQLite answers at once, without entering a future.
    match ex.__fetch_now(&stmt, &mut keep) {
        Some(done) => done?,
        None => fetch_rows_async(ex, &mut stmt, &mut keep).await?,
    }
    match found {
        Some(row) => {
            let mut params = stmt.params;
            if params.capacity() <= SPARE_KEY_PARAMS_MAX {
                params.clear();
                SPARE_KEY_PARAMS.with(|spare| spare.set(params));
            }
            Ok(Ok(row))
        }
        None => Ok(Err(stmt.params)),
    }
}

/// A model plus a snapshot of its values as last loaded or saved, so
/// [`Tracked::save`] writes only the columns that changed.
///
/// ```no_run
/// # use shoal_orm::prelude::*;
/// # #[derive(Model, Clone)] #[model(table = "users")] struct User { #[model(primary_key)] id: i64, age: i32 }
/// # async fn f(db: &Db) -> shoal_orm::Result<()> {
/// let mut user = User::get(db, 1).await?.track();
/// user.age += 1;
/// user.save(db).await?; // UPDATE "users" SET "age" = $1 WHERE "users"."id" = $2
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Tracked<M: Model> {
    model: M,
    original: Vec<Value>,
}

impl<M: Model> Tracked<M> {
    /// Starts tracking a row as it is in the database now.
    pub fn new(model: M) -> Tracked<M> {
        let original = model.values();
        Tracked { model, original }
    }

    /// The names of the columns that differ from the snapshot.
    pub fn changed_columns(&self) -> Vec<&'static str> {
        let now = self.model.values();
        self.changed(&now).into_iter().map(|i| M::TABLE.columns[i].name).collect()
    }

    fn changed(&self, now: &[Value]) -> Vec<usize> {
        (0..now.len()).filter(|&i| now[i] != self.original[i]).collect()
    }

    /// Writes the changed columns (nothing, if none changed) and takes a new
    /// snapshot; whether a statement ran. `NotFound` if the row is gone.
    pub async fn save(&mut self, ex: &(impl Executor + ?Sized)) -> Result<bool> {
        let now = written_values(&self.model)?;
        let changed = self.changed(&now);
        if changed.is_empty() {
            return Ok(false);
        }
        let key: Vec<Value> = M::TABLE
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.primary_key)
            .map(|(i, _)| self.original[i].clone())
            .collect();
        update_columns::<M>(&now, &key, &changed, ex, None).await?;
        self.original = now;
        Ok(true)
    }

    pub fn into_inner(self) -> M {
        self.model
    }
}

impl<M: Model> Deref for Tracked<M> {
    type Target = M;
    fn deref(&self) -> &M {
        &self.model
    }
}

impl<M: Model> DerefMut for Tracked<M> {
    fn deref_mut(&mut self) -> &mut M {
        &mut self.model
    }
}

/// Columns of `M` named in an upsert: one column or a tuple of them.
pub trait Columns<M> {
    fn names(&self) -> Vec<&'static str>;
}

impl<M, T> Columns<M> for Column<M, T> {
    fn names(&self) -> Vec<&'static str> {
        vec![self.name()]
    }
}

macro_rules! tuple_columns {
    ($($t:ident),+) => {
        impl<M, $($t),+> Columns<M> for ($(Column<M, $t>,)+) {
            #[allow(non_snake_case)]
            fn names(&self) -> Vec<&'static str> {
                let ($($t,)+) = self;
                vec![$($t.name()),+]
            }
        }
    };
}

tuple_columns!(A);
tuple_columns!(A, B);
tuple_columns!(A, B, C);
tuple_columns!(A, B, C, D);
tuple_columns!(A, B, C, D, E);
tuple_columns!(A, B, C, D, E, F);

#[derive(Clone, Debug)]
enum OnConflict {
    Fail,
    Nothing(Vec<&'static str>),
    Update(Vec<&'static str>, Vec<&'static str>),
}

/// A multi-row INSERT; see [`Model::insert_all`].
pub struct Insert<'r, M: Model> {
    rows: &'r [M],
    conflict: OnConflict,
}

/// The conflict target of an upsert, waiting for what to do.
pub struct Conflicting<'r, M: Model> {
    insert: Insert<'r, M>,
    target: Vec<&'static str>,
}

impl<'r, M: Model> Insert<'r, M> {
    pub(crate) fn new(rows: &'r [M]) -> Insert<'r, M> {
        Insert { rows, conflict: OnConflict::Fail }
    }

    /// Skips rows whose primary key already exists.
    pub fn on_conflict_do_nothing(mut self) -> Self {
        self.conflict = OnConflict::Nothing(M::PRIMARY_KEY.to_vec());
        self
    }

    /// Names the unique columns a conflict is detected on (PostgreSQL,
    /// SQLite, Shoal; MySQL reacts to any unique key).
    pub fn on_conflict(self, target: impl Columns<M>) -> Conflicting<'r, M> {
        Conflicting { target: target.names(), insert: self }
    }

    /// Inserts the rows: one statement per chunk (sized to the backend's
    /// parameter limit), all in one transaction when run on a `Db`. Keys
    /// generated by the database are not written back (use
    /// [`Model::insert`] for that). The number of rows inserted.
    pub async fn execute(self, ex: &(impl Executor + ?Sized)) -> Result<u64> {
        if self.rows.is_empty() {
            return Ok(0);
        }
        let dialect = ex.dialect();
        // Rows with and without a generated key need different column lists.
        let (generated, explicit): (Vec<&M>, Vec<&M>) = self.rows.iter().partition(|m| m.generated_key_unset());
        let mut chunks = Vec::new();
        for (rows, skip_auto) in [(&explicit, false), (&generated, true)] {
            if rows.is_empty() {
                continue;
            }
            let columns: Vec<usize> =
                (0..M::TABLE.columns.len()).filter(|&i| !(skip_auto && M::TABLE.columns[i].auto_increment)).collect();
            let per_stmt = (dialect.max_params() / columns.len().max(1)).clamp(1, MAX_ROWS_PER_INSERT);
            let skip = skip_auto.then(|| M::TABLE.columns.iter().position(|c| c.auto_increment)).flatten();
            // Every full chunk has the same text: rendered once per call,
            // or once per process for the plain form (so a connection can
            // keep the statement prepared, as it does a model's own).
            let mut full_text: Option<Cow<'static, str>> = None;
            for chunk in rows.chunks(per_stmt) {
                let text = if chunk.len() == per_stmt {
                    let full = full_text.get_or_insert_with(|| {
                        let render = || self.text(dialect, &columns, per_stmt);
                        match self.conflict {
                            OnConflict::Fail if !skip_auto => {
                                M::__sql_cache().get(SqlSlot::InsertChunk, dialect, render).into()
                            }
                            _ => render().into(),
                        }
                    });
                    full.clone()
                } else {
                    self.text(dialect, &columns, chunk.len()).into()
                };
                // A single row pins its shard key, so Shoal can send it to one shard.
                let route = match chunk {
                    [one] => row_route::<M>(&written_values(*one)?),
                    _ => None,
                };
                // The parameters stay in the rows until the connection binds them.
                let mut stmt = Stmt::write(text, Vec::new()).on_table(&M::TABLE).routed(route);
                // One bulk call is one operation, however many chunks it takes.
                stmt.batched = true;
                chunks.push((stmt, RowParams { rows: chunk, skip, width: columns.len() }));
            }
        }
        match ex.__as_db() {
            Some(db) if chunks.len() > 1 => {
                db.transaction(|tx| async move {
                    let mut n = 0;
                    for (stmt, params) in chunks {
                        n += tx.__exec_bound(stmt, &params).await?.rows_affected;
                    }
                    Ok(n)
                })
                .await
            }
            _ => {
                let mut n = 0;
                for (stmt, params) in chunks {
                    n += ex.__exec_bound(stmt, &params).await?.rows_affected;
                }
                Ok(n)
            }
        }
    }
}

/// The parameters of one bulk INSERT statement: its rows' columns, bound
/// from the borrowed models as the model writes them (see [`Written`]).
struct RowParams<'r, M> {
    rows: &'r [&'r M],
    /// The generated key's column, left out of rows that let the database choose it.
    skip: Option<usize>,
    /// Parameters per row.
    width: usize,
}

impl<M: Model> BindParams for RowParams<'_, M> {
    fn count(&self) -> usize {
        self.rows.len() * self.width
    }

    fn bind(&self, to: &mut dyn Binder) -> Result<()> {
        // Only NUMERIC(p, s) columns and a left-out key need the columns
        // looked at one by one (most models have neither).
        let plain = self.skip.is_none() && M::TABLE.columns.iter().all(|c| c.numeric.is_none());
        for m in self.rows {
            if plain {
                m.bind_values(to)?;
            } else {
                m.bind_values(&mut Written {
                    to: &mut *to,
                    columns: M::TABLE.columns,
                    table: M::TABLE_NAME,
                    next: 0,
                    skip: self.skip,
                })?;
            }
        }
        Ok(())
    }
}

/// One row's columns on their way to a [`Binder`], as a model write sends
/// them: `NUMERIC(p, s)` values rounded (or refused, see `numeric.rs`) and
/// the skipped generated key left out.
struct Written<'b> {
    to: &'b mut dyn Binder,
    columns: &'static [ColumnDef],
    table: &'static str,
    /// The column the next value belongs to.
    next: usize,
    skip: Option<usize>,
}

impl Binder for Written<'_> {
    fn bind(&mut self, value: ValueRef<'_>) -> Result<()> {
        let i = self.next;
        self.next += 1;
        if self.skip == Some(i) {
            return Ok(());
        }
        match (self.columns.get(i), value) {
            (Some(&ColumnDef { name, numeric: Some((precision, scale)), .. }), ValueRef::Owned(mut v)) => {
                crate::numeric::conform(self.table, name, precision, scale, &mut v)?;
                self.to.bind(ValueRef::Owned(v))
            }
            (_, value) => self.to.bind(value),
        }
    }
}

impl<M: Model> Insert<'_, M> {
    /// The text of one multi-row INSERT of `rows` rows (placeholders only).
    fn text(&self, dialect: Dialect, columns: &[usize], rows: usize) -> String {
        let blank = vec![Value::Null; M::TABLE.columns.len()];
        let mut w = render_insert::<M>(dialect, columns, &vec![blank; rows]);
        match &self.conflict {
            OnConflict::Fail => {}
            OnConflict::Nothing(target) => dialect.upsert(target, &[], &mut w),
            OnConflict::Update(target, set) => dialect.upsert(target, set, &mut w),
        }
        w.finish().0
    }
}

/// Rows per INSERT statement at most: beyond this a statement only gets
/// harder to prepare without getting faster.
const MAX_ROWS_PER_INSERT: usize = 1000;

impl<'r, M: Model> Conflicting<'r, M> {
    /// Skips conflicting rows.
    pub fn do_nothing(mut self) -> Insert<'r, M> {
        self.insert.conflict = OnConflict::Nothing(self.target);
        self.insert
    }

    /// Overwrites these columns of the existing row with the new values.
    pub fn do_update(mut self, columns: impl Columns<M>) -> Insert<'r, M> {
        self.insert.conflict = OnConflict::Update(self.target, columns.names());
        self.insert
    }

    /// Overwrites every column outside the conflict target.
    pub fn do_update_all(mut self) -> Insert<'r, M> {
        let set = M::TABLE.column_names().filter(|c| !self.target.contains(c)).collect();
        self.insert.conflict = OnConflict::Update(self.target, set);
        self.insert
    }
}

#[derive(Clone, Debug)]
enum Assignment {
    /// `col = value`; the column's `NUMERIC(p, s)`, if it is one.
    Set(&'static str, Value, Option<(u32, u32)>),
    Add(&'static str, Value),
}

/// `UPDATE … SET … WHERE …`; see [`Model::update_where`].
pub struct UpdateWhere<M: Model> {
    filter: Option<CondNode>,
    sets: Vec<Assignment>,
    _p: PhantomData<fn() -> M>,
}

impl<M: Model> UpdateWhere<M> {
    pub(crate) fn new(filter: Option<CondNode>) -> UpdateWhere<M> {
        UpdateWhere { filter, sets: Vec::new(), _p: PhantomData }
    }

    /// `SET col = value`. On a `NUMERIC(p, s)` column the value is rounded
    /// and checked as a model write's is (22003 from `execute`).
    pub fn set<T: SqlType>(mut self, col: Column<M, T>, value: impl Bind<T>) -> Self {
        self.sets.push(Assignment::Set(col.name(), value.into_value(), col.numeric()));
        self
    }

    /// `SET col = col + by` (atomic on the server).
    pub fn increment<T: Summable>(mut self, col: Column<M, T>, by: impl Bind<T>) -> Self {
        self.sets.push(Assignment::Add(col.name(), by.into_value()));
        self
    }

    /// Runs it; the number of rows matched.
    pub async fn execute(self, ex: &(impl Executor + ?Sized)) -> Result<u64> {
        if self.sets.is_empty() {
            return Err(Error::Unsupported("an UPDATE with nothing to set (call .set(…) first)".into()));
        }
        let mut w = SqlWriter::new(ex.dialect());
        w.push("UPDATE ");
        w.ident(M::TABLE_NAME);
        w.push(" SET ");
        for (i, a) in self.sets.iter().enumerate() {
            if i > 0 {
                w.push(", ");
            }
            match a {
                Assignment::Set(col, v, numeric) => {
                    let mut v = v.clone();
                    if let Some((precision, scale)) = *numeric {
                        crate::numeric::conform(M::TABLE_NAME, col, precision, scale, &mut v)?;
                    }
                    w.ident(col);
                    w.push(" = ");
                    w.bind(v);
                }
                Assignment::Add(col, v) => {
                    w.ident(col);
                    w.push(" = ");
                    w.ident(col);
                    w.push(" + ");
                    w.bind(v.clone());
                }
            }
        }
        let filter: Vec<CondNode> = self.filter.iter().cloned().collect();
        render_where(&filter, " WHERE ", &mut w);
        let route = route_of::<M>(&self.filter);
        let (sql, params) = w.finish();
        Ok(ex.__exec(Stmt::write(sql, params).on_table(&M::TABLE).routed(route)).await?.rows_affected)
    }
}

/// `DELETE … WHERE …`; see [`Model::delete_where`].
pub struct DeleteWhere<M: Model> {
    filter: Option<CondNode>,
    _p: PhantomData<fn() -> M>,
}

impl<M: Model> DeleteWhere<M> {
    pub(crate) fn new(filter: Option<CondNode>) -> DeleteWhere<M> {
        DeleteWhere { filter, _p: PhantomData }
    }

    /// Runs it; the number of rows deleted.
    pub async fn execute(self, ex: &(impl Executor + ?Sized)) -> Result<u64> {
        let mut w = SqlWriter::new(ex.dialect());
        w.push("DELETE FROM ");
        w.ident(M::TABLE_NAME);
        let filter: Vec<CondNode> = self.filter.iter().cloned().collect();
        render_where(&filter, " WHERE ", &mut w);
        let route = route_of::<M>(&self.filter);
        let (sql, params) = w.finish();
        Ok(ex.__exec(Stmt::write(sql, params).on_table(&M::TABLE).routed(route)).await?.rows_affected)
    }
}

fn route_of<M: Model>(filter: &Option<CondNode>) -> Option<Route> {
    let Distribution::Sharded { column, .. } = M::TABLE.distribution else { return None };
    let values = filter.as_ref()?.pinned_values(M::TABLE_NAME, column)?;
    Some(Route { table: M::TABLE_NAME, column, values })
}

pub(crate) fn cond_node<M>(cond: Cond<M>) -> CondNode {
    cond.node
}
