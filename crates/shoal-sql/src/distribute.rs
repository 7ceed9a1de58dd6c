//! Citus's distribution functions, for tools that cannot write
//! `CREATE TABLE … WITH (shard_key = …)` (most migration tools emit plain
//! PostgreSQL DDL, then run a statement of their user's):
//!
//! ```text
//!   SELECT create_distributed_table('orders', 'user_id')                       hash by user_id, 1 shard
//!   SELECT create_distributed_table('orders', 'user_id', shard_count => 8)    … in 8 shards
//!   SELECT create_distributed_table('orders', 'user_id', colocate_with => 'users')  as many shards as users
//!   SELECT create_reference_table('countries')                                 copied to every shard
//!   SELECT undistribute_table('orders')                                        back to a local table
//! ```
//!
//! Each is the whole statement and changes only the catalog: every shard
//! lives in the one data group, so no row moves. It answers one row with an
//! empty value, as Citus's `void` functions do.

use shoal_common::{Error, Result, SqlState};
use sqlparser::ast::{self, Expr};

use crate::binder::fold;
use crate::catalog::{Catalog, Distribution};
use crate::ddl::{fold_option, parse_shard_count, shard_counts, shard_key_of};
use crate::plan::Plan;

/// The plan of `SELECT <distribution function>(…)`, or `None` when `q` is
/// not such a statement.
pub fn distribution_call(q: &ast::Query, catalog: &Catalog) -> Option<Result<Plan>> {
    let (function, f) = crate::session::sole_call(q)?;
    if !["create_distributed_table", "create_reference_table", "undistribute_table"].contains(&function.as_str()) {
        return None;
    }
    Some(call(&function, f, catalog).map(|catalog| Plan::Distribute { catalog, function }))
}

/// The function's arguments: positional ones in order, then named ones.
struct Args {
    positional: Vec<String>,
    named: Vec<(String, String)>,
}

impl Args {
    fn parse(function: &str, f: &ast::Function) -> Result<Args> {
        let ast::FunctionArguments::List(list) = &f.args else {
            return Err(Error::new(SqlState::UNDEFINED_FUNCTION, format!("{function} needs a table name")));
        };
        let mut args = Args { positional: Vec::new(), named: Vec::new() };
        for arg in &list.args {
            match arg {
                ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => args.positional.push(literal(function, e)?),
                ast::FunctionArg::Named { name, arg: ast::FunctionArgExpr::Expr(e), .. } => {
                    args.named.push((fold(name), literal(function, e)?))
                }
                ast::FunctionArg::ExprNamed {
                    name: Expr::Identifier(name),
                    arg: ast::FunctionArgExpr::Expr(e),
                    ..
                } => args.named.push((fold(name), literal(function, e)?)),
                other => return Err(Error::unsupported(format!("the argument {other} of {function}"))),
            }
        }
        Ok(args)
    }

    /// The argument at `position`, or the one called `name`.
    fn get(&self, position: usize, name: &str) -> Option<&str> {
        self.named
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .or(self.positional.get(position).map(String::as_str))
    }
}

/// A literal argument as text: `'orders'`, `'orders'::regclass`, `8`.
fn literal(function: &str, e: &Expr) -> Result<String> {
    match e {
        Expr::Nested(inner) | Expr::Cast { expr: inner, .. } => literal(function, inner),
        Expr::Value(v) => match &v.value {
            ast::Value::SingleQuotedString(s) => Ok(s.clone()),
            ast::Value::Number(n, _) => Ok(n.clone()),
            ast::Value::Null => {
                Err(Error::new(SqlState::NULL_VALUE_NOT_ALLOWED, format!("{function}: an argument is null")))
            }
            other => Err(Error::unsupported(format!("the argument {other} of {function} (give a literal)"))),
        },
        other => Err(Error::unsupported(format!("the argument {other} of {function} (give a literal)"))),
    }
}

