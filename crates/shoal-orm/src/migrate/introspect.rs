//! Reading the live schema back into [`TableSchema`]s.
//!
//! | backend | tables, columns | keys, foreign keys, checks | indexes |
//! |---|---|---|---|
//! | SQLite | `pragma_table_info` | `pragma_foreign_key_list`, the table's SQL for CHECK names | `pragma_index_list/info` |
//! | PostgreSQL, Shoal | `information_schema.columns` | `pg_constraint` + `pg_get_constraintdef` | `pg_indexes` |
//! | MySQL | `information_schema.columns` | `key_column_usage`, `referential_constraints`, `check_constraints` | `statistics` |
//!
//! Only what the diff compares is read: names, portable types, nullability,
//! auto-increment, keys, indexes, foreign keys and check names. Defaults are
//! kept as the database spells them (for re-creating a dropped table) but
//! not compared, because every database rewrites them differently.

use std::collections::BTreeMap;

use crate::db::{Executor, Stmt};
use crate::dialect::Dialect;
use crate::error::{Error, Result};
use crate::model::Row;
use crate::schema::{CheckSchema, ColumnSchema, Distribution, FkAction, ForeignKeySchema, IndexSchema, TableSchema};
use crate::value::{ColumnType, Value};

/// Runs a catalog query. Catalog reads are the migrator's, not the
/// application's, so strict mode does not count them.
async fn rows(ex: &(impl Executor + ?Sized), sql: &str, params: Vec<Value>) -> Result<Vec<Row>> {
    let mut stmt = Stmt::read(sql.to_string(), params);
    stmt.batched = true;
    Ok(ex.__fetch(stmt).await?.into_rows().collect())
}

fn text(row: &Row, name: &str) -> Result<String> {
    row.get::<Option<String>>(name).map(Option::unwrap_or_default)
}

/// Every user table of the connected database (or schema), by name.
pub async fn live_schema(ex: &(impl Executor + ?Sized)) -> Result<BTreeMap<String, TableSchema>> {
    match ex.dialect() {
        Dialect::Sqlite => sqlite(ex).await,
        Dialect::Postgres => postgres(ex).await,
        Dialect::Shoal => {
            let mut tables = postgres(ex).await?;
            distributions(ex, &mut tables).await;
            Ok(tables)
        }
        Dialect::Mysql => mysql(ex).await,
    }
}

/// Shoal's placement of each table (`shoal.tables`). A server without the
/// view (another PostgreSQL behind a `shoal://` URL) leaves every table at
/// `Default`; the migrator reads the schema outside any transaction, so the
/// failed read harms nothing.
async fn distributions(ex: &(impl Executor + ?Sized), tables: &mut BTreeMap<String, TableSchema>) {
    let sql = "SELECT table_name, kind, shard_key, shard_count FROM shoal.tables";
    let Ok(list) = rows(ex, sql, vec![]).await else { return };
    for r in list {
        let (Ok(name), Ok(kind)) = (text(&r, "table_name"), text(&r, "kind")) else { continue };
        let Some(table) = tables.get_mut(&name) else { continue };
        table.distribution = match kind.as_str() {
            "distributed" => Distribution::Sharded {
                column: text(&r, "shard_key").unwrap_or_default(),
                shards: r.get::<Option<i64>>("shard_count").ok().flatten().and_then(|n| u32::try_from(n).ok()),
            },
            "reference" => Distribution::Reference,
            _ => Distribution::Default,
        };
    }
}

fn empty_table(name: String) -> TableSchema {
    TableSchema {
        name,
        columns: Vec::new(),
        primary_key: Vec::new(),
        indexes: Vec::new(),
        foreign_keys: Vec::new(),
        checks: Vec::new(),
        distribution: Distribution::Default,
    }
}

