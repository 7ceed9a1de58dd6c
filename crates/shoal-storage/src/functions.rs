//! PostgreSQL functions SQLite lacks, as deterministic Rust scalar functions.
//!
//! The SQL translator (`shoal-sql`) rewrites PostgreSQL expressions into
//! SQLite SQL; where SQLite has no function with PostgreSQL's semantics it
//! emits a call to one of the functions registered here. They all work on the
//! *storage representation* documented in `shoal_common::types` (dates and
//! timestamps as text, intervals as PostgreSQL-style text, booleans as 0/1).
//!
//! Every function is pure (`SQLITE_DETERMINISTIC`): followers replay the same
//! statements and must compute the same values. The non-deterministic sources
//! (`shoal_now`, `shoal_random`, `gen_random_uuid`) are registered by the
//! storage layer from the transaction's execution context, not here.
//!
//! Errors are returned with PostgreSQL's message text (e.g. `division by
//! zero`, `invalid input syntax for type integer: "abc"`), so
//! `shoal_sql::map_sqlite_error` can give them their SQLSTATE.
//!
//! Names are prefixed `pg_` so they never shadow a SQLite built-in.

use md5::{Digest, Md5};
use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, Error, Result};
use shoal_common::numeric::Numeric;
use shoal_common::SqlState;

/// Registers every function of this module on `conn`.
pub fn register(conn: &Connection) -> Result<()> {
    crate::session_settings::register(conn)?;
    let flags = FunctionFlags::SQLITE_DETERMINISTIC | FunctionFlags::SQLITE_UTF8;
    type F = fn(&Context<'_>) -> Result<Value>;
    let table: &[(&str, i32, F)] = &[
        ("pg_cast", 3, pg_cast),
        ("pg_div", 2, pg_div),
        ("pg_mod", 2, pg_mod),
        ("pg_like", 2, |c| like(c, false)),
        ("pg_ilike", 2, |c| like(c, true)),
        ("pg_like", 3, |c| like(c, false)),
        ("pg_ilike", 3, |c| like(c, true)),
        ("pg_lower", 1, |c| map_text(c, |s| s.to_lowercase())),
        ("pg_upper", 1, |c| map_text(c, |s| s.to_uppercase())),
        ("pg_reverse", 1, |c| map_text(c, |s| s.chars().rev().collect())),
        ("pg_initcap", 1, |c| map_text(c, initcap)),
        ("pg_md5", 1, pg_md5),
        ("pg_substr", 2, pg_substr),
        ("pg_substr", 3, pg_substr),
        ("pg_left", 2, |c| left_right(c, true)),
        ("pg_right", 2, |c| left_right(c, false)),
        ("pg_repeat", 2, pg_repeat),
        ("pg_lpad", 2, |c| pad(c, true)),
        ("pg_lpad", 3, |c| pad(c, true)),
        ("pg_rpad", 2, |c| pad(c, false)),
        ("pg_rpad", 3, |c| pad(c, false)),
        ("pg_split_part", 3, pg_split_part),
        ("pg_starts_with", 2, pg_starts_with),
        ("pg_concat_ws", -1, pg_concat_ws),
        ("pg_greatest", -1, |c| extreme(c, true)),
        ("pg_least", -1, |c| extreme(c, false)),
        ("pg_bpchar", 2, pg_bpchar),
        ("pg_ceil", 1, |c| float_fn(c, f64::ceil)),
        ("pg_floor", 1, |c| float_fn(c, f64::floor)),
        ("pg_trunc", 1, |c| float_fn(c, f64::trunc)),
        ("pg_trunc", 2, pg_trunc2),
        ("pg_sqrt", 1, pg_sqrt),
        ("pg_exp", 1, |c| float_fn(c, f64::exp)),
        ("pg_ln", 1, pg_ln),
        ("pg_log", 1, pg_log),
        ("pg_log", 2, pg_log),
        ("pg_power", 2, pg_power),
        ("pg_sign", 1, |c| float_fn(c, |x| if x == 0.0 { 0.0 } else { x.signum() })),
        ("pg_ts_add", 3, pg_ts_add),
        ("pg_ts_diff", 2, pg_ts_diff),
        ("pg_interval_add", 3, pg_interval_add),
        ("pg_date_trunc", 2, pg_date_trunc),
        ("pg_extract", 2, pg_extract),
        ("pg_regex", 3, pg_regex),
        ("pg_format_type", 2, pg_format_type),
        ("pg_array_json", 1, pg_array_json),
        ("pg_array_lower", 1, |c| array_fn(c, |_, lower| lower.into())),
        ("pg_array_length", 1, |c| array_fn(c, |items, _| (items.len() as i64).into())),
        ("pg_array_upper", 1, |c| {
            array_fn(
                c,
                |items, lower| if items.is_empty() { Value::Null } else { (items.len() as i64 - 1 + lower).into() },
            )
        }),
        ("pg_array_get", 2, pg_array_get),
        ("pg_array_contains", 2, pg_array_contains),
        ("pg_array_to_string", 3, pg_array_to_string),
        ("pg_array_elem", 1, pg_array_elem),
        ("pg_record", -1, pg_record),
        ("pg_record_field", 2, pg_record_field),
        ("pg_int4pl", 2, |c| int_arith(c, i64::checked_add, "integer")),
        ("pg_int4mi", 2, |c| int_arith(c, i64::checked_sub, "integer")),
        ("pg_int4mul", 2, |c| int_arith(c, i64::checked_mul, "integer")),
        ("pg_int8pl", 2, |c| int_arith(c, i64::checked_add, "bigint")),
        ("pg_int8mi", 2, |c| int_arith(c, i64::checked_sub, "bigint")),
        ("pg_int8mul", 2, |c| int_arith(c, i64::checked_mul, "bigint")),
        ("pg_single_row", 2, pg_single_row),
        ("pg_format", -1, pg_format),
        ("pg_step", 1, pg_step),
    ];
    for (name, n_arg, f) in table {
        let f = *f;
        conn.create_scalar_function(*name, *n_arg, flags, move |ctx| f(ctx))?;
    }
    crate::numeric::register(conn)?;
    // The table-valued `generate_series(start, stop, step)`.
    rusqlite::vtab::series::load_module(conn)
}

/// A user-visible error with PostgreSQL's message text.
/// An error raised with its PostgreSQL SQLSTATE. SQLite hands a function's
/// error on as text only, so the code travels in that text and
/// [`crate::sqlite_error::from_sqlite`] takes it out again.
fn pg_error(code: SqlState, message: impl Into<String>) -> Error {
    Error::UserFunctionError(crate::sqlite_error::encode_function_error(code, &message.into()).into())
}

/// An owned copy of an argument.
fn owned(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(n) => Value::Integer(n),
        ValueRef::Real(r) => Value::Real(r),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

fn arg_text(ctx: &Context<'_>, i: usize) -> Option<String> {
    match ctx.get_raw(i) {
        ValueRef::Null => None,
        ValueRef::Integer(n) => Some(n.to_string()),
        ValueRef::Real(r) => Some(format_real(r)),
        ValueRef::Text(t) | ValueRef::Blob(t) => Some(String::from_utf8_lossy(t).into_owned()),
    }
}

fn arg_f64(ctx: &Context<'_>, i: usize) -> Result<Option<f64>> {
    Ok(match ctx.get_raw(i) {
        ValueRef::Null => None,
        ValueRef::Integer(n) => Some(n as f64),
        ValueRef::Real(r) => Some(r),
        ValueRef::Text(t) | ValueRef::Blob(t) => {
            let s = String::from_utf8_lossy(t);
            Some(s.trim().parse::<f64>().map_err(|_| invalid_input("double precision", &s))?)
        }
    })
}

fn arg_i64(ctx: &Context<'_>, i: usize) -> Result<Option<i64>> {
    Ok(match ctx.get_raw(i) {
        ValueRef::Null => None,
        ValueRef::Integer(n) => Some(n),
        ValueRef::Real(r) => Some(r.round() as i64),
        ValueRef::Text(t) | ValueRef::Blob(t) => {
            let s = String::from_utf8_lossy(t);
            Some(s.trim().parse::<i64>().map_err(|_| invalid_input("integer", &s))?)
        }
    })
}

fn invalid_input(type_name: &str, value: &str) -> Error {
    let code = if matches!(type_name, "date" | "time" | "timestamp" | "timestamp with time zone" | "interval") {
        SqlState::INVALID_DATETIME_FORMAT
    } else {
        SqlState::INVALID_TEXT_REPRESENTATION
    };
    pg_error(code, format!("invalid input syntax for type {type_name}: \"{value}\""))
}

/// Formats a REAL the way PostgreSQL prints a float8 (no trailing `.0`).
fn format_real(r: f64) -> String {
    if r.is_finite() && r == r.trunc() && r.abs() < 1e15 {
        format!("{}", r as i64)
    } else if r.is_nan() {
        "NaN".into()
    } else if r.is_infinite() {
        if r > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        format!("{r}")
    }
}

fn map_text(ctx: &Context<'_>, f: impl Fn(&str) -> String) -> Result<Value> {
    Ok(arg_text(ctx, 0).map_or(Value::Null, |s| Value::Text(f(&s))))
}

fn initcap(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if c.is_alphanumeric() {
            if start {
                out.extend(c.to_uppercase());
            } else {
                out.extend(c.to_lowercase());
            }
            start = false;
        } else {
            out.push(c);
            start = true;
        }
    }
    out
}

fn pg_md5(ctx: &Context<'_>) -> Result<Value> {
    let bytes: Option<Vec<u8>> = match ctx.get_raw(0) {
        ValueRef::Null => None,
        ValueRef::Blob(b) => Some(b.to_vec()),
        _ => arg_text(ctx, 0).map(String::into_bytes),
    };
    Ok(bytes.map_or(Value::Null, |b| {
        let digest = Md5::digest(&b);
        Value::Text(digest.iter().map(|x| format!("{x:02x}")).collect())
    }))
}

// ---------------------------------------------------------------- arithmetic

fn pg_div(ctx: &Context<'_>) -> Result<Value> {
    checked_division(ctx, i64::checked_div, |a, b| a / b)
}

fn pg_mod(ctx: &Context<'_>) -> Result<Value> {
    checked_division(ctx, i64::checked_rem, |a, b| a % b)
}

/// `/` and `%` with PostgreSQL's errors: division by zero is 22012, and the
/// one integer overflow (`i64::MIN / -1`) is 22003 instead of a wrap.
fn checked_division(
    ctx: &Context<'_>,
    int_op: fn(i64, i64) -> Option<i64>,
    float_op: fn(f64, f64) -> f64,
) -> Result<Value> {
    match (ctx.get_raw(0), ctx.get_raw(1)) {
        (ValueRef::Null, _) | (_, ValueRef::Null) => Ok(Value::Null),
        (ValueRef::Integer(a), ValueRef::Integer(b)) => {
            if b == 0 {
                return Err(pg_error(SqlState::DIVISION_BY_ZERO, "division by zero"));
            }
            int_op(a, b)
                .map(Value::Integer)
                .ok_or_else(|| pg_error(SqlState::NUMERIC_VALUE_OUT_OF_RANGE, "bigint out of range"))
        }
        _ => {
            let (a, b) = (arg_f64(ctx, 0)?.unwrap_or(0.0), arg_f64(ctx, 1)?.unwrap_or(0.0));
            if b == 0.0 {
                return Err(pg_error(SqlState::DIVISION_BY_ZERO, "division by zero"));
            }
            Ok(Value::Real(float_op(a, b)))
        }
    }
}

/// Checked integer arithmetic (PostgreSQL's `int4pl`, `int8mul`, …): SQLite
/// would silently turn an overflowing INTEGER into a REAL, PostgreSQL errors.
/// `type_name` is `integer` (the result must fit in 32 bits) or `bigint`.
fn int_arith(ctx: &Context<'_>, op: fn(i64, i64) -> Option<i64>, type_name: &str) -> Result<Value> {
    let (Some(a), Some(b)) = (arg_i64(ctx, 0)?, arg_i64(ctx, 1)?) else { return Ok(Value::Null) };
    let out = op(a, b).filter(|n| type_name != "integer" || i32::try_from(*n).is_ok());
    out.map(Value::Integer)
        .ok_or_else(|| pg_error(SqlState::NUMERIC_VALUE_OUT_OF_RANGE, format!("{type_name} out of range")))
}

/// `pg_single_row(count, value)`: the value of a scalar subquery, which must
/// not return more than one row (the translator passes `count(*)` of at most two).
fn pg_single_row(ctx: &Context<'_>) -> Result<Value> {
    if arg_i64(ctx, 0)?.unwrap_or(0) > 1 {
        return Err(pg_error(
            SqlState::CARDINALITY_VIOLATION,
            "more than one row returned by a subquery used as an expression",
        ));
    }
    Ok(owned(ctx.get_raw(1)))
}

/// A `generate_series` step: PostgreSQL refuses zero.
fn pg_step(ctx: &Context<'_>) -> Result<Value> {
    match arg_i64(ctx, 0)? {
        Some(0) => Err(pg_error(SqlState::INVALID_PARAMETER_VALUE, "step size cannot equal zero")),
        other => Ok(other.map_or(Value::Null, Value::Integer)),
    }
}

/// `format(fmt, args…)` with `%s`, `%I`, `%L`, `%%` and `%n$` positions.
fn pg_format(ctx: &Context<'_>) -> Result<Value> {
    let Some(fmt) = (!ctx.is_empty()).then(|| arg_text(ctx, 0)).flatten() else { return Ok(Value::Null) };
    let args: Vec<Option<String>> = (1..ctx.len()).map(|i| arg_text(ctx, i)).collect();
    format_with(&fmt, &args).map(Value::Text).map_err(|m| pg_error(SqlState::INVALID_PARAMETER_VALUE, m))
}

fn format_with(fmt: &str, args: &[Option<String>]) -> std::result::Result<String, String> {
    let mut out = String::new();
    let mut chars = fmt.chars().peekable();
    let mut next = 0usize;
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut digits = String::new();
        while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
            digits.push(*d);
            chars.next();
        }
        let index = if !digits.is_empty() && chars.peek() == Some(&'$') {
            chars.next();
            let n: usize = digits.parse().map_err(|_| "invalid format specification for an argument".to_string())?;
            n.checked_sub(1)
                .ok_or_else(|| "format specifies argument 0, but arguments are numbered from 1".to_string())?
        } else if digits.is_empty() {
            next
        } else {
            return Err("unrecognized format() type specifier".into());
        };
        let Some(kind) = chars.next() else { return Err("unterminated format() type specifier".into()) };
        if kind == '%' && digits.is_empty() {
            out.push('%');
            continue;
        }
        let arg = args.get(index).ok_or_else(|| "too few arguments for format()".to_string())?;
        next = index + 1;
        match (kind, arg) {
            ('s', Some(v)) => out.push_str(v),
            ('s', None) => {}
            ('I', Some(v)) => out.push_str(&quote_ident(v)),
            ('I', None) => return Err("null values cannot be formatted as an SQL identifier".into()),
            ('L', Some(v)) => out.push_str(&format!("'{}'", v.replace('\'', "''"))),
            ('L', None) => out.push_str("NULL"),
            (other, _) => return Err(format!("unrecognized format() type specifier \"{other}\"")),
        }
    }
    Ok(out)
}

