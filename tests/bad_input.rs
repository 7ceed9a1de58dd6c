//! Bad input never takes the server down: malformed SQL, unsupported
//! features, type errors, protocol garbage, oversized messages, wrong
//! passwords and clients vanishing mid-transaction each get an error (or a
//! closed connection) for that client only, and a fresh client still works.

mod common;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::{assert_sqlstate, Server};

/// Bound on waiting for the server to answer or close a raw connection.
const RAW_IO_TIMEOUT: Duration = Duration::from_secs(20);

/// A fresh client can still connect and query.
async fn assert_serving(server: &Server, after: &str) {
    let client = server.connect().await;
    let rows = client.simple_query("SELECT 1").await.unwrap_or_else(|e| panic!("after {after}: {e}"));
    assert!(!rows.is_empty(), "after {after}: SELECT 1 returned nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_errors_carry_sqlstates_and_keep_the_session() {
    let server = Server::start().await;
    let client = server.connect().await;
    client.batch_execute("CREATE TABLE t (id int PRIMARY KEY, v text)").await.expect("create table");

    let cases: [(&str, &str, &str); 9] = [
        ("malformed SQL", "SELEC 1", "42601"),
        ("unterminated statement", "SELECT (1", "42601"),
        ("unterminated string", "SELECT 'abc", "42601"),
        ("unsupported feature", "CREATE MATERIALIZED VIEW mv AS SELECT 1", "0A000"),
        ("bad integer input", "SELECT 'abc'::int", "22P02"),
        ("bad input for a column", "INSERT INTO t VALUES ('x', 'y')", "22P02"),
        ("non-boolean WHERE", "SELECT * FROM t WHERE 1", "42804"),
        ("operator on wrong types", "SELECT 'a'::text + 1", "42883"),
        ("unknown function", "SELECT no_such_function(1)", "42883"),
    ];
    for (what, sql, code) in cases {
        println!("{what}: {sql} must fail with {code}, and the session must stay usable");
        assert_sqlstate(client.simple_query(sql).await, code, what);
        client.simple_query("SELECT 1").await.unwrap_or_else(|e| panic!("session unusable after {what}: {e}"));
    }

    // The extended protocol reports errors the same way.
    assert_sqlstate(client.prepare("SELEC $1").await, "42601", "prepare of malformed SQL");
    assert_sqlstate(
        client.query("SELECT $1::int + 'abc'::int", &[&1i32]).await,
        "22P02",
        "bad literal in a prepared query",
    );

    // A statement that is nothing but noise, and an empty one.
    assert_sqlstate(client.simple_query("\u{1}\u{2}garbage;;").await, "42601", "control characters");
    client.simple_query("").await.expect("an empty query string is fine");
    client.simple_query(";").await.expect("an empty statement is fine");

    assert_serving(&server, "SQL errors").await;
}

/// Speaks just enough of the wire protocol to get a trust-authenticated
/// session ready for queries.
async fn raw_session(server: &Server) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", server.pg_port)).await.expect("connect");
    let mut body = Vec::new();
    body.extend_from_slice(&196_608u32.to_be_bytes()); // protocol 3.0
    for s in ["user", common::USER, "database", "shoal", ""] {
        body.extend_from_slice(s.as_bytes());
        body.push(0);
    }
    let mut packet = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    packet.extend_from_slice(&body);
    stream.write_all(&packet).await.expect("send startup");
    read_until_ready(&mut stream).await;
    stream
}

/// Reads messages until ReadyForQuery; panics on error or EOF.
async fn read_until_ready(stream: &mut TcpStream) {
    loop {
        let mut header = [0u8; 5];
        tokio::time::timeout(RAW_IO_TIMEOUT, stream.read_exact(&mut header))
            .await
            .expect("server did not answer")
            .expect("read message header");
        let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        assert!((4..1 << 20).contains(&len), "implausible message length {len}");
        let mut payload = vec![0u8; len - 4];
        stream.read_exact(&mut payload).await.expect("read message body");
        match header[0] {
            b'Z' => return,
            b'E' => panic!("server error: {}", String::from_utf8_lossy(&payload)),
            _ => {}
        }
    }
}

/// Sends a simple Query message.
async fn raw_query(stream: &mut TcpStream, sql: &str) {
    let mut msg = vec![b'Q'];
    msg.extend_from_slice(&((sql.len() + 5) as u32).to_be_bytes());
    msg.extend_from_slice(sql.as_bytes());
    msg.push(0);
    stream.write_all(&msg).await.expect("send query");
}