fn parse_type(dialect: Dialect, table: &str, column: &str, declared: &str) -> Result<(ColumnType, Option<u32>)> {
    dialect.parse_column_type(declared).ok_or_else(|| {
        Error::Migration(format!(
            "column {table}.{column} has type {declared}, which shoal-orm models cannot express; \
             leave the table out of the models passed to the migrator or change the column"
        ))
    })
}

fn fk_action(rule: &str) -> FkAction {
    match rule.to_ascii_uppercase().as_str() {
        "CASCADE" => FkAction::Cascade,
        "SET NULL" => FkAction::SetNull,
        "RESTRICT" => FkAction::Restrict,
        _ => FkAction::NoAction,
    }
}

/// The user tables of a SQLite database, to join with pragma functions.
const SQLITE_TABLES_FROM: &str = "sqlite_master m";
const SQLITE_TABLES_WHERE: &str = "m.type = 'table' AND m.name NOT LIKE 'sqlite_%'";

async fn sqlite(ex: &(impl Executor + ?Sized)) -> Result<BTreeMap<String, TableSchema>> {
    let mut out = BTreeMap::new();
    let mut create_sql = BTreeMap::new();
    let tables = format!(
        "SELECT m.name AS name, m.sql AS sql FROM {SQLITE_TABLES_FROM} WHERE {SQLITE_TABLES_WHERE} ORDER BY m.name"
    );
    for t in rows(ex, &tables, vec![]).await? {
        let name = text(&t, "name")?;
        create_sql.insert(name.clone(), text(&t, "sql")?);
        out.insert(name.clone(), empty_table(name));
    }
    // One query per catalog aspect for all tables (pragma table-valued
    // functions join with sqlite_master), never one per table.
    let cols = rows(
        ex,
        &format!(
            "SELECT m.name AS table_name, p.name AS name, p.type AS type, p.\"notnull\" AS not_null, \
             p.dflt_value AS dflt_value, p.pk AS pk FROM {SQLITE_TABLES_FROM} JOIN pragma_table_info(m.name) p \
             WHERE {SQLITE_TABLES_WHERE} ORDER BY m.name, p.cid"
        ),
        vec![],
    )
    .await?;
    let mut pks: BTreeMap<String, Vec<(i64, String, String)>> = BTreeMap::new();
    for c in &cols {
        let tname = text(c, "table_name")?;
        let Some(table) = out.get_mut(&tname) else { continue };
        let cname = text(c, "name")?;
        let declared = text(c, "type")?;
        let (ty, max_length) = parse_type(Dialect::Sqlite, &tname, &cname, &declared)?;
        let pk_pos: i64 = c.get("pk")?;
        if pk_pos > 0 {
            pks.entry(tname.clone()).or_default().push((pk_pos, cname.clone(), declared.clone()));
        }
        table.columns.push(ColumnSchema {
            name: cname,
            ty,
            nullable: c.get::<i64>("not_null")? == 0 && pk_pos == 0,
            auto_increment: false,
            default: c.get::<Option<String>>("dflt_value")?,
            max_length,
            numeric: Dialect::Sqlite.parse_numeric(&declared),
        });
    }
    for (tname, mut pk) in pks {
        let Some(table) = out.get_mut(&tname) else { continue };
        pk.sort();
        // Only `INTEGER PRIMARY KEY` (exactly that spelling) is the rowid.
        if let [(_, only, declared)] = pk.as_slice() {
            if declared.eq_ignore_ascii_case("INTEGER") {
                if let Some(col) = table.columns.iter_mut().find(|c| c.name == *only) {
                    col.auto_increment = true;
                }
            }
        }
        table.primary_key = pk.into_iter().map(|(_, c, _)| c).collect();
    }
    let idx = rows(
        ex,
        &format!(
            "SELECT m.name AS table_name, il.name AS index_name, il.\"unique\" AS is_unique, il.origin AS origin, \
             ii.name AS column_name FROM {SQLITE_TABLES_FROM} JOIN pragma_index_list(m.name) il \
             JOIN pragma_index_info(il.name) ii WHERE {SQLITE_TABLES_WHERE} ORDER BY m.name, il.name, ii.seqno"
        ),
        vec![],
    )
    .await?;
    for i in idx {
        let Some(table) = out.get_mut(&text(&i, "table_name")?) else { continue };
        if text(&i, "origin")? == "pk" {
            continue;
        }
        let iname = text(&i, "index_name")?;
        let column = text(&i, "column_name")?;
        match table.indexes.iter_mut().find(|x| x.name == iname) {
            Some(x) => x.columns.push(column),
            None => table.indexes.push(IndexSchema {
                name: iname,
                columns: vec![column],
                unique: i.get::<i64>("is_unique")? == 1,
            }),
        }
    }
    let fks = rows(
        ex,
        &format!(
            "SELECT m.name AS table_name, f.id AS id, f.\"table\" AS ref_table, f.\"from\" AS col, \
             f.\"to\" AS ref_col, f.on_delete AS on_delete FROM {SQLITE_TABLES_FROM} \
             JOIN pragma_foreign_key_list(m.name) f WHERE {SQLITE_TABLES_WHERE} ORDER BY m.name, f.id, f.seq"
        ),
        vec![],
    )
    .await?;
    let mut by_table: BTreeMap<String, BTreeMap<i64, ForeignKeySchema>> = BTreeMap::new();
    for f in fks {
        let id: i64 = f.get("id")?;
        let fk = by_table.entry(text(&f, "table_name")?).or_default().entry(id).or_insert_with(|| ForeignKeySchema {
            name: String::new(),
            columns: Vec::new(),
            ref_table: String::new(),
            ref_columns: Vec::new(),
            on_delete: FkAction::NoAction,
        });
        fk.ref_table = text(&f, "ref_table")?;
        fk.columns.push(text(&f, "col")?);
        fk.ref_columns.push(text(&f, "ref_col")?);
        fk.on_delete = fk_action(&text(&f, "on_delete")?);
    }
    for (tname, table) in out.iter_mut() {
        let sql = create_sql.get(tname).map(String::as_str).unwrap_or("");
        let names = constraint_names(sql, "FOREIGN KEY");
        // pragma_foreign_key_list numbers keys from the last declared.
        let keys = by_table.remove(tname).unwrap_or_default();
        let count = keys.len();
        for (n, (_, mut fk)) in keys.into_iter().enumerate() {
            fk.name =
                names.get(count - 1 - n).cloned().unwrap_or_else(|| format!("{tname}_{}_fkey", fk.columns.join("_")));
            table.foreign_keys.push(fk);
        }
        table.checks =
            constraint_names(sql, "CHECK").into_iter().map(|n| CheckSchema { name: n, sql: String::new() }).collect();
    }
    Ok(out)
}