/// PostgreSQL's `quote_ident`: quotes unless the name is a plain lower-case identifier.
fn quote_ident(s: &str) -> String {
    let plain = s.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        s.to_string()
    } else {
        format!("\"{}\"", s.replace('"', "\"\""))
    }
}

/// Applies `f` keeping integers integers (ceil(3) is 3, not 3.0).
fn float_fn(ctx: &Context<'_>, f: fn(f64) -> f64) -> Result<Value> {
    Ok(match ctx.get_raw(0) {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(n) => Value::Integer(f(n as f64) as i64),
        _ => Value::Real(f(arg_f64(ctx, 0)?.unwrap_or(0.0))),
    })
}

fn pg_trunc2(ctx: &Context<'_>) -> Result<Value> {
    let (Some(x), Some(n)) = (arg_f64(ctx, 0)?, arg_i64(ctx, 1)?) else { return Ok(Value::Null) };
    let scale = 10f64.powi(n.clamp(-300, 300) as i32);
    Ok(Value::Real((x * scale).trunc() / scale))
}

fn pg_sqrt(ctx: &Context<'_>) -> Result<Value> {
    let Some(x) = arg_f64(ctx, 0)? else { return Ok(Value::Null) };
    if x < 0.0 {
        return Err(pg_error(
            SqlState::INVALID_ARGUMENT_FOR_POWER_FUNCTION,
            "cannot take square root of a negative number",
        ));
    }
    Ok(Value::Real(x.sqrt()))
}

fn pg_ln(ctx: &Context<'_>) -> Result<Value> {
    let Some(x) = arg_f64(ctx, 0)? else { return Ok(Value::Null) };
    check_log_arg(x)?;
    Ok(Value::Real(x.ln()))
}

fn check_log_arg(x: f64) -> Result<()> {
    if x == 0.0 {
        return Err(pg_error(SqlState::INVALID_ARGUMENT_FOR_LOGARITHM, "cannot take logarithm of zero"));
    }
    if x < 0.0 {
        return Err(pg_error(SqlState::INVALID_ARGUMENT_FOR_LOGARITHM, "cannot take logarithm of a negative number"));
    }
    Ok(())
}

/// `log(x)` is base 10; `log(b, x)` is base `b`, as in PostgreSQL.
fn pg_log(ctx: &Context<'_>) -> Result<Value> {
    if ctx.len() == 1 {
        let Some(x) = arg_f64(ctx, 0)? else { return Ok(Value::Null) };
        check_log_arg(x)?;
        return Ok(Value::Real(x.log10()));
    }
    let (Some(b), Some(x)) = (arg_f64(ctx, 0)?, arg_f64(ctx, 1)?) else { return Ok(Value::Null) };
    check_log_arg(b)?;
    check_log_arg(x)?;
    Ok(Value::Real(x.ln() / b.ln()))
}

fn pg_power(ctx: &Context<'_>) -> Result<Value> {
    let (Some(a), Some(b)) = (arg_f64(ctx, 0)?, arg_f64(ctx, 1)?) else { return Ok(Value::Null) };
    Ok(Value::Real(a.powf(b)))
}

