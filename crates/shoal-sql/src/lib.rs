//! # shoal-sql — PostgreSQL-dialect SQL → typed plan → SQLite SQL
//!
//! Clients speak PostgreSQL; replicas store data in SQLite. This crate is the
//! bridge: it parses a statement in PostgreSQL's dialect, binds every name
//! against Shoal's typed [`Catalog`], infers PostgreSQL types for every
//! expression and parameter, and emits SQLite SQL with the same meaning. The
//! result is a [`Plan`] the executor runs without further thought.
//!
//! ```text
//!   "SELECT name FROM users WHERE id = $1"
//!        │ parser   (sqlparser, PostgreSqlDialect)          → ast::Statement
//!        │ binder   (names → catalog, types, coercions)     → Typed fragments
//!        │   query / dml / ddl / session: one module per statement family
//!        ▼ plan     Plan::Query { sql: SELECT "users"."name" AS "name" FROM "users" AS "users"
//!                                      WHERE ("users"."id" = ?1),
//!                                  param_types: [int4], columns: [name text (table oid, attnum 2)] }
//! ```
//!
//! ## The type/storage contract
//! Values are stored as documented in `shoal_common::types` (booleans 0/1,
//! timestamps as UTC text, NUMERIC as exact text compared under the
//! `pg_numeric` collation, …). Everything written goes
//! through an assignment coercion that produces that representation, and
//! named CHECK constraints in the generated DDL refuse anything else (SQLite
//! would otherwise store `'abc'` in an INTEGER column). [`map_sqlite_error`]
//! turns SQLite's constraint messages back into PostgreSQL errors. Client
//! values are never spliced into SQL: `$n` becomes `?n`, and bound values are
//! expected in the storage representation of `param_types[n-1]`.
//!
//! Functions SQLite lacks are `pg_*` Rust functions registered by
//! `shoal_storage::functions`; the non-deterministic ones (`shoal_now()`,
//! `shoal_random()`, `gen_random_uuid()`) are pinned per transaction by the
//! storage layer, so replicas replaying a statement compute the same values.
//!
//! ## Out of scope
//! Routing and sharding (the router), execution (the storage/executor), the
//! wire encoding (pgwire). Anything this crate cannot translate faithfully is
//! refused with SQLSTATE 0A000 naming the construct; it is never passed
//! through to SQLite in the hope that it means the same thing. `docs/sql.md`
//! lists what is supported.

pub mod catalog;
pub mod errors;
pub mod parser;
pub mod plan;

mod binder;
mod catalog_expr;
mod coerce;
mod ddl;
mod distribute;
mod dml;
mod expr;
mod func;
mod grouping;
mod query;
pub mod route;
mod sequence;
mod session;
mod system;
mod system_views;

/// PostgreSQL identifier folding (unquoted names are lower-cased).
pub use binder::fold as fold_ident;
pub use catalog::{
    Catalog, CheckDef, ColumnDef, Distribution, ForeignKeyDef, IndexDef, SequenceDef, Table, UniqueDef, ViewColumn,
    ViewDef,
};
pub use errors::{
    map_sqlite_error, map_write_error, unique_key_probe, unique_violation_detail, write_target, WriteTarget,
};
pub use parser::{parse, AlterSequence, AlterSequenceAction, Fetch, FetchDirection, Stmt};
pub use plan::{AdminCall, KeyProbe, OutputColumn, Plan, SettingArg, SystemReads, TxnControl, WriteKind};
pub use route::{KeyValue, Route, TableRoute};
pub use system::catalog_schema_sql;
pub use system_views::{membership_view, system_views, verify_view, SystemView};

use shoal_common::{DataType, Error, Result, Value};
use sqlparser::ast::Statement;

use crate::binder::Binder;

