//! shoal-orm against the raw driver it uses, on SQLite and PostgreSQL.
//!
//! ```text
//!   workload          shoal-orm                                  raw driver (same SQL, by hand)
//!   select_by_key     User::get(&db, id)                         prepared SELECT … WHERE id = ?
//!   select_100        query().filter(id > n).order_by.limit(100) prepared SELECT … LIMIT 100
//!   bulk_insert_10k   insert_all(&10_000 rows)                   BEGIN; 10 × 1,000-row INSERT; COMMIT
//!   eager_100x10      query().with(User::ORDERS) for 100 users   users query + one IN query + grouping
//! ```
//!
//! Every system runs on one tokio current-thread runtime, one operation at
//! a time, so the figures are per-operation latency including all client
//! work. Prints one JSON object per measurement; `--table FILE…` merges
//! result files (this one's and SeaORM's) into the Markdown table of
//! docs/benchmarks.md.
//!
//! ```sh
//! bench/orm-compare/run.sh          # builds both benches in release and prints the table
//! ```
//!
//! `--profile <backend> <workload> <orm|raw> <iters>` runs one side alone
//! for callgrind, whose instruction counts do not depend on how loaded the
//! machine is (see [`profile`]).

use std::collections::HashMap;
use std::time::Instant;

use shoal_orm::prelude::*;
use shoal_orm::Dialect;

#[derive(Model, Clone, Debug, Default)]
#[model(table = "bench_users")]
struct User {
    #[model(primary_key)]
    id: i64,
    #[model(max_length = 100)]
    name: String,
    age: i32,
    #[model(max_length = 100)]
    email: Option<String>,
    #[model(has_many(foreign_key = user_id))]
    orders: HasMany<Order>,
}

#[derive(Model, Clone, Debug, Default)]
#[model(table = "bench_orders")]
struct Order {
    #[model(primary_key)]
    id: i64,
    #[model(index)]
    user_id: i64,
    total: i64,
    #[model(max_length = 100)]
    note: Option<String>,
}

#[derive(Model, Clone, Debug, Default)]
#[model(table = "bench_inserts")]
struct Insert {
    #[model(primary_key)]
    id: i64,
    #[model(max_length = 100)]
    name: String,
    age: i32,
    #[model(max_length = 100)]
    email: Option<String>,
}

/// A plain row for the raw-driver code.
#[derive(Debug)]
#[allow(dead_code)] // filled like an application would; the bench reads only some fields
struct RawUser {
    id: i64,
    name: String,
    age: i32,
    email: Option<String>,
    orders: Vec<RawOrder>,
}

#[derive(Debug, Clone)]
#[allow(dead_code)] // read through Debug by black_box consumers only
struct RawOrder {
    id: i64,
    user_id: i64,
    total: i64,
    note: Option<String>,
}

const USERS: i64 = 10_000;
const EAGER_USERS: i64 = 100;
const ORDERS_PER_USER: i64 = 10;
const BULK_ROWS: i64 = 10_000;
const BULK_CHUNK: usize = 1_000;

fn users() -> Vec<User> {
    (1..=USERS)
        .map(|i| User {
            id: i,
            name: format!("user {i}"),
            age: (i % 80) as i32,
            email: (i % 3 != 0).then(|| format!("u{i}@example.com")),
            ..Default::default()
        })
        .collect()
}

fn orders() -> Vec<Order> {
    (1..=EAGER_USERS)
        .flat_map(|u| {
            (0..ORDERS_PER_USER).map(move |k| Order {
                id: u * 100 + k,
                user_id: u,
                total: k * 10,
                note: (k % 2 == 0).then(|| "gift".to_string()),
            })
        })
        .collect()
}

fn inserts(round: usize) -> Vec<Insert> {
    (1..=BULK_ROWS)
        .map(|i| Insert {
            id: i + round as i64 * 1_000_000,
            name: format!("row {i}"),
            age: (i % 50) as i32,
            email: None,
        })
        .collect()
}

