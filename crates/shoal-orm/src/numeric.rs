//! `NUMERIC(p, s)` columns behave the same on every backend.
//!
//! PostgreSQL, Shoal and MySQL round a value written to a `NUMERIC(p, s)`
//! column to `s` fractional digits (half away from zero) and refuse one
//! with more than `p - s` integer digits (22003). SQLite declares the type
//! but enforces neither, and reads `12.50` back as `12.5`. So the ORM does
//! the rounding and the check itself when it writes a model, with the
//! servers' rule (on them it changes nothing), and gives a decoded value
//! the column's scale:
//!
//! ```text
//!   model field 1.005  ──round to s=2──▶ "1.01" ──▶ any backend ──▶ 1.01 (scale 2)
//!   model field 1e10 in NUMERIC(12, 2) ──▶ Error 22003 "numeric field overflow", nothing sent
//! ```
//!
//! The values are the text of `Value::Decimal`, so this works without the
//! `decimal` feature's types.

use crate::error::{Error, Result};
use crate::schema::ColumnDef;
use crate::value::Value;

/// The largest precision a model may declare: every number of up to 28
/// digits fits `rust_decimal::Decimal` (96-bit mantissa, scale ≤ 28).
pub const MAX_PRECISION: u32 = 28;

/// Rounds every `NUMERIC(p, s)` value of one row (in column order) to its
/// scale and refuses one that overflows the precision.
pub(crate) fn conform_row(table: &str, columns: &[ColumnDef], row: &mut [Value]) -> Result<()> {
    for (c, v) in columns.iter().zip(row.iter_mut()) {
        conform(table, c, v)?;
    }
    Ok(())
}

/// [`conform_row`] for one value of column `column`.
pub(crate) fn conform(table: &str, column: &ColumnDef, value: &mut Value) -> Result<()> {
    let (Some((precision, scale)), Value::Decimal(text)) = (column.numeric, &*value) else { return Ok(()) };
    let rounded = round(text, precision, scale).map_err(|message| Error::Database {
        sqlstate: "22003".into(),
        message: format!("numeric field overflow: {table}.{} is NUMERIC({precision}, {scale}); {message}", column.name),
    })?;
    *value = Value::Decimal(rounded);
    Ok(())
}

/// `text` (a plain decimal: optional sign, digits, optional point and
/// digits) rounded to `scale` digits half away from zero, with exactly
/// `scale` fractional digits; an error when it needs more than
/// `precision - scale` integer digits.
pub fn round(text: &str, precision: u32, scale: u32) -> std::result::Result<String, String> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let well_formed = !(int.is_empty() && frac.is_empty())
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit());
    if !well_formed {
        return Err(format!("{text} is not a decimal number"));
    }
    let scale_digits = scale as usize;
    // Integer and kept fractional digits as one digit string, then the
    // first dropped digit decides the rounding.
    let mut kept: Vec<u8> = int.bytes().map(|b| b - b'0').collect();
    kept.extend(frac.bytes().take(scale_digits).map(|b| b - b'0'));
    kept.extend(std::iter::repeat_n(0, scale_digits.saturating_sub(frac.len())));
    if frac.as_bytes().get(scale_digits).is_some_and(|&b| b >= b'5') {
        let mut i = kept.len();
        loop {
            if i == 0 {
                kept.insert(0, 1);
                break;
            }
            i -= 1;
            if kept[i] == 9 {
                kept[i] = 0;
            } else {
                kept[i] += 1;
                break;
            }
        }
    }
    let int_len = kept.len() - scale_digits;
    let significant_int = kept[..int_len].iter().skip_while(|&&d| d == 0).count();
    let allowed = precision.saturating_sub(scale) as usize;
    if significant_int > allowed {
        return Err(format!(
            "{text} has {significant_int} digits before the point, at most {allowed} fit (PostgreSQL's rule)"
        ));
    }
    let mut out = String::with_capacity(kept.len() + 3);
    let is_zero = kept.iter().all(|&d| d == 0);
    if negative && !is_zero {
        out.push('-');
    }
    let int_part = &kept[int_len - significant_int..int_len];
    if int_part.is_empty() {
        out.push('0');
    }
    out.extend(int_part.iter().map(|d| char::from(b'0' + d)));
    if scale_digits > 0 {
        out.push('.');
        out.extend(kept[int_len..].iter().map(|d| char::from(b'0' + d)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::round;

    #[test]
    fn rounds_half_away_from_zero_to_the_scale() {
        for (input, want) in [
            ("1.005", "1.01"),
            ("-1.005", "-1.01"),
            ("1.004", "1.00"),
            ("12.5", "12.50"),
            ("99.995", "100.00"),
            ("-0.001", "0.00"),
            ("0", "0.00"),
            (".5", "0.50"),
            ("007.1", "7.10"),
            ("+3", "3.00"),
        ] {
            assert_eq!(round(input, 12, 2).as_deref(), Ok(want), "{input}");
        }
        assert_eq!(round("2.5", 5, 0).as_deref(), Ok("3"));
        assert_eq!(round("-2.5", 5, 0).as_deref(), Ok("-3"));
    }

    #[test]
    fn refuses_too_many_integer_digits_and_junk() {
        assert_eq!(round("9999999999.99", 12, 2).as_deref(), Ok("9999999999.99"));
        assert!(round("9999999999.995", 12, 2).unwrap_err().contains("11 digits before the point"));
        assert!(round("10000000000", 12, 2).is_err());
        assert!(round("0.5", 2, 2).is_ok());
        assert!(round("0.999", 2, 2).unwrap_err().contains("at most 0"));
        for junk in ["", ".", "-", "1e5", "1.2.3", "NaN", " 1"] {
            assert!(round(junk, 12, 2).unwrap_err().contains("not a decimal"), "{junk:?}");
        }
    }
}
