//! `pg_catalog` and `information_schema`, rebuilt from the [`Catalog`].
//!
//! The executor attaches in-memory SQLite schemas with those names and runs
//! [`catalog_schema_sql`] after each catalog change; queries then read them
//! like any table (the binder knows their columns from [`lookup`]). Only the
//! relations and columns that `psql`, drivers and ORMs touch exist; relations
//! describing features Shoal lacks (policies, triggers, publications,
//! inheritance, extended statistics) exist but are empty, which is exactly
//! what PostgreSQL returns for a database that does not use them.
//!
//! Representation choices:
//! * `int2vector`/`oidvector` columns (`pg_index.indkey`, `indclass`) hold
//!   PostgreSQL's text form (`"1 2"`, 0-based subscripts) and are typed `text`
//!   (drivers parse them as space-separated vectors);
//! * array columns (`pg_constraint.conkey`, `pg_class.reloptions`) hold
//!   array literals (`{1,2}`), the convention of `shoal_common::convert`;
//! * what `pg_get_constraintdef()`/`pg_get_indexdef()` print is precomputed
//!   into the private table `pg_catalog.shoal_defs` (the binder translates
//!   those calls to lookups there), since only the typed catalog knows it.
//!
//! OIDs: relations use the catalog's OIDs; constraints and the indexes that
//! back PRIMARY KEY/UNIQUE constraints get OIDs derived from their table's
//! OID (`oid * 64 + k`), stable across refreshes and disjoint from relation
//! OIDs for any realistic number of objects.

use shoal_common::DataType;
use sqlparser::ast::ObjectName;

use crate::binder::{fold, quote, quote_str};
use crate::catalog::{Catalog, ForeignKeyDef, Table};
use crate::system_views::system_views;

/// The namespace OIDs PostgreSQL uses.
pub const PG_CATALOG_OID: u32 = 11;
pub const PUBLIC_OID: u32 = 2200;
const INFO_SCHEMA_OID: u32 = 13000;
/// The role every object belongs to (Shoal has one role for catalog purposes).
pub const OWNER_OID: u32 = 10;
pub const OWNER_NAME: &str = "shoal";
const HEAP_AM: u32 = 2;
/// `'pg_catalog.pg_class'::regclass`, the class of relations in `pg_depend`.
pub const PG_CLASS_OID: u32 = 1259;
const BTREE_AM: u32 = 403;

