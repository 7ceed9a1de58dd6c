//! The typed schema: tables, columns, indexes, views and sequences.
//!
//! SQLite only knows storage classes; the [`Catalog`] remembers the
//! PostgreSQL type of every column, the constraint names PostgreSQL would
//! report, and a stable OID per relation (for RowDescription's `table_oid`).
//! The executor persists it as JSON inside SQLite in the same transaction as
//! the DDL that changed it, so a rolled-back `CREATE TABLE` also rolls back
//! its catalog entry.
//!
//! There is one schema, `public`. Names are stored folded the way PostgreSQL
//! folds them (unquoted identifiers lower-cased).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use shoal_common::DataType;

/// The first OID PostgreSQL hands to user objects (`FirstNormalObjectId`).
pub const FIRST_USER_OID: u32 = 16384;

/// Every relation of the database.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Catalog {
    pub tables: BTreeMap<String, Table>,
    pub indexes: BTreeMap<String, IndexDef>,
    pub views: BTreeMap<String, ViewDef>,
    /// Sequences (their state lives in the replica's `__shoal_sequences`).
    #[serde(default)]
    pub sequences: BTreeMap<String, SequenceDef>,
    /// The next OID to allocate; `0` (a default catalog) means [`FIRST_USER_OID`].
    pub next_oid: u32,
}

/// A table and its constraints.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Table {
    pub name: String,
    pub oid: u32,
    pub columns: Vec<ColumnDef>,
    /// Primary key columns (empty when none); its constraint is `<table>_pkey`.
    pub primary_key: Vec<String>,
    pub unique: Vec<UniqueDef>,
    pub foreign_keys: Vec<ForeignKeyDef>,
    pub checks: Vec<CheckDef>,
    /// How the table's rows are spread over shards (`CREATE TABLE … WITH (…)`).
    #[serde(default)]
    pub distribution: Distribution,
}

/// How a table's rows are placed (DESIGN.md §6).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Distribution {
    /// Lives in one group (the default).
    #[default]
    Local,
    /// Split by the hash of `column` into `shards` equal hash ranges
    /// (`WITH (shard_key = 'column', shards = n)`); see `shoal_common::shard`.
    Hash { column: String, shards: u32 },
    /// Copied to every shard (`WITH (reference = true)`).
    Reference,
}

impl Distribution {
    /// The name `shoal.tables.kind` shows.
    pub fn kind(&self) -> &'static str {
        match self {
            Distribution::Local => "local",
            Distribution::Hash { .. } => "distributed",
            Distribution::Reference => "reference",
        }
    }
}

/// A column with its PostgreSQL type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ColumnDef {
    pub name: String,
    pub data_type: DataType,
    pub nullable: bool,
    /// The default as PostgreSQL text (for `information_schema.columns.column_default`).
    pub default: Option<String>,
    /// The default as a SQLite expression (used for `DEFAULT` in INSERT … VALUES).
    pub sqlite_default: Option<String>,
    /// SERIAL / BIGSERIAL / IDENTITY. With `sequence` set, its values come
    /// from that owned sequence; without (catalogs written before sequences
    /// existed), from SQLite's `INTEGER PRIMARY KEY AUTOINCREMENT`.
    pub serial: bool,
    /// `GENERATED ALWAYS AS IDENTITY`: only DEFAULT may be written into it (428C9).
    #[serde(default)]
    pub identity_always: bool,
    /// `GENERATED … AS IDENTITY` (as opposed to SERIAL, whose default is a
    /// visible `nextval(…)`).
    #[serde(default)]
    pub identity: bool,
    /// The sequence a SERIAL or identity column draws from (owned by it).
    #[serde(default)]
    pub sequence: Option<String>,
}

/// A sequence's definition (`CREATE SEQUENCE`, or made for a SERIAL/identity column).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SequenceDef {
    pub name: String,
    pub oid: u32,
    /// `smallint`, `integer` or `bigint`.
    pub data_type: DataType,
    pub start: i64,
    pub increment: i64,
    pub min: i64,
    pub max: i64,
    pub cache: i64,
    pub cycle: bool,
    /// `OWNED BY table.column`: dropped with the table or column.
    pub owned_by: Option<(String, String)>,
}

/// A `UNIQUE` constraint (not a `CREATE UNIQUE INDEX`, which is an [`IndexDef`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UniqueDef {
    pub name: String,
    pub columns: Vec<String>,
}

