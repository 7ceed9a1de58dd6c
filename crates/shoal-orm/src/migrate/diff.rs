//! Comparing the models with the live schema, and the SQL that reconciles
//! them in both directions.
//!
//! ```text
//!   desired (models)  ─┐
//!                      ├─ renames (explicit hints only) ─ compare ─▶ Plan { up: [sql], down: [sql], notes }
//!   live (database)   ─┘
//! ```
//!
//! What is compared: tables (added, dropped), columns (added, dropped),
//! indexes and unique constraints (by name), foreign keys (by columns and
//! target, since SQLite does not name them), CHECK constraints (by name).
//! A table or column missing on one side is never guessed to be a rename:
//! a rename happens only when a [`Rename`] hint says so.
//!
//! What is reported but not migrated (a `-- NOTE` line in the file): a
//! column whose type or nullability changed, and a Shoal table whose
//! distribution changed — those need data-aware, hand-written steps.
//!
//! SQLite cannot add or drop constraints on an existing table, nor add a
//! NOT NULL column without a default, nor drop a column that a key uses; for
//! those the table is rebuilt (create the new shape, copy the common
//! columns, drop, rename), which the runner wraps with foreign-key checks
//! turned off and a `foreign_key_check` before commit.

use std::collections::{BTreeMap, BTreeSet};

use crate::dialect::Dialect;
use crate::schema::{ForeignKeySchema, TableSchema};

/// An explicit rename: without one, a missing table or column is dropped
/// and a new one added.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rename {
    Table { from: String, to: String },
    Column { table: String, from: String, to: String },
}

impl Rename {
    pub fn table(from: &str, to: &str) -> Rename {
        Rename::Table { from: from.into(), to: to.into() }
    }
    /// `table` is the table's name after any table rename.
    pub fn column(table: &str, from: &str, to: &str) -> Rename {
        Rename::Column { table: table.into(), from: from.into(), to: to.into() }
    }
}

/// The statements of one migration, both ways.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub up: Vec<String>,
    pub down: Vec<String>,
    /// Differences found but not migrated (see the module docs).
    pub notes: Vec<String>,
    /// True when the up steps rebuild a SQLite table (the runner turns
    /// foreign-key enforcement off around them).
    pub rebuilds: bool,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.up.is_empty() && self.notes.is_empty()
    }
}

/// Which differences a diff acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Everything: for reviewed migration files.
    Full,
    /// Only additions (tables, columns, indexes, keys): for
    /// `Db::sync_schema`, which runs without review and so never drops.
    AdditiveOnly,
}

fn same_fk(a: &ForeignKeySchema, b: &ForeignKeySchema) -> bool {
    // MySQL reports the default action as RESTRICT; outside deferred
    // constraints it behaves as NO ACTION.
    let action = |f: &ForeignKeySchema| match f.on_delete {
        crate::schema::FkAction::Restrict => crate::schema::FkAction::NoAction,
        a => a,
    };
    a.columns == b.columns && a.ref_table == b.ref_table && a.ref_columns == b.ref_columns && action(a) == action(b)
}

/// Orders tables so that every table comes after the tables it references.
fn creation_order<'a>(tables: &[&'a TableSchema]) -> Vec<&'a TableSchema> {
    let names: BTreeSet<&str> = tables.iter().map(|t| t.name.as_str()).collect();
    let mut done: BTreeSet<&str> = BTreeSet::new();
    let mut out = Vec::new();
    let mut pending: Vec<&TableSchema> = tables.to_vec();
    while !pending.is_empty() {
        let before = pending.len();
        pending.retain(|t| {
            let ready = t.foreign_keys.iter().all(|f| {
                f.ref_table == t.name || !names.contains(f.ref_table.as_str()) || done.contains(f.ref_table.as_str())
            });
            if ready {
                done.insert(&t.name);
                out.push(*t);
            }
            !ready
        });
        if pending.len() == before {
            // A reference cycle: emit the rest as declared (the database
            // reports the cycle if it cannot create them).
            out.append(&mut pending);
        }
    }
    out
}

fn create_statements(d: Dialect, t: &TableSchema) -> Vec<String> {
    let mut out = vec![d.create_table(t)];
    out.extend(t.indexes.iter().map(|i| d.create_index(&t.name, i)));
    out
}

