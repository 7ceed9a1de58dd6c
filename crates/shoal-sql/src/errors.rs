//! SQLite error messages → PostgreSQL errors.
//!
//! SQLite reports constraint failures as text (`UNIQUE constraint failed:
//! t.a, t.b`, `CHECK constraint failed: name`, …). [`map_sqlite_error`]
//! recognises them and uses the [`Catalog`] to name the constraint the way
//! PostgreSQL would. (Errors of the `pg_*` functions need no mapping: they
//! carry their SQLSTATE, see `shoal_storage::sqlite_error`.)

use shoal_common::{Error, SqlState};

use sqlparser::ast::{self, Statement};

use crate::binder::object_name;
use crate::catalog::Catalog;
use crate::plan::WriteKind;

/// The table a write statement changes: SQLite's `FOREIGN KEY constraint
/// failed` names neither table nor constraint, so the caller passes this along.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteTarget {
    pub kind: WriteKind,
    pub table: String,
}

/// The target of an INSERT/UPDATE/DELETE, if `stmt` is one (for [`map_write_error`]).
pub fn write_target(stmt: &crate::Stmt) -> Option<WriteTarget> {
    let crate::Stmt::Sql(stmt) = stmt else { return None };
    let (kind, name) = match stmt {
        Statement::Insert(i) => match &i.table {
            ast::TableObject::TableName(n) => (WriteKind::Insert, n),
            _ => return None,
        },
        Statement::Update(u) => match &u.table.relation {
            ast::TableFactor::Table { name, .. } => (WriteKind::Update, name),
            _ => return None,
        },
        Statement::Delete(d) => match &d.from {
            ast::FromTable::WithFromKeyword(f) | ast::FromTable::WithoutKeyword(f) => {
                match f.first().map(|t| &t.relation) {
                    Some(ast::TableFactor::Table { name, .. }) => (WriteKind::Delete, name),
                    _ => return None,
                }
            }
        },
        _ => return None,
    };
    Some(WriteTarget { kind, table: object_name(name).ok()? })
}

/// The query that finds the key of a unique violation SQLite reported as
/// `message` (`UNIQUE constraint failed: t.a, t.b`) for an `INSERT …
/// VALUES` described by `probe`: the first inserted row whose key already
/// exists in the table, as storage values, run with the statement's own
/// parameters. `None` when a key cell cannot be evaluated again (it draws
/// from a sequence) or the message is not a unique violation of `probe`'s table.
pub fn unique_key_probe(message: &str, probe: &crate::KeyProbe) -> Option<(String, Vec<String>)> {
    let rest = message.trim().strip_prefix("UNIQUE constraint failed: ")?;
    let pairs: Vec<(&str, &str)> = rest.split(", ").filter_map(|p| p.split_once('.')).collect();
    if pairs.is_empty() || pairs.iter().any(|(t, _)| *t != probe.table) {
        return None;
    }
    let cols: Vec<String> = pairs.iter().map(|(_, c)| c.to_string()).collect();
    let idx: Vec<usize> = cols.iter().map(|c| probe.columns.iter().position(|p| p == c)).collect::<Option<_>>()?;
    let mut selects = Vec::new();
    for (i, row) in probe.rows.iter().enumerate() {
        let cells: Vec<&String> = idx.iter().map(|&j| row.get(j)).collect::<Option<_>>()?;
        if cells.iter().any(|c| c.contains("shoal_nextval(")) {
            return None;
        }
        let keys: Vec<String> = cells.iter().enumerate().map(|(k, c)| format!("{c} AS \"k{k}\"")).collect();
        selects.push(format!("SELECT {i} AS \"__i\", {}", keys.join(", ")));
    }
    let keys: Vec<String> = (0..cols.len()).map(|k| format!("p.\"k{k}\"")).collect();
    let matches: Vec<String> =
        cols.iter().enumerate().map(|(k, c)| format!("x.{} = p.\"k{k}\"", crate::binder::quote(c))).collect();
    let sql = format!(
        "SELECT {} FROM ({}) AS p WHERE EXISTS (SELECT 1 FROM {} AS x WHERE {}) ORDER BY p.\"__i\" LIMIT 1",
        keys.join(", "),
        selects.join(" UNION ALL "),
        crate::binder::quote(&probe.table),
        matches.join(" AND ")
    );
    Some((sql, cols))
}

/// PostgreSQL's detail of a unique violation: `Key (a, b)=(1, x) already exists.`
pub fn unique_violation_detail(
    catalog: &Catalog,
    table: &str,
    cols: &[String],
    values: &[shoal_common::Value],
) -> String {
    let t = catalog.table(table);
    let texts: Vec<String> = cols
        .iter()
        .zip(values)
        .map(|(c, v)| {
            let ty = t
                .and_then(|t| t.column(c))
                .map(|(_, col)| col.data_type.clone())
                .unwrap_or(shoal_common::DataType::Text);
            match v {
                shoal_common::Value::Null => "null".to_string(),
                v => shoal_common::convert::storage_to_text(&ty, v).unwrap_or_else(|_| format!("{v:?}")),
            }
        })
        .collect();
    format!("Key ({})=({}) already exists.", cols.join(", "), texts.join(", "))
}

/// Maps one SQLite error message to a PostgreSQL error, when it is one Shoal knows.
pub fn map_sqlite_error(message: &str, catalog: &Catalog) -> Option<Error> {
    map_write_error(message, catalog, None)
}