/// Plans one statement. `param_types[i]` is the client-declared type of
/// `$i+1` (`None`: infer from context; what cannot be inferred is `text`).
pub fn plan(stmt: &Stmt, catalog: &Catalog, param_types: &[Option<DataType>]) -> Result<Plan> {
    let stmt = match stmt {
        Stmt::Sql(s) => s,
        Stmt::AlterSequence(a) => return Binder::new(catalog, param_types).alter_sequence(a),
        Stmt::Fetch(f) => return Ok(Plan::Fetch(f.clone())),
    };
    if let Some(p) = session::transaction(stmt) {
        return p;
    }
    if let Statement::Explain { .. } = stmt {
        return explain(stmt, catalog, param_types);
    }
    plan_sql(stmt, catalog, param_types).map(|(plan, _)| plan)
}

/// Plans a statement other than transaction control and `EXPLAIN`; also
/// returns the relations it names (see [`route::route`]).
fn plan_sql(stmt: &Statement, catalog: &Catalog, param_types: &[Option<DataType>]) -> Result<(Plan, Vec<String>)> {
    let mut b = Binder::new(catalog, param_types);
    let plan = match stmt {
        Statement::Query(q) => {
            if let Some(plan) = session::set_config(q) {
                return plan.map(|p| (p, Vec::new()));
            }
            if let Some(plan) = distribute::distribution_call(q, catalog) {
                return plan.map(|p| (p, Vec::new()));
            }
            if !q.locks.is_empty() {
                // FOR UPDATE/SHARE: a shard has one writer at a time, so the lock is implied.
            }
            let (sql, columns) = b.query(q, None)?;
            if b.sequence_writes {
                // nextval()/setval() write: the statement runs as a write.
                Plan::Write {
                    kind: WriteKind::Select,
                    sql,
                    param_types: b.param_types(),
                    columns,
                    sequence_state: false,
                    key_probe: None,
                    lifted: Vec::new(),
                }
            } else {
                Plan::Query { sql, param_types: b.param_types(), columns, reads: b.reads, sequence_state: false }
            }
        }
        Statement::Insert(i) => b.insert(i)?,
        Statement::Update(u) => b.update(u)?,
        Statement::Delete(d) => b.delete(d)?,
        other => return plan_other(&mut b, other).map(|p| (p, Vec::new())),
    };
    Ok((finish(plan, b.sequence_state, std::mem::take(&mut b.lifted)), b.relations))
}

/// `EXPLAIN [ ( option [, …] ) ] statement`: the statement's plan and route.
/// Options PostgreSQL accepts that change nothing here (`VERBOSE`, `COSTS`,
/// …) are accepted; `ANALYZE` and formats other than text are refused.
fn explain(stmt: &Statement, catalog: &Catalog, param_types: &[Option<DataType>]) -> Result<Plan> {
    use sqlparser::ast::{AnalyzeFormat, AnalyzeFormatKind, DescribeAlias};
    let Statement::Explain { describe_alias, analyze, query_plan, estimate, statement, format, options, .. } = stmt
    else {
        return Err(Error::internal("explain() of another statement"));
    };
    if *describe_alias != DescribeAlias::Explain || *query_plan || *estimate {
        return Err(Error::unsupported(format!("{describe_alias} in this form (use EXPLAIN statement)")));
    }
    let analyze_refused = || {
        Error::unsupported("EXPLAIN ANALYZE").with_hint("EXPLAIN without ANALYZE shows the route and SQLite's plan.")
    };
    if *analyze {
        return Err(analyze_refused());
    }
    if let Some(AnalyzeFormatKind::Keyword(f) | AnalyzeFormatKind::Assignment(f)) = format {
        if *f != AnalyzeFormat::TEXT {
            return Err(Error::unsupported(format!("EXPLAIN (FORMAT {f})")).with_hint("Use FORMAT TEXT."));
        }
    }
    for option in options.iter().flatten() {
        let name = binder::fold(&option.name);
        let arg = option.arg.as_ref().map(|a| a.to_string().trim_matches('\'').to_lowercase());
        let on = !matches!(arg.as_deref(), Some("false" | "off" | "0"));
        match name.as_str() {
            "analyze" if on => return Err(analyze_refused()),
            "format" if arg.as_deref() != Some("text") => {
                return Err(Error::unsupported(format!("EXPLAIN (FORMAT {})", arg.unwrap_or_default())))
            }
            "analyze" | "format" | "verbose" | "costs" | "settings" | "generic_plan" | "buffers" | "wal" | "timing"
            | "summary" | "memory" | "serialize" => {}
            _ => return Err(Error::syntax(format!("unrecognized EXPLAIN option \"{name}\""))),
        }
    }
    let (inner, relations) = plan_sql(statement, catalog, param_types)?;
    if !matches!(inner, Plan::Query { .. } | Plan::Write { .. }) {
        return Err(Error::unsupported(format!("EXPLAIN of {}", statement_name(statement))));
    }
    let route = route::route(statement, &relations, catalog);
    Ok(Plan::Explain { statement: Box::new(inner), route })
}

