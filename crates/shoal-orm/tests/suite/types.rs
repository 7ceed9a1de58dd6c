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
