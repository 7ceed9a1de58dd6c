//! Exact `numeric` in SQLite: the `pg_numeric` collation and the `pg_num_*`
//! functions the SQL translator emits for numeric expressions.
//!
//! A numeric is stored as its PostgreSQL text (`12.50`, `-0.001`, `NaN`,
//! `Infinity`) — see `shoal_common::numeric` for the value type and its
//! arithmetic. SQLite only sees text, so two pieces make it behave as a number:
//!
//! * the **`pg_numeric` collation** orders numeric text numerically
//!   (`9 < 10`, `1.10 = 1.1`). Numeric columns are declared
//!   `TEXT COLLATE pg_numeric`, so indexes, `UNIQUE`, `=`/`<`, `ORDER BY`,
//!   `GROUP BY`, `DISTINCT` and `MIN`/`MAX` on them compare numerically; the
//!   translator adds `COLLATE pg_numeric` where a computed numeric is
//!   compared, sorted or grouped;
//! * **functions** for everything else: `pg_num_add(a, b)` … `pg_num_power`,
//!   `pg_num_round`, casts in and out (`pg_num`, `pg_num_float8`,
//!   `pg_num_typmod`), and the aggregates `pg_num_sum` / `pg_num_avg`, which
//!   are also window functions (with an inverse, for moving frames).
//!
//! Every function is a pure function of its arguments (`SQLITE_DETERMINISTIC`),
//! so replicas replaying a statement compute the same digits. Arguments may be
//! INTEGER (an integer operand, read exactly), REAL (read as PostgreSQL's
//! `float8 → numeric` does, 15 significant digits) or numeric text.

use std::collections::BTreeMap;

use num_bigint::BigInt;
use rusqlite::functions::{Aggregate, Context, FunctionFlags, WindowAggregate};
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, Error, Result};
use shoal_common::numeric::{cmp_text, Numeric};

/// The collation name numeric columns and expressions use.
pub const COLLATION: &str = "pg_numeric";