/// A `FOREIGN KEY`/`REFERENCES` constraint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ForeignKeyDef {
    pub name: String,
    pub columns: Vec<String>,
    pub foreign_table: String,
    pub foreign_columns: Vec<String>,
    /// `ON DELETE` action as PostgreSQL spells it (`CASCADE`, `SET NULL`, …); `None` is NO ACTION.
    #[serde(default)]
    pub on_delete: Option<String>,
    /// `ON UPDATE` action; `None` is NO ACTION.
    #[serde(default)]
    pub on_update: Option<String>,
}

impl ForeignKeyDef {
    /// `pg_constraint.confdeltype` / `confupdtype` code of an action.
    pub fn action_code(action: &Option<String>) -> &'static str {
        match action.as_deref() {
            Some("CASCADE") => "c",
            Some("RESTRICT") => "r",
            Some("SET NULL") => "n",
            Some("SET DEFAULT") => "d",
            _ => "a",
        }
    }
}

/// A `CHECK` constraint written by the user.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckDef {
    pub name: String,
    /// The expression as the user wrote it (PostgreSQL text).
    pub expr: String,
}

/// A `CREATE [UNIQUE] INDEX`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IndexDef {
    pub name: String,
    pub oid: u32,
    pub table: String,
    pub columns: Vec<String>,
    pub unique: bool,
}

/// A view: SQLite holds the translated query; we remember its output columns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ViewDef {
    pub name: String,
    pub oid: u32,
    pub columns: Vec<ViewColumn>,
    /// The PostgreSQL text of the defining query (for `pg_views.definition`).
    pub definition: String,
}

/// One output column of a view.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ViewColumn {
    pub name: String,
    pub data_type: DataType,
}

impl Catalog {
    /// The table called `name` (already folded), if any.
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.get(name)
    }

    /// The view called `name`, if any.
    pub fn view(&self, name: &str) -> Option<&ViewDef> {
        self.views.get(name)
    }

    /// True when a table, view, index or sequence already uses `name` (they share a namespace, as in `pg_class`).
    pub fn relation_exists(&self, name: &str) -> bool {
        self.tables.contains_key(name)
            || self.views.contains_key(name)
            || self.indexes.contains_key(name)
            || self.sequences.contains_key(name)
    }

    /// The sequence called `name`, if any.
    pub fn sequence(&self, name: &str) -> Option<&SequenceDef> {
        self.sequences.get(name)
    }

    /// `base`, or `base` with the lowest number appended that no relation
    /// uses (how PostgreSQL names a SERIAL column's sequence when
    /// `<table>_<column>_seq` is taken).
    pub fn free_relation_name(&self, base: &str) -> String {
        let base: String = base.chars().take(63).collect();
        if !self.relation_exists(&base) {
            return base;
        }
        (1..)
            .map(|i: u32| {
                let suffix = i.to_string();
                let keep = 63usize.saturating_sub(suffix.len());
                format!("{}{suffix}", base.chars().take(keep).collect::<String>())
            })
            .find(|n| !self.relation_exists(n))
            .unwrap_or(base)
    }

    /// Allocates the next OID.
    pub fn alloc_oid(&mut self) -> u32 {
        let oid = self.next_oid.max(FIRST_USER_OID);
        self.next_oid = oid.saturating_add(1);
        oid
    }

    /// The table owning a constraint or index called `name`, with the constraint's columns.
    pub fn constraint(&self, name: &str) -> Option<(&Table, Vec<String>)> {
        if let Some(ix) = self.indexes.get(name) {
            return self.tables.get(&ix.table).map(|t| (t, ix.columns.clone()));
        }
        self.tables.values().find_map(|t| {
            if format!("{}_pkey", t.name) == name {
                return Some((t, t.primary_key.clone()));
            }
            t.unique.iter().find(|u| u.name == name).map(|u| (t, u.columns.clone()))
        })
    }
}

impl Table {
    /// The column called `name`, with its 1-based attribute number.
    pub fn column(&self, name: &str) -> Option<(i16, &ColumnDef)> {
        self.columns.iter().enumerate().find(|(_, c)| c.name == name).map(|(i, c)| (i as i16 + 1, c))
    }

    /// Every constraint name this table uses (so generated names stay unique).
    pub fn constraint_names(&self) -> Vec<String> {
        let mut names = vec![format!("{}_pkey", self.name)];
        names.extend(self.unique.iter().map(|u| u.name.clone()));
        names.extend(self.foreign_keys.iter().map(|f| f.name.clone()));
        names.extend(self.checks.iter().map(|c| c.name.clone()));
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oids_start_at_first_user_oid_and_survive_json() {
        let mut c = Catalog::default();
        assert_eq!(c.alloc_oid(), FIRST_USER_OID);
        assert_eq!(c.alloc_oid(), FIRST_USER_OID + 1);
        let json = serde_json::to_string(&c).unwrap();
        let back: Catalog = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
    }
}