/// (schema, table, "col type, col type, …") of every emulated relation.
/// Type words: the PostgreSQL type names below; `vec` is an int2vector/oidvector (text).
const TABLES: &[(&str, &str, &str)] = &[
    ("pg_catalog", "pg_namespace", "oid oid, nspname name, nspowner oid, nspacl text"),
    (
        "pg_catalog",
        "pg_class",
        "oid oid, relname name, relnamespace oid, reltype oid, reloftype oid, relowner oid, relam oid, \
         relfilenode oid, reltablespace oid, relpages int4, reltuples float4, relallvisible int4, reltoastrelid oid, \
         relhasindex bool, relisshared bool, relpersistence char, relkind char, relnatts int2, relchecks int2, \
         relhasrules bool, relhastriggers bool, relhassubclass bool, relrowsecurity bool, relforcerowsecurity bool, \
         relispopulated bool, relreplident char, relispartition bool, relrewrite oid, relfrozenxid int8, \
         relacl text, reloptions text[], relpartbound text",
    ),
    (
        "pg_catalog",
        "pg_attribute",
        "attrelid oid, attname name, atttypid oid, attstattarget int4, attlen int2, attnum int2, attndims int4, \
         atttypmod int4, attnotnull bool, atthasdef bool, atthasmissing bool, attidentity char, attgenerated char, \
         attisdropped bool, attislocal bool, attinhcount int4, attcollation oid, attacl text, attoptions text[]",
    ),
    (
        "pg_catalog",
        "pg_type",
        "oid oid, typname name, typnamespace oid, typowner oid, typlen int2, typbyval bool, typtype char, \
         typcategory char, typispreferred bool, typisdefined bool, typdelim char, typrelid oid, typelem oid, \
         typarray oid, typnotnull bool, typbasetype oid, typtypmod int4, typndims int4, typcollation oid, \
         typdefault text",
    ),
    (
        "pg_catalog",
        "pg_index",
        "indexrelid oid, indrelid oid, indnatts int2, indnkeyatts int2, indisunique bool, \
         indnullsnotdistinct bool, indisprimary bool, indisexclusion bool, indimmediate bool, indisclustered bool, \
         indisvalid bool, indcheckxmin bool, indisready bool, indislive bool, indisreplident bool, indkey vec, \
         indcollation vec, indclass vec, indoption vec, indexprs text, indpred text",
    ),
    (
        "pg_catalog",
        "pg_constraint",
        "oid oid, conname name, connamespace oid, contype char, condeferrable bool, condeferred bool, \
         convalidated bool, conrelid oid, contypid oid, conindid oid, conparentid oid, confrelid oid, \
         confupdtype char, confdeltype char, confmatchtype char, conislocal bool, coninhcount int4, \
         connoinherit bool, conkey int2[], confkey int2[], conbin text",
    ),
    ("pg_catalog", "pg_attrdef", "oid oid, adrelid oid, adnum int2, adbin text"),
    (
        "pg_catalog",
        "pg_depend",
        "classid oid, objid oid, objsubid int4, refclassid oid, refobjid oid, refobjsubid int4, deptype char",
    ),
    ("pg_catalog", "pg_description", "objoid oid, classoid oid, objsubid int4, description text"),
    (
        "pg_catalog",
        "pg_database",
        "oid oid, datname name, datdba oid, encoding int4, datlocprovider char, datistemplate bool, \
         datallowconn bool, datconnlimit int4, dattablespace oid, datcollate text, datctype text, \
         daticulocale text, datcollversion text, datacl text",
    ),
    (
        "pg_catalog",
        "pg_roles",
        "rolname name, rolsuper bool, rolinherit bool, rolcreaterole bool, rolcreatedb bool, rolcanlogin bool, \
         rolreplication bool, rolconnlimit int4, rolpassword text, rolvaliduntil timestamptz, rolbypassrls bool, \
         rolconfig text[], oid oid",
    ),
    (
        "pg_catalog",
        "pg_authid",
        "oid oid, rolname name, rolsuper bool, rolinherit bool, rolcreaterole bool, rolcreatedb bool, \
         rolcanlogin bool, rolreplication bool, rolbypassrls bool, rolconnlimit int4, rolpassword text, \
         rolvaliduntil timestamptz",
    ),
    (
        "pg_catalog",
        "pg_user",
        "usename name, usesysid oid, usecreatedb bool, usesuper bool, userepl bool, usebypassrls bool, \
         passwd text, valuntil timestamptz, useconfig text[]",
    ),
    ("pg_catalog", "pg_auth_members", "oid oid, roleid oid, member oid, grantor oid, admin_option bool"),
    ("pg_catalog", "pg_am", "oid oid, amname name, amhandler text, amtype char"),
    ("pg_catalog", "pg_inherits", "inhrelid oid, inhparent oid, inhseqno int4, inhdetachpending bool"),
    (
        "pg_catalog",
        "pg_policy",
        "oid oid, polname name, polrelid oid, polcmd char, polpermissive bool, polroles oid[], polqual text, \
         polwithcheck text",
    ),
    (
        "pg_catalog",
        "pg_statistic_ext",
        "oid oid, stxrelid oid, stxname name, stxnamespace oid, stxowner oid, stxstattarget int4, stxkeys vec, \
         stxkind text[]",
    ),
    (
        "pg_catalog",
        "pg_publication",
        "oid oid, pubname name, pubowner oid, puballtables bool, pubinsert bool, pubupdate bool, pubdelete bool, \
         pubtruncate bool, pubviaroot bool",
    ),
    ("pg_catalog", "pg_publication_rel", "oid oid, prpubid oid, prrelid oid, prqual text, prattrs vec"),
    ("pg_catalog", "pg_publication_namespace", "oid oid, pnpubid oid, pnnspid oid"),
    (
        "pg_catalog",
        "pg_trigger",
        "oid oid, tgrelid oid, tgparentid oid, tgname name, tgfoid oid, tgtype int2, tgenabled char, \
         tgisinternal bool, tgconstrrelid oid, tgconstrindid oid, tgconstraint oid, tgdeferrable bool, \
         tginitdeferred bool, tgnargs int2",
    ),
    (
        "pg_catalog",
        "pg_collation",
        "oid oid, collname name, collnamespace oid, collowner oid, collprovider char, collisdeterministic bool, \
         collencoding int4, collcollate text, collctype text",
    ),
    (
        "pg_catalog",
        "pg_settings",
        "name text, setting text, unit text, category text, short_desc text, extra_desc text, context text, \
         vartype text, source text, min_val text, max_val text, boot_val text, reset_val text, pending_restart bool",
    ),
    (
        "pg_catalog",
        "pg_proc",
        "oid oid, proname name, pronamespace oid, proowner oid, prokind char, proretset bool, prorettype oid, \
         pronargs int2, proargtypes vec",
    ),
    ("pg_catalog", "pg_tablespace", "oid oid, spcname name, spcowner oid, spcacl text, spcoptions text[]"),
    (
        "pg_catalog",
        "pg_extension",
        "oid oid, extname name, extowner oid, extnamespace oid, extrelocatable bool, extversion text",
    ),
    (
        "pg_catalog",
        "pg_sequence",
        "seqrelid oid, seqtypid oid, seqstart int8, seqincrement int8, seqmax int8, seqmin int8, seqcache int8, \
         seqcycle bool",
    ),
    (
        "pg_catalog",
        "pg_opclass",
        "oid oid, opcmethod oid, opcname name, opcnamespace oid, opcowner oid, opcfamily oid, opcintype oid, \
         opcdefault bool, opckeytype oid",
    ),
    ("pg_catalog", "pg_enum", "oid oid, enumtypid oid, enumsortorder float4, enumlabel name"),
    (
        "pg_catalog",
        "pg_sequences",
        "schemaname name, sequencename name, sequenceowner name, data_type text, start_value int8, \
         min_value int8, max_value int8, increment_by int8, cycle bool, cache_size int8, last_value int8",
    ),
    ("pg_catalog", "pg_tables", "schemaname name, tablename name, tableowner name, tablespace name, hasindexes bool, hasrules bool, hastriggers bool, rowsecurity bool"),
    ("pg_catalog", "pg_views", "schemaname name, viewname name, viewowner name, definition text"),
    ("pg_catalog", "pg_indexes", "schemaname name, tablename name, indexname name, tablespace name, indexdef text"),
    ("pg_catalog", "pg_matviews", "schemaname name, matviewname name, matviewowner name, definition text"),
    ("pg_catalog", "pg_stat_activity", "datid oid, datname name, pid int4, usename name, application_name text, state text, query text"),
    (
        "information_schema",
        "schemata",
        "catalog_name name, schema_name name, schema_owner name",
    ),
    (
        "information_schema",
        "tables",
        "table_catalog name, table_schema name, table_name name, table_type text, is_insertable_into text",
    ),
    (
        "information_schema",
        "views",
        "table_catalog name, table_schema name, table_name name, view_definition text",
    ),
    (
        "information_schema",
        "columns",
        "table_catalog name, table_schema name, table_name name, column_name name, ordinal_position int4, \
         column_default text, is_nullable text, data_type text, character_maximum_length int4, \
         numeric_precision int4, numeric_scale int4, datetime_precision int4, udt_catalog name, udt_schema name, \
         udt_name name, is_identity text, identity_generation text, is_generated text, is_updatable text",
    ),
    (
        "information_schema",
        "sequences",
        "sequence_catalog name, sequence_schema name, sequence_name name, data_type text, numeric_precision int4, \
         numeric_precision_radix int4, numeric_scale int4, start_value text, minimum_value text, \
         maximum_value text, increment text, cycle_option text",
    ),
    (
        "information_schema",
        "table_constraints",
        "constraint_catalog name, constraint_schema name, constraint_name name, table_catalog name, \
         table_schema name, table_name name, constraint_type text, is_deferrable text, initially_deferred text",
    ),
    (
        "information_schema",
        "key_column_usage",
        "constraint_catalog name, constraint_schema name, constraint_name name, table_catalog name, \
         table_schema name, table_name name, column_name name, ordinal_position int4, \
         position_in_unique_constraint int4",
    ),
    (
        "information_schema",
        "referential_constraints",
        "constraint_catalog name, constraint_schema name, constraint_name name, unique_constraint_catalog name, \
         unique_constraint_schema name, unique_constraint_name name, match_option text, update_rule text, \
         delete_rule text",
    ),
];

