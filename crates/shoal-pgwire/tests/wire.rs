//! The wire front end against real clients.
//!
//! A tiny in-test [`Backend`] answers a fixed set of statements (matched by
//! their text), so these tests exercise only the protocol: tokio-postgres for
//! the simple and extended protocols, typed binds, binary results, portals,
//! cancel, errors and SCRAM; raw TCP for transaction status bytes, garbage,
//! oversized messages, TLS, client certificates and the login rules
//! (`--tls-required`, `--auth cert`, `cert-or-password`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use shoal_common::{DataType, Error, Result, SqlState, Value};
use shoal_pgwire::{
    serve, AuthMethod, Backend, Canceller, Column, ConnectParams, Notice, Prepared, Session, StatementResult, TlsFiles,
    TransactionStatus, WireConfig,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Notify};
use tokio_postgres::types::{FromSql, Type};
use tokio_postgres::{AsyncMessage, NoTls};

// ---------------------------------------------------------------------------
// The fake database
// ---------------------------------------------------------------------------

#[derive(Default)]
struct Stats {
    connects: AtomicUsize,
    closes: AtomicUsize,
    table: Mutex<Vec<(i64, String)>>,
}

struct FakeBackend {
    stats: Arc<Stats>,
}

#[async_trait]
impl Backend for FakeBackend {
    type Session = FakeSession;

    async fn connect(&self, params: ConnectParams) -> Result<FakeSession> {
        if params.database == "nope" {
            return Err(Error::new(SqlState(*b"3D000"), "database \"nope\" does not exist"));
        }
        self.stats.connects.fetch_add(1, Ordering::SeqCst);
        Ok(FakeSession {
            stats: self.stats.clone(),
            status: TransactionStatus::Idle,
            notices: Vec::new(),
            cancel: Arc::new(Notify::new()),
            closed: false,
            app_name: params.application_name.unwrap_or_default(),
        })
    }
}

struct FakeSession {
    stats: Arc<Stats>,
    status: TransactionStatus,
    notices: Vec<Notice>,
    cancel: Arc<Notify>,
    closed: bool,
    app_name: String,
}

fn col(name: &str, data_type: DataType) -> Column {
    Column { name: name.into(), data_type, table_oid: 0, column_id: 0 }
}

fn rows(columns: Vec<Column>, rows: Vec<Vec<Value>>) -> StatementResult {
    let tag = format!("SELECT {}", rows.len());
    StatementResult::Rows { columns: Arc::new(columns), rows, tag }
}

/// Columns of `SELECT types`: one value of each interesting type.
fn type_columns() -> Vec<Column> {
    vec![
        col("b", DataType::Bool),
        col("f", DataType::Float8),
        col("n", DataType::Numeric(Some((10, 2)))),
        col("ts", DataType::Timestamptz),
        col("by", DataType::Bytea),
        col("u", DataType::Uuid),
        col("j", DataType::Jsonb),
        col("d", DataType::Date),
        col("i", DataType::Interval),
        col("t", DataType::Text),
        col("nul", DataType::Int4),
    ]
}

fn type_row() -> Vec<Value> {
    vec![
        Value::Integer(1),
        Value::Real(0.1),
        Value::Real(12.5),
        Value::Text("2024-01-01 10:00:00".into()),
        Value::Blob(vec![0xde, 0xad]),
        Value::Text("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".into()),
        Value::Text("{\"a\":1,\"b\":[true,null]}".into()),
        Value::Text("2000-01-02".into()),
        Value::Text("1 day 02:00:00".into()),
        Value::Text("héllo".into()),
        Value::Null,
    ]
}

/// What a statement needs and returns, by its text.
fn describe(sql: &str, declared: &[Option<DataType>]) -> Result<(Vec<DataType>, Vec<Column>)> {
    Ok(match sql {
        "SELECT $1::int8 + 1" => (vec![DataType::Int8], vec![col("?column?", DataType::Int8)]),
        "INSERT INTO t VALUES ($1, $2)" => (vec![DataType::Int4, DataType::Text], vec![]),
        "SELECT $1" => {
            let ty = declared.first().cloned().flatten().unwrap_or(DataType::Text);
            (vec![ty.clone()], vec![col("?column?", ty)])
        }
        "SELECT id, name FROM t" => (vec![], vec![col("id", DataType::Int4), col("name", DataType::Text)]),
        "SELECT types" => (vec![], type_columns()),
        "SELECT generate_series(1, 10)" => (vec![], vec![col("generate_series", DataType::Int4)]),
        "SELECT 1" | "SELECT 1/0" | "SELECT pg_sleep(10)" | "SELECT notice" => {
            (vec![], vec![col("?column?", DataType::Int4)])
        }
        "BEGIN" | "START TRANSACTION" | "COMMIT" | "ROLLBACK" => (vec![], vec![]),
        s if s.starts_with("SET ") => (vec![], vec![]),
        other => return Err(Error::syntax(format!("syntax error at or near \"{other}\""))),
    })
}

impl FakeSession {
    async fn run(&mut self, sql: &str, params: Vec<Value>) -> Result<StatementResult> {
        if self.status == TransactionStatus::Failed && sql != "ROLLBACK" {
            return Err(Error::new(
                SqlState::IN_FAILED_SQL_TRANSACTION,
                "current transaction is aborted, commands ignored until end of transaction block",
            ));
        }
        let result = self.run_inner(sql, params).await;
        if result.is_err() && self.status == TransactionStatus::InTransaction {
            self.status = TransactionStatus::Failed;
        }
        result
    }

