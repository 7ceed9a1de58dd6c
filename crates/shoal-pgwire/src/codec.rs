//! Parameter decoding and result encoding: PostgreSQL text/binary ⇄ storage.
//!
//! ```text
//!   Bind parameter bytes ──decode_param(type, format)──▶ Value (storage form) ──▶ Session::execute
//!   Session rows: Value  ──encode_value(type, format)──▶ DataRow field bytes
//! ```
//!
//! Text formats delegate to [`shoal_common::convert`], so the wire and the
//! SQL layer agree on every spelling. Binary formats follow PostgreSQL's
//! `*send`/`*recv` functions: big-endian integers and floats, dates as days
//! and timestamps as microseconds since 2000-01-01, intervals as
//! `(micros, days, months)`, numerics as base-10000 digit groups, jsonb with
//! a leading version byte `1`, uuids as 16 raw bytes.
//!
//! Every function here is total: malformed client bytes produce a
//! `22P03`/`22P02`-class [`Error`], never a panic.

use shoal_common::convert::{self, DateValue, Interval, TimestampValue, PG_EPOCH_DAYS, USECS_PER_DAY};
use shoal_common::numeric::Numeric;
use shoal_common::{DataType, Error, Result, SqlState, Value};

/// The wire format of one parameter or result column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Binary,
}

impl Format {
    /// Format code 0 is text, 1 is binary; anything else is a protocol error.
    pub fn from_code(code: i16) -> Result<Format> {
        match code {
            0 => Ok(Format::Text),
            1 => Ok(Format::Binary),
            other => Err(Error::new(SqlState::PROTOCOL_VIOLATION, format!("unsupported format code: {other}"))),
        }
    }

    /// Expands a Bind message's format-code list to `n` formats: none means
    /// all text, one applies to all, otherwise one per item.
    pub fn expand(codes: &[i16], n: usize, what: &str) -> Result<Vec<Format>> {
        match codes.len() {
            0 => Ok(vec![Format::Text; n]),
            1 => Ok(vec![Format::from_code(codes[0])?; n]),
            len if len == n => codes.iter().map(|c| Format::from_code(*c)).collect(),
            len => Err(Error::new(
                SqlState::PROTOCOL_VIOLATION,
                format!("bind message has {len} {what} formats but {n} {what}s"),
            )),
        }
    }
}

/// Microseconds from the Unix epoch to PostgreSQL's epoch (2000-01-01).
const PG_EPOCH_MICROS: i64 = PG_EPOCH_DAYS * USECS_PER_DAY;

fn bad_binary(index: usize) -> Error {
    Error::new(
        SqlState::INVALID_BINARY_REPRESENTATION,
        format!("incorrect binary data format in bind parameter {}", index + 1),
    )
}

fn fixed<const N: usize>(bytes: &[u8], index: usize) -> Result<[u8; N]> {
    bytes.try_into().map_err(|_| bad_binary(index))
}

/// The type a parameter's text is validated against. Length limits of
/// `varchar(n)`/`char(n)` are not applied here: a parameter of a declared
/// `bpchar`/`varchar` is unconstrained in PostgreSQL too, and the SQL layer
/// enforces the column's limit on assignment.
fn param_type(ty: &DataType) -> DataType {
    match ty {
        DataType::Varchar(_) | DataType::Char(_) => DataType::Text,
        other => other.clone(),
    }
}

/// Decodes one Bind parameter (`index` is 0-based, for error messages).
pub fn decode_param(ty: &DataType, format: Format, bytes: Option<&[u8]>, index: usize) -> Result<Value> {
    let Some(bytes) = bytes else {
        return Ok(Value::Null);
    };
    let ty = param_type(ty);
    match format {
        Format::Text => {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| Error::new(SqlState(*b"22021"), "invalid byte sequence for encoding \"UTF8\""))?;
            convert::text_to_storage(&ty, text)
        }
        Format::Binary => decode_binary(&ty, bytes, index),
    }
}

fn utf8(bytes: &[u8], index: usize) -> Result<&str> {
    std::str::from_utf8(bytes).map_err(|_| bad_binary(index))
}