/// The private table behind `pg_get_constraintdef()`/`pg_get_indexdef()`:
/// the definition text of each constraint/index and (for indexes) its key
/// columns as an array literal, for `pg_get_indexdef(oid, column, …)`.
pub const DEFS_TABLE: &str = "\"pg_catalog\".\"shoal_defs\"";

fn type_word(word: &str) -> DataType {
    use DataType::*;
    match word {
        "oid" => Oid,
        "name" => Name,
        "bool" => Bool,
        "int2" => Int2,
        "int4" => Int4,
        "int8" => Int8,
        "float4" => Float4,
        "char" => CatalogChar,
        "timestamptz" => Timestamptz,
        "text[]" => Array(Box::new(Text)),
        "int2[]" => Array(Box::new(Int2)),
        "oid[]" => Array(Box::new(Oid)),
        _ => Text,
    }
}

fn columns(spec: &'static str) -> Vec<(String, DataType)> {
    spec.split(',')
        .filter_map(|c| {
            let mut words = c.split_whitespace();
            let name = words.next()?;
            Some((name.to_string(), type_word(words.next().unwrap_or("text"))))
        })
        .collect()
}

/// A system relation found by [`lookup`]: schema, table and columns.
pub type SystemRel = (&'static str, &'static str, Vec<(String, DataType)>);

/// Resolves `pg_catalog.x`, `information_schema.x`, `shoal.x` and unqualified `pg_*` names.
pub fn lookup(name: &ObjectName) -> Option<SystemRel> {
    let parts: Vec<String> = name.0.iter().filter_map(|p| p.as_ident()).map(fold).collect();
    let (schema, table) = match parts.as_slice() {
        [s, t] => (s.as_str(), t.as_str()),
        [t] if t.starts_with("pg_") => ("pg_catalog", t.as_str()),
        _ => return None,
    };
    if schema == "shoal" {
        return system_views()
            .into_iter()
            .find(|v| v.name == table)
            .map(|v| ("shoal", v.name, v.columns.into_iter().map(|(n, t)| (n.to_string(), t)).collect()));
    }
    TABLES.iter().find(|(s, t, _)| *s == schema && *t == table).map(|(s, t, spec)| (*s, *t, columns(spec)))
}

/// One row of SQL literals.
type Row = Vec<String>;

fn lit(s: &str) -> String {
    quote_str(s)
}

fn null() -> String {
    "NULL".into()
}

fn n(x: impl ToString) -> String {
    x.to_string()
}

fn b(x: bool) -> String {
    (x as i32).to_string()
}