/// Names of `CONSTRAINT "name" <kind>` clauses in a CREATE TABLE statement.
fn constraint_names(create_sql: &str, kind: &str) -> Vec<String> {
    let mut out = Vec::new();
    let upper = create_sql.to_ascii_uppercase();
    let mut from = 0;
    while let Some(pos) = upper[from..].find("CONSTRAINT") {
        let start = from + pos + "CONSTRAINT".len();
        from = start;
        let rest = create_sql[start..].trim_start();
        let (name, after) = match rest.chars().next() {
            Some(q @ ('"' | '`' | '[')) => {
                let close = if q == '[' { ']' } else { q };
                match rest[1..].find(close) {
                    Some(end) => (rest[1..1 + end].to_string(), &rest[end + 2..]),
                    None => continue,
                }
            }
            Some(_) => {
                let end = rest.find(|c: char| c.is_whitespace()).unwrap_or(rest.len());
                (rest[..end].to_string(), &rest[end..])
            }
            None => continue,
        };
        if after.trim_start().to_ascii_uppercase().starts_with(kind) {
            out.push(name);
        }
    }
    out
}

/// Column names inside the first `(…)` of a constraint or index definition.
fn paren_list(def: &str) -> Vec<String> {
    let Some(open) = def.find('(') else { return Vec::new() };
    let Some(close) = def[open..].find(')') else { return Vec::new() };
    def[open + 1..open + close]
        .split(',')
        .map(|c| c.trim().trim_matches('"').to_string())
        .filter(|c| !c.is_empty())
        .collect()
}

