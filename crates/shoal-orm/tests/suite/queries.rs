//! Filters, ordering, aggregates, grouping, projections, joins, streams.

use futures::StreamExt;
use shoal_orm::prelude::*;
use shoal_orm::{all, any};

use crate::harness::TestDb;
use crate::models::*;

/// Alice 30, Bob 40 (no email), Carol 22, Dave 17, "50%_off" 55 (no email).
async fn seed(db: &Db) -> Vec<User> {
    let mut out = Vec::new();
    for (name, age, email) in [
        ("Alice", 30, Some("a@x.org")),
        ("Bob", 40, None),
        ("Carol", 22, Some("c@x.org")),
        ("Dave", 17, Some("d@y.org")),
        ("50%_off", 55, None),
    ] {
        let mut u = user(name, age);
        u.email = email.map(str::to_string);
        u.insert(db).await.unwrap();
        out.push(u);
    }
    out
}

fn names(users: &[User]) -> Vec<&str> {
    users.iter().map(|u| u.name.as_str()).collect()
}

pub async fn filters_and_ordering(t: TestDb) {
    let t = t.with_schema().await;
    let db = &t.db;
    let seeded = seed(db).await;

    eprintln!("comparisons, ordering and limits");
    let adults = User::query().filter(User::AGE.gt(18)).order_by(User::NAME.asc()).limit(10).all(db).await.unwrap();
    assert_eq!(names(&adults), vec!["50%_off", "Alice", "Bob", "Carol"]);
    let q = || User::query().order_by(User::AGE.asc());
    assert_eq!(names(&q().filter(User::AGE.ge(30)).all(db).await.unwrap()), vec!["Alice", "Bob", "50%_off"]);
    assert_eq!(names(&q().filter(User::AGE.lt(22)).all(db).await.unwrap()), vec!["Dave"]);
    assert_eq!(names(&q().filter(User::AGE.le(22)).all(db).await.unwrap()), vec!["Dave", "Carol"]);
    assert_eq!(q().filter(User::AGE.ne(30)).count(db).await.unwrap(), 4);
    assert_eq!(names(&q().filter(User::AGE.between(20, 40)).all(db).await.unwrap()), vec!["Carol", "Alice", "Bob"]);
    assert_eq!(
        names(&User::query().order_by(User::AGE.desc()).limit(2).all(db).await.unwrap()),
        vec!["50%_off", "Bob"]
    );
    assert_eq!(names(&q().limit(2).offset(1).all(db).await.unwrap()), vec!["Carol", "Alice"]);
    assert_eq!(names(&q().offset(3).all(db).await.unwrap()), vec!["Bob", "50%_off"]);

    eprintln!("IN lists, including the empty ones");
    assert_eq!(q().filter(User::NAME.is_in(["Alice", "Dave", "Nobody"])).count(db).await.unwrap(), 2);
    assert_eq!(q().filter(User::ID.is_in(Vec::<i64>::new())).count(db).await.unwrap(), 0);
    assert_eq!(q().filter(User::ID.not_in(Vec::<i64>::new())).count(db).await.unwrap(), 5);
    assert_eq!(q().filter(User::ID.not_in([seeded[0].id, seeded[1].id])).count(db).await.unwrap(), 3);

    eprintln!("LIKE and its escaped helpers (wildcards in the text are literal)");
    assert_eq!(names(&q().filter(User::NAME.like("%av%")).all(db).await.unwrap()), vec!["Dave"]);
    assert_eq!(names(&q().filter(User::NAME.contains("%_")).all(db).await.unwrap()), vec!["50%_off"]);
    let sql = q().filter(User::NAME.contains("%_")).to_sql(db);
    assert!(sql.contains(" ESCAPE '!'"), "every backend is told the escape character: {sql}");
    assert_eq!(names(&q().filter(User::NAME.starts_with("Ca")).all(db).await.unwrap()), vec!["Carol"]);
    assert_eq!(names(&q().filter(User::NAME.ends_with("ob")).all(db).await.unwrap()), vec!["Bob"]);
    assert_eq!(q().filter(User::NAME.not_like("%o%")).count(db).await.unwrap(), 2);
    assert_eq!(q().filter(User::EMAIL.ends_with("@x.org")).count(db).await.unwrap(), 2);

    eprintln!("NULL tests, and eq(None) meaning IS NULL");
    assert_eq!(names(&q().filter(User::EMAIL.is_null()).all(db).await.unwrap()), vec!["Bob", "50%_off"]);
    assert_eq!(q().filter(User::EMAIL.is_not_null()).count(db).await.unwrap(), 3);
    assert_eq!(q().filter(User::EMAIL.eq(None::<String>)).count(db).await.unwrap(), 2);
    assert_eq!(q().filter(User::EMAIL.eq("a@x.org")).count(db).await.unwrap(), 1);

    eprintln!("and / or / not, as methods, operators and lists");
    let young_or_old = User::AGE.lt(20).or(User::AGE.gt(50));
    assert_eq!(names(&q().filter(young_or_old.clone()).all(db).await.unwrap()), vec!["Dave", "50%_off"]);
    assert_eq!(q().filter(!young_or_old).count(db).await.unwrap(), 3);
    assert_eq!(q().filter(User::AGE.gt(20) & User::EMAIL.is_null()).count(db).await.unwrap(), 2);
    assert_eq!(q().filter(User::NAME.eq("Bob") | User::NAME.eq("Dave")).count(db).await.unwrap(), 2);
    assert_eq!(q().filter(all(vec![User::AGE.gt(20), User::AGE.lt(35)])).count(db).await.unwrap(), 2);
    assert_eq!(q().filter(any(Vec::new())).count(db).await.unwrap(), 0);
    assert_eq!(q().filter(all(Vec::new())).count(db).await.unwrap(), 5);
    assert_eq!(q().filter(User::AGE.gt(20)).filter(User::AGE.lt(35)).count(db).await.unwrap(), 2);

    eprintln!("first / one / exists");
    assert_eq!(q().first(db).await.unwrap().unwrap().name, "Dave");
    assert!(q().filter(User::AGE.gt(100)).first(db).await.unwrap().is_none());
    assert!(matches!(q().filter(User::AGE.gt(100)).one(db).await, Err(Error::NotFound { .. })));
    assert!(q().filter(User::NAME.eq("Carol")).exists(db).await.unwrap());
    assert!(!q().filter(User::NAME.eq("Zed")).exists(db).await.unwrap());

    eprintln!("the SQL has placeholders, never the values");
    let sql = User::query().filter(User::NAME.eq("Alice")).to_sql(db);
    assert!(!sql.contains("Alice"), "{sql}");
}

