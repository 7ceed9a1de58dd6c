//! PostgreSQL text syntax ⇄ Shoal's storage representation.
//!
//! Every value that enters Shoal as text — a literal cast by the SQL layer, a
//! text-format parameter from the wire — goes through [`text_to_storage`],
//! which accepts PostgreSQL's input syntax for the type, validates it with
//! PostgreSQL's error messages and SQLSTATEs, and normalises it into the
//! storage representation documented in [`crate::types`]. Every value that
//! leaves as text goes through [`storage_to_text`], which prints exactly what
//! PostgreSQL would print (`t`/`f`, shortest round-trip floats, numerics with
//! their scale, `+00` on `timestamptz`, `\x` hex for `bytea`, jsonb's spacing).
//!
//! ```text
//!   '  TRUE '  ──text_to_storage(Bool)──▶  Integer(1)  ──storage_to_text──▶  t
//!   '2024-01-01 12:00+02' (timestamptz) ──▶ Text("2024-01-01 10:00:00") ──▶ 2024-01-01 10:00:00+00
//!   '1.5 days' (interval)               ──▶ Text("1 day 12:00:00")      ──▶ 1 day 12:00:00
//! ```
//!
//! The building blocks (calendar arithmetic, interval parts, float and numeric
//! formatting, the JSON parser) are public because the wire layer's *binary*
//! codec needs the same conversions, and so may the SQL layer.
//!
//! Deliberately out of scope: BC dates, time zones other than UTC offsets
//! (sessions run in UTC), the non-ISO `DateStyle`s, and `now`/`today` input
//! (those are non-deterministic and belong to the SQL layer's execution
//! context). Nothing here panics on any input: all arithmetic is checked.

use crate::{DataType, Error, Result, SqlState, Value};

// ---------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------

/// Parses PostgreSQL's text input syntax for `ty` into its storage form.
pub fn text_to_storage(ty: &DataType, text: &str) -> Result<Value> {
    match ty {
        DataType::Bool => parse_bool(text).map(|b| Value::Integer(b as i64)),
        DataType::Int2 => parse_int(text, i16::MIN as i64, i16::MAX as i64, "smallint").map(Value::Integer),
        DataType::Int4 => parse_int(text, i32::MIN as i64, i32::MAX as i64, "integer").map(Value::Integer),
        DataType::Int8 => parse_int(text, i64::MIN, i64::MAX, "bigint").map(Value::Integer),
        DataType::Oid => parse_int(text, 0, u32::MAX as i64, "oid").map(Value::Integer),
        DataType::Float4 => parse_float4(text).map(|f| Value::Real(f as f64)),
        DataType::Float8 => parse_float8(text).map(Value::Real),
        DataType::Numeric(typmod) => parse_numeric(text, *typmod).map(|n| Value::Text(n.to_string())),
        DataType::Text | DataType::Unknown => Ok(Value::Text(text.to_string())),
        DataType::Varchar(None) => Ok(Value::Text(text.to_string())),
        DataType::Varchar(Some(n)) => fit_length(text, *n, false, "character varying").map(Value::Text),
        DataType::Char(n) => fit_length(text, *n, true, "character").map(Value::Text),
        DataType::Name => Ok(Value::Text(truncate_bytes(text, 63).to_string())),
        DataType::CatalogChar => Ok(Value::Text(text.chars().next().map(String::from).unwrap_or_default())),
        DataType::Bytea => parse_bytea(text).map(Value::Blob),
        DataType::Date => parse_date(text).map(|d| Value::Text(d.to_string())),
        DataType::Time => parse_time(text).map(|t| Value::Text(format_time(t))),
        DataType::Timestamp => parse_timestamp(text, false).map(|t| Value::Text(t.to_string())),
        DataType::Timestamptz => parse_timestamp(text, true).map(|t| Value::Text(t.to_string())),
        DataType::Interval => parse_interval(text).map(|i| Value::Text(i.to_string())),
        DataType::Json => json::parse(text).map(|_| Value::Text(text.to_string())),
        DataType::Jsonb => json::parse(text).map(|j| Value::Text(j.to_jsonb().minified())),
        DataType::Uuid => parse_uuid(text).map(|u| Value::Text(format_uuid(&u))),
        DataType::Array(elem) => parse_array(elem, text).map(Value::Text),
        // PostgreSQL cannot read an anonymous record either.
        DataType::Record(_) => {
            Err(Error::new(SqlState::FEATURE_NOT_SUPPORTED, "input of anonymous composite types is not implemented"))
        }
    }
}

/// Prints a stored value the way PostgreSQL prints a value of type `ty`.
///
/// `Value::Null` has no text form; callers send SQL NULL instead, so it is
/// reported as an internal error.
pub fn storage_to_text(ty: &DataType, v: &Value) -> Result<String> {
    if v.is_null() {
        return Err(Error::internal("NULL has no text representation"));
    }
    Ok(match ty {
        DataType::Bool => match v {
            Value::Integer(i) => bool_text(*i != 0),
            Value::Real(r) => bool_text(*r != 0.0),
            Value::Text(s) => bool_text(parse_bool(s)?),
            Value::Blob(b) => bool_text(!b.is_empty()),
            Value::Null => unreachable_null(),
        },
        DataType::Int2 | DataType::Int4 | DataType::Int8 | DataType::Oid => match v {
            Value::Integer(i) => i.to_string(),
            Value::Real(r) if r.fract() == 0.0 && r.abs() < 9.2e18 => (*r as i64).to_string(),
            Value::Real(r) => format_float8(*r),
            other => plain_text(other),
        },
        DataType::Float4 => match as_f64(v) {
            Some(f) => format_float4(f as f32),
            None => plain_text(v),
        },
        DataType::Float8 => match as_f64(v) {
            Some(f) => format_float8(f),
            None => plain_text(v),
        },
        // Stored as PostgreSQL's text already; integers and REALs (written
        // before numerics were exact) are printed at the type's scale.
        DataType::Numeric(typmod) => match v {
            Value::Text(s) => s.clone(),
            Value::Integer(i) => numeric_at_scale(crate::numeric::Numeric::from_i64(*i), *typmod),
            Value::Real(r) => format_numeric(*r, typmod.map(|(_, s)| s)),
            other => plain_text(other),
        },
        DataType::Bytea => match v {
            Value::Blob(b) => format_bytea(b),
            Value::Text(s) => format_bytea(s.as_bytes()),
            other => format_bytea(plain_text(other).as_bytes()),
        },
        DataType::Timestamptz => {
            let s = plain_text(v);
            if s == "infinity" || s == "-infinity" || has_utc_suffix(&s) {
                s
            } else {
                format!("{s}+00")
            }
        }
        DataType::Jsonb => {
            let s = plain_text(v);
            match json::parse(&s) {
                Ok(j) => j.to_jsonb().pretty(),
                Err(_) => s,
            }
        }
        DataType::Uuid => match v {
            Value::Blob(b) if b.len() == 16 => {
                let mut u = [0u8; 16];
                u.copy_from_slice(b);
                format_uuid(&u)
            }
            other => plain_text(other),
        },
        _ => plain_text(v),
    })
}

fn unreachable_null() -> String {
    // storage_to_text rejects NULL before matching; kept total instead of panicking.
    String::new()
}

fn bool_text(b: bool) -> String {
    if b { "t" } else { "f" }.to_string()
}

fn has_utc_suffix(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() > 3
        && (b[b.len() - 3] == b'+' || b[b.len() - 3] == b'-')
        && s[s.len() - 2..].bytes().all(|c| c.is_ascii_digit())
}

fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(i) => Some(*i as f64),
        Value::Real(r) => Some(*r),
        Value::Text(s) => parse_float8(s).ok(),
        _ => None,
    }
}

/// The storage value as text with no type-specific formatting.
fn plain_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Integer(i) => i.to_string(),
        Value::Real(r) => format_float8(*r),
        Value::Text(s) => s.clone(),
        Value::Blob(b) => String::from_utf8_lossy(b).into_owned(),
    }
}

fn invalid_syntax(type_name: &str, text: &str) -> Error {
    Error::new(SqlState::INVALID_TEXT_REPRESENTATION, format!("invalid input syntax for type {type_name}: \"{text}\""))
}

fn out_of_range(type_name: &str, text: &str) -> Error {
    Error::new(SqlState::NUMERIC_VALUE_OUT_OF_RANGE, format!("value \"{text}\" is out of range for type {type_name}"))
}

// ---------------------------------------------------------------------------
// Booleans, integers, floats
// ---------------------------------------------------------------------------

/// PostgreSQL's boolean input: `t`, `true`, `yes`, `on`, `1` and their
/// opposites, case-insensitive, any unique prefix, surrounding blanks allowed.
pub fn parse_bool(text: &str) -> Result<bool> {
    let t = text.trim().to_ascii_lowercase();
    let prefix_of = |word: &str, min: usize| t.len() >= min && word.starts_with(t.as_str());
    if t == "1" || prefix_of("true", 1) || prefix_of("yes", 1) || prefix_of("on", 2) {
        Ok(true)
    } else if t == "0" || prefix_of("false", 1) || prefix_of("no", 1) || prefix_of("off", 2) {
        Ok(false)
    } else {
        Err(invalid_syntax("boolean", text))
    }
}

/// Integer input: blanks, sign, decimal digits (PostgreSQL 16 also accepts
/// `0x`/`0o`/`0b` prefixes and `_` between digits), range-checked.
pub fn parse_int(text: &str, min: i64, max: i64, type_name: &str) -> Result<i64> {
    let t = text.trim();
    let (neg, body) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits) = if let Some(rest) = lower.strip_prefix("0x") {
        (16, rest)
    } else if let Some(rest) = lower.strip_prefix("0o") {
        (8, rest)
    } else if let Some(rest) = lower.strip_prefix("0b") {
        (2, rest)
    } else {
        (10, lower.as_str())
    };
    if digits.is_empty() || digits.starts_with('_') || digits.ends_with('_') || digits.contains("__") {
        return Err(invalid_syntax(type_name, text));
    }
    let mut acc: i128 = 0;
    for c in digits.chars() {
        if c == '_' {
            continue;
        }
        let d = c.to_digit(radix).ok_or_else(|| invalid_syntax(type_name, text))?;
        acc = acc * radix as i128 + d as i128;
        if acc > (u64::MAX as i128) * 2 {
            return Err(out_of_range(type_name, text));
        }
    }
    let v = if neg { -acc } else { acc };
    if v < min as i128 || v > max as i128 {
        return Err(out_of_range(type_name, text));
    }
    Ok(v as i64)
}

