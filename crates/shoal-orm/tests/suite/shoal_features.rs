//! Shoal's routing hints, causal tokens and follower reads — and that the
//! other backends are unaffected.

use shoal_orm::backend::shoal::FeatureState;
use shoal_orm::prelude::*;
use shoal_orm::{Route, Value};

use crate::harness::{Kind, TestDb};
use crate::models::*;

/// A table split into four shards, and its children split by the same key,
/// so an account's entries live in the account's shard.
#[derive(Model, Clone, Debug, PartialEq, Default)]
#[model(table = "accounts", shard_key = "id", shards = 4)]
pub struct Account {
    #[model(primary_key)]
    pub id: i64,
    pub owner: String,
    #[model(has_many(foreign_key = account_id))]
    pub entries: HasMany<Entry>,
}

#[derive(Model, Clone, Debug, PartialEq, Default)]
#[model(table = "entries", shard_key = "account_id", shards = 4)]
pub struct Entry {
    #[model(primary_key, auto_increment)]
    pub id: i64,
    #[model(index)]
    pub account_id: i64,
    pub amount: i64,
    #[model(belongs_to(foreign_key = account_id))]
    pub account: BelongsTo<Account>,
}

/// The shard (0-based, of four) Shoal puts an account id in.
fn shard_of(id: i64) -> u32 {
    shoal_common::shard::shard_of(shoal_common::shard::hash_integer(id), 4)
}

/// How many keys of `ids` each shard owns, largest first, shards with none left out.
fn group_sizes(ids: impl IntoIterator<Item = i64>) -> Vec<usize> {
    let mut sizes = [0usize; 4];
    for id in ids {
        sizes[shard_of(id) as usize] += 1;
    }
    let mut sizes: Vec<usize> = sizes.into_iter().filter(|n| *n > 0).collect();
    sizes.sort_unstable_by(|a, b| b.cmp(a));
    sizes
}

pub async fn shard_grouped_eager_loads_and_explain(t: TestDb) {
    let db = &t.db;
    db.sync_schema(&[&Account::TABLE, &Entry::TABLE]).await.unwrap();
    let ids: Vec<i64> = (1..=40).collect();
    let accounts: Vec<Account> =
        ids.iter().map(|&id| Account { id, owner: format!("owner{id}"), ..Default::default() }).collect();
    Account::insert_all(&accounts).execute(db).await.unwrap();
    let entries: Vec<Entry> = ids
        .iter()
        .flat_map(|&account_id| {
            (0..3).map(move |n| Entry { account_id, amount: account_id * 10 + n, ..Default::default() })
        })
        .collect();
    Entry::insert_all(&entries).execute(db).await.unwrap();

    eprintln!("every backend explains a query without running it");
    let plan = Account::query().filter(Account::ID.eq(7)).explain(db).await.unwrap();
    assert!(!plan.is_empty() && plan.iter().all(|l| !l.is_empty()), "{plan:?}");
    if t.kind == Kind::Shoal {
        eprintln!("on Shoal, EXPLAIN proves a query that fixes the shard key reaches one shard");
        let one = format!("Route: accounts: 1 of 4 shards (id = $1 → shard {}), on group 1", shard_of(7) + 1);
        assert_eq!(plan[0], one, "{plan:?}");
        let all = Account::query().filter(Account::OWNER.eq("owner7")).explain(db).await.unwrap();
        assert!(all[0].starts_with("Route: accounts: all 4 shards (no equality or IN on the shard key)"), "{all:?}");
        let either = Account::query().filter(Account::ID.eq(7).or(Account::ID.eq(8))).explain(db).await.unwrap();
        assert!(either[0].starts_with("Route: accounts: all 4 shards"), "OR does not pin: {either:?}");
        let projected = Account::query().filter(Account::ID.eq(7)).select(Account::OWNER).explain(db).await.unwrap();
        assert_eq!(projected[0], one, "{projected:?}");
    }

    eprintln!("eager loads: one IN query per shard touched on Shoal, one query elsewhere");
    let mark = t.mark();
    let loaded = Account::query().order_by(Account::ID.asc()).with(Account::ENTRIES).all(db).await.unwrap();
    let sent = t.since(mark);
    assert_eq!(loaded.len(), 40);
    for a in &loaded {
        let mine = a.entries.get().unwrap();
        assert_eq!(mine.len(), 3, "account {}", a.id);
        assert!(mine.iter().all(|e| e.account_id == a.id));
    }
    let entry_queries: Vec<&String> =
        sent.iter().filter(|s| s.contains("FROM \"entries\"") || s.contains("FROM `entries`")).collect();
    match t.kind {
        Kind::Shoal => {
            let expected = group_sizes(ids.iter().copied());
            assert_eq!(entry_queries.len(), expected.len(), "one query per shard touched: {sent:#?}");
            // Each query binds exactly the keys of one shard.
            let mut sizes: Vec<usize> = entry_queries.iter().map(|q| q.matches('$').count()).collect();
            sizes.sort_unstable_by(|a, b| b.cmp(a));
            assert_eq!(sizes, expected, "{sent:#?}");
            eprintln!("and the keys of one shard, asked for together, reach only that shard");
            let first_shard: Vec<i64> = ids.iter().copied().filter(|id| shard_of(*id) == shard_of(1)).collect();
            let plan = Entry::query().filter(Entry::ACCOUNT_ID.is_in(first_shard)).explain(db).await.unwrap();
            assert!(plan[0].starts_with("Route: entries: 1 of 4 shards (account_id IN ("), "{plan:?}");
        }
        _ => assert_eq!(entry_queries.len(), 1, "{sent:#?}"),
    }

    eprintln!("the other direction (entries → account) groups by the accounts' shards");
    let mark = t.mark();
    let few: Vec<i64> = vec![1, 2, 3, 4, 5, 6];
    let with_account =
        Entry::query().filter(Entry::ACCOUNT_ID.is_in(few.clone())).with(Entry::ACCOUNT).all(db).await.unwrap();
    assert_eq!(with_account.len(), 18);
    assert!(with_account.iter().all(|e| e.account.get().unwrap().as_ref().map(|a| a.id) == Some(e.account_id)));
    let account_queries =
        t.since(mark).iter().filter(|s| s.contains("FROM \"accounts\"") || s.contains("FROM `accounts`")).count();
    let expected = if t.kind == Kind::Shoal { group_sizes(few.iter().copied()).len() } else { 1 };
    assert_eq!(account_queries, expected);

    eprintln!("inside a transaction the same groups run one after another on its connection");
    let n = db
        .transaction(|tx| async move {
            let loaded = Account::query().with(Account::ENTRIES).all(&tx).await?;
            Ok(loaded.iter().map(|a| a.entries.get().map_or(0, Vec::len)).sum::<usize>())
        })
        .await
        .unwrap();
    assert_eq!(n, 120);
}

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
