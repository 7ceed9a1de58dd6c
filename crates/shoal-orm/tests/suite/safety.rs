//! Injection strings through every API, typed errors, raw SQL.

use shoal_orm::prelude::*;

use crate::harness::{Kind, TestDb};
use crate::models::*;

/// Classic injection payloads, quote and escape tricks, placeholder
/// look-alikes and comment openers.
const NASTY: &[&str] = &[
    "Robert'); DROP TABLE users;--",
    "' OR '1'='1",
    "' OR 1=1 --",
    "\"; DROP TABLE users; --",
    "`; DROP TABLE users; --",
    "\\'; DROP TABLE users; --",
    "\\",
    "1; DELETE FROM users",
    "%' OR name LIKE '%",
    "_%!",
    "$1",
    "?",
    "$$; DROP TABLE users; $$",
    "/* unterminated comment",
    "-- trailing comment",
    "x' UNION SELECT password FROM pg_shadow --",
    "line\nbreak\r\ttab",
    "émoji 🦀 ünïcode",
    "'",
    "''",
];

pub async fn injection_strings_are_stored_verbatim(t: TestDb) {
    let t = t.with_schema().await;
    let db = &t.db;
    for (i, s) in NASTY.iter().enumerate() {
        let uow = db.unit_of_work();
        let db = &uow;
        let s = *s;

        // insert / get / find
        let mut u = user(s, i as i32);
        u.email = Some(format!("{s}@{i}"));
        u.insert(db).await.unwrap_or_else(|e| panic!("insert {s:?}: {e}"));
        let back = User::get(db, u.id).await.unwrap();
        assert_eq!(back.name, s, "insert round trip");
        assert_eq!(back.email.as_deref(), Some(format!("{s}@{i}").as_str()));

        // filters: eq, in, contains / starts_with / ends_with, like as a literal
        assert_eq!(User::query().filter(User::NAME.eq(s)).count(db).await.unwrap(), 1, "eq {s:?}");
        assert_eq!(User::query().filter(User::NAME.is_in([s, "nobody"])).count(db).await.unwrap(), 1, "in {s:?}");
        let found = User::query().filter(User::NAME.contains(s)).all(db).await.unwrap();
        assert!(found.iter().any(|f| f.id == u.id), "contains {s:?}");
        assert!(User::query().filter(User::NAME.starts_with(s)).exists(db).await.unwrap(), "starts_with {s:?}");
        assert!(User::query().filter(User::NAME.ends_with(s)).exists(db).await.unwrap(), "ends_with {s:?}");
        // As a pattern the text may be invalid (a trailing backslash); it must never be SQL.
        let _ = User::query().filter(User::NAME.like(s)).count(db).await;

        // raw SQL through sql!
        let ids: Vec<(i64,)> = sql!("SELECT id FROM users WHERE name = {s}").fetch_all(db).await.unwrap();
        assert_eq!(ids, vec![(u.id,)], "sql! {s:?}");

        // update by filter, tracked update, upsert, composite keys
        User::update_where(User::NAME.eq(s)).set(User::EMAIL, s).execute(db).await.unwrap();
        assert_eq!(User::get(db, u.id).await.unwrap().email.as_deref(), Some(s));
        let mut tracked = User::get(db, u.id).await.unwrap().track();
        tracked.name = format!("{s}{s}");
        tracked.save(db).await.unwrap();
        assert_eq!(User::get(db, u.id).await.unwrap().name, format!("{s}{s}"));
        let rows = vec![User { id: u.id, ..user(s, 7) }];
        User::insert_all(&rows).on_conflict(User::ID).do_update((User::NAME,)).execute(db).await.unwrap();
        assert_eq!(User::get(db, u.id).await.unwrap().name, s);
        let m = Membership { org: s.into(), user_id: i as i64, role: s.into(), rank: None, score: 0.0 };
        m.clone().save(db).await.unwrap();
        assert_eq!(Membership::get(db, (s.to_string(), i as i64)).await.unwrap(), m);
        assert!(m.delete(db).await.unwrap());
    }

    eprintln!("every row is there, verbatim, and no statement ran that the API did not write");
    let stored = User::query().order_by(User::AGE.asc()).all(db).await.unwrap();
    assert_eq!(stored.len(), NASTY.len());
    for (u, s) in stored.iter().zip(NASTY) {
        assert_eq!(u.name, *s);
    }
    assert_eq!(Membership::query().count(db).await.unwrap(), 0);
    let tables = shoal_orm::migrate::live_schema(db).await.unwrap();
    for table in all_tables() {
        assert!(tables.contains_key(table.name), "{} survived", table.name);
    }
}