    async fn run_inner(&mut self, sql: &str, params: Vec<Value>) -> Result<StatementResult> {
        let (_, columns) = describe(sql, &[])?;
        Ok(match sql {
            "BEGIN" | "START TRANSACTION" => {
                self.status = TransactionStatus::InTransaction;
                StatementResult::Command { tag: "BEGIN".into() }
            }
            "COMMIT" | "ROLLBACK" => {
                self.status = TransactionStatus::Idle;
                StatementResult::Command { tag: sql.into() }
            }
            "SELECT 1" => rows(columns, vec![vec![Value::Integer(1)]]),
            "SELECT 1/0" => {
                return Err(Error::new(SqlState::DIVISION_BY_ZERO, "division by zero")
                    .with_detail("some detail")
                    .with_hint("some hint"))
            }
            "SELECT notice" => {
                self.notices.push(Notice {
                    severity: "NOTICE".into(),
                    code: SqlState::SUCCESSFUL_COMPLETION,
                    message: "hello from the backend".into(),
                });
                rows(columns, vec![vec![Value::Integer(1)]])
            }
            "SELECT pg_sleep(10)" => {
                tokio::select! {
                    _ = self.cancel.notified() => {
                        return Err(Error::new(SqlState::QUERY_CANCELED, "canceling statement due to user request"))
                    }
                    _ = tokio::time::sleep(Duration::from_secs(10)) => rows(columns, vec![vec![Value::Integer(1)]]),
                }
            }
            "SELECT $1::int8 + 1" => match params.first() {
                Some(Value::Integer(i)) => rows(columns, vec![vec![Value::Integer(i + 1)]]),
                other => return Err(Error::internal(format!("unexpected parameter {other:?}"))),
            },
            "SELECT $1" => rows(columns, vec![params]),
            "INSERT INTO t VALUES ($1, $2)" => match params.as_slice() {
                [Value::Integer(id), Value::Text(name)] => {
                    self.stats.table.lock().unwrap().push((*id, name.clone()));
                    StatementResult::Command { tag: "INSERT 0 1".into() }
                }
                other => return Err(Error::internal(format!("unexpected parameters {other:?}"))),
            },
            "SELECT id, name FROM t" => {
                let data = self.stats.table.lock().unwrap().clone();
                rows(columns, data.into_iter().map(|(i, n)| vec![Value::Integer(i), Value::Text(n)]).collect())
            }
            "SELECT types" => rows(columns, vec![type_row()]),
            "SELECT generate_series(1, 10)" => rows(columns, (1..=10).map(|i| vec![Value::Integer(i)]).collect()),
            s if s.starts_with("SET application_name = ") => {
                self.app_name = s["SET application_name = ".len()..].trim_matches('\'').to_string();
                StatementResult::Command { tag: "SET".into() }
            }
            _ => return Err(Error::unsupported(sql)),
        })
    }
}

#[async_trait]
impl Session for FakeSession {
    async fn simple_query(&mut self, sql: &str) -> Vec<Result<StatementResult>> {
        let mut out = Vec::new();
        for stmt in sql.split(';').map(str::trim) {
            if stmt.is_empty() {
                continue;
            }
            let r = self.run(stmt, vec![]).await;
            let failed = r.is_err();
            out.push(r);
            if failed {
                break;
            }
        }
        out
    }

    async fn prepare(&mut self, sql: &str, param_types: &[Option<DataType>]) -> Result<Prepared> {
        let sql = sql.trim().to_string();
        let (param_types, columns) = describe(&sql, param_types)?;
        Ok(Prepared { handle: Arc::new(sql.clone()), sql, param_types, columns })
    }

    async fn execute(&mut self, prepared: &Prepared, params: Vec<Value>) -> Result<StatementResult> {
        let sql = prepared.handle.downcast_ref::<String>().cloned().unwrap_or_default();
        self.run(&sql, params).await
    }

    fn take_notices(&mut self) -> Vec<Notice> {
        std::mem::take(&mut self.notices)
    }

    fn transaction_status(&self) -> TransactionStatus {
        self.status
    }

    fn parameter_generation(&self) -> u64 {
        // The only parameter that changes is the application name.
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hash::hash(&self.app_name, &mut hasher);
        std::hash::Hasher::finish(&hasher)
    }

    fn parameter_status(&self, _since: Option<u64>) -> Vec<(String, String)> {
        vec![
            ("server_version".into(), "ignored".into()),
            ("application_name".into(), self.app_name.clone()),
            ("TimeZone".into(), "UTC".into()),
        ]
    }

    fn canceller(&self) -> Canceller {
        let notify = self.cancel.clone();
        Arc::new(move || notify.notify_one())
    }

    async fn close(&mut self) {
        assert!(!self.closed, "Session::close called twice");
        self.closed = true;
        self.stats.closes.fetch_add(1, Ordering::SeqCst);
    }
}

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

struct Server {
    addr: SocketAddr,
    stats: Arc<Stats>,
    _stop: oneshot::Sender<()>,
}

async fn start(config: WireConfig) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stats = Arc::new(Stats::default());
    let backend = Arc::new(FakeBackend { stats: stats.clone() });
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        serve(listener, backend, Arc::new(config), async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    Server { addr, stats, _stop: tx }
}

fn conn_string(addr: SocketAddr, extra: &str) -> String {
    format!("host={} port={} user=alice dbname=db {extra}", addr.ip(), addr.port())
}

async fn connect(addr: SocketAddr) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&conn_string(addr, ""), NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// Waits until every opened session has been closed exactly once.
async fn wait_all_closed(stats: &Stats) {
    for _ in 0..200 {
        if stats.closes.load(Ordering::SeqCst) == stats.connects.load(Ordering::SeqCst) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("closes {} != connects {}", stats.closes.load(Ordering::SeqCst), stats.connects.load(Ordering::SeqCst));
}

/// The raw bytes of a result column, whatever its type.
struct Raw(Vec<u8>);

impl<'a> FromSql<'a> for Raw {
    fn from_sql(_: &Type, raw: &'a [u8]) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(raw.to_vec()))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

// Raw protocol helpers.

fn startup_packet(user: &str) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&196608i32.to_be_bytes());
    for (k, v) in [("user", user), ("database", "db")] {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut out = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn query(sql: &str) -> Vec<u8> {
    let mut body = sql.as_bytes().to_vec();
    body.push(0);
    message(b'Q', &body)
}

/// Reads one backend message; `None` at end of stream.
async fn read_message<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> Option<(u8, Vec<u8>)> {
    let tag = s.read_u8().await.ok()?;
    let len = s.read_i32().await.ok()?;
    let mut body = vec![0; (len - 4) as usize];
    s.read_exact(&mut body).await.ok()?;
    Some((tag, body))
}

/// Reads messages up to and including ReadyForQuery.
async fn read_until_ready<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some(m) = read_message(s).await {
        let done = m.0 == b'Z';
        out.push(m);
        if done {
            break;
        }
    }
    out
}

fn error_code(body: &[u8]) -> String {
    body.split(|b| *b == 0)
        .find(|f| f.first() == Some(&b'C'))
        .map(|f| String::from_utf8_lossy(&f[1..]).into_owned())
        .unwrap_or_default()
}

async fn raw_session(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&startup_packet("alice")).await.unwrap();
    let msgs = read_until_ready(&mut s).await;
    assert_eq!(msgs.first().map(|m| m.0), Some(b'R'));
    assert_eq!(msgs.last().map(|m| m.1.clone()), Some(vec![b'I']));
    s
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[tokio::test]
async fn simple_protocol_results_in_postgres_text() {
    let server = start(WireConfig::default()).await;
    let client = connect(server.addr).await;

    let msgs = client.simple_query("SELECT 1; SELECT types").await.unwrap();
    let rows: Vec<_> = msgs
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].get(0), Some("1"));
    let t = rows[1];
    assert_eq!(t.get("b"), Some("t"));
    assert_eq!(t.get("f"), Some("0.1"));
    assert_eq!(t.get("n"), Some("12.50"));
    assert_eq!(t.get("ts"), Some("2024-01-01 10:00:00+00"));
    assert_eq!(t.get("by"), Some("\\xdead"));
    assert_eq!(t.get("u"), Some("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"));
    assert_eq!(t.get("j"), Some("{\"a\": 1, \"b\": [true, null]}"));
    assert_eq!(t.get("d"), Some("2000-01-02"));
    assert_eq!(t.get("i"), Some("1 day 02:00:00"));
    assert_eq!(t.get("t"), Some("héllo"));
    assert_eq!(t.get("nul"), None);
    let tags: Vec<u64> = msgs
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::CommandComplete(n) => Some(*n),
            _ => None,
        })
        .collect();
    assert_eq!(tags, vec![1, 1]);

    // The empty query.
    client.simple_query(";").await.unwrap();
    client.batch_execute("").await.unwrap();
}

