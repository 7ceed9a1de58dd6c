//! Cancel requests stop the running statement with 57014 and leave the
//! session usable: for an autocommit read (a pooled read connection) and for
//! a statement inside a transaction that holds the group's writer.

mod common;

use std::time::Duration;

/// A query that runs far longer than the test waits before cancelling.
const LONG_QUERY: &str =
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000000) SELECT count(*) FROM n";

async fn cancel_during(client: &tokio_postgres::Client) -> tokio_postgres::Error {
    let token = client.cancel_token();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        token.cancel_query(tokio_postgres::NoTls).await
    });
    let err = client.query_one(LONG_QUERY, &[]).await.expect_err("the long query must be cancelled");
    canceller.await.unwrap().expect("cancel request sent");
    err
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_stops_reads_and_transaction_statements() {
    let server = common::Server::start().await;
    let client = server.connect().await;
    client.batch_execute("CREATE TABLE c (id INT PRIMARY KEY)").await.unwrap();

    let err = cancel_during(&client).await;
    assert_eq!(common::sqlstate(&err).as_deref(), Some("57014"), "autocommit read: {err}");
    assert_eq!(client.query_one("SELECT 1", &[]).await.unwrap().get::<_, i32>(0), 1);

    // Inside a transaction that has written, reads run on the writer.
    client.batch_execute("BEGIN; INSERT INTO c VALUES (1)").await.unwrap();
    let err = cancel_during(&client).await;
    assert_eq!(common::sqlstate(&err).as_deref(), Some("57014"), "statement on the writer: {err}");
    client.batch_execute("ROLLBACK").await.unwrap();

    // The write slot was released: another session writes at once.
    let other = server.connect().await;
    other.execute("INSERT INTO c VALUES (2)", &[]).await.unwrap();
    assert_eq!(client.query_one("SELECT count(*) FROM c", &[]).await.unwrap().get::<_, i64>(0), 1);
}
