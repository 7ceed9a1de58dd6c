//! Whether running a write statement twice has the effect of running it
//! once, for the error a client gets when a write's outcome is unknown.
//!
//! A leader that fails while committing leaves the outcome of its in-flight
//! entries unknown (SQLSTATE 40003: a new leader may still commit them).
//! Shoal never retries such a statement by itself, and the error says
//! whether the client may: an idempotent statement can simply be run again,
//! any other one must first be checked for (its change may be present).
//!
//! The classification is conservative, from the statement's text and the
//! catalog: a statement is idempotent only when it provably is.
//! * `INSERT … VALUES (constants) ON CONFLICT DO NOTHING` naming every
//!   primary-key column: a second run conflicts on the same key.
//! * `UPDATE … SET col = constant, …` without FROM, with a WHERE of plain
//!   column comparisons: a second run writes the same values.
//! * `DELETE` with such a WHERE (or none).
//! * `CREATE … IF NOT EXISTS`, `DROP … IF EXISTS`.
//!
//! Anything calling a function (`now()`, `nextval()`, `random()`), reading a
//! subquery, or referring to the row's current values is not.

use shoal_sql::{Catalog, Stmt};
use sqlparser::ast::{Expr, InTarget, Insert, OnConflictAction, OnInsert, SetExpr, Statement};

/// The classification of a write statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Idempotency {
    Idempotent,
    /// Not idempotent, and why.
    Not(&'static str),
}

impl Idempotency {
    /// The error detail for a write whose outcome is unknown.
    pub fn detail(self) -> String {
        match self {
            Idempotency::Idempotent => "The statement is idempotent: running it again is safe (it may report \
                                        fewer rows the second time)."
                .to_string(),
            Idempotency::Not(why) => format!(
                "The statement is not idempotent ({why}): check whether its change is present before running it again."
            ),
        }
    }
}

/// Classifies `statement` against `catalog` (see the module docs).
pub fn classify(statement: &Stmt, catalog: &Catalog) -> Idempotency {
    let Stmt::Sql(statement) = statement else {
        return Idempotency::Not("running it again applies it again");
    };
    match statement {
        Statement::Insert(insert) => insert_idempotency(insert, catalog),
        Statement::Update(update) => {
            if update.from.is_some() {
                return Idempotency::Not("it reads other tables");
            }
            if !update.assignments.iter().all(|a| constant(&a.value)) {
                return Idempotency::Not("its SET uses the row's current values or calls functions");
            }
            match &update.selection {
                Some(condition) if !plain(condition) => Idempotency::Not("its WHERE calls functions or subqueries"),
                _ => Idempotency::Idempotent,
            }
        }
        Statement::Delete(delete) => match &delete.selection {
            Some(condition) if !plain(condition) => Idempotency::Not("its WHERE calls functions or subqueries"),
            _ => Idempotency::Idempotent,
        },
        Statement::CreateTable(create) if create.if_not_exists => Idempotency::Idempotent,
        Statement::CreateIndex(create) if create.if_not_exists => Idempotency::Idempotent,
        Statement::Drop { if_exists: true, .. } => Idempotency::Idempotent,
        Statement::Commit { .. } => Idempotency::Not("a transaction's changes may all be present"),
        Statement::Query(_) => Idempotency::Not("it draws from a sequence"),
        _ => Idempotency::Not("running it again applies it again"),
    }
}

fn insert_idempotency(insert: &Insert, catalog: &Catalog) -> Idempotency {
    const ADDS_ROWS: &str = "an INSERT without ON CONFLICT DO NOTHING on its primary key adds rows each time it runs";
    let does_nothing = matches!(
        &insert.on,
        Some(OnInsert::OnConflict(on_conflict)) if matches!(on_conflict.action, OnConflictAction::DoNothing)
    );
    if !does_nothing {
        return Idempotency::Not(ADDS_ROWS);
    }
    let Some(SetExpr::Values(values)) = insert.source.as_ref().map(|q| q.body.as_ref()) else {
        return Idempotency::Not("it inserts the result of a query");
    };
    if !values.rows.iter().flat_map(|row| row.content.iter()).all(constant) {
        return Idempotency::Not("its values call functions");
    }
    let table = match &insert.table {
        sqlparser::ast::TableObject::TableName(name) => match name.0.last().and_then(|part| part.as_ident()) {
            Some(ident) => shoal_sql::fold_ident(ident),
            None => return Idempotency::Not(ADDS_ROWS),
        },
        _ => return Idempotency::Not(ADDS_ROWS),
    };
    let Some(table) = catalog.table(&table) else { return Idempotency::Not(ADDS_ROWS) };
    let named: Vec<String> = insert
        .columns
        .iter()
        .filter_map(|c| c.0.last().and_then(|part| part.as_ident()).map(shoal_sql::fold_ident))
        .collect();
    let keyed = !table.primary_key.is_empty() && table.primary_key.iter().all(|k| named.contains(k));
    match keyed {
        true => Idempotency::Idempotent,
        false => Idempotency::Not(ADDS_ROWS),
    }
}

