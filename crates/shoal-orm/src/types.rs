//! Optional column types, each behind a cargo feature so the default build
//! stays small:
//!
//! | feature | Rust type | column (PostgreSQL, Shoal / MySQL / SQLite) |
//! |---|---|---|
//! | `chrono` | `chrono::NaiveDate` | `DATE` / `DATE` / `DATE` (text `YYYY-MM-DD`) |
//! | `chrono` | `chrono::NaiveDateTime` | `TIMESTAMP` / `DATETIME(6)` / `TIMESTAMP` (text) |
//! | `chrono` | `chrono::DateTime<Utc>` | `TIMESTAMPTZ` / `DATETIME(6)` in UTC / `TIMESTAMPTZ` (text, `+00:00`) |
//! | `decimal` | `rust_decimal::Decimal` | `NUMERIC` / `DECIMAL(65, 30)` / `NUMERIC` |
//! | `uuid` | `uuid::Uuid` | `UUID` / `CHAR(36)` / `UUID` (text) |
//!
//! Each converts to and from the driver-neutral [`Value`] forms of
//! `civil.rs` (days, microseconds, canonical decimal text, 16 bytes); the
//! backends encode those natively (binary `date`/`timestamp`/`numeric`/
//! `uuid` on PostgreSQL, MySQL's date and decimal values, fixed-width text
//! on SQLite). Timestamps keep microseconds, as PostgreSQL does: finer
//! digits are dropped when a value is stored.

#[allow(unused_imports)] // each feature uses a subset
use crate::civil;
#[allow(unused_imports)]
use crate::error::{Error, Result};
#[allow(unused_imports)]
use crate::value::{key_class, mismatch, ColumnType, SqlType, Summable, Value};

#[allow(dead_code)]
fn bad(message: String) -> Error {
    Error::Decode { column: String::new(), message }
}

#[cfg(feature = "chrono")]
mod chrono_types {
    use super::*;
    use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Utc};

    /// `NaiveDate::num_days_from_ce` of 1970-01-01.
    const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

    fn micros_to_naive(us: i64) -> Result<NaiveDateTime> {
        DateTime::from_timestamp_micros(us)
            .map(|d| d.naive_utc())
            .ok_or_else(|| bad(format!("timestamp {us} µs is out of range for chrono")))
    }

    impl SqlType for NaiveDate {
        const TYPE: ColumnType = ColumnType::Date;
        type KeyClass = key_class::Date;
        type Base = NaiveDate;
        fn to_value(&self) -> Value {
            Value::Date(self.num_days_from_ce() - UNIX_EPOCH_DAYS_FROM_CE)
        }
        fn from_value(value: Value) -> Result<Self> {
            let days = match value {
                Value::Date(d) => d,
                Value::Text(ref s) => civil::parse_date(s).ok_or_else(|| bad(format!("{s:?} is not a date")))?,
                other => return Err(mismatch("NaiveDate", &other)),
            };
            days.checked_add(UNIX_EPOCH_DAYS_FROM_CE)
                .and_then(NaiveDate::from_num_days_from_ce_opt)
                .ok_or_else(|| bad(format!("date {days} days from 1970 is out of range for chrono")))
        }
    }

    impl SqlType for NaiveDateTime {
        const TYPE: ColumnType = ColumnType::Timestamp;
        type KeyClass = key_class::Timestamp;
        type Base = NaiveDateTime;
        fn to_value(&self) -> Value {
            Value::Timestamp(self.and_utc().timestamp_micros())
        }
        fn from_value(value: Value) -> Result<Self> {
            match value {
                Value::Timestamp(us) => micros_to_naive(us),
                Value::Text(s) => match civil::parse_timestamp(&s) {
                    Some((us, None)) => micros_to_naive(us),
                    Some((_, Some(_))) => {
                        Err(bad(format!("{s:?} has a time zone; read it into DateTime<Utc>, not NaiveDateTime")))
                    }
                    None => Err(bad(format!("{s:?} is not a timestamp"))),
                },
                Value::TimestampTz(_) => {
                    Err(bad("a timestamptz column holds instants; read it into DateTime<Utc>".into()))
                }
                other => Err(mismatch("NaiveDateTime", &other)),
            }
        }
    }

    impl SqlType for DateTime<Utc> {
        const TYPE: ColumnType = ColumnType::TimestampTz;
        type KeyClass = key_class::Timestamp;
        type Base = DateTime<Utc>;
        fn to_value(&self) -> Value {
            Value::TimestampTz(self.timestamp_micros())
        }
        fn from_value(value: Value) -> Result<Self> {
            let us = match value {
                // MySQL's DATETIME holds the UTC wall-clock time the ORM wrote.
                Value::TimestampTz(us) | Value::Timestamp(us) => us,
                Value::Text(ref s) => {
                    civil::parse_timestamptz(s).ok_or_else(|| bad(format!("{s:?} is not a timestamp")))?
                }
                other => return Err(mismatch("DateTime<Utc>", &other)),
            };
            DateTime::from_timestamp_micros(us).ok_or_else(|| bad(format!("timestamp {us} µs is out of range")))
        }
    }
}

