//! Transaction control and session settings (BEGIN/COMMIT…, SET/RESET/SHOW).
//!
//! These never touch SQLite SQL: the executor owns transaction state and
//! settings. Settings Shoal cannot honour (another time zone, another client
//! encoding) are accepted here and validated by the session, which knows
//! which values it supports.

use shoal_common::{Error, Result};
use sqlparser::ast::{self, Expr, Statement};

use crate::binder::fold;
use crate::expr::string_value;
use shoal_common::{DataType, SqlState};

use crate::plan::{Plan, SettingArg, TxnControl};

pub fn transaction(stmt: &Statement) -> Option<Result<Plan>> {
    let plan = match stmt {
        Statement::StartTransaction { modes, .. } => {
            let read_only = modes
                .iter()
                .any(|m| matches!(m, ast::TransactionMode::AccessMode(ast::TransactionAccessMode::ReadOnly)));
            TxnControl::Begin { read_only }
        }
        Statement::Commit { chain: false, .. } => TxnControl::Commit,
        Statement::Rollback { chain: false, savepoint: None } => TxnControl::Rollback,
        Statement::Rollback { chain: false, savepoint: Some(s) } => TxnControl::RollbackTo(fold(s)),
        Statement::Savepoint { name } => TxnControl::Savepoint(fold(name)),
        Statement::ReleaseSavepoint { name } => TxnControl::Release(fold(name)),
        Statement::Commit { .. } | Statement::Rollback { .. } => {
            return Some(Err(Error::unsupported("AND CHAIN")));
        }
        _ => return None,
    };
    Some(Ok(Plan::Transaction(plan)))
}

/// The text of a setting's value as PostgreSQL would store it.
fn value_text(e: &Expr) -> Result<String> {
    match e {
        Expr::Value(v) => match string_value(&v.value) {
            Some(s) => Ok(s),
            None => Ok(v.value.to_string()),
        },
        Expr::Identifier(i) => Ok(fold(i)),
        Expr::UnaryOp { op: ast::UnaryOperator::Minus, expr } => Ok(format!("-{}", value_text(expr)?)),
        other => Err(Error::unsupported(format!("the setting value {other}"))),
    }
}

pub fn set(s: &ast::Set) -> Result<Plan> {
    match s {
        ast::Set::SingleAssignment { scope, variable, values, .. } => {
            let name = variable.0.iter().filter_map(|p| p.as_ident()).map(fold).collect::<Vec<_>>().join(".");
            let local = matches!(scope, Some(ast::ContextModifier::Local));
            let is_default =
                matches!(values.as_slice(), [Expr::Identifier(i)] if i.value.eq_ignore_ascii_case("default"));
            let value = if is_default {
                None
            } else {
                Some(values.iter().map(value_text).collect::<Result<Vec<_>>>()?.join(", "))
            };
            Ok(Plan::Set { name, value, local })
        }
        ast::Set::SetTimeZone { local, value } => {
            let v = value_text(value)?;
            let value =
                if v.eq_ignore_ascii_case("default") || v.eq_ignore_ascii_case("local") { None } else { Some(v) };
            Ok(Plan::Set { name: "timezone".into(), value, local: *local })
        }
        ast::Set::SetNames { charset_name, .. } => {
            Ok(Plan::Set { name: "client_encoding".into(), value: Some(charset_name.to_string()), local: false })
        }
        ast::Set::SetTransaction { .. } => Ok(Plan::Noop { tag: "SET".into(), notice: None }),
        other => Err(Error::unsupported(format!("{other}"))),
    }
}

pub fn reset(r: &ast::ResetStatement) -> Result<Plan> {
    let name = match &r.reset {
        ast::Reset::ALL => "all".to_string(),
        ast::Reset::ConfigurationParameter(n) => {
            n.0.iter().filter_map(|p| p.as_ident()).map(fold).collect::<Vec<_>>().join(".")
        }
        other => return Err(Error::unsupported(format!("RESET {other:?}"))),
    };
    Ok(Plan::Set { name, value: None, local: false })
}