async fn postgres(ex: &(impl Executor + ?Sized)) -> Result<BTreeMap<String, TableSchema>> {
    let dialect = ex.dialect();
    let mut out: BTreeMap<String, TableSchema> = BTreeMap::new();
    let cols = rows(
        ex,
        "SELECT c.table_name, c.column_name, c.data_type, c.character_maximum_length, c.is_nullable, \
         c.numeric_precision, c.numeric_scale, \
         c.column_default, c.is_identity \
         FROM information_schema.columns c JOIN information_schema.tables t \
         ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
         WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE' \
         ORDER BY c.table_name, c.ordinal_position",
        vec![],
    )
    .await?;
    for c in cols {
        let tname = text(&c, "table_name")?;
        let cname = text(&c, "column_name")?;
        let declared = text(&c, "data_type")?;
        let (ty, _) = parse_type(dialect, &tname, &cname, &declared)?;
        let max_length = c.get::<Option<i64>>("character_maximum_length")?.and_then(|n| u32::try_from(n).ok());
        let default = c.get::<Option<String>>("column_default")?;
        let numeric = match (
            c.get::<Option<i64>>("numeric_precision")?.and_then(|n| u32::try_from(n).ok()),
            c.get::<Option<i64>>("numeric_scale")?.and_then(|n| u32::try_from(n).ok()),
        ) {
            (Some(p), Some(s)) if ty == ColumnType::Decimal => Some((p, s)),
            _ => None,
        };
        let auto = text(&c, "is_identity")? == "YES" || default.as_deref().is_some_and(|d| d.starts_with("nextval("));
        out.entry(tname.clone()).or_insert_with(|| empty_table(tname)).columns.push(ColumnSchema {
            name: cname,
            ty,
            nullable: text(&c, "is_nullable")? == "YES",
            auto_increment: auto,
            default: if auto { None } else { default },
            max_length: if ty == ColumnType::Text { max_length } else { None },
            numeric,
        });
    }
    let cons = rows(
        ex,
        "SELECT cl.relname AS table_name, co.conname AS name, co.contype AS kind, \
         pg_get_constraintdef(co.oid) AS def \
         FROM pg_constraint co JOIN pg_class cl ON cl.oid = co.conrelid \
         JOIN pg_namespace n ON n.oid = cl.relnamespace \
         WHERE n.nspname = current_schema() ORDER BY cl.relname, co.conname",
        vec![],
    )
    .await?;
    let mut constraint_index_names = Vec::new();
    for c in cons {
        let Some(table) = out.get_mut(&text(&c, "table_name")?) else { continue };
        let name = text(&c, "name")?;
        let def = text(&c, "def")?;
        match text(&c, "kind")?.as_str() {
            "p" => {
                table.primary_key = paren_list(&def);
                constraint_index_names.push(name);
            }
            "u" => {
                table.indexes.push(IndexSchema { name: name.clone(), columns: paren_list(&def), unique: true });
                constraint_index_names.push(name);
            }
            "f" => {
                let (local, rest) = def.split_once("REFERENCES").unwrap_or((&def, ""));
                let rest = rest.trim();
                let ref_table = rest.split('(').next().unwrap_or("").trim().trim_matches('"');
                let ref_table = ref_table.rsplit('.').next().unwrap_or(ref_table).trim_matches('"').to_string();
                let upper = rest.to_ascii_uppercase();
                let on_delete = upper
                    .split_once("ON DELETE ")
                    .map(|(_, a)| {
                        if a.starts_with("CASCADE") {
                            FkAction::Cascade
                        } else if a.starts_with("SET NULL") {
                            FkAction::SetNull
                        } else if a.starts_with("RESTRICT") {
                            FkAction::Restrict
                        } else {
                            FkAction::NoAction
                        }
                    })
                    .unwrap_or(FkAction::NoAction);
                table.foreign_keys.push(ForeignKeySchema {
                    name,
                    columns: paren_list(local),
                    ref_table,
                    ref_columns: paren_list(rest),
                    on_delete,
                });
            }
            // Shoal records its column types as checks named shoal_type:…;
            // they are the server's, not the model's.
            "c" if !name.starts_with("shoal_") => table.checks.push(CheckSchema { name, sql: def }),
            _ => {}
        }
    }
    let idx = rows(
        ex,
        "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() \
         ORDER BY tablename, indexname",
        vec![],
    )
    .await?;
    for i in idx {
        let Some(table) = out.get_mut(&text(&i, "tablename")?) else { continue };
        let name = text(&i, "indexname")?;
        if constraint_index_names.contains(&name) {
            continue;
        }
        let def = text(&i, "indexdef")?;
        let unique = def.to_ascii_uppercase().starts_with("CREATE UNIQUE");
        // "CREATE INDEX name ON public.t USING btree (a, b)": the column list
        // is the parenthesis after ON.
        let after_on = def.find(" ON ").map(|p| &def[p..]).unwrap_or(&def);
        table.indexes.push(IndexSchema { name, columns: paren_list(after_on), unique });
    }
    Ok(out)
}

