//! Routing: which shards of which distributed tables a statement reaches.
//!
//! A statement that names one hash-distributed table and pins its shard key
//! with equality or `IN` at the top of its `WHERE` (or, for `INSERT …
//! VALUES`, in every row) reaches only the shards owning those keys; any
//! other statement over a distributed table reaches all of its shards.
//! The keys may be bound parameters, so a [`Route`] is resolved to shard
//! numbers only when the values are known ([`TableRoute::shards`]):
//!
//! ```text
//!   SELECT * FROM users WHERE id = $1 AND age > 3   users: keys [$1]      → bound 7 → shard 3 of 4
//!   SELECT * FROM users WHERE id IN (1, 2)          users: keys [1, 2]    → shards 1, 3 of 4
//!   SELECT * FROM users WHERE age > 3               users: every shard (no equality or IN on id)
//!   SELECT * FROM users JOIN orders ON …            users, orders: every shard (joined)
//! ```
//!
//! The analysis is deliberately conservative: whatever it cannot read as a
//! pin (an `OR`, a subquery, an expression) widens the route to every shard,
//! which is always correct. Today every shard lives in the one data group,
//! so the route is what `EXPLAIN` shows; it is the router's input once
//! shards are placed on different groups.

use shoal_common::shard::{self, KeyKind};
use shoal_common::{DataType, Value};
use sqlparser::ast::{self, Expr, Statement};

use crate::binder::fold;
use crate::catalog::{Catalog, Distribution, Table};
use crate::ddl::shard_key_kind;

/// A shard key value as the statement gives it.
#[derive(Clone, Debug, PartialEq)]
pub enum KeyValue {
    /// A literal.
    Value(Value),
    /// The bound parameter `$n+1`.
    Param(usize),
}

/// The shards of one distributed table a statement reaches.
#[derive(Clone, Debug, PartialEq)]
pub struct TableRoute {
    pub table: String,
    pub column: String,
    pub key_type: DataType,
    /// How many shards the table has.
    pub shard_count: u32,
    /// The shard key values the statement pins; `None`: every shard.
    pub keys: Option<Vec<KeyValue>>,
    /// Why every shard, when `keys` is `None`.
    pub why_all: &'static str,
}

/// Where a statement runs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Route {
    /// The distributed tables it names, in the order first named.
    pub distributed: Vec<TableRoute>,
    /// The reference tables it names.
    pub reference: Vec<String>,
}

impl TableRoute {
    /// The shards (0-based, ascending) the statement reaches once `params`
    /// are bound; every shard when a key is not pinned or cannot be hashed.
    pub fn shards(&self, params: &[Value]) -> Vec<u32> {
        let all = || (0..self.shard_count).collect();
        let Some(keys) = &self.keys else { return all() };
        let Some(kind) = shard_key_kind(&self.key_type) else { return all() };
        let mut shards = Vec::with_capacity(keys.len());
        for key in keys {
            let value = match key {
                KeyValue::Value(v) => v,
                KeyValue::Param(i) => match params.get(*i) {
                    Some(v) => v,
                    None => return all(),
                },
            };
            let Some(hash) = key_hash(kind, value) else { return all() };
            shards.push(shard::shard_of(hash, self.shard_count));
        }
        shards.sort_unstable();
        shards.dedup();
        shards
    }

    /// The keys as the statement gives them, for `EXPLAIN`: `7`, `$1`.
    pub fn keys_text(&self) -> String {
        let Some(keys) = &self.keys else { return String::new() };
        let texts: Vec<String> = keys
            .iter()
            .map(|k| match k {
                KeyValue::Value(Value::Text(t)) => format!("'{}'", t.replace('\'', "''")),
                KeyValue::Value(v) => v.to_string(),
                KeyValue::Param(i) => format!("${}", i + 1),
            })
            .collect();
        match texts.as_slice() {
            [one] => format!("{} = {one}", self.column),
            many => format!("{} IN ({})", self.column, many.join(", ")),
        }
    }
}