/// SQLite's table rebuild from `old` to `new` (same name).
fn rebuild(d: Dialect, old: &TableSchema, new: &TableSchema) -> Vec<String> {
    let tmp = format!("shoal_new_{}", new.name);
    let mut shape = new.clone();
    shape.name = tmp.clone();
    let common: Vec<String> =
        new.columns.iter().filter(|c| old.column(&c.name).is_some()).map(|c| d.ident(&c.name)).collect();
    let mut out = vec![d.create_table(&shape)];
    if !common.is_empty() {
        out.push(format!(
            "INSERT INTO {} ({cols}) SELECT {cols} FROM {}",
            d.ident(&tmp),
            d.ident(&old.name),
            cols = common.join(", ")
        ));
    }
    out.push(d.drop_table(&old.name));
    out.push(d.rename_table(&tmp, &new.name));
    out.extend(new.indexes.iter().map(|i| d.create_index(&new.name, i)));
    out
}

/// The plan that turns `live` into `desired`.
pub fn diff(
    dialect: Dialect,
    desired: &[TableSchema],
    live: &BTreeMap<String, TableSchema>,
    renames: &[Rename],
    scope: Scope,
) -> Plan {
    let d = dialect;
    let mut plan = Plan::default();
    let mut live = live.clone();
    // Each step is (up statements, down statements); down runs the steps
    // in reverse, so every undo meets the schema its step left behind.
    let mut steps: Vec<(Vec<String>, Vec<String>)> = Vec::new();

    // Renames first, so the rest of the diff sees the new names.
    for r in renames {
        match r {
            Rename::Table { from, to } => {
                if let Some(mut t) = live.remove(from) {
                    steps.push((vec![d.rename_table(from, to)], vec![d.rename_table(to, from)]));
                    t.name = to.clone();
                    live.insert(to.clone(), t);
                }
            }
            Rename::Column { table, from, to } => {
                let Some(t) = live.get_mut(table) else { continue };
                let Some(c) = t.columns.iter_mut().find(|c| c.name == *from) else { continue };
                c.name = to.clone();
                steps.push((vec![d.rename_column(table, from, to)], vec![d.rename_column(table, to, from)]));
                let lists = t
                    .indexes
                    .iter_mut()
                    .map(|i| &mut i.columns)
                    .chain(t.foreign_keys.iter_mut().map(|f| &mut f.columns))
                    .chain(std::iter::once(&mut t.primary_key));
                for list in lists {
                    for col in list.iter_mut().filter(|c| *c == from) {
                        *col = to.clone();
                    }
                }
            }
        }
    }

    let desired_names: BTreeSet<&str> = desired.iter().map(|t| t.name.as_str()).collect();
    let new_tables: Vec<&TableSchema> = desired.iter().filter(|t| !live.contains_key(&t.name)).collect();
    let order = creation_order(&new_tables);
    steps.push((
        order.iter().flat_map(|t| create_statements(d, t)).collect(),
        order.iter().rev().map(|t| d.drop_table(&t.name)).collect(),
    ));

    for want in desired {
        let Some(have) = live.get(&want.name) else { continue };
        steps.push(diff_table(d, want, have, scope, &mut plan));
    }

    if scope == Scope::Full {
        let dropped: Vec<&TableSchema> = live.values().filter(|t| !desired_names.contains(t.name.as_str())).collect();
        let order = creation_order(&dropped);
        steps.push((
            order.iter().rev().map(|t| d.drop_table(&t.name)).collect(),
            order.iter().flat_map(|t| create_statements(d, t)).collect(),
        ));
    }
    for (up, _) in &steps {
        plan.up.extend(up.iter().cloned());
    }
    for (_, down) in steps.iter().rev() {
        plan.down.extend(down.iter().cloned());
    }
    plan
}