#[derive(FromRow, Debug, PartialEq)]
struct Spend {
    user_id: i64,
    orders: i64,
    total: Option<i64>,
}

pub async fn aggregates_groups_and_projections(t: TestDb) {
    let t = t.with_schema().await;
    let db = &t.db;
    let users = seed(db).await;
    let (alice, bob, carol) = (users[0].id, users[1].id, users[2].id);
    for (u, total) in [(alice, 10), (alice, 20), (bob, 5), (carol, 0), (carol, 7), (carol, 8)] {
        order(u, total).insert(db).await.unwrap();
    }

    eprintln!("count, sum, avg, min, max over filtered rows");
    assert_eq!(User::query().count(db).await.unwrap(), 5);
    assert_eq!(User::query().sum(User::AGE, db).await.unwrap(), Some(30 + 40 + 22 + 17 + 55));
    let avg = User::query().avg(User::AGE, db).await.unwrap().unwrap();
    assert!((avg - 32.8).abs() < 1e-9, "{avg}");
    assert_eq!(User::query().min(User::AGE, db).await.unwrap(), Some(17));
    assert_eq!(User::query().max(User::NAME, db).await.unwrap().as_deref(), Some("Dave"));
    assert_eq!(User::query().max(User::EMAIL, db).await.unwrap().as_deref(), Some("d@y.org"));
    assert_eq!(User::query().filter(User::AGE.gt(100)).sum(User::AGE, db).await.unwrap(), None);
    assert_eq!(Order::query().filter(Order::USER_ID.eq(alice)).sum(Order::TOTAL, db).await.unwrap(), Some(30));
    assert_eq!(User::query().order_by(User::AGE.asc()).limit(2).count(db).await.unwrap(), 2);

    eprintln!("GROUP BY with HAVING, into tuples and into a struct");
    let per_user = Order::query()
        .group_by(Order::USER_ID)
        .select((Order::USER_ID, count_all(), Order::TOTAL.sum()))
        .having(count_all().gt(1))
        .order_by(Order::USER_ID.asc())
        .all(db)
        .await
        .unwrap();
    assert_eq!(per_user, vec![(alice, 2, Some(30)), (carol, 3, Some(15))]);
    let spend = Order::query()
        .group_by(Order::USER_ID)
        .select((Order::USER_ID, count_all(), Order::TOTAL.sum()))
        .having(Order::TOTAL.sum().gt(10))
        .order_by(Order::USER_ID.asc())
        .into_struct::<Spend>()
        .all(db)
        .await
        .unwrap();
    assert_eq!(
        spend,
        vec![
            Spend { user_id: alice, orders: 2, total: Some(30) },
            Spend { user_id: carol, orders: 3, total: Some(15) }
        ]
    );

    eprintln!("plain projections and DISTINCT");
    let pairs: Vec<(String, i32)> = User::query()
        .filter(User::AGE.gt(30))
        .order_by(User::AGE.asc())
        .select((User::NAME, User::AGE))
        .all(db)
        .await
        .unwrap();
    assert_eq!(pairs, vec![("Bob".to_string(), 40), ("50%_off".to_string(), 55)]);
    let buyers: Vec<(i64,)> = Order::query().select((Order::USER_ID,)).distinct().all(db).await.unwrap();
    assert_eq!(buyers.len(), 3);
    let (n, max_total, min_age) = Order::query()
        .join(Order::USER)
        .select((count_all(), Order::TOTAL.max(), User::AGE.min()))
        .one(db)
        .await
        .unwrap();
    assert_eq!((n, max_total, min_age), (6, Some(20), Some(22)));
    let avg_total = Order::query().select(Order::TOTAL.avg()).one(db).await.unwrap().unwrap();
    assert!((avg_total - 50.0 / 6.0).abs() < 1e-3, "{avg_total}");
}

