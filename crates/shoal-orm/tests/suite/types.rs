//! Dates, timestamps, decimals and UUIDs (features `chrono`, `decimal`,
//! `uuid`): stored, read back, compared in filters, ordered, used as keys,
//! and created by migrations with each backend's own column types.

use shoal_orm::chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use shoal_orm::prelude::*;
use shoal_orm::rust_decimal::Decimal;
use shoal_orm::uuid::Uuid;

use crate::harness::{Kind, TestDb};

#[derive(Model, Clone, Debug, PartialEq)]
#[model(table = "ledger")]
pub struct Entry {
    #[model(primary_key)]
    pub id: Uuid,
    pub booked_on: NaiveDate,
    pub booked_at: NaiveDateTime,
    pub settled_at: Option<DateTime<Utc>>,
    pub amount: Decimal,
    pub fee: Option<Decimal>,
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn dec(text: &str) -> Decimal {
    text.parse().unwrap()
}

pub async fn dates_decimals_and_uuids(t: TestDb) {
    let db = &t.db;
    db.sync_schema(&[&Entry::TABLE]).await.unwrap();

    eprintln!("migrations create each backend's own types");
    let ddl = db.dialect().create_table(&Entry::TABLE.to_schema());
    let want: &[&str] = match t.kind {
        Kind::Mysql => &["CHAR(36)", "DATE", "DATETIME(6)", "DECIMAL(65, 30)"],
        _ => &["UUID", "DATE", "TIMESTAMP", "TIMESTAMPTZ", "NUMERIC"],
    };
    for w in want {
        assert!(ddl.contains(w), "{w} missing from {ddl}");
    }
    let again = db.sync_schema(&[&Entry::TABLE]).await.unwrap();
    assert!(again.up.is_empty(), "the live schema reads back as the model: {:?}", again.up);

    // Every digit rust_decimal has, except on SQLite (at most 15 significant
    // digits, the most a REAL keeps exactly).
    let (big, small) = match t.kind {
        Kind::Sqlite => (dec("1234567890.12345"), dec("-0.1")),
        _ => (dec("12345678901234567890.123456789"), dec("-0.1")),
    };
    let at = date(2024, 2, 29).and_hms_micro_opt(13, 45, 7, 123_456).unwrap();
    let entries = vec![
        Entry {
            id: Uuid::from_u128(0x67e5_5044_10b1_426f_9247_bb68_0e5f_e0c8),
            booked_on: date(2024, 2, 29),
            booked_at: at,
            settled_at: Some(at.and_utc() + shoal_orm::chrono::Duration::hours(2)),
            amount: big,
            fee: Some(dec("0.25")),
        },
        Entry {
            id: Uuid::from_u128(1),
            booked_on: date(1969, 12, 31),
            booked_at: date(1969, 12, 31).and_hms_opt(23, 59, 59).unwrap(),
            settled_at: None,
            amount: small,
            fee: None,
        },
        Entry {
            id: Uuid::from_u128(u128::MAX),
            booked_on: date(2100, 1, 1),
            booked_at: date(2100, 1, 1).and_hms_opt(0, 0, 0).unwrap(),
            settled_at: Some(date(2100, 1, 1).and_hms_opt(0, 0, 0).unwrap().and_utc()),
            amount: dec("7"),
            fee: Some(dec("0")),
        },
    ];

    eprintln!("insert and read back equal (one by one, then in bulk)");
    let mut first = entries[0].clone();
    first.save(db).await.unwrap();
    assert_eq!(Entry::get(db, first.id).await.unwrap(), first);
    Entry::insert_all(&entries[1..]).execute(db).await.unwrap();
    let mut all = Entry::query().all(db).await.unwrap();
    all.sort_by_key(|e| e.id);
    let mut expected = entries.clone();
    expected.sort_by_key(|e| e.id);
    assert_eq!(all, expected);

    eprintln!("filters and ordering compare values, not text");
    let ordered: Vec<NaiveDate> =
        Entry::query().order_by(Entry::BOOKED_AT.asc()).all(db).await.unwrap().iter().map(|e| e.booked_on).collect();
    assert_eq!(ordered, vec![date(1969, 12, 31), date(2024, 2, 29), date(2100, 1, 1)]);
    let after_2000 = Entry::query().filter(Entry::BOOKED_ON.gt(date(2000, 1, 1))).count(db).await.unwrap();
    assert_eq!(after_2000, 2);
    let settled = Entry::query().filter(Entry::SETTLED_AT.lt(date(2050, 1, 1).and_hms_opt(0, 0, 0).unwrap().and_utc()));
    assert_eq!(settled.all(db).await.unwrap().len(), 1);
    let positive =
        Entry::query().filter(Entry::AMOUNT.gt(dec("0"))).order_by(Entry::AMOUNT.desc()).all(db).await.unwrap();
    assert_eq!(positive.iter().map(|e| e.amount).collect::<Vec<_>>(), vec![big, dec("7")]);
    assert_eq!(Entry::query().filter(Entry::ID.eq(Uuid::from_u128(1))).one(db).await.unwrap().amount, small);

    eprintln!("raw SQL binds them too");
    let n: i64 = sql!("SELECT COUNT(*) FROM ledger WHERE booked_on = {date(2100, 1, 1)}").scalar(db).await.unwrap();
    assert_eq!(n, 1);

    eprintln!("updates by key and by filter");
    let mut second = Entry::get(db, Uuid::from_u128(1)).await.unwrap();
    second.fee = Some(dec("1.5"));
    second.settled_at = Some(at.and_utc());
    second.update(db).await.unwrap();
    assert_eq!(Entry::get(db, second.id).await.unwrap(), second);
    Entry::update_where(Entry::BOOKED_ON.eq(date(2100, 1, 1))).set(Entry::AMOUNT, dec("8")).execute(db).await.unwrap();
    assert_eq!(Entry::get(db, Uuid::from_u128(u128::MAX)).await.unwrap().amount, dec("8"));

    if t.kind == Kind::Sqlite {
        eprintln!("SQLite refuses a decimal it would round instead of storing a different number");
        let mut e = entries[2].clone();
        e.id = Uuid::from_u128(2);
        e.amount = dec("1234567890.1234567");
        let err = e.insert(db).await.unwrap_err();
        assert_eq!(err.sqlstate(), "22003", "{err}");
    }
}

/// Money with a declared precision: `NUMERIC(12, 2)` everywhere
/// (`DECIMAL(12, 2)` on MySQL).
#[derive(Model, Clone, Debug, PartialEq)]
#[model(table = "prices")]
pub struct Price {
    #[model(primary_key)]
    pub id: i64,
    #[model(precision = 12, scale = 2)]
    pub amount: Decimal,
    #[model(precision = 5)]
    pub units: Option<Decimal>,
}

pub async fn numeric_precision_and_scale(t: TestDb) {
    let db = &t.db;
    db.sync_schema(&[&Price::TABLE]).await.unwrap();

    eprintln!("migrations declare the precision, and the live schema reads back the same");
    let ddl = db.dialect().create_table(&Price::TABLE.to_schema());
    let want: &[&str] = match t.kind {
        Kind::Mysql => &["DECIMAL(12, 2) NOT NULL", "DECIMAL(5, 0)"],
        _ => &["NUMERIC(12, 2) NOT NULL", "NUMERIC(5, 0)"],
    };
    for w in want {
        assert!(ddl.contains(w), "{w} missing from {ddl}");
    }
    let again = db.sync_schema(&[&Price::TABLE]).await.unwrap();
    assert!(again.up.is_empty() && again.notes.is_empty(), "no change: {:?} {:?}", again.up, again.notes);

    eprintln!("values that fit round-trip digit for digit, with the column's scale");
    let rows = [
        Price { id: 1, amount: dec("9999999999.99"), units: Some(dec("99999")) },
        Price { id: 2, amount: dec("-9999999999.99"), units: None },
        Price { id: 3, amount: dec("12.5"), units: Some(dec("-7")) },
        Price { id: 4, amount: dec("0.01"), units: Some(dec("0")) },
    ];
    Price::insert_all(&rows[..2]).execute(db).await.unwrap();
    for r in &rows[2..] {
        r.clone().insert(db).await.unwrap();
    }
    let read = Price::query().order_by(Price::ID.asc()).all(db).await.unwrap();
    let text: Vec<(String, Option<String>)> =
        read.iter().map(|p| (p.amount.to_string(), p.units.map(|u| u.to_string()))).collect();
    assert_eq!(
        text,
        [
            ("9999999999.99".to_string(), Some("99999".to_string())),
            ("-9999999999.99".to_string(), None),
            ("12.50".to_string(), Some("-7".to_string())),
            ("0.01".to_string(), Some("0".to_string())),
        ]
    );
    let total = Price::query().filter(Price::AMOUNT.gt(dec("0"))).count(db).await.unwrap();
    assert_eq!(total, 3);

    eprintln!("more fractional digits round half away from zero, as PostgreSQL does, on every backend");
    let mut p = Price { id: 5, amount: dec("1.005"), units: Some(dec("2.5")) };
    p.insert(db).await.unwrap();
    let back = Price::get(db, 5).await.unwrap();
    assert_eq!((back.amount.to_string(), back.units.map(|u| u.to_string())), ("1.01".into(), Some("3".into())));
    p.amount = dec("-1.005");
    p.update(db).await.unwrap();
    assert_eq!(Price::get(db, 5).await.unwrap().amount.to_string(), "-1.01");

    eprintln!("too many integer digits is 22003 on every backend, and nothing is written");
    for amount in ["10000000000", "9999999999.995"] {
        let mut p = Price { id: 6, amount: dec(amount), units: None };
        let err = p.insert(db).await.unwrap_err();
        assert_eq!(err.sqlstate(), "22003", "{amount}: {err}");
        assert!(err.to_string().contains("prices.amount is NUMERIC(12, 2)"), "{err}");
        let err = p.save(db).await.unwrap_err();
        assert_eq!(err.sqlstate(), "22003", "{amount}: {err}");
    }
    let err = Price::insert_all(&[Price { id: 7, amount: dec("1"), units: Some(dec("100000")) }])
        .execute(db)
        .await
        .unwrap_err();
    assert_eq!(err.sqlstate(), "22003", "{err}");
    assert_eq!(Price::query().count(db).await.unwrap(), 5);

    eprintln!("update_where(…).set(…) rounds and checks its value as a model write does");
    let n = Price::update_where(Price::ID.eq(5))
        .set(Price::AMOUNT, dec("2.345"))
        .set(Price::UNITS, Some(dec("-4.5")))
        .execute(db)
        .await
        .unwrap();
    assert_eq!(n, 1);
    // Compared in the database, so SQLite's stored value is what is checked,
    // not the scale a model read gives it.
    let stored = || Price::query().filter(Price::AMOUNT.eq(dec("2.35")) & Price::UNITS.eq(Some(dec("-5"))));
    assert_eq!(stored().count(db).await.unwrap(), 1, "2.345 stored as 2.35 and -4.5 as -5");
    let err = Price::update_where(Price::ID.eq(5))
        .set(Price::UNITS, None)
        .set(Price::AMOUNT, dec("99999999999.5"))
        .execute(db)
        .await
        .unwrap_err();
    assert_eq!(err.sqlstate(), "22003", "{err}");
    assert!(err.to_string().contains("prices.amount is NUMERIC(12, 2)"), "{err}");
    assert_eq!(stored().count(db).await.unwrap(), 1, "nothing was written");
    Price::update_where(Price::ID.eq(5)).set(Price::UNITS, None).execute(db).await.unwrap();
    assert_eq!(Price::get(db, 5).await.unwrap().units, None);
}
