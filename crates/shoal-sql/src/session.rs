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
use crate::plan::{Plan, TxnControl};

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