pub async fn joins(t: TestDb) {
    let t = t.with_schema().await;
    let db = &t.db;
    let users = seed(db).await;
    let (alice, bob) = (users[0].id, users[1].id);
    let mut o1 = order(alice, 10);
    o1.insert(db).await.unwrap();
    let mut o2 = order(bob, 20);
    o2.insert(db).await.unwrap();
    for (id, label) in [(1, "gift"), (2, "rush")] {
        Tag { id, label: label.into() }.insert(db).await.unwrap();
    }
    OrderTag { order_id: o1.id, tag_id: 1, ..Default::default() }.insert(db).await.unwrap();
    OrderTag { order_id: o2.id, tag_id: 1, ..Default::default() }.insert(db).await.unwrap();
    OrderTag { order_id: o2.id, tag_id: 2, ..Default::default() }.insert(db).await.unwrap();

    eprintln!("filter and order on a joined model's columns");
    let of_alice = Order::query().join(Order::USER).filter(User::NAME.eq("Alice")).all(db).await.unwrap();
    assert_eq!(of_alice.iter().map(|o| o.id).collect::<Vec<_>>(), vec![o1.id]);
    let by_age = Order::query().join(Order::USER).order_by(User::AGE.desc()).all(db).await.unwrap();
    assert_eq!(by_age.iter().map(|o| o.id).collect::<Vec<_>>(), vec![o2.id, o1.id]);
    let mixed = Order::query()
        .join(Order::USER)
        .filter(User::AGE.gt(35).or(Order::TOTAL.lt(15)))
        .order_by(Order::ID.asc())
        .count(db)
        .await
        .unwrap();
    assert_eq!(mixed, 2);

    eprintln!("users without orders (LEFT JOIN … IS NULL), users who bought (JOIN + DISTINCT)");
    let lonely: Vec<(String,)> = User::query()
        .left_join(User::ORDERS)
        .filter(Order::ID.is_absent())
        .order_by(User::NAME.asc())
        .select((User::NAME,))
        .all(db)
        .await
        .unwrap();
    assert_eq!(lonely, vec![("50%_off".to_string(),), ("Carol".to_string(),), ("Dave".to_string(),)]);
    let buyers = User::query().join(User::ORDERS).distinct().order_by(User::NAME.asc()).all(db).await.unwrap();
    assert_eq!(names(&buyers), vec!["Alice", "Bob"]);

    eprintln!("many-to-many through the link table, and a three-model scope");
    let gifts = Order::query().join(Order::TAGS).filter(Tag::LABEL.eq("gift")).count(db).await.unwrap();
    assert_eq!(gifts, 2);
    let rushed_by: Vec<(String, String)> = Order::query()
        .join(Order::USER)
        .join(Order::TAGS)
        .filter(Tag::LABEL.eq("rush"))
        .select((User::NAME, Tag::LABEL))
        .all(db)
        .await
        .unwrap();
    assert_eq!(rushed_by, vec![("Bob".to_string(), "rush".to_string())]);
}

