//! Transactions: commit, rollback on error and panic, savepoints, retries.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use shoal_orm::prelude::*;

use crate::harness::{Kind, TestDb};
use crate::models::*;

async fn count(db: &Db) -> i64 {
    User::query().count(&db.unit_of_work()).await.unwrap()
}

pub async fn commit_rollback_and_panic(t: TestDb) {
    let t = t.with_schema().await;
    let db = &t.db;

    eprintln!("Ok commits");
    let id = db
        .transaction(|tx| async move {
            let mut u = user("committed", 1);
            u.insert(&tx).await?;
            Ok(u.id)
        })
        .await
        .unwrap();
    assert!(User::find(db, id).await.unwrap().is_some());

    eprintln!("Err rolls back and comes back unchanged");
    let e = db
        .transaction(|tx| async move {
            user("rolled back", 2).insert(&tx).await?;
            Err::<(), _>(Error::app(std::io::Error::other("business rule")))
        })
        .await
        .unwrap_err();
    assert_eq!(e.downcast_app::<std::io::Error>().map(|io| io.to_string()).as_deref(), Some("business rule"), "{e}");
    assert_eq!(count(db).await, 1);

    eprintln!("a panic rolls back, continues as a panic, and leaves the pool usable");
    let db2 = db.clone();
    let joined = tokio::spawn(async move {
        db2.transaction(|tx| async move {
            user("panicked", 3).insert(&tx).await?;
            let rows = User::query().count(&tx).await?;
            assert!(rows > 100, "boom: a panic inside the transaction");
            Ok(())
        })
        .await
    })
    .await;
    assert!(joined.unwrap_err().is_panic());
    assert_eq!(count(db).await, 1);
    user("after panic", 4).insert(db).await.unwrap();
    assert_eq!(count(db).await, 2);

    eprintln!("a dropped Tx rolls back; begin/commit by hand works");
    {
        let tx = db.begin().await.unwrap();
        user("dropped", 5).insert(&tx).await.unwrap();
    }
    assert_eq!(count(db).await, 2);
    let tx = db.begin().await.unwrap();
    user("by hand", 6).insert(&tx).await.unwrap();
    tx.commit().await.unwrap();
    let tx = db.begin().await.unwrap();
    user("by hand, undone", 7).insert(&tx).await.unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(count(db).await, 3);

    eprintln!("statements inside see the transaction's own writes");
    db.transaction(|tx| async move {
        user("inside", 8).insert(&tx).await?;
        assert_eq!(User::query().filter(User::NAME.eq("inside")).count(&tx).await?, 1);
        Ok(())
    })
    .await
    .unwrap();
}

pub async fn savepoints_and_closed_handles(t: TestDb) {
    let t = t.with_schema().await;
    let db = &t.db;

    eprintln!("a failed inner transaction rolls back to its savepoint; the outer commits");
    db.transaction(|tx| async move {
        user("outer", 1).insert(&tx).await?;
        let inner = tx
            .transaction(|sp| async move {
                user("inner, undone", 2).insert(&sp).await?;
                Err::<(), _>(Error::app(std::io::Error::other("inner fails")))
            })
            .await;
        assert!(inner.is_err());
        tx.transaction(|sp| async move {
            user("inner, kept", 3).insert(&sp).await?;
            sp.transaction(|sp2| async move { user("innermost", 4).insert(&sp2).await }).await
        })
        .await?;
        Ok(())
    })
    .await
    .unwrap();
    let mut names: Vec<String> = User::query().all(db).await.unwrap().into_iter().map(|u| u.name).collect();
    names.sort();
    assert_eq!(names, vec!["inner, kept", "innermost", "outer"]);

    eprintln!("a handle used after its transaction ended says so");
    let leaked = db.transaction(|tx| async move { Ok(tx.clone()) }).await.unwrap();
    let e = user("late", 9).insert(&leaked).await.unwrap_err();
    assert!(matches!(e, Error::TransactionClosed), "{e}");
    assert_eq!(e.sqlstate(), "25P01");
    let sp_leak = db.transaction(|tx| async move { tx.transaction(|sp| async move { Ok(sp) }).await }).await.unwrap();
    assert!(matches!(sp_leak.commit().await, Err(Error::TransactionClosed)));
}