#[cfg(feature = "decimal")]
mod decimal_types {
    use super::*;
    use rust_decimal::Decimal;

    /// Parses decimal text exactly; zeros past rust_decimal's 28 fractional
    /// digits (MySQL pads to the column's scale) are dropped first.
    fn parse(text: &str) -> Result<Decimal> {
        if let Ok(d) = Decimal::from_str_exact(text) {
            return Ok(d);
        }
        let trimmed = if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.') } else { text };
        Decimal::from_str_exact(trimmed).map_err(|e| bad(format!("decimal {text}: {e}")))
    }

    impl SqlType for Decimal {
        const TYPE: ColumnType = ColumnType::Decimal;
        type KeyClass = key_class::Decimal;
        type Base = Decimal;
        fn to_value(&self) -> Value {
            Value::Decimal(self.to_string())
        }
        fn from_value(value: Value) -> Result<Self> {
            match value {
                Value::Decimal(s) | Value::Text(s) => parse(&s),
                Value::Int(i) => Ok(Decimal::from(i)),
                // SQLite keeps NUMERIC as REAL: its shortest text is the value written.
                Value::Float(f) if f.is_finite() => parse(&f.to_string()),
                other => Err(mismatch("Decimal", &other)),
            }
        }
    }

    impl Summable for Decimal {
        type Sum = Decimal;
    }
}

#[cfg(feature = "uuid")]
mod uuid_types {
    use super::*;
    use uuid::Uuid;

    impl SqlType for Uuid {
        const TYPE: ColumnType = ColumnType::Uuid;
        type KeyClass = key_class::Uuid;
        type Base = Uuid;
        fn to_value(&self) -> Value {
            Value::Uuid(*self.as_bytes())
        }
        fn from_value(value: Value) -> Result<Self> {
            match value {
                Value::Uuid(b) => Ok(Uuid::from_bytes(b)),
                Value::Text(s) => {
                    civil::parse_uuid(&s).map(Uuid::from_bytes).ok_or_else(|| bad(format!("{s:?} is not a UUID")))
                }
                Value::Bytes(b) => <[u8; 16]>::try_from(b.as_slice())
                    .map(Uuid::from_bytes)
                    .map_err(|_| bad(format!("{} bytes are not a UUID", b.len()))),
                other => Err(mismatch("Uuid", &other)),
            }
        }
    }
}

#[cfg(all(test, feature = "chrono", feature = "decimal", feature = "uuid"))]
mod tests {
    use super::*;

    #[test]
    fn chrono_values_round_trip() {
        let d = chrono::NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
        assert_eq!(d.to_value(), Value::Date(19_782));
        assert_eq!(chrono::NaiveDate::from_value(Value::Text("2024-02-29".into())).unwrap(), d);
        let t = d.and_hms_micro_opt(13, 45, 7, 250).unwrap();
        assert_eq!(chrono::NaiveDateTime::from_value(t.to_value()).unwrap(), t);
        let utc = t.and_utc();
        assert_eq!(chrono::DateTime::<chrono::Utc>::from_value(utc.to_value()).unwrap(), utc);
        let shifted = Value::Text("2024-02-29 15:45:07.00025+02:00".into());
        assert_eq!(chrono::DateTime::<chrono::Utc>::from_value(shifted.clone()).unwrap(), utc);
        assert!(chrono::NaiveDateTime::from_value(shifted).is_err());
    }

    #[test]
    fn decimals_keep_every_digit() {
        let d: rust_decimal::Decimal = "12345678901234567890.123456789".parse().unwrap();
        assert_eq!(rust_decimal::Decimal::from_value(d.to_value()).unwrap(), d);
        let padded = Value::Decimal("12.340000000000000000000000000000".into());
        assert_eq!(rust_decimal::Decimal::from_value(padded).unwrap().to_string(), "12.34");
        assert_eq!(rust_decimal::Decimal::from_value(Value::Float(0.1)).unwrap().to_string(), "0.1");
        assert!(rust_decimal::Decimal::from_value(Value::Text("1e5".into())).is_err());
    }

    #[test]
    fn uuids_from_bytes_and_text() {
        let u = uuid::Uuid::from_u128(0x67e5_5044_10b1_426f_9247_bb68_0e5f_e0c8);
        assert_eq!(uuid::Uuid::from_value(u.to_value()).unwrap(), u);
        assert_eq!(uuid::Uuid::from_value(Value::Text(u.to_string())).unwrap(), u);
        assert!(uuid::Uuid::from_value(Value::Bytes(vec![1, 2])).is_err());
    }
}