/// `greatest`/`least`: NULL arguments are ignored (SQLite's `max(a, b)` would return NULL).
fn extreme(ctx: &Context<'_>, greatest: bool) -> Result<Value> {
    let mut best: Option<Value> = None;
    for i in 0..ctx.len() {
        let v = owned(ctx.get_raw(i));
        if matches!(v, Value::Null) {
            continue;
        }
        let better = match &best {
            None => true,
            Some(b) => {
                let ord = compare(&v, b);
                if greatest {
                    ord.is_gt()
                } else {
                    ord.is_lt()
                }
            }
        };
        if better {
            best = Some(v);
        }
    }
    Ok(best.unwrap_or(Value::Null))
}

/// SQLite's cross-type ordering: numbers < text < blobs.
fn compare(a: &Value, b: &Value) -> std::cmp::Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Null => 0,
            Value::Integer(_) | Value::Real(_) => 1,
            Value::Text(_) => 2,
            Value::Blob(_) => 3,
        }
    }
    let num = |v: &Value| match v {
        Value::Integer(n) => *n as f64,
        Value::Real(r) => *r,
        _ => 0.0,
    };
    match (a, b) {
        (Value::Integer(x), Value::Integer(y)) => x.cmp(y),
        (Value::Text(x), Value::Text(y)) => x.cmp(y),
        (Value::Blob(x), Value::Blob(y)) => x.cmp(y),
        _ if rank(a) == 1 && rank(b) == 1 => num(a).partial_cmp(&num(b)).unwrap_or(std::cmp::Ordering::Equal),
        _ => rank(a).cmp(&rank(b)),
    }
}

// ------------------------------------------------------------------- strings

/// PostgreSQL's `LIKE` (case-sensitive; `\` escapes) and `ILIKE`.
/// `pg_like(text, pattern [, escape])` and `pg_ilike(…)`: `LIKE` and
/// `ILIKE` with PostgreSQL's rules. Without an ESCAPE clause the escape
/// character is a backslash; `ESCAPE ''` turns escaping off; an escape
/// string of two or more characters is 22025, as in PostgreSQL. ILIKE applies the escape to
/// the pattern as written and then compares lowercased, as PostgreSQL does
/// (`'ax' ILIKE 'AxX' ESCAPE 'x'` is true).
fn like(ctx: &Context<'_>, fold: bool) -> Result<Value> {
    let (Some(s), Some(p)) = (arg_text(ctx, 0), arg_text(ctx, 1)) else { return Ok(Value::Null) };
    let escape = if ctx.len() > 2 {
        let Some(e) = arg_text(ctx, 2) else { return Ok(Value::Null) };
        let mut chars = e.chars();
        match (chars.next(), chars.next()) {
            (None, _) => None,
            (Some(c), None) => Some(c),
            _ => {
                return Err(pg_error(
                    SqlState::INVALID_ESCAPE_SEQUENCE,
                    "invalid escape string (an ESCAPE string must be empty or one character)",
                ))
            }
        }
    } else {
        Some('\\')
    };
    let text: Vec<char> = if fold { s.to_lowercase().chars().collect() } else { s.chars().collect() };
    let pattern = like_pattern(&p, escape, fold);
    match like_match(&text, &pattern) {
        Ok(matched) => Ok(Value::Integer(matched as i64)),
        Err(DanglingEscape) => {
            Err(pg_error(SqlState::INVALID_ESCAPE_SEQUENCE, "LIKE pattern must not end with escape character"))
        }
    }
}

/// One element of a LIKE pattern.
#[derive(Clone, Copy, Debug, PartialEq)]
enum LikeToken {
    /// `%`: any run of characters.
    Any,
    /// `_`: one character.
    One,
    Literal(char),
    /// The escape character as the pattern's last character.
    Dangling,
}

/// The pattern reached an escape character with nothing after it.
#[derive(Debug, PartialEq)]
struct DanglingEscape;

/// Splits a pattern into tokens: the escape character makes the next
/// character literal (itself included). With `fold`, literals are
/// lowercased after escapes are resolved.
fn like_pattern(p: &str, escape: Option<char>, fold: bool) -> Vec<LikeToken> {
    let mut out = Vec::with_capacity(p.len());
    let mut chars = p.chars();
    let literal = |c: char, out: &mut Vec<LikeToken>| {
        if fold {
            out.extend(c.to_lowercase().map(LikeToken::Literal));
        } else {
            out.push(LikeToken::Literal(c));
        }
    };
    while let Some(c) = chars.next() {
        if Some(c) == escape {
            match chars.next() {
                Some(next) => literal(next, &mut out),
                None => out.push(LikeToken::Dangling),
            }
        } else if c == '%' {
            out.push(LikeToken::Any);
        } else if c == '_' {
            out.push(LikeToken::One);
        } else {
            literal(c, &mut out);
        }
    }
    out
}

/// Iterative wildcard matching with backtracking to the last `%` (linear
/// memory, no recursion, so no pattern can exhaust the stack). A dangling
/// escape is an error where PostgreSQL's matcher reports one: when it is
/// reached with text left to match, or is the first thing after a `%`
/// that is reached with text left.
fn like_match(s: &[char], p: &[LikeToken]) -> std::result::Result<bool, DanglingEscape> {
    use LikeToken::*;
    // A `%` at or after this index has only wildcards, then the dangling
    // escape, after it (computed once: checking at each `%` would make a
    // pattern of many `%` quadratic).
    let dangling_after = match p.split_last() {
        Some((Dangling, rest)) => rest.iter().rposition(|t| !matches!(t, Any | One)).map_or(0, |i| i + 1),
        _ => usize::MAX,
    };
    let (mut si, mut pi) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        let step = match p.get(pi) {
            Some(Any) => {
                if pi >= dangling_after {
                    return Err(DanglingEscape);
                }
                star = Some((pi + 1, si));
                pi += 1;
                continue;
            }
            Some(Dangling) => return Err(DanglingEscape),
            Some(One) => true,
            Some(Literal(c)) => *c == s[si],
            None => false,
        };
        match (step, star) {
            (true, _) => {
                si += 1;
                pi += 1;
            }
            (false, Some((sp, ss))) => {
                pi = sp;
                si = ss + 1;
                star = Some((sp, ss + 1));
            }
            (false, None) => return Ok(false),
        }
    }
    Ok(p[pi.min(p.len())..].iter().all(|t| *t == Any))
}

/// `substr(s, from [, count])` with PostgreSQL's handling of positions before 1.
fn pg_substr(ctx: &Context<'_>) -> Result<Value> {
    let (Some(s), Some(from)) = (arg_text(ctx, 0), arg_i64(ctx, 1)?) else { return Ok(Value::Null) };
    let end = if ctx.len() > 2 {
        let Some(count) = arg_i64(ctx, 2)? else { return Ok(Value::Null) };
        if count < 0 {
            return Err(pg_error(SqlState::SUBSTRING_ERROR, "negative substring length not allowed"));
        }
        from.saturating_add(count)
    } else {
        i64::MAX
    };
    let start = from.max(1);
    let take = (end - start).max(0) as usize;
    Ok(Value::Text(s.chars().skip((start - 1) as usize).take(take).collect()))
}

fn left_right(ctx: &Context<'_>, left: bool) -> Result<Value> {
    let (Some(s), Some(n)) = (arg_text(ctx, 0), arg_i64(ctx, 1)?) else { return Ok(Value::Null) };
    let chars: Vec<char> = s.chars().collect();
    let len = chars.len() as i64;
    let k = if n >= 0 { n.min(len) } else { (len + n).max(0) } as usize;
    let out: String = if left { chars[..k].iter().collect() } else { chars[chars.len() - k..].iter().collect() };
    Ok(Value::Text(out))
}

/// Refuses results over 64 MiB so a `repeat('x', 1e12)` cannot exhaust memory.
const MAX_STRING_BYTES: usize = 64 << 20;

fn pg_repeat(ctx: &Context<'_>) -> Result<Value> {
    let (Some(s), Some(n)) = (arg_text(ctx, 0), arg_i64(ctx, 1)?) else { return Ok(Value::Null) };
    let n = n.max(0) as usize;
    if s.len().saturating_mul(n) > MAX_STRING_BYTES {
        return Err(pg_error(SqlState::PROGRAM_LIMIT_EXCEEDED, "requested length too large"));
    }
    Ok(Value::Text(s.repeat(n)))
}

fn pad(ctx: &Context<'_>, left: bool) -> Result<Value> {
    let (Some(s), Some(n)) = (arg_text(ctx, 0), arg_i64(ctx, 1)?) else { return Ok(Value::Null) };
    let fill = if ctx.len() > 2 { arg_text(ctx, 2) } else { Some(" ".into()) };
    let Some(fill) = fill else { return Ok(Value::Null) };
    let n = n.max(0) as usize;
    if n > MAX_STRING_BYTES {
        return Err(pg_error(SqlState::PROGRAM_LIMIT_EXCEEDED, "requested length too large"));
    }
    let chars: Vec<char> = s.chars().collect();
    if chars.len() >= n || fill.is_empty() {
        return Ok(Value::Text(chars.iter().take(n).collect()));
    }
    let padding: String = fill.chars().cycle().take(n - chars.len()).collect();
    Ok(Value::Text(if left { padding + &s } else { s + &padding }))
}

