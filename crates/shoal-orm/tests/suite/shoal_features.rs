//! Shoal's routing hints, causal tokens and follower reads — and that the
//! other backends are unaffected.

use shoal_orm::backend::shoal::FeatureState;
use shoal_orm::prelude::*;
use shoal_orm::{Route, Value};

use crate::harness::{Kind, TestDb};
use crate::models::*;

pub async fn routing_hints_and_follower_reads(t: TestDb) {
    let t = t.with_schema().await;
    let db = &t.db;

    eprintln!("a query that fixes the shard key carries a route; others do not");
    let q = User::query().filter(User::ID.eq(7)).filter(User::AGE.gt(1));
    assert_eq!(q.route(), Some(Route { table: "users", column: "id", values: vec![Value::Int(7)] }));
    assert_eq!(User::query().filter(User::ID.is_in([1, 2])).route().map(|r| r.values.len()), Some(2));
    assert_eq!(User::query().filter(User::AGE.eq(7)).route(), None);
    assert_eq!(User::query().filter(User::ID.eq(7).or(User::ID.eq(8))).route(), None, "OR does not pin");
    assert_eq!(Order::query().filter(Order::ID.eq(1)).route(), None, "orders have no shard key");

    eprintln!("routed statements run everywhere; Shoal is asked once and tolerates the answer");
    let mut u = user("routed", 1);
    u.insert(db).await.unwrap();
    assert_eq!(User::get(db, u.id).await.unwrap().name, "routed");
    assert_eq!(User::query().filter(User::ID.eq(u.id)).count(db).await.unwrap(), 1);
    match t.kind {
        Kind::Shoal => {
            let f = db.shoal_features().expect("a shoal:// database reports features");
            // Shoal answers set_config and SHOW shoal.causal_token.
            assert_eq!(f.routing_hints, FeatureState::Available);
            assert_eq!(f.causal_tokens, FeatureState::Available, "a write was made, so the token was read");
            if f.routing_hints == FeatureState::Available {
                assert_hint_reaches_server(db, u.id).await;
            }
        }
        _ => assert_eq!(db.shoal_features(), None),
    }

    eprintln!("follower reads still read this Db's own writes");
    let f = db.follower_reads();
    let mut w = user("written then read", 2);
    w.insert(&f).await.unwrap();
    assert_eq!(User::get(&f, w.id).await.unwrap().name, "written then read");

    if t.kind == Kind::Postgres {
        eprintln!("over shoal:// a PostgreSQL server (which has set_config) receives the hint verbatim");
        let shoal_url = t.url.replacen("postgres://", "shoal://", 1);
        let sdb = Db::connect(&shoal_url).await.unwrap();
        assert_hint_reaches_server(&sdb, u.id).await;
        let f = sdb.shoal_features().unwrap();
        assert_eq!(f.routing_hints, FeatureState::Available);
        let cleared: String = sql!("SELECT current_setting('shoal.route_hint')").scalar(&sdb).await.unwrap();
        assert_eq!(cleared, "", "an unrouted statement clears the hint");

        eprintln!("before any write a follower read asks for a follower; after one it reads the leader");
        let fresh = Db::connect(&shoal_url).await.unwrap();
        let level: String =
            sql!("SELECT current_setting('shoal.read_consistency')").scalar(&fresh.follower_reads()).await.unwrap();
        assert_eq!(level, "follower");
        user("a write", 3).insert(&fresh).await.unwrap();
        assert_eq!(fresh.shoal_features().unwrap().causal_tokens, FeatureState::Absent);
        let level: String =
            sql!("SELECT current_setting('shoal.read_consistency')").scalar(&fresh.follower_reads()).await.unwrap();
        assert_eq!(level, "linearizable", "no causal token, so the leader");
    }
}

/// A routed query leaves its hint in the session, where the server (and this
/// check, reading it back on the same connection) can see it.
async fn assert_hint_reaches_server(db: &Db, id: i64) {
    let hint: String = db
        .transaction(|tx| async move {
            User::query().filter(User::ID.eq(id)).all(&tx).await?;
            // The same route, so the session keeps the hint for this read.
            sql!("SELECT current_setting('shoal.route_hint')").on_shard(User::ID, id).scalar(&tx).await
        })
        .await
        .unwrap();
    assert_eq!(hint, format!(r#"{{"table":"users","column":"id","values":[{id}]}}"#));
}