/// The shard hash of a key value of the given kind, coerced the way the
/// column would store it; `None` when the value cannot be such a key (the
/// statement then matches nothing or fails, and routing widens to all shards).
pub fn key_hash(kind: KeyKind, value: &Value) -> Option<i64> {
    match (kind, value) {
        (_, Value::Null) => Some(shard::NULL_HASH),
        (KeyKind::Integer, Value::Integer(i)) => Some(shard::hash_integer(*i)),
        (KeyKind::Integer, Value::Real(f)) if f.fract() == 0.0 && f.abs() < 9.0e18 => {
            Some(shard::hash_integer(*f as i64))
        }
        (KeyKind::Integer, Value::Text(t)) => t.trim().parse::<i64>().ok().map(shard::hash_integer),
        (KeyKind::Text, Value::Text(t)) => Some(shard::hash_text(t)),
        (KeyKind::Text, Value::Integer(i)) => Some(shard::hash_text(&i.to_string())),
        _ => None,
    }
}

/// The route of a planned statement; `relations` are the tables and views
/// the binder resolved, once per mention.
pub fn route(stmt: &Statement, relations: &[String], catalog: &Catalog) -> Route {
    let mut route = Route::default();
    let mut seen: Vec<&str> = Vec::new();
    for name in relations {
        if seen.contains(&name.as_str()) {
            continue;
        }
        seen.push(name);
        if catalog.view(name).is_some() {
            // A view's own tables are not recorded: count every distributed one.
            for t in catalog.tables.values() {
                if !relations.contains(&t.name) && !route.distributed.iter().any(|r| r.table == t.name) {
                    route.distributed.extend(every_shard(t, "read through a view"));
                }
            }
            continue;
        }
        let Some(table) = catalog.table(name) else { continue };
        if table.distribution == Distribution::Reference {
            route.reference.push(name.clone());
        }
        let why = if relations.len() > 1 { "joined with other relations or subqueries" } else { "" };
        let Some(mut r) = every_shard(table, why) else { continue };
        if relations.len() == 1 {
            match pinned_keys(stmt, name, &r.column, catalog) {
                Ok(keys) => r.keys = Some(keys),
                Err(why) => r.why_all = why,
            }
        }
        route.distributed.push(r);
    }
    route
}

/// Every shard of `table`, if it is hash-distributed.
fn every_shard(table: &Table, why: &'static str) -> Option<TableRoute> {
    let Distribution::Hash { column, shards } = &table.distribution else { return None };
    Some(TableRoute {
        table: table.name.clone(),
        column: column.clone(),
        key_type: table.column(column)?.1.data_type.clone(),
        shard_count: *shards,
        keys: None,
        why_all: why,
    })
}

/// The shard key values a single-table statement pins, or why it pins none.
fn pinned_keys(stmt: &Statement, table: &str, column: &str, catalog: &Catalog) -> Result<Vec<KeyValue>, &'static str> {
    const NO_PIN: &str = "no equality or IN on the shard key";
    match stmt {
        Statement::Query(q) => {
            let ast::SetExpr::Select(select) = q.body.as_ref() else { return Err("a set operation") };
            let [from] = select.from.as_slice() else { return Err("no single FROM table") };
            let names = names_of(&from.relation, table).ok_or("no single FROM table")?;
            if !from.joins.is_empty() {
                return Err("joined with other relations or subqueries");
            }
            select.selection.as_ref().and_then(|w| pins(w, &names, column)).ok_or(NO_PIN)
        }
        Statement::Update(u) => {
            let names = names_of(&u.table.relation, table).ok_or("no single target table")?;
            if u.from.is_some() || !u.table.joins.is_empty() {
                return Err("joined with other relations or subqueries");
            }
            if sets_key(&u.assignments, column) {
                return Err("it changes the shard key");
            }
            u.selection.as_ref().and_then(|w| pins(w, &names, column)).ok_or(NO_PIN)
        }
        Statement::Delete(d) => {
            let (ast::FromTable::WithFromKeyword(from) | ast::FromTable::WithoutKeyword(from)) = &d.from;
            let [from] = from.as_slice() else { return Err("no single target table") };
            let names = names_of(&from.relation, table).ok_or("no single target table")?;
            if d.using.is_some() || !from.joins.is_empty() {
                return Err("joined with other relations or subqueries");
            }
            d.selection.as_ref().and_then(|w| pins(w, &names, column)).ok_or(NO_PIN)
        }
        Statement::Insert(ins) => {
            let Some(source) = &ins.source else { return Err("DEFAULT VALUES computes the shard key") };
            if let Some(ast::OnInsert::OnConflict(ast::OnConflict {
                action: ast::OnConflictAction::DoUpdate(update),
                ..
            })) = &ins.on
            {
                if sets_key(&update.assignments, column) {
                    return Err("ON CONFLICT changes the shard key");
                }
            }
            let ast::SetExpr::Values(values) = source.body.as_ref() else { return Err("INSERT … SELECT") };
            let position = if ins.columns.is_empty() {
                catalog.table(table).and_then(|t| t.columns.iter().position(|c| c.name == column))
            } else {
                ins.columns
                    .iter()
                    .position(|c| c.0.last().and_then(|p| p.as_ident()).map(fold).as_deref() == Some(column))
            };
            let Some(position) = position else { return Err("the shard key is computed by its default") };
            values
                .rows
                .iter()
                .map(|row| row.content.get(position).and_then(key_value))
                .collect::<Option<Vec<_>>>()
                .ok_or("a row computes its shard key")
        }
        _ => Err("not a single-table statement"),
    }
}