fn parse_float_special(t: &str) -> Option<f64> {
    match t.to_ascii_lowercase().as_str() {
        "nan" | "+nan" | "-nan" => Some(f64::NAN),
        "infinity" | "+infinity" | "inf" | "+inf" => Some(f64::INFINITY),
        "-infinity" | "-inf" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

fn is_float_syntax(t: &str) -> bool {
    // Rust's parser also accepts words like "infinity"; those are handled
    // separately, so only digits, sign, point and exponent are allowed here.
    !t.is_empty() && t.bytes().all(|c| c.is_ascii_digit() || matches!(c, b'+' | b'-' | b'.' | b'e' | b'E'))
}

/// `double precision` input, with `NaN`/`Infinity`; overflow is 22003.
pub fn parse_float8(text: &str) -> Result<f64> {
    let t = text.trim();
    if let Some(f) = parse_float_special(t) {
        return Ok(f);
    }
    if !is_float_syntax(t) {
        return Err(invalid_syntax("double precision", text));
    }
    let f: f64 = t.parse().map_err(|_| invalid_syntax("double precision", text))?;
    if f.is_infinite() {
        return Err(Error::new(
            SqlState::NUMERIC_VALUE_OUT_OF_RANGE,
            format!("\"{t}\" is out of range for type double precision"),
        ));
    }
    Ok(f)
}

/// `real` input.
pub fn parse_float4(text: &str) -> Result<f32> {
    let t = text.trim();
    if let Some(f) = parse_float_special(t) {
        return Ok(f as f32);
    }
    if !is_float_syntax(t) {
        return Err(invalid_syntax("real", text));
    }
    let f: f64 = t.parse().map_err(|_| invalid_syntax("real", text))?;
    let g = f as f32;
    if g.is_infinite() || (f != 0.0 && g == 0.0) {
        return Err(Error::new(SqlState::NUMERIC_VALUE_OUT_OF_RANGE, format!("\"{t}\" is out of range for type real")));
    }
    Ok(g)
}

/// Splits Rust's shortest round-trip scientific form (`-1.25e3`) into sign,
/// significant digits and the decimal exponent of the first digit.
fn sci_parts(sci: &str) -> (bool, String, i32) {
    let (neg, rest) = match sci.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, sci),
    };
    let (mant, exp) = rest.split_once('e').unwrap_or((rest, "0"));
    let digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    (neg, digits, exp.parse().unwrap_or(0))
}

/// PostgreSQL's float output (`extra_float_digits = 1`, the default): the
/// shortest string that round-trips, fixed notation for decimal exponents in
/// `-4..max_fixed_exp`, otherwise `d.ddde±XX`.
fn format_float(neg: bool, digits: &str, exp: i32, max_fixed_exp: i32) -> String {
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if digits.bytes().all(|d| d == b'0') {
        out.push('0');
        return out;
    }
    if (-4..max_fixed_exp).contains(&exp) {
        if exp >= 0 {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                out.push_str(digits);
                out.push_str(&"0".repeat(int_len - digits.len()));
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        } else {
            out.push_str("0.");
            out.push_str(&"0".repeat((-exp - 1) as usize));
            out.push_str(digits);
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", exp.unsigned_abs()));
    }
    out
}

/// `double precision` output exactly as PostgreSQL prints it.
pub fn format_float8(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let (neg, digits, exp) = sci_parts(&format!("{v:e}"));
    format_float(neg, &digits, exp, 15)
}

/// `real` output exactly as PostgreSQL prints it.
pub fn format_float4(v: f32) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let (neg, digits, exp) = sci_parts(&format!("{v:e}"));
    format_float(neg, &digits, exp, 6)
}

// ---------------------------------------------------------------------------
// Numeric
// ---------------------------------------------------------------------------

/// An exact decimal read from text: `digits × 10^exp`, used to round
/// numerics the way PostgreSQL does (half away from zero, on the decimal
/// digits, not on a binary float).
#[derive(Clone, Debug, PartialEq)]
pub struct Decimal {
    pub negative: bool,
    /// Significant digits without leading zeros (empty for zero).
    pub digits: Vec<u8>,
    pub exp: i64,
    /// Digits after the point as written (PostgreSQL's display scale).
    pub dscale: u32,
}

/// Splits decimal text `[+-]digits[.digits][e[+-]digits]` (already
/// trimmed) into its sign, integer digits, fraction digits and exponent
/// (at most 9 digits); `None` when it is not such text.
pub(crate) fn split_decimal(t: &str) -> Option<(bool, &str, &str, i64)> {
    let (negative, body) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (mant, exp_part) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let (int_part, frac_part) = mant.split_once('.').unwrap_or((mant, ""));
    if (int_part.is_empty() && frac_part.is_empty())
        || !int_part.bytes().all(|c| c.is_ascii_digit())
        || !frac_part.bytes().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let exp = match exp_part {
        Some(e) => {
            let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
            if digits.is_empty() || digits.len() > 9 || !digits.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            e.parse().ok()?
        }
        None => 0,
    };
    Some((negative, int_part, frac_part, exp))
}

impl Decimal {
    /// Parses `[+-]digits[.digits][e[+-]digits]`.
    pub fn parse(text: &str) -> Option<Decimal> {
        let (negative, int_part, frac_part, e) = split_decimal(text.trim())?;
        let mut digits: Vec<u8> = int_part.bytes().chain(frac_part.bytes()).map(|c| c - b'0').collect();
        let mut exp = e - frac_part.len() as i64;
        let lead = digits.iter().take_while(|d| **d == 0).count();
        digits.drain(..lead);
        while digits.last() == Some(&0) {
            digits.pop();
            exp += 1;
        }
        let dscale = (frac_part.len() as i64 - e).clamp(0, 16383) as u32;
        Some(Decimal { negative: negative && !digits.is_empty(), digits, exp, dscale })
    }

    /// Rounds to `scale` digits after the point, half away from zero.
    pub fn round(&mut self, scale: u32) {
        let cut = -(scale as i64) - self.exp;
        if cut <= 0 {
            self.dscale = scale;
            return;
        }
        let cut = cut as usize;
        if cut > self.digits.len() {
            self.digits.clear();
            self.exp = 0;
            self.negative = false;
        } else {
            let keep = self.digits.len() - cut;
            let round_up = self.digits[keep] >= 5;
            self.digits.truncate(keep);
            self.exp += cut as i64;
            if round_up {
                let mut i = self.digits.len();
                loop {
                    if i == 0 {
                        self.digits.insert(0, 1);
                        break;
                    }
                    i -= 1;
                    if self.digits[i] == 9 {
                        self.digits[i] = 0;
                    } else {
                        self.digits[i] += 1;
                        break;
                    }
                }
            }
            while self.digits.last() == Some(&0) {
                self.digits.pop();
                self.exp += 1;
            }
            if self.digits.is_empty() {
                self.negative = false;
                self.exp = 0;
            }
        }
        self.dscale = scale;
    }

    /// Number of digits before the decimal point (0 for values below 1).
    pub fn integer_digits(&self) -> i64 {
        if self.digits.is_empty() {
            0
        } else {
            (self.digits.len() as i64 + self.exp).max(0)
        }
    }

    /// Plain decimal text with exactly `dscale` digits after the point.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        if self.negative {
            out.push('-');
        }
        let point = self.digits.len() as i64 + self.exp; // digits before the point
        if point <= 0 {
            out.push('0');
        } else {
            for i in 0..point {
                out.push(char::from(b'0' + self.digits.get(i as usize).copied().unwrap_or(0)));
            }
        }
        if self.dscale > 0 {
            out.push('.');
            for k in 0..self.dscale as i64 {
                let idx = point + k;
                let d = if idx >= 0 { self.digits.get(idx as usize).copied().unwrap_or(0) } else { 0 };
                out.push(char::from(b'0' + d));
            }
        }
        out
    }
}

/// `numeric[(p,s)]` input: validates the syntax and PostgreSQL's limits,
/// rounds to the scale and checks the precision (22003 `numeric field
/// overflow`). The stored form is the result's text.
pub fn parse_numeric(text: &str, typmod: Option<(u32, u32)>) -> Result<crate::numeric::Numeric> {
    let n = crate::numeric::Numeric::parse(text)?;
    match typmod {
        Some((p, s)) => n.apply_typmod(p, s),
        None => Ok(n),
    }
}

fn numeric_at_scale(n: crate::numeric::Numeric, typmod: Option<(u32, u32)>) -> String {
    match typmod {
        Some((_, s)) => n.round(s as i64).to_string(),
        None => n.to_string(),
    }
}

/// `numeric` output of a stored REAL: exactly `scale` decimals when the type
/// has one, otherwise up to 15 significant digits (what a REAL holds), never
/// in exponent notation.
pub fn format_numeric(v: f64, scale: Option<u32>) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let sci = format!("{v:.14e}");
    let (neg, digits, exp) = sci_parts(&sci);
    let mut d = Decimal {
        negative: neg,
        digits: digits.bytes().map(|c| c - b'0').collect(),
        exp: exp as i64 - (digits.len() as i64 - 1),
        dscale: 0,
    };
    let lead = d.digits.iter().take_while(|x| **x == 0).count();
    d.digits.drain(..lead);
    while d.digits.last() == Some(&0) {
        d.digits.pop();
        d.exp += 1;
    }
    if d.digits.is_empty() {
        d.negative = false;
        d.exp = 0;
    }
    match scale {
        Some(s) => d.round(s),
        None => d.dscale = (-d.exp).max(0) as u32,
    }
    d.to_text()
}

// ---------------------------------------------------------------------------
// Character types and bytea
// ---------------------------------------------------------------------------