#[tokio::test]
async fn extended_protocol_with_typed_binds() {
    let server = start(WireConfig::default()).await;
    let client = connect(server.addr).await;

    // Parameter types come from the server's inference (ParameterDescription).
    let row = client.query_one("SELECT $1::int8 + 1", &[&5i64]).await.unwrap();
    assert_eq!(row.get::<_, i64>(0), 6);
    let stmt = client.prepare("SELECT $1::int8 + 1").await.unwrap();
    assert_eq!(stmt.params(), &[Type::INT8]);
    assert_eq!(stmt.columns()[0].type_(), &Type::INT8);

    assert_eq!(client.execute("INSERT INTO t VALUES ($1, $2)", &[&1i32, &"x"]).await.unwrap(), 1);
    assert_eq!(client.execute("INSERT INTO t VALUES ($1, $2)", &[&2i32, &"ÿ"]).await.unwrap(), 1);
    let rows = client.query("SELECT id, name FROM t", &[]).await.unwrap();
    let got: Vec<(i32, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(got, vec![(1, "x".to_string()), (2, "ÿ".to_string())]);

    // Declared parameter types are passed through.
    let stmt = client.prepare_typed("SELECT $1", &[Type::FLOAT8]).await.unwrap();
    let row = client.query_one(&stmt, &[&2.5f64]).await.unwrap();
    assert_eq!(row.get::<_, f64>(0), 2.5);
    let row = client.query_one("SELECT $1", &[&"text param"]).await.unwrap();
    assert_eq!(row.get::<_, &str>(0), "text param");
    let row = client.query_one("SELECT $1", &[&None::<&str>]).await.unwrap();
    assert_eq!(row.get::<_, Option<&str>>(0), None);

    // A named statement can be executed many times and closed.
    for i in 0..5i64 {
        let row = client.query_one(&client.prepare("SELECT $1::int8 + 1").await.unwrap(), &[&i]).await.unwrap();
        assert_eq!(row.get::<_, i64>(0), i + 1);
    }
}

#[tokio::test]
async fn binary_results_use_postgres_binary_formats() {
    let server = start(WireConfig::default()).await;
    let client = connect(server.addr).await;
    let row = client.query_one("SELECT types", &[]).await.unwrap();
    assert!(row.get::<_, bool>("b"));
    assert_eq!(row.get::<_, f64>("f"), 0.1);
    assert_eq!(row.get::<_, Vec<u8>>("by"), vec![0xde, 0xad]);
    assert_eq!(row.get::<_, String>("t"), "héllo");
    assert_eq!(row.get::<_, Option<i32>>("nul"), None);
    // numeric 12.50: ndigits 1, weight 0, sign +, dscale 2, digits [12, 5000].
    assert_eq!(row.get::<_, Raw>("n").0, vec![0, 2, 0, 0, 0, 0, 0, 2, 0, 12, 0x13, 0x88]);
    let ts = (days_2000_to_2024() * 86_400 + 10 * 3600) * 1_000_000;
    assert_eq!(row.get::<_, Raw>("ts").0, ts.to_be_bytes());
    assert_eq!(row.get::<_, Raw>("d").0, 1i32.to_be_bytes());
    assert_eq!(row.get::<_, Raw>("u").0[..4], [0xa0, 0xee, 0xbc, 0x99]);
    assert_eq!(row.get::<_, Raw>("j").0, b"\x01{\"a\": 1, \"b\": [true, null]}");
    let mut interval = (2 * 3_600_000_000i64).to_be_bytes().to_vec();
    interval.extend_from_slice(&1i32.to_be_bytes());
    interval.extend_from_slice(&0i32.to_be_bytes());
    assert_eq!(row.get::<_, Raw>("i").0, interval);
}

fn days_2000_to_2024() -> i64 {
    (2000..2024).map(|y| if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 { 366 } else { 365 }).sum()
}

#[tokio::test]
async fn portals_fetch_max_rows_at_a_time() {
    let server = start(WireConfig::default()).await;
    let mut client = connect(server.addr).await;
    let tx = client.transaction().await.unwrap();
    let portal = tx.bind("SELECT generate_series(1, 10)", &[]).await.unwrap();
    let mut sizes = Vec::new();
    let mut all = Vec::new();
    loop {
        let batch = tx.query_portal(&portal, 3).await.unwrap();
        if batch.is_empty() {
            break;
        }
        sizes.push(batch.len());
        all.extend(batch.iter().map(|r| r.get::<_, i32>(0)));
        if sizes.len() > 10 {
            panic!("portal never finished");
        }
    }
    assert_eq!(sizes, vec![3, 3, 3, 1]);
    assert_eq!(all, (1..=10).collect::<Vec<_>>());
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn errors_carry_sqlstate_detail_and_hint() {
    let server = start(WireConfig::default()).await;
    let client = connect(server.addr).await;
    let err = client.simple_query("SELECT 1/0").await.unwrap_err();
    let db = err.as_db_error().unwrap();
    assert_eq!(db.code(), &tokio_postgres::error::SqlState::DIVISION_BY_ZERO);
    assert_eq!(db.message(), "division by zero");
    assert_eq!(db.detail(), Some("some detail"));
    assert_eq!(db.hint(), Some("some hint"));
    assert_eq!(db.severity(), "ERROR");

    // Extended protocol: a parse error, then the connection still works.
    let err = client.prepare("SELEKT").await.unwrap_err();
    assert_eq!(err.code(), Some(&tokio_postgres::error::SqlState::SYNTAX_ERROR));
    // Bad text parameter: PostgreSQL's message and 22P02.
    let stmt = client.prepare_typed("SELECT $1", &[Type::INT4]).await.unwrap();
    assert_eq!(client.query_one(&stmt, &[&7i32]).await.unwrap().get::<_, i32>(0), 7);
    let err = client.query("SELECT 1/0", &[]).await.unwrap_err();
    assert_eq!(err.code(), Some(&tokio_postgres::error::SqlState::DIVISION_BY_ZERO));
    assert_eq!(client.query_one("SELECT 1", &[]).await.unwrap().get::<_, i32>(0), 1);

    // A failing database name is a FATAL error at connect.
    let err = tokio_postgres::connect(&format!("host=127.0.0.1 port={} user=a dbname=nope", server.addr.port()), NoTls)
        .await
        .err()
        .unwrap();
    assert_eq!(err.code().map(|c| c.code()), Some("3D000"));
}

#[tokio::test]
async fn ready_for_query_reports_the_session_transaction_status() {
    let server = start(WireConfig::default()).await;
    let mut s = raw_session(server.addr).await;
    let status = |msgs: &[(u8, Vec<u8>)]| msgs.last().map(|m| m.1[0] as char);
    s.write_all(&query("BEGIN")).await.unwrap();
    assert_eq!(status(&read_until_ready(&mut s).await), Some('T'));
    s.write_all(&query("SELECT 1/0")).await.unwrap();
    let msgs = read_until_ready(&mut s).await;
    assert_eq!(msgs[0].0, b'E');
    assert_eq!(error_code(&msgs[0].1), "22012");
    assert_eq!(status(&msgs), Some('E'));
    s.write_all(&query("SELECT 1")).await.unwrap();
    let msgs = read_until_ready(&mut s).await;
    assert_eq!(error_code(&msgs[0].1), "25P02");
    s.write_all(&query("ROLLBACK")).await.unwrap();
    assert_eq!(status(&read_until_ready(&mut s).await), Some('I'));
    // Terminate closes the session.
    s.write_all(&message(b'X', &[])).await.unwrap();
    assert!(read_message(&mut s).await.is_none());
    wait_all_closed(&server.stats).await;
}

#[tokio::test]
async fn notices_and_parameter_status() {
    let server = start(WireConfig::default()).await;
    let (client, mut connection) = tokio_postgres::connect(&conn_string(server.addr, ""), NoTls).await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let stream = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        futures::pin_mut!(stream);
        while let Some(Ok(msg)) = futures::StreamExt::next(&mut stream).await {
            if let AsyncMessage::Notice(n) = msg {
                let _ = tx.send(n.message().to_string());
            }
        }
    });
    client.simple_query("SELECT notice").await.unwrap();
    let notice = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap();
    assert_eq!(notice.as_deref(), Some("hello from the backend"));

    // server_version is the configured one and parses as 16.
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(&startup_packet("alice")).await.unwrap();
    let msgs = read_until_ready(&mut s).await;
    let params: Vec<(String, String)> = msgs
        .iter()
        .filter(|m| m.0 == b'S')
        .map(|m| {
            let mut parts = m.1.split(|b| *b == 0).map(|p| String::from_utf8_lossy(p).into_owned());
            (parts.next().unwrap_or_default(), parts.next().unwrap_or_default())
        })
        .collect();
    let get = |k: &str| params.iter().find(|(name, _)| name == k).map(|(_, v)| v.clone());
    assert_eq!(get("server_version").as_deref(), Some("16.4 (Shoal 0.1.0)"));
    assert_eq!(get("client_encoding").as_deref(), Some("UTF8"));
    assert_eq!(get("integer_datetimes").as_deref(), Some("on"));
    assert!(msgs.iter().any(|m| m.0 == b'K' && m.1.len() == 8), "BackendKeyData");
    // A changed setting is reported before ReadyForQuery.
    s.write_all(&query("SET application_name = 'reporter'")).await.unwrap();
    let msgs = read_until_ready(&mut s).await;
    assert!(msgs.iter().any(|m| m.0 == b'S' && m.1.starts_with(b"application_name\0reporter\0")));
}

