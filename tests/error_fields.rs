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
