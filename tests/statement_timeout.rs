//! `statement_timeout`, `idle_in_transaction_session_timeout` and cancel
//! requests for every kind of statement, PostgreSQL's way:
//!
//! * a statement that runs past `statement_timeout` fails with 57014
//!   "canceling statement due to statement timeout" — a read, a batched
//!   autocommit write, a statement inside a transaction — and other sessions
//!   go on unaffected; inside a transaction block the transaction is then
//!   aborted (25P02) until ROLLBACK or ROLLBACK TO SAVEPOINT;
//! * a statement waiting for the write slot, which another session's open
//!   transaction holds, gives up at its timeout or on a cancel request, as
//!   PostgreSQL's lock waits do, and leaves the slot free for the next writer;
//! * an idle transaction is ended with FATAL 25P03;
//! * on a three-node cluster, a cancel request to a follower stops a
//!   statement running on the leader (an interactive transaction's, and a
//!   forwarded autocommit write) or waiting there for the write slot or for
//!   a read index; a cancel that fires at once, or while the leader is
//!   stopped and then deposed, is not lost; without a timeout, a BEGIN or
//!   a write waits for the slot however long the transaction ahead of it lasts
//!   (longer than one forwarded call), leaving no orphaned transaction
//!   behind; and afterwards every replica
//!   holds the same data (`shoal.verify()`).
//!
//! Port range of the cluster test: 23000-23099.

mod common;

use std::time::{Duration, Instant};

use shoal_testkit::{Cluster, ClusterConfig};

const PORT_BASE: u16 = 23000;
const PORT_COUNT: u16 = 100;

/// Counts to a billion: runs far longer than any test waits.
const LONG_READ: &str =
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000000) SELECT count(*) FROM n";
/// The same count, as an autocommit write.
const LONG_WRITE: &str = "INSERT INTO t (id) WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n \
     WHERE i < 1000000000) SELECT 1000000 + count(*) FROM n";

#[track_caller]
fn assert_canceled(err: &tokio_postgres::Error, why: &str, what: &str) {
    assert_eq!(common::sqlstate(err).as_deref(), Some("57014"), "{what}: {}", common::render_error(err));
    let message = err.as_db_error().map(|e| e.message().to_string()).unwrap_or_default();
    assert_eq!(message, format!("canceling statement due to {why}"), "{what}");
}