fn truncate_bytes(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `varchar(n)` / `char(n)` input: too long is 22001 unless only blanks are
/// cut; `char(n)` is blank-padded to `n`.
fn fit_length(text: &str, n: u32, pad: bool, type_name: &str) -> Result<String> {
    let n = n as usize;
    let count = text.chars().count();
    if count > n {
        let (head, tail) = text.split_at(text.char_indices().nth(n).map(|(i, _)| i).unwrap_or(text.len()));
        if tail.chars().all(|c| c == ' ') {
            return Ok(head.to_string());
        }
        return Err(Error::new(
            SqlState::STRING_DATA_RIGHT_TRUNCATION,
            format!("value too long for type {type_name}({n})"),
        ));
    }
    let mut out = text.to_string();
    if pad {
        out.extend(std::iter::repeat_n(' ', n - count));
    }
    Ok(out)
}

/// `bytea` input in hex (`\x0a0b`) or escape (`a\\b\001`) format.
pub fn parse_bytea(text: &str) -> Result<Vec<u8>> {
    if let Some(hex) = text.strip_prefix("\\x").or_else(|| text.strip_prefix("\\X")) {
        let mut out = Vec::with_capacity(hex.len() / 2);
        let mut chars = hex.chars().filter(|c| !c.is_ascii_whitespace());
        while let Some(hi) = chars.next() {
            let lo = chars.next().ok_or_else(|| {
                Error::new(SqlState::INVALID_PARAMETER_VALUE, "invalid hexadecimal data: odd number of digits")
            })?;
            let h = hex_digit(hi)?;
            let l = hex_digit(lo)?;
            out.push(h << 4 | l);
        }
        return Ok(out);
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
        } else if bytes.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else if let Some(oct) = bytes.get(i + 1..i + 4) {
            if matches!(oct[0], b'0'..=b'3') && matches!(oct[1], b'0'..=b'7') && matches!(oct[2], b'0'..=b'7') {
                out.push((oct[0] - b'0') << 6 | (oct[1] - b'0') << 3 | (oct[2] - b'0'));
                i += 4;
            } else {
                return Err(invalid_syntax_plain("bytea"));
            }
        } else {
            return Err(invalid_syntax_plain("bytea"));
        }
    }
    Ok(out)
}

fn invalid_syntax_plain(type_name: &str) -> Error {
    Error::new(SqlState::INVALID_TEXT_REPRESENTATION, format!("invalid input syntax for type {type_name}"))
}

fn hex_digit(c: char) -> Result<u8> {
    c.to_digit(16)
        .map(|d| d as u8)
        .ok_or_else(|| Error::new(SqlState::INVALID_PARAMETER_VALUE, format!("invalid hexadecimal digit: \"{c}\"")))
}

/// `bytea` output in hex format.
pub fn format_bytea(b: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(2 + b.len() * 2);
    s.push_str("\\x");
    for byte in b {
        s.push(HEX[(byte >> 4) as usize] as char);
        s.push(HEX[(byte & 15) as usize] as char);
    }
    s
}

// ---------------------------------------------------------------------------
// UUID
// ---------------------------------------------------------------------------

/// `uuid` input: 32 hex digits, optionally in braces, with hyphens allowed
/// after any group of four digits (what PostgreSQL accepts).
pub fn parse_uuid(text: &str) -> Result<[u8; 16]> {
    let t = text.trim();
    let inner = match t.strip_prefix('{') {
        Some(rest) => rest.strip_suffix('}').ok_or_else(|| invalid_syntax("uuid", text))?,
        None => t,
    };
    let mut out = [0u8; 16];
    let mut n = 0usize;
    let mut prev_hyphen = false;
    for c in inner.chars() {
        if c == '-' {
            if n == 0 || !n.is_multiple_of(4) || prev_hyphen || n == 32 {
                return Err(invalid_syntax("uuid", text));
            }
            prev_hyphen = true;
            continue;
        }
        prev_hyphen = false;
        let d = c.to_digit(16).ok_or_else(|| invalid_syntax("uuid", text))? as u8;
        if n >= 32 {
            return Err(invalid_syntax("uuid", text));
        }
        out[n / 2] |= if n.is_multiple_of(2) { d << 4 } else { d };
        n += 1;
    }
    if n != 32 || prev_hyphen {
        return Err(invalid_syntax("uuid", text));
    }
    Ok(out)
}

/// Canonical lower-case `8-4-4-4-12` form.
pub fn format_uuid(u: &[u8; 16]) -> String {
    let hex = format_bytea(u);
    let h = &hex[2..];
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

// ---------------------------------------------------------------------------
// Dates and times
// ---------------------------------------------------------------------------

/// Microseconds in a day.
pub const USECS_PER_DAY: i64 = 86_400_000_000;
/// Days from 1970-01-01 (the Unix epoch) to 2000-01-01 (PostgreSQL's epoch).
pub const PG_EPOCH_DAYS: i64 = 10_957;
/// Largest year accepted (PostgreSQL's limit is 294276 AD).
const MAX_YEAR: i64 = 294_276;

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number (days since 1970-01-01).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// A date, or one of PostgreSQL's infinities.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DateValue {
    /// Days since 1970-01-01.
    Days(i64),
    Infinity,
    NegInfinity,
}

impl std::fmt::Display for DateValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DateValue::Days(d) => {
                let (y, m, day) = civil_from_days(*d);
                write!(f, "{y:04}-{m:02}-{day:02}")
            }
            DateValue::Infinity => f.write_str("infinity"),
            DateValue::NegInfinity => f.write_str("-infinity"),
        }
    }
}

/// A timestamp in microseconds since 1970-01-01 00:00 (UTC for
/// `timestamptz`), or an infinity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimestampValue {
    Micros(i64),
    Infinity,
    NegInfinity,
}

impl std::fmt::Display for TimestampValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TimestampValue::Micros(us) => {
                let days = us.div_euclid(USECS_PER_DAY);
                let tod = us.rem_euclid(USECS_PER_DAY);
                write!(f, "{} {}", DateValue::Days(days), format_time(tod))
            }
            TimestampValue::Infinity => f.write_str("infinity"),
            TimestampValue::NegInfinity => f.write_str("-infinity"),
        }
    }
}

/// The pieces of a date/time string, before validation.
struct DateTimeParts {
    date: Option<(i64, u32, u32)>,
    time_us: Option<i64>,
    offset_secs: Option<i64>,
}

fn take_digits(s: &str) -> (&str, &str) {
    let n = s.bytes().take_while(|c| c.is_ascii_digit()).count();
    s.split_at(n)
}

/// Parses `HH:MM[:SS[.fff]]` at the start of `s`, returning microseconds
/// (rounded to 6 fractional digits) and the rest.
fn scan_time(s: &str) -> Option<(i64, &str)> {
    let (h, rest) = take_digits(s);
    if h.is_empty() || h.len() > 2 {
        return None;
    }
    let rest = rest.strip_prefix(':')?;
    let (m, mut rest) = take_digits(rest);
    if m.len() != 2 {
        return None;
    }
    let mut sec = 0i64;
    let mut frac_us = 0i64;
    if let Some(r) = rest.strip_prefix(':') {
        let (sdig, r2) = take_digits(r);
        if sdig.len() != 2 {
            return None;
        }
        sec = sdig.parse().ok()?;
        rest = r2;
        if let Some(r3) = rest.strip_prefix('.') {
            let (fdig, r4) = take_digits(r3);
            rest = r4;
            frac_us = round_fraction_to_micros(fdig);
        }
    }
    let h: i64 = h.parse().ok()?;
    let m: i64 = m.parse().ok()?;
    if m > 59 || sec > 60 {
        return None;
    }
    Some(((h * 3600 + m * 60 + sec) * 1_000_000 + frac_us, rest))
}

/// `"1234567"` (digits after the point) → microseconds, rounded half up.
fn round_fraction_to_micros(fdig: &str) -> i64 {
    let mut us = 0i64;
    for (i, c) in fdig.bytes().take(6).enumerate() {
        us += (c - b'0') as i64 * 10i64.pow(5 - i as u32);
    }
    if fdig.len() > 6 && fdig.as_bytes()[6] >= b'5' {
        us += 1;
    }
    us
}

/// Parses a UTC offset (`Z`, `UTC`, `GMT`, `+HH`, `+HH:MM`, `+HHMM`, `+HH:MM:SS`).
fn scan_offset(s: &str) -> Option<i64> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("z") || t.eq_ignore_ascii_case("utc") || t.eq_ignore_ascii_case("gmt") {
        return Some(0);
    }
    let (sign, body) = match t.as_bytes().first()? {
        b'+' => (1, &t[1..]),
        b'-' => (-1, &t[1..]),
        _ => return None,
    };
    let parts: Vec<&str> = body.split(':').collect();
    let (h, m, s) = match parts.as_slice() {
        [hm] if hm.len() == 4 => (&hm[..2], &hm[2..], "0"),
        [h] => (*h, "0", "0"),
        [h, m] => (*h, *m, "0"),
        [h, m, s] => (*h, *m, *s),
        _ => return None,
    };
    if [h, m, s].iter().any(|p| p.is_empty() || p.len() > 2 || !p.bytes().all(|c| c.is_ascii_digit())) {
        return None;
    }
    let (h, m, s): (i64, i64, i64) = (h.parse().ok()?, m.parse().ok()?, s.parse().ok()?);
    if h > 15 || m > 59 || s > 59 {
        return None;
    }
    Some(sign * (h * 3600 + m * 60 + s))
}

/// Splits `YYYY-MM-DD[( |T)HH:MM[:SS[.f]]][offset]` into its parts; `None`
/// means a syntax error.
fn scan_datetime(s: &str) -> Option<DateTimeParts> {
    let t = s.trim();
    let mut parts = DateTimeParts { date: None, time_us: None, offset_secs: None };
    let (y, rest) = take_digits(t);
    let mut rest = if !y.is_empty() && rest.starts_with('-') {
        let r = &rest[1..];
        let (m, r) = take_digits(r);
        let r = r.strip_prefix('-')?;
        let (d, r) = take_digits(r);
        if y.len() > 6 || m.is_empty() || m.len() > 2 || d.is_empty() || d.len() > 2 {
            return None;
        }
        parts.date = Some((y.parse().ok()?, m.parse().ok()?, d.parse().ok()?));
        r
    } else if y.len() == 8 && (rest.is_empty() || rest.starts_with([' ', 'T', 't'])) {
        // YYYYMMDD
        parts.date = Some((y[..4].parse().ok()?, y[4..6].parse().ok()?, y[6..].parse().ok()?));
        rest
    } else {
        t
    };
    if parts.date.is_some() {
        let trimmed = rest.trim_start();
        rest = trimmed.strip_prefix(['T', 't']).unwrap_or(trimmed);
    }
    if !rest.is_empty() {
        if let Some((us, r)) = scan_time(rest) {
            parts.time_us = Some(us);
            rest = r;
        }
    }
    let rest = rest.trim();
    if !rest.is_empty() {
        parts.offset_secs = Some(scan_offset(rest)?);
    }
    Some(parts)
}