fn pg_split_part(ctx: &Context<'_>) -> Result<Value> {
    let (Some(s), Some(d), Some(n)) = (arg_text(ctx, 0), arg_text(ctx, 1), arg_i64(ctx, 2)?) else {
        return Ok(Value::Null);
    };
    if n == 0 {
        return Err(pg_error(SqlState::INVALID_PARAMETER_VALUE, "field position must not be zero"));
    }
    let parts: Vec<&str> = if d.is_empty() { vec![s.as_str()] } else { s.split(d.as_str()).collect() };
    let idx = if n > 0 { n - 1 } else { parts.len() as i64 + n };
    let part = usize::try_from(idx).ok().and_then(|i| parts.get(i)).copied().unwrap_or("");
    Ok(Value::Text(part.to_string()))
}

fn pg_starts_with(ctx: &Context<'_>) -> Result<Value> {
    let (Some(s), Some(p)) = (arg_text(ctx, 0), arg_text(ctx, 1)) else { return Ok(Value::Null) };
    Ok(Value::Integer(s.starts_with(&p) as i64))
}

fn pg_concat_ws(ctx: &Context<'_>) -> Result<Value> {
    let Some(sep) = (!ctx.is_empty()).then(|| arg_text(ctx, 0)).flatten() else { return Ok(Value::Null) };
    let parts: Vec<String> = (1..ctx.len()).filter_map(|i| arg_text(ctx, i)).collect();
    Ok(Value::Text(parts.join(&sep)))
}

/// `character(n)`: blank-pads to `n`; longer values are an error unless the excess is blanks.
fn pg_bpchar(ctx: &Context<'_>) -> Result<Value> {
    let (Some(s), Some(n)) = (arg_text(ctx, 0), arg_i64(ctx, 1)?) else { return Ok(Value::Null) };
    let n = n.max(0) as usize;
    let len = s.chars().count();
    if len > n {
        let trimmed: String = s.chars().take(n).collect();
        if s.chars().skip(n).any(|c| c != ' ') {
            return Err(pg_error(
                SqlState::STRING_DATA_RIGHT_TRUNCATION,
                format!("value too long for type character({n})"),
            ));
        }
        return Ok(Value::Text(trimmed));
    }
    Ok(Value::Text(format!("{s}{}", " ".repeat(n - len))))
}

// --------------------------------------------------------------------- casts

/// `pg_cast(value, from_type, to_type)`: converts between storage
/// representations, type names as in `pg_type.typname` (`int4`, `bool`, …),
/// optionally with a modifier (`varchar(10)`, `numeric(10,2)`, `bpchar(3)`).
fn pg_cast(ctx: &Context<'_>) -> Result<Value> {
    let v = owned(ctx.get_raw(0));
    let from = arg_text(ctx, 1).unwrap_or_default();
    let to = arg_text(ctx, 2).unwrap_or_default();
    if matches!(v, Value::Null) {
        return Ok(Value::Null);
    }
    cast_value(v, &from, &to)
}

fn type_modifier(name: &str) -> (&str, Vec<i64>) {
    match name.split_once('(') {
        Some((base, rest)) => {
            let mods = rest.trim_end_matches(')').split(',').filter_map(|m| m.trim().parse().ok()).collect();
            (base, mods)
        }
        None => (name, vec![]),
    }
}

/// Converts one non-NULL value; public so the translator's tests can reuse it.
pub fn cast_value(v: Value, from: &str, to: &str) -> Result<Value> {
    let (to_base, mods) = type_modifier(to);
    let text = value_text(&v, from);
    match to_base {
        "int2" | "int4" | "int8" | "oid" => cast_int(&v, &text, from, to_base),
        "float4" | "float8" => cast_float(&v, &text, to_base).map(Value::Real),
        "numeric" => {
            let n = match &v {
                Value::Integer(n) if from != "bool" => Numeric::from_i64(*n),
                // float4 → numeric keeps 6 significant digits, float8 15 (PostgreSQL's FLT_DIG/DBL_DIG).
                Value::Real(r) => Numeric::from_f64(*r, if from == "float4" { 6 } else { 15 }),
                _ if from == "bool" => return Err(cannot_cast(from, to_base)),
                _ => Numeric::parse(&text).map_err(|e| pg_error(e.code, e.message))?,
            };
            let n = match (mods.first(), mods.get(1)) {
                (Some(p), Some(s)) => {
                    let (p, s) = (u32::try_from(*p).unwrap_or(0), u32::try_from(*s).unwrap_or(0));
                    n.apply_typmod(p, s).map_err(|e| pg_error(e.code, e.message))?
                }
                _ => n,
            };
            Ok(Value::Text(n.to_string()))
        }
        "bool" => cast_bool(&v, &text).map(|b| Value::Integer(b as i64)),
        "text" | "name" => Ok(Value::Text(text)),
        "varchar" => Ok(Value::Text(match mods.first() {
            Some(n) => text.chars().take((*n).max(0) as usize).collect(),
            None => text,
        })),
        "bpchar" => {
            let n = mods.first().copied().unwrap_or(1).max(0) as usize;
            let cut: String = text.chars().take(n).collect();
            let len = cut.chars().count();
            Ok(Value::Text(format!("{cut}{}", " ".repeat(n - len))))
        }
        "date" => parse_timestamp(&text, false).map(|(d, _)| Value::Text(format_date(d))).map_err(|e| {
            // The timestamp parser speaks of "timestamp"; this cast is to date.
            let err = crate::sqlite_error::from_sqlite(e);
            match err.message.strip_prefix("invalid input syntax for type timestamp") {
                Some(rest) => pg_error(err.code, format!("invalid input syntax for type date{rest}")),
                None => pg_error(err.code, err.message),
            }
        }),
        "timestamp" | "timestamptz" => {
            let utc = to_base == "timestamptz";
            parse_timestamp(&text, utc).map(|(d, us)| Value::Text(format_timestamp(d, us)))
        }
        "time" => parse_time(&text).map(|us| Value::Text(format_time(us))),
        "interval" => Interval::parse(&text).map(|iv| Value::Text(iv.to_string())),
        "uuid" => cast_uuid(&text),
        "json" | "jsonb" => cast_json(text, to_base == "jsonb"),
        "bytea" => match v {
            Value::Blob(b) => Ok(Value::Blob(b)),
            _ => Ok(Value::Blob(parse_bytea(&text)?)),
        },
        other => Err(cannot_cast(from, other)),
    }
}

fn cannot_cast(from: &str, to: &str) -> Error {
    pg_error(SqlState::CANNOT_COERCE, format!("cannot cast type {} to {}", pg_type_name(from), pg_type_name(to)))
}

fn value_text(v: &Value, from: &str) -> String {
    match v {
        Value::Integer(n) if from == "bool" => if *n != 0 { "true" } else { "false" }.into(),
        Value::Integer(n) => n.to_string(),
        Value::Real(r) => format_real(*r),
        Value::Text(s) => s.clone(),
        Value::Blob(b) => format!("\\x{}", b.iter().map(|x| format!("{x:02x}")).collect::<String>()),
        Value::Null => String::new(),
    }
}

fn pg_type_name(base: &str) -> &str {
    match base {
        "int2" => "smallint",
        "int4" => "integer",
        "int8" => "bigint",
        "float4" => "real",
        "float8" => "double precision",
        "bool" => "boolean",
        other => other,
    }
}

fn cast_int(v: &Value, text: &str, from: &str, to: &str) -> Result<Value> {
    let n = match v {
        // numeric → integer rounds half away from zero (PostgreSQL's numeric_int4 and friends).
        Value::Text(t) if from.starts_with("numeric") => {
            let n = Numeric::parse(t).map_err(|e| pg_error(e.code, e.message))?;
            n.to_i64(i64::MIN, i64::MAX, pg_type_name(to)).map_err(|e| pg_error(e.code, e.message))?
        }
        Value::Integer(n) => *n,
        Value::Real(r) => {
            if !r.is_finite() || r.abs() > 9.2e18 {
                return Err(pg_error(
                    SqlState::NUMERIC_VALUE_OUT_OF_RANGE,
                    format!("{} out of range", pg_type_name(to)),
                ));
            }
            r.round() as i64
        }
        _ => text.trim().parse::<i64>().map_err(|_| invalid_input(pg_type_name(to), text))?,
    };
    let in_range = match to {
        "int2" => i16::try_from(n).is_ok(),
        "int4" => i32::try_from(n).is_ok(),
        "oid" => u32::try_from(n).is_ok(),
        _ => true,
    };
    if !in_range {
        return Err(pg_error(SqlState::NUMERIC_VALUE_OUT_OF_RANGE, format!("{} out of range", pg_type_name(to))));
    }
    Ok(Value::Integer(n))
}

fn cast_float(v: &Value, text: &str, to: &str) -> Result<f64> {
    match v {
        Value::Integer(n) => Ok(*n as f64),
        Value::Real(r) => Ok(*r),
        _ => {
            let t = text.trim();
            let special = match t.to_ascii_lowercase().as_str() {
                "nan" => Some(f64::NAN),
                "infinity" | "inf" => Some(f64::INFINITY),
                "-infinity" | "-inf" => Some(f64::NEG_INFINITY),
                _ => None,
            };
            match special {
                Some(x) => Ok(x),
                None => t.parse::<f64>().map_err(|_| invalid_input(pg_type_name(to), text)),
            }
        }
    }
}

