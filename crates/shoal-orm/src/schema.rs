//! What a table looks like: as a model declares it and as a database has it.
//!
//! ```text
//!   #[derive(Model)] ──▶ TableDef (const, &'static str)  ──to_schema()──┐
//!                                                                      ├─▶ diff ─▶ migration SQL
//!   live database   ──introspect (migrate/introspect.rs)──▶ TableSchema ┘
//! ```
//!
//! [`TableDef`] is the derive's output, a constant. [`TableSchema`] is the
//! owned form both sides are compared in; the dialect renders DDL from it.

use crate::value::ColumnType;

/// How Shoal places a table's rows (ignored by the other backends).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Distribution<S = &'static str> {
    /// Whatever the server does by default (single group today).
    Default,
    /// Hash-distributed by this column into `shards` hash ranges (the
    /// server's default, one, when `None`; more are split off online).
    Sharded { column: S, shards: Option<u32> },
    /// Copied to every shard.
    Reference,
}

/// Referential action of a foreign key on delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FkAction {
    NoAction,
    Restrict,
    Cascade,
    SetNull,
}

/// A model's table, as its derive declares it.
#[derive(Debug)]
pub struct TableDef {
    pub name: &'static str,
    pub columns: &'static [ColumnDef],
    pub primary_key: &'static [&'static str],
    pub indexes: &'static [IndexDef],
    pub foreign_keys: &'static [ForeignKeyDef],
    pub checks: &'static [CheckDef],
    pub distribution: Distribution,
}

/// One column of a model.
#[derive(Debug)]
pub struct ColumnDef {
    pub name: &'static str,
    /// The Rust field it comes from.
    pub field: &'static str,
    pub ty: ColumnType,
    pub nullable: bool,
    pub primary_key: bool,
    pub auto_increment: bool,
    /// A SQL expression written by the model's author (DDL only).
    pub default: Option<&'static str>,
    pub max_length: Option<u32>,
    /// `NUMERIC(precision, scale)` of a decimal column; `None`: unconstrained.
    pub numeric: Option<(u32, u32)>,
}

/// An index or unique constraint (both are unique indexes in the database,
/// which every backend can add and drop without rebuilding the table).
#[derive(Debug)]
pub struct IndexDef {
    pub name: &'static str,
    pub columns: &'static [&'static str],
    pub unique: bool,
}

/// A foreign key, declared by a `belongs_to` relation.
#[derive(Debug)]
pub struct ForeignKeyDef {
    pub name: &'static str,
    pub columns: &'static [&'static str],
    pub ref_table: &'static str,
    pub ref_columns: &'static [&'static str],
    pub on_delete: FkAction,
}

/// A named CHECK constraint.
#[derive(Debug)]
pub struct CheckDef {
    pub name: &'static str,
    pub sql: &'static str,
}

impl TableDef {
    pub fn column(&self, name: &str) -> Option<&ColumnDef> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The column names in declaration order (the order rows are decoded in).
    pub fn column_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.columns.iter().map(|c| c.name)
    }

    /// The unique constraint (or primary key) over exactly these columns,
    /// used to name SQLite's unique violations, which name only columns.
    pub fn unique_constraint_on(&self, columns: &[&str]) -> Option<String> {
        let same = |a: &[&str]| a.len() == columns.len() && a.iter().all(|c| columns.contains(c));
        if same(self.primary_key) {
            return Some(format!("{}_pkey", self.name));
        }
        self.indexes.iter().find(|i| i.unique && same(i.columns)).map(|i| i.name.to_string())
    }

    /// The owned form, for diffing and DDL.
    pub fn to_schema(&self) -> TableSchema {
        let s = |v: &[&str]| v.iter().map(|c| c.to_string()).collect::<Vec<_>>();
        TableSchema {
            name: self.name.into(),
            columns: self
                .columns
                .iter()
                .map(|c| ColumnSchema {
                    name: c.name.into(),
                    ty: c.ty,
                    nullable: c.nullable,
                    auto_increment: c.auto_increment,
                    default: c.default.map(str::to_string),
                    max_length: c.max_length,
                    numeric: c.numeric,
                })
                .collect(),
            primary_key: s(self.primary_key),
            indexes: self
                .indexes
                .iter()
                .map(|i| IndexSchema { name: i.name.into(), columns: s(i.columns), unique: i.unique })
                .collect(),
            foreign_keys: self
                .foreign_keys
                .iter()
                .map(|f| ForeignKeySchema {
                    name: f.name.into(),
                    columns: s(f.columns),
                    ref_table: f.ref_table.into(),
                    ref_columns: s(f.ref_columns),
                    on_delete: f.on_delete,
                })
                .collect(),
            checks: self.checks.iter().map(|c| CheckSchema { name: c.name.into(), sql: c.sql.into() }).collect(),
            distribution: match &self.distribution {
                Distribution::Default => Distribution::Default,
                Distribution::Sharded { column, shards } => {
                    Distribution::Sharded { column: column.to_string(), shards: *shards }
                }
                Distribution::Reference => Distribution::Reference,
            },
        }
    }
}

/// A table, owned: from a model or from the live database.
#[derive(Clone, Debug, PartialEq)]
pub struct TableSchema {
    pub name: String,
    pub columns: Vec<ColumnSchema>,
    pub primary_key: Vec<String>,
    pub indexes: Vec<IndexSchema>,
    pub foreign_keys: Vec<ForeignKeySchema>,
    pub checks: Vec<CheckSchema>,
    pub distribution: Distribution<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ColumnSchema {
    pub name: String,
    pub ty: ColumnType,
    pub nullable: bool,
    pub auto_increment: bool,
    pub default: Option<String>,
    pub max_length: Option<u32>,
    /// `NUMERIC(precision, scale)` of a decimal column; `None`: unconstrained.
    pub numeric: Option<(u32, u32)>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct IndexSchema {
    pub name: String,
    pub columns: Vec<String>,
    pub unique: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ForeignKeySchema {
    pub name: String,
    pub columns: Vec<String>,
    pub ref_table: String,
    pub ref_columns: Vec<String>,
    pub on_delete: FkAction,
}

#[derive(Clone, Debug, PartialEq)]
pub struct CheckSchema {
    pub name: String,
    pub sql: String,
}

impl TableSchema {
    pub fn column(&self, name: &str) -> Option<&ColumnSchema> {
        self.columns.iter().find(|c| c.name == name)
    }
}
