//! `pg_catalog` and `information_schema`, rebuilt from the [`Catalog`].
//!
//! The executor attaches two in-memory SQLite schemas with those names and
//! runs [`catalog_schema_sql`] after each catalog change; queries then read
//! them like any table (the binder knows their columns from [`SYSTEM_TABLES`]).
//! Only the relations and columns drivers and `psql` commonly touch exist.

use shoal_common::DataType;
use sqlparser::ast::ObjectName;

use crate::binder::{fold, quote, quote_str};
use crate::catalog::Catalog;

type ColSpec = (&'static str, DataType);

/// (schema, table, columns) of every emulated system relation.
fn system_tables() -> Vec<(&'static str, &'static str, Vec<ColSpec>)> {
    use DataType::*;
    vec![
        ("pg_catalog", "pg_namespace", vec![("oid", Oid), ("nspname", Name)]),
        (
            "pg_catalog",
            "pg_class",
            vec![
                ("oid", Oid),
                ("relname", Name),
                ("relnamespace", Oid),
                ("relkind", CatalogChar),
                ("reltuples", Float4),
            ],
        ),
        (
            "pg_catalog",
            "pg_attribute",
            vec![
                ("attrelid", Oid),
                ("attname", Name),
                ("atttypid", Oid),
                ("attnum", Int2),
                ("attnotnull", Bool),
                ("atttypmod", Int4),
                ("attisdropped", Bool),
            ],
        ),
        ("pg_catalog", "pg_type", vec![("oid", Oid), ("typname", Name), ("typnamespace", Oid), ("typlen", Int2)]),
        (
            "pg_catalog",
            "pg_index",
            vec![("indexrelid", Oid), ("indrelid", Oid), ("indisunique", Bool), ("indisprimary", Bool)],
        ),
        ("pg_catalog", "pg_database", vec![("oid", Oid), ("datname", Name)]),
        ("pg_catalog", "pg_tables", vec![("schemaname", Name), ("tablename", Name)]),
        ("pg_catalog", "pg_views", vec![("schemaname", Name), ("viewname", Name), ("definition", Text)]),
        (
            "information_schema",
            "tables",
            vec![("table_catalog", Name), ("table_schema", Name), ("table_name", Name), ("table_type", Text)],
        ),
        (
            "information_schema",
            "columns",
            vec![
                ("table_catalog", Name),
                ("table_schema", Name),
                ("table_name", Name),
                ("column_name", Name),
                ("ordinal_position", Int4),
                ("column_default", Text),
                ("is_nullable", Text),
                ("data_type", Text),
                ("character_maximum_length", Int4),
            ],
        ),
    ]
}

/// Resolves `pg_catalog.x`, `information_schema.x` and unqualified `pg_*` names.
/// A system relation found by [`lookup`]: schema, table and columns.
pub type SystemRel = (&'static str, &'static str, Vec<(String, DataType)>);

pub fn lookup(name: &ObjectName) -> Option<SystemRel> {
    let parts: Vec<String> = name.0.iter().filter_map(|p| p.as_ident()).map(fold).collect();
    let (schema, table) = match parts.as_slice() {
        [s, t] => (Some(s.as_str()), t.as_str()),
        [t] if t.starts_with("pg_") => (Some("pg_catalog"), t.as_str()),
        _ => return None,
    };
    system_tables()
        .into_iter()
        .find(|(s, t, _)| Some(*s) == schema && *t == table)
        .map(|(s, t, cols)| (s, t, cols.into_iter().map(|(n, ty)| (n.to_string(), ty)).collect()))
}

/// The namespace OIDs PostgreSQL uses.
const PG_CATALOG_OID: u32 = 11;
const PUBLIC_OID: u32 = 2200;

/// SQLite statements that recreate and fill the attached system schemas.
pub fn catalog_schema_sql(catalog: &Catalog) -> Vec<String> {
    let mut out = Vec::new();
    for (schema, table, cols) in system_tables() {
        let defs: Vec<String> = cols.iter().map(|(n, t)| format!("{} {}", quote(n), t.sqlite_affinity())).collect();
        out.push(format!("DROP TABLE IF EXISTS {}.{}", quote(schema), quote(table)));
        out.push(format!("CREATE TABLE {}.{} ({})", quote(schema), quote(table), defs.join(", ")));
    }
    let mut rows: Vec<(&str, Vec<String>)> = vec![
        ("pg_catalog.pg_namespace", vec![PG_CATALOG_OID.to_string(), quote_str("pg_catalog")]),
        ("pg_catalog.pg_namespace", vec![PUBLIC_OID.to_string(), quote_str("public")]),
        ("pg_catalog.pg_namespace", vec!["13000".into(), quote_str("information_schema")]),
        ("pg_catalog.pg_database", vec!["5".into(), quote_str("shoal")]),
    ];
    for t in [
        DataType::Bool,
        DataType::Bytea,
        DataType::Int8,
        DataType::Int2,
        DataType::Int4,
        DataType::Text,
        DataType::Oid,
        DataType::Json,
        DataType::Float4,
        DataType::Float8,
        DataType::Char(1),
        DataType::Varchar(None),
        DataType::Date,
        DataType::Time,
        DataType::Timestamp,
        DataType::Timestamptz,
        DataType::Interval,
        DataType::Numeric(None),
        DataType::Uuid,
        DataType::Jsonb,
        DataType::Name,
    ] {
        rows.push((
            "pg_catalog.pg_type",
            vec![t.oid().to_string(), quote_str(&t.type_name()), PG_CATALOG_OID.to_string(), t.size().to_string()],
        ));
    }
    for t in catalog.tables.values() {
        rows.push(class_row(t.oid, &t.name, "r"));
        rows.push(("pg_catalog.pg_tables", vec![quote_str("public"), quote_str(&t.name)]));
        rows.push(("information_schema.tables", info_table(&t.name, "BASE TABLE")));
        for (i, c) in t.columns.iter().enumerate() {
            let attnum = i + 1;
            let not_null = (!c.nullable) as i32;
            rows.push((
                "pg_catalog.pg_attribute",
                vec![
                    t.oid.to_string(),
                    quote_str(&c.name),
                    c.data_type.oid().to_string(),
                    attnum.to_string(),
                    not_null.to_string(),
                    c.data_type.typmod().to_string(),
                    "0".into(),
                ],
            ));
            let max_len = match c.data_type {
                DataType::Varchar(Some(n)) | DataType::Char(n) => n.to_string(),
                _ => "NULL".into(),
            };
            rows.push((
                "information_schema.columns",
                vec![
                    quote_str("shoal"),
                    quote_str("public"),
                    quote_str(&t.name),
                    quote_str(&c.name),
                    attnum.to_string(),
                    c.default.as_deref().map(quote_str).unwrap_or_else(|| "NULL".into()),
                    quote_str(if c.nullable { "YES" } else { "NO" }),
                    quote_str(&info_type_name(&c.data_type)),
                    max_len,
                ],
            ));
        }
    }
    for ix in catalog.indexes.values() {
        rows.push(class_row(ix.oid, &ix.name, "i"));
        let table_oid = catalog.table(&ix.table).map(|t| t.oid).unwrap_or(0);
        rows.push((
            "pg_catalog.pg_index",
            vec![ix.oid.to_string(), table_oid.to_string(), (ix.unique as i32).to_string(), "0".into()],
        ));
    }
    for v in catalog.views.values() {
        rows.push(class_row(v.oid, &v.name, "v"));
        rows.push(("pg_catalog.pg_views", vec![quote_str("public"), quote_str(&v.name), quote_str(&v.definition)]));
        rows.push(("information_schema.tables", info_table(&v.name, "VIEW")));
    }
    for (table, values) in rows {
        let (schema, name) = table.split_once('.').unwrap_or(("pg_catalog", table));
        out.push(format!("INSERT INTO {}.{} VALUES ({})", quote(schema), quote(name), values.join(", ")));
    }
    out
}

fn class_row(oid: u32, name: &str, kind: &str) -> (&'static str, Vec<String>) {
    ("pg_catalog.pg_class", vec![oid.to_string(), quote_str(name), PUBLIC_OID.to_string(), quote_str(kind), "0".into()])
}

fn info_table(name: &str, kind: &str) -> Vec<String> {
    vec![quote_str("shoal"), quote_str("public"), quote_str(name), quote_str(kind)]
}

/// `information_schema.columns.data_type`: the type name without modifiers.
fn info_type_name(t: &DataType) -> String {
    match t {
        DataType::Varchar(_) => "character varying".into(),
        DataType::Char(_) => "character".into(),
        DataType::Numeric(_) => "numeric".into(),
        other => other.sql_name(),
    }
}
