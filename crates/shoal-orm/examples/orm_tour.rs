//! A tour of shoal-orm: models, queries, eager loading, query plans,
//! transactions, raw SQL and errors.
//!
//! ```sh
//! cargo run -p shoal-orm --example orm_tour                     # embedded SQLite, no set-up
//! cargo run -p shoal-orm --example orm_tour -- postgres://postgres@127.0.0.1/test
//! cargo run -p shoal-orm --example orm_tour -- shoal://shoal@127.0.0.1:5433/shoal
//! ```
//!
//! It creates `tour_*` tables, works with them and drops them again.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use shoal_orm::prelude::*;

#[derive(Model, Clone, Debug, Default)]
#[model(table = "tour_users", shard_key = "id")]
struct User {
    #[model(primary_key, auto_increment)]
    id: i64,
    #[model(index, max_length = 100)]
    name: String,
    age: i32,
    #[model(unique, max_length = 200)]
    email: Option<String>,
    #[model(has_many(foreign_key = user_id))]
    orders: HasMany<Order>,
}

#[derive(Model, Clone, Debug, Default)]
#[model(table = "tour_orders", check(name = "tour_orders_total_nonneg", sql = "total >= 0"))]
struct Order {
    #[model(primary_key, auto_increment)]
    id: i64,
    #[model(index)]
    user_id: i64,
    total: i64,
    #[model(belongs_to(foreign_key = user_id, on_delete = "cascade"))]
    user: BelongsTo<User>,
    #[model(has_many(foreign_key = order_id))]
    items: HasMany<Item>,
}

#[derive(Model, Clone, Debug, Default)]
#[model(table = "tour_items")]
struct Item {
    #[model(primary_key, auto_increment)]
    id: i64,
    #[model(index)]
    order_id: i64,
    #[model(max_length = 100)]
    sku: String,
    #[model(belongs_to(foreign_key = order_id, on_delete = "cascade"))]
    order: BelongsTo<Order>,
}

/// A projection target: fields match the selected tuple's types.
#[derive(FromRow, Debug)]
struct Spend {
    user_id: i64,
    orders: i64,
    total: Option<i64>,
}

#[tokio::main]
async fn main() -> shoal_orm::Result<()> {
    let url = std::env::args().nth(1).unwrap_or_else(|| "sqlite::memory:".to_string());
    let statements = Arc::new(AtomicUsize::new(0));
    let counter = statements.clone();
    let db = Db::connect_with(
        &url,
        Options::default().on_statement(move |_| {
            counter.fetch_add(1, Ordering::Relaxed);
        }),
    )
    .await?;
    println!("connected to {url} ({})", db.dialect().name());
    let tables = [&User::TABLE, &Order::TABLE, &Item::TABLE];
    db.sync_schema(&tables).await?;

    println!("\n-- save, find, update");
    let mut alice = User { name: "Alice".into(), age: 30, ..Default::default() };
    alice.save(&db).await?; // INSERT; the generated id is written back
    let mut bob = User { name: "Bob".into(), age: 17, email: Some("bob@example.com".into()), ..Default::default() };
    bob.save(&db).await?;
    alice.age = 31;
    alice.save(&db).await?; // upsert on the primary key
    let found = User::get(&db, alice.id).await?;
    println!("found {} (age {})", found.name, found.age);
    let mut tracked = found.track();
    tracked.email = Some("alice@example.com".into());
    println!("changed: {:?}", tracked.changed_columns());
    tracked.save(&db).await?; // UPDATE of the changed column only

    println!("\n-- bulk insert and typed queries");
    let mut orders = Vec::new();
    for (user, total) in [(alice.id, 120), (alice.id, 80), (bob.id, 15)] {
        orders.push(Order { user_id: user, total, ..Default::default() });
    }
    Order::insert_all(&orders).execute(&db).await?;
    let adults = User::query().filter(User::AGE.gt(18)).order_by(User::NAME.asc()).limit(10).all(&db).await?;
    println!("adults: {:?}", adults.iter().map(|u| &u.name).collect::<Vec<_>>());
    let big = Order::query()
        .join(Order::USER)
        .filter(User::NAME.starts_with("Al").and(Order::TOTAL.ge(100)))
        .count(&db)
        .await?;
    println!("Alice's big orders: {big}");
    let spend = Order::query()
        .group_by(Order::USER_ID)
        .select((Order::USER_ID, count_all(), Order::TOTAL.sum()))
        .order_by(Order::USER_ID.asc())
        .into_struct::<Spend>()
        .all(&db)
        .await?;
    for s in &spend {
        println!("user {} placed {} orders worth {:?}", s.user_id, s.orders, s.total);
    }

    println!("\n-- eager loading: one query per level, never N+1");
    for o in Order::query().all(&db).await? {
        Item { order_id: o.id, sku: format!("sku-{}", o.id), ..Default::default() }.save(&db).await?;
    }
    let before = statements.load(Ordering::Relaxed);
    let users = User::query().with(User::ORDERS.with(Order::ITEMS)).all(&db).await?;
    let used = statements.load(Ordering::Relaxed) - before;
    for u in &users {
        let orders = u.orders.get().map(Vec::as_slice).unwrap_or_default();
        let items: usize = orders.iter().map(|o| o.items.get().map_or(0, Vec::len)).sum();
        println!("{}: {} orders, {} items", u.name, orders.len(), items);
    }
    println!("{} users, their orders and items in {used} queries", users.len());

    println!("\n-- the plan of a query (on Shoal, first the shards it reaches)");
    for line in User::query().filter(User::ID.eq(alice.id)).explain(&db).await? {
        println!("  {line}");
    }

    println!("\n-- transactions: commit on Ok, roll back on Err");
    let result = db
        .transaction(|tx| async move {
            Order { user_id: bob.id, total: 5, ..Default::default() }.save(&tx).await?;
            Order { user_id: bob.id, total: -1, ..Default::default() }.save(&tx).await?; // CHECK fails
            Ok(())
        })
        .await;
    if let Err(e) = &result {
        println!("rolled back: {} ({})", e, e.sqlstate());
    }
    println!("Bob still has {} order(s)", Order::query().filter(Order::USER_ID.eq(bob.id)).count(&db).await?);

    println!("\n-- typed errors and raw SQL with bound values");
    let mut twin = User { name: "Twin".into(), email: Some("bob@example.com".into()), ..Default::default() };
    match twin.save(&db).await {
        Err(Error::UniqueViolation { constraint, .. }) => println!("unique violation on {constraint:?}"),
        other => println!("unexpected: {other:?}"),
    }
    let name = "Robert'); DROP TABLE tour_users;--";
    let n: i64 = sql!("SELECT COUNT(*) FROM tour_users WHERE name = {name}").scalar(&db).await?;
    println!("users named {name:?}: {n} (the text was bound, not spliced)");

    sql!("DROP TABLE tour_items").execute(&db).await?;
    sql!("DROP TABLE tour_orders").execute(&db).await?;
    sql!("DROP TABLE tour_users").execute(&db).await?;
    println!("\ndone");
    Ok(())
}