/// Whether `SET …` assigns the shard key (a row would move between shards).
fn sets_key(assignments: &[ast::Assignment], column: &str) -> bool {
    assignments.iter().any(|a| match &a.target {
        ast::AssignmentTarget::ColumnName(n) => {
            n.0.last().and_then(|p| p.as_ident()).map(fold).as_deref() == Some(column)
        }
        ast::AssignmentTarget::Tuple(_) => true,
    })
}

/// The names a table's columns may be qualified with (`users`, `u`), if
/// `relation` is that table.
fn names_of(relation: &ast::TableFactor, table: &str) -> Option<Vec<String>> {
    let ast::TableFactor::Table { name, alias, args: None, .. } = relation else { return None };
    let named = crate::binder::object_name(name).ok()?;
    if named != table {
        return None;
    }
    Some(match alias {
        Some(a) => vec![fold(&a.name)],
        None => vec![named],
    })
}

/// The shard key values a `WHERE` pins at its top level: `key = v`,
/// `v = key` or `key IN (…)` as one of its `AND`ed conditions.
fn pins(e: &Expr, names: &[String], column: &str) -> Option<Vec<KeyValue>> {
    match e {
        Expr::Nested(inner) => pins(inner, names, column),
        Expr::BinaryOp { left, op: ast::BinaryOperator::And, right } => {
            pins(left, names, column).or_else(|| pins(right, names, column))
        }
        Expr::BinaryOp { left, op: ast::BinaryOperator::Eq, right } => {
            if is_key(left, names, column) {
                key_value(right).map(|v| vec![v])
            } else if is_key(right, names, column) {
                key_value(left).map(|v| vec![v])
            } else {
                None
            }
        }
        Expr::In { expr, target: ast::InTarget::List(list), negated: false, .. } if is_key(expr, names, column) => {
            list.iter().map(key_value).collect()
        }
        _ => None,
    }
}

fn is_key(e: &Expr, names: &[String], column: &str) -> bool {
    match e {
        Expr::Nested(inner) => is_key(inner, names, column),
        Expr::Identifier(id) => fold(id) == column,
        Expr::CompoundIdentifier(parts) => match parts.as_slice() {
            [q, c] => names.contains(&fold(q)) && fold(c) == column,
            _ => false,
        },
        _ => false,
    }
}