async fn mysql(ex: &(impl Executor + ?Sized)) -> Result<BTreeMap<String, TableSchema>> {
    let mut out: BTreeMap<String, TableSchema> = BTreeMap::new();
    let cols = rows(
        ex,
        "SELECT c.TABLE_NAME AS table_name, c.COLUMN_NAME AS column_name, c.COLUMN_TYPE AS column_type, \
         c.IS_NULLABLE AS is_nullable, c.COLUMN_DEFAULT AS column_default, c.EXTRA AS extra \
         FROM information_schema.COLUMNS c JOIN information_schema.TABLES t \
         ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME \
         WHERE c.TABLE_SCHEMA = DATABASE() AND t.TABLE_TYPE = 'BASE TABLE' \
         ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION",
        vec![],
    )
    .await?;
    for c in cols {
        let tname = text(&c, "table_name")?;
        let cname = text(&c, "column_name")?;
        let declared = text(&c, "column_type")?;
        let (ty, max_length) = parse_type(Dialect::Mysql, &tname, &cname, &declared)?;
        let default = c.get::<Option<String>>("column_default")?.filter(|d| d != "NULL");
        out.entry(tname.clone()).or_insert_with(|| empty_table(tname)).columns.push(ColumnSchema {
            name: cname,
            ty,
            nullable: text(&c, "is_nullable")? == "YES",
            auto_increment: text(&c, "extra")?.contains("auto_increment"),
            numeric: Dialect::Mysql.parse_numeric(&declared),
            default,
            max_length,
        });
    }
    let keys = rows(
        ex,
        "SELECT k.TABLE_NAME AS table_name, k.CONSTRAINT_NAME AS name, k.COLUMN_NAME AS column_name, \
         k.REFERENCED_TABLE_NAME AS ref_table, k.REFERENCED_COLUMN_NAME AS ref_column, r.DELETE_RULE AS delete_rule \
         FROM information_schema.KEY_COLUMN_USAGE k LEFT JOIN information_schema.REFERENTIAL_CONSTRAINTS r \
         ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME \
         AND r.TABLE_NAME = k.TABLE_NAME \
         WHERE k.TABLE_SCHEMA = DATABASE() ORDER BY k.TABLE_NAME, k.CONSTRAINT_NAME, k.ORDINAL_POSITION",
        vec![],
    )
    .await?;
    let mut fk_names = Vec::new();
    for k in keys {
        let Some(table) = out.get_mut(&text(&k, "table_name")?) else { continue };
        let name = text(&k, "name")?;
        let column = text(&k, "column_name")?;
        if name == "PRIMARY" {
            table.primary_key.push(column);
            continue;
        }
        let Some(ref_table) = k.get::<Option<String>>("ref_table")? else { continue };
        fk_names.push(name.clone());
        let fk = match table.foreign_keys.iter_mut().position(|f| f.name == name) {
            Some(i) => &mut table.foreign_keys[i],
            None => {
                table.foreign_keys.push(ForeignKeySchema {
                    name,
                    columns: Vec::new(),
                    ref_table,
                    ref_columns: Vec::new(),
                    on_delete: fk_action(&text(&k, "delete_rule")?),
                });
                table.foreign_keys.last_mut().expect("just pushed")
            }
        };
        fk.columns.push(column);
        fk.ref_columns.push(text(&k, "ref_column")?);
    }
    let stats = rows(
        ex,
        "SELECT TABLE_NAME AS table_name, INDEX_NAME AS name, NON_UNIQUE AS non_unique, COLUMN_NAME AS column_name \
         FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() \
         ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX",
        vec![],
    )
    .await?;
    for s in stats {
        let Some(table) = out.get_mut(&text(&s, "table_name")?) else { continue };
        let name = text(&s, "name")?;
        // MySQL creates an index for each foreign key; it belongs to the key.
        if name == "PRIMARY" || fk_names.contains(&name) {
            continue;
        }
        let column = text(&s, "column_name")?;
        match table.indexes.iter_mut().find(|i| i.name == name) {
            Some(i) => i.columns.push(column),
            None => table.indexes.push(IndexSchema {
                name,
                columns: vec![column],
                unique: s.get::<i64>("non_unique")? == 0,
            }),
        }
    }
    let checks = rows(
        ex,
        "SELECT t.TABLE_NAME AS table_name, t.CONSTRAINT_NAME AS name, c.CHECK_CLAUSE AS clause \
         FROM information_schema.TABLE_CONSTRAINTS t JOIN information_schema.CHECK_CONSTRAINTS c \
         ON c.CONSTRAINT_SCHEMA = t.CONSTRAINT_SCHEMA AND c.CONSTRAINT_NAME = t.CONSTRAINT_NAME \
         WHERE t.TABLE_SCHEMA = DATABASE() AND t.CONSTRAINT_TYPE = 'CHECK' ORDER BY t.TABLE_NAME, t.CONSTRAINT_NAME",
        vec![],
    )
    .await?;
    for c in checks {
        let Some(table) = out.get_mut(&text(&c, "table_name")?) else { continue };
        let name = text(&c, "name")?;
        if !table.checks.iter().any(|k| k.name == name) {
            table.checks.push(CheckSchema { name, sql: text(&c, "clause")? });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_constraint_names_in_create_sql() {
        let sql = r#"CREATE TABLE "o" ("id" INTEGER PRIMARY KEY, "u" BIGINT, CONSTRAINT "o_u_fkey" FOREIGN KEY ("u") REFERENCES "users" ("id"), CONSTRAINT "o_pos" CHECK (u > 0), CONSTRAINT plain CHECK (1))"#;
        assert_eq!(constraint_names(sql, "FOREIGN KEY"), vec!["o_u_fkey"]);
        assert_eq!(constraint_names(sql, "CHECK"), vec!["o_pos", "plain"]);
    }

    #[test]
    fn parses_definition_column_lists() {
        assert_eq!(paren_list("UNIQUE (email, \"org id\")"), vec!["email", "org id"]);
        assert_eq!(paren_list(" ON public.t USING btree (a, b)"), vec!["a", "b"]);
    }
}