/// The raw driver's side of `bulk_insert_10k` on SQLite: round `round`'s
/// rows in chunks of `BULK_CHUNK`, bound by reference, in one transaction.
fn raw_bulk_sqlite(conn: &rusqlite::Connection, insert_sql: &str, round: usize) {
    let rows = inserts(round);
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    let mut st = conn.prepare_cached(insert_sql).unwrap();
    for chunk in rows.chunks(BULK_CHUNK) {
        let mut params: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(chunk.len() * 4);
        for r in chunk {
            params.extend([&r.id as &dyn rusqlite::ToSql, &r.name, &r.age, &r.email]);
        }
        st.execute(params.as_slice()).unwrap();
    }
    conn.execute_batch("COMMIT").unwrap();
}

/// Microseconds per call of `a` and of `b`: the calls run in alternating
/// blocks (after a warm-up of each; which side goes first alternates too),
/// and each side's figure is the median over its blocks of the block's mean.
/// On a machine shared with other work a block that gets preempted is an
/// outlier the median ignores, and load that lasts falls on both sides alike.
async fn measure_pair(iters: usize, mut a: impl AsyncFnMut(usize), mut b: impl AsyncFnMut(usize)) -> (f64, f64) {
    let block = (iters / 50).max(1);
    // Warm-up indices lie past the measured ones (bulk inserts use them as keys).
    for i in iters..iters + block {
        a(i).await;
        b(i).await;
    }
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    let mut done = 0;
    let mut a_first = true;
    while done < iters {
        let n = block.min(iters - done);
        for side in [a_first, !a_first] {
            let start = Instant::now();
            for i in done..done + n {
                if side {
                    a(i).await;
                } else {
                    b(i).await;
                }
            }
            let per_op = start.elapsed().as_secs_f64() * 1e6 / n as f64;
            if side {
                ta.push(per_op)
            } else {
                tb.push(per_op)
            }
        }
        a_first = !a_first;
        done += n;
    }
    (median(ta), median(tb))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn report(workload: &str, backend: &str, system: &str, us: f64, queries: Option<usize>) {
    let q = queries.map(|n| format!(",\"queries\":{n}")).unwrap_or_default();
    println!(r#"{{"workload":"{workload}","backend":"{backend}","system":"{system}","us_per_op":{us:.2}{q}}}"#);
}

fn key(i: usize) -> i64 {
    (i as i64 * 7919) % USERS + 1
}

const SELECT_BY_KEY: &str = "SELECT id, name, age, email FROM bench_users WHERE id = ";
const SELECT_100: &str = "SELECT id, name, age, email FROM bench_users WHERE id > ";
const SELECT_EAGER_USERS: &str = "SELECT id, name, age, email FROM bench_users WHERE id <= ";
const SELECT_ORDERS_IN: &str = "SELECT id, user_id, total, note FROM bench_orders WHERE user_id IN (";

/// `SELECT … ($1, $2, …)` or `(?, ?, …)` with `n` placeholders.
fn placeholders(pg: bool, n: usize, first: usize) -> String {
    (0..n).map(|i| if pg { format!("${}", first + i) } else { "?".to_string() }).collect::<Vec<_>>().join(", ")
}

/// The ORM side of every workload, as closures the pairs below time.
struct Orm<'a> {
    db: &'a Db,
}

impl Orm<'_> {
    async fn by_key(&self, i: usize) {
        std::hint::black_box(User::get(self.db, key(i)).await.unwrap());
    }

    async fn hundred(&self, i: usize) {
        let rows = User::query()
            .filter(User::ID.gt(key(i) % (USERS - 100)))
            .order_by(User::ID.asc())
            .limit(100)
            .all(self.db)
            .await
            .unwrap();
        assert_eq!(rows.len(), 100);
    }

    async fn bulk(&self, round: usize) {
        let rows = inserts(round);
        assert_eq!(Insert::insert_all(&rows).execute(self.db).await.unwrap(), BULK_ROWS as u64);
    }

    async fn eager(&self) {
        let users = User::query().filter(User::ID.le(EAGER_USERS)).with(User::ORDERS).all(self.db).await.unwrap();
        assert_eq!(users.iter().map(|u| u.orders.get().map_or(0, Vec::len)).sum::<usize>(), 1000);
    }
}