/// A table named in an argument (`'orders'`, `'public.orders'`, `'"Orders"'`).
fn table_name(catalog: &Catalog, text: &str) -> Result<String> {
    let name = fold_option(text.strip_prefix("public.").unwrap_or(text));
    if catalog.view(&name).is_some() {
        return Err(Error::new(SqlState::WRONG_OBJECT_TYPE, format!("\"{name}\" is a view, not a table")));
    }
    if catalog.table(&name).is_none() {
        return Err(Error::new(SqlState::UNDEFINED_TABLE, format!("relation \"{name}\" does not exist")));
    }
    Ok(name)
}

/// The catalog after the call.
fn call(function: &str, f: &ast::Function, catalog: &Catalog) -> Result<Catalog> {
    let args = Args::parse(function, f)?;
    let known: &[&str] = match function {
        "create_distributed_table" => {
            &["table_name", "distribution_column", "distribution_type", "colocate_with", "shard_count"]
        }
        _ => &["table_name"],
    };
    if args.positional.len() > known.len().min(4) {
        return Err(Error::new(
            SqlState::UNDEFINED_FUNCTION,
            format!("{function} takes at most {} positional arguments", known.len().min(4)),
        ));
    }
    if let Some((name, _)) = args.named.iter().find(|(n, _)| !known.contains(&n.as_str())) {
        return Err(Error::new(SqlState::UNDEFINED_FUNCTION, format!("{function} has no argument \"{name}\""))
            .with_hint(format!("Its arguments are {}.", known.join(", "))));
    }
    let Some(table) = args.get(0, "table_name") else {
        return Err(Error::new(SqlState::UNDEFINED_FUNCTION, format!("{function} needs a table name")));
    };
    let table = table_name(catalog, table)?;
    let mut next = catalog.clone();
    let current = &catalog.tables[&table].distribution;
    let distribution = match function {
        "create_distributed_table" => {
            let Some(column) = args.get(1, "distribution_column") else {
                return Err(Error::new(
                    SqlState::UNDEFINED_FUNCTION,
                    "create_distributed_table needs a distribution column",
                ));
            };
            if *current != Distribution::Local {
                return Err(already(&table, current));
            }
            let column = fold_option(column);
            let kind = shard_key_of(&catalog.tables[&table], &column)?;
            match args.get(2, "distribution_type").map(str::to_lowercase).as_deref() {
                None | Some("hash") => {}
                Some(other) => {
                    return Err(Error::unsupported(format!("distribution_type '{other}' (only 'hash' exists today)")))
                }
            }
            let colocate =
                args.get(3, "colocate_with").map(str::to_lowercase).filter(|c| c != "default" && c != "none");
            let shard_count = args.get(usize::MAX, "shard_count");
            let shards = match (colocate, shard_count) {
                (Some(_), Some(_)) => {
                    return Err(Error::new(
                        SqlState::INVALID_PARAMETER_VALUE,
                        "give colocate_with or shard_count, not both",
                    )
                    .with_hint("A colocated table has as many shards as the table it is colocated with."))
                }
                (None, Some(n)) => parse_shard_count(n).ok_or_else(|| {
                    Error::new(
                        SqlState::INVALID_PARAMETER_VALUE,
                        format!("invalid shard_count \"{n}\": {}", shard_counts()),
                    )
                })?,
                (None, None) => 1,
                (Some(other), None) => {
                    let other = table_name(catalog, &other)?;
                    let Distribution::Hash { column: other_key, shards } = &catalog.tables[&other].distribution else {
                        return Err(Error::new(
                            SqlState::INVALID_TABLE_DEFINITION,
                            format!("cannot colocate with \"{other}\": it is not a distributed table"),
                        ));
                    };
                    if shard_key_of(&catalog.tables[&other], other_key).ok() != Some(kind) {
                        return Err(Error::new(
                            SqlState::DATATYPE_MISMATCH,
                            format!(
                                "cannot colocate \"{table}\" with \"{other}\": their shard keys \"{column}\" and \"{other_key}\" hash differently"
                            ),
                        )
                        .with_hint("Colocated tables need shard keys of the same kind: both integers or both text."));
                    }
                    *shards
                }
            };
            Distribution::Hash { column, shards }
        }
        "create_reference_table" => {
            if *current != Distribution::Local {
                return Err(already(&table, current));
            }
            Distribution::Reference
        }
        _ => {
            if *current == Distribution::Local {
                return Err(Error::new(
                    SqlState::INVALID_TABLE_DEFINITION,
                    format!("table \"{table}\" is not distributed"),
                ));
            }
            Distribution::Local
        }
    };
    if let Some(t) = next.tables.get_mut(&table) {
        t.distribution = distribution;
    }
    Ok(next)
}