fn cast_bool(v: &Value, text: &str) -> Result<bool> {
    if let Value::Integer(n) = v {
        return Ok(*n != 0);
    }
    match text.trim().to_ascii_lowercase().as_str() {
        "t" | "true" | "y" | "yes" | "on" | "1" => Ok(true),
        "f" | "false" | "n" | "no" | "off" | "0" => Ok(false),
        _ => Err(invalid_input("boolean", text)),
    }
}

fn cast_uuid(text: &str) -> Result<Value> {
    let hex: String = text.trim().trim_matches(|c| c == '{' || c == '}').chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(invalid_input("uuid", text));
    }
    let h = hex.to_ascii_lowercase();
    Ok(Value::Text(format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])))
}

/// Validates JSON; jsonb is stored minified (SQLite's `json()` does the same).
fn cast_json(text: String, minify: bool) -> Result<Value> {
    let parsed: serde_json_lite::Checked = serde_json_lite::check(&text).ok_or_else(|| {
        pg_error(SqlState::INVALID_TEXT_REPRESENTATION, format!("invalid input syntax for type json: \"{text}\""))
    })?;
    Ok(Value::Text(if minify { parsed.minified } else { text }))
}

fn parse_bytea(text: &str) -> Result<Vec<u8>> {
    let Some(hex) = text.strip_prefix("\\x") else { return Ok(text.as_bytes().to_vec()) };
    if hex.len() % 2 != 0 {
        return Err(invalid_input("bytea", text));
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("zz"), 16).map_err(|_| invalid_input("bytea", text)))
        .collect()
}

/// A minimal JSON validator/minifier, so this crate needs no JSON dependency.
mod serde_json_lite {
    pub struct Checked {
        pub minified: String,
    }

    /// Returns the minified text when `text` is one valid JSON value.
    pub fn check(text: &str) -> Option<Checked> {
        let b: Vec<char> = text.chars().collect();
        let mut out = String::with_capacity(text.len());
        let mut i = skip_ws(&b, 0);
        i = value(&b, i, &mut out, 0)?;
        (skip_ws(&b, i) == b.len()).then_some(Checked { minified: out })
    }

    fn skip_ws(b: &[char], mut i: usize) -> usize {
        while i < b.len() && b[i].is_whitespace() {
            i += 1;
        }
        i
    }

    fn value(b: &[char], i: usize, out: &mut String, depth: usize) -> Option<usize> {
        if depth > 512 {
            return None;
        }
        match b.get(i)? {
            '{' => container(b, i, out, depth, '}', true),
            '[' => container(b, i, out, depth, ']', false),
            '"' => string(b, i, out),
            _ => literal(b, i, out),
        }
    }

    fn container(b: &[char], i: usize, out: &mut String, depth: usize, close: char, object: bool) -> Option<usize> {
        out.push(b[i]);
        let mut i = skip_ws(b, i + 1);
        if b.get(i) == Some(&close) {
            out.push(close);
            return Some(i + 1);
        }
        loop {
            if object {
                i = string(b, i, out)?;
                i = skip_ws(b, i);
                (b.get(i) == Some(&':')).then_some(())?;
                out.push(':');
                i = skip_ws(b, i + 1);
            }
            i = value(b, i, out, depth + 1)?;
            i = skip_ws(b, i);
            match b.get(i)? {
                ',' => {
                    out.push(',');
                    i = skip_ws(b, i + 1);
                }
                c if *c == close => {
                    out.push(close);
                    return Some(i + 1);
                }
                _ => return None,
            }
        }
    }

    fn string(b: &[char], i: usize, out: &mut String) -> Option<usize> {
        (b.get(i) == Some(&'"')).then_some(())?;
        out.push('"');
        let mut i = i + 1;
        loop {
            let c = *b.get(i)?;
            out.push(c);
            match c {
                '"' => return Some(i + 1),
                '\\' => {
                    out.push(*b.get(i + 1)?);
                    i += 2;
                }
                c if (c as u32) < 0x20 => return None,
                _ => i += 1,
            }
        }
    }

    fn literal(b: &[char], i: usize, out: &mut String) -> Option<usize> {
        let mut j = i;
        while j < b.len() && (b[j].is_ascii_alphanumeric() || matches!(b[j], '-' | '+' | '.')) {
            j += 1;
        }
        let word: String = b[i..j].iter().collect();
        let ok = matches!(word.as_str(), "true" | "false" | "null")
            || (word.parse::<f64>().is_ok()
                && !word.starts_with('+')
                && !word.contains("inf")
                && !word.contains("NaN"));
        ok.then(|| {
            out.push_str(&word);
            j
        })
    }
}

// ---------------------------------------------------------------- date/time

const MICROS_PER_SEC: i64 = 1_000_000;
const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SEC;

/// [`shoal_common::convert::days_from_civil`] with month and day as `i64`
/// (every caller has checked their ranges).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    shoal_common::convert::days_from_civil(y, m as u32, d as u32)
}

/// [`shoal_common::convert::civil_from_days`] with month and day as `i64`.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let (y, m, d) = shoal_common::convert::civil_from_days(days);
    (y, m.into(), d.into())
}

fn days_in_month(y: i64, m: i64) -> i64 {
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    days_from_civil(ny, nm, 1) - days_from_civil(y, m, 1)
}

fn bad_datetime(text: &str, type_name: &str) -> Error {
    invalid_input(type_name, text)
}

/// Parses `YYYY-MM-DD[( |T)HH:MM[:SS[.ffffff]]][Z|±HH[:MM]]` into (days, micros of day),
/// converted to UTC when an offset is given. `utc` only picks the error's type name.
fn parse_timestamp(text: &str, utc: bool) -> Result<(i64, i64)> {
    let type_name = if utc { "timestamp with time zone" } else { "timestamp" };
    let t = text.trim();
    let err = || bad_datetime(text, type_name);
    let date_part = t.get(..10).ok_or_else(err)?;
    let nums: Vec<&str> = date_part.split('-').collect();
    if nums.len() != 3 || nums[0].len() != 4 {
        return Err(err());
    }
    let parse = |s: &str| s.parse::<i64>().map_err(|_| err());
    let (y, m, d) = (parse(nums[0])?, parse(nums[1])?, parse(nums[2])?);
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return Err(pg_error(
            SqlState::DATETIME_FIELD_OVERFLOW,
            format!("date/time field value out of range: \"{text}\""),
        ));
    }
    let days = days_from_civil(y, m, d);
    let rest = t[10..].trim_start_matches(['T', ' ']);
    if rest.is_empty() {
        return Ok((days, 0));
    }
    let (time_text, offset_secs) = split_offset(rest).ok_or_else(err)?;
    let micros = parse_time(time_text).map_err(|_| err())?;
    let total = days * MICROS_PER_DAY + micros - offset_secs * MICROS_PER_SEC;
    Ok((total.div_euclid(MICROS_PER_DAY), total.rem_euclid(MICROS_PER_DAY)))
}

/// Splits a trailing `Z`, `+HH`, `+HH:MM` or `-HHMM` zone off a time; returns seconds east of UTC.
fn split_offset(s: &str) -> Option<(&str, i64)> {
    let s = s.trim();
    if let Some(t) = s.strip_suffix('Z').or_else(|| s.strip_suffix(" UTC")).or_else(|| s.strip_suffix("UTC")) {
        return Some((t.trim(), 0));
    }
    let Some(pos) = s.rfind(['+', '-']) else { return Some((s, 0)) };
    let (time, zone) = s.split_at(pos);
    let sign = if zone.starts_with('-') { -1 } else { 1 };
    let digits: String = zone[1..].chars().filter(|c| c.is_ascii_digit()).collect();
    let (h, m) = match digits.len() {
        1 | 2 => (digits.parse::<i64>().ok()?, 0),
        4 => (digits[..2].parse::<i64>().ok()?, digits[2..].parse::<i64>().ok()?),
        _ => return None,
    };
    Some((time.trim(), sign * (h * 3600 + m * 60)))
}

/// Parses `HH:MM[:SS[.ffffff]]` into microseconds since midnight.
fn parse_time(text: &str) -> Result<i64> {
    let err = || invalid_input("time", text);
    let parts: Vec<&str> = text.trim().split(':').collect();
    if parts.len() < 2 || parts.len() > 3 {
        return Err(err());
    }
    let h: i64 = parts[0].parse().map_err(|_| err())?;
    let m: i64 = parts[1].parse().map_err(|_| err())?;
    let (s, frac) = match parts.get(2) {
        Some(sec) => parse_seconds(sec).ok_or_else(err)?,
        None => (0, 0),
    };
    if !(0..=24).contains(&h) || !(0..60).contains(&m) || !(0..=60).contains(&s) {
        return Err(pg_error(
            SqlState::DATETIME_FIELD_OVERFLOW,
            format!("date/time field value out of range: \"{text}\""),
        ));
    }
    Ok(((h * 60 + m) * 60 + s) * MICROS_PER_SEC + frac)
}

fn parse_seconds(sec: &str) -> Option<(i64, i64)> {
    let (whole, frac) = sec.split_once('.').unwrap_or((sec, ""));
    let s = whole.parse::<i64>().ok()?;
    if !frac.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut digits: String = frac.chars().take(6).collect();
    while digits.len() < 6 {
        digits.push('0');
    }
    Some((s, digits.parse::<i64>().ok()?))
}

