//! Eager loading: one batched query per relation level, never N+1.

use shoal_orm::prelude::*;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::harness::{TestDb, STRICT_LIMIT};
use crate::models::*;

fn queries_on(sent: &[String], table: &str) -> usize {
    sent.iter().filter(|s| s.contains(&format!("FROM \"{table}\"")) || s.contains(&format!("FROM `{table}`"))).count()
}

/// 5 users; users 1-3 have 2 orders each with 2 items each; orders are
/// tagged; users 1 and 2 have profiles.
///
/// Strict mode counts writes too, so rows whose generated keys the seed
/// needs are inserted one at a time, each as its own unit of work (a seed
/// is set-up, not a request); the rest go in bulk.
async fn seed(db: &Db) -> Vec<User> {
    let mut users = Vec::new();
    for i in 1..=5 {
        let mut u = user(&format!("user{i}"), 20 + i);
        u.insert(&db.unit_of_work()).await.unwrap();
        users.push(u);
    }
    for (id, label) in [(1, "gift"), (2, "rush"), (3, "fragile")] {
        Tag { id, label: label.into() }.insert(&db.unit_of_work()).await.unwrap();
    }
    let (mut items, mut tags) = (Vec::new(), Vec::new());
    for u in &users[..3] {
        for k in 0..2 {
            let mut o = order(u.id, 100 * u.id + k);
            o.insert(&db.unit_of_work()).await.unwrap();
            for s in 0..2 {
                items.push(Item {
                    order_id: o.id,
                    sku: format!("sku-{}-{s}", o.id),
                    qty: s + 1,
                    price: 2.5,
                    ..Default::default()
                });
            }
            tags.push(OrderTag { order_id: o.id, tag_id: 1 + (k % 3), ..Default::default() });
            tags.push(OrderTag { order_id: o.id, tag_id: 3, ..Default::default() });
        }
    }
    Item::insert_all(&items).execute(db).await.unwrap();
    OrderTag::insert_all(&tags).execute(db).await.unwrap();
    for u in &users[..2] {
        Profile { user_id: u.id, bio: Some(format!("bio of {}", u.name)), ..Default::default() }
            .insert(&db.unit_of_work())
            .await
            .unwrap();
    }
    users
}

/// A second `Db` on the test's database with other options, seeded when it
/// is a different database (SQLite in memory).
async fn sibling(t: &TestDb, options: Options) -> Db {
    let db = t.connect_with(options).await;
    db.sync_schema(&all_tables()).await.unwrap();
    if !User::query().exists(&db.unit_of_work()).await.unwrap() {
        seed(&db.unit_of_work()).await;
    }
    db
}

