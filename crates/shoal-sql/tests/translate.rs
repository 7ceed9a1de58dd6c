//! End-to-end translation tests: plan PostgreSQL statements, run the emitted
//! SQLite SQL on an in-memory database with Shoal's functions registered, and
//! compare with what PostgreSQL 16 returns.

use rusqlite::functions::FunctionFlags;
use rusqlite::types::Value;
use rusqlite::Connection;
use shoal_common::{DataType, Error, SqlState};
use shoal_sql::{Catalog, Plan};

struct Db {
    /// Dropped before `conn` (see `shoal_storage::sequences::WriterStatements`).
    _sequence_statements: Option<shoal_storage::sequences::WriterStatements>,
    conn: Connection,
    catalog: Catalog,
    /// The session's `currval`/`lastval` state, as the server keeps it.
    sequences: shoal_storage::SessionSequences,
}

fn text(v: Value, ty: &DataType) -> String {
    match (v, ty) {
        (Value::Null, _) => "NULL".into(),
        (Value::Integer(n), DataType::Bool) => if n != 0 { "t" } else { "f" }.into(),
        (Value::Integer(n), _) => n.to_string(),
        (Value::Real(r), _) if r == r.trunc() && r.abs() < 1e15 && !matches!(ty, DataType::Float8) => {
            format!("{}", r as i64)
        }
        (Value::Real(r), _) => r.to_string(),
        (Value::Text(s), DataType::Timestamptz) => format!("{s}+00"),
        (Value::Text(s), _) => s,
        (Value::Blob(b), _) => format!("\\x{}", b.iter().map(|x| format!("{x:02x}")).collect::<String>()),
    }
}

impl Db {
    fn new() -> Db {
        let conn = Connection::open_in_memory().unwrap();
        shoal_storage::functions::register(&conn).unwrap();
        let sequence_statements = shoal_storage::sequences::register(&conn, true).unwrap();
        conn.execute_batch(shoal_storage::sequences::SETUP_SQL).unwrap();
        let flags = FunctionFlags::SQLITE_DETERMINISTIC | FunctionFlags::SQLITE_UTF8;
        conn.create_scalar_function("shoal_now", 0, flags, |_| Ok("2024-05-17 10:11:12.123456".to_string())).unwrap();
        conn.create_scalar_function("shoal_random", 0, flags, |_| Ok(0.5f64)).unwrap();
        conn.create_scalar_function("gen_random_uuid", 0, flags, |_| {
            Ok("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".to_string())
        })
        .unwrap();
        conn.execute_batch(
            "PRAGMA foreign_keys = ON; ATTACH DATABASE ':memory:' AS pg_catalog; \
             ATTACH DATABASE ':memory:' AS information_schema;",
        )
        .unwrap();
        let mut db = Db {
            _sequence_statements: sequence_statements,
            conn,
            catalog: Catalog::default(),
            sequences: Default::default(),
        };
        db.refresh_system();
        db
    }

    fn refresh_system(&mut self) {
        for s in shoal_sql::catalog_schema_sql(&self.catalog) {
            self.conn.execute_batch(&s).unwrap_or_else(|e| panic!("{s}: {e}"));
        }
    }

    /// As the server does: `from_sqlite` gives the SQLSTATE (function errors
    /// carry theirs), then constraint failures get PostgreSQL's wording.
    fn map(&self, e: rusqlite::Error, sql: &str) -> Error {
        let err = shoal_storage::from_sqlite(e);
        if err.code.as_str().starts_with("23") {
            return shoal_sql::map_sqlite_error(&err.message, &self.catalog).unwrap_or(err);
        }
        if err.code == shoal_common::SqlState::INTERNAL_ERROR {
            return Error::internal(format!("unmapped SQLite error {} for {sql}", err.message));
        }
        err
    }