fn format_date(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

fn format_time(micros: i64) -> String {
    let secs = micros / MICROS_PER_SEC;
    let frac = micros % MICROS_PER_SEC;
    let base = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    if frac == 0 {
        base
    } else {
        format!("{base}.{}", format!("{frac:06}").trim_end_matches('0'))
    }
}

fn format_timestamp(days: i64, micros: i64) -> String {
    format!("{} {}", format_date(days), format_time(micros))
}

/// A PostgreSQL interval: months, days and microseconds are kept apart, as PostgreSQL does.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Interval {
    months: i64,
    days: i64,
    micros: i64,
}

impl Interval {
    /// Parses PostgreSQL's interval input: `1 day`, `2 hours 30 minutes`,
    /// `1 year 2 mons 3 days 04:05:06`, `-1 day`, `3 days ago`, `01:00`.
    fn parse(text: &str) -> Result<Interval> {
        let err = || invalid_input("interval", text);
        let lower = text.trim().to_ascii_lowercase();
        let (body, ago) = match lower.strip_suffix("ago") {
            Some(b) => (b.trim().to_string(), true),
            None => (lower.trim_start_matches('@').to_string(), false),
        };
        let mut iv = Interval::default();
        let tokens: Vec<&str> = body.split_whitespace().collect();
        if tokens.is_empty() {
            return Err(err());
        }
        let mut i = 0;
        while i < tokens.len() {
            let tok = tokens[i];
            if tok.contains(':') {
                let (neg, t) = match tok.strip_prefix('-') {
                    Some(t) => (true, t),
                    None => (false, tok.trim_start_matches('+')),
                };
                let us = parse_time_loose(t).ok_or_else(err)?;
                iv.micros += if neg { -us } else { us };
                i += 1;
                continue;
            }
            let n: f64 = tok.parse().map_err(|_| err())?;
            let unit = tokens.get(i + 1).copied().unwrap_or("second");
            iv.add_unit(n, unit).ok_or_else(err)?;
            i += 2;
        }
        if ago {
            iv = iv.negate();
        }
        Ok(iv)
    }

    fn add_unit(&mut self, n: f64, unit: &str) -> Option<()> {
        let unit = unit.trim_end_matches(',');
        let micros = |per: f64| (n * per).round() as i64;
        match unit {
            "microsecond" | "microseconds" | "us" | "usec" | "usecs" => self.micros += micros(1.0),
            "millisecond" | "milliseconds" | "ms" | "msec" | "msecs" => self.micros += micros(1e3),
            "second" | "seconds" | "s" | "sec" | "secs" => self.micros += micros(1e6),
            "minute" | "minutes" | "m" | "min" | "mins" => self.micros += micros(60e6),
            "hour" | "hours" | "h" | "hr" | "hrs" => self.micros += micros(3600e6),
            "day" | "days" | "d" => self.add_days(n),
            "week" | "weeks" | "w" => self.add_days(n * 7.0),
            "month" | "months" | "mon" | "mons" => self.add_months(n),
            "year" | "years" | "y" | "yr" | "yrs" => self.add_months(n * 12.0),
            "decade" | "decades" => self.add_months(n * 120.0),
            "century" | "centuries" => self.add_months(n * 1200.0),
            _ => return None,
        }
        Some(())
    }

    fn add_days(&mut self, n: f64) {
        self.days += n.trunc() as i64;
        self.micros += (n.fract() * MICROS_PER_DAY as f64).round() as i64;
    }

    fn add_months(&mut self, n: f64) {
        self.months += n.trunc() as i64;
        self.add_days(n.fract() * 30.0);
    }

    fn negate(self) -> Interval {
        Interval { months: -self.months, days: -self.days, micros: -self.micros }
    }

    fn plus(self, o: Interval) -> Interval {
        Interval { months: self.months + o.months, days: self.days + o.days, micros: self.micros + o.micros }
    }
}

/// `HH:MM[:SS[.f]]` where hours may exceed 24 (interval syntax).
fn parse_time_loose(t: &str) -> Option<i64> {
    let parts: Vec<&str> = t.split(':').collect();
    let h: i64 = parts.first()?.parse().ok()?;
    let m: i64 = parts.get(1)?.parse().ok()?;
    let (s, frac) = match parts.get(2) {
        Some(sec) => parse_seconds(sec)?,
        None => (0, 0),
    };
    Some(((h * 60 + m) * 60 + s) * MICROS_PER_SEC + frac)
}

impl std::fmt::Display for Interval {
    /// PostgreSQL's default (`postgres`) interval output style.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        let plural = |n: i64, one: &str, many: &str| format!("{n} {}", if n.abs() == 1 { one } else { many });
        let (years, months) = (self.months / 12, self.months % 12);
        if years != 0 {
            parts.push(plural(years, "year", "years"));
        }
        if months != 0 {
            parts.push(plural(months, "mon", "mons"));
        }
        if self.days != 0 {
            parts.push(plural(self.days, "day", "days"));
        }
        if self.micros != 0 || parts.is_empty() {
            let sign = if self.micros < 0 { "-" } else { "" };
            parts.push(format!("{sign}{}", format_time_unbounded(self.micros.abs())));
        }
        f.write_str(&parts.join(" "))
    }
}

fn format_time_unbounded(micros: i64) -> String {
    let secs = micros / MICROS_PER_SEC;
    let frac = micros % MICROS_PER_SEC;
    let base = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    if frac == 0 {
        base
    } else {
        format!("{base}.{}", format!("{frac:06}").trim_end_matches('0'))
    }
}

fn add_interval(days: i64, micros: i64, iv: Interval) -> (i64, i64) {
    let (y, m, d) = civil_from_days(days);
    let total_months = y * 12 + (m - 1) + iv.months;
    let (ny, nm) = (total_months.div_euclid(12), total_months.rem_euclid(12) + 1);
    let nd = d.min(days_in_month(ny, nm));
    let days = days_from_civil(ny, nm, nd) + iv.days;
    let total = days * MICROS_PER_DAY + micros + iv.micros;
    (total.div_euclid(MICROS_PER_DAY), total.rem_euclid(MICROS_PER_DAY))
}

/// `pg_ts_add(timestamp_or_date, interval, sign)`: timestamp ± interval.
fn pg_ts_add(ctx: &Context<'_>) -> Result<Value> {
    let (Some(ts), Some(iv), Some(sign)) = (arg_text(ctx, 0), arg_text(ctx, 1), arg_i64(ctx, 2)?) else {
        return Ok(Value::Null);
    };
    let (days, micros) = parse_timestamp(&ts, false)?;
    let iv = Interval::parse(&iv)?;
    let iv = if sign < 0 { iv.negate() } else { iv };
    let (d, us) = add_interval(days, micros, iv);
    Ok(Value::Text(format_timestamp(d, us)))
}

/// `pg_ts_diff(a, b)`: timestamp − timestamp as an interval of days and time.
fn pg_ts_diff(ctx: &Context<'_>) -> Result<Value> {
    let (Some(a), Some(b)) = (arg_text(ctx, 0), arg_text(ctx, 1)) else { return Ok(Value::Null) };
    let (da, ua) = parse_timestamp(&a, false)?;
    let (db, ub) = parse_timestamp(&b, false)?;
    let total = (da - db) * MICROS_PER_DAY + (ua - ub);
    let iv = Interval { months: 0, days: total / MICROS_PER_DAY, micros: total % MICROS_PER_DAY };
    Ok(Value::Text(iv.to_string()))
}

/// `pg_interval_add(a, b, sign)`: interval ± interval.
fn pg_interval_add(ctx: &Context<'_>) -> Result<Value> {
    let (Some(a), Some(b), Some(sign)) = (arg_text(ctx, 0), arg_text(ctx, 1), arg_i64(ctx, 2)?) else {
        return Ok(Value::Null);
    };
    let b = Interval::parse(&b)?;
    let b = if sign < 0 { b.negate() } else { b };
    Ok(Value::Text(Interval::parse(&a)?.plus(b).to_string()))
}

/// `date_trunc(field, ts)`.
fn pg_date_trunc(ctx: &Context<'_>) -> Result<Value> {
    let (Some(field), Some(ts)) = (arg_text(ctx, 0), arg_text(ctx, 1)) else { return Ok(Value::Null) };
    let (days, micros) = parse_timestamp(&ts, false)?;
    let (y, m, _) = civil_from_days(days);
    let (d, us) = match field.to_ascii_lowercase().as_str() {
        "microseconds" | "microsecond" => (days, micros),
        "milliseconds" | "millisecond" => (days, micros - micros % 1000),
        "second" | "seconds" => (days, micros - micros % MICROS_PER_SEC),
        "minute" | "minutes" => (days, micros - micros % (60 * MICROS_PER_SEC)),
        "hour" | "hours" => (days, micros - micros % (3600 * MICROS_PER_SEC)),
        "day" | "days" => (days, 0),
        "week" | "weeks" => (days - (days + 3).rem_euclid(7), 0),
        "month" | "months" => (days_from_civil(y, m, 1), 0),
        "quarter" => (days_from_civil(y, (m - 1) / 3 * 3 + 1, 1), 0),
        "year" | "years" => (days_from_civil(y, 1, 1), 0),
        "decade" => (days_from_civil(y - y.rem_euclid(10), 1, 1), 0),
        "century" => (days_from_civil((y - 1) / 100 * 100 + 1, 1, 1), 0),
        other => {
            return Err(pg_error(
                SqlState::INVALID_PARAMETER_VALUE,
                format!("unit \"{other}\" not recognized for type timestamp"),
            ))
        }
    };
    Ok(Value::Text(format_timestamp(d, us)))
}