pub async fn retry_helper(t: TestDb) {
    let t = t.with_schema().await;
    let db = &t.db;

    eprintln!("retryable failures run the closure again, up to the bound");
    let attempts = Arc::new(AtomicU32::new(0));
    let a = attempts.clone();
    let id = db
        .transaction_with_retry(5, move |tx| {
            let a = a.clone();
            async move {
                let n = a.fetch_add(1, Ordering::SeqCst) + 1;
                let mut u = user(&format!("attempt {n}"), 1);
                u.insert(&tx).await?;
                if n < 3 {
                    return Err(Error::SerializationFailure { sqlstate: "40001".into(), message: "conflict".into() });
                }
                Ok(u.id)
            }
        })
        .await
        .unwrap();
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    assert_eq!(User::get(db, id).await.unwrap().name, "attempt 3");
    assert_eq!(User::query().count(db).await.unwrap(), 1, "failed attempts rolled back");

    eprintln!("the bound holds, and other errors are not retried");
    let attempts = Arc::new(AtomicU32::new(0));
    let a = attempts.clone();
    let e = db
        .transaction_with_retry(2, move |_tx| {
            let a = a.clone();
            async move {
                a.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(Error::SerializationFailure { sqlstate: "40001".into(), message: "again".into() })
            }
        })
        .await
        .unwrap_err();
    assert!(e.is_retryable());
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
    let attempts = Arc::new(AtomicU32::new(0));
    let a = attempts.clone();
    let _ = db
        .transaction_with_retry(5, move |_tx| {
            let a = a.clone();
            async move {
                a.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(Error::Unsupported("not retryable".into()))
            }
        })
        .await;
    assert_eq!(attempts.load(Ordering::SeqCst), 1);

    if t.kind == Kind::Postgres {
        eprintln!("PostgreSQL: a real serialization conflict is SQLSTATE 40001 and the helper recovers");
        let mut u = user("counter", 0);
        u.insert(db).await.unwrap();
        let id = u.id;
        let bump = |db: Db| async move {
            db.transaction_with_retry(10, move |tx| async move {
                sql!("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE").execute(&tx).await?;
                let age = User::get(&tx, id).await?.age;
                tokio::time::sleep(std::time::Duration::from_millis(30)).await;
                User::update_where(User::ID.eq(id)).set(User::AGE, age + 1).execute(&tx).await?;
                Ok(())
            })
            .await
        };
        let (a, b) = tokio::join!(bump(db.clone()), bump(db.clone()));
        a.unwrap();
        b.unwrap();
        assert_eq!(User::get(db, id).await.unwrap().age, 2, "both increments survived");
    }
}

pub async fn failed_statement_inside_a_transaction(t: TestDb) {
    let t = t.with_schema().await;
    let db = &t.db;
    let mut first = user("first", 1);
    first.insert(db).await.unwrap();
    let dup_id = first.id;

    eprintln!("a swallowed error: PostgreSQL and Shoal abort the transaction, and Ok must not mean committed");
    let result = db
        .transaction(|tx| async move {
            user("kept?", 2).insert(&tx).await?;
            let dup = User { id: dup_id, ..user("dup", 3) }.insert(&tx).await;
            assert!(matches!(dup, Err(Error::UniqueViolation { .. })), "{dup:?}");
            Ok(())
        })
        .await;
    let kept = User::query().filter(User::NAME.eq("kept?")).count(db).await.unwrap();
    match t.kind {
        Kind::Postgres | Kind::Shoal => {
            let e = result.unwrap_err();
            assert_eq!(e.sqlstate(), "25P02", "{e}");
            assert_eq!(kept, 0);
        }
        Kind::Sqlite | Kind::Mysql => {
            result.unwrap();
            assert_eq!(kept, 1, "a failed statement does not abort the transaction here");
        }
    }

    eprintln!("a savepoint around the failing statement keeps the transaction alive everywhere");
    db.transaction(|tx| async move {
        user("kept!", 4).insert(&tx).await?;
        let dup = tx.transaction(|sp| async move { User { id: dup_id, ..user("dup", 5) }.insert(&sp).await }).await;
        assert!(matches!(dup, Err(Error::UniqueViolation { .. })));
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(User::query().filter(User::NAME.eq("kept!")).count(db).await.unwrap(), 1);
}