    /// Runs one statement; returns the rows as PostgreSQL text.
    fn run(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Vec<String>>, Error> {
        let stmts = shoal_sql::parse(sql)?;
        let mut rows = vec![];
        for stmt in &stmts {
            rows = self.run_plan(shoal_sql::plan(stmt, &self.catalog, &[])?, params)?;
        }
        Ok(rows)
    }

    fn run_plan(&mut self, mut plan: Plan, params: &[Value]) -> Result<Vec<Vec<String>>, Error> {
        let lifted = match &mut plan {
            Plan::Write { lifted, .. } => std::mem::take(lifted),
            _ => Vec::new(),
        };
        match plan {
            Plan::Query { sql, columns, sequence_state, .. } | Plan::Write { sql, columns, sequence_state, .. } => {
                let mut params = params.to_vec();
                params.extend(lifted.into_iter().map(|v| match v {
                    shoal_common::Value::Null => Value::Null,
                    shoal_common::Value::Integer(i) => Value::Integer(i),
                    shoal_common::Value::Real(r) => Value::Real(r),
                    shoal_common::Value::Text(t) => Value::Text(t),
                    shoal_common::Value::Blob(b) => Value::Blob(b),
                }));
                if sequence_state {
                    params.push(Value::Text(self.sequences.encode()));
                }
                shoal_storage::sequences::clear_drawn();
                let mut stmt = self.conn.prepare(&sql).map_err(|e| Error::internal(format!("{e}: {sql}")))?;
                let mut out = vec![];
                let mut rows = stmt.query(rusqlite::params_from_iter(params.iter())).map_err(|e| self.map(e, &sql))?;
                while let Some(r) = rows.next().map_err(|e| self.map(e, &sql))? {
                    let row = (0..columns.len()).map(|i| text(r.get::<_, Value>(i).unwrap(), &columns[i].data_type));
                    out.push(row.collect());
                }
                drop(rows);
                drop(stmt);
                self.sequences.apply(&shoal_storage::sequences::take_drawn());
                Ok(out)
            }
            Plan::Ddl { statements, catalog, .. } => {
                for s in &statements {
                    self.conn.execute_batch(s).map_err(|e| Error::internal(format!("{e}: {s}")))?;
                }
                self.catalog = catalog;
                self.refresh_system();
                Ok(vec![])
            }
            _ => Ok(vec![]),
        }
    }

    fn q(&mut self, sql: &str) -> Vec<Vec<String>> {
        self.run(sql, &[]).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The first column of every row, joined with `,`.
    fn col(&mut self, sql: &str) -> String {
        self.q(sql).into_iter().map(|r| r.join("|")).collect::<Vec<_>>().join(",")
    }

    fn err(&mut self, sql: &str) -> Error {
        match self.run(sql, &[]) {
            Ok(rows) => panic!("{sql} should fail, returned {rows:?}"),
            Err(e) => e,
        }
    }
}

fn users() -> Db {
    let mut db = Db::new();
    db.q("CREATE TABLE users (id SERIAL PRIMARY KEY, name VARCHAR(10) NOT NULL UNIQUE, age INT CHECK (age >= 0), \
          active BOOLEAN DEFAULT true, created TIMESTAMPTZ DEFAULT now(), score NUMERIC(6,2))");
    db.q("CREATE TABLE posts (id BIGSERIAL PRIMARY KEY, user_id INT REFERENCES users(id) ON DELETE CASCADE, \
          title TEXT, body JSONB)");
    db.q("INSERT INTO users (name, age, score) VALUES ('ann', 30, 1.234), ('bob', 25, 2), ('cy', NULL, NULL)");
    db.q("INSERT INTO posts (user_id, title, body) VALUES (1, 'a', '{\"k\": 1, \"t\": [1,2]}'), (1, 'b', NULL), (2, 'c', '{\"k\": 2}')");
    db
}

#[test]
fn ddl_and_inserts_with_defaults_and_returning() {
    let mut db = users();
    assert_eq!(db.col("SELECT id, name, active, created, score FROM users ORDER BY id"),
        "1|ann|t|2024-05-17 10:11:12.123456+00|1.23,2|bob|t|2024-05-17 10:11:12.123456+00|2.00,3|cy|t|2024-05-17 10:11:12.123456+00|NULL");
    assert_eq!(db.col("INSERT INTO users (name) VALUES ('dee') RETURNING id, name"), "4|dee");
    assert_eq!(
        db.col("INSERT INTO users (name, age) VALUES ('eve', DEFAULT) RETURNING *"),
        "5|eve|NULL|t|2024-05-17 10:11:12.123456+00|NULL"
    );
    assert_eq!(db.col("UPDATE users SET age = age + 1 WHERE name = 'ann' RETURNING age"), "31");
    assert_eq!(db.col("DELETE FROM users WHERE id = 1 RETURNING name"), "ann");
    assert_eq!(db.col("SELECT count(*) FROM posts"), "1", "ON DELETE CASCADE");
    db.q("CREATE TABLE kv (k TEXT PRIMARY KEY, v INT)");
    db.q("INSERT INTO kv VALUES ('a', 1)");
    db.q("INSERT INTO kv VALUES ('a', 5) ON CONFLICT (k) DO UPDATE SET v = kv.v + EXCLUDED.v");
    db.q("INSERT INTO kv VALUES ('a', 100) ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v WHERE kv.v > 10");
    db.q("INSERT INTO kv VALUES ('a', 7) ON CONFLICT DO NOTHING");
    db.q("INSERT INTO kv SELECT 'b', 2 FROM kv ON CONFLICT (k) DO NOTHING");
    assert_eq!(db.col("SELECT k, v FROM kv ORDER BY k"), "a|6,b|2");
    db.q("CREATE TABLE d (x INT DEFAULT 7)");
    db.q("INSERT INTO d DEFAULT VALUES");
    assert_eq!(db.col("SELECT x FROM d"), "7");
    db.q("TRUNCATE d");
    assert_eq!(db.col("SELECT count(*) FROM d"), "0");
}

#[test]
fn alter_table_index_view_drop() {
    let mut db = users();
    db.q("ALTER TABLE users ADD COLUMN email TEXT");
    db.q("ALTER TABLE users RENAME COLUMN email TO mail");
    db.q("UPDATE users SET mail = name || '@x' WHERE id = 2");
    assert_eq!(db.col("SELECT mail FROM users WHERE id = 2"), "bob@x");
    db.q("ALTER TABLE users DROP COLUMN mail");
    assert_eq!(db.err("SELECT mail FROM users").code, SqlState::UNDEFINED_COLUMN);
    db.q("CREATE UNIQUE INDEX IF NOT EXISTS users_age ON users (age, name)");
    assert!(matches!(
        shoal_sql::plan(
            &shoal_sql::parse("CREATE UNIQUE INDEX IF NOT EXISTS users_age ON users (age)").unwrap()[0],
            &db.catalog,
            &[]
        )
        .unwrap(),
        Plan::Noop { .. }
    ));
    db.q("CREATE VIEW adults AS SELECT name, age FROM users WHERE age >= 18");
    assert_eq!(db.col("SELECT name FROM adults ORDER BY name"), "ann,bob");
    db.q("DROP VIEW adults");
    db.q("DROP INDEX users_age");
    db.q("ALTER TABLE posts RENAME TO articles");
    assert_eq!(db.col("SELECT count(*) FROM articles"), "3");
    db.q("DROP TABLE IF EXISTS articles, nothing");
    assert_eq!(db.err("SELECT * FROM articles").message, "relation \"articles\" does not exist");
    assert!(db.run("CREATE TABLE IF NOT EXISTS users (x int)", &[]).is_ok());
    assert_eq!(db.err("CREATE TABLE users (x int)").code, SqlState::DUPLICATE_TABLE);
    assert_eq!(db.col("SELECT table_name FROM information_schema.tables ORDER BY 1"), "users");
    assert_eq!(db.col("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'users' AND ordinal_position = 2"), "name|character varying");
}

#[test]
fn constraint_and_type_errors_map_to_postgres() {
    let mut db = users();
    let e = db.err("INSERT INTO users (name) VALUES ('ann')");
    assert_eq!(
        (e.code, e.message.as_str()),
        (SqlState::UNIQUE_VIOLATION, "duplicate key value violates unique constraint \"users_name_key\"")
    );
    let e = db.err("INSERT INTO users (id, name) VALUES (1, 'zed')");
    assert_eq!(e.message, "duplicate key value violates unique constraint \"users_pkey\"");
    let e = db.err("INSERT INTO users (name) VALUES (NULL)");
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            SqlState::NOT_NULL_VIOLATION,
            "null value in column \"name\" of relation \"users\" violates not-null constraint"
        )
    );
    let e = db.err("INSERT INTO users (name, age) VALUES ('x', -1)");
    assert_eq!(
        (e.code, e.message.as_str()),
        (SqlState::CHECK_VIOLATION, "new row for relation \"users\" violates check constraint \"users_age_check\"")
    );
    let e = db.err("INSERT INTO users (name) VALUES ('abcdefghijk')");
    assert_eq!(
        (e.code, e.message.as_str()),
        (SqlState::STRING_DATA_RIGHT_TRUNCATION, "value too long for type character varying(10)")
    );
    let e = db.err("INSERT INTO users (name, age) VALUES ('x', 'abc')");
    assert_eq!(
        (e.code, e.message.as_str()),
        (SqlState::INVALID_TEXT_REPRESENTATION, "invalid input syntax for type integer: \"abc\"")
    );
    let e = db.err("INSERT INTO posts (user_id) VALUES (99)");
    assert_eq!(e.code, SqlState::FOREIGN_KEY_VIOLATION);
    let e = db.err("UPDATE users SET age = name");
    assert_eq!(e.code, SqlState::DATATYPE_MISMATCH);
    // A parameter bound with garbage is caught by the generated type check.
    let e = db.run("INSERT INTO users (name, age) VALUES ('p', $1)", &[Value::Text("abc".into())]).unwrap_err();
    assert_eq!(e.code, SqlState::INVALID_TEXT_REPRESENTATION);
    let e = db.run("INSERT INTO users (name) VALUES ($1)", &[Value::Text("abcdefghijkl".into())]).unwrap_err();
    assert_eq!(e.code, SqlState::STRING_DATA_RIGHT_TRUNCATION);
    assert_eq!(db.err("SELECT 1/0").code, SqlState::DIVISION_BY_ZERO);
    assert_eq!(db.err("SELECT 'x'::int").message, "invalid input syntax for type integer: \"x\"");
    assert_eq!(db.err("SELECT * FROM nope").message, "relation \"nope\" does not exist");
    assert_eq!(db.err("SELECT nope FROM users").message, "column \"nope\" does not exist");
    assert_eq!(db.err("SELECT id FROM users, posts").code, SqlState::AMBIGUOUS_COLUMN);
    assert_eq!(db.err("SELECT 1 INTERSECT ALL SELECT 1").code, SqlState::FEATURE_NOT_SUPPORTED);
    assert_eq!(db.err("SELECT 'a' SIMILAR TO 'b'").code, SqlState::FEATURE_NOT_SUPPORTED);
    // Regular expressions are supported (PostgreSQL's `~` family).
    assert_eq!(db.col("SELECT 'a' ~ 'b', 'abc' ~ '^a', 'ABC' ~* 'b', 'x' !~ 'x'"), "f|t|t|f");
}