/// `extract(field FROM x)` for dates, times, timestamps and intervals.
fn pg_extract(ctx: &Context<'_>) -> Result<Value> {
    let (Some(field), Some(x)) = (arg_text(ctx, 0), arg_text(ctx, 1)) else { return Ok(Value::Null) };
    let field = field.to_ascii_lowercase();
    if let Some(iv) = interval_like(&x) {
        return extract_interval(&field, iv);
    }
    let (days, micros) =
        if x.len() <= 15 && x.contains(':') { (0, parse_time(&x)?) } else { parse_timestamp(&x, false)? };
    let (y, m, d) = civil_from_days(days);
    let int = |n: i64| Ok(Value::Integer(n));
    match field.as_str() {
        "year" | "years" => int(y),
        "month" | "months" => int(m),
        "day" | "days" => int(d),
        "hour" | "hours" => int(micros / (3600 * MICROS_PER_SEC)),
        "minute" | "minutes" => int(micros / (60 * MICROS_PER_SEC) % 60),
        "second" | "seconds" => Ok(Value::Real((micros % (60 * MICROS_PER_SEC)) as f64 / 1e6)),
        "millisecond" | "milliseconds" => Ok(Value::Real((micros % (60 * MICROS_PER_SEC)) as f64 / 1e3)),
        "microsecond" | "microseconds" => int(micros % (60 * MICROS_PER_SEC)),
        "dow" => int((days + 4).rem_euclid(7)),
        "isodow" => int((days + 3).rem_euclid(7) + 1),
        "doy" => int(days - days_from_civil(y, 1, 1) + 1),
        "quarter" => int((m - 1) / 3 + 1),
        "decade" => int(y.div_euclid(10)),
        "century" => int(if y > 0 { (y + 99) / 100 } else { -((99 - y) / 100) }),
        "millennium" => int(if y > 0 { (y + 999) / 1000 } else { -((999 - y) / 1000) }),
        "epoch" => {
            let us = days * MICROS_PER_DAY + micros;
            if us % MICROS_PER_SEC == 0 {
                int(us / MICROS_PER_SEC)
            } else {
                Ok(Value::Real(us as f64 / 1e6))
            }
        }
        "week" => int(iso_week(days)),
        other => Err(pg_error(
            SqlState::INVALID_PARAMETER_VALUE,
            format!("unit \"{other}\" not recognized for type timestamp"),
        )),
    }
}

fn interval_like(x: &str) -> Option<Interval> {
    let looks_like_date = x.len() >= 10 && x.as_bytes().get(4) == Some(&b'-') && x.as_bytes().get(7) == Some(&b'-');
    if looks_like_date || (x.len() <= 15 && x.contains(':') && !x.contains(' ')) {
        return None;
    }
    Interval::parse(x).ok()
}

fn extract_interval(field: &str, iv: Interval) -> Result<Value> {
    let int = |n: i64| Ok(Value::Integer(n));
    match field {
        "year" | "years" => int(iv.months / 12),
        "month" | "months" => int(iv.months % 12),
        "day" | "days" => int(iv.days),
        "hour" | "hours" => int(iv.micros / (3600 * MICROS_PER_SEC)),
        "minute" | "minutes" => int(iv.micros / (60 * MICROS_PER_SEC) % 60),
        "second" | "seconds" => Ok(Value::Real((iv.micros % (60 * MICROS_PER_SEC)) as f64 / 1e6)),
        "epoch" => {
            let secs = iv.months as f64 * 30.0 * 86400.0 + iv.days as f64 * 86400.0 + iv.micros as f64 / 1e6;
            Ok(if secs.fract() == 0.0 { Value::Integer(secs as i64) } else { Value::Real(secs) })
        }
        other => Err(pg_error(
            SqlState::INVALID_PARAMETER_VALUE,
            format!("unit \"{other}\" not supported for type interval"),
        )),
    }
}

/// ISO 8601 week number of a day.
fn iso_week(days: i64) -> i64 {
    let weekday = (days + 3).rem_euclid(7); // Monday = 0
    let thursday = days - weekday + 3;
    let (y, _, _) = civil_from_days(thursday);
    (thursday - days_from_civil(y, 1, 1)) / 7 + 1
}

// ---------------------------------------------------------------------------
// Regular expressions and arrays (catalog queries)
// ---------------------------------------------------------------------------

/// `pg_regex(text, pattern, flags)`: PostgreSQL's `~` (`flags` = `i` for
/// `~*`). Patterns are compiled once per statement (SQLite's auxiliary data)
/// with a size limit, so a hostile pattern cannot exhaust memory.
fn pg_regex(ctx: &Context<'_>) -> Result<Value> {
    let (Some(text), Some(_)) = (arg_text(ctx, 0), arg_text(ctx, 1)) else { return Ok(Value::Null) };
    let insensitive = arg_text(ctx, 2).is_some_and(|f| f.contains('i'));
    let re = ctx.get_or_create_aux(1, |v| -> std::result::Result<regex::Regex, Error> {
        let pattern = v.as_str().map_err(|e| pg_error(SqlState::DATATYPE_MISMATCH, e.to_string()))?;
        regex::RegexBuilder::new(pattern)
            .case_insensitive(insensitive)
            .size_limit(1 << 20)
            .build()
            .map_err(|e| pg_error(SqlState::INVALID_REGULAR_EXPRESSION, format!("invalid regular expression: {e}")))
    })?;
    Ok(Value::Integer(re.is_match(&text) as i64))
}

/// `format_type(type_oid, typmod)`: the SQL name of a type with its modifier.
fn pg_format_type(ctx: &Context<'_>) -> Result<Value> {
    let Some(oid) = arg_i64(ctx, 0)? else { return Ok(Value::Null) };
    let typmod = arg_i64(ctx, 1)?.unwrap_or(-1);
    use shoal_common::DataType as T;
    let Some(ty) = u32::try_from(oid).ok().and_then(T::from_oid) else {
        let name = match oid {
            22 => "int2vector",
            30 => "oidvector",
            705 => "unknown",
            2205 => "regclass",
            2206 => "regtype",
            _ => "???",
        };
        return Ok(Value::Text(name.into()));
    };
    let with_mod = match (ty, typmod) {
        (T::Varchar(_), m) if m >= 4 => T::Varchar(u32::try_from(m - 4).ok()),
        (T::Char(_), m) if m >= 4 => T::Char(u32::try_from(m - 4).unwrap_or(1)),
        (T::Char(_), _) => return Ok(Value::Text("bpchar".into())),
        (T::Numeric(_), m) if m >= 4 => {
            let m = (m - 4) as u32;
            T::Numeric(Some(((m >> 16) & 0xffff, m & 0xffff)))
        }
        (t, _) => t,
    };
    Ok(Value::Text(with_mod.sql_name()))
}

/// The elements of an array literal (`{a,b}`) or catalog vector (`1 2`), and
/// the lower bound of its subscripts (1 for arrays, 0 for vectors).
fn array_items(text: &str) -> Result<(Vec<Option<String>>, i64)> {
    if text.trim_start().starts_with('{') {
        let items = shoal_common::convert::split_array_literal(text).map_err(|e| pg_error(e.code, e.message))?;
        Ok((items, 1))
    } else {
        Ok((text.split_whitespace().map(|s| Some(s.to_string())).collect(), 0))
    }
}

fn array_fn(ctx: &Context<'_>, f: fn(&[Option<String>], i64) -> Value) -> Result<Value> {
    let Some(text) = arg_text(ctx, 0) else { return Ok(Value::Null) };
    let (items, lower) = array_items(&text)?;
    Ok(f(&items, lower))
}

/// `pg_array_json(arr)`: the elements as a JSON array of strings, for `json_each`.
fn pg_array_json(ctx: &Context<'_>) -> Result<Value> {
    let Some(text) = arg_text(ctx, 0) else { return Ok(Value::Text("[]".into())) };
    let (items, _) = array_items(&text)?;
    let parts: Vec<String> = items
        .iter()
        .map(|i| match i {
            None => "null".to_string(),
            Some(s) => {
                let mut out = String::from("\"");
                for ch in s.chars() {
                    match ch {
                        '"' => out.push_str("\\\""),
                        '\\' => out.push_str("\\\\"),
                        c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                        c => out.push(c),
                    }
                }
                out.push('"');
                out
            }
        })
        .collect();
    Ok(Value::Text(format!("[{}]", parts.join(","))))
}

/// `arr[i]` with PostgreSQL's subscripts (out of range → NULL).
fn pg_array_get(ctx: &Context<'_>) -> Result<Value> {
    let (Some(text), Some(i)) = (arg_text(ctx, 0), arg_i64(ctx, 1)?) else { return Ok(Value::Null) };
    let (items, lower) = array_items(&text)?;
    let idx = i.checked_sub(lower).and_then(|k| usize::try_from(k).ok());
    Ok(match idx.and_then(|k| items.get(k)) {
        Some(Some(s)) => Value::Text(s.clone()),
        _ => Value::Null,
    })
}