/// SQLite statements that recreate and fill the attached system schemas.
pub fn catalog_schema_sql(catalog: &Catalog) -> Vec<String> {
    let mut out = Vec::new();
    for (schema, table, spec) in TABLES {
        let defs: Vec<String> =
            columns(spec).iter().map(|(n, t)| format!("{} {}", quote(n), t.sqlite_affinity())).collect();
        out.push(format!("DROP TABLE IF EXISTS {}.{}", quote(schema), quote(table)));
        out.push(format!("CREATE TABLE {}.{} ({})", quote(schema), quote(table), defs.join(", ")));
    }
    out.push(format!("DROP TABLE IF EXISTS {DEFS_TABLE}"));
    out.push(format!("CREATE TABLE {DEFS_TABLE} (\"oid\" INTEGER PRIMARY KEY, \"def\" TEXT, \"cols\" TEXT)"));
    let mut rows = Rows::default();
    rows.fixed();
    for t in catalog.tables.values() {
        rows.table(catalog, t);
    }
    for ix in catalog.indexes.values() {
        let Some(t) = catalog.table(&ix.table) else { continue };
        let def = format!(
            "CREATE {}INDEX {} ON public.{} USING btree ({})",
            if ix.unique { "UNIQUE " } else { "" },
            ident(&ix.name),
            ident(&t.name),
            ix.columns.iter().map(|c| ident(c)).collect::<Vec<_>>().join(", ")
        );
        rows.index(t, ix.oid, &ix.name, &ix.columns, ix.unique, false, def);
    }
    for s in catalog.sequences.values() {
        rows.sequence(catalog, s);
    }
    for v in catalog.views.values() {
        rows.class(v.oid, &v.name, "v", 0, v.columns.len(), false);
        for (i, c) in v.columns.iter().enumerate() {
            rows.attribute(v.oid, &c.name, &c.data_type, i + 1, false, false);
        }
        rows.push("pg_views", vec![lit("public"), lit(&v.name), lit(OWNER_NAME), lit(&v.definition)]);
        rows.push("information_schema.tables", vec![lit("shoal"), lit("public"), lit(&v.name), lit("VIEW"), lit("NO")]);
        rows.push("information_schema.views", vec![lit("shoal"), lit("public"), lit(&v.name), lit(&v.definition)]);
    }
    for (table, values) in rows.0 {
        let (schema, name) = table.split_once('.').unwrap_or(("pg_catalog", table));
        let target =
            if name == "shoal_defs" { DEFS_TABLE.to_string() } else { format!("{}.{}", quote(schema), quote(name)) };
        out.push(format!("INSERT INTO {target} VALUES ({})", values.join(", ")));
    }
    out
}

/// An identifier as PostgreSQL prints it in definitions (quoted only when needed).
fn ident(name: &str) -> String {
    let plain = name.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        name.to_string()
    } else {
        quote(name)
    }
}

fn idents(cols: &[String]) -> String {
    cols.iter().map(|c| ident(c)).collect::<Vec<_>>().join(", ")
}