#[test]
fn parameters_are_bound_and_typed() {
    let mut db = users();
    let stmt = &shoal_sql::parse("SELECT name FROM users WHERE id = $1 AND name LIKE $2").unwrap()[0];
    let Plan::Query { sql, param_types, columns, .. } = shoal_sql::plan(stmt, &db.catalog, &[]).unwrap() else {
        panic!()
    };
    assert_eq!(param_types, vec![DataType::Int4, DataType::Text]);
    assert!(sql.contains("?1") && sql.contains("?2"));
    assert_eq!(columns[0].name, "name");
    assert_eq!(columns[0].data_type, DataType::Varchar(Some(10)));
    assert_eq!(columns[0].column_id, 2);
    assert!(columns[0].table_oid >= 16384);
    let rows = db.run("SELECT name FROM users WHERE id = $1", &[Value::Integer(2)]).unwrap();
    assert_eq!(rows, vec![vec!["bob".to_string()]]);
    let stmt = &shoal_sql::parse("SELECT $1::int + 1, $2").unwrap()[0];
    let Plan::Query { param_types, .. } = shoal_sql::plan(stmt, &db.catalog, &[]).unwrap() else { panic!() };
    assert_eq!(param_types, vec![DataType::Int4, DataType::Text]);
}

#[test]
fn output_names_and_types_follow_postgres() {
    let db = users();
    let stmt = &shoal_sql::parse("SELECT 1, 1.5, 'abc', count(*), sum(age), avg(age), now(), age > 1 AS big, lower(name), CAST(age AS text), CASE WHEN true THEN 1 END FROM users GROUP BY age, name").unwrap()[0];
    let Plan::Query { columns, .. } = shoal_sql::plan(stmt, &db.catalog, &[]).unwrap() else { panic!() };
    let got: Vec<(String, DataType)> = columns.into_iter().map(|c| (c.name, c.data_type)).collect();
    let want = [
        ("?column?", DataType::Int4),
        ("?column?", DataType::Numeric(None)),
        ("?column?", DataType::Text),
        ("count", DataType::Int8),
        ("sum", DataType::Int8),
        ("avg", DataType::Numeric(None)),
        ("now", DataType::Timestamptz),
        ("big", DataType::Bool),
        ("lower", DataType::Text),
        ("age", DataType::Text),
        ("case", DataType::Int4),
    ];
    assert_eq!(got, want.iter().map(|(n, t)| (n.to_string(), t.clone())).collect::<Vec<_>>());
}