/// How many statements one eager load issues (on a `Db` that counts them).
async fn eager_queries(url: &str) -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let counter = std::sync::Arc::new(AtomicUsize::new(0));
    let c = counter.clone();
    let db = Db::connect_with(
        url,
        Options::default().on_statement(move |_| {
            c.fetch_add(1, Ordering::Relaxed);
        }),
    )
    .await
    .unwrap();
    if url.starts_with("sqlite") {
        seed(&db).await;
    }
    let before = counter.load(Ordering::Relaxed);
    Orm { db: &db }.eager().await;
    counter.load(Ordering::Relaxed) - before
}

fn group(users: &mut [RawUser], orders: Vec<RawOrder>) {
    let mut by_user: HashMap<i64, Vec<RawOrder>> = HashMap::new();
    for o in orders {
        by_user.entry(o.user_id).or_default().push(o);
    }
    for u in users {
        u.orders = by_user.remove(&u.id).unwrap_or_default();
    }
}

fn read_sqlite_user(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawUser> {
    Ok(RawUser { id: r.get(0)?, name: r.get(1)?, age: r.get(2)?, email: r.get(3)?, orders: Vec::new() })
}

async fn sqlite_pairs(db: &Db, conn: &rusqlite::Connection) {
    let orm = Orm { db };
    let by_key = format!("{SELECT_BY_KEY}?");
    let (o, r) = measure_pair(
        20_000,
        async |i| orm.by_key(i).await,
        async |i| {
            let mut st = conn.prepare_cached(&by_key).unwrap();
            std::hint::black_box(st.query_row([key(i)], read_sqlite_user).unwrap());
        },
    )
    .await;
    report("select_by_key", "sqlite", "shoal-orm", o, None);
    report("select_by_key", "sqlite", "raw rusqlite", r, None);

    let hundred = format!("{SELECT_100}? ORDER BY id LIMIT 100");
    let (o, r) = measure_pair(
        2_000,
        async |i| orm.hundred(i).await,
        async |i| {
            let mut st = conn.prepare_cached(&hundred).unwrap();
            let rows: Vec<RawUser> = st
                .query_map([key(i) % (USERS - 100)], read_sqlite_user)
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            assert_eq!(rows.len(), 100);
        },
    )
    .await;
    report("select_100", "sqlite", "shoal-orm", o, None);
    report("select_100", "sqlite", "raw rusqlite", r, None);

    let insert_sql = format!(
        "INSERT INTO bench_inserts (id, name, age, email) VALUES {}",
        (0..BULK_CHUNK).map(|_| "(?, ?, ?, ?)").collect::<Vec<_>>().join(", ")
    );
    let (o, r) = measure_pair(
        10,
        async |i| orm.bulk(i + 1).await,
        async |i| {
            raw_bulk_sqlite(conn, &insert_sql, i + 1);
        },
    )
    .await;
    report("bulk_insert_10k", "sqlite", "shoal-orm", o, None);
    report("bulk_insert_10k", "sqlite", "raw rusqlite", r, None);

    let users_sql = format!("{SELECT_EAGER_USERS}?");
    let in_sql = format!("{SELECT_ORDERS_IN}{}) ORDER BY id", placeholders(false, EAGER_USERS as usize, 1));
    let (o, r) = measure_pair(
        500,
        async |_| orm.eager().await,
        async |_| {
            let mut st = conn.prepare_cached(&users_sql).unwrap();
            let mut users: Vec<RawUser> =
                st.query_map([EAGER_USERS], read_sqlite_user).unwrap().collect::<rusqlite::Result<_>>().unwrap();
            let ids: Vec<i64> = users.iter().map(|u| u.id).collect();
            let mut st = conn.prepare_cached(&in_sql).unwrap();
            let orders: Vec<RawOrder> = st
                .query_map(rusqlite::params_from_iter(ids.iter()), |r| {
                    Ok(RawOrder { id: r.get(0)?, user_id: r.get(1)?, total: r.get(2)?, note: r.get(3)? })
                })
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            group(&mut users, orders);
            assert_eq!(users.iter().map(|u| u.orders.len()).sum::<usize>(), 1000);
        },
    )
    .await;
    report("eager_100x10", "sqlite", "shoal-orm", o, Some(eager_queries("sqlite::memory:").await));
    report("eager_100x10", "sqlite", "raw rusqlite", r, Some(2));
}

fn read_pg_user(r: &tokio_postgres::Row) -> RawUser {
    RawUser { id: r.get(0), name: r.get(1), age: r.get(2), email: r.get(3), orders: Vec::new() }
}

async fn postgres_pairs(db: &Db, client: &tokio_postgres::Client, url: &str) {
    type Param<'a> = &'a (dyn tokio_postgres::types::ToSql + Sync);
    let orm = Orm { db };
    let by_key = client.prepare(&format!("{SELECT_BY_KEY}$1")).await.unwrap();
    let (o, r) = measure_pair(
        20_000,
        async |i| orm.by_key(i).await,
        async |i| {
            let row = client.query_one(&by_key, &[&key(i)]).await.unwrap();
            std::hint::black_box(read_pg_user(&row));
        },
    )
    .await;
    report("select_by_key", "postgres", "shoal-orm", o, None);
    report("select_by_key", "postgres", "raw tokio-postgres", r, None);

    let hundred = client.prepare(&format!("{SELECT_100}$1 ORDER BY id LIMIT 100")).await.unwrap();
    let (o, r) = measure_pair(
        2_000,
        async |i| orm.hundred(i).await,
        async |i| {
            let rows: Vec<RawUser> =
                client.query(&hundred, &[&(key(i) % (USERS - 100))]).await.unwrap().iter().map(read_pg_user).collect();
            assert_eq!(rows.len(), 100);
        },
    )
    .await;
    report("select_100", "postgres", "shoal-orm", o, None);
    report("select_100", "postgres", "raw tokio-postgres", r, None);

    let insert = client
        .prepare(&format!(
            "INSERT INTO bench_inserts (id, name, age, email) VALUES {}",
            (0..BULK_CHUNK)
                .map(|r| format!("(${}, ${}, ${}, ${})", r * 4 + 1, r * 4 + 2, r * 4 + 3, r * 4 + 4))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .await
        .unwrap();
    let (o, r) = measure_pair(
        10,
        async |i| orm.bulk(i + 1).await,
        async |i| {
            let rows = inserts(i + 1_000);
            client.batch_execute("BEGIN").await.unwrap();
            for chunk in rows.chunks(BULK_CHUNK) {
                let mut params: Vec<Param> = Vec::with_capacity(chunk.len() * 4);
                for r in chunk {
                    params.extend([&r.id as Param, &r.name, &r.age, &r.email]);
                }
                client.execute(&insert, &params).await.unwrap();
            }
            client.batch_execute("COMMIT").await.unwrap();
        },
    )
    .await;
    report("bulk_insert_10k", "postgres", "shoal-orm", o, None);
    report("bulk_insert_10k", "postgres", "raw tokio-postgres", r, None);

    let eager_users = client.prepare(&format!("{SELECT_EAGER_USERS}$1")).await.unwrap();
    let in_orders = client
        .prepare(&format!("{SELECT_ORDERS_IN}{}) ORDER BY id", placeholders(true, EAGER_USERS as usize, 1)))
        .await
        .unwrap();
    let (o, r) = measure_pair(
        500,
        async |_| orm.eager().await,
        async |_| {
            let mut users: Vec<RawUser> =
                client.query(&eager_users, &[&EAGER_USERS]).await.unwrap().iter().map(read_pg_user).collect();
            let ids: Vec<i64> = users.iter().map(|u| u.id).collect();
            let params: Vec<Param> = ids.iter().map(|i| i as Param).collect();
            let orders: Vec<RawOrder> = client
                .query(&in_orders, &params)
                .await
                .unwrap()
                .iter()
                .map(|r| RawOrder { id: r.get(0), user_id: r.get(1), total: r.get(2), note: r.get(3) })
                .collect();
            group(&mut users, orders);
            assert_eq!(users.iter().map(|u| u.orders.len()).sum::<usize>(), 1000);
        },
    )
    .await;
    report("eager_100x10", "postgres", "shoal-orm", o, Some(eager_queries(url).await));
    report("eager_100x10", "postgres", "raw tokio-postgres", r, Some(2));
}

async fn seed(db: &Db) {
    db.sync_schema(&[&User::TABLE, &Order::TABLE, &Insert::TABLE]).await.expect("schema");
    User::insert_all(&users()).execute(db).await.expect("seed users");
    Order::insert_all(&orders()).execute(db).await.expect("seed orders");
}

async fn sqlite() {
    let (db, conn) = sqlite_setup().await;
    sqlite_pairs(&db, &conn).await;
}

/// The ORM's database and the raw driver's, with the same schema and rows.
async fn sqlite_setup() -> (Db, rusqlite::Connection) {
    let db = Db::connect("sqlite::memory:").await.unwrap();
    seed(&db).await;
    // The raw driver gets its own in-memory database: the same DDL, the same rows.
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    conn.execute_batch("PRAGMA foreign_keys = ON; BEGIN").unwrap();
    for t in [&User::TABLE, &Order::TABLE, &Insert::TABLE] {
        let schema = t.to_schema();
        conn.execute_batch(&Dialect::Sqlite.create_table(&schema)).unwrap();
        for i in &schema.indexes {
            conn.execute_batch(&Dialect::Sqlite.create_index(&schema.name, i)).unwrap();
        }
    }
    for u in users() {
        conn.execute("INSERT INTO bench_users VALUES (?, ?, ?, ?)", rusqlite::params![u.id, u.name, u.age, u.email])
            .unwrap();
    }
    for o in orders() {
        conn.execute(
            "INSERT INTO bench_orders VALUES (?, ?, ?, ?)",
            rusqlite::params![o.id, o.user_id, o.total, o.note],
        )
        .unwrap();
    }
    conn.execute_batch("COMMIT").unwrap();
    (db, conn)
}

/// A fresh schema for one run: the admin client, the schema's name, and a
/// URL whose connections use it.
async fn postgres_schema(base: &str) -> (tokio_postgres::Client, String, String) {
    let schema = format!("orm_compare_{}", std::process::id());
    let (admin, conn) = tokio_postgres::connect(base, tokio_postgres::NoTls).await.expect("PostgreSQL");
    tokio::spawn(conn);
    admin.batch_execute(&format!("CREATE SCHEMA {schema}")).await.unwrap();
    // Plain TCP for every contender: the raw driver uses NoTls, and the ORM
    // would otherwise take TLS by libpq's default sslmode=prefer.
    let url = format!("postgres://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}&sslmode=disable");
    (admin, schema, url)
}

async fn postgres(base: &str) {
    let (admin, schema, url) = postgres_schema(base).await;
    let db = Db::connect(&url).await.unwrap();
    seed(&db).await;
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    postgres_pairs(&db, &client, &url).await;
    admin.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).await.unwrap();
}

/// Merges result files into the Markdown table of docs/benchmarks.md. A
/// measurement that appears in several files (run.sh runs each bench more
/// than once, alternating) is reported as its median.
fn table(files: &[String]) {
    let mut rows: Vec<serde_json::Value> = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{f}: {e}"));
        rows.extend(text.lines().filter_map(|l| serde_json::from_str(l).ok()));
    }
    let matching = |w: &str, b: &str, s: &str| -> Vec<&serde_json::Value> {
        rows.iter()
            .filter(|r| {
                r["workload"] == w && r["backend"] == b && r["system"].as_str().is_some_and(|x| x.starts_with(s))
            })
            .collect()
    };
    let median = |w: &str, b: &str, s: &str| -> Option<f64> {
        let mut v: Vec<f64> = matching(w, b, s).iter().filter_map(|r| r["us_per_op"].as_f64()).collect();
        v.sort_by(f64::total_cmp);
        (!v.is_empty()).then(|| v[v.len() / 2])
    };
    let queries = |w: &str, b: &str, s: &str| -> String {
        matching(w, b, s).first().and_then(|r| r["queries"].as_u64()).map_or("—".into(), |q| q.to_string())
    };
    let fmt = |v: Option<f64>| v.map_or("—".into(), |x| if x >= 100.0 { format!("{x:.0}") } else { format!("{x:.2}") });
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => format!("{:.2}×", a / b),
        _ => "—".into(),
    };
    println!("| workload | backend | shoal-orm µs | raw driver µs | SeaORM µs | Diesel µs | shoal-orm ÷ raw | shoal-orm ÷ SeaORM | queries: shoal-orm / raw / SeaORM / Diesel |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---|");
    for backend in ["sqlite", "postgres"] {
        for w in ["select_by_key", "select_100", "bulk_insert_10k", "eager_100x10"] {
            let (orm, raw, sea, diesel) = (
                median(w, backend, "shoal-orm"),
                median(w, backend, "raw"),
                median(w, backend, "SeaORM"),
                median(w, backend, "Diesel"),
            );
            let q = if w == "eager_100x10" {
                format!(
                    "{} / {} / {} / {}",
                    queries(w, backend, "shoal-orm"),
                    queries(w, backend, "raw"),
                    queries(w, backend, "SeaORM"),
                    queries(w, backend, "Diesel")
                )
            } else {
                String::new()
            };
            println!(
                "| {w} | {backend} | {} | {} | {} | {} | {} | {} | {q} |",
                fmt(orm),
                fmt(raw),
                fmt(sea),
                fmt(diesel),
                ratio(orm, raw),
                ratio(orm, sea)
            );
        }
    }
}