fn datetime_error(type_name: &str, text: &str) -> Error {
    Error::new(SqlState::INVALID_DATETIME_FORMAT, format!("invalid input syntax for type {type_name}: \"{text}\""))
}

fn field_out_of_range(text: &str) -> Error {
    Error::new(SqlState::DATETIME_FIELD_OVERFLOW, format!("date/time field value out of range: \"{text}\""))
}

fn checked_days(text: &str, (y, m, d): (i64, u32, u32)) -> Result<i64> {
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return Err(field_out_of_range(text));
    }
    if !(1..=MAX_YEAR).contains(&y) {
        return Err(Error::new(SqlState::DATETIME_FIELD_OVERFLOW, format!("date out of range: \"{text}\"")));
    }
    Ok(days_from_civil(y, m, d))
}

fn special_word(text: &str) -> Option<i8> {
    match text.trim().to_ascii_lowercase().as_str() {
        "infinity" | "+infinity" => Some(1),
        "-infinity" => Some(-1),
        "epoch" => Some(0),
        _ => None,
    }
}

/// `date` input (ISO `YYYY-MM-DD`, `YYYYMMDD`, a timestamp whose time is
/// dropped, `epoch`, `infinity`).
pub fn parse_date(text: &str) -> Result<DateValue> {
    match special_word(text) {
        Some(1) => return Ok(DateValue::Infinity),
        Some(-1) => return Ok(DateValue::NegInfinity),
        Some(_) => return Ok(DateValue::Days(0)),
        None => {}
    }
    let parts = scan_datetime(text).ok_or_else(|| datetime_error("date", text))?;
    let date = parts.date.ok_or_else(|| datetime_error("date", text))?;
    Ok(DateValue::Days(checked_days(text, date)?))
}

/// `time` input; returns microseconds since midnight. A trailing UTC offset
/// is accepted and ignored, as PostgreSQL does for `time without time zone`.
pub fn parse_time(text: &str) -> Result<i64> {
    let t = text.trim();
    let parts = scan_datetime(t).ok_or_else(|| datetime_error("time without time zone", text))?;
    let us = parts.time_us.ok_or_else(|| datetime_error("time without time zone", text))?;
    if us > USECS_PER_DAY {
        return Err(field_out_of_range(text));
    }
    Ok(us)
}

/// `HH:MM:SS[.ffffff]` with trailing fractional zeros trimmed, as PostgreSQL
/// prints it.
pub fn format_time(us: i64) -> String {
    let secs = us / 1_000_000;
    let frac = us % 1_000_000;
    let mut s = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    if frac != 0 {
        let f = format!("{frac:06}");
        s.push('.');
        s.push_str(f.trim_end_matches('0'));
    }
    s
}

/// `timestamp` / `timestamptz` input. With `with_tz`, an explicit offset is
/// applied to convert to UTC (no offset means UTC, the session zone); without
/// it the offset is ignored, as PostgreSQL does.
pub fn parse_timestamp(text: &str, with_tz: bool) -> Result<TimestampValue> {
    let type_name = if with_tz { "timestamp with time zone" } else { "timestamp without time zone" };
    match special_word(text) {
        Some(1) => return Ok(TimestampValue::Infinity),
        Some(-1) => return Ok(TimestampValue::NegInfinity),
        Some(_) => return Ok(TimestampValue::Micros(0)),
        None => {}
    }
    let parts = scan_datetime(text).ok_or_else(|| datetime_error(type_name, text))?;
    let date = parts.date.ok_or_else(|| datetime_error(type_name, text))?;
    let days = checked_days(text, date)?;
    let tod = parts.time_us.unwrap_or(0);
    if tod > USECS_PER_DAY {
        return Err(field_out_of_range(text));
    }
    let mut us = days as i128 * USECS_PER_DAY as i128 + tod as i128;
    if with_tz {
        us -= parts.offset_secs.unwrap_or(0) as i128 * 1_000_000;
    }
    let max = (days_from_civil(MAX_YEAR + 1, 1, 1) as i128) * USECS_PER_DAY as i128;
    if us < 0 - 719_162 * USECS_PER_DAY as i128 || us >= max {
        return Err(Error::new(SqlState::DATETIME_FIELD_OVERFLOW, format!("timestamp out of range: \"{text}\"")));
    }
    Ok(TimestampValue::Micros(us as i64))
}

// ---------------------------------------------------------------------------
// Intervals
// ---------------------------------------------------------------------------

/// An interval as PostgreSQL keeps it: months, days and microseconds are
/// separate because a month's and a day's length vary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Interval {
    pub months: i32,
    pub days: i32,
    pub micros: i64,
}

impl std::fmt::Display for Interval {
    /// PostgreSQL's `IntervalStyle = postgres` output, e.g.
    /// `1 year 2 mons -3 days +04:05:06.5`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = String::new();
        let mut is_zero = true;
        let mut is_before = false;
        let years = self.months / 12;
        let mons = self.months % 12;
        for (value, unit) in [(years as i64, "year"), (mons as i64, "mon"), (self.days as i64, "day")] {
            if value == 0 {
                continue;
            }
            if !is_zero {
                out.push(' ');
            }
            if is_before && value > 0 {
                out.push('+');
            }
            out.push_str(&format!("{value} {unit}{}", if value != 1 { "s" } else { "" }));
            is_before = value < 0;
            is_zero = false;
        }
        if is_zero || self.micros != 0 {
            let minus = self.micros < 0;
            let abs = self.micros.unsigned_abs();
            let secs = abs / 1_000_000;
            let frac = abs % 1_000_000;
            if !is_zero {
                out.push(' ');
            }
            if minus {
                out.push('-');
            } else if is_before {
                out.push('+');
            }
            out.push_str(&format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60));
            if frac != 0 {
                out.push('.');
                out.push_str(format!("{frac:06}").trim_end_matches('0'));
            }
        }
        f.write_str(&out)
    }
}

fn interval_error(text: &str) -> Error {
    Error::new(SqlState::INVALID_DATETIME_FORMAT, format!("invalid input syntax for type interval: \"{text}\""))
}

fn interval_overflow() -> Error {
    Error::new(SqlState::DATETIME_FIELD_OVERFLOW, "interval out of range")
}

/// What one unit adds: months, days, or microseconds per unit.
#[derive(Clone, Copy)]
enum Unit {
    Months(f64),
    Days(f64),
    Micros(f64),
}

fn interval_unit(word: &str) -> Option<Unit> {
    Some(match word.to_ascii_lowercase().as_str() {
        "millennium" | "millennia" | "millenniums" | "mil" | "mils" => Unit::Months(12_000.0),
        "century" | "centuries" | "c" | "cent" => Unit::Months(1_200.0),
        "decade" | "decades" | "dec" | "decs" => Unit::Months(120.0),
        "year" | "years" | "y" | "yr" | "yrs" => Unit::Months(12.0),
        "month" | "months" | "mon" | "mons" => Unit::Months(1.0),
        "week" | "weeks" | "w" => Unit::Days(7.0),
        "day" | "days" | "d" => Unit::Days(1.0),
        "hour" | "hours" | "h" | "hr" | "hrs" => Unit::Micros(3_600_000_000.0),
        "minute" | "minutes" | "m" | "min" | "mins" => Unit::Micros(60_000_000.0),
        "second" | "seconds" | "s" | "sec" | "secs" => Unit::Micros(1_000_000.0),
        "millisecond" | "milliseconds" | "ms" | "msec" | "msecs" => Unit::Micros(1_000.0),
        "microsecond" | "microseconds" | "us" | "usec" | "usecs" => Unit::Micros(1.0),
        _ => return None,
    })
}

/// Accumulates interval fields, spilling fractions downwards the way
/// PostgreSQL does (a fractional month is 30 days, a fractional day 24 hours).
#[derive(Default)]
struct IntervalAcc {
    months: f64,
    days: f64,
    micros: f64,
}

impl IntervalAcc {
    fn add(&mut self, n: f64, unit: Unit) {
        match unit {
            Unit::Months(k) => {
                let m = n * k;
                let whole = m.trunc();
                self.months += whole;
                // A fraction of a month spills into days; a fraction of a year
                // only into whole months (PostgreSQL truncates the rest).
                if k < 12.0 {
                    self.add(m - whole, Unit::Days(30.0));
                }
            }
            Unit::Days(k) => {
                let d = n * k;
                let whole = d.trunc();
                self.days += whole;
                self.micros += (d - whole) * USECS_PER_DAY as f64;
            }
            Unit::Micros(k) => self.micros += n * k,
        }
    }

    fn finish(self, negate: bool) -> Result<Interval> {
        let sign = if negate { -1.0 } else { 1.0 };
        let months = (self.months * sign).round();
        let days = (self.days * sign).round();
        let micros = (self.micros * sign).round();
        if months.abs() > i32::MAX as f64 || days.abs() > i32::MAX as f64 || micros.abs() > 9.2e18 || micros.is_nan() {
            return Err(interval_overflow());
        }
        Ok(Interval { months: months as i32, days: days as i32, micros: micros as i64 })
    }
}