pub fn show(variable: &[ast::Ident]) -> Plan {
    // The parser hands over words: `SHOW TIME ZONE` and `SHOW TRANSACTION
    // ISOLATION LEVEL` are phrases, anything else is a (possibly qualified)
    // parameter name such as `shoal.read_consistency`.
    let words: Vec<String> = variable.iter().map(fold).collect();
    let phrase = words.join(" ");
    let name = match phrase.as_str() {
        "time zone" => "timezone".to_string(),
        "transaction isolation level" | "session authorization" => phrase,
        _ => words.join("."),
    };
    Plan::Show { name }
}

/// `SELECT set_config(name, value, is_local)` — the function form of SET
/// that drivers and ORMs use because it takes parameters. Only the bare
/// call is a setting change; anywhere else (in a larger query) it is
/// refused by the function binder.
pub fn set_config(q: &ast::Query) -> Option<Result<Plan>> {
    let (name, f) = sole_call(q)?;
    (name == "set_config").then(|| set_config_args(f))
}

/// The function a statement consists of, `SELECT f(…)` with nothing else,
/// and its folded name: the form of Shoal's statement-level functions.
pub fn sole_call(q: &ast::Query) -> Option<(String, &ast::Function)> {
    let ast::SetExpr::Select(select) = q.body.as_ref() else { return None };
    if !select.from.is_empty() || select.selection.is_some() || select.projection.len() != 1 || q.with.is_some() {
        return None;
    }
    let (ast::SelectItem::UnnamedExpr(Expr::Function(f))
    | ast::SelectItem::ExprWithAlias { expr: Expr::Function(f), .. }) = &select.projection[0]
    else {
        return None;
    };
    Some((f.name.0.last().and_then(|p| p.as_ident()).map(fold)?, f))
}

fn set_config_args(f: &ast::Function) -> Result<Plan> {
    let ast::FunctionArguments::List(list) = &f.args else {
        return Err(wrong_set_config());
    };
    let args: Vec<&Expr> = list
        .args
        .iter()
        .filter_map(|a| match a {
            ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => Some(e),
            _ => None,
        })
        .collect();
    if args.len() != 3 || list.args.len() != 3 {
        return Err(wrong_set_config());
    }
    let mut param_types: Vec<DataType> = Vec::new();
    let mut arg = |e: &Expr, ty: DataType| -> Result<SettingArg> {
        match e {
            Expr::Value(v) => match &v.value {
                ast::Value::Placeholder(p) => {
                    let n: usize = p.trim_start_matches('$').parse().map_err(|_| {
                        Error::new(SqlState::SYNTAX_ERROR, format!("invalid parameter {p} in set_config"))
                    })?;
                    if n == 0 {
                        return Err(Error::new(SqlState::SYNTAX_ERROR, "parameters are numbered from $1"));
                    }
                    if param_types.len() < n {
                        param_types.resize(n, DataType::Text);
                    }
                    param_types[n - 1] = ty;
                    Ok(SettingArg::Param(n - 1))
                }
                _ => value_text(e).map(SettingArg::Literal),
            },
            Expr::Cast { expr, .. } => match expr.as_ref() {
                Expr::Value(_) => value_text(expr).map(SettingArg::Literal),
                _ => Err(wrong_set_config()),
            },
            _ => value_text(e).map(SettingArg::Literal),
        }
    };
    let name = arg(args[0], DataType::Text)?;
    let value = arg(args[1], DataType::Text)?;
    let local = arg(args[2], DataType::Bool)?;
    Ok(Plan::SetConfig { name, value, local, param_types })
}

fn wrong_set_config() -> Error {
    Error::new(
        SqlState::UNDEFINED_FUNCTION,
        "function set_config takes (setting_name text, new_value text, is_local boolean)",
    )
    .with_hint("call it on its own: SELECT set_config('name', 'value', false)")
}