/// One side of one workload, `iters` times, inside [`profile_loop`] so that
/// `valgrind --tool=callgrind --toggle-collect=orm_compare::profile_loop`
/// counts only the measured calls (instruction counts do not care how
/// loaded the machine is):
///
/// ```sh
/// valgrind --tool=callgrind --toggle-collect='orm_compare::profile_loop' \
///     target/release/orm-compare --profile sqlite select_by_key orm 20000
/// ```
fn profile(rt: &tokio::runtime::Runtime, args: &[String]) {
    let [backend, workload, side, iters] = args else {
        panic!("--profile <sqlite|postgres> <select_by_key|select_100|bulk_insert_10k|eager_100x10> <orm|raw> <iters>")
    };
    let iters: usize = iters.parse().expect("iterations");
    let orm_side = match side.as_str() {
        "orm" => true,
        "raw" => false,
        other => panic!("side {other}: orm or raw"),
    };
    let w = workload.clone();
    match backend.as_str() {
        "sqlite" => {
            let (db, conn) = rt.block_on(sqlite_setup());
            let orm = Orm { db: &db };
            let by_key = format!("{SELECT_BY_KEY}?");
            let hundred = format!("{SELECT_100}? ORDER BY id LIMIT 100");
            let users_sql = format!("{SELECT_EAGER_USERS}?");
            let in_sql = format!("{SELECT_ORDERS_IN}{}) ORDER BY id", placeholders(false, EAGER_USERS as usize, 1));
            let insert_sql = format!(
                "INSERT INTO bench_inserts (id, name, age, email) VALUES {}",
                (0..BULK_CHUNK).map(|_| "(?, ?, ?, ?)").collect::<Vec<_>>().join(", ")
            );
            profile_loop(rt, async || {
                for i in 0..iters {
                    match (w.as_str(), orm_side) {
                        ("select_by_key", true) => orm.by_key(i).await,
                        ("select_by_key", false) => {
                            let mut st = conn.prepare_cached(&by_key).unwrap();
                            std::hint::black_box(st.query_row([key(i)], read_sqlite_user).unwrap());
                        }
                        ("select_100", true) => orm.hundred(i).await,
                        ("select_100", false) => {
                            let mut st = conn.prepare_cached(&hundred).unwrap();
                            let rows: Vec<RawUser> = st
                                .query_map([key(i) % (USERS - 100)], read_sqlite_user)
                                .unwrap()
                                .collect::<rusqlite::Result<_>>()
                                .unwrap();
                            assert_eq!(rows.len(), 100);
                        }
                        ("eager_100x10", true) => orm.eager().await,
                        ("eager_100x10", false) => {
                            let mut st = conn.prepare_cached(&users_sql).unwrap();
                            let mut users: Vec<RawUser> = st
                                .query_map([EAGER_USERS], read_sqlite_user)
                                .unwrap()
                                .collect::<rusqlite::Result<_>>()
                                .unwrap();
                            let ids: Vec<i64> = users.iter().map(|u| u.id).collect();
                            let mut st = conn.prepare_cached(&in_sql).unwrap();
                            let orders: Vec<RawOrder> = st
                                .query_map(rusqlite::params_from_iter(ids.iter()), |r| {
                                    Ok(RawOrder {
                                        id: r.get(0)?,
                                        user_id: r.get(1)?,
                                        total: r.get(2)?,
                                        note: r.get(3)?,
                                    })
                                })
                                .unwrap()
                                .collect::<rusqlite::Result<_>>()
                                .unwrap();
                            group(&mut users, orders);
                        }
                        ("bulk_insert_10k", true) => orm.bulk(i + 1).await,
                        ("bulk_insert_10k", false) => {
                            raw_bulk_sqlite(&conn, &insert_sql, i + 1);
                        }
                        (other, _) => panic!("no sqlite profile for {other} on this side"),
                    }
                }
            });
        }
        "postgres" => {
            let pg = std::env::var("BENCH_PG")
                .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".into());
            let (admin, schema, url) = rt.block_on(postgres_schema(&pg));
            let db = rt.block_on(async {
                let db = Db::connect(&url).await.unwrap();
                seed(&db).await;
                db
            });
            let client = rt.block_on(async {
                let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
                tokio::spawn(conn);
                client
            });
            let orm = Orm { db: &db };
            let by_key = rt.block_on(client.prepare(&format!("{SELECT_BY_KEY}$1"))).unwrap();
            let hundred = rt.block_on(client.prepare(&format!("{SELECT_100}$1 ORDER BY id LIMIT 100"))).unwrap();
            profile_loop(rt, async || {
                for i in 0..iters {
                    match (w.as_str(), orm_side) {
                        ("select_by_key", true) => orm.by_key(i).await,
                        ("select_by_key", false) => {
                            let row = client.query_one(&by_key, &[&key(i)]).await.unwrap();
                            std::hint::black_box(read_pg_user(&row));
                        }
                        ("select_100", true) => orm.hundred(i).await,
                        ("select_100", false) => {
                            let rows: Vec<RawUser> = client
                                .query(&hundred, &[&(key(i) % (USERS - 100))])
                                .await
                                .unwrap()
                                .iter()
                                .map(read_pg_user)
                                .collect();
                            assert_eq!(rows.len(), 100);
                        }
                        ("eager_100x10", true) => orm.eager().await,
                        (other, _) => panic!("no postgres profile for {other} on this side"),
                    }
                }
            });
            rt.block_on(admin.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))).unwrap();
        }
        other => panic!("backend {other}: sqlite or postgres"),
    }
}

/// The measured part of `--profile` (a named, never-inlined function for
/// callgrind's `--toggle-collect`).
#[inline(never)]
fn profile_loop(rt: &tokio::runtime::Runtime, mut body: impl AsyncFnMut()) {
    rt.block_on(body());
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    match args.first().map(String::as_str) {
        Some("--table") => table(&args[1..]),
        Some("--profile") => profile(&rt, &args[1..]),
        _ => rt.block_on(async {
            sqlite().await;
            let pg = std::env::var("BENCH_PG")
                .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".into());
            postgres(&pg).await;
        }),
    }
}