/// Numbers the parameters the binder placed after the client's: lifted
/// constants, then the session's sequence state for `currval`/`lastval`.
fn finish(plan: Plan, uses_state: bool, lifted: Vec<Value>) -> Plan {
    if !uses_state && lifted.is_empty() {
        return plan;
    }
    match plan {
        Plan::Query { sql, param_types, columns, reads, .. } => {
            let sql = binder::number_placeholders(&sql, param_types.len(), 0);
            Plan::Query { sql, param_types, columns, reads, sequence_state: uses_state }
        }
        Plan::Write { kind, sql, param_types, columns, mut key_probe, .. } => {
            let number = |sql: &str| binder::number_placeholders(sql, param_types.len(), lifted.len());
            let sql = number(&sql);
            if uses_state {
                // The probe's cells would need the state parameter too: drop it.
                key_probe = None;
            }
            if let Some(probe) = &mut key_probe {
                for cell in probe.rows.iter_mut().flatten() {
                    *cell = number(cell);
                }
            }
            Plan::Write { kind, sql, param_types, columns, sequence_state: uses_state, key_probe, lifted }
        }
        other => other,
    }
}

/// `DECLARE name [NO] [SCROLL] CURSOR [WITHOUT HOLD] FOR query`.
fn declare_cursor(b: &mut Binder<'_>, stmts: &[sqlparser::ast::Declare]) -> Result<Plan> {
    let [d] = stmts else { return Err(Error::unsupported("DECLARE of several names")) };
    let (Some(sqlparser::ast::DeclareType::Cursor), [name], Some(q)) =
        (&d.declare_type, d.names.as_slice(), &d.for_query)
    else {
        return Err(Error::unsupported("DECLARE other than a cursor"));
    };
    if d.binary == Some(true) {
        return Err(Error::unsupported("BINARY cursors"));
    }
    if d.hold == Some(true) {
        return Err(Error::unsupported("WITH HOLD cursors"));
    }
    let (sql, columns) = b.query(q, None)?;
    if b.sequence_writes {
        return Err(Error::unsupported("a cursor over nextval() or setval()"));
    }
    let query = finish(
        Plan::Query { sql, param_types: b.param_types(), columns, reads: b.reads, sequence_state: false },
        b.sequence_state,
        Vec::new(),
    );
    Ok(Plan::DeclareCursor { name: binder::fold(name), query: Box::new(query), scroll: d.scroll })
}

/// Statements other than queries and DML.
fn plan_other(b: &mut Binder<'_>, stmt: &Statement) -> Result<Plan> {
    match stmt {
        Statement::CreateTable(ct) => b.create_table(ct),
        Statement::AlterTable(at) => b.alter_table(at),
        Statement::CreateIndex(ci) => b.create_index(ci),
        Statement::Drop { object_type, if_exists, names, cascade, .. } => {
            b.drop(object_type, *if_exists, names, *cascade)
        }
        Statement::Declare { stmts, .. } => declare_cursor(b, stmts),
        Statement::Close { cursor } => Ok(Plan::CloseCursor(match cursor {
            sqlparser::ast::CloseCursor::All => None,
            sqlparser::ast::CloseCursor::Specific { name } => Some(binder::fold(name)),
        })),
        Statement::CreateSequence { temporary, if_not_exists, name, sequence_options } => {
            b.create_sequence(name, *if_not_exists, *temporary, sequence_options)
        }
        Statement::CreateView(cv) => b.create_view(cv),
        Statement::Truncate(t) => b.truncate(t),
        Statement::CreateSchema { schema_name, if_not_exists, .. } => create_schema(schema_name, *if_not_exists),
        Statement::Set(s) => session::set(s),
        Statement::Reset(r) => session::reset(r),
        Statement::ShowVariable { variable } => Ok(session::show(variable)),
        // Shoal keeps no SQL-level prepared statements (protocol-level ones
        // are the wire layer's), so there is nothing to deallocate.
        Statement::Deallocate { prepare, .. } => {
            let tag = if prepare.to_string().eq_ignore_ascii_case("all") { "DEALLOCATE ALL" } else { "DEALLOCATE" };
            Ok(Plan::Noop { tag: tag.into(), notice: None })
        }
        Statement::Discard { .. } => Ok(Plan::Noop { tag: "DISCARD ALL".into(), notice: None }),
        other => Err(Error::unsupported(statement_name(other))),
    }
}