/// A value fixed by the statement: literals and parameters, with casts and
/// arithmetic on them.
fn constant(e: &Expr) -> bool {
    match e {
        Expr::Value(_) | Expr::TypedString { .. } => true,
        Expr::Cast { expr, .. } | Expr::Nested(expr) | Expr::UnaryOp { expr, .. } => constant(expr),
        Expr::BinaryOp { left, right, .. } => constant(left) && constant(right),
        _ => false,
    }
}

/// A condition on the row's columns and constants only.
fn plain(e: &Expr) -> bool {
    match e {
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) | Expr::Value(_) | Expr::TypedString { .. } => true,
        Expr::Cast { expr, .. }
        | Expr::Nested(expr)
        | Expr::UnaryOp { expr, .. }
        | Expr::IsNull(expr)
        | Expr::IsNotNull(expr)
        | Expr::IsTrue(expr)
        | Expr::IsFalse(expr)
        | Expr::IsNotTrue(expr)
        | Expr::IsNotFalse(expr) => plain(expr),
        Expr::BinaryOp { left, right, .. } => plain(left) && plain(right),
        Expr::In { expr, target: InTarget::List(list), .. } => plain(expr) && list.iter().all(plain),
        Expr::Between { expr, low, high, .. } => plain(expr) && plain(low) && plain(high),
        Expr::Like { expr, pattern, .. } | Expr::ILike { expr, pattern, .. } => plain(expr) && plain(pattern),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        let mut catalog = Catalog::default();
        for ddl in [
            "CREATE TABLE accounts (id INT PRIMARY KEY, owner TEXT, balance INT)",
            "CREATE TABLE pairs (a INT, b INT, note TEXT, PRIMARY KEY (a, b))",
        ] {
            let statement = &shoal_sql::parse(ddl).unwrap()[0];
            if let shoal_sql::Plan::Ddl { catalog: next, .. } = shoal_sql::plan(statement, &catalog, &[]).unwrap() {
                catalog = next;
            }
        }
        catalog
    }

    fn of(sql: &str) -> Idempotency {
        classify(&shoal_sql::parse(sql).unwrap()[0], &catalog())
    }

    #[test]
    fn statements_that_provably_repeat_are_idempotent() {
        for sql in [
            "INSERT INTO accounts (id, owner) VALUES (1, 'ann') ON CONFLICT DO NOTHING",
            "INSERT INTO accounts (owner, id) VALUES ($1, $2::int) ON CONFLICT (id) DO NOTHING",
            "INSERT INTO pairs (a, b) VALUES (1, 2), (3, -4) ON CONFLICT DO NOTHING",
            "UPDATE accounts SET balance = 10, owner = $1 WHERE id = 3 AND owner IS NOT NULL",
            "UPDATE accounts SET owner = 'x' WHERE id IN (1, 2) OR owner LIKE 'a%'",
            "DELETE FROM accounts WHERE balance BETWEEN 1 AND 5",
            "DELETE FROM accounts",
            "CREATE TABLE IF NOT EXISTS t (id INT)",
            "DROP TABLE IF EXISTS t",
        ] {
            assert_eq!(of(sql), Idempotency::Idempotent, "{sql}");
        }
    }

    #[test]
    fn everything_else_is_not_and_says_why() {
        for (sql, why) in [
            ("INSERT INTO accounts (id, owner) VALUES (1, 'ann')", "ON CONFLICT"),
            ("INSERT INTO pairs (a, note) VALUES (1, 'x') ON CONFLICT DO NOTHING", "primary key"),
            ("INSERT INTO accounts (id, owner) VALUES (1, now()::text) ON CONFLICT DO NOTHING", "functions"),
            ("INSERT INTO accounts (id) (SELECT 1) ON CONFLICT DO NOTHING", "query"),
            ("INSERT INTO accounts (id) VALUES (1) ON CONFLICT (id) DO UPDATE SET balance = 0", "ON CONFLICT"),
            ("UPDATE accounts SET balance = balance + 1 WHERE id = 1", "current values"),
            ("UPDATE accounts SET owner = 'x' WHERE id = (SELECT 1)", "subqueries"),
            ("DELETE FROM accounts WHERE id = random()", "functions"),
            ("SELECT nextval('s')", "sequence"),
            ("CREATE TABLE t (id INT)", "again"),
        ] {
            match of(sql) {
                Idempotency::Not(reason) => assert!(reason.contains(why), "{sql}: {reason}"),
                Idempotency::Idempotent => panic!("{sql} is not idempotent"),
            }
        }
        assert!(Idempotency::Not("x").detail().contains("check whether its change is present"));
    }
}