#[test]
fn expressions() {
    let mut db = users();
    assert_eq!(db.col("SELECT 7 / 2, 7 % 3, 7.0 / 2, -3 + 1, 2 * 3"), "3|1|3.5000000000000000|-2|6");
    assert_eq!(db.col("SELECT 'a' || 'b' || 1, concat('x', NULL, 2), concat_ws('-', 'a', 'b')"), "ab1|x2|a-b");
    assert_eq!(db.col("SELECT name FROM users WHERE name ILIKE 'A%'"), "ann");
    assert_eq!(db.col("SELECT count(*) FROM users WHERE name LIKE 'A%'"), "0");
    assert_eq!(db.col("SELECT coalesce(age, 0), nullif(age, 30) FROM users ORDER BY id"), "30|NULL,25|25,0|NULL");
    assert_eq!(db.col("SELECT name FROM users WHERE age IN (25, 26) OR age IS NULL ORDER BY 1"), "bob,cy");
    assert_eq!(db.col("SELECT name FROM users WHERE age BETWEEN 20 AND 26"), "bob");
    assert_eq!(db.col("SELECT name FROM users WHERE age IS DISTINCT FROM 30 ORDER BY name"), "bob,cy");
    assert_eq!(db.col("SELECT CASE WHEN age > 26 THEN 'old' WHEN age IS NULL THEN 'unknown' ELSE 'young' END FROM users ORDER BY id"), "old,young,unknown");
    assert_eq!(
        db.col("SELECT upper('abc'), length('héllo'), substring('hello' from 2 for 3), position('l' in 'hello')"),
        "ABC|5|ell|3"
    );
    assert_eq!(
        db.col(
            "SELECT trim('  x  '), ltrim('xxa', 'x'), replace('abc', 'b', 'z'), left('hello', 2), right('hello', 2)"
        ),
        "x|a|azc|he|lo"
    );
    assert_eq!(
        db.col("SELECT repeat('ab', 3), lpad('7', 3, '0'), rpad('a', 3, '.'), split_part('a.b.c', '.', 3)"),
        "ababab|007|a..|c"
    );
    assert_eq!(
        db.col("SELECT starts_with('hello', 'he'), initcap('hi there'), reverse('abc'), md5('a')"),
        "t|Hi There|cba|0cc175b9c0f1b6a831c399e269772661"
    );
    assert_eq!(
        db.col("SELECT abs(-2), round(2.567, 2), ceil(1.2), floor(1.8), trunc(1.9), mod(7, 3), power(2, 10)"),
        "2|2.57|2|1|1|1|1024"
    );
    assert_eq!(db.col("SELECT sqrt(16), greatest(1, 5, NULL), least(3, 2), sign(-4)"), "4|5|2|-1");
    assert_eq!(db.col("SELECT true AND false, NOT true, 1 < 2"), "f|f|t");
    assert_eq!(db.col("SELECT '12'::int + 1, 3::text || 'x', 'yes'::boolean, 2.6::int"), "13|3x|t|3");
    assert_eq!(db.col("SELECT random(), gen_random_uuid()"), "0.5|a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
    assert_eq!(db.col("SELECT name FROM users WHERE active"), "ann,bob,cy");
}

#[test]
fn dates_and_intervals() {
    let mut db = Db::new();
    assert_eq!(db.col("SELECT DATE '2024-01-31' + 1, DATE '2024-03-01' - DATE '2024-02-01'"), "2024-02-01|29");
    assert_eq!(db.col("SELECT TIMESTAMP '2024-01-31 10:00:00' + INTERVAL '1 month'"), "2024-02-29 10:00:00");
    assert_eq!(db.col("SELECT TIMESTAMP '2024-01-01 00:00:00' - INTERVAL '2 hours'"), "2023-12-31 22:00:00");
    assert_eq!(db.col("SELECT TIMESTAMP '2024-01-03 12:00:00' - TIMESTAMP '2024-01-01 00:00:00'"), "2 days 12:00:00");
    assert_eq!(
        db.col("SELECT extract(year from DATE '2024-05-17'), date_trunc('month', TIMESTAMP '2024-05-17 10:11:12')"),
        "2024|2024-05-01 00:00:00"
    );
    assert_eq!(db.col("SELECT CURRENT_DATE, now() + interval '1 day'"), "2024-05-17|2024-05-18 10:11:12.123456+00");
    db.q("CREATE TABLE ev (id INT PRIMARY KEY, at TIMESTAMP, d DATE)");
    db.q("INSERT INTO ev VALUES (1, '2024-01-01 10:00', '2024-01-05'), (2, '2024-02-01T00:00:00', '2024-02-05')");
    assert_eq!(db.col("SELECT id FROM ev WHERE at > '2024-01-15' ORDER BY id"), "2");
    assert_eq!(db.col("SELECT at FROM ev ORDER BY id"), "2024-01-01 10:00:00,2024-02-01 00:00:00");
    // PostgreSQL reports bad date/time input as 22007 (invalid_datetime_format).
    assert_eq!(db.err("INSERT INTO ev VALUES (3, 'garbage', NULL)").code, SqlState::INVALID_DATETIME_FORMAT);
}

#[test]
fn json_operators() {
    let mut db = users();
    assert_eq!(
        db.col("SELECT body->>'k', body->'t', body->'t'->>1 FROM posts ORDER BY id"),
        "1|[1,2]|2,NULL|NULL|NULL,2|NULL|NULL"
    );
    assert_eq!(db.col("SELECT title FROM posts WHERE body->>'k' = '2'"), "c");
    assert_eq!(
        db.err("INSERT INTO posts (title, body) VALUES ('x', '{bad')").code,
        SqlState::INVALID_TEXT_REPRESENTATION
    );
}

#[test]
fn joins_aggregates_and_subqueries() {
    let mut db = users();
    assert_eq!(
        db.col("SELECT u.name, p.title FROM users u JOIN posts p ON p.user_id = u.id ORDER BY p.id"),
        "ann|a,ann|b,bob|c"
    );
    assert_eq!(db.col("SELECT u.name, count(p.id) FROM users u LEFT JOIN posts p ON p.user_id = u.id GROUP BY u.name ORDER BY u.name"), "ann|2,bob|1,cy|0");
    assert_eq!(db.col("SELECT count(*) FROM users u RIGHT JOIN posts p ON p.user_id = u.id"), "3");
    assert_eq!(db.col("SELECT count(*) FROM users FULL JOIN posts ON posts.user_id = users.id"), "4");
    assert_eq!(db.col("SELECT count(*) FROM users CROSS JOIN posts"), "9");
    db.q("CREATE TABLE a (k INT, x TEXT)");
    db.q("CREATE TABLE b (k INT, y TEXT)");
    db.q("INSERT INTO a VALUES (1, 'a1'), (2, 'a2')");
    db.q("INSERT INTO b VALUES (2, 'b2'), (3, 'b3')");
    assert_eq!(db.col("SELECT * FROM a JOIN b USING (k)"), "2|a2|b2");
    assert_eq!(db.col("SELECT k FROM a FULL JOIN b USING (k) ORDER BY k"), "1,2,3");
    assert_eq!(db.col("SELECT * FROM a NATURAL JOIN b"), "2|a2|b2");
    assert_eq!(db.col("SELECT string_agg(name, ',' ORDER BY name DESC), bool_and(age > 20), bool_or(age > 29), count(DISTINCT active) FROM users"), "cy,bob,ann|t|t|1");
    assert_eq!(db.col("SELECT user_id, count(*) FROM posts GROUP BY user_id HAVING count(*) > 1"), "1|2");
    assert_eq!(db.col("SELECT name FROM users WHERE id IN (SELECT user_id FROM posts) ORDER BY name"), "ann,bob");
    assert_eq!(
        db.col(
            "SELECT name FROM users u WHERE EXISTS (SELECT 1 FROM posts p WHERE p.user_id = u.id AND p.title = 'c')"
        ),
        "bob"
    );
    assert_eq!(
        db.col("SELECT name, (SELECT count(*) FROM posts p WHERE p.user_id = u.id) FROM users u ORDER BY id"),
        "ann|2,bob|1,cy|0"
    );
    assert_eq!(db.col("SELECT t.n FROM (SELECT name AS n FROM users) AS t ORDER BY t.n LIMIT 2 OFFSET 1"), "bob,cy");
    assert_eq!(db.col("SELECT x FROM (VALUES (1, 'a'), (2, 'b')) AS v(n, x) WHERE n = 2"), "b");
    assert_eq!(db.col("SELECT name FROM users ORDER BY age DESC"), "cy,ann,bob");
    assert_eq!(db.col("SELECT name FROM users ORDER BY age NULLS FIRST"), "cy,bob,ann");
    assert_eq!(db.col("SELECT name FROM users ORDER BY id FETCH FIRST 1 ROWS ONLY"), "ann");
    assert_eq!(db.col("SELECT DISTINCT active FROM users"), "t");
}

#[test]
fn ctes_windows_set_operations() {
    let mut db = users();
    assert_eq!(
        db.col("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5) SELECT sum(n) FROM r"),
        "15"
    );
    assert_eq!(db.col("WITH a AS (SELECT name FROM users WHERE age > 26) SELECT * FROM a"), "ann");
    assert_eq!(db.col("SELECT name, row_number() OVER (ORDER BY name DESC), rank() OVER (PARTITION BY active ORDER BY age) FROM users ORDER BY name"), "ann|3|2,bob|2|1,cy|1|3");
    assert_eq!(
        db.col("SELECT id, sum(id) OVER (ORDER BY id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) FROM users"),
        "1|1,2|3,3|6"
    );
    assert_eq!(db.col("SELECT 1 UNION SELECT 2 UNION SELECT 1 ORDER BY 1"), "1,2");
    assert_eq!(db.col("SELECT 1 UNION ALL SELECT 1"), "1,1");
    assert_eq!(db.col("SELECT name FROM users INTERSECT SELECT 'bob'"), "bob");
    assert_eq!(db.col("SELECT name FROM users EXCEPT SELECT 'bob' ORDER BY name"), "ann,cy");
    assert_eq!(db.col("SELECT DISTINCT ON (user_id) user_id, title FROM posts ORDER BY user_id, id DESC"), "1|b,2|c");
    assert_eq!(db.col("SELECT * FROM generate_series(1, 3)"), "1,2,3");
    assert_eq!(db.col("SELECT sum(g) FROM generate_series(1, 10, 3) AS g"), "22");
}

#[test]
fn session_and_transaction_statements() {
    let cases: &[(&str, Plan)] = &[
        ("BEGIN READ ONLY", Plan::Transaction(shoal_sql::TxnControl::Begin { read_only: true })),
        (
            "START TRANSACTION ISOLATION LEVEL SERIALIZABLE",
            Plan::Transaction(shoal_sql::TxnControl::Begin { read_only: false }),
        ),
        ("END", Plan::Transaction(shoal_sql::TxnControl::Commit)),
        ("ABORT", Plan::Transaction(shoal_sql::TxnControl::Rollback)),
        ("SAVEPOINT s1", Plan::Transaction(shoal_sql::TxnControl::Savepoint("s1".into()))),
        ("RELEASE s1", Plan::Transaction(shoal_sql::TxnControl::Release("s1".into()))),
        ("ROLLBACK TO SAVEPOINT s1", Plan::Transaction(shoal_sql::TxnControl::RollbackTo("s1".into()))),
        ("SET TIME ZONE 'UTC'", Plan::Set { name: "timezone".into(), value: Some("UTC".into()), local: false }),
        (
            "SET search_path TO public",
            Plan::Set { name: "search_path".into(), value: Some("public".into()), local: false },
        ),
        (
            "SET LOCAL statement_timeout = 5",
            Plan::Set { name: "statement_timeout".into(), value: Some("5".into()), local: true },
        ),
        ("RESET ALL", Plan::Set { name: "all".into(), value: None, local: false }),
        ("SHOW search_path", Plan::Show { name: "search_path".into() }),
        ("DISCARD ALL", Plan::Noop { tag: "DISCARD ALL".into(), notice: None }),
        (
            "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED",
            Plan::Noop { tag: "SET".into(), notice: None },
        ),
    ];
    let catalog = Catalog::default();
    for (sql, want) in cases {
        let stmt = &shoal_sql::parse(sql).unwrap()[0];
        assert_eq!(&shoal_sql::plan(stmt, &catalog, &[]).unwrap(), want, "{sql}");
    }
    assert!(shoal_sql::parse("").unwrap().is_empty());
    assert!(matches!(
        shoal_sql::plan(&shoal_sql::parse("CREATE SCHEMA IF NOT EXISTS public").unwrap()[0], &catalog, &[]),
        Ok(Plan::Noop { .. })
    ));
}

/// psql's `\d` and SQLAlchemy's reflection queries, verbatim, against the
/// attached catalog (PostgreSQL 16's output for the same schema in comments).
#[test]
fn psql_and_sqlalchemy_catalog_queries() {
    let mut db = Db::new();
    db.run(
        "CREATE TABLE p2 (id SERIAL PRIMARY KEY, name VARCHAR(20) NOT NULL DEFAULT 'x', n NUMERIC(5,2) CHECK (n > 0), UNIQUE (name))",
        &[],
    )
    .unwrap();
    db.run("CREATE TABLE c2 (id INT PRIMARY KEY, pid INT REFERENCES p2(id))", &[]).unwrap();
    db.run("CREATE INDEX c2_pid ON c2 (pid)", &[]).unwrap();
    db.refresh_system();
    let oid = db.col("SELECT c.oid, n.nspname, c.relname FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.relname OPERATOR(pg_catalog.~) '^(p2)$' COLLATE pg_catalog.default AND pg_catalog.pg_table_is_visible(c.oid) ORDER BY 2, 3");
    assert_eq!(oid, "16384|public|p2");
    // \d p2: columns
    assert_eq!(
        db.col("SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), (SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid, true) FROM pg_catalog.pg_attrdef d WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum AND a.atthasdef), a.attnotnull FROM pg_catalog.pg_attribute a WHERE a.attrelid = '16384' AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"),
        "id|integer|nextval('p2_id_seq'::regclass)|t,name|character varying(20)|'x'|t,n|numeric(5,2)|NULL|f"
    );
    // \d p2: indexes with their constraints
    assert_eq!(
        db.col("SELECT c2.relname, i.indisprimary, i.indisunique, pg_catalog.pg_get_indexdef(i.indexrelid, 0, true), pg_catalog.pg_get_constraintdef(con.oid, true), contype FROM pg_catalog.pg_class c, pg_catalog.pg_class c2, pg_catalog.pg_index i LEFT JOIN pg_catalog.pg_constraint con ON (conrelid = i.indrelid AND conindid = i.indexrelid AND contype IN ('p','u','x')) WHERE c.oid = '16384' AND c.oid = i.indrelid AND i.indexrelid = c2.oid ORDER BY i.indisprimary DESC, c2.relname"),
        "p2_pkey|t|t|CREATE UNIQUE INDEX p2_pkey ON public.p2 USING btree (id)|PRIMARY KEY (id)|p,\
         p2_name_key|f|t|CREATE UNIQUE INDEX p2_name_key ON public.p2 USING btree (name)|UNIQUE (name)|u"
    );
    // \d p2: referenced by (regclass casts, partition ancestors, UNION ALL VALUES)
    assert_eq!(
        db.col("SELECT conname, conrelid::pg_catalog.regclass AS ontable, pg_catalog.pg_get_constraintdef(oid, true) AS condef FROM pg_catalog.pg_constraint c WHERE confrelid IN (SELECT pg_catalog.pg_partition_ancestors('16384') UNION ALL VALUES ('16384'::pg_catalog.regclass)) AND contype = 'f' AND conparentid = 0 ORDER BY conname"),
        "c2_pid_fkey|c2|FOREIGN KEY (pid) REFERENCES p2(id)"
    );
    // \du: ARRAY(subquery); \l: array_to_string, encodings
    assert_eq!(
        db.col("SELECT r.rolname, ARRAY(SELECT b.rolname FROM pg_catalog.pg_auth_members m JOIN pg_catalog.pg_roles b ON (m.roleid = b.oid) WHERE m.member = r.oid) as memberof FROM pg_catalog.pg_roles r WHERE r.rolname !~ '^pg_' ORDER BY 1"),
        "shoal|{}"
    );
    assert_eq!(
        db.col("SELECT d.datname, pg_catalog.pg_encoding_to_char(d.encoding), pg_catalog.array_to_string(d.datacl, E'\\n') FROM pg_catalog.pg_database d ORDER BY 1"),
        "shoal|UTF8|NULL"
    );
    // SQLAlchemy: unnest/generate_subscripts in the SELECT list, array_agg, = ANY(ARRAY[…])
    assert_eq!(
        db.col("SELECT attr.conrelid, array_agg(CAST(attr.attname AS TEXT) ORDER BY attr.ord) AS cols, attr.conname FROM (SELECT con.conrelid AS conrelid, con.conname AS conname, con.ord AS ord, pg_catalog.pg_attribute.attname AS attname FROM pg_catalog.pg_attribute JOIN (SELECT pg_catalog.pg_constraint.conrelid AS conrelid, pg_catalog.pg_constraint.conname AS conname, unnest(pg_catalog.pg_index.indkey) AS attnum, generate_subscripts(pg_catalog.pg_index.indkey, 1) AS ord FROM pg_catalog.pg_constraint JOIN pg_catalog.pg_index ON pg_catalog.pg_constraint.conindid = pg_catalog.pg_index.indexrelid WHERE pg_catalog.pg_constraint.contype = 'p' AND pg_catalog.pg_constraint.conrelid IN (16384)) AS con ON pg_catalog.pg_attribute.attnum = con.attnum AND pg_catalog.pg_attribute.attrelid = con.conrelid) AS attr GROUP BY attr.conrelid, attr.conname ORDER BY attr.conrelid, attr.conname"),
        "16384|{id}|p2_pkey"
    );
    assert_eq!(
        db.col("SELECT pg_catalog.pg_class.relname FROM pg_catalog.pg_class WHERE pg_catalog.pg_class.relkind = ANY (ARRAY['r'::VARCHAR, 'p'::VARCHAR]) ORDER BY 1"),
        "c2,p2"
    );
    assert_eq!(db.col("SELECT x, o FROM unnest('{a,b}'::text[]) WITH ORDINALITY AS u(x, o)"), "a|1,b|2");
    assert_eq!(
        db.col("SELECT ('{10,20}'::int4[])[2], 2 = ANY('{1,2}'::int4[]), array_upper('{1,2,3}'::int4[], 1)"),
        "20|t|3"
    );
}

#[test]
fn system_views_are_typed_for_the_binder() {
    let mut db = Db::new();
    db.conn.execute_batch("ATTACH DATABASE ':memory:' AS shoal").unwrap();
    for v in shoal_sql::system_views() {
        db.conn.execute_batch(&v.create_sql()).unwrap();
    }
    db.conn.execute_batch("INSERT INTO shoal.nodes VALUES (1, 'c', 'a', 'b', 'h', 1, 2.5, 1)").unwrap();
    assert_eq!(db.col("SELECT node_id, is_self FROM shoal.nodes"), "1|t");
    assert_eq!(db.col("SELECT count(*) FROM shoal.groups"), "0");
}

// ------------------------------------------------ PostgreSQL conformance fixes

#[test]
fn integers_out_of_range_and_overflow_are_22003() {
    let mut db = Db::new();
    db.q("CREATE TABLE ints (id serial PRIMARY KEY, s smallint, i integer, b bigint)");
    let e = db.err("INSERT INTO ints (s) VALUES (32768)");
    assert_eq!((e.code, e.message.as_str()), (SqlState::NUMERIC_VALUE_OUT_OF_RANGE, "smallint out of range"));
    db.q("INSERT INTO ints (s, i, b) VALUES (1, 2147483647, 9223372036854775807)");
    assert_eq!(db.err("UPDATE ints SET s = i").message, "smallint out of range");
    assert_eq!(db.err("SELECT i::int2 FROM ints").message, "smallint out of range");
    assert_eq!(db.err("SELECT b::int4 FROM ints").message, "integer out of range");
    let e = db.err("SELECT 2147483647::int + 1");
    assert_eq!((e.code, e.message.as_str()), (SqlState::NUMERIC_VALUE_OUT_OF_RANGE, "integer out of range"));
    assert_eq!(db.err("SELECT i + 1 FROM ints").message, "integer out of range");
    assert_eq!(db.err("SELECT i * 2 FROM ints").message, "integer out of range");
    assert_eq!(db.err("SELECT b + 1 FROM ints").message, "bigint out of range");
    assert_eq!(db.col("SELECT i - 1, b - 1, s * 3, 2 - 5 FROM ints"), "2147483646|9223372036854775806|3|-3");
}

#[test]
fn identity_always_refuses_explicit_values() {
    let mut db = Db::new();
    db.q("CREATE TABLE ident (id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text)");
    assert_eq!(db.col("INSERT INTO ident (v) VALUES ('x'), ('y') RETURNING id"), "1,2");
    assert_eq!(db.col("INSERT INTO ident (id, v) VALUES (DEFAULT, 'z') RETURNING id"), "3");
    let e = db.err("INSERT INTO ident (id, v) VALUES (10, 'z')");
    assert_eq!(e.code, SqlState::parse("428C9"));
    assert_eq!(e.message, "cannot insert a non-DEFAULT value into column \"id\"");
    assert_eq!(e.detail.as_deref(), Some("Column \"id\" is an identity column defined as GENERATED ALWAYS."));
    assert_eq!(e.hint.as_deref(), Some("Use OVERRIDING SYSTEM VALUE to override."));
    assert_eq!(db.err("UPDATE ident SET id = 5").message, "column \"id\" can only be updated to DEFAULT");
    db.q("CREATE TABLE ident2 (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, v text)");
    db.q("INSERT INTO ident2 (id, v) VALUES (100, 'explicit')");
}

#[test]
fn character_types_follow_postgres() {
    let mut db = Db::new();
    db.q("CREATE TABLE texts (t text, v varchar(5), c char(4))");
    db.q("INSERT INTO texts VALUES ('hello world', 'abc', 'ab')");
    assert_eq!(db.col("SELECT length(c), c || '|', octet_length(c), upper(c) FROM texts"), "2|ab||2|AB");
    assert_eq!(db.col("SELECT count(*) FROM texts WHERE c = 'ab'"), "1", "trailing blanks are insignificant");
    assert_eq!(db.col("SELECT 'abcdefgh'::varchar(3), 'abcdef'::char(2), 'a'::char(3) || '|'"), "abc|ab|a|");
    assert_eq!(db.col("SELECT t::varchar(4) FROM texts"), "hell");
    assert_eq!(db.err("INSERT INTO texts (v) VALUES ('toolong')").code, SqlState::STRING_DATA_RIGHT_TRUNCATION);
    assert_eq!(db.err("INSERT INTO texts (c) VALUES ('abcde')").code, SqlState::STRING_DATA_RIGHT_TRUNCATION);
}

#[test]
fn numeric_bytea_and_date_input_errors() {
    let mut db = Db::new();
    db.q("CREATE TABLE money (id int PRIMARY KEY, amount numeric(10,2))");
    db.q("INSERT INTO money VALUES (1, 12345678.99)");
    let e = db.err("INSERT INTO money VALUES (4, 123456789.00)");
    assert_eq!((e.code, e.message.as_str()), (SqlState::NUMERIC_VALUE_OUT_OF_RANGE, "numeric field overflow"));
    assert_eq!(db.err("SELECT 1000::numeric(4,2)").message, "numeric field overflow");
    let e = db.err("SELECT 'not a date'::date");
    assert_eq!(e.code, SqlState::INVALID_DATETIME_FORMAT);
    assert_eq!(e.message, "invalid input syntax for type date: \"not a date\"");
    assert_eq!(db.err("SELECT '2024-02-30'::date").code, SqlState::DATETIME_FIELD_OVERFLOW);
    db.q("CREATE TABLE blobs (id int PRIMARY KEY, data bytea)");
    db.q("INSERT INTO blobs VALUES (1, '\\x0001ff')");
    assert_eq!(db.col("SELECT length(data), octet_length(data) FROM blobs"), "3|3");
}

#[test]
fn ungrouped_columns_are_42803() {
    let mut db = users();
    let e = db.err("SELECT id, count(*) FROM users");
    assert_eq!(e.code, SqlState::GROUPING_ERROR);
    assert_eq!(e.message, "column \"users.id\" must appear in the GROUP BY clause or be used in an aggregate function");
    assert_eq!(
        db.err("SELECT u.name, count(*) FROM users u GROUP BY u.age").message,
        "column \"u.name\" must appear in the GROUP BY clause or be used in an aggregate function"
    );
    assert_eq!(db.err("SELECT age FROM users GROUP BY name HAVING count(*) > 0").code, SqlState::GROUPING_ERROR);
    assert_eq!(db.err("SELECT name FROM users GROUP BY age ORDER BY 1").code, SqlState::GROUPING_ERROR);
    // Grouped expressions, aliases, ordinals, aggregates and primary-key dependency are fine.
    db.q("SELECT lower(name), count(*) FROM users GROUP BY lower(name)");
    db.q("SELECT age AS a, count(*) FROM users GROUP BY a");
    db.q("SELECT age + 1, max(name) FROM users GROUP BY 1");
    db.q("SELECT users.id, name, count(p.id) FROM users LEFT JOIN posts p ON p.user_id = users.id GROUP BY users.id");
    db.q("SELECT count(*), sum(age) FROM users");
    db.q("SELECT name, row_number() OVER (ORDER BY id) FROM users");
    db.q("SELECT (SELECT count(*) FROM posts WHERE posts.user_id = u.id) FROM users u");
}

#[test]
fn scalar_subquery_with_two_rows_is_21000() {
    let mut db = users();
    let e = db.err("SELECT (SELECT id FROM (VALUES (1), (2)) AS v(id))");
    assert_eq!(e.code, SqlState::CARDINALITY_VIOLATION);
    assert_eq!(e.message, "more than one row returned by a subquery used as an expression");
    assert_eq!(
        db.col("SELECT (SELECT name FROM users WHERE id = 2), (SELECT name FROM users WHERE id = 9)"),
        "bob|NULL"
    );
    assert_eq!(
        db.col("SELECT name FROM users u WHERE (SELECT count(*) FROM posts p WHERE p.user_id = u.id) = 2"),
        "ann"
    );
}

#[test]
fn format_power_generate_series_and_settings() {
    let mut db = Db::new();
    assert_eq!(db.col("SELECT format('%s-%s', 'x', 42)"), "x-42");
    assert_eq!(db.col("SELECT format('%I.%L %% %2$s', 'My Tab', 'it''s')"), "\"My Tab\".'it''s' % it's");
    assert_eq!(db.col("SELECT format('%L', NULL)"), "NULL");
    assert_eq!(db.err("SELECT format('%s %s', 'a')").code, SqlState::INVALID_PARAMETER_VALUE);
    assert_eq!(db.col("SELECT 2 ^ 10, 2 ^ 3 ^ 2"), "1024|64");
    assert_eq!(db.col("SELECT x FROM generate_series(10, 1, -3) AS g(x)"), "10,7,4,1");
    assert_eq!(db.col("SELECT x FROM generate_series(1, 10, 4) AS g(x)"), "1,5,9");
    assert_eq!(db.col("SELECT count(*) FROM generate_series(1, 0, 3)"), "0");
    assert_eq!(db.col("SELECT count(*) FROM generate_series(1, 10, -1)"), "0");
    assert_eq!(db.err("SELECT * FROM generate_series(1, 10, 0)").code, SqlState::INVALID_PARAMETER_VALUE);
    assert_eq!(db.col("SELECT current_setting('server_version_num')::int >= 150000"), "t");
}

#[test]
fn foreign_key_and_drop_index_errors_name_the_objects() {
    let mut db = Db::new();
    db.q("CREATE TABLE authors (id int PRIMARY KEY, name text)");
    db.q("CREATE TABLE books (id int PRIMARY KEY, author_id int REFERENCES authors (id), title text)");
    let fk = |db: &Db, sql: &str| {
        let target = shoal_sql::write_target(&shoal_sql::parse(sql).unwrap()[0]);
        shoal_sql::map_write_error("FOREIGN KEY constraint failed", &db.catalog, target.as_ref()).unwrap()
    };
    let e = fk(&db, "INSERT INTO books VALUES (3, 98, 'orphan')");
    assert_eq!(e.code, SqlState::FOREIGN_KEY_VIOLATION);
    assert_eq!(
        e.message,
        "insert or update on table \"books\" violates foreign key constraint \"books_author_id_fkey\""
    );
    assert_eq!(fk(&db, "UPDATE books SET author_id = 7").message, e.message);
    assert_eq!(
        fk(&db, "DELETE FROM authors WHERE id = 1").message,
        "update or delete on table \"authors\" violates foreign key constraint \"books_author_id_fkey\" on table \"books\""
    );
    let e = db.err("DROP INDEX nope");
    assert_eq!((e.code, e.message.as_str()), (SqlState::UNDEFINED_OBJECT, "index \"nope\" does not exist"));
}

#[test]
fn queries_say_which_system_schemas_they_read() {
    let mut db = Db::new();
    db.run("CREATE TABLE t (id int PRIMARY KEY)", &[]).unwrap();
    let reads = |sql: &str| {
        let stmt = &shoal_sql::parse(sql).unwrap()[0];
        match shoal_sql::plan(stmt, &db.catalog, &[]).unwrap() {
            Plan::Query { reads, .. } => (reads.catalog, reads.system_views),
            other => panic!("{sql}: not a query: {other:?}"),
        }
    };
    assert_eq!(reads("SELECT * FROM t"), (false, false));
    // A user table named like a catalog prefix is still a user table.
    assert_eq!(reads("SELECT * FROM t WHERE id = 1 AND 'pg_class' = 'pg_class'"), (false, false));
    assert_eq!(reads("SELECT relname FROM pg_catalog.pg_class"), (true, false));
    assert_eq!(reads("SELECT table_name FROM information_schema.tables"), (true, false));
    assert_eq!(reads("SELECT 't'::regclass"), (true, false));
    assert_eq!(reads("SELECT pg_get_userbyid(10)"), (true, false));
    assert_eq!(reads("SELECT group_id FROM shoal.groups"), (false, true));
    assert_eq!(reads("SELECT * FROM t WHERE id IN (SELECT node_id FROM shoal.nodes)"), (false, true));
}

#[test]
fn numeric_literals_fold_into_float_arithmetic() {
    let mut db = users();
    let stmts = shoal_sql::parse("SELECT age * 1.5::float8, 2.5 + 1::float8 FROM users WHERE age > 1.5").unwrap();
    let plan = format!("{:?}", shoal_sql::plan(&stmts[0], &db.catalog, &[]).unwrap());
    // Float arithmetic with a numeric literal uses a double literal, no function call.
    assert!(plan.contains("1.5") && !plan.contains("pg_num_float8"), "{plan}");
    // An integer column against a literal a double holds exactly compares natively (index-friendly) …
    assert!(plan.contains("(\\\"users\\\".\\\"age\\\" > (1.5))"), "{plan}");
    // … and against one it does not, as numeric.
    let stmts = shoal_sql::parse("SELECT name FROM users WHERE age > 0.1").unwrap();
    let plan = format!("{:?}", shoal_sql::plan(&stmts[0], &db.catalog, &[]).unwrap());
    assert!(plan.contains("CAST(\\\"users\\\".\\\"age\\\" AS TEXT) COLLATE pg_numeric) > '0.1'"), "{plan}");
    assert_eq!(db.col("SELECT name FROM users WHERE age > 25.5 ORDER BY id"), "ann");
    assert_eq!(db.col("SELECT name FROM users WHERE age = 25.0 ORDER BY id"), "bob");
    assert_eq!(db.col("SELECT name FROM users WHERE age < 25.1 ORDER BY id"), "bob");
}