pub async fn typed_errors_with_sqlstates(mut t: TestDb) {
    t = t.with_schema().await;
    let db = t.db.clone();
    let mut alice = user("Alice", 30);
    alice.email = Some("a@x".into());
    alice.insert(&db).await.unwrap();

    eprintln!("unique violation names the constraint (primary key and unique index)");
    let mut twin = user("Twin", 1);
    twin.email = Some("a@x".into());
    let e = twin.insert(&db).await.unwrap_err();
    assert!(matches!(&e, Error::UniqueViolation { .. }), "{e:?}");
    assert_eq!((e.sqlstate(), e.constraint()), ("23505", Some("users_email_address_key")), "{e}");
    let e = User { id: alice.id, ..user("Clone", 1) }.insert(&db).await.unwrap_err();
    assert_eq!((e.sqlstate(), e.constraint()), ("23505", Some("users_pkey")), "{e}");

    eprintln!("foreign key, check and not-null violations");
    let e = order(alice.id + 999, 1).insert(&db).await.unwrap_err();
    assert!(matches!(&e, Error::ForeignKeyViolation { .. }), "{e:?}");
    assert_eq!(e.sqlstate(), "23503");
    let e = order(alice.id, -5).insert(&db).await.unwrap_err();
    assert!(matches!(&e, Error::CheckViolation { .. }), "{e:?}");
    assert_eq!((e.sqlstate(), e.constraint()), ("23514", Some("orders_total_nonneg")), "{e}");
    let e = sql!("INSERT INTO users (name, age, active) VALUES ({None::<String>}, {1}, {true})")
        .execute(&db)
        .await
        .unwrap_err();
    assert!(matches!(&e, Error::NotNullViolation { .. }), "{e:?}");
    assert_eq!(e.sqlstate(), "23502");

    eprintln!("a value that does not fit the Rust type is a decode error, not a panic");
    let e = sql!("SELECT name FROM users").fetch_all::<(i64,)>(&db).await.unwrap_err();
    assert!(matches!(e, Error::Decode { .. }), "{e:?}");
    assert_eq!(e.sqlstate(), "22000");
    let e = sql!("SELECT 40000 AS n").scalar::<i16>(&db).await.unwrap_err();
    assert!(matches!(e, Error::Decode { .. }), "{e:?}");

    eprintln!("an unknown table keeps the server's SQLSTATE");
    let e = sql!("SELECT * FROM no_such_table").execute(&db).await.unwrap_err();
    assert_eq!(e.sqlstate(), "42P01", "{e}");

    eprintln!("a lost connection is ConnectionLost (08006) and the pool recovers");
    let lost = match t.kind {
        Kind::Postgres => {
            Some(sql!("SELECT pg_terminate_backend(pg_backend_pid())").execute(&db.begin().await.unwrap()).await)
        }
        Kind::Mysql => {
            let tx = db.begin().await.unwrap();
            let id: i64 = sql!("SELECT CONNECTION_ID()").scalar(&tx).await.unwrap();
            // KILL is not preparable; the test's own admin session sends it.
            crate::harness::mysql_kill(id).await;
            Some(sql!("SELECT 1").execute(&tx).await)
        }
        Kind::Shoal => {
            let tx = db.begin().await.unwrap();
            t.kill_server();
            Some(sql!("SELECT 1").execute(&tx).await)
        }
        Kind::Sqlite => None,
    };
    if let Some(result) = lost {
        let e = result.unwrap_err();
        assert!(matches!(e, Error::ConnectionLost { .. }), "{e:?}");
        assert_eq!(e.sqlstate(), "08006");
        if t.kind != Kind::Shoal {
            assert_eq!(User::query().count(&db).await.unwrap(), 1, "a fresh connection replaces the lost one");
        }
    }
}

#[derive(FromRow, Debug, PartialEq)]
struct NameAge {
    #[model(column = "name")]
    who: String,
    age: i32,
}

pub async fn raw_sql_binds_every_value(t: TestDb) {
    let t = t.with_schema().await;
    let db = &t.db;
    for (name, age) in [("a", 10), ("b", 20), ("c", 30)] {
        user(name, age).insert(db).await.unwrap();
    }
    let min = 15;
    let rows: Vec<NameAge> = sql!("SELECT name, age FROM users WHERE age > {min} AND name <> {\"c\"} ORDER BY age")
        .fetch_all(db)
        .await
        .unwrap();
    assert_eq!(rows, vec![NameAge { who: "b".into(), age: 20 }]);
    let n: i64 = sql!("SELECT COUNT(*) FROM users WHERE age >= {min * 2}").scalar(db).await.unwrap();
    assert_eq!(n, 1);
    let users: Vec<User> =
        sql!("SELECT * FROM users WHERE name IN ({\"a\"}, {\"b\"}) ORDER BY id").fetch_all(db).await.unwrap();
    assert_eq!(users.iter().map(|u| u.age).collect::<Vec<_>>(), vec![10, 20]);
    assert!(sql!("SELECT id FROM users WHERE age = {-1}").fetch_optional::<(i64,)>(db).await.unwrap().is_none());
    assert!(matches!(
        sql!("SELECT id FROM users WHERE age = {-1}").fetch_one::<(i64,)>(db).await,
        Err(Error::NotFound { .. })
    ));
    let changed = sql!("UPDATE users SET age = age + {1} WHERE name = {\"a\"}").execute(db).await.unwrap();
    assert_eq!(changed, 1);
    let q = sql!("SELECT {{literal braces}} FROM users WHERE name = {\"x\"}");
    assert_eq!(q.text_with_placeholders(db.dialect()).matches("{literal braces}").count(), 1);
    assert_eq!(q.values().len(), 1);
    let filtered = User::query().filter(Cond::raw(sql!("LOWER(name) = {\"b\"}"))).all(db).await.unwrap();
    assert_eq!(filtered.len(), 1);
}