/// A literal or parameter; anything computed is not a pin.
fn key_value(e: &Expr) -> Option<KeyValue> {
    match e {
        Expr::Nested(inner) => key_value(inner),
        // A cast that keeps the value (`$1::bigint`, `'7'::int`); one that
        // could change it (`::varchar(2)` truncates, `::numeric` rounds) is
        // not a pin.
        Expr::Cast { expr: inner, data_type, .. } => {
            let target = data_type.to_string().to_lowercase();
            let keeps = ["smallint", "int", "integer", "bigint", "int2", "int4", "int8", "text", "varchar"];
            if keeps.contains(&target.as_str()) || target == "character varying" {
                key_value(inner)
            } else {
                None
            }
        }
        Expr::Value(v) => match &v.value {
            ast::Value::Number(n, _) => {
                Some(KeyValue::Value(n.parse::<i64>().map(Value::Integer).unwrap_or_else(|_| Value::Text(n.clone()))))
            }
            ast::Value::SingleQuotedString(s) => Some(KeyValue::Value(Value::Text(s.clone()))),
            ast::Value::Null => Some(KeyValue::Value(Value::Null)),
            ast::Value::Placeholder(p) => {
                p.strip_prefix('$')?.parse::<usize>().ok().filter(|n| *n >= 1).map(|n| KeyValue::Param(n - 1))
            }
            _ => None,
        },
        Expr::UnaryOp { op: ast::UnaryOperator::Minus, expr } => match key_value(expr)? {
            KeyValue::Value(Value::Integer(i)) => Some(KeyValue::Value(Value::Integer(i.checked_neg()?))),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse, plan, Plan};

    fn catalog() -> Catalog {
        crate::catalog_after(&[
            "CREATE TABLE users (id BIGINT PRIMARY KEY, name TEXT, age INT) WITH (shard_key = 'id', shards = 4)",
            "CREATE TABLE orders (id INT PRIMARY KEY, user_id BIGINT, total INT) WITH (shard_key = 'user_id', shards = 8)",
            "CREATE TABLE tags (id INT PRIMARY KEY, name TEXT) WITH (reference = true)",
            "CREATE TABLE notes (id INT PRIMARY KEY, body TEXT)",
        ])
    }

    fn route_of(sql: &str) -> Route {
        let stmt = &parse(&format!("EXPLAIN {sql}")).unwrap()[0];
        match plan(stmt, &catalog(), &[]).unwrap() {
            Plan::Explain { route, .. } => route,
            other => panic!("{other:?}"),
        }
    }

    /// (table, shards reached, of how many) for each distributed table.
    fn reached(sql: &str, params: &[Value]) -> Vec<(String, Vec<u32>, u32)> {
        route_of(sql).distributed.iter().map(|r| (r.table.clone(), r.shards(params), r.shard_count)).collect()
    }

    fn one(sql: &str, params: &[Value]) -> usize {
        let r = reached(sql, params);
        assert_eq!(r.len(), 1, "{sql}: {r:?}");
        r[0].1.len()
    }

    #[test]
    fn a_pinned_shard_key_reaches_its_shards_only() {
        let shard_of_7 = shard::shard_of(shard::hash_integer(7), 4);
        assert_eq!(reached("SELECT * FROM users WHERE id = 7", &[]), [("users".into(), vec![shard_of_7], 4)]);
        assert_eq!(one("SELECT name FROM users u WHERE u.age > 3 AND (u.id = 7)", &[]), 1);
        assert_eq!(one("SELECT name FROM users WHERE 7 = users.id", &[]), 1);
        assert_eq!(one("SELECT * FROM users WHERE id = '7'", &[]), 1, "a quoted integer is the same key");
        assert_eq!(
            reached("SELECT * FROM users WHERE id = '7'", &[]),
            reached("SELECT * FROM users WHERE id = 7", &[])
        );
        // Parameters resolve when bound; an unbound one widens the route.
        assert_eq!(one("SELECT * FROM users WHERE id = $1", &[Value::Integer(7)]), 1);
        assert_eq!(reached("SELECT * FROM users WHERE id = $1", &[Value::Integer(7)])[0].1, vec![shard_of_7]);
        assert_eq!(one("SELECT * FROM users WHERE id = $1", &[]), 4);
        let keys: Vec<u32> = (0..40).map(|k| shard::shard_of(shard::hash_integer(k), 4)).collect();
        let mut expected = keys[..3].to_vec();
        expected.sort_unstable();
        expected.dedup();
        assert_eq!(reached("SELECT * FROM users WHERE id IN (0, 1, 2)", &[])[0].1, expected);
        assert_eq!(one("UPDATE users SET age = 1 WHERE id = 7", &[]), 1);
        assert_eq!(one("DELETE FROM users WHERE id = -7", &[]), 1);
        assert_eq!(one("INSERT INTO users (name, id) VALUES ('a', 7)", &[]), 1);
        assert_eq!(one("INSERT INTO users VALUES (7, 'a', 1), ($1, 'b', 2)", &[Value::Integer(7)]), 1);
        assert_eq!(one("INSERT INTO users VALUES (7, 'a', 1) ON CONFLICT (id) DO UPDATE SET age = 2", &[]), 1);
        assert_eq!(one("SELECT * FROM users WHERE id = $1::bigint", &[Value::Integer(7)]), 1);
        assert_eq!(one("SELECT * FROM users WHERE id = '7'::int8", &[]), 1);
    }

    #[test]
    fn anything_else_reaches_every_shard() {
        for sql in [
            "SELECT * FROM users",
            "SELECT * FROM users WHERE id = 7 OR id = 8",
            "SELECT * FROM users WHERE id > 7",
            "SELECT * FROM users WHERE id + 0 = 7",
            "SELECT * FROM users WHERE id NOT IN (7)",
            "SELECT * FROM users WHERE id = 7 AND age IN (SELECT age FROM users)",
            "SELECT * FROM users WHERE id = 7 UNION SELECT * FROM users WHERE id = 8",
            "UPDATE users SET id = 8 WHERE id = 7",
            "INSERT INTO users (id, name) SELECT id, name FROM users",
            "INSERT INTO users (id, name) VALUES (7, 'a'), (7 + 1, 'b')",
            "INSERT INTO users (id, name) VALUES (7, 'a') ON CONFLICT (id) DO UPDATE SET id = 8",
            "SELECT * FROM users WHERE id = '7.4'::numeric",
        ] {
            let r = route_of(sql);
            assert!(r.distributed.iter().all(|t| t.keys.is_none() && !t.why_all.is_empty()), "{sql}: {r:?}");
            assert_eq!(one(sql, &[]), 4, "{sql}");
        }
        let joined = reached("SELECT * FROM users u JOIN orders o ON o.user_id = u.id WHERE u.id = 7", &[]);
        assert_eq!(joined, [("users".into(), vec![0, 1, 2, 3], 4), ("orders".into(), (0..8).collect(), 8)]);
    }

    #[test]
    fn local_and_reference_tables_have_no_shards() {
        let r = route_of("SELECT * FROM notes, tags WHERE tags.id = 1");
        assert!(r.distributed.is_empty());
        assert_eq!(r.reference, ["tags"]);
        // A view may hide any distributed table: all of them, every shard.
        let mut c = catalog();
        if let Plan::Ddl { catalog: next, .. } =
            plan(&parse("CREATE VIEW v AS SELECT id FROM notes").unwrap()[0], &c, &[]).unwrap()
        {
            c = next;
        }
        let Plan::Explain { route, .. } = plan(&parse("EXPLAIN SELECT * FROM v").unwrap()[0], &c, &[]).unwrap() else {
            panic!()
        };
        assert_eq!(route.distributed.len(), 2);
    }

    #[test]
    fn text_keys_hash_as_text() {
        let c =
            crate::catalog_after(&["CREATE TABLE t (k VARCHAR(10) PRIMARY KEY) WITH (shard_key = 'k', shards = 16)"]);
        let Plan::Explain { route, .. } =
            plan(&parse("EXPLAIN SELECT * FROM t WHERE k = 'abc'").unwrap()[0], &c, &[]).unwrap()
        else {
            panic!()
        };
        assert_eq!(route.distributed[0].shards(&[]), vec![shard::shard_of(shard::hash_text("abc"), 16)]);
        assert_eq!(route.distributed[0].keys_text(), "k = 'abc'");
        // A truncating cast is not a pin: 'abc'::varchar(2) is 'ab'.
        let Plan::Explain { route, .. } =
            plan(&parse("EXPLAIN SELECT * FROM t WHERE k = 'abc'::varchar(2)").unwrap()[0], &c, &[]).unwrap()
        else {
            panic!()
        };
        assert_eq!(route.distributed[0].shards(&[]).len(), 16);
    }
}