pub async fn eager_loading_one_query_per_level(t: TestDb) {
    let t = t.with_schema().await;
    let db = &t.db;
    seed(db).await;

    eprintln!("without .with() a relation is not loaded, and reading it costs nothing");
    let plain = User::query().all(db).await.unwrap();
    assert!(plain.iter().all(|u| u.orders.get().is_none() && !u.profile.is_loaded()));

    eprintln!("has_many: 2 queries for 5 users, never one per user");
    let mark = t.mark();
    let users = User::query().order_by(User::ID.asc()).with(User::ORDERS).all(db).await.unwrap();
    let sent = t.since(mark);
    assert_eq!(sent.len(), 2, "{sent:#?}");
    let counts: Vec<usize> = users.iter().map(|u| u.orders.get().unwrap().len()).collect();
    assert_eq!(counts, vec![2, 2, 2, 0, 0]);
    assert!(users.iter().all(|u| u.orders.get().unwrap().iter().all(|o| o.user_id == u.id)));

    eprintln!("nested orders → items: one query per level (3)");
    let mark = t.mark();
    let users = User::query().with(User::ORDERS.with(Order::ITEMS)).all(db).await.unwrap();
    let sent = t.since(mark);
    assert_eq!(sent.len(), 3, "{sent:#?}");
    assert_eq!((queries_on(&sent, "users"), queries_on(&sent, "orders"), queries_on(&sent, "items")), (1, 1, 1));
    let items: usize = users.iter().flat_map(|u| u.orders.get().unwrap()).map(|o| o.items.get().unwrap().len()).sum();
    assert_eq!(items, 12);

    eprintln!("several relations and levels at once: one query each");
    let mark = t.mark();
    let users = User::query()
        .with(User::PROFILE)
        .with(User::ORDERS.with(Order::ITEMS).with(Order::TAGS).with(Order::USER))
        .all(db)
        .await
        .unwrap();
    assert_eq!(t.since(mark).len(), 1 + 1 + 1 + 1 + 1 + 1, "users, profiles, orders, items, tags, users again");
    let with_profile: Vec<bool> = users.iter().map(|u| u.profile.get().unwrap().is_some()).collect();
    assert_eq!(with_profile.iter().filter(|p| **p).count(), 2);
    for u in &users {
        for o in u.orders.get().unwrap() {
            assert_eq!(o.user.get().unwrap().as_ref().map(|x| x.id), Some(u.id), "belongs_to back to the parent");
            let labels: Vec<&str> = o.tags.get().unwrap().iter().map(|t| t.label.as_str()).collect();
            assert_eq!(labels.len(), 2, "{labels:?}");
            assert!(labels.contains(&"fragile"));
        }
    }

    eprintln!("belongs_to from the child side shares one parent row among many children");
    let mark = t.mark();
    let items = Item::query().with(Item::ORDER.with(Order::USER)).all(db).await.unwrap();
    assert_eq!(t.since(mark).len(), 3);
    assert_eq!(items.len(), 12);
    for it in &items {
        let o = it.order.get().unwrap().as_ref().unwrap();
        assert_eq!(o.id, it.order_id);
        assert!(o.user.get().unwrap().is_some());
    }
}

pub async fn eager_loading_chunks_and_edge_cases(t: TestDb) {
    let t = t.with_schema().await;
    seed(&t.db).await;
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    let chunked = sibling(
        &t,
        Options::default().strict(STRICT_LIMIT).eager_chunk_size(2).on_statement(move |_| {
            counter.fetch_add(1, Ordering::Relaxed);
        }),
    )
    .await;

    eprintln!("key sets larger than the chunk size are split into several IN queries");
    let before = sent.load(Ordering::Relaxed);
    let users = User::query().with(User::ORDERS).all(&chunked).await.unwrap();
    assert_eq!(sent.load(Ordering::Relaxed) - before, 1 + 3, "5 user keys in chunks of 2");
    assert_eq!(users.iter().map(|u| u.orders.get().unwrap().len()).sum::<usize>(), 6);
    let db = &t.db;

    eprintln!("no parents: no relation query at all");
    let mark = t.mark();
    let none = User::query().filter(User::AGE.gt(1000)).with(User::ORDERS).all(db).await.unwrap();
    assert!(none.is_empty());
    assert_eq!(t.since(mark).len(), 1);

    eprintln!("a parent with no children gets an empty, loaded list");
    let lonely =
        User::query().filter(User::NAME.eq("user5")).with(User::ORDERS).with(User::PROFILE).one(db).await.unwrap();
    assert_eq!(lonely.orders.get().map(Vec::len), Some(0));
    assert_eq!(lonely.profile.get(), Some(&None));

    eprintln!("first/one load relations too, for the one row");
    let first =
        User::query().order_by(User::ID.asc()).with(User::ORDERS.with(Order::ITEMS)).first(db).await.unwrap().unwrap();
    assert_eq!(first.orders.get().unwrap().len(), 2);
    assert!(first.orders.get().unwrap().iter().all(|o| o.items.get().unwrap().len() == 2));

    eprintln!("eager loading inside a transaction runs on the transaction's connection");
    let n = db
        .transaction(|tx| async move {
            let mut o = order(User::query().filter(User::NAME.eq("user4")).one(&tx).await?.id, 1);
            o.insert(&tx).await?;
            let users = User::query().filter(User::NAME.eq("user4")).with(User::ORDERS).all(&tx).await?;
            Ok(users[0].orders.get().map(Vec::len))
        })
        .await
        .unwrap();
    assert_eq!(n, Some(1));
}