fn decode_binary(ty: &DataType, b: &[u8], index: usize) -> Result<Value> {
    Ok(match ty {
        DataType::Bool => match b {
            [0] => Value::Integer(0),
            [1] => Value::Integer(1),
            _ => return Err(bad_binary(index)),
        },
        DataType::Int2 => Value::Integer(i16::from_be_bytes(fixed(b, index)?) as i64),
        DataType::Int4 => Value::Integer(i32::from_be_bytes(fixed(b, index)?) as i64),
        DataType::Int8 => Value::Integer(i64::from_be_bytes(fixed(b, index)?)),
        DataType::Oid => Value::Integer(u32::from_be_bytes(fixed(b, index)?) as i64),
        DataType::Float4 => Value::Real(f32::from_be_bytes(fixed(b, index)?) as f64),
        DataType::Float8 => Value::Real(f64::from_be_bytes(fixed(b, index)?)),
        DataType::Numeric(typmod) => {
            let n = Numeric::from_pg_binary(b).ok_or_else(|| bad_binary(index))?;
            let n = match typmod {
                Some((p, s)) => n.apply_typmod(*p, *s)?,
                None => n,
            };
            Value::Text(n.to_string())
        }
        DataType::Bytea => Value::Blob(b.to_vec()),
        DataType::Date => {
            let days = i32::from_be_bytes(fixed(b, index)?);
            let date = match days {
                i32::MAX => DateValue::Infinity,
                i32::MIN => DateValue::NegInfinity,
                d => DateValue::Days(d as i64 + PG_EPOCH_DAYS),
            };
            Value::Text(date.to_string())
        }
        DataType::Time => {
            let us = i64::from_be_bytes(fixed(b, index)?);
            if !(0..=USECS_PER_DAY).contains(&us) {
                return Err(Error::new(SqlState::DATETIME_FIELD_OVERFLOW, "time out of range"));
            }
            Value::Text(convert::format_time(us))
        }
        DataType::Timestamp | DataType::Timestamptz => {
            let us = i64::from_be_bytes(fixed(b, index)?);
            let ts = match us {
                i64::MAX => TimestampValue::Infinity,
                i64::MIN => TimestampValue::NegInfinity,
                us => TimestampValue::Micros(
                    us.checked_add(PG_EPOCH_MICROS)
                        .ok_or_else(|| Error::new(SqlState::DATETIME_FIELD_OVERFLOW, "timestamp out of range"))?,
                ),
            };
            Value::Text(ts.to_string())
        }
        DataType::Interval => {
            let raw: [u8; 16] = fixed(b, index)?;
            let (us, rest) = raw.split_at(8);
            let (days, months) = rest.split_at(4);
            let interval = Interval {
                micros: i64::from_be_bytes(fixed(us, index)?),
                days: i32::from_be_bytes(fixed(days, index)?),
                months: i32::from_be_bytes(fixed(months, index)?),
            };
            Value::Text(interval.to_string())
        }
        DataType::Uuid => Value::Text(convert::format_uuid(&fixed(b, index)?)),
        DataType::Jsonb => match b.split_first() {
            Some((1, json)) => convert::text_to_storage(ty, utf8(json, index)?)?,
            Some((v, _)) => {
                return Err(Error::new(
                    SqlState::INVALID_BINARY_REPRESENTATION,
                    format!("unsupported jsonb version number {v}"),
                ))
            }
            None => return Err(bad_binary(index)),
        },
        DataType::Array(_) => {
            return Err(Error::unsupported("binary format for array parameters").with_hint("send arrays in text format"))
        }
        // Text-like types: the binary form is the UTF-8 text itself.
        _ => convert::text_to_storage(ty, utf8(b, index)?)?,
    })
}

/// Encodes one result value in the client's requested format; `None` is SQL NULL.
pub fn encode_value(ty: &DataType, format: Format, v: &Value) -> Result<Option<Vec<u8>>> {
    if v.is_null() {
        return Ok(None);
    }
    match format {
        Format::Text => Ok(Some(convert::storage_to_text(ty, v)?.into_bytes())),
        Format::Binary => encode_binary(ty, v).map(Some),
    }
}