pub async fn streaming(t: TestDb) {
    let t = t.with_schema().await;
    let db = &t.db;
    let users: Vec<User> = (1..=3000).map(|i| User { id: i, ..user(&format!("s{i}"), (i % 70) as i32) }).collect();
    User::insert_all(&users).execute(db).await.unwrap();
    let orders: Vec<Order> = (1..=3000).map(|i| Order { id: i, ..order(i, i * 2) }).collect();
    Order::insert_all(&orders).execute(db).await.unwrap();

    eprintln!("a stream yields every row once, in order, without collecting first");
    let mut stream = User::query().order_by(User::ID.asc()).stream(db);
    let mut expected = 1;
    while let Some(u) = stream.next().await {
        assert_eq!(u.unwrap().id, expected);
        expected += 1;
    }
    drop(stream);
    assert_eq!(expected, 3001);

    eprintln!("a stream with .with() loads relations batch by batch");
    let mark = t.mark();
    let mut total = 0;
    let mut stream = User::query().filter(User::ID.le(2500)).with(User::ORDERS).stream(db);
    while let Some(u) = stream.next().await {
        let u = u.unwrap();
        let orders = u.orders.get().expect("loaded");
        assert_eq!(orders.len(), 1);
        total += orders[0].total;
    }
    drop(stream);
    assert_eq!(total, (1..=2500).map(|i| i * 2).sum::<i64>());
    let order_queries =
        t.since(mark).iter().filter(|s| s.contains("FROM \"orders\"") || s.contains("FROM `orders`")).count();
    assert_eq!(order_queries, 3, "2,500 parents in batches of 1,000");

    eprintln!("projections and raw SQL stream too; dropping a stream early frees its connection");
    let ages: Vec<i32> = User::query().select(User::AGE).stream(db).map(|r| r.unwrap()).collect().await;
    assert_eq!(ages.len(), 3000);
    let mut early = User::query().stream(db);
    assert!(early.next().await.is_some());
    drop(early);
    // The freed connection serves the next query (SQLite in memory has only one).
    assert_eq!(User::query().count(db).await.unwrap(), 3000);
}