/// `x = ANY(arr)` on the elements' text, with SQL's NULL rules.
fn pg_array_contains(ctx: &Context<'_>) -> Result<Value> {
    let (Some(text), Some(x)) = (arg_text(ctx, 0), arg_text(ctx, 1)) else { return Ok(Value::Null) };
    let (items, _) = array_items(&text)?;
    if items.iter().any(|i| i.as_deref() == Some(x.as_str())) {
        return Ok(Value::Integer(1));
    }
    Ok(if items.iter().any(Option::is_none) { Value::Null } else { Value::Integer(0) })
}

/// `array_to_string(arr, sep [, null_text])`.
fn pg_array_to_string(ctx: &Context<'_>) -> Result<Value> {
    let (Some(text), Some(sep)) = (arg_text(ctx, 0), arg_text(ctx, 1)) else { return Ok(Value::Null) };
    let null_text = arg_text(ctx, 2);
    let (items, _) = array_items(&text)?;
    let parts: Vec<String> = items.into_iter().filter_map(|i| i.or_else(|| null_text.clone())).collect();
    Ok(Value::Text(parts.join(&sep)))
}

/// One element of an array literal being built (`array_agg`, `ARRAY(…)`).
fn pg_array_elem(ctx: &Context<'_>) -> Result<Value> {
    Ok(Value::Text(match arg_text(ctx, 0) {
        None => "NULL".into(),
        Some(s) => shoal_common::convert::quote_array_element(&s),
    }))
}

/// `pg_record(f1, f2, …)`: a record's text from its fields' text (NULL
/// arguments are NULL fields), as `shoal_common::types` stores records.
fn pg_record(ctx: &Context<'_>) -> Result<Value> {
    let fields: Vec<Option<String>> = (0..ctx.len()).map(|i| arg_text(ctx, i)).collect();
    Ok(Value::Text(shoal_common::convert::format_record(&fields)))
}

/// `pg_record_field(rec, i)`: the text of the record's field `i` (1-based),
/// NULL for a NULL field or record.
fn pg_record_field(ctx: &Context<'_>) -> Result<Value> {
    let (Some(text), Some(i)) = (arg_text(ctx, 0), arg_i64(ctx, 1)?) else { return Ok(Value::Null) };
    let fields = shoal_common::convert::split_record(&text).map_err(|e| pg_error(e.code, e.message))?;
    let field = i.checked_sub(1).and_then(|k| usize::try_from(k).ok()).and_then(|k| fields.get(k));
    match field {
        Some(f) => Ok(f.clone().map_or(Value::Null, Value::Text)),
        None => Err(pg_error(SqlState::UNDEFINED_COLUMN, format!("record has no field {i}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        register(&c).unwrap();
        c
    }

    fn q(c: &Connection, sql: &str) -> String {
        c.query_row(sql, [], |r| r.get::<_, Value>(0))
            .map(|v| match v {
                Value::Null => "NULL".into(),
                Value::Integer(n) => n.to_string(),
                Value::Real(r) => format_real(r),
                Value::Text(s) => s,
                Value::Blob(_) => "blob".into(),
            })
            .unwrap_or_else(|e| format!("ERR {}", crate::sqlite_error::from_sqlite(e).message))
    }

    #[test]
    fn strings_behave_like_postgres() {
        let c = conn();
        assert_eq!(q(&c, "SELECT pg_like('Hello', 'H%o')"), "1");
        assert_eq!(q(&c, "SELECT pg_like('Hello', 'h%')"), "0");
        assert_eq!(q(&c, "SELECT pg_ilike('Hello', 'h%')"), "1");
        assert_eq!(q(&c, "SELECT pg_like('a_b', 'a\\_b')"), "1");
        assert_eq!(q(&c, "SELECT pg_like('axb', 'a\\_b')"), "0");
        assert_eq!(q(&c, "SELECT pg_like('a_b', 'a!_b', '!')"), "1");
        assert_eq!(q(&c, "SELECT pg_like('a\\b', 'a\\b', '')"), "1");
        assert_eq!(q(&c, "SELECT pg_ilike('ax', 'AxX', 'x')"), "1");
        assert_eq!(q(&c, "SELECT pg_like('abc', 'abc!', '!')"), "0");
        assert!(q(&c, "SELECT pg_like('abc', 'ab!', '!')").contains("must not end with escape character"));
        assert!(q(&c, "SELECT pg_like('abc', '%!', '!')").contains("must not end with escape character"));
        assert!(q(&c, "SELECT pg_like('abc', 'a', '!!')").contains("invalid escape string"));
        assert_eq!(q(&c, "SELECT pg_like('abc', 'a', NULL) IS NULL"), "1");
        assert_eq!(q(&c, "SELECT pg_substr('hello', 0, 3)"), "he");
        assert_eq!(q(&c, "SELECT pg_substr('hello', -1, 3)"), "h");
        assert_eq!(q(&c, "SELECT pg_left('hello', -2)"), "hel");
        assert_eq!(q(&c, "SELECT pg_right('hello', 2)"), "lo");
        assert_eq!(q(&c, "SELECT pg_lpad('5', 3, '0')"), "005");
        assert_eq!(q(&c, "SELECT pg_split_part('a,b,c', ',', 2)"), "b");
        assert_eq!(q(&c, "SELECT pg_initcap('hello wORLD')"), "Hello World");
        assert_eq!(q(&c, "SELECT pg_md5('abc')"), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(q(&c, "SELECT pg_concat_ws('-', 'a', NULL, 'b')"), "a-b");
        assert_eq!(q(&c, "SELECT pg_greatest(1, NULL, 3)"), "3");
        assert_eq!(q(&c, "SELECT pg_upper('straße')"), "STRASSE");
    }

    #[test]
    fn casts_report_postgres_errors() {
        let c = conn();
        assert_eq!(
            q(&c, "SELECT pg_cast('abc', 'text', 'int4')"),
            "ERR invalid input syntax for type integer: \"abc\""
        );
        assert_eq!(q(&c, "SELECT pg_cast(1, 'bool', 'text')"), "true");
        assert_eq!(q(&c, "SELECT pg_cast(2.5, 'float8', 'int4')"), "3");
        assert_eq!(q(&c, "SELECT pg_cast('yes', 'text', 'bool')"), "1");
        assert_eq!(q(&c, "SELECT pg_cast('2024-01-02 03:04:05+02', 'text', 'timestamptz')"), "2024-01-02 01:04:05");
        assert_eq!(q(&c, "SELECT pg_cast('2024-01-02 03:04:05', 'timestamp', 'date')"), "2024-01-02");
        assert_eq!(q(&c, "SELECT pg_cast('{\"a\": [1, 2]}', 'text', 'jsonb')"), "{\"a\":[1,2]}");
        assert!(q(&c, "SELECT pg_cast('{a}', 'text', 'json')").starts_with("ERR invalid input syntax for type json"));
        assert_eq!(q(&c, "SELECT pg_cast(1.236, 'float8', 'numeric(10,2)')"), "1.24");
        assert_eq!(q(&c, "SELECT pg_cast('1 day 2 hours', 'text', 'interval')"), "1 day 02:00:00");
        assert_eq!(q(&c, "SELECT pg_div(1, 0)"), "ERR division by zero");
        assert_eq!(q(&c, "SELECT pg_div(7, 2)"), "3");
    }

    #[test]
    fn records() {
        let c = conn();
        assert_eq!(q(&c, "SELECT pg_record('1', 2, NULL, 'a b')"), "(1,2,,\"a b\")");
        assert_eq!(q(&c, "SELECT pg_record_field(pg_record('1', 2, NULL, 'a b'), 4)"), "a b");
        assert_eq!(q(&c, "SELECT pg_record_field('(1,2,,x)', 3)"), "NULL");
        assert_eq!(q(&c, "SELECT pg_record_field(NULL, 1)"), "NULL");
        assert_eq!(q(&c, "SELECT pg_record_field('(1,2)', 3)"), "ERR record has no field 3");
    }

    #[test]
    fn date_arithmetic() {
        let c = conn();
        assert_eq!(q(&c, "SELECT pg_ts_add('2024-01-31 10:00:00', '1 month', 1)"), "2024-02-29 10:00:00");
        assert_eq!(q(&c, "SELECT pg_ts_add('2024-01-01', '1 day 2 hours', 1)"), "2024-01-02 02:00:00");
        assert_eq!(q(&c, "SELECT pg_ts_add('2024-01-01 00:00:00', '1 hour', -1)"), "2023-12-31 23:00:00");
        assert_eq!(q(&c, "SELECT pg_ts_diff('2024-01-03 12:00:00', '2024-01-01 00:00:00')"), "2 days 12:00:00");
        assert_eq!(q(&c, "SELECT pg_date_trunc('month', '2024-05-17 10:11:12')"), "2024-05-01 00:00:00");
        assert_eq!(q(&c, "SELECT pg_date_trunc('week', '2024-05-17 10:11:12')"), "2024-05-13 00:00:00");
        assert_eq!(q(&c, "SELECT pg_extract('year', '2024-05-17')"), "2024");
        assert_eq!(q(&c, "SELECT pg_extract('dow', '2024-05-17')"), "5");
        assert_eq!(q(&c, "SELECT pg_extract('epoch', '1970-01-02 00:00:00')"), "86400");
        assert_eq!(q(&c, "SELECT pg_extract('hour', '3 days 04:05:06')"), "4");
    }
}