fn value_error(ty: &DataType, v: &Value) -> Error {
    Error::internal(format!("stored value {v:?} cannot be sent as binary {}", ty.sql_name()))
}

/// The stored value as an integer, converting integral REALs and numeric
/// text (SQLite expressions do not always keep the declared type).
fn int_of(ty: &DataType, v: &Value) -> Result<i64> {
    match v {
        Value::Integer(i) => Ok(*i),
        Value::Real(r) if r.is_finite() && r.abs() < 9.2e18 => Ok(r.round() as i64),
        Value::Text(s) => match convert::text_to_storage(&DataType::Int8, s) {
            Ok(Value::Integer(i)) => Ok(i),
            _ => Err(value_error(ty, v)),
        },
        _ => Err(value_error(ty, v)),
    }
}

fn float_of(ty: &DataType, v: &Value) -> Result<f64> {
    match v {
        Value::Integer(i) => Ok(*i as f64),
        Value::Real(r) => Ok(*r),
        Value::Text(s) => convert::parse_float8(s).map_err(|_| value_error(ty, v)),
        _ => Err(value_error(ty, v)),
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::Text(s) => s.clone(),
        other => other.to_string(),
    }
}

fn range_error(ty: &DataType) -> Error {
    Error::new(SqlState::NUMERIC_VALUE_OUT_OF_RANGE, format!("{} out of range", ty.sql_name()))
}

fn encode_binary(ty: &DataType, v: &Value) -> Result<Vec<u8>> {
    Ok(match ty {
        DataType::Bool => vec![(int_of(ty, v)? != 0) as u8],
        DataType::Int2 => i16::try_from(int_of(ty, v)?).map_err(|_| range_error(ty))?.to_be_bytes().to_vec(),
        DataType::Int4 => i32::try_from(int_of(ty, v)?).map_err(|_| range_error(ty))?.to_be_bytes().to_vec(),
        DataType::Int8 => int_of(ty, v)?.to_be_bytes().to_vec(),
        DataType::Oid => u32::try_from(int_of(ty, v)?).map_err(|_| range_error(ty))?.to_be_bytes().to_vec(),
        DataType::Float4 => (float_of(ty, v)? as f32).to_be_bytes().to_vec(),
        DataType::Float8 => float_of(ty, v)?.to_be_bytes().to_vec(),
        DataType::Numeric(_) => numeric_to_binary(&convert::storage_to_text(ty, v)?)?,
        DataType::Bytea => match v {
            Value::Blob(b) => b.clone(),
            other => text_of(other).into_bytes(),
        },
        DataType::Date => match convert::parse_date(&text_of(v))? {
            DateValue::Days(d) => i32::try_from(d - PG_EPOCH_DAYS).map_err(|_| range_error(ty))?.to_be_bytes().to_vec(),
            DateValue::Infinity => i32::MAX.to_be_bytes().to_vec(),
            DateValue::NegInfinity => i32::MIN.to_be_bytes().to_vec(),
        },
        DataType::Time => convert::parse_time(&text_of(v))?.to_be_bytes().to_vec(),
        DataType::Timestamp | DataType::Timestamptz => {
            // Stored UTC text; parse without applying any offset again.
            let us = match convert::parse_timestamp(&text_of(v), false)? {
                TimestampValue::Micros(us) => us - PG_EPOCH_MICROS,
                TimestampValue::Infinity => i64::MAX,
                TimestampValue::NegInfinity => i64::MIN,
            };
            us.to_be_bytes().to_vec()
        }
        DataType::Interval => {
            let i = convert::parse_interval(&text_of(v))?;
            let mut out = Vec::with_capacity(16);
            out.extend_from_slice(&i.micros.to_be_bytes());
            out.extend_from_slice(&i.days.to_be_bytes());
            out.extend_from_slice(&i.months.to_be_bytes());
            out
        }
        DataType::Uuid => match v {
            Value::Blob(b) if b.len() == 16 => b.clone(),
            other => convert::parse_uuid(&text_of(other))?.to_vec(),
        },
        DataType::Jsonb => {
            let mut out = vec![1u8];
            out.extend_from_slice(convert::storage_to_text(ty, v)?.as_bytes());
            out
        }
        DataType::Array(elem) => encode_array_binary(elem, &text_of(v))?,
        DataType::Record(fields) => encode_record_binary(fields, &text_of(v))?,
        // Text-like types (text, varchar, char, name, json, "char", unknown):
        // the binary form is the text's UTF-8 bytes.
        _ => convert::storage_to_text(ty, v)?.into_bytes(),
    })
}