/// One table's changes as (up, down), noting what it does not migrate.
fn diff_table(
    d: Dialect,
    want: &TableSchema,
    have: &TableSchema,
    scope: Scope,
    plan: &mut Plan,
) -> (Vec<String>, Vec<String>) {
    let name = &want.name;
    let mut up = Vec::new();
    let mut down = Vec::new();
    let mut needs_rebuild = false;

    for c in &want.columns {
        match have.column(&c.name) {
            None => {
                if d == Dialect::Sqlite && (!c.nullable && c.default.is_none() || c.auto_increment) {
                    needs_rebuild = true;
                } else {
                    if !c.nullable && c.default.is_none() {
                        plan.notes.push(format!(
                            "{name}.{} is NOT NULL without a default: adding it fails if the table has rows \
                             (give it #[model(default = \"…\")])",
                            c.name
                        ));
                    }
                    up.push(d.add_column(want, c));
                    down.push(d.drop_column(name, &c.name));
                }
            }
            Some(live) => {
                if !d.same_type(c, live) {
                    plan.notes.push(format!(
                        "{name}.{} changed type ({} in the database, {} in the model); not migrated",
                        c.name,
                        d.spelled_type(live, false),
                        d.spelled_type(c, false)
                    ));
                }
                if c.nullable != live.nullable && !want.primary_key.contains(&c.name) {
                    plan.notes.push(format!(
                        "{name}.{} is {} in the model but {} in the database; not migrated",
                        c.name,
                        if c.nullable { "nullable" } else { "NOT NULL" },
                        if live.nullable { "nullable" } else { "NOT NULL" }
                    ));
                }
            }
        }
    }
    if scope == Scope::Full {
        for c in &have.columns {
            if want.column(&c.name).is_none() {
                let in_key = have.primary_key.contains(&c.name)
                    || have.indexes.iter().any(|i| i.columns.contains(&c.name))
                    || have.foreign_keys.iter().any(|f| f.columns.contains(&c.name));
                if d == Dialect::Sqlite && in_key {
                    needs_rebuild = true;
                } else {
                    // Indexes on the column go with it; drop them first where
                    // the backend would otherwise refuse.
                    up.push(d.drop_column(name, &c.name));
                    down.push(d.add_column(have, c));
                }
            }
        }
    }

    // Indexes by name.
    for i in &want.indexes {
        match have.indexes.iter().find(|h| h.name == i.name) {
            Some(h) if h.columns == i.columns && h.unique == i.unique => {}
            Some(h) => {
                if scope == Scope::Full {
                    up.push(d.drop_index(name, &h.name));
                    up.push(d.create_index(name, i));
                    down.push(d.drop_index(name, &i.name));
                    down.push(d.create_index(name, h));
                }
            }
            None => {
                up.push(d.create_index(name, i));
                down.push(d.drop_index(name, &i.name));
            }
        }
    }
    if scope == Scope::Full {
        for h in &have.indexes {
            if !want.indexes.iter().any(|i| i.name == h.name) {
                let col_dropped = h.columns.iter().any(|c| want.column(c).is_none());
                if !col_dropped || d != Dialect::Sqlite {
                    up.insert(0, d.drop_index(name, &h.name));
                    down.push(d.create_index(name, h));
                }
            }
        }
    }

    // Foreign keys by shape.
    for f in &want.foreign_keys {
        if !have.foreign_keys.iter().any(|h| same_fk(h, f)) {
            match (d.add_foreign_key(name, f), d.drop_foreign_key(name, &f.name)) {
                (Some(add), Some(drop)) => {
                    up.push(add);
                    down.push(drop);
                }
                _ => needs_rebuild = true,
            }
        }
    }
    if scope == Scope::Full {
        for h in &have.foreign_keys {
            if !want.foreign_keys.iter().any(|f| same_fk(h, f)) {
                match (d.drop_foreign_key(name, &h.name), d.add_foreign_key(name, h)) {
                    (Some(drop), Some(add)) => {
                        up.insert(0, drop);
                        down.push(add);
                    }
                    _ => needs_rebuild = true,
                }
            }
        }
    }

    // Checks by name.
    for c in &want.checks {
        if !have.checks.iter().any(|h| h.name == c.name) {
            match (d.add_check(name, &c.name, &c.sql), d.drop_check(name, &c.name)) {
                (Some(add), Some(drop)) => {
                    up.push(add);
                    down.push(drop);
                }
                _ => needs_rebuild = true,
            }
        }
    }
    if scope == Scope::Full {
        for h in &have.checks {
            if !want.checks.iter().any(|c| c.name == h.name) {
                match d.drop_check(name, &h.name) {
                    Some(drop) => {
                        up.push(drop);
                        if let Some(add) = d.add_check(name, &h.name, h.sql.trim_start_matches("CHECK ")) {
                            down.push(add);
                        }
                    }
                    None => needs_rebuild = true,
                }
            }
        }
    }

    if d == Dialect::Shoal && !same_placement(&want.distribution, &have.distribution) {
        plan.notes.push(format!(
            "{name}: distribution differs ({:?} in the database, {:?} in the model); Shoal cannot change a table's \
             distribution in place: create a table with the new one, copy the rows, and swap the names in a \
             hand-written migration",
            have.distribution, want.distribution
        ));
    }

    if needs_rebuild {
        let mut target = want.clone();
        if scope == Scope::AdditiveOnly {
            // Keep the live columns the model no longer has: never drop here.
            for c in &have.columns {
                if target.column(&c.name).is_none() {
                    target.columns.push(c.clone());
                }
            }
        }
        plan.rebuilds = true;
        (rebuild(d, have, &target), rebuild(d, &target, have))
    } else {
        down.reverse();
        (up, down)
    }
}

