//! Exact `numeric` through the real server and a real driver: tokio-postgres
//! binds and reads numerics in PostgreSQL's binary format (`rust_decimal`'s
//! `db-tokio-postgres` codec, as applications use it), and Shoal's binary
//! bytes equal PostgreSQL's own for the same values, display scale included.

mod common;

use std::str::FromStr;

use rust_decimal::Decimal;
use tokio_postgres::types::{FromSql, Type};

/// A numeric's binary wire bytes, exactly as the server sent them.
#[derive(Debug, PartialEq)]
struct RawNumeric(Vec<u8>);

impl<'a> FromSql<'a> for RawNumeric {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(RawNumeric(raw.to_vec()))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::NUMERIC
    }
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn binary_numerics_round_trip_exactly() {
    let server = common::Server::start().await;
    let client = server.connect().await;
    client.batch_execute("CREATE TABLE ledger (id int PRIMARY KEY, amount numeric(30,4), free numeric)").await.unwrap();

    // Binary parameters in, binary results out, no digit lost on the way.
    let values = ["0.1", "-0.0001", "1234567890123456789012.3456", "79228162514264337593543.9503", "0", "100"];
    let insert = client.prepare("INSERT INTO ledger VALUES ($1, $2, $3)").await.unwrap();
    assert_eq!(insert.params()[1], Type::NUMERIC);
    for (i, v) in values.iter().enumerate() {
        client.execute(&insert, &[&(i as i32), &dec(v), &dec(v)]).await.unwrap();
    }
    let rows = client.query("SELECT id, amount, free FROM ledger ORDER BY id", &[]).await.unwrap();
    for (row, v) in rows.iter().zip(values) {
        let amount: Decimal = row.get(1);
        let free: Decimal = row.get(2);
        assert_eq!(amount, dec(v), "numeric(30,4) {v}");
        assert_eq!(amount.scale(), 4, "numeric(30,4) keeps its scale for {v}");
        assert_eq!(free.to_string(), dec(v).to_string(), "numeric {v} keeps its digits and scale");
    }

    // Arithmetic on bound values is exact (a double would give 0.30000000000000004).
    let sum: Decimal =
        client.query_one("SELECT $1::numeric + $2::numeric", &[&dec("0.1"), &dec("0.2")]).await.unwrap().get(0);
    assert_eq!(sum.to_string(), "0.3");
    let total: Decimal = client.query_one("SELECT sum(amount) FROM ledger", &[]).await.unwrap().get(0);
    let expected = values.iter().map(|v| dec(v)).sum::<Decimal>();
    assert_eq!(total, expected);

    // A binary parameter for numeric(30,4) is rounded like text input, and overflow is 22003.
    client.execute(&insert, &[&100i32, &dec("1.00005"), &Decimal::ZERO]).await.unwrap();
    let rounded: Decimal = client.query_one("SELECT amount FROM ledger WHERE id = 100", &[]).await.unwrap().get(0);
    assert_eq!(rounded.to_string(), "1.0001");
    // A parameter compared with a numeric(30,4) column is a plain numeric: not
    // rounded to the column's scale first (1.00005 is not 1.0001).
    let count = |v: &'static str| {
        let client = &client;
        async move {
            let row = client.query_one("SELECT count(*) FROM ledger WHERE amount = $1", &[&dec(v)]).await.unwrap();
            row.get::<_, i64>(0)
        }
    };
    assert_eq!(count("1.00005").await, 0);
    assert_eq!(count("1.0001").await, 1);
    assert_eq!(count("1.00010000").await, 1);
    common::assert_sqlstate(
        client.execute(&insert, &[&101i32, &dec("123456789012345678901234567.1"), &Decimal::ZERO]).await,
        "22003",
        "numeric(30,4) overflow",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn binary_numerics_match_postgres_bytes() {
    let server = common::Server::start().await;
    let shoal = server.connect().await;
    let postgres =
        match common::connect_to("host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=5").await {
            Ok(c) => c,
            Err(e) if std::env::var("SHOAL_REQUIRE_EXTERNAL").is_ok_and(|v| v == "1") => {
                panic!("PostgreSQL required (SHOAL_REQUIRE_EXTERNAL=1) but unreachable: {e}")
            }
            Err(e) => {
                println!("skipping the comparison with PostgreSQL: {e}");
                return;
            }
        };
    let exprs = [
        "1.10",
        "0.00",
        "-0.0001",
        "10000::numeric",
        "1 / 3.0",
        "'NaN'::numeric",
        "'-Infinity'::numeric",
        "12.345::numeric(10,2)",
        "2::numeric ^ 100",
        "'1e200'::numeric / 7",
        "sum(x) FROM (VALUES (1.5), (2.25)) v(x)",
    ];
    for e in exprs {
        let sql = format!("SELECT {e}");
        let row = shoal.query_one(&sql, &[]).await.unwrap();
        assert_eq!(row.columns()[0].type_(), &Type::NUMERIC, "{sql}");
        let ours: RawNumeric = row.get(0);
        let theirs: RawNumeric = postgres.query_one(&sql, &[]).await.unwrap().get(0);
        assert_eq!(ours, theirs, "{sql}");
    }
}