/// PostgreSQL's `record_send` for a record stored as its text: the field
/// count, then each field's type OID, length (-1 for NULL) and binary form.
fn encode_record_binary(fields: &[(String, DataType)], text: &str) -> Result<Vec<u8>> {
    let values = convert::split_record(text)?;
    if values.len() != fields.len() {
        return Err(Error::internal(format!("record {text:?} does not have {} fields", fields.len())));
    }
    let mut out = Vec::new();
    out.extend_from_slice(&(fields.len() as i32).to_be_bytes());
    for ((_, ty), value) in fields.iter().zip(values) {
        out.extend_from_slice(&ty.oid().to_be_bytes());
        match value {
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(text) => {
                let bytes = encode_binary(ty, &convert::text_to_storage(ty, &text)?)?;
                out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
                out.extend_from_slice(&bytes);
            }
        }
    }
    Ok(out)
}

/// PostgreSQL's `array_send` for a one-dimensional array stored as its
/// text literal.
fn encode_array_binary(elem: &DataType, literal: &str) -> Result<Vec<u8>> {
    let items = convert::split_array_literal(literal)?;
    let mut out = Vec::new();
    let has_null = items.iter().any(|i| i.is_none());
    let ndim: i32 = if items.is_empty() { 0 } else { 1 };
    out.extend_from_slice(&ndim.to_be_bytes());
    out.extend_from_slice(&(has_null as i32).to_be_bytes());
    out.extend_from_slice(&elem.oid().to_be_bytes());
    if ndim == 1 {
        out.extend_from_slice(&(items.len() as i32).to_be_bytes());
        out.extend_from_slice(&1i32.to_be_bytes());
    }
    for item in items {
        match item {
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(text) => {
                let v = convert::text_to_storage(elem, &text)?;
                let bytes = encode_binary(elem, &v)?;
                out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
                out.extend_from_slice(&bytes);
            }
        }
    }
    Ok(out)
}

