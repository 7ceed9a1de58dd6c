//! Constraint errors name their object in the ErrorResponse fields drivers
//! expose (`s` schema, `t` table, `c` column, `n` constraint), as PostgreSQL does.

mod common;

#[tokio::test(flavor = "multi_thread")]
async fn constraint_errors_name_schema_table_column_and_constraint() {
    let server = common::Server::start().await;
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE parent (id INT PRIMARY KEY, name TEXT NOT NULL UNIQUE, qty INT CHECK (qty >= 0)); \
             CREATE TABLE child (id INT PRIMARY KEY, parent_id INT REFERENCES parent (id)); \
             INSERT INTO parent VALUES (1, 'a', 1)",
        )
        .await
        .unwrap();

    let fields = |sql: &'static str| {
        let client = &client;
        async move {
            let err = client.execute(sql, &[]).await.expect_err(sql);
            let db = err.as_db_error().unwrap_or_else(|| panic!("{sql}: not a database error: {err}"));
            (
                db.code().code().to_string(),
                db.schema().map(str::to_string),
                db.table().map(str::to_string),
                db.column().map(str::to_string),
                db.constraint().map(str::to_string),
            )
        }
    };
    let s = |v: &str| Some(v.to_string());

    assert_eq!(
        fields("INSERT INTO parent VALUES (2, 'a', 1)").await,
        ("23505".into(), s("public"), s("parent"), None, s("parent_name_key"))
    );
    assert_eq!(
        fields("INSERT INTO parent VALUES (1, 'b', 1)").await,
        ("23505".into(), s("public"), s("parent"), None, s("parent_pkey"))
    );
    assert_eq!(
        fields("INSERT INTO parent (id, qty) VALUES (3, 1)").await,
        ("23502".into(), s("public"), s("parent"), s("name"), None)
    );
    assert_eq!(
        fields("INSERT INTO parent VALUES (4, 'd', -1)").await,
        ("23514".into(), s("public"), s("parent"), None, s("parent_qty_check"))
    );
    assert_eq!(
        fields("INSERT INTO child VALUES (1, 99)").await,
        ("23503".into(), s("public"), s("child"), None, s("child_parent_id_fkey"))
    );
}

/// A unique violation's DETAIL names the duplicate key with its values, as
/// PostgreSQL's does (SQLite reports only the columns; Shoal looks the
/// inserted rows up again), for literals, parameters, the row of a
/// multi-row insert that conflicts, and inside a transaction.
#[tokio::test(flavor = "multi_thread")]
async fn unique_violation_detail_names_the_key_values() {
    let server = common::Server::start().await;
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE fruit (id INT PRIMARY KEY, name TEXT UNIQUE, a INT, b BOOLEAN, UNIQUE (a, b)); \
             INSERT INTO fruit VALUES (1, 'apple', 1, true)",
        )
        .await
        .unwrap();
    let detail = |sql: &'static str, params: Vec<Box<dyn tokio_postgres::types::ToSql + Sync + Send>>| {
        let client = &client;
        async move {
            let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                params.iter().map(|p| p.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync)).collect();
            let err = client.execute(sql, &refs).await.expect_err(sql);
            let db = err.as_db_error().unwrap_or_else(|| panic!("{sql}: not a database error: {err}"));
            assert_eq!(db.code().code(), "23505", "{sql}");
            db.detail().map(str::to_string)
        }
    };
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        detail("INSERT INTO fruit VALUES (2, 'apple', 2, true)", vec![]).await,
        s("Key (name)=(apple) already exists.")
    );
    assert_eq!(
        detail("INSERT INTO fruit (id, name) VALUES ($1, $2)", vec![Box::new(1i32), Box::new("pear")]).await,
        s("Key (id)=(1) already exists.")
    );
    assert_eq!(
        detail("INSERT INTO fruit VALUES (5, 'fig', 7, false), (6, 'kiwi', 1, true)", vec![]).await,
        s("Key (a, b)=(1, t) already exists.")
    );
    client.batch_execute("BEGIN; INSERT INTO fruit VALUES (9, 'plum', 9, true)").await.unwrap();
    assert_eq!(
        detail("INSERT INTO fruit VALUES (10, 'plum', 10, true)", vec![]).await,
        s("Key (name)=(plum) already exists.")
    );
    client.batch_execute("ROLLBACK").await.unwrap();
    // Two new rows with the same key: no existing row to find, so the key is not named.
    assert_eq!(
        detail("INSERT INTO fruit VALUES (11, 'x', 11, true), (12, 'x', 12, true)", vec![]).await,
        s("Key (name) already exists.")
    );
}
