//! Insert, find, update, save, change tracking, delete; bulk writes.

use shoal_orm::prelude::*;

use crate::harness::{Kind, TestDb};
use crate::models::*;

pub async fn crud_roundtrip(t: TestDb) {
    let t = t.with_schema().await;
    let db = &t.db;

    eprintln!("insert fills the generated key and reads back equal");
    let mut alice = user("Alice", 30);
    alice.email = Some("alice@example.com".into());
    alice.insert(db).await.unwrap();
    assert!(alice.id > 0, "generated key written back");
    assert_eq!(User::get(db, alice.id).await.unwrap(), alice);
    assert_eq!(User::find(db, alice.id + 1000).await.unwrap(), None);
    let missing = User::get(db, alice.id + 1000).await.unwrap_err();
    assert!(matches!(missing, Error::NotFound { .. }), "{missing}");
    assert_eq!(missing.sqlstate(), "P0002");
    // A found lookup leaves its parameter vector for the next one on the
    // thread; the next must bind its own key alone.
    let Error::NotFound { what, .. } = &missing else { unreachable!() };
    assert_eq!(what, &format!("primary key [Int({})]", alice.id + 1000));

    eprintln!("update writes every column; save upserts on the primary key");
    alice.age = 31;
    alice.update(db).await.unwrap();
    assert_eq!(User::get(db, alice.id).await.unwrap().age, 31);
    alice.name = "Alicia".into();
    alice.save(db).await.unwrap();
    assert_eq!(User::get(db, alice.id).await.unwrap().name, "Alicia");
    let mut bob = User { id: 500, ..user("Bob", 40) };
    bob.save(db).await.unwrap();
    bob.age = 45;
    bob.save(db).await.unwrap();
    assert_eq!(User::get(db, 500).await.unwrap().age, 45);
    let mut carol = user("Carol", 22);
    carol.save(db).await.unwrap();
    assert!(carol.id > 0 && carol.id != 500);
    assert_eq!(User::query().count(db).await.unwrap(), 3);

    eprintln!("tracked rows write only the columns that changed");
    let mut tracked = User::get(db, 500).await.unwrap().track();
    let mark = t.mark();
    assert!(!tracked.save(db).await.unwrap(), "nothing changed");
    assert!(t.since(mark).is_empty(), "no statement for an unchanged row");
    tracked.age = 46;
    assert_eq!(tracked.changed_columns(), vec!["age"]);
    assert!(tracked.save(db).await.unwrap());
    let sent = t.since(mark);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].starts_with("UPDATE") && sent[0].contains("age") && !sent[0].contains("name"), "{}", sent[0]);
    assert_eq!(User::get(db, 500).await.unwrap().age, 46);

    eprintln!("delete reports whether a row went; updating a gone row is NotFound");
    assert!(carol.delete(db).await.unwrap());
    assert!(!carol.delete(db).await.unwrap());
    assert!(matches!(carol.update(db).await, Err(Error::NotFound { .. })));
    let mut gone = User::get(db, 500).await.unwrap().track();
    User::delete_where(User::ID.eq(500)).execute(db).await.unwrap();
    gone.age = 1;
    assert!(matches!(gone.save(db).await, Err(Error::NotFound { .. })));
}

