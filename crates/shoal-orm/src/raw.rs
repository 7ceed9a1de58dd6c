//! Raw SQL, only as the `sql!` macro builds it.
//!
//! A [`RawSql`] is a list of compile-time text fragments with one bound
//! value between each pair. Its constructor is hidden and takes
//! `&'static` fragments, which is what a string literal gives and what a
//! runtime-built string does not: the type has no way to receive user text
//! as SQL. Rendering spells each hole in the backend's placeholder syntax.
//!
//! ```
//! # use shoal_orm::{sql, RawSql};
//! let name = "Robert'); DROP TABLE students;--";
//! let q: RawSql = sql!("SELECT id FROM students WHERE name = {name}");
//! assert_eq!(q.text_with_placeholders(shoal_orm::Dialect::Postgres), "SELECT id FROM students WHERE name = $1");
//! ```

use futures::stream::BoxStream;
use futures::StreamExt;

use crate::db::{Executor, Route, Stmt};
use crate::dialect::{Dialect, SqlWriter};
use crate::error::{Error, Result};
use crate::expr::Column;
use crate::model::Model;
use crate::model::{FromRow, Row};
use crate::value::Bind;
use crate::value::{SqlType, Value};

/// SQL text from a literal plus the values bound into its holes.
#[derive(Clone, Debug)]
pub struct RawSql {
    parts: &'static [&'static str],
    values: Vec<Value>,
    route: Option<Route>,
}

impl RawSql {
    #[doc(hidden)]
    pub fn __new(parts: &'static [&'static str], values: Vec<Value>) -> RawSql {
        debug_assert_eq!(parts.len(), values.len() + 1, "sql! emits one more fragment than values");
        RawSql { parts, values, route: None }
    }

    /// Declares the shard key value this statement pins, so Shoal can route
    /// it like a builder query (`sql!("… WHERE id = {id}").on_shard(User::ID, id)`).
    /// The ORM cannot see inside raw SQL; saying so is the author's promise.
    pub fn on_shard<M: Model, T: SqlType>(mut self, column: Column<M, T>, value: impl Bind<T>) -> RawSql {
        self.route = Some(Route { table: column.table(), column: column.name(), values: vec![value.into_value()] });
        self
    }

    pub(crate) fn render_into(&self, w: &mut SqlWriter) {
        for (i, part) in self.parts.iter().enumerate() {
            w.push(part);
            if let Some(v) = self.values.get(i) {
                w.bind(v.clone());
            }
        }
    }

    /// The text as a backend would receive it (for logs and tests).
    pub fn text_with_placeholders(&self, dialect: Dialect) -> String {
        let mut w = SqlWriter::new(dialect);
        self.render_into(&mut w);
        w.finish().0
    }

    /// The bound values, in order.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    fn stmt(&self, dialect: Dialect, read: bool) -> Stmt {
        let mut w = SqlWriter::new(dialect);
        self.render_into(&mut w);
        let (sql, params) = w.finish();
        let stmt = if read { Stmt::read(sql, params) } else { Stmt::write(sql, params) };
        stmt.routed(self.route.clone())
    }

    /// Runs a statement that returns no rows; the number of rows affected.
    pub async fn execute(&self, ex: &(impl Executor + ?Sized)) -> Result<u64> {
        Ok(ex.__exec(self.stmt(ex.dialect(), false)).await?.rows_affected)
    }

    /// All rows, decoded by [`FromRow`] (by name for structs, by position
    /// for tuples).
    pub async fn fetch_all<T: FromRow>(&self, ex: &(impl Executor + ?Sized)) -> Result<Vec<T>> {
        let rows = ex.__fetch(self.stmt(ex.dialect(), true)).await?;
        rows.into_rows().map(|mut r| T::from_row(&mut r)).collect()
    }

    /// The first row, or `None`.
    pub async fn fetch_optional<T: FromRow>(&self, ex: &(impl Executor + ?Sized)) -> Result<Option<T>> {
        let rows = ex.__fetch(self.stmt(ex.dialect(), true)).await?;
        rows.into_rows().next().map(|mut r| T::from_row(&mut r)).transpose()
    }

    /// The first row; [`Error::NotFound`] when there is none.
    pub async fn fetch_one<T: FromRow>(&self, ex: &(impl Executor + ?Sized)) -> Result<T> {
        self.fetch_optional(ex)
            .await?
            .ok_or_else(|| Error::NotFound { table: "(raw query)".into(), what: "the query".into() })
    }

    /// The first column of the first row.
    pub async fn scalar<T: SqlType>(&self, ex: &(impl Executor + ?Sized)) -> Result<T> {
        let row: Option<Row> = ex.__fetch(self.stmt(ex.dialect(), true)).await?.into_rows().next();
        match row {
            Some(r) => r.get_at(0),
            None => Err(Error::NotFound { table: "(raw query)".into(), what: "the query".into() }),
        }
    }

    /// Rows as they arrive, without holding the whole result in memory.
    pub fn stream<T: FromRow>(&self, ex: &(impl Executor + ?Sized)) -> BoxStream<'static, Result<T>> {
        ex.__stream(self.stmt(ex.dialect(), true)).map(|r| r.and_then(|mut row| T::from_row(&mut row))).boxed()
    }
}