/// `interval` input: PostgreSQL's verbose syntax (`1 year 2 mons 3 days
/// 04:05:06`, `@ 1 hour ago`, `-1 days +02:00`), bare times, plain numbers
/// (seconds) and ISO 8601 (`P1Y2M3DT4H5M6S`).
pub fn parse_interval(text: &str) -> Result<Interval> {
    let t = text.trim();
    if t.is_empty() {
        return Err(interval_error(text));
    }
    if t.starts_with(['P', 'p']) {
        return parse_iso_interval(text, &t[1..]);
    }
    let mut tokens: Vec<String> = Vec::new();
    for raw in t.trim_start_matches('@').split_whitespace() {
        // Split "3h" / "1day" / "10.5min" into number and unit.
        let n = raw.bytes().take_while(|c| c.is_ascii_digit() || matches!(c, b'+' | b'-' | b'.')).count();
        if n > 0 && n < raw.len() && !raw.contains(':') && interval_unit(&raw[n..]).is_some() {
            tokens.push(raw[..n].to_string());
            tokens.push(raw[n..].to_string());
        } else {
            tokens.push(raw.to_string());
        }
    }
    let negate = tokens.last().is_some_and(|w| w.eq_ignore_ascii_case("ago"));
    if negate {
        tokens.pop();
    }
    if tokens.is_empty() {
        return Err(interval_error(text));
    }
    let mut acc = IntervalAcc::default();
    let mut i = 0;
    while i < tokens.len() {
        let tok = &tokens[i];
        if tok.contains(':') {
            let (neg, body) = match tok.as_bytes()[0] {
                b'-' => (true, &tok[1..]),
                b'+' => (false, &tok[1..]),
                _ => (false, tok.as_str()),
            };
            let us = scan_interval_time(body).ok_or_else(|| interval_error(text))?;
            acc.micros += if neg { -(us as f64) } else { us as f64 };
            i += 1;
            continue;
        }
        let n: f64 = match tok.parse() {
            Ok(n) if Decimal::parse(tok).is_some() => n,
            _ => return Err(interval_error(text)),
        };
        match tokens.get(i + 1).and_then(|u| interval_unit(u)) {
            Some(unit) => {
                acc.add(n, unit);
                i += 2;
            }
            None if tokens.get(i + 1).is_some_and(|next| next.contains(':')) => {
                acc.add(n, Unit::Days(1.0));
                i += 1;
            }
            None if i + 1 == tokens.len() => {
                acc.add(n, Unit::Micros(1_000_000.0));
                i += 1;
            }
            None => return Err(interval_error(text)),
        }
    }
    acc.finish(negate)
}

/// `H+:MM[:SS[.f]]` or `MM:SS.f`-free PostgreSQL interval time; hours may
/// exceed 24.
fn scan_interval_time(s: &str) -> Option<i64> {
    let parts: Vec<&str> = s.split(':').collect();
    let (h, m, sec) = match parts.as_slice() {
        [h, m] => (*h, *m, "0"),
        [h, m, s] => (*h, *m, *s),
        _ => return None,
    };
    if h.is_empty() || h.len() > 10 || !h.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    if m.is_empty() || m.len() > 2 || !m.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let (sw, sf) = sec.split_once('.').unwrap_or((sec, ""));
    if sw.is_empty()
        || sw.len() > 2
        || !sw.bytes().all(|c| c.is_ascii_digit())
        || !sf.bytes().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let h: i64 = h.parse().ok()?;
    let m: i64 = m.parse().ok()?;
    let sw: i64 = sw.parse().ok()?;
    if m > 59 || sw > 59 {
        return None;
    }
    h.checked_mul(3_600_000_000)?.checked_add((m * 60 + sw) * 1_000_000 + round_fraction_to_micros(sf))
}

fn parse_iso_interval(text: &str, body: &str) -> Result<Interval> {
    let mut acc = IntervalAcc::default();
    let mut in_time = false;
    let mut rest = body;
    let mut any = false;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix(['T', 't']) {
            if in_time {
                return Err(interval_error(text));
            }
            in_time = true;
            rest = r;
            continue;
        }
        let n = rest.bytes().take_while(|c| c.is_ascii_digit() || matches!(c, b'+' | b'-' | b'.')).count();
        if n == 0 || n >= rest.len() {
            return Err(interval_error(text));
        }
        let num = &rest[..n];
        if Decimal::parse(num).is_none() {
            return Err(interval_error(text));
        }
        let value: f64 = num.parse().map_err(|_| interval_error(text))?;
        let designator = rest.as_bytes()[n].to_ascii_uppercase();
        let unit = match (in_time, designator) {
            (false, b'Y') => Unit::Months(12.0),
            (false, b'M') => Unit::Months(1.0),
            (false, b'W') => Unit::Days(7.0),
            (false, b'D') => Unit::Days(1.0),
            (true, b'H') => Unit::Micros(3_600_000_000.0),
            (true, b'M') => Unit::Micros(60_000_000.0),
            (true, b'S') => Unit::Micros(1_000_000.0),
            _ => return Err(interval_error(text)),
        };
        acc.add(value, unit);
        any = true;
        rest = &rest[n + 1..];
    }
    if !any {
        return Err(interval_error(text));
    }
    acc.finish(false)
}

// ---------------------------------------------------------------------------
// Arrays (stored as PostgreSQL array literals)
// ---------------------------------------------------------------------------

/// Validates and normalises a one-dimensional array literal `{a,b,NULL}`;
/// each element is normalised by the element type. Arrays are stored as the
/// normalised literal text.
fn parse_array(elem: &DataType, text: &str) -> Result<String> {
    let items = split_array_literal(text)?;
    let mut out = String::from("{");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match item {
            None => out.push_str("NULL"),
            Some(s) => {
                let v = text_to_storage(elem, s)?;
                let t = storage_to_text(elem, &v)?;
                out.push_str(&quote_array_element(&t));
            }
        }
    }
    out.push('}');
    Ok(out)
}

/// Quotes an array element when PostgreSQL would.
pub fn quote_array_element(t: &str) -> String {
    let needs = t.is_empty()
        || t.eq_ignore_ascii_case("null")
        || t.chars().any(|c| matches!(c, '{' | '}' | ',' | '"' | '\\') || c.is_whitespace());
    if !needs {
        return t.to_string();
    }
    let mut s = String::from("\"");
    for c in t.chars() {
        if c == '"' || c == '\\' {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('"');
    s
}

/// Splits `{a,"b c",NULL}` into its elements (`None` for NULL).
pub fn split_array_literal(text: &str) -> Result<Vec<Option<String>>> {
    let malformed =
        || Error::new(SqlState::INVALID_TEXT_REPRESENTATION, format!("malformed array literal: \"{text}\""));
    let t = text.trim();
    let inner = t.strip_prefix('{').and_then(|r| r.strip_suffix('}')).ok_or_else(malformed)?;
    let mut items = Vec::new();
    if inner.trim().is_empty() {
        return Ok(items);
    }
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut cur = String::new();
        let mut quoted = false;
        if chars.peek() == Some(&'"') {
            quoted = true;
            chars.next();
            loop {
                match chars.next() {
                    Some('\\') => cur.push(chars.next().ok_or_else(malformed)?),
                    Some('"') => break,
                    Some(c) => cur.push(c),
                    None => return Err(malformed()),
                }
            }
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                if matches!(c, '{' | '}' | '"') {
                    return Err(malformed());
                }
                if c == '\\' {
                    chars.next();
                    cur.push(chars.next().ok_or_else(malformed)?);
                    continue;
                }
                cur.push(c);
                chars.next();
            }
            cur = cur.trim_end().to_string();
            if cur.is_empty() {
                return Err(malformed());
            }
        }
        items.push(if !quoted && cur.eq_ignore_ascii_case("null") { None } else { Some(cur) });
        match chars.next() {
            Some(',') => continue,
            None => break,
            Some(_) => return Err(malformed()),
        }
    }
    Ok(items)
}

// ---------------------------------------------------------------------------
// Records (stored as PostgreSQL's record output text)
// ---------------------------------------------------------------------------

/// PostgreSQL's text form of a record (`record_out`): `(1,"a b",)`. Each
/// field is given as its type's text (`None` for NULL, which prints as
/// nothing); a field that is empty or holds a quote, backslash, parenthesis,
/// comma or whitespace is double-quoted, with `"` and `\` doubled.
pub fn format_record<S: AsRef<str>>(fields: &[Option<S>]) -> String {
    let mut out = String::from("(");
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let Some(f) = f else { continue };
        let f = f.as_ref();
        let quote =
            f.is_empty() || f.chars().any(|c| matches!(c, '"' | '\\' | '(' | ')' | ',') || c.is_ascii_whitespace());
        if quote {
            out.push('"');
        }
        for c in f.chars() {
            if c == '"' || c == '\\' {
                out.push(c);
            }
            out.push(c);
        }
        if quote {
            out.push('"');
        }
    }
    out.push(')');
    out
}

/// Splits a record's text (`record_in`'s syntax, which [`format_record`]
/// prints) into its fields' text, `None` for NULL (an empty unquoted field).
pub fn split_record(text: &str) -> Result<Vec<Option<String>>> {
    let malformed =
        || Error::new(SqlState::INVALID_TEXT_REPRESENTATION, format!("malformed record literal: \"{text}\""));
    let inner = text.trim().strip_prefix('(').ok_or_else(malformed)?;
    let mut chars = inner.chars().peekable();
    let mut fields = Vec::new();
    loop {
        if matches!(chars.peek(), Some(',' | ')')) {
            fields.push(None);
        } else {
            let mut cur = String::new();
            loop {
                match chars.peek().copied() {
                    None => return Err(malformed()),
                    Some(',' | ')') => break,
                    Some('"') => {
                        chars.next();
                        loop {
                            match chars.next() {
                                None => return Err(malformed()),
                                Some('\\') => cur.push(chars.next().ok_or_else(malformed)?),
                                Some('"') if chars.peek() == Some(&'"') => {
                                    chars.next();
                                    cur.push('"');
                                }
                                Some('"') => break,
                                Some(c) => cur.push(c),
                            }
                        }
                    }
                    Some('\\') => {
                        chars.next();
                        cur.push(chars.next().ok_or_else(malformed)?);
                    }
                    Some(c) => {
                        chars.next();
                        cur.push(c);
                    }
                }
            }
            fields.push(Some(cur));
        }
        match chars.next() {
            Some(',') => continue,
            Some(')') if chars.all(|c| c.is_whitespace()) => return Ok(fields),
            _ => return Err(malformed()),
        }
    }
}

// ---------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------

/// A small JSON parser and printer, so that `json` is validated with
/// PostgreSQL's error, `jsonb` is stored canonically (keys ordered and
/// de-duplicated as PostgreSQL orders them, numbers as numerics) and printed
/// with PostgreSQL's spacing — without pulling a JSON crate into every layer.
pub mod json {
    use crate::{Error, Result, SqlState};

    /// Nesting deeper than this is rejected instead of risking the stack.
    const MAX_DEPTH: usize = 256;

    /// A parsed JSON document. Numbers keep their text.
    #[derive(Clone, Debug, PartialEq)]
    pub enum Json {
        Null,
        Bool(bool),
        Number(String),
        String(String),
        Array(Vec<Json>),
        Object(Vec<(String, Json)>),
    }