/// Waits until the server closes the connection (after an optional error
/// message); returns the message types received first.
async fn expect_error_or_close(stream: &mut TcpStream, what: &str) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(RAW_IO_TIMEOUT, stream.read(&mut buf)).await {
            Err(_) => panic!("{what}: the server neither answered nor closed the connection"),
            Ok(Ok(0)) | Ok(Err(_)) => return received,
            Ok(Ok(n)) => {
                received.extend_from_slice(&buf[..n]);
                // An ErrorResponse is an acceptable answer even if the socket stays open.
                if received.first() == Some(&b'E') {
                    return received;
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_garbage_closes_only_that_connection() {
    let server = Server::start().await;
    // A normal client that must survive every bad neighbour.
    let bystander = server.connect().await;

    println!("an HTTP request on the PostgreSQL port: its first bytes read as a 1 GiB startup length");
    let mut stream = TcpStream::connect(("127.0.0.1", server.pg_port)).await.expect("connect");
    stream.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").await.expect("send");
    expect_error_or_close(&mut stream, "HTTP request").await;
    drop(stream);
    assert_serving(&server, "an HTTP request").await;

    println!("a startup packet with an unknown protocol version");
    let mut stream = TcpStream::connect(("127.0.0.1", server.pg_port)).await.expect("connect");
    stream.write_all(&[0, 0, 0, 8, 0x12, 0x34, 0x56, 0x78]).await.expect("send");
    expect_error_or_close(&mut stream, "unknown protocol version").await;
    drop(stream);
    assert_serving(&server, "an unknown protocol version").await;

    println!("random bytes after a valid startup: unknown message types");
    let mut stream = raw_session(&server).await;
    let garbage: Vec<u8> = (0..256u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 | 0x80).collect();
    stream.write_all(&garbage).await.expect("send garbage");
    let answer = expect_error_or_close(&mut stream, "garbage message").await;
    drop(stream);
    println!("  server answered {} byte(s) before closing", answer.len());
    assert_serving(&server, "garbage bytes").await;

    println!("a Query message whose length header claims 1 GiB");
    let mut stream = raw_session(&server).await;
    let mut msg = vec![b'Q'];
    msg.extend_from_slice(&(1u32 << 30).to_be_bytes());
    msg.extend_from_slice(b"SELECT 1");
    stream.write_all(&msg).await.expect("send oversized header");
    expect_error_or_close(&mut stream, "oversized message").await;
    drop(stream);
    assert_serving(&server, "an oversized message").await;

    println!("a connection closed in the middle of its startup packet");
    let mut stream = TcpStream::connect(("127.0.0.1", server.pg_port)).await.expect("connect");
    stream.write_all(&[0, 0, 0, 40, 0, 3]).await.expect("send");
    drop(stream);
    assert_serving(&server, "a truncated startup packet").await;

    bystander.simple_query("SELECT 1").await.expect("the bystander session survives its neighbours' garbage");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_authentication() {
    let server = Server::start_with_password("secret").await;
    let base = format!("host=127.0.0.1 port={} user={} dbname=shoal connect_timeout=10", server.pg_port, common::USER);

    println!("a wrong password is refused with 28P01");
    let wrong = server.try_connect(&format!("{base} password=wrong")).await;
    assert_sqlstate(wrong.map(|_| ()), "28P01", "wrong password");

    println!("no password is refused (the server asks for one)");
    assert!(server.try_connect(&base).await.is_err(), "a client without a password got in");

    println!("another user name is refused");
    let other = server.try_connect(&format!("{base} user=intruder password=secret")).await;
    assert!(other.is_err(), "an unknown user got in");

    println!("the right password works (SCRAM-SHA-256)");
    let client = server.try_connect(&format!("{base} password=secret")).await.expect("connect with the right password");
    client.simple_query("SELECT 1").await.expect("query after SCRAM");
    assert_serving(&server, "failed logins").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnects_release_the_write_slot() {
    let server = Server::start().await;
    let client = server.connect().await;
    client.batch_execute("CREATE TABLE t (id int PRIMARY KEY, who text)").await.expect("create table");

    println!("a client vanishes (TCP close, no Terminate) inside a transaction with uncommitted writes");
    let mut stream = raw_session(&server).await;
    raw_query(&mut stream, "BEGIN; INSERT INTO t VALUES (1, 'vanished'); UPDATE t SET who = 'still vanished';").await;
    read_until_ready(&mut stream).await;
    drop(stream);
    write_promptly(&server, 2, "after an abrupt disconnect").await;

    println!("a client says goodbye (Terminate) inside a transaction with uncommitted writes");
    let leaver = server.connect().await;
    leaver.batch_execute("BEGIN; INSERT INTO t VALUES (3, 'left'); DELETE FROM t WHERE id = 2;").await.expect("writes");
    drop(leaver);
    write_promptly(&server, 4, "after a graceful disconnect").await;

    println!("their writes are not visible, and the writes made since are");
    let rows = client.query("SELECT id, who FROM t ORDER BY id", &[]).await.expect("read t");
    let seen: Vec<(i32, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(seen, vec![(2, "after".to_string()), (4, "after".to_string())]);

    println!("a client disconnects while holding no transaction");
    let idle = server.connect().await;
    idle.simple_query("SELECT count(*) FROM t").await.expect("query");
    drop(idle);
    let mut stream = raw_session(&server).await;
    raw_query(&mut stream, "SELECT 1").await;
    drop(stream);
    write_promptly(&server, 5, "after idle disconnects").await;
    assert_serving(&server, "disconnects").await;
}

/// Another session can write to the table without waiting for a session that
/// is gone. The bound only turns a hang into a failure; it is not a speed test.
async fn write_promptly(server: &Server, id: i32, when: &str) {
    let client = server.connect().await;
    let sql = format!("INSERT INTO t VALUES ({id}, 'after')");
    match tokio::time::timeout(RAW_IO_TIMEOUT, client.simple_query(&sql)).await {
        Err(_) => {
            panic!("{when}: a new session could not write within {RAW_IO_TIMEOUT:?}; the write slot was not released")
        }
        Ok(result) => {
            result.unwrap_or_else(|e| panic!("{when}: {}", common::render_error(&e)));
        }
    }
}