pub async fn strict_mode_names_the_repeated_shape(t: TestDb) {
    let t = t.with_schema().await;
    seed(&t.db).await;
    let strict = sibling(&t, Options::default().strict(2).eager_chunk_size(1)).await;
    let db = strict.unit_of_work();

    eprintln!("an N+1 loop fails on the third identical query, naming it");
    let users = User::query().order_by(User::ID.asc()).all(&db).await.unwrap();
    let mut failure = None;
    for u in &users {
        if let Err(e) = Order::query().filter(Order::USER_ID.eq(u.id)).all(&db).await {
            failure = Some(e);
            break;
        }
    }
    match failure {
        Some(Error::RepeatedQuery { shape, count, limit }) => {
            assert!(shape.contains("orders") && shape.contains("user_id"), "{shape}");
            assert_eq!((count, limit), (3, 2));
        }
        other => panic!("expected RepeatedQuery, got {other:?}"),
    }

    eprintln!("eager loading in many chunks is exempt; a new unit of work starts afresh");
    let fresh = strict.unit_of_work();
    let users = User::query().with(User::ORDERS.with(Order::ITEMS)).all(&fresh).await.unwrap();
    assert_eq!(users.len(), 5);
    for u in users.iter().take(2) {
        Order::query().filter(Order::USER_ID.eq(u.id)).all(&fresh).await.unwrap();
    }

    eprintln!("each transaction is its own unit of work");
    for _ in 0..3 {
        strict
            .transaction(|tx| async move {
                User::query().filter(User::ID.eq(1)).all(&tx).await?;
                User::query().filter(User::ID.eq(2)).all(&tx).await?;
                Ok(())
            })
            .await
            .unwrap();
    }
    let e = strict
        .transaction(|tx| async move {
            for i in 0..3 {
                User::query().filter(User::ID.eq(i)).all(&tx).await?;
            }
            Ok(())
        })
        .await
        .unwrap_err();
    assert_eq!(e.sqlstate(), "SO001", "{e}");

    eprintln!("writes in a loop are N+1 too: the third identical UPDATE fails, naming it");
    let db = strict.unit_of_work();
    let mut users = User::query().order_by(User::ID.asc()).all(&db).await.unwrap();
    let before: Vec<i32> = users.iter().map(|u| u.age).collect();
    let mut failure = None;
    for u in &mut users {
        u.age += 1;
        if let Err(e) = u.update(&db).await {
            failure = Some(e);
            break;
        }
    }
    match failure {
        Some(Error::RepeatedQuery { shape, count, limit }) => {
            assert!(shape.starts_with("UPDATE") && shape.contains("users"), "{shape}");
            assert_eq!((count, limit), (3, 2));
        }
        other => panic!("expected RepeatedQuery for the UPDATE loop, got {other:?}"),
    }
    let after: Vec<i32> = User::query()
        .order_by(User::ID.asc())
        .all(&strict.unit_of_work())
        .await
        .unwrap()
        .iter()
        .map(|u| u.age)
        .collect();
    let expected: Vec<i32> = before.iter().enumerate().map(|(i, a)| if i < 2 { a + 1 } else { *a }).collect();
    assert_eq!(after, expected, "two updates ran; the third was refused before it reached the database");

    eprintln!("the bulk APIs do not trip it: insert_all in many chunks, update/delete by filter");
    // 3,001 rows take four INSERTs of at most 1,000 rows, more than the limit of 2.
    let db = strict.unit_of_work();
    let many: Vec<Order> =
        (0..3001).map(|i| Order { id: 10_000 + i, user_id: 1, total: i, ..Default::default() }).collect();
    assert_eq!(Order::insert_all(&many).execute(&db).await.unwrap(), 3001);
    Order::update_where(Order::ID.ge(10_000)).increment(Order::TOTAL, 1).execute(&db).await.unwrap();
    assert_eq!(Order::delete_where(Order::ID.ge(10_000)).execute(&db).await.unwrap(), 3001);
}