    fn error(text: &str, detail: impl Into<String>) -> Error {
        let _ = text;
        Error::new(SqlState::INVALID_TEXT_REPRESENTATION, "invalid input syntax for type json").with_detail(detail)
    }

    /// Parses a JSON document (RFC 8259, as PostgreSQL's `json` accepts it).
    pub fn parse(text: &str) -> Result<Json> {
        let mut p = Parser { s: text.as_bytes(), i: 0, text };
        p.ws();
        let v = p.value(0)?;
        p.ws();
        if p.i != p.s.len() {
            return Err(p.unexpected());
        }
        Ok(v)
    }

    struct Parser<'a> {
        s: &'a [u8],
        i: usize,
        text: &'a str,
    }

    impl Parser<'_> {
        fn ws(&mut self) {
            while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
                self.i += 1;
            }
        }

        fn unexpected(&self) -> Error {
            if self.i >= self.s.len() {
                return error(self.text, "The input string ended unexpectedly.");
            }
            let end = (self.i + 1..=self.s.len()).find(|e| self.text.is_char_boundary(*e)).unwrap_or(self.s.len());
            let start = (0..=self.i).rev().find(|b| self.text.is_char_boundary(*b)).unwrap_or(0);
            error(self.text, format!("Token \"{}\" is invalid.", &self.text[start..end]))
        }

        fn value(&mut self, depth: usize) -> Result<Json> {
            if depth > MAX_DEPTH {
                return Err(Error::new(SqlState(*b"54001"), "stack depth limit exceeded"));
            }
            match self.s.get(self.i) {
                Some(b'{') => {
                    self.i += 1;
                    let mut members = Vec::new();
                    self.ws();
                    if self.s.get(self.i) == Some(&b'}') {
                        self.i += 1;
                        return Ok(Json::Object(members));
                    }
                    loop {
                        self.ws();
                        if self.s.get(self.i) != Some(&b'"') {
                            return Err(self.unexpected());
                        }
                        let key = self.string()?;
                        self.ws();
                        if self.s.get(self.i) != Some(&b':') {
                            return Err(self.unexpected());
                        }
                        self.i += 1;
                        self.ws();
                        let v = self.value(depth + 1)?;
                        members.push((key, v));
                        self.ws();
                        match self.s.get(self.i) {
                            Some(b',') => self.i += 1,
                            Some(b'}') => {
                                self.i += 1;
                                return Ok(Json::Object(members));
                            }
                            _ => return Err(self.unexpected()),
                        }
                    }
                }
                Some(b'[') => {
                    self.i += 1;
                    let mut items = Vec::new();
                    self.ws();
                    if self.s.get(self.i) == Some(&b']') {
                        self.i += 1;
                        return Ok(Json::Array(items));
                    }
                    loop {
                        self.ws();
                        items.push(self.value(depth + 1)?);
                        self.ws();
                        match self.s.get(self.i) {
                            Some(b',') => self.i += 1,
                            Some(b']') => {
                                self.i += 1;
                                return Ok(Json::Array(items));
                            }
                            _ => return Err(self.unexpected()),
                        }
                    }
                }
                Some(b'"') => Ok(Json::String(self.string()?)),
                Some(b't') if self.s[self.i..].starts_with(b"true") => {
                    self.i += 4;
                    Ok(Json::Bool(true))
                }
                Some(b'f') if self.s[self.i..].starts_with(b"false") => {
                    self.i += 5;
                    Ok(Json::Bool(false))
                }
                Some(b'n') if self.s[self.i..].starts_with(b"null") => {
                    self.i += 4;
                    Ok(Json::Null)
                }
                Some(b'-' | b'0'..=b'9') => self.number(),
                _ => Err(self.unexpected()),
            }
        }

        fn number(&mut self) -> Result<Json> {
            let start = self.i;
            if self.s.get(self.i) == Some(&b'-') {
                self.i += 1;
            }
            let int_start = self.i;
            while self.s.get(self.i).is_some_and(|c| c.is_ascii_digit()) {
                self.i += 1;
            }
            let int_len = self.i - int_start;
            if int_len == 0 || (int_len > 1 && self.s[int_start] == b'0') {
                return Err(self.unexpected());
            }
            if self.s.get(self.i) == Some(&b'.') {
                self.i += 1;
                let f = self.i;
                while self.s.get(self.i).is_some_and(|c| c.is_ascii_digit()) {
                    self.i += 1;
                }
                if self.i == f {
                    return Err(self.unexpected());
                }
            }
            if matches!(self.s.get(self.i), Some(b'e' | b'E')) {
                self.i += 1;
                if matches!(self.s.get(self.i), Some(b'+' | b'-')) {
                    self.i += 1;
                }
                let e = self.i;
                while self.s.get(self.i).is_some_and(|c| c.is_ascii_digit()) {
                    self.i += 1;
                }
                if self.i == e {
                    return Err(self.unexpected());
                }
            }
            Ok(Json::Number(self.text[start..self.i].to_string()))
        }

        fn hex4(&mut self) -> Result<u32> {
            let h = self.s.get(self.i..self.i + 4).ok_or_else(|| self.unexpected())?;
            let s = std::str::from_utf8(h).map_err(|_| self.unexpected())?;
            let v = u32::from_str_radix(s, 16)
                .map_err(|_| error(self.text, "\"\\u\" must be followed by four hexadecimal digits."))?;
            self.i += 4;
            Ok(v)
        }

        fn string(&mut self) -> Result<String> {
            self.i += 1; // opening quote
            let mut out = String::new();
            loop {
                let start = self.i;
                while self.i < self.s.len() && !matches!(self.s[self.i], b'"' | b'\\') && self.s[self.i] >= 0x20 {
                    self.i += 1;
                }
                out.push_str(&self.text[start..self.i]);
                match self.s.get(self.i) {
                    Some(b'"') => {
                        self.i += 1;
                        return Ok(out);
                    }
                    Some(b'\\') => {
                        self.i += 1;
                        let c = *self.s.get(self.i).ok_or_else(|| self.unexpected())?;
                        self.i += 1;
                        match c {
                            b'"' => out.push('"'),
                            b'\\' => out.push('\\'),
                            b'/' => out.push('/'),
                            b'b' => out.push('\u{8}'),
                            b'f' => out.push('\u{c}'),
                            b'n' => out.push('\n'),
                            b'r' => out.push('\r'),
                            b't' => out.push('\t'),
                            b'u' => {
                                let hi = self.hex4()?;
                                let cp = if (0xD800..0xDC00).contains(&hi) {
                                    if self.s.get(self.i..self.i + 2) != Some(b"\\u") {
                                        return Err(error(
                                            self.text,
                                            "Unicode high surrogate must not be followed by another high surrogate.",
                                        ));
                                    }
                                    self.i += 2;
                                    let lo = self.hex4()?;
                                    if !(0xDC00..0xE000).contains(&lo) {
                                        return Err(error(
                                            self.text,
                                            "Unicode low surrogate must follow a high surrogate.",
                                        ));
                                    }
                                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                                } else {
                                    hi
                                };
                                match char::from_u32(cp) {
                                    Some(ch) => out.push(ch),
                                    None => {
                                        return Err(error(
                                            self.text,
                                            "Unicode low surrogate must follow a high surrogate.",
                                        ))
                                    }
                                }
                            }
                            _ => {
                                self.i -= 1;
                                return Err(error(
                                    self.text,
                                    format!("Escape sequence \"\\{}\" is invalid.", c as char),
                                ));
                            }
                        }
                    }
                    _ => return Err(self.unexpected()),
                }
            }
        }
    }

    fn escape_into(out: &mut String, s: &str) {
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
    }

    impl Json {
        /// The jsonb form: object keys ordered by length then bytes (as
        /// PostgreSQL orders them), the last duplicate key wins, numbers
        /// printed as numerics (`1e2` → `100`).
        pub fn to_jsonb(self) -> Json {
            match self {
                Json::Number(n) => Json::Number(match super::Decimal::parse(&n) {
                    Some(d) => d.to_text(),
                    None => n,
                }),
                Json::Array(items) => Json::Array(items.into_iter().map(Json::to_jsonb).collect()),
                Json::Object(members) => {
                    let mut out: Vec<(String, Json)> = Vec::with_capacity(members.len());
                    for (k, v) in members {
                        let v = v.to_jsonb();
                        match out.iter_mut().find(|(existing, _)| *existing == k) {
                            Some(slot) => slot.1 = v,
                            None => out.push((k, v)),
                        }
                    }
                    out.sort_by(|a, b| a.0.len().cmp(&b.0.len()).then_with(|| a.0.as_bytes().cmp(b.0.as_bytes())));
                    Json::Object(out)
                }
                other => other,
            }
        }

        /// Compact text with no insignificant whitespace (the jsonb storage form).
        pub fn minified(&self) -> String {
            let mut out = String::new();
            self.write(&mut out, ",", ":");
            out
        }

        /// PostgreSQL's jsonb output: `{"a": 1, "b": [1, 2]}`.
        pub fn pretty(&self) -> String {
            let mut out = String::new();
            self.write(&mut out, ", ", ": ");
            out
        }

        fn write(&self, out: &mut String, comma: &str, colon: &str) {
            match self {
                Json::Null => out.push_str("null"),
                Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
                Json::Number(n) => out.push_str(n),
                Json::String(s) => escape_into(out, s),
                Json::Array(items) => {
                    out.push('[');
                    for (i, item) in items.iter().enumerate() {
                        if i > 0 {
                            out.push_str(comma);
                        }
                        item.write(out, comma, colon);
                    }
                    out.push(']');
                }
                Json::Object(members) => {
                    out.push('{');
                    for (i, (k, v)) in members.iter().enumerate() {
                        if i > 0 {
                            out.push_str(comma);
                        }
                        escape_into(out, k);
                        out.push_str(colon);
                        v.write(out, comma, colon);
                    }
                    out.push('}');
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(ty: &DataType, text: &str) -> Value {
        text_to_storage(ty, text).unwrap_or_else(|e| panic!("{ty} {text:?}: {e}"))
    }

    fn round_trip(ty: &DataType, text: &str) -> String {
        storage_to_text(ty, &st(ty, text)).unwrap()
    }

    fn code(ty: &DataType, text: &str) -> SqlState {
        text_to_storage(ty, text).expect_err(text).code
    }

    #[test]
    fn records_print_and_split_like_postgres() {
        // Expected texts are PostgreSQL 15's `SELECT ROW(...)` output.
        assert_eq!(format_record(&[Some("1"), Some("2")]), "(1,2)");
        assert_eq!(format_record::<&str>(&[None, Some("x")]), "(,x)");
        assert_eq!(format_record(&[Some(""), Some("a b"), Some("a,b"), Some("(p)")]), r#"("","a b","a,b","(p)")"#);
        assert_eq!(format_record(&[Some(r#"say "hi""#), Some(r"back\slash")]), r#"("say ""hi""","back\\slash")"#);
        let fields = [Some("1"), None, Some(""), Some(r#"q"uote"#), Some(r"b\s"), Some("x, y)")];
        let text = format_record(&fields);
        let back = split_record(&text).unwrap();
        assert_eq!(back, fields.iter().map(|f| f.map(String::from)).collect::<Vec<_>>(), "{text}");
        assert_eq!(split_record("(1,2)").unwrap(), vec![Some("1".into()), Some("2".into())]);
        assert_eq!(split_record("()").unwrap(), vec![None]);
        for bad in ["", "1,2", "(1,2", "(\"1)", "(1,2)x"] {
            assert_eq!(split_record(bad).unwrap_err().code, SqlState::INVALID_TEXT_REPRESENTATION, "{bad}");
        }
        assert_eq!(code(&DataType::Record(vec![]), "(1)"), SqlState::FEATURE_NOT_SUPPORTED);
    }

    #[test]
    fn booleans() {
        for t in ["t", "true", " TRUE ", "yes", "on", "1", "y", "tr"] {
            assert_eq!(st(&DataType::Bool, t), Value::Integer(1), "{t}");
        }
        for t in ["f", "false", "no", "off", "0", "n"] {
            assert_eq!(st(&DataType::Bool, t), Value::Integer(0), "{t}");
        }
        let err = text_to_storage(&DataType::Bool, "o").unwrap_err();
        assert_eq!(err.message, "invalid input syntax for type boolean: \"o\"");
        assert_eq!(storage_to_text(&DataType::Bool, &Value::Integer(1)).unwrap(), "t");
        assert_eq!(storage_to_text(&DataType::Bool, &Value::Integer(0)).unwrap(), "f");
    }

    #[test]
    fn integers_with_range_checks() {
        assert_eq!(st(&DataType::Int4, " 42 "), Value::Integer(42));
        assert_eq!(st(&DataType::Int4, "-2147483648"), Value::Integer(i32::MIN as i64));
        assert_eq!(st(&DataType::Int8, "1_000_000"), Value::Integer(1_000_000));
        assert_eq!(st(&DataType::Int4, "0x1F"), Value::Integer(31));
        let err = text_to_storage(&DataType::Int4, "abc").unwrap_err();
        assert_eq!(err.message, "invalid input syntax for type integer: \"abc\"");
        assert_eq!(err.code, SqlState::INVALID_TEXT_REPRESENTATION);
        let err = text_to_storage(&DataType::Int4, "2147483648").unwrap_err();
        assert_eq!(err.message, "value \"2147483648\" is out of range for type integer");
        assert_eq!(err.code, SqlState::NUMERIC_VALUE_OUT_OF_RANGE);
        assert_eq!(code(&DataType::Int2, "32768"), SqlState::NUMERIC_VALUE_OUT_OF_RANGE);
        assert_eq!(code(&DataType::Int8, "99999999999999999999999999"), SqlState::NUMERIC_VALUE_OUT_OF_RANGE);
        assert_eq!(code(&DataType::Int8, ""), SqlState::INVALID_TEXT_REPRESENTATION);
        assert_eq!(code(&DataType::Int8, "1.5"), SqlState::INVALID_TEXT_REPRESENTATION);
        assert_eq!(code(&DataType::Int8, "-"), SqlState::INVALID_TEXT_REPRESENTATION);
    }

    #[test]
    fn floats_print_like_postgres() {
        let cases = [
            (1.0, "1"),
            (0.1, "0.1"),
            (-2.5, "-2.5"),
            (1e15, "1e+15"),
            (1e14, "100000000000000"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (123456789012345680.0, "1.2345678901234568e+17"),
            (1.0 / 3.0, "0.3333333333333333"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
            (f64::NAN, "NaN"),
            (-0.0, "-0"),
            (0.0, "0"),
            (1e-300, "1e-300"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
        ];
        for (v, want) in cases {
            assert_eq!(format_float8(v), want, "{v}");
        }
        assert_eq!(format_float4(0.1), "0.1");
        assert_eq!(format_float4(1e6), "1e+06");
        assert_eq!(format_float4(123456.0), "123456");
        assert_eq!(round_trip(&DataType::Float8, "1e300"), "1e+300");
        assert_eq!(round_trip(&DataType::Float8, "-infinity"), "-Infinity");
        assert_eq!(round_trip(&DataType::Float8, "nan"), "NaN");
        assert_eq!(code(&DataType::Float8, "1e400"), SqlState::NUMERIC_VALUE_OUT_OF_RANGE);
        assert_eq!(code(&DataType::Float4, "1e40"), SqlState::NUMERIC_VALUE_OUT_OF_RANGE);
        assert_eq!(code(&DataType::Float8, "abc"), SqlState::INVALID_TEXT_REPRESENTATION);
        // Shortest round trip is exact.
        for v in [0.1 + 0.2, 1e-7, 123.456, f64::MIN_POSITIVE, 5e-324] {
            assert_eq!(format_float8(v).parse::<f64>().unwrap(), v);
        }
    }

    #[test]
    fn numerics_keep_their_scale() {
        let ty = DataType::Numeric(Some((10, 2)));
        assert_eq!(round_trip(&ty, "3.14159"), "3.14");
        assert_eq!(round_trip(&ty, "2.675"), "2.68");
        assert_eq!(round_trip(&ty, "-2.675"), "-2.68");
        assert_eq!(round_trip(&ty, "5"), "5.00");
        assert_eq!(round_trip(&ty, "-0.001"), "0.00");
        assert_eq!(round_trip(&ty, "1e3"), "1000.00");
        assert_eq!(storage_to_text(&ty, &Value::Integer(7)).unwrap(), "7.00");
        let err = text_to_storage(&DataType::Numeric(Some((5, 2))), "1000").unwrap_err();
        assert_eq!(err.message, "numeric field overflow");
        assert_eq!(
            err.detail.as_deref(),
            Some("A field with precision 5, scale 2 must round to an absolute value less than 10^3.")
        );
        assert_eq!(code(&DataType::Numeric(Some((3, 0))), "999.5"), SqlState::NUMERIC_VALUE_OUT_OF_RANGE);
        assert_eq!(round_trip(&DataType::Numeric(Some((3, 0))), "998.5"), "999");
        let un = DataType::Numeric(None);
        assert_eq!(round_trip(&un, "1.5"), "1.5");
        assert_eq!(round_trip(&un, "100"), "100");
        assert_eq!(round_trip(&un, "1e20"), "100000000000000000000");
        assert_eq!(round_trip(&un, "0.0000001"), "0.0000001");
        assert_eq!(storage_to_text(&un, &Value::Real(0.1 + 0.2)).unwrap(), "0.3");
        assert_eq!(st(&un, "0.10"), Value::Text("0.10".into()));
        assert_eq!(
            round_trip(&un, "123456789012345678901234567890.123456789"),
            "123456789012345678901234567890.123456789"
        );
        assert_eq!(code(&un, "1e131072"), SqlState::NUMERIC_VALUE_OUT_OF_RANGE);
        assert_eq!(round_trip(&un, "NaN"), "NaN");
        assert_eq!(code(&un, "1.2.3"), SqlState::INVALID_TEXT_REPRESENTATION);
        assert_eq!(code(&un, "e5"), SqlState::INVALID_TEXT_REPRESENTATION);
    }

    #[test]
    fn character_types() {
        assert_eq!(st(&DataType::Char(4), "ab"), Value::Text("ab  ".into()));
        assert_eq!(st(&DataType::Char(2), "ab   "), Value::Text("ab".into()));
        assert_eq!(code(&DataType::Char(2), "abc"), SqlState::STRING_DATA_RIGHT_TRUNCATION);
        let err = text_to_storage(&DataType::Varchar(Some(3)), "abcd").unwrap_err();
        assert_eq!(err.message, "value too long for type character varying(3)");
        assert_eq!(st(&DataType::Varchar(Some(3)), "äöü"), Value::Text("äöü".into()));
        assert_eq!(st(&DataType::Name, &"x".repeat(100)), Value::Text("x".repeat(63)));
    }

    #[test]
    fn bytea_hex_and_escape() {
        assert_eq!(st(&DataType::Bytea, "\\x0aFF"), Value::Blob(vec![10, 255]));
        assert_eq!(st(&DataType::Bytea, "\\x0a ff"), Value::Blob(vec![10, 255]));
        assert_eq!(st(&DataType::Bytea, "ab\\\\\\001"), Value::Blob(vec![b'a', b'b', b'\\', 1]));
        assert_eq!(round_trip(&DataType::Bytea, "\\xDEADbeef"), "\\xdeadbeef");
        assert_eq!(round_trip(&DataType::Bytea, ""), "\\x");
        let err = text_to_storage(&DataType::Bytea, "\\x0g").unwrap_err();
        assert_eq!(err.message, "invalid hexadecimal digit: \"g\"");
        assert_eq!(code(&DataType::Bytea, "\\x0"), SqlState::INVALID_PARAMETER_VALUE);
        assert_eq!(code(&DataType::Bytea, "\\9"), SqlState::INVALID_TEXT_REPRESENTATION);
    }

    #[test]
    fn uuids() {
        let want = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
        for t in [
            "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
            "{a0eebc99-9c0b4ef8-bb6d6bb9-bd380a11}",
            "a0eebc999c0b4ef8bb6d6bb9bd380a11",
            "a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11",
        ] {
            assert_eq!(round_trip(&DataType::Uuid, t), want, "{t}");
        }
        for bad in ["", "a0eebc99", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1g", "-a0eebc999c0b4ef8bb6d6bb9bd380a11"] {
            let err = text_to_storage(&DataType::Uuid, bad).unwrap_err();
            assert_eq!(err.message, format!("invalid input syntax for type uuid: \"{bad}\""));
        }
    }

    #[test]
    fn dates_and_times() {
        assert_eq!(round_trip(&DataType::Date, "2024-02-29"), "2024-02-29");
        assert_eq!(round_trip(&DataType::Date, "2024-2-9"), "2024-02-09");
        assert_eq!(round_trip(&DataType::Date, "20240101"), "2024-01-01");
        assert_eq!(round_trip(&DataType::Date, "2024-01-01 13:00:00"), "2024-01-01");
        assert_eq!(round_trip(&DataType::Date, "infinity"), "infinity");
        assert_eq!(round_trip(&DataType::Date, "0099-01-01"), "0099-01-01");
        assert_eq!(code(&DataType::Date, "2023-02-29"), SqlState::DATETIME_FIELD_OVERFLOW);
        assert_eq!(code(&DataType::Date, "2023-13-01"), SqlState::DATETIME_FIELD_OVERFLOW);
        assert_eq!(code(&DataType::Date, "yesterday-ish"), SqlState::INVALID_DATETIME_FORMAT);
        let err = text_to_storage(&DataType::Date, "x").unwrap_err();
        assert_eq!(err.message, "invalid input syntax for type date: \"x\"");

        assert_eq!(round_trip(&DataType::Time, "12:34"), "12:34:00");
        assert_eq!(round_trip(&DataType::Time, "12:34:56.5"), "12:34:56.5");
        assert_eq!(round_trip(&DataType::Time, "12:34:56.1234567"), "12:34:56.123457");
        assert_eq!(round_trip(&DataType::Time, "24:00:00"), "24:00:00");
        assert_eq!(code(&DataType::Time, "25:00:00"), SqlState::DATETIME_FIELD_OVERFLOW);
        assert_eq!(code(&DataType::Time, "12:60"), SqlState::INVALID_DATETIME_FORMAT);

        assert_eq!(round_trip(&DataType::Timestamp, "2024-01-02T03:04:05.000100"), "2024-01-02 03:04:05.0001");
        assert_eq!(round_trip(&DataType::Timestamp, "2024-01-02 03:04:05+02"), "2024-01-02 03:04:05");
        assert_eq!(round_trip(&DataType::Timestamp, "2024-01-02"), "2024-01-02 00:00:00");
        assert_eq!(round_trip(&DataType::Timestamp, "2023-12-31 23:59:59.9999999"), "2024-01-01 00:00:00");
        let tz = DataType::Timestamptz;
        assert_eq!(st(&tz, "2024-01-01 12:00:00+02"), Value::Text("2024-01-01 10:00:00".into()));
        assert_eq!(round_trip(&tz, "2024-01-01 12:00:00+02:30"), "2024-01-01 09:30:00+00");
        assert_eq!(round_trip(&tz, "2024-01-01 01:00:00-0200"), "2024-01-01 03:00:00+00");
        assert_eq!(round_trip(&tz, "2024-01-01 00:30:00+01"), "2023-12-31 23:30:00+00");
        assert_eq!(round_trip(&tz, "2024-01-01 00:30:00Z"), "2024-01-01 00:30:00+00");
        assert_eq!(round_trip(&tz, "2024-01-01 00:30:00 UTC"), "2024-01-01 00:30:00+00");
        assert_eq!(round_trip(&tz, "epoch"), "1970-01-01 00:00:00+00");
        assert_eq!(code(&tz, "2024-01-01 00:30:00 Mars/Olympus"), SqlState::INVALID_DATETIME_FORMAT);
    }

    #[test]
    fn calendar_arithmetic_round_trips() {
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(days_from_civil(2000, 1, 1), PG_EPOCH_DAYS);
    }

    #[test]
    fn intervals_print_in_postgres_style() {
        let cases = [
            ("1 day", "1 day"),
            ("1.5 days", "1 day 12:00:00"),
            ("2 hours", "02:00:00"),
            ("1 year 2 months 3 days 04:05:06", "1 year 2 mons 3 days 04:05:06"),
            ("-1 day +02:00:00", "-1 days +02:00:00"),
            ("@ 1 hour ago", "-01:00:00"),
            ("1 day ago", "-1 days"),
            ("0", "00:00:00"),
            ("90 minutes", "01:30:00"),
            ("25:00:00", "25:00:00"),
            ("3h", "03:00:00"),
            ("1 week", "7 days"),
            ("1.5 years", "1 year 6 mons"),
            ("1.5 months", "1 mon 15 days"),
            ("P1Y2M3DT4H5M6S", "1 year 2 mons 3 days 04:05:06"),
            ("PT0.5S", "00:00:00.5"),
            ("-1 years -2 mons", "-1 years -2 mons"),
            ("1 mon -1 day", "1 mon -1 days"),
            ("10", "00:00:10"),
            ("1 2:00", "1 day 02:00:00"),
            ("-00:00:01.5", "-00:00:01.5"),
        ];
        for (input, want) in cases {
            assert_eq!(round_trip(&DataType::Interval, input), want, "{input}");
            // Output re-parses to the same value.
            assert_eq!(round_trip(&DataType::Interval, want), want, "{want}");
        }
        for bad in ["", "abc", "1 fortnight", "P", "PT1Y", "1:2:3:4", "ago"] {
            assert_eq!(code(&DataType::Interval, bad), SqlState::INVALID_DATETIME_FORMAT, "{bad}");
        }
    }

    #[test]
    fn json_and_jsonb() {
        assert_eq!(st(&DataType::Json, "{\"b\":1, \"a\":2}"), Value::Text("{\"b\":1, \"a\":2}".into()));
        assert_eq!(
            st(&DataType::Jsonb, "{\"b\":1, \"a\":2, \"aa\": [1e2, 1.50, true, null]}"),
            Value::Text("{\"a\":2,\"b\":1,\"aa\":[100,1.50,true,null]}".into())
        );
        assert_eq!(
            round_trip(&DataType::Jsonb, "{\"b\":1,\"a\":{\"y\":\"x\\n\"}}"),
            "{\"a\": {\"y\": \"x\\n\"}, \"b\": 1}"
        );
        assert_eq!(round_trip(&DataType::Jsonb, "{\"a\":1,\"a\":2}"), "{\"a\": 2}");
        assert_eq!(round_trip(&DataType::Jsonb, "\"\\u00e9\\ud83d\\ude00\""), "\"é😀\"");
        assert_eq!(round_trip(&DataType::Jsonb, "[]"), "[]");
        for bad in ["", "{", "{\"a\" 1}", "[1,]", "01", "tru", "\"abc", "{\"a\":1}x", "\"\\q\"", "1."] {
            let err = text_to_storage(&DataType::Json, bad).unwrap_err();
            assert_eq!(err.code, SqlState::INVALID_TEXT_REPRESENTATION, "{bad}");
            assert_eq!(err.message, "invalid input syntax for type json");
        }
        let deep = "[".repeat(5000);
        assert!(text_to_storage(&DataType::Jsonb, &deep).is_err());
    }

    #[test]
    fn arrays_are_normalised_literals() {
        let ty = DataType::Array(Box::new(DataType::Int4));
        assert_eq!(st(&ty, "{1, 2 ,NULL}"), Value::Text("{1,2,NULL}".into()));
        let tty = DataType::Array(Box::new(DataType::Text));
        assert_eq!(st(&tty, "{a,\"b c\",\"\"}"), Value::Text("{a,\"b c\",\"\"}".into()));
        assert_eq!(split_array_literal("{}").unwrap(), Vec::<Option<String>>::new());
        assert_eq!(code(&ty, "{1,x}"), SqlState::INVALID_TEXT_REPRESENTATION);
        assert_eq!(code(&ty, "1,2"), SqlState::INVALID_TEXT_REPRESENTATION);
    }

    /// Garbage never panics: every type, a pile of awkward strings.
    #[test]
    fn garbage_never_panics() {
        let types = [
            DataType::Bool,
            DataType::Int2,
            DataType::Int4,
            DataType::Int8,
            DataType::Oid,
            DataType::Float4,
            DataType::Float8,
            DataType::Numeric(None),
            DataType::Numeric(Some((5, 2))),
            DataType::Numeric(Some((1, 1))),
            DataType::Varchar(Some(2)),
            DataType::Char(2),
            DataType::Name,
            DataType::CatalogChar,
            DataType::Bytea,
            DataType::Date,
            DataType::Time,
            DataType::Timestamp,
            DataType::Timestamptz,
            DataType::Interval,
            DataType::Json,
            DataType::Jsonb,
            DataType::Uuid,
            DataType::Array(Box::new(DataType::Int4)),
        ];
        let mut inputs: Vec<String> = [
            "",
            " ",
            "-",
            "+",
            ".",
            "e",
            "1e",
            "--1",
            "\\",
            "\\x",
            "\\x1",
            "{",
            "}",
            "{,}",
            "{\"}",
            "\u{0}",
            "é",
            "😀",
            "99999999999999999999999999999999999",
            "1e999999999999",
            "-1e-99999",
            "9999-99-99",
            "2024-01-01T",
            "2024-01-01 25:61:61",
            "24:00:00.1",
            "2024-01-01 12:00+99",
            "1:",
            ":1",
            "1::",
            "P1",
            "P1X",
            "PT",
            "@",
            "ago ago",
            "1 ago",
            "999999999999 years",
            "99999999999999999999:00",
            "\"\\ud800\"",
            "[[[[",
            "{\"a\":",
            "NaN",
            "Infinity",
            "-Infinity",
            "0x",
            "0x_1",
            "1__2",
            "_1",
            "{NULL}",
            "{{1}}",
            "0b102",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // Every string cut at every char boundary.
        let seeds = ["2024-12-31 23:59:59.999999+05:30", "1 year -2 mons +3 days -04:05:06.7 ago", "{\"a\":[1,2.5e3]}"];
        for s in seeds {
            for (i, _) in s.char_indices() {
                inputs.push(s[..i].to_string());
                inputs.push(s[i..].to_string());
            }
        }
        for ty in &types {
            for input in &inputs {
                if let Ok(v) = text_to_storage(ty, input) {
                    let _ = storage_to_text(ty, &v);
                }
            }
            for v in [Value::Integer(i64::MIN), Value::Real(f64::NAN), Value::Text("zz".into()), Value::Blob(vec![255])]
            {
                let _ = storage_to_text(ty, &v);
            }
        }
    }
}