#[tokio::test]
async fn cancel_request_reaches_the_running_statement() {
    let server = start(WireConfig::default()).await;
    let client = connect(server.addr).await;
    let token = client.cancel_token();
    let running = tokio::spawn(async move { client.simple_query("SELECT pg_sleep(10)").await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    token.cancel_query(NoTls).await.unwrap();
    let result = tokio::time::timeout(Duration::from_secs(5), running).await.unwrap().unwrap();
    let err = result.unwrap_err();
    assert_eq!(err.code(), Some(&tokio_postgres::error::SqlState::QUERY_CANCELED));
}

#[tokio::test]
async fn garbage_and_oversized_messages_close_only_that_connection() {
    let config = WireConfig { max_message_bytes: 4096, ..WireConfig::default() };
    let server = start(config).await;
    let healthy = connect(server.addr).await;

    // Not PostgreSQL at all.
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await.unwrap();

    // An unknown message type after startup: 08P01, then closed.
    let mut s = raw_session(server.addr).await;
    s.write_all(&message(b'?', b"junk")).await.unwrap();
    let (tag, body) = read_message(&mut s).await.unwrap();
    assert_eq!((tag, error_code(&body).as_str()), (b'E', "08P01"));
    assert!(read_message(&mut s).await.is_none());

    // A Bind whose inner counts lie (pgwire's decoder would read past the frame).
    let mut s = raw_session(server.addr).await;
    s.write_all(&message(b'B', &[0, 0, 0x7f, 0xff, 0, 1])).await.unwrap();
    let (tag, body) = read_message(&mut s).await.unwrap();
    assert_eq!((tag, error_code(&body).as_str()), (b'E', "08P01"));
    assert!(read_message(&mut s).await.is_none());

    // A negative length.
    let mut s = raw_session(server.addr).await;
    s.write_all(&[b'Q', 0xff, 0xff, 0xff, 0xff]).await.unwrap();
    let (tag, _) = read_message(&mut s).await.unwrap();
    assert_eq!(tag, b'E');

    // Oversized: refused from the header alone, 54000, then closed.
    let mut s = raw_session(server.addr).await;
    let mut header = vec![b'Q'];
    header.extend_from_slice(&(100_000_000i32).to_be_bytes());
    s.write_all(&header).await.unwrap();
    let (tag, body) = read_message(&mut s).await.unwrap();
    assert_eq!((tag, error_code(&body).as_str()), (b'E', "54000"));
    assert!(read_message(&mut s).await.is_none());

    // An oversized startup packet.
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(&(1_000_000i32).to_be_bytes()).await.unwrap();
    let (tag, body) = read_message(&mut s).await.unwrap();
    assert_eq!((tag, error_code(&body).as_str()), (b'E', "54000"));

    // Disconnect in the middle of a message.
    let mut s = raw_session(server.addr).await;
    s.write_all(&[b'Q', 0, 0, 0, 100, b'S']).await.unwrap();
    drop(s);

    // Everyone else is unaffected, and a new client is served.
    assert_eq!(healthy.query_one("SELECT 1", &[]).await.unwrap().get::<_, i32>(0), 1);
    let second = connect(server.addr).await;
    assert_eq!(second.query_one("SELECT 1", &[]).await.unwrap().get::<_, i32>(0), 1);
    drop(healthy);
    drop(second);
    wait_all_closed(&server.stats).await;
}

#[tokio::test]
async fn sessions_close_exactly_once_on_any_disconnect() {
    let server = start(WireConfig::default()).await;
    // Idle drop.
    drop(connect(server.addr).await);
    // Drop in the middle of an extended-protocol exchange (no Sync).
    let mut s = raw_session(server.addr).await;
    s.write_all(&message(b'P', b"\0SELECT 1\0\0\0")).await.unwrap();
    drop(s);
    // Drop while a statement runs.
    let client = connect(server.addr).await;
    let running = tokio::spawn(async move { client.simple_query("SELECT pg_sleep(10)").await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    running.abort();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(server.stats.connects.load(Ordering::SeqCst) >= 2);
    // The sleeping statement ends by itself after 10s at the latest; the
    // others must already be closed.
    for _ in 0..300 {
        if server.stats.closes.load(Ordering::SeqCst) + 1 >= server.stats.connects.load(Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(server.stats.closes.load(Ordering::SeqCst) + 1 >= server.stats.connects.load(Ordering::SeqCst));
}

#[tokio::test]
async fn scram_authentication() {
    let config = WireConfig { user: "alice".into(), password: Some("s3cret".into()), ..WireConfig::default() };
    let server = start(config).await;

    let (client, conn) = tokio_postgres::connect(&conn_string(server.addr, "password=s3cret"), NoTls).await.unwrap();
    tokio::spawn(conn);
    assert_eq!(client.query_one("SELECT 1", &[]).await.unwrap().get::<_, i32>(0), 1);

    let err = tokio_postgres::connect(&conn_string(server.addr, "password=wrong"), NoTls).await.err().unwrap();
    let db = err.as_db_error().expect("a server error");
    assert_eq!(db.code().code(), "28P01");
    assert_eq!(db.message(), "password authentication failed for user \"alice\"");
    assert_eq!(db.severity(), "FATAL");

    let other = format!("host=127.0.0.1 port={} user=mallory dbname=db password=s3cret", server.addr.port());
    let err = tokio_postgres::connect(&other, NoTls).await.err().unwrap();
    let db = err.as_db_error().expect("a server error");
    assert_eq!(db.code().code(), "28P01");
    assert_eq!(db.message(), "password authentication failed for user \"mallory\"");
    assert_eq!(server.stats.connects.load(Ordering::SeqCst), 1);
}

#[test]
fn trust_mode_is_loopback_only() {
    use shoal_pgwire::auth::{is_loopback, remote_trust_refused};
    assert!(is_loopback("127.0.0.1".parse().unwrap()));
    assert!(is_loopback("::1".parse().unwrap()));
    assert!(!is_loopback("192.0.2.7".parse().unwrap()));
    let err = remote_trust_refused("192.0.2.7".parse().unwrap());
    assert_eq!(err.code.as_str(), "28000");
    assert!(err.hint.unwrap().contains("password"));
}

#[tokio::test]
async fn ssl_request_is_refused_without_tls() {
    let server = start(WireConfig::default()).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]).await.unwrap();
    assert_eq!(s.read_u8().await.unwrap(), b'N');
    s.write_all(&startup_packet("alice")).await.unwrap();
    let msgs = read_until_ready(&mut s).await;
    assert_eq!(msgs.last().map(|m| m.0), Some(b'Z'));
}

#[tokio::test]
async fn tls_handshake_with_a_generated_certificate() {
    use pgwire::tokio::tokio_rustls::rustls::{self, pki_types::ServerName, RootCertStore};
    use pgwire::tokio::tokio_rustls::TlsConnector;

    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = std::env::temp_dir().join(format!("shoal-pgwire-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert_path, key_path) = (dir.join("server.crt"), dir.join("server.key"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    let config =
        WireConfig { tls: Some(TlsFiles { cert: cert_path, key: key_path, client_ca: None }), ..WireConfig::default() };
    let server = start(config).await;

    let mut roots = RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let client_config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]).await.unwrap();
    assert_eq!(tcp.read_u8().await.unwrap(), b'S');
    let mut tls = TlsConnector::from(Arc::new(client_config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    tls.write_all(&startup_packet("alice")).await.unwrap();
    let msgs = read_until_ready(&mut tls).await;
    assert_eq!(msgs.last().map(|m| m.0), Some(b'Z'));
    tls.write_all(&query("SELECT 1")).await.unwrap();
    let msgs = read_until_ready(&mut tls).await;
    assert!(msgs.iter().any(|m| m.0 == b'D'));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Certificates for the client-certificate tests, in their own directory.
///
/// ```text
///   client CA ──signs──▶ server cert "localhost", client certs CN=alice, CN=bob, no CN
///   other CA  ──signs──▶ client cert CN=alice
/// ```
struct ClientPki {
    dir: std::path::PathBuf,
    server_ca: rcgen::Certificate,
    files: TlsFiles,
    alice: (rcgen::Certificate, rcgen::KeyPair),
    bob: (rcgen::Certificate, rcgen::KeyPair),
    nameless: (rcgen::Certificate, rcgen::KeyPair),
    alice_other_ca: (rcgen::Certificate, rcgen::KeyPair),
}

fn test_ca(name: &str) -> (rcgen::Certificate, rcgen::KeyPair) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    (params.self_signed(&key).unwrap(), key)
}

fn client_cert(cn: Option<&str>, ca: &(rcgen::Certificate, rcgen::KeyPair)) -> (rcgen::Certificate, rcgen::KeyPair) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    if let Some(cn) = cn {
        params.distinguished_name.push(rcgen::DnType::CommonName, cn);
    }
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    (params.signed_by(&key, &ca.0, &ca.1).unwrap(), key)
}

fn client_pki(name: &str) -> ClientPki {
    let dir = std::env::temp_dir().join(format!("shoal-pgwire-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = test_ca("client-ca");
    let other = test_ca("other-ca");
    let server_key = rcgen::KeyPair::generate().unwrap();
    let server = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&server_key, &ca.0, &ca.1)
        .unwrap();
    let files =
        TlsFiles { cert: dir.join("server.crt"), key: dir.join("server.key"), client_ca: Some(dir.join("ca.crt")) };
    std::fs::write(&files.cert, server.pem()).unwrap();
    std::fs::write(&files.key, server_key.serialize_pem()).unwrap();
    std::fs::write(files.client_ca.as_ref().unwrap(), ca.0.pem()).unwrap();
    ClientPki {
        alice: client_cert(Some("alice"), &ca),
        bob: client_cert(Some("bob"), &ca),
        nameless: client_cert(None, &ca),
        alice_other_ca: client_cert(Some("alice"), &other),
        server_ca: ca.0,
        dir,
        files,
    }
}

impl Drop for ClientPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

type ClientTls = pgwire::tokio::tokio_rustls::client::TlsStream<TcpStream>;

/// SSLRequest, then a TLS handshake presenting `cert` (or none), then the
/// StartupMessage for `user`; the messages up to ReadyForQuery (or the
/// error that ends the connection), or the I/O error that broke it.
async fn tls_startup(
    addr: SocketAddr,
    pki: &ClientPki,
    cert: Option<&(rcgen::Certificate, rcgen::KeyPair)>,
    user: &str,
) -> std::io::Result<Vec<(u8, Vec<u8>)>> {
    tls_session(addr, pki, cert, user).await.map(|(_, msgs)| msgs)
}

/// [`tls_startup`], keeping the connection.
async fn tls_session(
    addr: SocketAddr,
    pki: &ClientPki,
    cert: Option<&(rcgen::Certificate, rcgen::KeyPair)>,
    user: &str,
) -> std::io::Result<(ClientTls, Vec<(u8, Vec<u8>)>)> {
    let mut tls = tls_connect(addr, pki, cert).await?;
    tls.write_all(&startup_packet(user)).await?;
    // TLS 1.3 lets the client finish its handshake before the server has
    // judged its certificate: a refusal arrives as an alert on this read.
    let tag = tls.read_u8().await?;
    let len = tls.read_i32().await?;
    let mut body = vec![0; (len - 4) as usize];
    tls.read_exact(&mut body).await?;
    // An error ends the connection; an authentication request other than
    // AuthenticationOk (0) waits for the client.
    let done = tag == b'E' || (tag == b'R' && body[..4] != [0, 0, 0, 0]);
    let mut msgs = vec![(tag, body)];
    if !done {
        msgs.extend(read_until_ready(&mut tls).await);
    }
    Ok((tls, msgs))
}

/// SSLRequest and a TLS handshake presenting `cert` (or none).
async fn tls_connect(
    addr: SocketAddr,
    pki: &ClientPki,
    cert: Option<&(rcgen::Certificate, rcgen::KeyPair)>,
) -> std::io::Result<ClientTls> {
    use pgwire::tokio::tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
    use pgwire::tokio::tokio_rustls::rustls::{self, RootCertStore};
    use pgwire::tokio::tokio_rustls::TlsConnector;

    let mut roots = RootCertStore::empty();
    roots.add(pki.server_ca.der().clone()).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let client_config = match cert {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .unwrap(),
    };
    let mut tcp = TcpStream::connect(addr).await?;
    tcp.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]).await?;
    assert_eq!(tcp.read_u8().await?, b'S');
    TlsConnector::from(Arc::new(client_config)).connect(ServerName::try_from("localhost").unwrap(), tcp).await
}

fn error_message(body: &[u8]) -> String {
    body.split(|b| *b == 0)
        .filter(|f| matches!(f.first(), Some(b'M' | b'H')))
        .map(|f| String::from_utf8_lossy(&f[1..]).into_owned())
        .collect::<Vec<_>>()
        .join(" / ")
}

#[tokio::test]
async fn client_certificates_must_chain_to_the_ca_and_name_the_user() {
    let pki = client_pki("client-certs");
    let server = start(WireConfig { tls: Some(pki.files.clone()), ..WireConfig::default() }).await;

    eprintln!("a certificate the CA signed, whose CN is the user, gets a session");
    let msgs = tls_startup(server.addr, &pki, Some(&pki.alice), "alice").await.unwrap();
    assert_eq!(msgs.last().map(|m| m.0), Some(b'Z'), "{msgs:?}");

    eprintln!("no certificate: FATAL 28000 that says what to present");
    let msgs = tls_startup(server.addr, &pki, None, "alice").await.unwrap();
    assert_eq!(msgs[0].0, b'E');
    assert_eq!(error_code(&msgs[0].1), "28000");
    let text = error_message(&msgs[0].1);
    assert!(text.contains("connection requires a valid client certificate") && text.contains("\"alice\""), "{text}");

    eprintln!("a certificate for another user: FATAL 28000 naming both");
    let msgs = tls_startup(server.addr, &pki, Some(&pki.bob), "alice").await.unwrap();
    assert_eq!((msgs[0].0, error_code(&msgs[0].1)), (b'E', "28000".to_string()));
    let text = error_message(&msgs[0].1);
    assert!(text.contains("for user \"alice\"") && text.contains("is \"bob\""), "{text}");

    eprintln!("a certificate without a CN: FATAL 28000");
    let msgs = tls_startup(server.addr, &pki, Some(&pki.nameless), "alice").await.unwrap();
    assert_eq!((msgs[0].0, error_code(&msgs[0].1)), (b'E', "28000".to_string()));
    assert!(error_message(&msgs[0].1).contains("no common name"), "{msgs:?}");

    eprintln!("a certificate from another CA never completes the handshake: the client reads the alert");
    let err = tls_startup(server.addr, &pki, Some(&pki.alice_other_ca), "alice").await.unwrap_err();
    assert!(err.to_string().contains("UnknownCA"), "{err}");

    eprintln!("plain connections are not asked for a certificate");
    let client = connect(server.addr).await;
    assert_eq!(client.query_one("SELECT 1", &[]).await.unwrap().get::<_, i32>(0), 1);
    drop(client);

    eprintln!("only the accepted connections reached the database");
    assert_eq!(server.stats.connects.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_client_certificate_does_not_replace_the_password() {
    let pki = client_pki("client-cert-scram");
    let config = WireConfig {
        user: "alice".into(),
        password: Some("s3cret".into()),
        tls: Some(pki.files.clone()),
        ..WireConfig::default()
    };
    let server = start(config).await;
    let msgs = tls_startup(server.addr, &pki, Some(&pki.alice), "alice").await.unwrap();
    // AuthenticationSASL (10): SCRAM still runs after the certificate passed.
    assert_eq!(msgs[0].0, b'R', "{msgs:?}");
    assert_eq!(msgs[0].1[..4], 10i32.to_be_bytes());
    assert_eq!(server.stats.connects.load(Ordering::SeqCst), 0);
}

/// The first message's SQLSTATE and text, for a refused connection.
fn refusal(msgs: &[(u8, Vec<u8>)]) -> (String, String) {
    assert_eq!(msgs.first().map(|m| m.0), Some(b'E'), "expected an error, got {msgs:?}");
    (error_code(&msgs[0].1), error_message(&msgs[0].1))
}

/// The first message is AuthenticationOk (0) or AuthenticationSASL (10).
fn auth_request(msgs: &[(u8, Vec<u8>)]) -> i32 {
    assert_eq!(msgs.first().map(|m| m.0), Some(b'R'), "expected an authentication message, got {msgs:?}");
    i32::from_be_bytes(msgs[0].1[..4].try_into().unwrap())
}

/// pid and secret key from a session's BackendKeyData.
fn backend_key(msgs: &[(u8, Vec<u8>)]) -> (i32, i32) {
    let key = &msgs.iter().find(|m| m.0 == b'K').expect("BackendKeyData").1;
    (i32::from_be_bytes(key[..4].try_into().unwrap()), i32::from_be_bytes(key[4..8].try_into().unwrap()))
}

fn cancel_packet(pid: i32, key: i32) -> Vec<u8> {
    [16i32, 80877102, pid, key].iter().flat_map(|v| v.to_be_bytes()).collect()
}

/// Starts `SELECT pg_sleep(10)` on `session`, lets `cancel` cancel it, and
/// returns the statement's SQLSTATE.
async fn cancelled_by(session: &mut ClientTls, cancel: impl std::future::Future<Output = ()>) -> String {
    session.write_all(&query("SELECT pg_sleep(10)")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    cancel.await;
    let msgs = tokio::time::timeout(Duration::from_secs(5), read_until_ready(session)).await.expect("cancelled");
    msgs.iter().find(|m| m.0 == b'E').map(|m| error_code(&m.1)).unwrap_or_default()
}

#[tokio::test]
async fn tls_required_refuses_plain_connections_but_not_cancel_requests() {
    let pki = client_pki("tls-required");
    let files = TlsFiles { client_ca: None, ..pki.files.clone() };
    let server = start(WireConfig { tls: Some(files), tls_required: true, ..WireConfig::default() }).await;

    eprintln!("tokio-postgres without TLS, from loopback: FATAL 28000 that says TLS is required");
    let err = tokio_postgres::connect(&conn_string(server.addr, ""), NoTls).await.err().unwrap();
    let db = err.as_db_error().expect("a server error");
    assert_eq!((db.code().code(), db.severity()), ("28000", "FATAL"), "{db}");
    assert!(db.message().contains("this server requires TLS"), "{db}");
    assert!(db.hint().unwrap_or_default().contains("sslmode=require"), "{db}");

    eprintln!("a plain StartupMessage after a refused GSSENCRequest is refused too");
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30]).await.unwrap();
    assert_eq!(s.read_u8().await.unwrap(), b'N');
    s.write_all(&startup_packet("alice")).await.unwrap();
    let msgs = read_until_ready(&mut s).await;
    assert_eq!(refusal(&msgs).0, "28000");

    eprintln!("TLS gets a session");
    let (mut session, msgs) = tls_session(server.addr, &pki, None, "alice").await.unwrap();
    assert_eq!(msgs.last().map(|m| m.0), Some(b'Z'), "{msgs:?}");
    let (pid, key) = backend_key(&msgs);

    eprintln!("a cancel request on a plain connection (libpq before 17, pgjdbc) still cancels");
    let plain_cancel = async {
        let mut c = TcpStream::connect(server.addr).await.unwrap();
        c.write_all(&cancel_packet(pid, key)).await.unwrap();
        assert_eq!(c.read_u8().await.ok(), None, "the server answers a cancel request by closing");
    };
    assert_eq!(cancelled_by(&mut session, plain_cancel).await, "57014");

    eprintln!("so does one inside TLS (tokio-postgres, libpq 17)");
    let tls_cancel = async {
        let mut c = tls_connect(server.addr, &pki, None).await.unwrap();
        c.write_all(&cancel_packet(pid, key)).await.unwrap();
        c.flush().await.unwrap();
        let _ = c.read_u8().await;
    };
    assert_eq!(cancelled_by(&mut session, tls_cancel).await, "57014");

    eprintln!("only the TLS session reached the database");
    assert_eq!(server.stats.connects.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn cert_auth_logs_in_by_certificate_alone() {
    let pki = client_pki("cert-auth");
    let server = start(WireConfig {
        user: "alice".into(),
        tls: Some(pki.files.clone()),
        auth: AuthMethod::Cert,
        ..WireConfig::default()
    })
    .await;

    eprintln!("alice's certificate: AuthenticationOk at once, no password asked");
    let msgs = tls_startup(server.addr, &pki, Some(&pki.alice), "alice").await.unwrap();
    assert_eq!(auth_request(&msgs), 0);
    assert_eq!(msgs.last().map(|m| m.0), Some(b'Z'), "{msgs:?}");

    eprintln!("TLS without a certificate: FATAL 28000 naming what to present");
    let (code, text) = refusal(&tls_startup(server.addr, &pki, None, "alice").await.unwrap());
    assert_eq!(code, "28000");
    assert!(text.contains("requires a valid client certificate") && text.contains("\"alice\""), "{text}");

    eprintln!("bob's certificate for alice, or a certificate without a CN: FATAL 28000");
    let (code, text) = refusal(&tls_startup(server.addr, &pki, Some(&pki.bob), "alice").await.unwrap());
    assert!(code == "28000" && text.contains("is \"bob\""), "{code} {text}");
    let (code, text) = refusal(&tls_startup(server.addr, &pki, Some(&pki.nameless), "alice").await.unwrap());
    assert!(code == "28000" && text.contains("no common name"), "{code} {text}");

    eprintln!("bob's own certificate as bob: FATAL 28000, the server's one user is alice");
    let (code, text) = refusal(&tls_startup(server.addr, &pki, Some(&pki.bob), "bob").await.unwrap());
    assert!(code == "28000" && text.contains("for user \"bob\": no such user"), "{code} {text}");

    eprintln!("a certificate from another CA: the handshake fails");
    let err = tls_startup(server.addr, &pki, Some(&pki.alice_other_ca), "alice").await.unwrap_err();
    assert!(err.to_string().contains("UnknownCA"), "{err}");

    eprintln!("plain, even from loopback: FATAL 28000 that says a certificate needs TLS");
    let err = tokio_postgres::connect(&conn_string(server.addr, ""), NoTls).await.err().unwrap();
    let db = err.as_db_error().expect("a server error");
    assert_eq!((db.code().code(), db.severity()), ("28000", "FATAL"), "{db}");
    assert!(db.message().contains("which needs TLS"), "{db}");
    assert!(db.hint().unwrap_or_default().contains("sslcert"), "{db}");

    assert_eq!(server.stats.connects.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn cert_or_password_skips_scram_only_for_a_certificate() {
    let pki = client_pki("cert-or-password");
    let server = start(WireConfig {
        user: "alice".into(),
        password: Some("s3cret".into()),
        tls: Some(pki.files.clone()),
        auth: AuthMethod::CertOrPassword,
        ..WireConfig::default()
    })
    .await;

    eprintln!("alice's certificate: AuthenticationOk, SCRAM skipped");
    let msgs = tls_startup(server.addr, &pki, Some(&pki.alice), "alice").await.unwrap();
    assert_eq!(auth_request(&msgs), 0);
    assert_eq!(msgs.last().map(|m| m.0), Some(b'Z'), "{msgs:?}");

    eprintln!("TLS without a certificate: AuthenticationSASL, the password is asked for");
    assert_eq!(auth_request(&tls_startup(server.addr, &pki, None, "alice").await.unwrap()), 10);

    eprintln!("a certificate for another user is refused, not a reason to fall back to the password");
    let (code, text) = refusal(&tls_startup(server.addr, &pki, Some(&pki.bob), "alice").await.unwrap());
    assert!(code == "28000" && text.contains("is \"bob\""), "{code} {text}");

    eprintln!("plain connections use the password");
    let (client, conn) = tokio_postgres::connect(&conn_string(server.addr, "password=s3cret"), NoTls).await.unwrap();
    tokio::spawn(conn);
    assert_eq!(client.query_one("SELECT 1", &[]).await.unwrap().get::<_, i32>(0), 1);
    let err = tokio_postgres::connect(&conn_string(server.addr, "password=wrong"), NoTls).await.err().unwrap();
    assert_eq!(err.as_db_error().map(|db| db.code().code()), Some("28P01"), "{err:?}");

    assert_eq!(server.stats.connects.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn settings_that_do_not_fit_are_refused_before_serving() {
    let pki = client_pki("wire-check");
    let tls = Some(pki.files.clone());
    let no_ca = Some(TlsFiles { client_ca: None, ..pki.files.clone() });
    let password = Some("s3cret".to_string());
    for (config, needle) in [
        (WireConfig { tls_required: true, ..WireConfig::default() }, "--tls-required needs TLS"),
        (WireConfig { auth: AuthMethod::Cert, ..WireConfig::default() }, "needs --tls-client-ca"),
        (WireConfig { auth: AuthMethod::Cert, tls: no_ca.clone(), ..WireConfig::default() }, "needs --tls-client-ca"),
        (
            WireConfig {
                auth: AuthMethod::CertOrPassword,
                tls: no_ca,
                password: password.clone(),
                ..WireConfig::default()
            },
            "needs --tls-client-ca",
        ),
        (
            WireConfig { auth: AuthMethod::Cert, tls: tls.clone(), password, ..WireConfig::default() },
            "never asks for a password",
        ),
        (
            WireConfig { auth: AuthMethod::CertOrPassword, tls: tls.clone(), ..WireConfig::default() },
            "needs --password",
        ),
    ] {
        let err = config.check().unwrap_err();
        assert_eq!(err.code, SqlState::INVALID_PARAMETER_VALUE);
        assert!(err.message.contains(needle), "{config:?}: {}", err.message);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let served = serve(listener, Arc::new(FakeBackend { stats: Arc::default() }), Arc::new(config), async {});
        let err = served.await.unwrap_err();
        assert!(err.to_string().contains(needle), "serve refuses it too: {err}");
    }
    assert!(WireConfig { auth: AuthMethod::Cert, tls, ..WireConfig::default() }.check().is_ok());
}

#[test]
fn bad_client_ca_files_are_named_at_start() {
    let pki = client_pki("client-ca-files");
    let with_ca = |ca: std::path::PathBuf| TlsFiles { client_ca: Some(ca), ..pki.files.clone() };
    assert!(pki.files.check().is_ok());

    let missing = pki.dir.join("missing.crt");
    let err = with_ca(missing.clone()).check().unwrap_err().to_string();
    assert!(err.contains("cannot read TLS client CA") && err.contains(&missing.display().to_string()), "{err}");

    let empty = pki.dir.join("empty.crt");
    std::fs::write(&empty, "").unwrap();
    let err = with_ca(empty).check().unwrap_err().to_string();
    assert!(err.contains("no certificate found in TLS client CA"), "{err}");

    // A key where the CA should be: no certificate in it.
    let err = with_ca(pki.files.key.clone()).check().unwrap_err().to_string();
    assert!(err.contains("no certificate found in TLS client CA"), "{err}");
}

#[tokio::test]
async fn shutdown_tells_idle_clients_and_closes_sessions() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stats = Arc::new(Stats::default());
    let backend = Arc::new(FakeBackend { stats: stats.clone() });
    let (tx, rx) = oneshot::channel::<()>();
    let stopped = Arc::new(AtomicBool::new(false));
    let flag = stopped.clone();
    let server = tokio::spawn(async move {
        serve(listener, backend, Arc::new(WireConfig::default()), async {
            let _ = rx.await;
        })
        .await
        .unwrap();
        flag.store(true, Ordering::SeqCst);
    });
    let mut s = raw_session(addr).await;
    tx.send(()).unwrap();
    let (tag, body) = read_message(&mut s).await.unwrap();
    assert_eq!((tag, error_code(&body).as_str()), (b'E', "57P01"));
    tokio::time::timeout(Duration::from_secs(5), server).await.unwrap().unwrap();
    assert!(stopped.load(Ordering::SeqCst));
    wait_all_closed(&stats).await;
}