/// Whether a model's distribution is the live table's: the same kind, and
/// for a sharded table the same key. The shard count is not compared: the
/// model names the count a table starts with, and shards split online.
fn same_placement(want: &crate::schema::Distribution<String>, have: &crate::schema::Distribution<String>) -> bool {
    use crate::schema::Distribution::*;
    match (want, have) {
        (Sharded { column: a, .. }, Sharded { column: b, .. }) => a == b,
        (Default, Default) | (Reference, Reference) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{ColumnSchema, Distribution, IndexSchema};
    use crate::value::ColumnType;

    fn table(name: &str, cols: &[(&str, bool)]) -> TableSchema {
        TableSchema {
            name: name.into(),
            columns: cols
                .iter()
                .map(|(c, nullable)| ColumnSchema {
                    name: c.to_string(),
                    ty: ColumnType::BigInt,
                    nullable: *nullable,
                    auto_increment: false,
                    default: None,
                    max_length: None,
                    numeric: None,
                })
                .collect(),
            primary_key: vec![cols[0].0.into()],
            indexes: vec![],
            foreign_keys: vec![],
            checks: vec![],
            distribution: Distribution::Default,
        }
    }

    #[test]
    fn a_missing_column_is_added_and_dropped_back() {
        let want = table("t", &[("id", false), ("extra", true)]);
        let live: BTreeMap<_, _> = [("t".to_string(), table("t", &[("id", false)]))].into();
        let plan = diff(Dialect::Postgres, &[want], &live, &[], Scope::Full);
        assert_eq!(plan.up, vec![r#"ALTER TABLE "t" ADD COLUMN "extra" BIGINT"#]);
        assert_eq!(plan.down, vec![r#"ALTER TABLE "t" DROP COLUMN "extra""#]);
    }

    #[test]
    fn renames_happen_only_by_hint() {
        let want = table("t", &[("id", false), ("new_name", true)]);
        let live: BTreeMap<_, _> = [("t".to_string(), table("t", &[("id", false), ("old_name", true)]))].into();
        let guessed = diff(Dialect::Postgres, std::slice::from_ref(&want), &live, &[], Scope::Full);
        assert!(guessed.up.iter().any(|s| s.contains("DROP COLUMN \"old_name\"")), "{:?}", guessed.up);
        let hinted =
            diff(Dialect::Postgres, &[want], &live, &[Rename::column("t", "old_name", "new_name")], Scope::Full);
        assert_eq!(hinted.up, vec![r#"ALTER TABLE "t" RENAME COLUMN "old_name" TO "new_name""#]);
    }

    #[test]
    fn additive_scope_never_drops() {
        let want = table("t", &[("id", false)]);
        let live: BTreeMap<_, _> = [
            ("t".to_string(), table("t", &[("id", false), ("legacy", true)])),
            ("other".to_string(), table("other", &[("id", false)])),
        ]
        .into();
        assert!(diff(Dialect::Postgres, &[want], &live, &[], Scope::AdditiveOnly).up.is_empty());
    }

    #[test]
    fn sqlite_rebuilds_for_a_not_null_column() {
        let mut want = table("t", &[("id", false), ("n", false)]);
        want.indexes.push(IndexSchema { name: "t_n_idx".into(), columns: vec!["n".into()], unique: false });
        let live: BTreeMap<_, _> = [("t".to_string(), table("t", &[("id", false)]))].into();
        let plan = diff(Dialect::Sqlite, &[want], &live, &[], Scope::Full);
        assert!(plan.rebuilds);
        assert!(plan.up[0].starts_with("CREATE TABLE \"shoal_new_t\""), "{:?}", plan.up);
        assert_eq!(plan.up.last().map(String::as_str), Some(r#"CREATE INDEX "t_n_idx" ON "t" ("n")"#));
    }

    #[test]
    fn tables_are_created_after_the_tables_they_reference() {
        let mut child = table("child", &[("id", false), ("parent_id", false)]);
        child.foreign_keys.push(ForeignKeySchema {
            name: "child_parent_id_fkey".into(),
            columns: vec!["parent_id".into()],
            ref_table: "parent".into(),
            ref_columns: vec!["id".into()],
            on_delete: crate::schema::FkAction::NoAction,
        });
        let parent = table("parent", &[("id", false)]);
        let plan = diff(Dialect::Postgres, &[child, parent], &BTreeMap::new(), &[], Scope::Full);
        assert!(plan.up[0].contains("\"parent\""), "{:?}", plan.up);
        assert!(plan.down[0].contains("\"child\""), "{:?}", plan.down);
    }
}