/// [`map_sqlite_error`] for a statement writing `target`: a foreign-key
/// failure then names the table and, when it can be told, the constraint.
pub fn map_write_error(message: &str, catalog: &Catalog, target: Option<&WriteTarget>) -> Option<Error> {
    let msg = message.trim();
    if let Some(rest) = msg.strip_prefix("UNIQUE constraint failed: ") {
        return Some(unique(rest, catalog));
    }
    if let Some(rest) = msg.strip_prefix("NOT NULL constraint failed: ") {
        let (table, column) = rest.split_once('.').unwrap_or(("", rest));
        return Some(
            Error::new(
                SqlState::NOT_NULL_VIOLATION,
                format!("null value in column \"{column}\" of relation \"{table}\" violates not-null constraint"),
            )
            .with_column(table, column),
        );
    }
    if let Some(name) = msg.strip_prefix("CHECK constraint failed: ") {
        return Some(check(name.trim(), catalog));
    }
    if msg.starts_with("FOREIGN KEY constraint failed") {
        return Some(foreign_key(catalog, target));
    }
    None
}

/// PostgreSQL's wording of a foreign-key violation. The failing side is told
/// by the statement: an INSERT (or an UPDATE of a table with foreign keys of
/// its own) violates one of its table's keys; a DELETE (or an UPDATE of a
/// table without any) violates a key referencing its table. The constraint is
/// named when only one candidate exists (SQLite does not say which failed).
fn foreign_key(catalog: &Catalog, target: Option<&WriteTarget>) -> Error {
    let generic =
        || Error::new(SqlState::FOREIGN_KEY_VIOLATION, "insert or update on table violates foreign key constraint");
    let Some(target) = target else { return generic() };
    let Some(table) = catalog.table(&target.table) else { return generic() };
    let referencing_side = match target.kind {
        WriteKind::Insert => true,
        WriteKind::Update => !table.foreign_keys.is_empty(),
        WriteKind::Delete | WriteKind::Select => false,
    };
    if referencing_side {
        let message = match table.foreign_keys.as_slice() {
            [fk] => {
                let message = format!(
                    "insert or update on table \"{}\" violates foreign key constraint \"{}\"",
                    table.name, fk.name
                );
                return Error::new(SqlState::FOREIGN_KEY_VIOLATION, message).with_constraint(&table.name, &fk.name);
            }
            _ => format!("insert or update on table \"{}\" violates foreign key constraint", table.name),
        };
        return Error::new(SqlState::FOREIGN_KEY_VIOLATION, message);
    }
    let referencing: Vec<(&str, &str)> = catalog
        .tables
        .values()
        .flat_map(|t| {
            t.foreign_keys.iter().filter(|f| f.foreign_table == table.name).map(|f| (t.name.as_str(), f.name.as_str()))
        })
        .collect();
    match referencing.as_slice() {
        [(other, fk)] => {
            let message = format!(
                "update or delete on table \"{}\" violates foreign key constraint \"{fk}\" on table \"{other}\"",
                table.name
            );
            // PostgreSQL reports the referencing table with the constraint.
            Error::new(SqlState::FOREIGN_KEY_VIOLATION, message).with_constraint(*other, *fk)
        }
        _ => Error::new(
            SqlState::FOREIGN_KEY_VIOLATION,
            format!("update or delete on table \"{}\" violates foreign key constraint", table.name),
        ),
    }
}

fn unique(rest: &str, catalog: &Catalog) -> Error {
    let pairs: Vec<(&str, &str)> = rest.split(", ").filter_map(|p| p.split_once('.')).collect();
    let table = pairs.first().map(|p| p.0).unwrap_or("");
    let cols: Vec<String> = pairs.iter().map(|p| p.1.to_string()).collect();
    let name = catalog.table(table).and_then(|t| {
        if t.primary_key == cols {
            return Some(format!("{}_pkey", t.name));
        }
        t.unique.iter().find(|u| u.columns == cols).map(|u| u.name.clone()).or_else(|| {
            catalog.indexes.values().find(|i| i.table == t.name && i.columns == cols).map(|i| i.name.clone())
        })
    });
    let name = name.unwrap_or_else(|| format!("{table}_{}_key", cols.join("_")));
    Error::new(SqlState::UNIQUE_VIOLATION, format!("duplicate key value violates unique constraint \"{name}\""))
        .with_detail(format!("Key ({}) already exists.", cols.join(", ")))
        .with_constraint(table, name)
}

fn check(name: &str, catalog: &Catalog) -> Error {
    if let Some(ty) = name.strip_prefix("shoal_len:") {
        return Error::new(SqlState::STRING_DATA_RIGHT_TRUNCATION, format!("value too long for type {ty}"));
    }
    if let Some(ty) = name.strip_prefix("shoal_type:") {
        return Error::new(SqlState::INVALID_TEXT_REPRESENTATION, format!("invalid input syntax for type {ty}"));
    }
    let table = catalog.tables.values().find(|t| t.checks.iter().any(|c| c.name == name)).map(|t| t.name.as_str());
    let error = Error::new(
        SqlState::CHECK_VIOLATION,
        format!("new row for relation \"{}\" violates check constraint \"{name}\"", table.unwrap_or("?")),
    );
    match table {
        Some(table) => error.with_constraint(table, name),
        None => error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_constraint_names_map_to_sqlstates() {
        let c = Catalog::default();
        let e = map_sqlite_error("CHECK constraint failed: shoal_len:character varying(3)", &c).unwrap();
        assert_eq!(e.code, SqlState::STRING_DATA_RIGHT_TRUNCATION);
        assert_eq!(e.message, "value too long for type character varying(3)");
        let e = map_sqlite_error("NOT NULL constraint failed: t.a", &c).unwrap();
        assert_eq!(e.message, "null value in column \"a\" of relation \"t\" violates not-null constraint");
        // Function errors (division by zero, …) carry their own SQLSTATE: see
        // shoal-storage's `function_errors_keep_their_sqlstate_and_message`.
        assert!(map_sqlite_error("disk I/O error", &c).is_none());
    }
}