fn create_schema(name: &sqlparser::ast::SchemaName, if_not_exists: bool) -> Result<Plan> {
    let text = name.to_string().trim_matches('"').to_lowercase();
    if text != "public" {
        return Err(Error::unsupported("schemas other than public"));
    }
    if if_not_exists {
        return Ok(Plan::Noop {
            tag: "CREATE SCHEMA".into(),
            notice: Some("schema \"public\" already exists, skipping".into()),
        });
    }
    Err(Error::new(shoal_common::SqlState::parse("42P06"), "schema \"public\" already exists"))
}

/// The first words of a statement, to name it in a 0A000 error.
fn statement_name(stmt: &Statement) -> String {
    let text = stmt.to_string();
    let words: Vec<&str> = text.split_whitespace().take(2).collect();
    format!("the statement {}", words.join(" "))
}

/// The catalog after running DDL statements on an empty one (for tests).
#[cfg(test)]
pub(crate) fn catalog_after(ddl: &[&str]) -> Catalog {
    let mut catalog = Catalog::default();
    for sql in ddl {
        match plan(&parse(sql).unwrap()[0], &catalog, &[]).unwrap() {
            Plan::Ddl { catalog: next, .. } | Plan::Distribute { catalog: next, .. } => catalog = next,
            other => panic!("{sql}: {other:?}"),
        }
    }
    catalog
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        let stmt = &parse("CREATE TABLE t (id SERIAL PRIMARY KEY, a INT, b TEXT, c JSONB, d TIMESTAMP)").unwrap()[0];
        match plan(stmt, &Catalog::default(), &[]).unwrap() {
            Plan::Ddl { catalog, .. } => catalog,
            other => panic!("{other:?}"),
        }
    }

    /// A xorshift generator: the fuzz corpus is the same on every run.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn garbage_and_mutated_sql_never_panics() {
        let cat = catalog();
        let seeds = [
            "SELECT a, count(*) FROM t WHERE b ILIKE $1 GROUP BY a HAVING count(*) > 1 ORDER BY 1 DESC LIMIT 3",
            "INSERT INTO t (a, b) VALUES (1, 'x') ON CONFLICT (id) DO UPDATE SET a = EXCLUDED.a RETURNING *",
            "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM r) SELECT * FROM r",
            "SELECT c->>'k', d + interval '1 day', extract(year from d), row_number() OVER (PARTITION BY a) FROM t",
            "UPDATE t SET b = upper(b) || 'x' WHERE id IN (SELECT id FROM t WHERE a BETWEEN 1 AND 2)",
            "CREATE TABLE u (x VARCHAR(3) CHECK (x <> ''), y NUMERIC(5,2) DEFAULT 0, FOREIGN KEY (x) REFERENCES t(b))",
            "EXPLAIN (COSTS OFF) SELECT a FROM t WHERE id IN ($1, 2) AND b = 'x'::text ORDER BY a",
            "CREATE TABLE v (k TEXT PRIMARY KEY, n INT) WITH (shard_key = 'k', shards = 8, strategy = 'hash')",
        ];
        let tokens =
            ["(", ")", ",", "'", "$1", "::", "SELECT", "FROM", "*", "NULL", "->", "||", ";", "1e999", "\"", "-"];
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for round in 0..3000 {
            let base = seeds[round % seeds.len()];
            let mut words: Vec<String> = base.split(' ').map(String::from).collect();
            for _ in 0..(next(&mut state) % 4) {
                let i = (next(&mut state) as usize) % words.len();
                match next(&mut state) % 3 {
                    0 => {
                        words.remove(i);
                        if words.is_empty() {
                            words.push("x".into());
                        }
                    }
                    1 => words.insert(i, tokens[(next(&mut state) as usize) % tokens.len()].into()),
                    _ => {
                        let j = (next(&mut state) as usize) % words.len();
                        words.swap(i, j)
                    }
                }
            }
            let sql = words.join(" ");
            if let Ok(stmts) = parse(&sql) {
                for s in &stmts {
                    let _ = plan(s, &cat, &[]);
                }
            }
            let bytes: String =
                (0..(next(&mut state) % 40)).map(|_| (32 + (next(&mut state) % 95) as u8) as char).collect();
            if let Ok(stmts) = parse(&bytes) {
                for s in &stmts {
                    let _ = plan(s, &cat, &[]);
                }
            }
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let sql = format!("SELECT {}1{}", "(".repeat(5000), ")".repeat(5000));
        assert!(parse(&sql).is_err());
    }

    #[test]
    fn unsupported_constructs_are_0a000() {
        let cat = catalog();
        for sql in [
            "SELECT 1 INTERSECT ALL SELECT 1",
            "SELECT b SIMILAR TO 'x' FROM t",
            "SELECT ARRAY[1,2]",
            "CREATE TABLE v (id INT, n INT GENERATED ALWAYS AS (id + 1) STORED)",
            "CREATE TEMPORARY SEQUENCE s",
            "CREATE VIEW w AS SELECT nextval('t_id_seq')",
            "COPY t FROM STDIN",
            "SELECT d AT TIME ZONE 'UTC' FROM t",
        ] {
            let err = parse(sql).and_then(|s| plan(&s[0], &cat, &[])).unwrap_err();
            assert_eq!(err.code, shoal_common::SqlState::FEATURE_NOT_SUPPORTED, "{sql}: {err}");
        }
    }

    fn write_of(sql: &str, client: &[Option<DataType>]) -> (String, Vec<Value>, bool, Option<KeyProbe>) {
        let stmt = &parse(sql).unwrap()[0];
        match plan(stmt, &catalog(), client).unwrap() {
            Plan::Write { sql, lifted, sequence_state, key_probe, .. } => (sql, lifted, sequence_state, key_probe),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn insert_constants_become_parameters_after_the_clients() {
        let (first, lifted, _, probe) = write_of("INSERT INTO t (a, b) VALUES (1, 'x''y')", &[]);
        let (second, _, _, _) = write_of("INSERT INTO t (a, b) VALUES (-20, 'z')", &[]);
        assert_eq!(first, second, "one statement text for both");
        assert_eq!(lifted, vec![Value::Integer(1), Value::Text("x'y".into())]);
        assert!(first.contains("VALUES (?1, ?2, shoal_nextval("), "{first}");
        assert_eq!(probe.unwrap().rows[0][..2], ["?1".to_string(), "?2".to_string()]);

        // After the client's parameters; folded constants are lifted,
        // expressions stay inline.
        let (sql, lifted, _, _) = write_of("INSERT INTO t (a, b) VALUES ($1, 'v'), (2 + 3, upper('w'))", &[]);
        assert!(sql.contains("VALUES (?1, ?2, ") && sql.contains("(?3, pg_upper('w'), "), "{sql}");
        assert_eq!(lifted, vec![Value::Text("v".into()), Value::Integer(5)]);

        // The session's sequence state comes after the lifted constants.
        let (sql, lifted, state, probe) = write_of("INSERT INTO t (a, b) VALUES (currval('t_id_seq'), 'q')", &[]);
        assert!(state && probe.is_none());
        assert_eq!(lifted, vec![Value::Text("q".into())]);
        assert!(sql.contains("shoal_currval(?2, ") && sql.contains("?1"), "{sql}");
    }
}
