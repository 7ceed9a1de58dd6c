//! The workloads of `../orm-compare` with SeaORM 1.1 (SQLite and
//! PostgreSQL) and Diesel 2.2 (SQLite), printing the same JSON lines.
//!
//! Same tables, rows, chunk sizes and single-operation, current-thread
//! timing as orm-compare; see its header for the workloads.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection, EntityTrait,
    LoaderTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};

mod user {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "bench_users")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: i64,
        pub name: String,
        pub age: i32,
        pub email: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {
        #[sea_orm(has_many = "super::order::Entity")]
        Order,
    }

    impl Related<super::order::Entity> for Entity {
        fn to() -> RelationDef {
            Relation::Order.def()
        }
    }

    impl ActiveModelBehavior for ActiveModel {}
}

mod order {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "bench_orders")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: i64,
        pub user_id: i64,
        pub total: i64,
        pub note: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {
        #[sea_orm(belongs_to = "super::user::Entity", from = "Column::UserId", to = "super::user::Column::Id")]
        User,
    }

    impl Related<super::user::Entity> for Entity {
        fn to() -> RelationDef {
            Relation::User.def()
        }
    }

    impl ActiveModelBehavior for ActiveModel {}
}

mod insert {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "bench_inserts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: i64,
        pub name: String,
        pub age: i32,
        pub email: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

const USERS: i64 = 10_000;
const EAGER_USERS: i64 = 100;
const ORDERS_PER_USER: i64 = 10;
const BULK_ROWS: i64 = 10_000;
const BULK_CHUNK: usize = 1_000;

/// The DDL shoal-orm generates for the same models (SQLite spelling; the
/// PostgreSQL spelling differs only in DOUBLE/BYTEA, unused here).
const DDL: [&str; 4] = [
    "CREATE TABLE bench_users (id BIGINT NOT NULL, name VARCHAR(100) NOT NULL, age INTEGER NOT NULL, email VARCHAR(100), PRIMARY KEY (id))",
    "CREATE TABLE bench_orders (id BIGINT NOT NULL, user_id BIGINT NOT NULL, total BIGINT NOT NULL, note VARCHAR(100), PRIMARY KEY (id))",
    "CREATE INDEX bench_orders_user_id_idx ON bench_orders (user_id)",
    "CREATE TABLE bench_inserts (id BIGINT NOT NULL, name VARCHAR(100) NOT NULL, age INTEGER NOT NULL, email VARCHAR(100), PRIMARY KEY (id))",
];

fn key(i: usize) -> i64 {
    (i as i64 * 7919) % USERS + 1
}

fn report(workload: &str, backend: &str, system: &str, us: f64, queries: Option<usize>) {
    let q = queries.map(|n| format!(",\"queries\":{n}")).unwrap_or_default();
    println!(r#"{{"workload":"{workload}","backend":"{backend}","system":"{system}","us_per_op":{us:.2}{q}}}"#);
}

/// Microseconds per call: the median over blocks of 2% of the calls of each
/// block's mean, as orm-compare measures (a preempted block is an outlier).
async fn measure(iters: usize, mut op: impl AsyncFnMut(usize)) -> f64 {
    let block = (iters / 50).max(1);
    for i in iters..iters + block {
        op(i).await;
    }
    let mut per_block = Vec::new();
    let mut done = 0;
    while done < iters {
        let n = block.min(iters - done);
        let start = Instant::now();
        for i in done..done + n {
            op(i).await;
        }
        per_block.push(start.elapsed().as_secs_f64() * 1e6 / n as f64);
        done += n;
    }
    median(per_block)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn user_row(i: i64) -> user::ActiveModel {
    user::ActiveModel {
        id: Set(i),
        name: Set(format!("user {i}")),
        age: Set((i % 80) as i32),
        email: Set((i % 3 != 0).then(|| format!("u{i}@example.com"))),
    }
}

fn insert_rows(round: usize) -> Vec<insert::ActiveModel> {
    (1..=BULK_ROWS)
        .map(|i| insert::ActiveModel {
            id: Set(i + round as i64 * 1_000_000),
            name: Set(format!("row {i}")),
            age: Set((i % 50) as i32),
            email: Set(None),
        })
        .collect()
}

async fn seed(db: &DatabaseConnection) {
    for ddl in DDL {
        db.execute_unprepared(ddl).await.unwrap();
    }
    let txn = db.begin().await.unwrap();
    let users: Vec<user::ActiveModel> = (1..=USERS).map(user_row).collect();
    for chunk in users.chunks(BULK_CHUNK) {
        user::Entity::insert_many(chunk.to_vec()).exec(&txn).await.unwrap();
    }
    let orders: Vec<order::ActiveModel> = (1..=EAGER_USERS)
        .flat_map(|u| {
            (0..ORDERS_PER_USER).map(move |k| order::ActiveModel {
                id: Set(u * 100 + k),
                user_id: Set(u),
                total: Set(k * 10),
                note: Set((k % 2 == 0).then(|| "gift".to_string())),
            })
        })
        .collect();
    order::Entity::insert_many(orders).exec(&txn).await.unwrap();
    txn.commit().await.unwrap();
}

async fn seaorm(url: &str, backend: &str, max_connections: u32) {
    let mut opts = ConnectOptions::new(url);
    opts.max_connections(max_connections).sqlx_logging(false);
    let mut db = Database::connect(opts).await.expect("connect");
    seed(&db).await;
    let statements = Arc::new(AtomicUsize::new(0));
    let counter = statements.clone();
    db.set_metric_callback(move |_| {
        counter.fetch_add(1, Ordering::Relaxed);
    });
    let db = &db;

    let us = measure(20_000, async |i| {
        let u = user::Entity::find_by_id(key(i)).one(db).await.unwrap();
        std::hint::black_box(u.unwrap());
    })
    .await;
    report("select_by_key", backend, "SeaORM 1.1", us, None);

    let us = measure(2_000, async |i| {
        let rows = user::Entity::find()
            .filter(user::Column::Id.gt(key(i) % (USERS - 100)))
            .order_by_asc(user::Column::Id)
            .limit(100)
            .all(db)
            .await
            .unwrap();
        assert_eq!(rows.len(), 100);
    })
    .await;
    report("select_100", backend, "SeaORM 1.1", us, None);

    let us = measure(10, async |i| {
        let rows = insert_rows(i + 1);
        let txn = db.begin().await.unwrap();
        for chunk in rows.chunks(BULK_CHUNK) {
            insert::Entity::insert_many(chunk.to_vec()).exec(&txn).await.unwrap();
        }
        txn.commit().await.unwrap();
    })
    .await;
    report("bulk_insert_10k", backend, "SeaORM 1.1", us, None);

    let eager = async || {
        let users = user::Entity::find().filter(user::Column::Id.lte(EAGER_USERS)).all(db).await.unwrap();
        let orders = users.load_many(order::Entity, db).await.unwrap();
        assert_eq!(orders.iter().map(Vec::len).sum::<usize>(), 1000);
        std::hint::black_box((users, orders));
    };
    let before = statements.load(Ordering::Relaxed);
    eager().await;
    let queries = statements.load(Ordering::Relaxed) - before;
    let us = measure(500, async |_| eager().await).await;
    report("eager_100x10", backend, "SeaORM 1.1", us, Some(queries));
}

mod diesel_bench {
    use diesel::prelude::*;

    diesel::table! {
        bench_users (id) {
            id -> BigInt,
            name -> Text,
            age -> Integer,
            email -> Nullable<Text>,
        }
    }

    diesel::table! {
        bench_orders (id) {
            id -> BigInt,
            user_id -> BigInt,
            total -> BigInt,
            note -> Nullable<Text>,
        }
    }

    diesel::table! {
        bench_inserts (id) {
            id -> BigInt,
            name -> Text,
            age -> Integer,
            email -> Nullable<Text>,
        }
    }

    diesel::joinable!(bench_orders -> bench_users (user_id));
    diesel::allow_tables_to_appear_in_same_query!(bench_users, bench_orders);

    #[derive(Queryable, Selectable, Identifiable, Insertable, Debug, Clone)]
    #[diesel(table_name = bench_users)]
    pub struct User {
        pub id: i64,
        pub name: String,
        pub age: i32,
        pub email: Option<String>,
    }

    #[derive(Queryable, Selectable, Identifiable, Associations, Insertable, Debug, Clone)]
    #[diesel(belongs_to(User))]
    #[diesel(table_name = bench_orders)]
    pub struct Order {
        pub id: i64,
        pub user_id: i64,
        pub total: i64,
        pub note: Option<String>,
    }

    #[derive(Insertable)]
    #[diesel(table_name = bench_inserts)]
    pub struct Insert {
        pub id: i64,
        pub name: String,
        pub age: i32,
        pub email: Option<String>,
    }

    pub fn run() {
        use super::*;
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        for ddl in DDL {
            diesel::sql_query(ddl).execute(&mut conn).unwrap();
        }
        let users: Vec<User> = (1..=USERS)
            .map(|i| User {
                id: i,
                name: format!("user {i}"),
                age: (i % 80) as i32,
                email: (i % 3 != 0).then(|| format!("u{i}@example.com")),
            })
            .collect();
        conn.transaction::<_, diesel::result::Error, _>(|c| {
            for chunk in users.chunks(BULK_CHUNK) {
                diesel::insert_into(bench_users::table).values(chunk).execute(c)?;
            }
            let orders: Vec<Order> = (1..=EAGER_USERS)
                .flat_map(|u| {
                    (0..ORDERS_PER_USER).map(move |k| Order {
                        id: u * 100 + k,
                        user_id: u,
                        total: k * 10,
                        note: (k % 2 == 0).then(|| "gift".to_string()),
                    })
                })
                .collect();
            diesel::insert_into(bench_orders::table).values(&orders).execute(c)?;
            Ok(())
        })
        .unwrap();

        let time = |iters: usize, op: &mut dyn FnMut(usize)| {
            let block = (iters / 50).max(1);
            for i in iters..iters + block {
                op(i);
            }
            let mut per_block = Vec::new();
            let mut done = 0;
            while done < iters {
                let n = block.min(iters - done);
                let start = std::time::Instant::now();
                for i in done..done + n {
                    op(i);
                }
                per_block.push(start.elapsed().as_secs_f64() * 1e6 / n as f64);
                done += n;
            }
            median(per_block)
        };
        let us = time(20_000, &mut |i| {
            let u: User = bench_users::table.find(key(i)).select(User::as_select()).first(&mut conn).unwrap();
            std::hint::black_box(u);
        });
        report("select_by_key", "sqlite", "Diesel 2.2", us, None);
        let us = time(2_000, &mut |i| {
            let rows: Vec<User> = bench_users::table
                .filter(bench_users::id.gt(key(i) % (USERS - 100)))
                .order(bench_users::id.asc())
                .limit(100)
                .select(User::as_select())
                .load(&mut conn)
                .unwrap();
            assert_eq!(rows.len(), 100);
        });
        report("select_100", "sqlite", "Diesel 2.2", us, None);
        let us = time(10, &mut |i| {
            let rows: Vec<Insert> = (1..=BULK_ROWS)
                .map(|k| Insert {
                    id: k + (i as i64 + 1) * 1_000_000,
                    name: format!("row {k}"),
                    age: (k % 50) as i32,
                    email: None,
                })
                .collect();
            conn.transaction::<_, diesel::result::Error, _>(|c| {
                for chunk in rows.chunks(BULK_CHUNK) {
                    diesel::insert_into(bench_inserts::table).values(chunk).execute(c)?;
                }
                Ok(())
            })
            .unwrap();
        });
        report("bulk_insert_10k", "sqlite", "Diesel 2.2", us, None);
        let us = time(500, &mut |_| {
            let users: Vec<User> = bench_users::table
                .filter(bench_users::id.le(EAGER_USERS))
                .select(User::as_select())
                .load(&mut conn)
                .unwrap();
            let orders: Vec<Order> = Order::belonging_to(&users).select(Order::as_select()).load(&mut conn).unwrap();
            let grouped: Vec<(User, Vec<Order>)> =
                orders.grouped_by(&users).into_iter().zip(users).map(|(o, u)| (u, o)).collect();
            assert_eq!(grouped.iter().map(|(_, o)| o.len()).sum::<usize>(), 1000);
        });
        report("eager_100x10", "sqlite", "Diesel 2.2", us, Some(2));
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    seaorm("sqlite::memory:", "sqlite", 1).await;
    diesel_bench::run();
    let base = std::env::var("BENCH_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("seaorm_compare_{}", std::process::id());
    let admin = Database::connect(base.as_str()).await.expect("PostgreSQL");
    admin.execute_unprepared(&format!("CREATE SCHEMA {schema}")).await.unwrap();
    seaorm(&format!("{base}?options=-csearch_path%3D{schema}"), "postgres", 10).await;
    admin.execute_unprepared(&format!("DROP SCHEMA {schema} CASCADE")).await.unwrap();
}