/// The rows being collected, per relation.
#[derive(Default)]
struct Rows(Vec<(&'static str, Row)>);

impl Rows {
    fn push(&mut self, table: &'static str, row: Row) {
        self.0.push((table, row));
    }

    /// Rows that do not depend on the catalog: namespaces, types, the role, access methods…
    fn fixed(&mut self) {
        for (oid, name) in
            [(PG_CATALOG_OID, "pg_catalog"), (PUBLIC_OID, "public"), (INFO_SCHEMA_OID, "information_schema")]
        {
            self.push("pg_namespace", vec![n(oid), lit(name), n(OWNER_OID), null()]);
        }
        self.push("information_schema.schemata", vec![lit("shoal"), lit("public"), lit(OWNER_NAME)]);
        self.push(
            "pg_database",
            vec![
                n(5),
                lit("shoal"),
                n(OWNER_OID),
                n(6),
                lit("c"),
                b(false),
                b(true),
                n(-1),
                n(1663),
                lit("C.UTF-8"),
                lit("C.UTF-8"),
                null(),
                null(),
                null(),
            ],
        );
        let t = b(true);
        self.push(
            "pg_roles",
            vec![
                lit(OWNER_NAME),
                t.clone(),
                t.clone(),
                t.clone(),
                t.clone(),
                t.clone(),
                t.clone(),
                n(-1),
                lit("********"),
                null(),
                t.clone(),
                null(),
                n(OWNER_OID),
            ],
        );
        self.push(
            "pg_authid",
            vec![
                n(OWNER_OID),
                lit(OWNER_NAME),
                t.clone(),
                t.clone(),
                t.clone(),
                t.clone(),
                t.clone(),
                t.clone(),
                t.clone(),
                n(-1),
                null(),
                null(),
            ],
        );
        self.push(
            "pg_user",
            vec![
                lit(OWNER_NAME),
                n(OWNER_OID),
                t.clone(),
                t.clone(),
                t.clone(),
                t.clone(),
                lit("********"),
                null(),
                null(),
            ],
        );
        self.push("pg_am", vec![n(HEAP_AM), lit("heap"), lit("heap_tableam_handler"), lit("t")]);
        self.push("pg_am", vec![n(BTREE_AM), lit("btree"), lit("bthandler"), lit("i")]);
        self.push("pg_tablespace", vec![n(1663), lit("pg_default"), n(OWNER_OID), null(), null()]);
        self.push("pg_tablespace", vec![n(1664), lit("pg_global"), n(OWNER_OID), null(), null()]);
        for (oid, name, provider) in [(100u32, "default", "d"), (950, "C", "c"), (951, "POSIX", "c")] {
            self.push(
                "pg_collation",
                vec![n(oid), lit(name), n(PG_CATALOG_OID), n(OWNER_OID), lit(provider), b(true), n(-1), null(), null()],
            );
        }
        // Settings that drivers read from pg_settings (JDBC asks for max_index_keys).
        for (name, value, category, context, vartype) in [
            ("default_table_access_method", "heap", "Client Connection Defaults", "user", "string"),
            ("max_index_keys", "32", "Preset Options", "internal", "integer"),
            ("max_identifier_length", "63", "Preset Options", "internal", "integer"),
            ("server_version_num", "160004", "Preset Options", "internal", "integer"),
            ("standard_conforming_strings", "on", "Version and Platform Compatibility", "user", "bool"),
        ] {
            self.push(
                "pg_settings",
                vec![
                    lit(name),
                    lit(value),
                    null(),
                    lit(category),
                    null(),
                    null(),
                    lit(context),
                    lit(vartype),
                    lit("default"),
                    null(),
                    null(),
                    lit(value),
                    lit(value),
                    b(false),
                ],
            );
        }
        self.types();
    }

    fn types(&mut self) {
        use DataType as T;
        let base = [
            T::Bool,
            T::Bytea,
            T::CatalogChar,
            T::Name,
            T::Int8,
            T::Int2,
            T::Int4,
            T::Text,
            T::Oid,
            T::Json,
            T::Float4,
            T::Float8,
            T::Char(1),
            T::Varchar(None),
            T::Date,
            T::Time,
            T::Timestamp,
            T::Timestamptz,
            T::Interval,
            T::Numeric(None),
            T::Uuid,
            T::Jsonb,
        ];
        for t in base {
            let array = T::Array(Box::new(t.clone()));
            let (category, collation) = type_category(&t);
            let array_oid = array.oid();
            self.push(
                "pg_type",
                type_row(t.oid(), &t.type_name(), i32::from(t.size()), "b", category, 0, array_oid, collation),
            );
            self.push("pg_type", type_row(array_oid, &array.type_name(), -1, "b", "A", t.oid(), 0, collation));
        }
        for (oid, name) in
            [(22u32, "int2vector"), (30, "oidvector"), (2205, "regclass"), (2206, "regtype"), (705, "unknown")]
        {
            self.push("pg_type", type_row(oid, name, -1, "b", "U", 0, 0, 0));
        }
    }

    fn class(&mut self, oid: u32, name: &str, kind: &str, am: u32, natts: usize, has_index: bool) {
        self.push(
            "pg_class",
            vec![
                n(oid),
                lit(name),
                n(PUBLIC_OID),
                n(0),
                n(0),
                n(OWNER_OID),
                n(am),
                n(oid),
                n(0),
                n(0),
                n(-1),
                n(0),
                n(0),
                b(has_index),
                b(false),
                lit("p"),
                lit(kind),
                n(natts),
                n(0),
                b(false),
                b(false),
                b(false),
                b(false),
                b(false),
                b(true),
                lit("d"),
                b(false),
                n(0),
                n(0),
                null(),
                null(),
                null(),
            ],
        );
    }

    fn attribute(&mut self, rel: u32, name: &str, ty: &DataType, attnum: usize, not_null: bool, has_def: bool) {
        let collation = type_category(ty).1;
        self.push(
            "pg_attribute",
            vec![
                n(rel),
                lit(name),
                n(ty.oid()),
                n(-1),
                n(ty.size()),
                n(attnum),
                n(matches!(ty, DataType::Array(_)) as i32),
                n(ty.typmod()),
                b(not_null),
                b(has_def),
                b(false),
                lit(""),
                lit(""),
                b(false),
                b(true),
                n(0),
                n(collation),
                null(),
                null(),
            ],
        );
    }

    /// A table: its class, columns, defaults, constraints and their indexes.
    fn table(&mut self, catalog: &Catalog, t: &Table) {
        let has_index =
            !t.primary_key.is_empty() || !t.unique.is_empty() || catalog.indexes.values().any(|i| i.table == t.name);
        self.class(t.oid, &t.name, "r", HEAP_AM, t.columns.len(), has_index);
        // PostgreSQL implements foreign keys with triggers, and psql's `\d`
        // lists foreign keys (both directions) only when `relhastriggers` is set.
        let has_fk = !t.foreign_keys.is_empty()
            || catalog.tables.values().any(|o| o.foreign_keys.iter().any(|f| f.foreign_table == t.name));
        if let Some(row) = self.0.last_mut() {
            row.1[18] = n(t.checks.len());
            row.1[20] = b(has_fk);
        }
        self.push(
            "pg_tables",
            vec![lit("public"), lit(&t.name), lit(OWNER_NAME), null(), b(has_index), b(false), b(false), b(false)],
        );
        self.push(
            "information_schema.tables",
            vec![lit("shoal"), lit("public"), lit(&t.name), lit("BASE TABLE"), lit("YES")],
        );
        for (i, c) in t.columns.iter().enumerate() {
            let attnum = i + 1;
            let default = match (&c.default, c.serial, &c.sequence) {
                (Some(d), _, _) => Some(d.clone()),
                (None, true, _) if c.identity => None,
                (None, true, Some(seq)) => Some(format!("nextval({}::regclass)", lit(&ident(seq)))),
                (None, true, None) => Some(format!("nextval('{}_{}_seq'::regclass)", t.name, c.name)),
                (None, false, _) => None,
            };
            self.attribute(t.oid, &c.name, &c.data_type, attnum, !c.nullable, default.is_some());
            if c.identity {
                if let Some(row) = self.0.last_mut() {
                    row.1[11] = lit(if c.identity_always { "a" } else { "d" });
                }
            }
            if let Some(d) = &default {
                let oid = derived_oid(t.oid, 40 + attnum.min(20) as u32);
                self.push("pg_attrdef", vec![n(oid), n(t.oid), n(attnum), lit(d)]);
            }
            self.info_column(t, c, attnum, default.as_deref());
        }
        let attnums = |cols: &[String]| -> Vec<usize> {
            cols.iter().filter_map(|c| t.column(c).map(|(i, _)| i as usize)).collect()
        };
        if !t.primary_key.is_empty() {
            let name = format!("{}_pkey", t.name);
            let (con, idx) = (derived_oid(t.oid, 0), derived_oid(t.oid, 1));
            let def = format!("PRIMARY KEY ({})", idents(&t.primary_key));
            self.constraint(t, con, &name, "p", idx, &attnums(&t.primary_key), None, def);
            let idef = format!(
                "CREATE UNIQUE INDEX {} ON public.{} USING btree ({})",
                ident(&name),
                ident(&t.name),
                idents(&t.primary_key)
            );
            self.index(t, idx, &name, &t.primary_key, true, true, idef);
        }
        for (k, u) in t.unique.iter().enumerate() {
            let (con, idx) = (derived_oid(t.oid, 2 + 2 * k as u32), derived_oid(t.oid, 3 + 2 * k as u32));
            let def = format!("UNIQUE ({})", idents(&u.columns));
            self.constraint(t, con, &u.name, "u", idx, &attnums(&u.columns), None, def);
            let idef = format!(
                "CREATE UNIQUE INDEX {} ON public.{} USING btree ({})",
                ident(&u.name),
                ident(&t.name),
                idents(&u.columns)
            );
            self.index(t, idx, &u.name, &u.columns, true, false, idef);
        }
        for (k, fk) in t.foreign_keys.iter().enumerate() {
            let con = derived_oid(t.oid, 20 + k as u32);
            let target = catalog.table(&fk.foreign_table);
            let fcols: Vec<usize> = target
                .map(|ft| fk.foreign_columns.iter().filter_map(|c| ft.column(c).map(|(i, _)| i as usize)).collect())
                .unwrap_or_default();
            let mut def = format!(
                "FOREIGN KEY ({}) REFERENCES {}({})",
                idents(&fk.columns),
                ident(&fk.foreign_table),
                idents(&fk.foreign_columns)
            );
            // pg_get_constraintdef prints ON UPDATE before ON DELETE, and omits NO ACTION.
            for (word, action) in [("UPDATE", &fk.on_update), ("DELETE", &fk.on_delete)] {
                if let Some(a) = action {
                    def.push_str(&format!(" ON {word} {a}"));
                }
            }
            let actions = (ForeignKeyDef::action_code(&fk.on_update), ForeignKeyDef::action_code(&fk.on_delete));
            let foreign = (target.map(|ft| ft.oid).unwrap_or(0), fcols, actions);
            let index = target.map(|ft| referenced_index(catalog, ft, &fk.foreign_columns)).unwrap_or(0);
            self.constraint(t, con, &fk.name, "f", index, &attnums(&fk.columns), Some(foreign), def);
        }
        for (k, c) in t.checks.iter().enumerate() {
            let con = derived_oid(t.oid, 30 + k as u32);
            let expr = c.expr.trim();
            let body =
                if expr.starts_with('(') && expr.ends_with(')') { expr.to_string() } else { format!("({expr})") };
            self.constraint(t, con, &c.name, "c", 0, &check_columns(t, expr), None, format!("CHECK {body}"));
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn constraint(
        &mut self,
        t: &Table,
        oid: u32,
        name: &str,
        kind: &str,
        index: u32,
        key: &[usize],
        foreign: Option<(u32, Vec<usize>, (&str, &str))>,
        def: String,
    ) {
        let array =
            |k: &[usize]| lit(&format!("{{{}}}", k.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(",")));
        let (frel, fkey) = match &foreign {
            Some((rel, cols, _)) => (n(rel), array(cols)),
            None => (n(0), null()),
        };
        let (update_action, delete_action) = match &foreign {
            Some((_, _, (update, delete))) => (lit(update), lit(delete)),
            None => (lit(" "), lit(" ")),
        };
        let matching = if foreign.is_some() { lit("s") } else { lit(" ") };
        self.push(
            "pg_constraint",
            vec![
                n(oid),
                lit(name),
                n(PUBLIC_OID),
                lit(kind),
                b(false),
                b(false),
                b(true),
                n(t.oid),
                n(0),
                n(index),
                n(0),
                frel,
                update_action,
                delete_action,
                matching,
                b(true),
                n(0),
                b(false),
                if key.is_empty() { null() } else { array(key) },
                fkey,
                null(),
            ],
        );
        self.push("shoal_defs", vec![n(oid), lit(&def), null()]);
        let info_kind = match kind {
            "p" => "PRIMARY KEY",
            "u" => "UNIQUE",
            "f" => "FOREIGN KEY",
            _ => "CHECK",
        };
        self.push(
            "information_schema.table_constraints",
            vec![
                lit("shoal"),
                lit("public"),
                lit(name),
                lit("shoal"),
                lit("public"),
                lit(&t.name),
                lit(info_kind),
                lit("NO"),
                lit("NO"),
            ],
        );
        // A CHECK's columns are in conkey but not key columns.
        let key_columns = if kind == "c" { &[][..] } else { key };
        for (pos, attnum) in key_columns.iter().enumerate() {
            let Some(col) = attnum.checked_sub(1).and_then(|i| t.columns.get(i)) else { continue };
            let unique_pos = if kind == "f" { n(pos + 1) } else { null() };
            self.push(
                "information_schema.key_column_usage",
                vec![
                    lit("shoal"),
                    lit("public"),
                    lit(name),
                    lit("shoal"),
                    lit("public"),
                    lit(&t.name),
                    lit(&col.name),
                    n(pos + 1),
                    unique_pos,
                ],
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn index(&mut self, t: &Table, oid: u32, name: &str, cols: &[String], unique: bool, primary: bool, def: String) {
        let keys: Vec<String> =
            cols.iter().map(|c| t.column(c).map(|(i, _)| i.to_string()).unwrap_or("0".into())).collect();
        let zeros = vec!["0"; keys.len()].join(" ");
        self.class(oid, name, "i", BTREE_AM, cols.len(), false);
        self.push(
            "pg_index",
            vec![
                n(oid),
                n(t.oid),
                n(cols.len()),
                n(cols.len()),
                b(unique),
                b(false),
                b(primary),
                b(false),
                b(true),
                b(false),
                b(true),
                b(false),
                b(true),
                b(true),
                b(false),
                lit(&keys.join(" ")),
                lit(&zeros),
                lit(&zeros),
                lit(&zeros),
                null(),
                null(),
            ],
        );
        let col_array = format!(
            "{{{}}}",
            cols.iter().map(|c| shoal_common::convert::quote_array_element(c)).collect::<Vec<_>>().join(",")
        );
        self.push("shoal_defs", vec![n(oid), lit(&def), lit(&col_array)]);
        self.push("pg_indexes", vec![lit("public"), lit(&t.name), lit(name), null(), lit(&def)]);
    }

    fn info_column(&mut self, t: &Table, c: &crate::catalog::ColumnDef, attnum: usize, default: Option<&str>) {
        use DataType as T;
        let ty = &c.data_type;
        let max_len = match ty {
            T::Varchar(Some(n)) | T::Char(n) => n.to_string(),
            _ => null(),
        };
        let (precision, scale) = match ty {
            T::Int2 => (n(16), n(0)),
            T::Int4 => (n(32), n(0)),
            T::Int8 => (n(64), n(0)),
            T::Float4 => (n(24), null()),
            T::Float8 => (n(53), null()),
            T::Numeric(Some((p, s))) => (n(p), n(s)),
            _ => (null(), null()),
        };
        let dt_precision = if matches!(ty, T::Date) {
            n(0)
        } else if matches!(ty, T::Time | T::Timestamp | T::Timestamptz | T::Interval) {
            n(6)
        } else {
            null()
        };
        self.push(
            "information_schema.columns",
            vec![
                lit("shoal"),
                lit("public"),
                lit(&t.name),
                lit(&c.name),
                n(attnum),
                default.map(lit).unwrap_or_else(null),
                lit(if c.nullable { "YES" } else { "NO" }),
                lit(&info_type_name(ty)),
                max_len,
                precision,
                scale,
                dt_precision,
                lit("shoal"),
                lit("pg_catalog"),
                lit(&ty.type_name()),
                lit(if c.identity { "YES" } else { "NO" }),
                match (c.identity, c.identity_always) {
                    (false, _) => null(),
                    (true, true) => lit("ALWAYS"),
                    (true, false) => lit("BY DEFAULT"),
                },
                lit("NEVER"),
                lit("YES"),
            ],
        );
    }

    /// A sequence: its class, `pg_sequence`, `pg_sequences` (whose
    /// `last_value` the binder reads from the live state) and
    /// `information_schema.sequences` (which, as in PostgreSQL, leaves out
    /// identity columns' sequences).
    fn sequence(&mut self, catalog: &Catalog, s: &crate::catalog::SequenceDef) {
        self.class(s.oid, &s.name, "S", 0, 3, false);
        // The owning column, as psql's `\d seq` ("Owned by") reads it.
        let owner = s.owned_by.as_ref().and_then(|(t, c)| {
            let table = catalog.table(t)?;
            let (attnum, col) = table.column(c)?;
            Some((table.oid, attnum, col.identity))
        });
        if let Some((table_oid, attnum, identity)) = owner {
            self.push(
                "pg_depend",
                vec![
                    n(PG_CLASS_OID),
                    n(s.oid),
                    n(0),
                    n(PG_CLASS_OID),
                    n(table_oid),
                    n(attnum),
                    lit(if identity { "i" } else { "a" }),
                ],
            );
        }
        self.push(
            "pg_sequence",
            vec![
                n(s.oid),
                n(s.data_type.oid()),
                n(s.start),
                n(s.increment),
                n(s.max),
                n(s.min),
                n(s.cache),
                b(s.cycle),
            ],
        );
        let type_name = s.data_type.sql_name();
        self.push(
            "pg_sequences",
            vec![
                lit("public"),
                lit(&s.name),
                lit(OWNER_NAME),
                lit(&type_name),
                n(s.start),
                n(s.min),
                n(s.max),
                n(s.increment),
                b(s.cycle),
                n(s.cache),
                null(),
            ],
        );
        let identity = s
            .owned_by
            .as_ref()
            .is_some_and(|(t, c)| catalog.table(t).and_then(|t| t.column(c)).is_some_and(|(_, col)| col.identity));
        if !identity {
            let precision = match s.data_type {
                DataType::Int2 => 16,
                DataType::Int4 => 32,
                _ => 64,
            };
            self.push(
                "information_schema.sequences",
                vec![
                    lit("shoal"),
                    lit("public"),
                    lit(&s.name),
                    lit(&type_name),
                    n(precision),
                    n(2),
                    n(0),
                    lit(&s.start.to_string()),
                    lit(&s.min.to_string()),
                    lit(&s.max.to_string()),
                    lit(&s.increment.to_string()),
                    lit(if s.cycle { "YES" } else { "NO" }),
                ],
            );
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn type_row(oid: u32, name: &str, len: i32, kind: &str, category: &str, elem: u32, array: u32, collation: u32) -> Row {
    vec![
        n(oid),
        lit(name),
        n(PG_CATALOG_OID),
        n(OWNER_OID),
        n(len),
        b(len > 0 && len <= 8),
        lit(kind),
        lit(category),
        b(false),
        b(true),
        lit(","),
        n(0),
        n(elem),
        n(array),
        b(false),
        n(0),
        n(-1),
        n(0),
        n(collation),
        null(),
    ]
}

/// `pg_type.typcategory` and `typcollation` (100, the default collation, for text types).
fn type_category(t: &DataType) -> (&'static str, u32) {
    use DataType as T;
    match t {
        T::Bool => ("B", 0),
        T::Int2 | T::Int4 | T::Int8 | T::Float4 | T::Float8 | T::Numeric(_) | T::Oid => ("N", 0),
        T::Text | T::Varchar(_) | T::Char(_) | T::Name => ("S", 100),
        T::CatalogChar => ("Z", 0),
        T::Date | T::Time | T::Timestamp | T::Timestamptz => ("D", 0),
        T::Interval => ("T", 0),
        T::Array(_) => ("A", 0),
        _ => ("U", 0),
    }
}

/// An OID derived from a table's OID for its constraints and constraint indexes.
/// The unique index a foreign key's referenced columns rely on
/// (`pg_constraint.conindid` of the key): as PostgreSQL, one whose columns
/// are the referenced columns in any order — the primary key's, a UNIQUE
/// constraint's, else a unique index's; 0 when there is none.
fn referenced_index(catalog: &Catalog, target: &Table, columns: &[String]) -> u32 {
    let set = |cols: &[String]| {
        let mut v = cols.to_vec();
        v.sort();
        v
    };
    let want = set(columns);
    if !target.primary_key.is_empty() && set(&target.primary_key) == want {
        return derived_oid(target.oid, 1);
    }
    if let Some(k) = target.unique.iter().position(|u| set(&u.columns) == want) {
        return derived_oid(target.oid, 3 + 2 * k as u32);
    }
    catalog
        .indexes
        .values()
        .filter(|i| i.unique && i.table == target.name && set(&i.columns) == want)
        .map(|i| i.oid)
        .min()
        .unwrap_or(0)
}

fn derived_oid(table_oid: u32, k: u32) -> u32 {
    table_oid.saturating_mul(64).saturating_add(k % 64)
}

/// `information_schema.columns.data_type`: the type name without modifiers.
fn info_type_name(t: &DataType) -> String {
    match t {
        DataType::Varchar(_) => "character varying".into(),
        DataType::Char(_) => "character".into(),
        DataType::Numeric(_) => "numeric".into(),
        DataType::Array(_) => "ARRAY".into(),
        other => other.sql_name(),
    }
}

/// The attribute numbers of `t`'s columns a CHECK expression mentions, in
/// order of first appearance, as PostgreSQL's `pg_constraint.conkey` lists
/// them. Words
/// followed by `(` (functions) or preceded by `::` (types) are not columns.
fn check_columns(t: &Table, expr: &str) -> Vec<usize> {
    use sqlparser::tokenizer::{Token, Tokenizer};
    let Ok(tokens) = Tokenizer::new(&sqlparser::dialect::PostgreSqlDialect {}, expr).tokenize() else {
        return Vec::new();
    };
    let tokens: Vec<&Token> = tokens.iter().filter(|t| !matches!(t, Token::Whitespace(_))).collect();
    let mut attnums: Vec<usize> = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        let Token::Word(word) = token else { continue };
        let called = matches!(tokens.get(i + 1), Some(Token::LParen));
        let cast = i > 0 && matches!(tokens[i - 1], Token::DoubleColon);
        if called || cast {
            continue;
        }
        let name = if word.quote_style.is_some() { word.value.clone() } else { word.value.to_lowercase() };
        if let Some((attnum, _)) = t.column(&name) {
            if !attnums.contains(&(attnum as usize)) {
                attnums.push(attnum as usize);
            }
        }
    }
    attnums
}