async fn count(client: &tokio_postgres::Client) -> i64 {
    client.query_one("SELECT count(*) FROM t", &[]).await.expect("count").get(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn statement_timeout_cancels_reads_writes_and_transaction_statements() {
    let server = common::Server::start().await;
    let client = server.connect().await;
    let other = server.connect().await;
    client.batch_execute("CREATE TABLE t (id INT PRIMARY KEY)").await.unwrap();

    println!("a long read times out; another session reads and writes meanwhile");
    client.batch_execute("SET statement_timeout = '300ms'").await.unwrap();
    let started = Instant::now();
    let (long, (read, write)) = tokio::join!(client.query_one(LONG_READ, &[]), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        (other.query_one("SELECT 41 + 1", &[]).await, other.execute("INSERT INTO t VALUES (1)", &[]).await)
    });
    assert_canceled(&long.unwrap_err(), "statement timeout", "long read");
    assert!(started.elapsed() < Duration::from_secs(10), "the timeout fired late: {:?}", started.elapsed());
    assert_eq!(read.unwrap().get::<_, i32>(0), 42);
    assert_eq!(write.unwrap(), 1);

    println!("a long autocommit write times out alone; a write batched beside it commits");
    let (long, write) = tokio::join!(client.execute(LONG_WRITE, &[]), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        other.execute("INSERT INTO t VALUES (2)", &[]).await
    });
    assert_canceled(&long.unwrap_err(), "statement timeout", "long autocommit write");
    assert_eq!(write.unwrap(), 1);
    assert_eq!(count(&client).await, 2, "the timed-out write left nothing behind");

    println!("SHOW and RESET: 0 turns the timeout off");
    let shown: String = client.query_one("SHOW statement_timeout", &[]).await.unwrap().get(0);
    assert_eq!(shown, "300ms");

    println!("inside a transaction block a timed-out statement aborts the transaction");
    client.batch_execute("BEGIN; INSERT INTO t VALUES (3)").await.unwrap();
    assert_canceled(&client.query_one(LONG_READ, &[]).await.unwrap_err(), "statement timeout", "read on the writer");
    common::assert_sqlstate(client.query_one("SELECT 1", &[]).await, "25P02", "after the timeout");
    client.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(count(&client).await, 2, "the transaction was rolled back");

    println!("a timed-out write fails alone: ROLLBACK TO SAVEPOINT recovers the transaction");
    client.batch_execute("BEGIN; INSERT INTO t VALUES (4); SAVEPOINT a").await.unwrap();
    assert_canceled(&client.execute(LONG_WRITE, &[]).await.unwrap_err(), "statement timeout", "write in a txn");
    common::assert_sqlstate(client.execute("INSERT INTO t VALUES (5)", &[]).await, "25P02", "aborted");
    client.batch_execute("ROLLBACK TO SAVEPOINT a; INSERT INTO t VALUES (5); COMMIT").await.unwrap();
    assert_eq!(count(&client).await, 4, "rows 4 and 5 committed");

    println!("SET LOCAL applies to its transaction only");
    client.batch_execute("SET statement_timeout = 0").await.unwrap();
    client.batch_execute("BEGIN; SET LOCAL statement_timeout = '200ms'").await.unwrap();
    assert_canceled(&client.query_one(LONG_READ, &[]).await.unwrap_err(), "statement timeout", "SET LOCAL");
    client.batch_execute("ROLLBACK").await.unwrap();
    let shown: String = client.query_one("SHOW statement_timeout", &[]).await.unwrap().get(0);
    assert_eq!(shown, "0");

    println!("a cancel request gives the user-request message");
    let token = client.cancel_token();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        token.cancel_query(tokio_postgres::NoTls).await
    });
    assert_canceled(&client.execute(LONG_WRITE, &[]).await.unwrap_err(), "user request", "cancelled write");
    canceller.await.unwrap().expect("cancel sent");
    assert_eq!(count(&client).await, 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn waiting_for_the_write_slot_is_interrupted() {
    let server = common::Server::start().await;
    let holder = server.connect().await;
    let client = server.connect().await;
    holder.batch_execute("CREATE TABLE t (id INT PRIMARY KEY)").await.unwrap();

    println!("one session's open transaction holds the write slot for the whole test");
    holder.batch_execute("BEGIN; INSERT INTO t VALUES (1)").await.unwrap();
    client.batch_execute("SET statement_timeout = '200ms'").await.unwrap();
    for (what, sql) in [
        ("autocommit write", "INSERT INTO t VALUES (2)"),
        ("DDL (its implicit transaction)", "CREATE TABLE u (id INT PRIMARY KEY)"),
    ] {
        let started = Instant::now();
        assert_canceled(&client.batch_execute(sql).await.unwrap_err(), "statement timeout", what);
        assert!(started.elapsed() < Duration::from_secs(2), "{what}: timed out late: {:?}", started.elapsed());
    }

    println!("a transaction's first write waits for the slot, and times out too");
    client.batch_execute("BEGIN").await.unwrap();
    let started = Instant::now();
    let err = client.execute("INSERT INTO t VALUES (3)", &[]).await.unwrap_err();
    assert_canceled(&err, "statement timeout", "write in a transaction");
    assert!(started.elapsed() < Duration::from_secs(2), "timed out late: {:?}", started.elapsed());
    common::assert_sqlstate(client.query_one("SELECT 1", &[]).await, "25P02", "aborted");
    client.batch_execute("ROLLBACK").await.unwrap();

    println!("reads do not wait for the slot");
    assert_eq!(count(&client).await, 0);

    println!("a cancel request interrupts the wait as well");
    client.batch_execute("SET statement_timeout = 0").await.unwrap();
    let cancel = cancel_after(&client, Duration::from_millis(200));
    let err = client.execute("INSERT INTO t VALUES (4)", &[]).await.unwrap_err();
    cancel.await.unwrap();
    assert_canceled(&err, "user request", "waiting write");

    println!("the holder commits: the slot is free for the next writer, and no cancelled write committed");
    holder.batch_execute("COMMIT").await.unwrap();
    let write = tokio::time::timeout(Duration::from_secs(5), client.execute("INSERT INTO t VALUES (5)", &[]));
    assert_eq!(write.await.expect("the slot was left free").unwrap(), 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ids: Vec<i32> =
        client.query("SELECT id FROM t ORDER BY id", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(ids, vec![1, 5]);
    common::assert_sqlstate(client.query_one("SELECT * FROM u", &[]).await, "42P01", "the DDL never ran");
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_in_transaction_session_timeout_ends_the_connection() {
    let server = common::Server::start().await;
    let (client, connection) = tokio_postgres::connect(&server.conn_string(), tokio_postgres::NoTls).await.unwrap();
    let connection = tokio::spawn(connection);
    client.batch_execute("SET idle_in_transaction_session_timeout = '300ms'").await.unwrap();
    // Idle outside a transaction: nothing happens.
    tokio::time::sleep(Duration::from_millis(600)).await;
    client.batch_execute("BEGIN").await.unwrap();
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(client.query_one("SELECT 1", &[]).await.is_err(), "the connection was closed");
    let ended = tokio::time::timeout(Duration::from_secs(5), connection).await.expect("connection ended").unwrap();
    let err = ended.expect_err("the server ended the connection with an error");
    let db = err.as_db_error().unwrap_or_else(|| panic!("a FATAL error response, got {err}"));
    assert_eq!(db.code().code(), "25P03");
    assert_eq!(db.severity(), "FATAL");
    assert_eq!(db.message(), "terminating connection due to idle-in-transaction timeout");
}

/// Cancels the statement `client` runs after `after`, through a cancel
/// request to the node the client is connected to.
fn cancel_after(client: &tokio_postgres::Client, after: Duration) -> tokio::task::JoinHandle<()> {
    let token = client.cancel_token();
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        token.cancel_query(tokio_postgres::NoTls).await.expect("cancel request sent");
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancel_on_a_follower_reaches_statements_running_on_the_leader() {
    let mut config = ClusterConfig::new(env!("CARGO_BIN_EXE_shoal"), 3, PORT_BASE);
    config.port_count = PORT_COUNT;
    let mut cluster = Cluster::start(config).await.expect("start a three-node cluster");
    let leader = cluster.data_leader().await.expect("data leader");
    let follower = (1..=3).find(|n| *n != leader).unwrap();
    println!("leader {leader}, follower {follower}");
    let on_leader = cluster.connect(leader).await.expect("connect the leader");
    let client = cluster.connect(follower).await.expect("connect a follower");
    on_leader.batch_execute("CREATE TABLE t (id INT PRIMARY KEY)").await.unwrap();
    // An autocommit read catches the follower's catalog up with the DDL.
    assert_eq!(count(&client).await, 0);

    println!("a statement of a transaction whose writer is on the leader");
    client.batch_execute("BEGIN; INSERT INTO t VALUES (1); SAVEPOINT a").await.unwrap();
    let cancel = cancel_after(&client, Duration::from_millis(500));
    let started = Instant::now();
    let err = client.execute(LONG_WRITE, &[]).await.unwrap_err();
    cancel.await.unwrap();
    assert_canceled(&err, "user request", "remote transaction write");
    assert!(started.elapsed() < Duration::from_secs(10), "cancelled late: {:?}", started.elapsed());
    common::assert_sqlstate(client.query_one("SELECT 1", &[]).await, "25P02", "aborted");
    client.batch_execute("ROLLBACK TO SAVEPOINT a; INSERT INTO t VALUES (2)").await.unwrap();
    let cancel = cancel_after(&client, Duration::from_millis(500));
    assert_canceled(&client.query_one(LONG_READ, &[]).await.unwrap_err(), "user request", "remote transaction read");
    cancel.await.unwrap();
    client.batch_execute("ROLLBACK TO SAVEPOINT a; COMMIT").await.unwrap();
    assert_eq!(count(&client).await, 1, "row 1 committed, row 2 rolled back with the savepoint");
    // The write slot is free again.
    on_leader.execute("INSERT INTO t VALUES (3)", &[]).await.expect("write on the leader");

    println!("an autocommit write forwarded to the leader");
    let cancel = cancel_after(&client, Duration::from_millis(500));
    let (long, write) = tokio::join!(client.execute(LONG_WRITE, &[]), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        on_leader.execute("INSERT INTO t VALUES (4)", &[]).await
    });
    cancel.await.unwrap();
    assert_canceled(&long.unwrap_err(), "user request", "forwarded autocommit write");
    assert_eq!(write.expect("the write batched beside it commits"), 1);

    println!("statement_timeout on the follower stops a forwarded write too");
    client.batch_execute("SET statement_timeout = '400ms'").await.unwrap();
    assert_canceled(&client.execute(LONG_WRITE, &[]).await.unwrap_err(), "statement timeout", "forwarded write");
    client.batch_execute("SET statement_timeout = 0").await.unwrap();
    client.execute("INSERT INTO t VALUES (5)", &[]).await.expect("the session goes on");
    assert_eq!(count(&client).await, 4);

    // A timeout of a few milliseconds fires while the write is on its way
    // to the leader or just arriving: the cancel often gets there first. A
    // lost cancel would leave the write counting to a billion.
    println!("a cancel that overtakes its forwarded write is not lost");
    for attempt in 0..30 {
        client.batch_execute(&format!("SET statement_timeout = '{}ms'", 1 + attempt % 3)).await.unwrap();
        let write = tokio::time::timeout(Duration::from_secs(20), client.execute(LONG_WRITE, &[]));
        let result = write.await.unwrap_or_else(|_| panic!("attempt {attempt}: the cancel was lost"));
        assert_canceled(&result.unwrap_err(), "statement timeout", "forwarded write cancelled at once");
    }
    println!("nor one that overtakes a transaction's statement");
    client.batch_execute("SET statement_timeout = 0").await.unwrap();
    for attempt in 0..10 {
        client.batch_execute(&format!("BEGIN; INSERT INTO t VALUES ({})", 100 + attempt)).await.unwrap();
        client.batch_execute(&format!("SET LOCAL statement_timeout = '{}ms'", 1 + attempt % 3)).await.unwrap();
        let write = tokio::time::timeout(Duration::from_secs(20), client.execute(LONG_WRITE, &[]));
        let result = write.await.unwrap_or_else(|_| panic!("attempt {attempt}: the cancel was lost"));
        assert_canceled(&result.unwrap_err(), "statement timeout", "remote transaction write cancelled at once");
        client.batch_execute("ROLLBACK").await.unwrap();
    }
    assert_eq!(count(&client).await, 4);

    println!("statements waiting on the leader for the write slot give up at their timeout");
    on_leader.batch_execute("BEGIN; INSERT INTO t VALUES (6)").await.unwrap();
    client.batch_execute("SET statement_timeout = '300ms'").await.unwrap();
    let started = Instant::now();
    let err = client.execute("INSERT INTO t VALUES (7)", &[]).await.unwrap_err();
    assert_canceled(&err, "statement timeout", "forwarded write waiting for the slot");
    client.batch_execute("BEGIN").await.unwrap();
    let err = client.execute("INSERT INTO t VALUES (8)", &[]).await.unwrap_err();
    assert_canceled(&err, "statement timeout", "forwarded BEGIN waiting for the slot");
    client.batch_execute("ROLLBACK").await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5), "timed out late: {:?}", started.elapsed());
    println!("and on a cancel request");
    client.batch_execute("SET statement_timeout = 0").await.unwrap();
    let cancel = cancel_after(&client, Duration::from_millis(300));
    let err = client.execute("INSERT INTO t VALUES (9)", &[]).await.unwrap_err();
    cancel.await.unwrap();
    assert_canceled(&err, "user request", "forwarded write waiting for the slot");
    on_leader.batch_execute("COMMIT").await.unwrap();
    let write = tokio::time::timeout(Duration::from_secs(10), client.execute("INSERT INTO t VALUES (10)", &[]));
    assert_eq!(write.await.expect("the leader's slot was left free").unwrap(), 1);
    assert_eq!(count(&client).await, 6, "rows 6 and 10 committed, none of the cancelled ones");

    // Without a timeout a BEGIN on a follower waits for the leader's write
    // slot as long as the transaction ahead of it lasts — here longer than
    // one forwarded call may take — and the slot is not left to a
    // transaction begun for a caller that gave up.
    println!("a BEGIN and a write from a follower outwait a transaction longer than one forwarded call");
    on_leader.batch_execute("BEGIN; INSERT INTO t VALUES (11)").await.unwrap();
    let started = Instant::now();
    let mut waiting = Vec::new();
    for sql in ["BEGIN; INSERT INTO t VALUES (12); COMMIT", "INSERT INTO t VALUES (14)"] {
        let waiter = cluster.connect(follower).await.expect("connect a follower");
        waiting.push(tokio::spawn(async move { waiter.batch_execute(sql).await.map(|()| waiter) }));
    }
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert!(waiting.iter().all(|w| !w.is_finished()), "a follower's write ran while the slot was held");
    on_leader.batch_execute("COMMIT").await.unwrap();
    for waiter in waiting {
        let waiter = tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("the waiting write got the slot")
            .unwrap()
            .expect("and committed");
        drop(waiter);
    }
    println!("waited {:?}", started.elapsed());
    let write = tokio::time::timeout(Duration::from_secs(5), on_leader.execute("INSERT INTO t VALUES (13)", &[]));
    assert_eq!(write.await.expect("no orphaned transaction holds the slot").unwrap(), 1);
    assert_eq!(count(&client).await, 10, "rows 11-14 committed, each once");

    // The write reaches the leader's socket while the leader is stopped; the
    // followers elect a new leader; the timeout fires. Resumed, the old
    // leader runs the write as a stale leader, or passes it on to the new
    // one: a cancel sent to whichever node leads now could miss it, one
    // sent where the write went finds it either way.
    // Meanwhile a read on the follower waits for the stopped leader's read
    // index (a request that gets no answer for 10 s): its timeout abandons it.
    println!("a cancel follows its write to a leader that was paused and deposed meanwhile;");
    println!("a read waiting for that leader's read index gives up at its timeout");
    let reader = cluster.connect(follower).await.expect("connect a follower");
    reader.batch_execute("SET statement_timeout = '300ms'").await.unwrap();
    client.batch_execute("SET statement_timeout = '2s'").await.unwrap();
    cluster.pause(leader).expect("pause the leader");
    let started = Instant::now();
    let write = tokio::time::timeout(Duration::from_secs(30), client.execute(LONG_WRITE, &[]));
    let read = async {
        let read = reader.query_one("SELECT count(*) FROM t", &[]).await;
        (read, started.elapsed())
    };
    let resume = async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        cluster.resume(leader).expect("resume the old leader");
    };
    let (written, (read, read_took), ()) = tokio::join!(write, read, resume);
    assert_canceled(&read.unwrap_err(), "statement timeout", "read waiting for a read index");
    assert!(read_took < Duration::from_secs(2), "the read timed out late: {read_took:?}");
    let err = written.expect("the write was answered").unwrap_err();
    assert_canceled(&err, "statement timeout", "write delivered to a paused leader");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(8), "cancelled only at the call's timeout: {took:?}");
    client.batch_execute("SET statement_timeout = 0").await.unwrap();
    assert_eq!(count(&client).await, 10);

    let agreement = cluster.verify_replicas(follower, Duration::from_secs(30)).await.expect("replicas agree");
    println!("{agreement}");
}