fn already(table: &str, current: &Distribution) -> Error {
    Error::new(
        SqlState::INVALID_TABLE_DEFINITION,
        format!(
            "table \"{table}\" is already {}",
            match current {
                Distribution::Reference => "a reference table",
                _ => "distributed",
            }
        ),
    )
    .with_hint("undistribute_table() first to distribute it differently.")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse, plan};

    fn run(catalog: &Catalog, sql: &str) -> Result<Catalog> {
        match plan(&parse(sql).unwrap()[0], catalog, &[])? {
            Plan::Ddl { catalog, .. } | Plan::Distribute { catalog, .. } => Ok(catalog),
            other => panic!("{sql}: {other:?}"),
        }
    }

    fn base() -> Catalog {
        crate::catalog_after(&[
            "CREATE TABLE users (id BIGINT PRIMARY KEY, name TEXT)",
            "CREATE TABLE orders (id INT PRIMARY KEY, user_id BIGINT, code TEXT)",
            "CREATE TABLE countries (code TEXT PRIMARY KEY)",
            "CREATE VIEW v AS SELECT id FROM users",
        ])
    }

    #[test]
    fn citus_functions_change_the_catalog() {
        let c = base();
        let c = run(&c, "SELECT create_distributed_table('users', 'id', shard_count => 4)").unwrap();
        assert_eq!(c.tables["users"].distribution, Distribution::Hash { column: "id".into(), shards: 4 });
        let c =
            run(&c, "SELECT create_distributed_table('public.orders'::regclass, 'user_id', colocate_with => 'users')")
                .unwrap();
        assert_eq!(c.tables["orders"].distribution, Distribution::Hash { column: "user_id".into(), shards: 4 });
        let c = run(&c, "SELECT create_reference_table('countries')").unwrap();
        assert_eq!(c.tables["countries"].distribution, Distribution::Reference);
        let c = run(&c, "SELECT undistribute_table('orders')").unwrap();
        assert_eq!(c.tables["orders"].distribution, Distribution::Local);
        let c = run(&c, "SELECT create_distributed_table('orders', 'code', 'hash')").unwrap();
        assert_eq!(c.tables["orders"].distribution, Distribution::Hash { column: "code".into(), shards: 1 });
    }

    #[test]
    fn bad_calls_say_what_to_fix() {
        let c = run(&base(), "SELECT create_distributed_table('users', 'id')").unwrap();
        for (sql, code) in [
            ("SELECT create_distributed_table('users', 'id')", "42P16"),
            ("SELECT create_reference_table('users')", "42P16"),
            ("SELECT undistribute_table('countries')", "42P16"),
            ("SELECT create_distributed_table('nope', 'id')", "42P01"),
            ("SELECT create_distributed_table('v', 'id')", "42809"),
            ("SELECT create_distributed_table('orders', 'nope')", "42703"),
            ("SELECT create_distributed_table('orders', 'user_id', 'range')", "0A000"),
            ("SELECT create_distributed_table('orders', 'user_id', shard_count => 0)", "22023"),
            (
                "SELECT create_distributed_table('orders', 'user_id', shard_count => 2, colocate_with => 'users')",
                "22023",
            ),
            ("SELECT create_distributed_table('orders', 'user_id', colocate_with => 'countries')", "42P16"),
            ("SELECT create_distributed_table('orders', 'code', colocate_with => 'users')", "42804"),
            ("SELECT create_distributed_table('orders', 'user_id', shards => 2)", "42883"),
            ("SELECT create_distributed_table('orders')", "42883"),
            ("SELECT create_distributed_table('orders', NULL)", "22004"),
            ("SELECT create_distributed_table('orders', $1)", "0A000"),
        ] {
            let err = run(&c, sql).unwrap_err();
            assert_eq!(err.code.as_str(), code, "{sql}: {err}");
        }
    }
}