/// PostgreSQL's `numeric_send` for a numeric's text (`-123.4500`, `NaN`, `Infinity`).
pub fn numeric_to_binary(text: &str) -> Result<Vec<u8>> {
    Ok(Numeric::parse(text)?.to_pg_binary())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bin_round_trip(ty: &DataType, v: Value) -> Value {
        let bytes = encode_value(ty, Format::Binary, &v).unwrap().unwrap();
        decode_param(ty, Format::Binary, Some(&bytes), 0).unwrap()
    }

    #[test]
    fn integers_are_big_endian() {
        assert_eq!(
            encode_value(&DataType::Int4, Format::Binary, &Value::Integer(1)).unwrap().unwrap(),
            vec![0, 0, 0, 1]
        );
        assert_eq!(
            encode_value(&DataType::Int2, Format::Binary, &Value::Integer(-2)).unwrap().unwrap(),
            vec![255, 254]
        );
        assert_eq!(bin_round_trip(&DataType::Int8, Value::Integer(i64::MIN)), Value::Integer(i64::MIN));
        assert!(encode_value(&DataType::Int2, Format::Binary, &Value::Integer(70000)).is_err());
        let err = decode_param(&DataType::Int4, Format::Binary, Some(&[1, 2]), 2).unwrap_err();
        assert_eq!(err.code, SqlState::INVALID_BINARY_REPRESENTATION);
        assert_eq!(err.message, "incorrect binary data format in bind parameter 3");
    }

    #[test]
    fn text_format_uses_postgres_spelling() {
        let enc =
            |ty: &DataType, v: Value| String::from_utf8(encode_value(ty, Format::Text, &v).unwrap().unwrap()).unwrap();
        assert_eq!(enc(&DataType::Bool, Value::Integer(1)), "t");
        assert_eq!(enc(&DataType::Float8, Value::Real(0.1)), "0.1");
        assert_eq!(enc(&DataType::Numeric(Some((8, 3))), Value::Real(1.5)), "1.500");
        assert_eq!(enc(&DataType::Timestamptz, Value::Text("2024-01-01 00:00:00".into())), "2024-01-01 00:00:00+00");
        assert_eq!(enc(&DataType::Bytea, Value::Blob(vec![0xde, 0xad])), "\\xdead");
        assert_eq!(encode_value(&DataType::Text, Format::Text, &Value::Null).unwrap(), None);
        assert_eq!(
            decode_param(&DataType::Int4, Format::Text, Some(b"abc"), 0).unwrap_err().message,
            "invalid input syntax for type integer: \"abc\""
        );
        assert_eq!(decode_param(&DataType::Int4, Format::Text, None, 0).unwrap(), Value::Null);
        assert_eq!(decode_param(&DataType::Char(1), Format::Text, Some(b"abc"), 0).unwrap(), Value::Text("abc".into()));
    }

    #[test]
    fn dates_and_timestamps_count_from_2000() {
        let d = encode_value(&DataType::Date, Format::Binary, &Value::Text("2000-01-02".into())).unwrap().unwrap();
        assert_eq!(d, 1i32.to_be_bytes());
        let ts = encode_value(&DataType::Timestamp, Format::Binary, &Value::Text("2000-01-01 00:00:01".into()))
            .unwrap()
            .unwrap();
        assert_eq!(ts, 1_000_000i64.to_be_bytes());
        for (ty, text) in [
            (DataType::Date, "1999-12-31"),
            (DataType::Date, "infinity"),
            (DataType::Time, "23:59:59.999999"),
            (DataType::Timestamp, "1970-01-01 00:00:00"),
            (DataType::Timestamptz, "2024-06-30 12:34:56.789"),
            (DataType::Interval, "1 year 2 mons -3 days +04:05:06.5"),
            (DataType::Uuid, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
        ] {
            assert_eq!(bin_round_trip(&ty, Value::Text(text.into())), Value::Text(text.into()), "{ty}");
        }
        let tz = encode_value(&DataType::Timestamptz, Format::Binary, &Value::Text("2000-01-01 00:00:00".into()));
        assert_eq!(tz.unwrap().unwrap(), 0i64.to_be_bytes());
    }

    #[test]
    fn numeric_binary_matches_postgres() {
        // 1234.5 with dscale 2: ndigits 2, weight 0, digits [1234, 5000].
        assert_eq!(numeric_to_binary("1234.50").unwrap(), vec![0, 2, 0, 0, 0, 0, 0, 2, 0x04, 0xD2, 0x13, 0x88]);
        assert_eq!(numeric_to_binary("0.00").unwrap(), vec![0, 0, 0, 0, 0, 0, 0, 2]);
        assert_eq!(numeric_to_binary("-0.0001").unwrap(), vec![0, 1, 0xFF, 0xFF, 0x40, 0, 0, 4, 0, 1]);
        assert_eq!(numeric_to_binary("10000").unwrap(), vec![0, 1, 0, 1, 0, 0, 0, 0, 0, 1]);
        let un = DataType::Numeric(None);
        for text in ["1234.50", "-0.0001", "10000", "0", "123456789012345678901234567890.123456789", "1.10", "NaN"] {
            let v = Value::Text(text.into());
            assert_eq!(bin_round_trip(&un, v.clone()), v, "{text}");
        }
        // A binary parameter for numeric(10,2) is rounded to the scale like text input.
        let ty = DataType::Numeric(Some((10, 2)));
        let b = numeric_to_binary("-12.505").unwrap();
        assert_eq!(decode_binary(&ty, &b, 0).unwrap(), Value::Text("-12.51".into()));
        assert_eq!(bin_round_trip(&ty, Value::Real(-12.5)), Value::Text("-12.50".into()));
    }

    #[test]
    fn jsonb_binary_has_version_byte() {
        let b = encode_value(&DataType::Jsonb, Format::Binary, &Value::Text("{\"a\":1}".into())).unwrap().unwrap();
        assert_eq!(b, b"\x01{\"a\": 1}");
        assert_eq!(bin_round_trip(&DataType::Jsonb, Value::Text("{\"a\":1}".into())), Value::Text("{\"a\":1}".into()));
        assert!(decode_param(&DataType::Jsonb, Format::Binary, Some(b"\x02{}"), 0).is_err());
    }

    #[test]
    fn arrays_encode_like_array_send() {
        let b =
            encode_value(&DataType::Array(Box::new(DataType::Int4)), Format::Binary, &Value::Text("{1,NULL}".into()))
                .unwrap()
                .unwrap();
        let mut want = Vec::new();
        for x in [1i32, 1, 23, 2, 1, 4, 1, -1] {
            want.extend_from_slice(&x.to_be_bytes());
        }
        assert_eq!(b, want);
    }

    #[test]
    fn records_encode_like_record_send() {
        let ty = DataType::Record(vec![("x".into(), DataType::Int2), ("n".into(), DataType::Int4)]);
        let text = encode_value(&ty, Format::Text, &Value::Text("(3,1)".into())).unwrap().unwrap();
        assert_eq!(text, b"(3,1)");
        let b = encode_value(&ty, Format::Binary, &Value::Text("(3,)".into())).unwrap().unwrap();
        let mut want = Vec::new();
        want.extend_from_slice(&2i32.to_be_bytes());
        want.extend_from_slice(&21u32.to_be_bytes());
        want.extend_from_slice(&2i32.to_be_bytes());
        want.extend_from_slice(&3i16.to_be_bytes());
        want.extend_from_slice(&23u32.to_be_bytes());
        want.extend_from_slice(&(-1i32).to_be_bytes());
        assert_eq!(b, want);
        // A record cannot be a parameter, as in PostgreSQL.
        let err = decode_param(&ty, Format::Text, Some(b"(1,2)"), 0).unwrap_err();
        assert_eq!(err.code, SqlState::FEATURE_NOT_SUPPORTED);
    }

    #[test]
    fn garbage_binary_never_panics() {
        let types = [
            DataType::Bool,
            DataType::Int2,
            DataType::Int4,
            DataType::Int8,
            DataType::Float4,
            DataType::Float8,
            DataType::Numeric(None),
            DataType::Numeric(Some((4, 2))),
            DataType::Text,
            DataType::Bytea,
            DataType::Date,
            DataType::Time,
            DataType::Timestamp,
            DataType::Timestamptz,
            DataType::Interval,
            DataType::Json,
            DataType::Jsonb,
            DataType::Uuid,
            DataType::Oid,
            DataType::Array(Box::new(DataType::Int4)),
        ];
        let mut blobs: Vec<Vec<u8>> =
            vec![vec![], vec![0xff], vec![0; 3], vec![0xff; 8], vec![0x7f; 16], vec![1, 0x80]];
        blobs.push(vec![0xff, 0xff, 0x7f, 0xff, 0x40, 0x00, 0x3f, 0xff, 0x27, 0x10]);
        blobs.push(vec![0, 1, 0x80, 0, 0, 0, 0, 0, 0x27, 0x0f]);
        for n in 0..40u8 {
            blobs.push((0..n).map(|i| i.wrapping_mul(37).wrapping_add(n)).collect());
        }
        for ty in &types {
            for b in &blobs {
                for format in [Format::Text, Format::Binary] {
                    if let Ok(v) = decode_param(ty, format, Some(b), 0) {
                        let _ = encode_value(ty, Format::Binary, &v);
                        let _ = encode_value(ty, Format::Text, &v);
                    }
                }
            }
            for v in
                [Value::Text("garbage".into()), Value::Blob(vec![1]), Value::Real(f64::INFINITY), Value::Integer(-1)]
            {
                let _ = encode_value(ty, Format::Binary, &v);
                let _ = encode_value(ty, Format::Text, &v);
            }
        }
    }
}