/// Registers the collation, the scalar functions and the aggregates on `conn`.
pub fn register(conn: &Connection) -> Result<()> {
    conn.create_collation(COLLATION, |a, b| cmp_text(a.as_bytes(), b.as_bytes()))?;
    let flags = FunctionFlags::SQLITE_DETERMINISTIC | FunctionFlags::SQLITE_UTF8;
    type F = fn(&Context<'_>) -> Result<Value>;
    let table: &[(&str, i32, F)] = &[
        ("pg_num", 1, |c| unary(c, |x| Ok(x.clone()))),
        ("pg_num_add", 2, |c| binary(c, Numeric::add)),
        ("pg_num_sub", 2, |c| binary(c, Numeric::sub)),
        ("pg_num_mul", 2, |c| binary(c, Numeric::mul)),
        ("pg_num_div", 2, |c| binary(c, Numeric::div)),
        ("pg_num_mod", 2, |c| binary(c, Numeric::rem)),
        ("pg_num_power", 2, |c| binary(c, Numeric::power)),
        ("pg_num_neg", 1, |c| unary(c, |x| Ok(x.neg()))),
        ("pg_num_abs", 1, |c| unary(c, |x| Ok(x.abs()))),
        ("pg_num_sign", 1, |c| unary(c, |x| Ok(x.sign()))),
        ("pg_num_ceil", 1, |c| unary(c, |x| Ok(x.ceil_floor(true)))),
        ("pg_num_floor", 1, |c| unary(c, |x| Ok(x.ceil_floor(false)))),
        ("pg_num_sqrt", 1, |c| unary(c, Numeric::sqrt)),
        ("pg_num_round", 1, |c| unary(c, |x| Ok(x.round(0)))),
        ("pg_num_round", 2, |c| with_scale(c, Numeric::round)),
        ("pg_num_trunc", 1, |c| unary(c, |x| Ok(x.trunc(0)))),
        ("pg_num_trunc", 2, |c| with_scale(c, Numeric::trunc)),
        ("pg_num_typmod", 3, pg_num_typmod),
        ("pg_num_float8", 1, pg_num_float8),
        ("pg_num_greatest", -1, |c| extreme(c, true)),
        ("pg_num_least", -1, |c| extreme(c, false)),
    ];
    for (name, n_arg, f) in table {
        let f = *f;
        conn.create_scalar_function(*name, *n_arg, flags, move |ctx| f(ctx))?;
    }
    conn.create_window_function("pg_num_sum", 1, flags, Sum { avg: false })?;
    conn.create_window_function("pg_num_avg", 1, flags, Sum { avg: true })?;
    Ok(())
}

fn pg_error(e: shoal_common::Error) -> Error {
    Error::UserFunctionError(crate::sqlite_error::encode_function_error(e.code, &e.message).into())
}

/// A numeric argument; `None` for NULL.
fn arg(ctx: &Context<'_>, i: usize) -> Result<Option<Numeric>> {
    value_numeric(ctx.get_raw(i))
}

fn value_numeric(v: ValueRef<'_>) -> Result<Option<Numeric>> {
    Ok(Some(match v {
        ValueRef::Null => return Ok(None),
        ValueRef::Integer(n) => Numeric::from_i64(n),
        ValueRef::Real(r) => Numeric::from_f64(r, 15),
        ValueRef::Text(t) | ValueRef::Blob(t) => Numeric::parse(&String::from_utf8_lossy(t)).map_err(pg_error)?,
    }))
}

fn out(n: Numeric) -> Value {
    Value::Text(n.to_string())
}

fn unary(ctx: &Context<'_>, f: fn(&Numeric) -> shoal_common::Result<Numeric>) -> Result<Value> {
    match arg(ctx, 0)? {
        Some(x) => f(&x).map(out).map_err(pg_error),
        None => Ok(Value::Null),
    }
}

fn binary(ctx: &Context<'_>, f: fn(&Numeric, &Numeric) -> shoal_common::Result<Numeric>) -> Result<Value> {
    match (arg(ctx, 0)?, arg(ctx, 1)?) {
        (Some(x), Some(y)) => f(&x, &y).map(out).map_err(pg_error),
        _ => Ok(Value::Null),
    }
}

/// `round(x, n)` / `trunc(x, n)`: `n` is an integer.
fn with_scale(ctx: &Context<'_>, f: fn(&Numeric, i64) -> Numeric) -> Result<Value> {
    let n = match ctx.get_raw(1) {
        ValueRef::Null => return Ok(Value::Null),
        ValueRef::Integer(n) => n,
        other => match value_numeric(other)? {
            Some(n) => n.to_i64(i32::MIN as i64, i32::MAX as i64, "integer").map_err(pg_error)?,
            None => return Ok(Value::Null),
        },
    };
    // PostgreSQL clamps the requested scale to numeric's limits.
    let n = n.clamp(-(shoal_common::numeric::MAX_INT_DIGITS), shoal_common::numeric::MAX_SCALE as i64);
    Ok(arg(ctx, 0)?.map(|x| out(f(&x, n))).unwrap_or(Value::Null))
}

/// `pg_num_typmod(x, p, s)`: the value as `numeric(p, s)` (rounded; 22003 on overflow).
fn pg_num_typmod(ctx: &Context<'_>) -> Result<Value> {
    let (p, s) = (ctx.get::<i64>(1)?, ctx.get::<i64>(2)?);
    let (Ok(p), Ok(s)) = (u32::try_from(p), u32::try_from(s)) else {
        return Err(pg_error(shoal_common::Error::internal("bad numeric type modifier")));
    };
    match arg(ctx, 0)? {
        Some(x) => x.apply_typmod(p, s).map(out).map_err(pg_error),
        None => Ok(Value::Null),
    }
}

/// numeric → double precision (NaN is stored by SQLite as NULL).
fn pg_num_float8(ctx: &Context<'_>) -> Result<Value> {
    Ok(match arg(ctx, 0)? {
        Some(x) => Value::Real(x.to_f64()),
        None => Value::Null,
    })
}

/// `greatest` / `least` over numerics, ignoring NULLs as PostgreSQL does.
fn extreme(ctx: &Context<'_>, greatest: bool) -> Result<Value> {
    let mut best: Option<Numeric> = None;
    for i in 0..ctx.len() {
        if let Some(x) = arg(ctx, i)? {
            let better = match &best {
                None => true,
                Some(b) => (x > *b) == greatest && x != *b,
            };
            if better {
                best = Some(x);
            }
        }
    }
    Ok(best.map(out).unwrap_or(Value::Null))
}

/// The running state of `sum`/`avg` over numerics: the exact sum of the
/// finite values, the special values seen, and how many inputs had each
/// scale (PostgreSQL's result scale is the largest scale in the frame, which
/// must shrink again when a window's inverse step removes that input).
#[derive(Default)]
struct SumState {
    /// Sum of the finite inputs while it fits an i128, at `fast_scale`: the
    /// fast path (no big-integer arithmetic for everyday values).
    fast: i128,
    fast_scale: u32,
    /// Sum of the inputs that did not fit the fast path.
    big: Option<Numeric>,
    count: i64,
    nan: i64,
    pos_inf: i64,
    neg_inf: i64,
    scales: BTreeMap<u32, i64>,
}

impl SumState {
    fn apply(&mut self, v: ValueRef<'_>, sign: i64) -> Result<()> {
        let small = match v {
            ValueRef::Null => return Ok(()),
            ValueRef::Integer(n) => Some((n as i128, 0)),
            ValueRef::Text(t) => Numeric::parse_small(t),
            _ => None,
        };
        if let Some((x, scale)) = small {
            if self.add_fast(x * sign as i128, scale) {
                self.count += sign;
                *self.scales.entry(scale).or_default() += sign;
                self.scales.retain(|_, n| *n > 0);
                return Ok(());
            }
        }
        let Some(x) = value_numeric(v)? else {
            return Ok(());
        };
        self.count += sign;
        match x {
            Numeric::NaN => self.nan += sign,
            Numeric::PosInf => self.pos_inf += sign,
            Numeric::NegInf => self.neg_inf += sign,
            Numeric::Finite { .. } => {
                *self.scales.entry(x.scale()).or_default() += sign;
                let x = if sign < 0 { x.neg() } else { x };
                let sum = match self.big.take() {
                    Some(b) => b.add(&x).map_err(pg_error)?,
                    None => x,
                };
                self.big = Some(sum);
            }
        }
        self.scales.retain(|_, n| *n > 0);
        Ok(())
    }

    /// Adds `x × 10^-scale` to the fast sum; false (nothing changed) when
    /// it would overflow, and the caller takes the exact slow path.
    fn add_fast(&mut self, x: i128, scale: u32) -> bool {
        let pow = |k: u32| 10i128.checked_pow(k);
        let (acc, acc_scale) = if scale > self.fast_scale {
            match pow(scale - self.fast_scale).and_then(|p| self.fast.checked_mul(p)) {
                Some(a) => (a, scale),
                None => return false,
            }
        } else {
            (self.fast, self.fast_scale)
        };
        let x = match pow(acc_scale - scale).and_then(|p| x.checked_mul(p)) {
            Some(x) => x,
            None => return false,
        };
        match acc.checked_add(x) {
            Some(sum) => {
                self.fast = sum;
                self.fast_scale = acc_scale;
                true
            }
            None => false,
        }
    }

    /// The sum (`None` when there were no non-NULL inputs).
    fn sum(&self) -> Result<Option<Numeric>> {
        if self.count <= 0 {
            return Ok(None);
        }
        if self.nan > 0 || (self.pos_inf > 0 && self.neg_inf > 0) {
            return Ok(Some(Numeric::NaN));
        }
        if self.pos_inf > 0 {
            return Ok(Some(Numeric::PosInf));
        }
        if self.neg_inf > 0 {
            return Ok(Some(Numeric::NegInf));
        }
        let small = Numeric::Finite { int: BigInt::from(self.fast), scale: self.fast_scale };
        let total = match &self.big {
            Some(b) => b.add(&small).map_err(pg_error)?,
            None => small,
        };
        // Removed inputs may have left a larger scale than the frame's;
        // those digits are zeros, so rounding to the frame's scale is exact.
        let scale = self.scales.keys().next_back().copied().unwrap_or(0);
        Ok(Some(total.round(scale as i64)))
    }

    fn result(&self, avg: bool) -> Result<Value> {
        let Some(sum) = self.sum()? else {
            return Ok(Value::Null);
        };
        if !avg {
            return Ok(out(sum));
        }
        sum.div(&Numeric::from_i64(self.count)).map(out).map_err(pg_error)
    }
}

/// `pg_num_sum` (`avg: false`) and `pg_num_avg`.
struct Sum {
    avg: bool,
}

impl Aggregate<SumState, Value> for Sum {
    fn init(&self, _: &mut Context<'_>) -> Result<SumState> {
        Ok(SumState::default())
    }

    fn step(&self, ctx: &mut Context<'_>, acc: &mut SumState) -> Result<()> {
        acc.apply(ctx.get_raw(0), 1)
    }

    fn finalize(&self, _: &mut Context<'_>, acc: Option<SumState>) -> Result<Value> {
        match acc {
            Some(acc) => acc.result(self.avg),
            None => Ok(Value::Null),
        }
    }
}

impl WindowAggregate<SumState, Value> for Sum {
    fn value(&self, acc: Option<&mut SumState>) -> Result<Value> {
        match acc {
            Some(acc) => acc.result(self.avg),
            None => Ok(Value::Null),
        }
    }

    fn inverse(&self, ctx: &mut Context<'_>, acc: &mut SumState) -> Result<()> {
        acc.apply(ctx.get_raw(0), -1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        crate::functions::register(&c).unwrap();
        c
    }

    fn q(c: &Connection, sql: &str) -> String {
        c.query_row(sql, [], |r| {
            Ok(match r.get_ref(0)? {
                ValueRef::Null => "NULL".to_string(),
                ValueRef::Integer(n) => n.to_string(),
                ValueRef::Real(f) => format!("{f:?}"),
                ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                ValueRef::Blob(_) => "blob".into(),
            })
        })
        .unwrap_or_else(|e| crate::sqlite_error::from_sqlite(e).to_string())
    }

    #[test]
    fn arithmetic_is_exact() {
        let c = conn();
        assert_eq!(q(&c, "SELECT pg_num_add('0.1', '0.2')"), "0.3");
        assert_eq!(q(&c, "SELECT pg_num_mul(3, '1.10')"), "3.30");
        assert_eq!(q(&c, "SELECT pg_num_div('1', 3)"), "0.33333333333333333333");
        assert_eq!(q(&c, "SELECT pg_num_round('2.5')"), "3");
        assert_eq!(q(&c, "SELECT pg_num_round('1234.5678', -2)"), "1200");
        assert_eq!(q(&c, "SELECT pg_num_typmod('12.345', 4, 2)"), "12.35");
        assert_eq!(q(&c, "SELECT pg_num_float8('0.1')"), "0.1");
        assert_eq!(q(&c, "SELECT pg_num_greatest('1.5', NULL, '10', '9.99')"), "10");
        assert!(q(&c, "SELECT pg_num_div('1', '0')").contains("division by zero"));
        assert!(q(&c, "SELECT pg_num_add('abc', 1)").contains("invalid input syntax for type numeric"));
        assert!(q(&c, "SELECT pg_num_typmod('1000', 5, 2)").contains("numeric field overflow"));
    }

    #[test]
    fn collation_orders_numerically() {
        let c = conn();
        c.execute_batch(
            "CREATE TABLE t (n TEXT COLLATE pg_numeric UNIQUE);
             INSERT INTO t VALUES ('10'), ('9'), ('-1.5'), ('0.25'), ('NaN'), ('-Infinity'), ('100.00');",
        )
        .unwrap();
        let order: Vec<String> = c
            .prepare("SELECT n FROM t ORDER BY n")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(order, ["-Infinity", "-1.5", "0.25", "9", "10", "100.00", "NaN"]);
        // UNIQUE compares numerically: 10.0 is 10.
        assert!(c.execute("INSERT INTO t VALUES ('10.0')", []).is_err());
        assert_eq!(q(&c, "SELECT count(*) FROM t WHERE n = '100'"), "1");
        assert_eq!(q(&c, "SELECT count(*) FROM t WHERE n > '9.5'"), "3");
        assert_eq!(q(&c, "SELECT max(n) FROM t WHERE n <> 'NaN'"), "100.00");
        assert_eq!(q(&c, "SELECT min(n) FROM t"), "-Infinity");
    }

    #[test]
    fn sums_are_exact_and_keep_the_largest_scale() {
        let c = conn();
        assert_eq!(
            q(&c, "SELECT pg_num_sum(x) FROM (SELECT '0.1' x UNION ALL SELECT '0.2' UNION ALL SELECT 1)"),
            "1.3"
        );
        assert_eq!(
            q(&c, "SELECT pg_num_sum(x) FROM (SELECT 9223372036854775807 x UNION ALL SELECT 9223372036854775807)"),
            "18446744073709551614"
        );
        assert_eq!(q(&c, "SELECT pg_num_avg(x) FROM (SELECT 1 x UNION ALL SELECT 2)"), "1.5000000000000000");
        assert_eq!(q(&c, "SELECT pg_num_sum(x) FROM (SELECT NULL x)"), "NULL");
        assert_eq!(q(&c, "SELECT pg_num_sum(x) FROM (SELECT 'Infinity' x UNION ALL SELECT '-Infinity')"), "NaN");
        // A moving frame drops the 2-digit input again and its scale with it.
        let sql = "SELECT group_concat(s, ' ') FROM (SELECT pg_num_sum(x) OVER (ORDER BY i ROWS 1 PRECEDING) s
                   FROM (SELECT 1 i, '1.25' x UNION ALL SELECT 2, '1' UNION ALL SELECT 3, '2'))";
        assert_eq!(q(&c, sql), "1.25 2.25 3");
    }

    fn plan(c: &Connection, sql: &str) -> String {
        let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows = stmt.query_map([], |r| r.get::<_, String>(3)).unwrap();
        rows.map(|r| r.unwrap()).collect::<Vec<_>>().join("; ")
    }

    #[test]
    fn indexes_serve_the_translators_numeric_comparisons() {
        let c = conn();
        c.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, n TEXT COLLATE pg_numeric); CREATE INDEX t_n ON t (n);",
        )
        .unwrap();
        // The shapes shoal-sql emits: the left operand under the collation.
        let eq = plan(&c, "SELECT id FROM t WHERE (\"n\" COLLATE pg_numeric) = '5'");
        assert!(eq.contains("INDEX t_n (n=?)"), "{eq}");
        let range = plan(&c, "SELECT id FROM t WHERE (\"n\" COLLATE pg_numeric) > '5'");
        assert!(range.contains("INDEX t_n (n>?)"), "{range}");
        let order = plan(&c, "SELECT id FROM t ORDER BY (\"n\" COLLATE pg_numeric)");
        assert!(order.contains("INDEX t_n") && !order.contains("TEMP B-TREE"), "{order}");
    }

    /// Figures for ARCHITECTURE.md: `cargo test -p shoal-storage --release
    /// numeric_costs -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn numeric_costs() {
        use std::time::Instant;
        let c = conn();
        c.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, n TEXT COLLATE pg_numeric, f REAL, i INTEGER);")
            .unwrap();
        let rows = 200_000i64;
        let time = |label: &str, sql: &str| {
            let start = Instant::now();
            c.execute_batch(sql).unwrap();
            println!("{label:<44} {:>8.1} ms", start.elapsed().as_secs_f64() * 1e3);
        };
        let insert = format!(
            "INSERT INTO t (n, f, i) SELECT pg_num_typmod((value * 7919 % 1000003) / 100.0, 12, 2), \
             (value * 7919 % 1000003) / 100.0, value * 7919 % 1000003 FROM generate_series(1, {rows})"
        );
        time("insert 200k rows (numeric via pg_num_typmod)", &insert);
        time("sum(i) integer", "SELECT sum(i) FROM t");
        time("sum(f) double", "SELECT sum(f) FROM t");
        time("pg_num_sum(n) numeric", "SELECT pg_num_sum(n) FROM t");
        time("pg_num_avg(n) numeric", "SELECT pg_num_avg(n) FROM t");
        time("max(f) double", "SELECT max(f) FROM t");
        time("max(n) numeric (collation)", "SELECT max(n) FROM t");
        time("sort by f (double)", "SELECT f FROM t ORDER BY f LIMIT -1 OFFSET 199999");
        time("sort by n (numeric collation)", "SELECT n FROM t ORDER BY n LIMIT -1 OFFSET 199999");
        time("create index on f", "CREATE INDEX t_f ON t (f)");
        time("create index on n (numeric collation)", "CREATE INDEX t_n ON t (n)");
        time("pg_num_add(n, 1) over all rows", "SELECT max(pg_num_add(n, 1)) FROM t");
        time("f + 1 over all rows", "SELECT max(f + 1) FROM t");
    }
}