pub async fn composite_keys_and_types(t: TestDb) {
    let t = t.with_schema().await;
    let db = &t.db;

    eprintln!("a composite primary key finds, updates and deletes one row");
    let mut m = Membership { org: "acme".into(), user_id: 7, role: "admin".into(), rank: Some(-3), score: 1.5 };
    m.insert(db).await.unwrap();
    Membership { org: "acme".into(), user_id: 8, role: "dev".into(), rank: None, score: 0.25 }
        .insert(db)
        .await
        .unwrap();
    Membership { org: "zeta".into(), user_id: 7, role: "dev".into(), rank: None, score: 2.0 }.insert(db).await.unwrap();
    assert_eq!(Membership::get(db, ("acme".to_string(), 7)).await.unwrap(), m);
    let missing = Membership::get(db, ("acme".to_string(), 9)).await.unwrap_err();
    let Error::NotFound { what, .. } = &missing else { panic!("{missing}") };
    assert_eq!(what, r#"primary key [Text("acme"), Int(9)]"#, "only this lookup's key is bound");
    m.role = "owner".into();
    m.rank = None;
    m.save(db).await.unwrap();
    assert_eq!(Membership::get(db, ("acme".to_string(), 7)).await.unwrap(), m);
    assert_eq!(Membership::query().filter(Membership::ROLE.eq("dev")).count(db).await.unwrap(), 2);
    assert!(m.delete(db).await.unwrap());
    assert_eq!(Membership::find(db, ("acme".to_string(), 7)).await.unwrap(), None);
    assert!(Membership::find(db, ("zeta".to_string(), 7)).await.unwrap().is_some());

    eprintln!("booleans, NULLs, bytes, floats and i16 survive a round trip");
    let mut u = user("Types", 1);
    u.active = false;
    u.insert(db).await.unwrap();
    let mut p =
        Profile { user_id: u.id, bio: None, avatar: Some(vec![0, 1, 2, 255, b'\'', b'\\']), ..Default::default() };
    p.insert(db).await.unwrap();
    let back = Profile::get(db, p.id).await.unwrap();
    assert_eq!(back, p);
    assert!(!User::get(db, u.id).await.unwrap().active);
    let mut it = Item { order_id: 0, sku: "x".into(), qty: i32::MAX, price: 1234.5678, ..Default::default() };
    let mut o = order(u.id, 0);
    o.insert(db).await.unwrap();
    it.order_id = o.id;
    it.insert(db).await.unwrap();
    let back = Item::get(db, it.id).await.unwrap();
    assert_eq!(back.qty, i32::MAX);
    assert!((back.price - 1234.5678).abs() < 1e-9, "{}", back.price);
    let big = Membership { org: "o".into(), user_id: i64::MAX, role: "r".into(), rank: Some(i16::MIN), score: -0.5 };
    big.clone().insert(db).await.unwrap();
    assert_eq!(Membership::get(db, ("o".to_string(), i64::MAX)).await.unwrap(), big);
}

pub async fn bulk_insert_upsert_and_filtered_writes(t: TestDb) {
    let t = t.with_schema().await;
    let db = &t.db;

    eprintln!("2,500 rows go in as a few multi-row statements inside one transaction");
    // Explicit keys far above the generated ones (PostgreSQL's identity
    // sequence does not skip over explicit values).
    const BASE: i64 = 100_000;
    let users: Vec<User> =
        (1..=2500).map(|i| User { id: BASE + i, ..user(&format!("u{i}"), (i % 90) as i32) }).collect();
    let mark = t.mark();
    assert_eq!(User::insert_all(&users).execute(db).await.unwrap(), 2500);
    let inserts = t.since(mark).iter().filter(|s| s.starts_with("INSERT")).count();
    assert!((1..=5).contains(&inserts), "{inserts} INSERT statements for 2,500 rows");
    assert_eq!(User::query().count(db).await.unwrap(), 2500);

    eprintln!("rows without a generated key get one from the database");
    let fresh = vec![user("gen1", 1), user("gen2", 2)];
    assert_eq!(User::insert_all(&fresh).execute(db).await.unwrap(), 2);
    assert_eq!(User::query().filter(User::NAME.starts_with("gen")).count(db).await.unwrap(), 2);

    eprintln!("upsert: do nothing keeps the old row, do update overwrites the named columns");
    let again = vec![User { id: BASE + 1, ..user("changed", 99) }, User { id: BASE + 5000, ..user("new", 5) }];
    let n = User::insert_all(&again).on_conflict_do_nothing().execute(db).await.unwrap();
    if t.kind != Kind::Mysql {
        // MySQL counts an ON DUPLICATE KEY no-op differently; the rows tell the truth.
        assert_eq!(n, 1);
    }
    assert_eq!(User::get(db, BASE + 1).await.unwrap().name, "u1");
    assert!(User::find(db, BASE + 5000).await.unwrap().is_some());
    User::insert_all(&again).on_conflict(User::ID).do_update((User::NAME, User::AGE)).execute(db).await.unwrap();
    let one = User::get(db, BASE + 1).await.unwrap();
    assert_eq!((one.name.as_str(), one.age), ("changed", 99));
    User::insert_all(&[User { id: BASE + 2, ..user("all", 7) }])
        .on_conflict(User::ID)
        .do_update_all()
        .execute(db)
        .await
        .unwrap();
    assert_eq!(User::get(db, BASE + 2).await.unwrap().name, "all");

    eprintln!("update and delete by filter report the rows they touched");
    let n = User::update_where(User::AGE.lt(10)).set(User::ACTIVE, false).execute(db).await.unwrap();
    assert_eq!(n as i64, User::query().filter(User::AGE.lt(10)).count(db).await.unwrap());
    assert_eq!(User::query().filter(User::ACTIVE.eq(false)).count(db).await.unwrap(), n as i64);
    User::update_where(User::ID.eq(BASE + 3)).increment(User::AGE, 100).execute(db).await.unwrap();
    assert_eq!(User::get(db, BASE + 3).await.unwrap().age, 103);
    let gone = User::delete_where(User::NAME.starts_with("u2")).execute(db).await.unwrap();
    assert_eq!(gone, 10 + 100 + 501, "u20..u29, u200..u299, u2000..u2500 (u2 was renamed)");
    assert!(matches!(User::update_all().execute(db).await, Err(Error::Unsupported(_))));
    assert_eq!(User::delete_all().execute(db).await.unwrap() as i64, 2500 + 2 + 1 - 611);
    assert!(!User::query().exists(db).await.unwrap());
}
