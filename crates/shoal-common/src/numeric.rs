//! PostgreSQL's `numeric`: exact decimal values and their arithmetic.
//!
//! A [`Numeric`] is an arbitrary-precision integer with a *display scale*
//! (`value = int × 10^-scale`), or one of PostgreSQL's special values `NaN`,
//! `Infinity`, `-Infinity`. The scale is part of the value's identity for
//! printing (`1.10` stays `1.10`) but not for comparison (`1.10 = 1.1`).
//!
//! ```text
//!   '  -12.340 '  ──parse──▶  Finite { int: -12340, scale: 3 }  ──Display──▶  -12.340
//!   'NaN' / 'inf' ──parse──▶  NaN / PosInf                       ──Display──▶  NaN / Infinity
//! ```
//!
//! Every operation follows PostgreSQL 15's `numeric.c`: result scales
//! (`+ - %` keep the larger scale, `*` adds them, `/`, `sqrt` and `^` pick a
//! scale giving at least 16 significant digits), rounding half away from
//! zero, the special values' rules, and its limits: 131072 digits before the
//! point and 16383 after ([`MAX_INT_DIGITS`], [`MAX_SCALE`]). Beyond them a
//! value is refused with 22003 `value overflows numeric format`; nothing is
//! rounded that PostgreSQL would keep. Results are pure functions of the
//! inputs, so every replica computes the same digits.
//!
//! Storage: Shoal stores a numeric in SQLite as this module's text form
//! (PostgreSQL's output), compared by the `pg_numeric` collation, which
//! calls [`cmp_text`]: it orders decimal text numerically without parsing
//! into big integers. The wire's binary form (base-10000 digit groups) is
//! [`Numeric::to_pg_binary`] / [`Numeric::from_pg_binary`].
//!
//! Out of scope: `power` with a non-integer exponent (`exp`/`ln` series) —
//! refused by the caller rather than computed in floating point.

use std::cmp::Ordering;
use std::fmt;

use num_bigint::{BigInt, BigUint, Sign};
use num_integer::Integer;
use num_traits::{One, Signed, ToPrimitive, Zero};

use crate::{Error, Result, SqlState};

/// Most digits before the decimal point (PostgreSQL's limit).
pub const MAX_INT_DIGITS: i64 = 131_072;
/// Most digits after the decimal point (PostgreSQL's `NUMERIC_DSCALE_MAX`).
pub const MAX_SCALE: u32 = 16_383;
/// Largest scale a division, `sqrt` or `^` picks on its own (`NUMERIC_MAX_DISPLAY_SCALE`).
pub const MAX_DISPLAY_SCALE: i64 = 1000;
/// Significant digits a division, `sqrt` or `^` aims for (`NUMERIC_MIN_SIG_DIGITS`).
const MIN_SIG_DIGITS: i64 = 16;
/// Largest precision of `numeric(p, s)`.
pub const MAX_PRECISION: u32 = 1000;

/// A PostgreSQL `numeric` value.
#[derive(Clone, Debug)]
pub enum Numeric {
    /// `int × 10^-scale`. Zero is never negative (BigInt has no -0).
    Finite {
        int: BigInt,
        scale: u32,
    },
    NaN,
    PosInf,
    NegInf,
}

fn overflow() -> Error {
    Error::new(SqlState::NUMERIC_VALUE_OUT_OF_RANGE, "value overflows numeric format")
}

fn pow10(n: u64) -> BigInt {
    num_traits::pow(BigInt::from(10u8), n as usize)
}

/// Decimal digits of `|n|` (1 for zero).
fn digit_count(n: &BigInt) -> i64 {
    if n.is_zero() {
        return 1;
    }
    // bits × log10(2) estimates from below by at most one digit; fix it up.
    let est = ((n.bits() as f64 - 1.0) * std::f64::consts::LOG10_2).floor() as i64 + 1;
    if n.magnitude() >= &pow10(est as u64).into_parts().1 {
        est + 1
    } else {
        est
    }
}

/// `n / 10^k` rounded half away from zero.
fn div_pow10_round(n: &BigInt, k: u64) -> BigInt {
    if k == 0 {
        return n.clone();
    }
    let d = pow10(k);
    let (q, r) = n.div_rem(&d);
    if r.abs() * 2 >= d {
        q + n.signum()
    } else {
        q
    }
}

/// `num / den` rounded half away from zero.
fn div_round(num: &BigInt, den: &BigInt) -> BigInt {
    let (q, r) = num.div_rem(den);
    if r.abs() * 2 >= den.abs() {
        let sign = if num.sign() == den.sign() { 1 } else { -1 };
        q + sign
    } else {
        q
    }
}

impl Numeric {
    /// A finite value, checked against PostgreSQL's limits.
    pub fn finite(int: BigInt, scale: u32) -> Result<Numeric> {
        let n = Numeric::Finite { int, scale };
        n.check()?;
        Ok(n)
    }

    pub fn zero() -> Numeric {
        Numeric::Finite { int: BigInt::zero(), scale: 0 }
    }

    pub fn from_i64(v: i64) -> Numeric {
        Numeric::Finite { int: BigInt::from(v), scale: 0 }
    }

    /// PostgreSQL's `float8 → numeric` (and `float4` with `digits = 6`): the
    /// value printed with `digits` significant digits (`%.15g`), then read.
    pub fn from_f64(v: f64, digits: usize) -> Numeric {
        if v.is_nan() {
            return Numeric::NaN;
        }
        if v.is_infinite() {
            return if v > 0.0 { Numeric::PosInf } else { Numeric::NegInf };
        }
        let sci = format!("{:.*e}", digits.saturating_sub(1), v);
        Numeric::parse(&sci).unwrap_or_else(|_| Numeric::zero()).strip_trailing_zeros()
    }

    /// Parses PostgreSQL's numeric input: blanks, sign, digits with an
    /// optional point and exponent, or `NaN` / `[+-]Infinity` / `[+-]inf`.
    pub fn parse(text: &str) -> Result<Numeric> {
        let invalid = || {
            Error::new(
                SqlState::INVALID_TEXT_REPRESENTATION,
                format!("invalid input syntax for type numeric: \"{text}\""),
            )
        };
        let t = text.trim_matches(|c: char| c.is_ascii_whitespace());
        let lower = t.to_ascii_lowercase();
        match lower.as_str() {
            "nan" => return Ok(Numeric::NaN),
            "infinity" | "+infinity" | "inf" | "+inf" => return Ok(Numeric::PosInf),
            "-infinity" | "-inf" => return Ok(Numeric::NegInf),
            _ => {}
        }
        let (negative, int_part, frac_part, exp) = crate::convert::split_decimal(t).ok_or_else(invalid)?;
        // value = digits × 10^(exp - frac_len); its scale is frac_len - exp, at least 0.
        let digits = format!("{int_part}{frac_part}");
        let digits = digits.trim_start_matches('0');
        let shift = exp - frac_part.len() as i64;
        let scale = (-shift).max(0);
        if scale > MAX_SCALE as i64 {
            return Err(overflow());
        }
        if !digits.is_empty() && digits.len() as i64 + shift > MAX_INT_DIGITS {
            return Err(overflow());
        }
        let mut int = if digits.is_empty() {
            BigInt::zero()
        } else if digits.len() <= 38 {
            // Fast path: most values fit an i128 (38 digits), which avoids
            // num-bigint's general decimal parser.
            BigInt::from(digits.bytes().fold(0i128, |acc, d| acc * 10 + (d - b'0') as i128))
        } else {
            BigInt::parse_bytes(digits.as_bytes(), 10).ok_or_else(invalid)?
        };
        // Zero needs no scaling ('0e999999999' must not build 10^999999999).
        if shift > 0 && !digits.is_empty() {
            int *= pow10(shift as u64);
        }
        if negative {
            int = -int;
        }
        Ok(Numeric::Finite { int, scale: scale as u32 })
    }

    /// A plain decimal text (`-12.50`, no exponent, at most 36 digits) as an
    /// `i128` and its scale, without allocating: the fast path of `sum`.
    pub fn parse_small(text: &[u8]) -> Option<(i128, u32)> {
        let (neg, body) = match text.first() {
            Some(b'-') => (true, &text[1..]),
            _ => (false, text),
        };
        if body.is_empty() || body.len() > 37 {
            return None;
        }
        let mut v: i128 = 0;
        let mut scale: Option<u32> = None;
        for &c in body {
            match c {
                b'0'..=b'9' => {
                    v = v * 10 + (c - b'0') as i128;
                    if let Some(s) = scale.as_mut() {
                        *s += 1;
                    }
                }
                b'.' if scale.is_none() => scale = Some(0),
                _ => return None,
            }
        }
        Some((if neg { -v } else { v }, scale.unwrap_or(0)))
    }

    /// Refuses values beyond PostgreSQL's limits (22003).
    fn check(&self) -> Result<()> {
        if let Numeric::Finite { int, scale } = self {
            if *scale > MAX_SCALE || digit_count(int) - *scale as i64 > MAX_INT_DIGITS {
                return Err(overflow());
            }
        }
        Ok(())
    }

    pub fn is_nan(&self) -> bool {
        matches!(self, Numeric::NaN)
    }

    /// The display scale (0 for the special values).
    pub fn scale(&self) -> u32 {
        match self {
            Numeric::Finite { scale, .. } => *scale,
            _ => 0,
        }
    }

    /// -1, 0 or 1 (NaN counts as positive, as PostgreSQL sorts it above all).
    fn signum(&self) -> i32 {
        match self {
            Numeric::Finite { int, .. } => match int.sign() {
                Sign::Minus => -1,
                Sign::NoSign => 0,
                Sign::Plus => 1,
            },
            Numeric::NegInf => -1,
            _ => 1,
        }
    }

    fn is_zero(&self) -> bool {
        matches!(self, Numeric::Finite { int, .. } if int.is_zero())
    }

    /// The integer part scaled to `scale` digits (`scale` ≥ the value's).
    fn rescaled(int: &BigInt, from: u32, to: u32) -> BigInt {
        if to > from {
            int * pow10((to - from) as u64)
        } else {
            int.clone()
        }
    }

    /// The same value with `scale` digits after the point, rounded half away from zero.
    pub fn round(&self, scale: i64) -> Numeric {
        let Numeric::Finite { int, scale: s } = self else {
            return self.clone();
        };
        let s = *s as i64;
        let out_scale = scale.clamp(0, MAX_SCALE as i64) as u32;
        if scale >= s {
            return Numeric::Finite { int: Numeric::rescaled(int, s as u32, out_scale), scale: out_scale };
        }
        // Drop (s - scale) digits; a negative scale rounds to tens, hundreds, …
        let cut = (s - scale) as u64;
        if cut as i64 > digit_count(int) + 1 {
            return Numeric::Finite { int: BigInt::zero(), scale: out_scale };
        }
        let mut q = div_pow10_round(int, cut);
        if scale < 0 {
            q *= pow10((-scale) as u64);
        }
        Numeric::Finite { int: q, scale: out_scale }
    }

    /// Truncates towards zero to `scale` digits after the point.
    pub fn trunc(&self, scale: i64) -> Numeric {
        let Numeric::Finite { int, scale: s } = self else {
            return self.clone();
        };
        let s = *s as i64;
        let out_scale = scale.clamp(0, MAX_SCALE as i64) as u32;
        if scale >= s {
            return Numeric::Finite { int: Numeric::rescaled(int, s as u32, out_scale), scale: out_scale };
        }
        let cut = (s - scale) as u64;
        if cut as i64 > digit_count(int) + 1 {
            return Numeric::Finite { int: BigInt::zero(), scale: out_scale };
        }
        let mut q = int / pow10(cut);
        if scale < 0 {
            q *= pow10((-scale) as u64);
        }
        Numeric::Finite { int: q, scale: out_scale }
    }

    /// `ceil` (`up`) or `floor`, scale 0.
    pub fn ceil_floor(&self, up: bool) -> Numeric {
        let Numeric::Finite { int, scale } = self else {
            return self.clone();
        };
        let d = pow10(*scale as u64);
        let q = if up { int.div_ceil(&d) } else { int.div_floor(&d) };
        Numeric::Finite { int: q, scale: 0 }
    }

    /// Removes trailing zeros after the point (used for float conversion).
    fn strip_trailing_zeros(self) -> Numeric {
        let Numeric::Finite { mut int, mut scale } = self else {
            return self;
        };
        let ten = BigInt::from(10u8);
        while scale > 0 && (&int % &ten).is_zero() {
            int /= &ten;
            scale -= 1;
        }
        Numeric::Finite { int, scale }
    }

    pub fn neg(&self) -> Numeric {
        match self {
            Numeric::Finite { int, scale } => Numeric::Finite { int: -int, scale: *scale },
            Numeric::NaN => Numeric::NaN,
            Numeric::PosInf => Numeric::NegInf,
            Numeric::NegInf => Numeric::PosInf,
        }
    }

    pub fn abs(&self) -> Numeric {
        match self {
            Numeric::Finite { int, scale } => Numeric::Finite { int: int.abs(), scale: *scale },
            Numeric::NegInf => Numeric::PosInf,
            other => other.clone(),
        }
    }

    /// `sign(x)`: -1, 0 or 1 with scale 0 (NaN stays NaN).
    pub fn sign(&self) -> Numeric {
        match self {
            Numeric::NaN => Numeric::NaN,
            other => Numeric::from_i64(other.signum() as i64),
        }
    }

    pub fn add(&self, other: &Numeric) -> Result<Numeric> {
        use Numeric::*;
        let out = match (self, other) {
            (NaN, _) | (_, NaN) | (PosInf, NegInf) | (NegInf, PosInf) => NaN,
            (PosInf, _) | (_, PosInf) => PosInf,
            (NegInf, _) | (_, NegInf) => NegInf,
            (Finite { int: a, scale: sa }, Finite { int: b, scale: sb }) => {
                let s = (*sa).max(*sb);
                Finite { int: Numeric::rescaled(a, *sa, s) + Numeric::rescaled(b, *sb, s), scale: s }
            }
        };
        out.check()?;
        Ok(out)
    }

    pub fn sub(&self, other: &Numeric) -> Result<Numeric> {
        self.add(&other.neg())
    }

    pub fn mul(&self, other: &Numeric) -> Result<Numeric> {
        use Numeric::*;
        let out = match (self, other) {
            (NaN, _) | (_, NaN) => NaN,
            (Finite { .. }, Finite { .. }) => {
                let (Finite { int: a, scale: sa }, Finite { int: b, scale: sb }) = (self, other) else {
                    return Ok(NaN);
                };
                let scale = sa + sb;
                let prod = Finite { int: a * b, scale };
                // PostgreSQL caps the product's scale, rounding the rest away.
                if scale > MAX_SCALE {
                    prod.round(MAX_SCALE as i64)
                } else {
                    prod
                }
            }
            (x, y) if x.is_zero() || y.is_zero() => NaN,
            (x, y) => {
                if x.signum() * y.signum() < 0 {
                    NegInf
                } else {
                    PosInf
                }
            }
        };
        out.check()?;
        Ok(out)
    }

    /// PostgreSQL's `select_div_scale`: enough digits for 16 significant
    /// ones, at least both inputs' scales, at most 1000.
    fn div_scale(&self, other: &Numeric) -> i64 {
        let (w1, f1) = self.weight_and_first_group();
        let (w2, f2) = other.weight_and_first_group();
        let mut qweight = w1 - w2;
        if f1 <= f2 {
            qweight -= 1;
        }
        let rscale = MIN_SIG_DIGITS - qweight * 4;
        rscale.max(self.scale() as i64).max(other.scale() as i64).clamp(0, MAX_DISPLAY_SCALE)
    }

    /// The base-10000 weight of the first non-zero digit group and that
    /// group's value, as PostgreSQL stores a numeric ((0, 0) for zero).
    fn weight_and_first_group(&self) -> (i64, u32) {
        let Numeric::Finite { int, scale } = self else {
            return (0, 0);
        };
        if int.is_zero() {
            return (0, 0);
        }
        let digits = int.magnitude().to_string();
        // Decimal exponent of the leading digit, and its base-10000 group.
        let e = digits.len() as i64 - 1 - *scale as i64;
        let w = e.div_euclid(4);
        let lead = (e - 4 * w + 1) as usize;
        let first: u32 = digits[..lead.min(digits.len())].parse().unwrap_or(0);
        let first = first * 10u32.pow((lead.saturating_sub(digits.len())) as u32);
        (w, first)
    }

    pub fn div(&self, other: &Numeric) -> Result<Numeric> {
        use Numeric::*;
        if self.is_nan() || other.is_nan() {
            return Ok(NaN);
        }
        if other.is_zero() {
            return Err(Error::new(SqlState::DIVISION_BY_ZERO, "division by zero"));
        }
        let out = match (self, other) {
            (PosInf | NegInf, PosInf | NegInf) => NaN,
            (PosInf | NegInf, y) => {
                if self.signum() * y.signum() < 0 {
                    NegInf
                } else {
                    PosInf
                }
            }
            (Finite { .. }, PosInf | NegInf) => Numeric::zero(),
            (Finite { int: a, scale: sa }, Finite { int: b, scale: sb }) => {
                let rscale = self.div_scale(other) as u32;
                // a/10^sa ÷ b/10^sb at rscale = a·10^(rscale+sb-sa) ÷ b, rounded.
                let num = a * pow10((rscale + sb - sa.min(&(rscale + sb))) as u64);
                Finite { int: div_round(&num, b), scale: rscale }
            }
            _ => NaN,
        };
        out.check()?;
        Ok(out)
    }

    /// `%`: the remainder of truncating division, with the dividend's sign.
    pub fn rem(&self, other: &Numeric) -> Result<Numeric> {
        use Numeric::*;
        if self.is_nan() || other.is_nan() {
            return Ok(NaN);
        }
        if other.is_zero() {
            return Err(Error::new(SqlState::DIVISION_BY_ZERO, "division by zero"));
        }
        match (self, other) {
            (PosInf | NegInf, _) => Ok(NaN),
            (Finite { .. }, PosInf | NegInf) => Ok(self.clone()),
            (Finite { int: a, scale: sa }, Finite { int: b, scale: sb }) => {
                let s = (*sa).max(*sb);
                let (a, b) = (Numeric::rescaled(a, *sa, s), Numeric::rescaled(b, *sb, s));
                Ok(Finite { int: a % b, scale: s })
            }
            _ => Ok(NaN),
        }
    }

    /// `sqrt`, with PostgreSQL's result scale (about 16 significant digits).
    pub fn sqrt(&self) -> Result<Numeric> {
        let negative = || {
            Error::new(SqlState::INVALID_ARGUMENT_FOR_POWER_FUNCTION, "cannot take square root of a negative number")
        };
        match self {
            Numeric::NaN | Numeric::PosInf => Ok(self.clone()),
            Numeric::NegInf => Err(negative()),
            Numeric::Finite { int, scale } => {
                if int.is_negative() {
                    return Err(negative());
                }
                let (w, _) = self.weight_and_first_group();
                let sweight = 2 * w + 1;
                let rscale = (MIN_SIG_DIGITS - sweight).max(*scale as i64).clamp(0, MAX_DISPLAY_SCALE) as u32;
                // sqrt(int·10^-scale)·10^(rscale+1) = sqrt(int·10^(2·rscale+2-scale)); one
                // extra digit, then round half up (the exact root is never a tie
                // unless the digit says so).
                let radicand = int * pow10((2 * rscale + 2 - scale) as u64);
                let root = radicand.sqrt();
                Ok(Numeric::Finite { int: div_pow10_round(&root, 1), scale: rscale })
            }
        }
    }

    /// `x ^ y` for an integer `y` (PostgreSQL's `power_var_int`); a
    /// non-integer exponent on finite values is refused (0A000).
    pub fn power(&self, exp: &Numeric) -> Result<Numeric> {
        use Numeric::*;
        let one = Numeric::from_i64(1);
        // NaN: 1 ^ NaN = 1 and NaN ^ 0 = 1, as PostgreSQL.
        if self.is_nan() || exp.is_nan() {
            if (self.cmp(&one) == Ordering::Equal && !self.is_nan()) || exp.is_zero() {
                return Ok(one.round(MIN_SIG_DIGITS.max(self.scale() as i64)));
            }
            return Ok(NaN);
        }
        if self.is_zero() && exp.signum() < 0 {
            return Err(Error::new(
                SqlState::INVALID_ARGUMENT_FOR_POWER_FUNCTION,
                "zero raised to a negative power is undefined",
            ));
        }
        let exp_int = exp.integral_i64();
        if self.signum() < 0 && matches!(exp, Finite { .. }) && exp_int.is_none() {
            return Err(Error::new(
                SqlState::INVALID_ARGUMENT_FOR_POWER_FUNCTION,
                "a negative number raised to a non-integer power yields a complex result",
            ));
        }
        match (self, exp) {
            (_, PosInf | NegInf) => {
                let mag = self.abs().cmp(&one);
                let grows = (mag == Ordering::Greater) == matches!(exp, PosInf);
                return Ok(match mag {
                    Ordering::Equal => one,
                    _ if self.is_zero() => Numeric::zero(),
                    _ if grows => PosInf,
                    _ => Numeric::zero(),
                });
            }
            (PosInf | NegInf, _) => {
                return Ok(match exp.signum() {
                    0 => one,
                    s if s < 0 => Numeric::zero(),
                    _ if matches!(self, NegInf) && exp_int.is_some_and(|n| n % 2 != 0) => NegInf,
                    _ => PosInf,
                });
            }
            _ => {}
        }
        let Some(n) = exp_int.filter(|n| i32::try_from(*n).is_ok()) else {
            return Err(Error::unsupported("numeric ^ with a non-integer exponent (cast to double precision)"));
        };
        self.power_int(n)
    }

    /// The value as an integer when it has no fractional part.
    fn integral_i64(&self) -> Option<i64> {
        let Numeric::Finite { int, scale } = self else {
            return None;
        };
        let d = pow10(*scale as u64);
        let (q, r) = int.div_rem(&d);
        if r.is_zero() {
            q.to_i64()
        } else {
            None
        }
    }

    fn power_int(&self, n: i64) -> Result<Numeric> {
        let Numeric::Finite { int, scale } = self else {
            return Ok(self.clone());
        };
        let rscale = MIN_SIG_DIGITS.max(*scale as i64).clamp(0, MAX_DISPLAY_SCALE);
        if n == 0 {
            return Ok(Numeric::from_i64(1).round(rscale));
        }
        if int.is_zero() {
            return Ok(Numeric::zero().round(rscale));
        }
        // Decimal weight of the result, to refuse overflow before computing it.
        let log = self.abs_log10();
        let f = log * n as f64;
        if f > (MAX_INT_DIGITS + 1) as f64 {
            return Err(overflow());
        }
        if f + 1.0 < -(rscale as f64) {
            return Ok(Numeric::zero().round(rscale));
        }
        let base_digits = digit_count(int) as f64;
        let exact_digits = base_digits * n.unsigned_abs() as f64;
        let magnitude = n.unsigned_abs();
        let result = if exact_digits <= 20_000.0 {
            // Exact: base^|n| = int^|n| / 10^(scale·|n|).
            let p = num_traits::pow(int.clone(), magnitude as usize);
            let pscale = *scale as u64 * magnitude;
            if n > 0 {
                let out = p_round(&p, pscale, rscale as u64);
                Numeric::Finite { int: out, scale: rscale as u32 }
            } else {
                // 1 / (p / 10^pscale) at rscale = 10^(pscale + rscale) / p, rounded.
                let num = pow10(pscale + rscale as u64);
                Numeric::Finite { int: div_round(&num, &p), scale: rscale as u32 }
            }
        } else {
            // Too many digits to compute exactly: keep a fixed number of
            // significant digits per multiplication (as PostgreSQL does),
            // enough for the result's scale plus the exponent's error growth.
            let sig = (rscale as f64 + f.max(0.0) + (n.unsigned_abs() as f64).log10() + 12.0) as u64;
            let mut acc = Float::from(int.clone(), -(*scale as i64));
            let mut result = Float::from(BigInt::one(), 0);
            let mut e = magnitude;
            while e > 0 {
                if e & 1 == 1 {
                    result = result.mul(&acc, sig);
                }
                e >>= 1;
                if e > 0 {
                    acc = acc.mul(&acc, sig);
                }
            }
            if n < 0 {
                result = result.recip(sig);
            }
            result.to_numeric(rscale as u32)
        };
        result.check()?;
        Ok(result)
    }

    /// log10 of the magnitude of a finite non-zero value (approximate).
    fn abs_log10(&self) -> f64 {
        let Numeric::Finite { int, scale } = self else {
            return 0.0;
        };
        let digits = int.magnitude().to_string();
        let lead: f64 = digits[..digits.len().min(17)].parse().unwrap_or(1.0);
        lead.log10() + (digits.len() as i64 - digits.len().min(17) as i64 - *scale as i64) as f64
    }

    /// `numeric(p, s)`: rounds to `s` and refuses values needing more than
    /// `p - s` integer digits (22003 `numeric field overflow`).
    pub fn apply_typmod(&self, precision: u32, scale: u32) -> Result<Numeric> {
        let overflow = |detail: String| {
            Error::new(SqlState::NUMERIC_VALUE_OUT_OF_RANGE, "numeric field overflow").with_detail(detail)
        };
        match self {
            Numeric::NaN => Ok(Numeric::NaN),
            Numeric::PosInf | Numeric::NegInf => Err(overflow(format!(
                "A field with precision {precision}, scale {scale} cannot hold an infinite value."
            ))),
            Numeric::Finite { .. } => {
                let r = self.round(scale as i64);
                let Numeric::Finite { int, .. } = &r else {
                    return Ok(r);
                };
                let int_digits = if int.is_zero() { 0 } else { digit_count(int) - scale as i64 };
                if int_digits > precision as i64 - scale as i64 {
                    let detail = if precision == scale {
                        format!("A field with precision {precision}, scale {scale} must round to an absolute value less than 1.")
                    } else {
                        format!(
                            "A field with precision {precision}, scale {scale} must round to an absolute value less than 10^{}.",
                            precision as i64 - scale as i64
                        )
                    };
                    return Err(overflow(detail));
                }
                Ok(r)
            }
        }
    }

    /// Rounded half away from zero to an `i64` in `[min, max]`; `type_name`
    /// names the target in the out-of-range error.
    pub fn to_i64(&self, min: i64, max: i64, type_name: &str) -> Result<i64> {
        let out_of_range = || Error::new(SqlState::NUMERIC_VALUE_OUT_OF_RANGE, format!("{type_name} out of range"));
        match self {
            Numeric::NaN => {
                Err(Error::new(SqlState::FEATURE_NOT_SUPPORTED, format!("cannot convert NaN to {type_name}")))
            }
            Numeric::PosInf | Numeric::NegInf => {
                Err(Error::new(SqlState::FEATURE_NOT_SUPPORTED, format!("cannot convert infinity to {type_name}")))
            }
            Numeric::Finite { .. } => {
                let Numeric::Finite { int, .. } = self.round(0) else {
                    return Err(out_of_range());
                };
                int.to_i64().filter(|n| (min..=max).contains(n)).ok_or_else(out_of_range)
            }
        }
    }

    /// The nearest double (Rust's parser rounds correctly, like `strtod`).
    pub fn to_f64(&self) -> f64 {
        match self {
            Numeric::NaN => f64::NAN,
            Numeric::PosInf => f64::INFINITY,
            Numeric::NegInf => f64::NEG_INFINITY,
            Numeric::Finite { .. } => self.to_string().parse().unwrap_or(f64::NAN),
        }
    }

    /// The value as a double when a double holds it exactly (`1.5`, `30.0`,
    /// not `0.1`): `int / 10^scale` is `q / 2^scale` with `q = int / 5^scale`,
    /// exact when `5^scale` divides `int` and `|q| < 2^53`.
    pub fn to_f64_exact(&self) -> Option<f64> {
        let Numeric::Finite { int, scale } = self else {
            return None;
        };
        if *scale > 22 {
            return None;
        }
        let five = num_traits::pow(BigInt::from(5u8), *scale as usize);
        let (q, r) = int.div_rem(&five);
        let q = q.to_i64().filter(|q| q.unsigned_abs() < (1u64 << 53))?;
        if !r.is_zero() {
            return None;
        }
        Some(q as f64 / 2f64.powi(*scale as i32))
    }

    /// PostgreSQL's binary `numeric` (`numeric_send`): ndigits, weight,
    /// sign, dscale as 16-bit integers, then base-10000 digits.
    pub fn to_pg_binary(&self) -> Vec<u8> {
        let header = |ndigits: u16, weight: i16, sign: u16, dscale: u16| {
            let mut out = Vec::with_capacity(8 + 2 * ndigits as usize);
            out.extend_from_slice(&ndigits.to_be_bytes());
            out.extend_from_slice(&weight.to_be_bytes());
            out.extend_from_slice(&sign.to_be_bytes());
            out.extend_from_slice(&dscale.to_be_bytes());
            out
        };
        let (int, scale) = match self {
            Numeric::NaN => return header(0, 0, 0xC000, 0),
            // PostgreSQL reads the dscale of an infinity out of its short
            // header's bits, so it sends 32; drivers ignore it, we match it.
            Numeric::PosInf => return header(0, 0, 0xD000, 32),
            Numeric::NegInf => return header(0, 0, 0xF000, 32),
            Numeric::Finite { int, scale } => (int, *scale),
        };
        let sign = if int.is_negative() { 0x4000 } else { 0 };
        if int.is_zero() {
            return header(0, 0, 0, scale as u16);
        }
        // Pad the fraction to whole groups of four digits, then split the
        // magnitude into base-10000 groups.
        let frac_groups = scale.div_ceil(4);
        let padded: BigUint = int.magnitude() * pow10((frac_groups * 4 - scale) as u64).into_parts().1;
        let mut groups: Vec<u16> = Vec::new();
        let base = BigUint::from(10000u32);
        let mut rest = padded;
        while !rest.is_zero() {
            let (q, r) = rest.div_rem(&base);
            groups.push(r.to_u16().unwrap_or(0));
            rest = q;
        }
        groups.reverse();
        let weight = groups.len() as i64 - 1 - frac_groups as i64;
        // Strip leading and trailing zero groups (PostgreSQL never sends them).
        let lead = groups.iter().take_while(|g| **g == 0).count();
        let trail = groups.iter().rev().take_while(|g| **g == 0).count();
        let digits = &groups[lead..groups.len() - trail];
        let weight = weight - lead as i64;
        let mut out = header(digits.len() as u16, weight as i16, sign, scale as u16);
        for d in digits {
            out.extend_from_slice(&d.to_be_bytes());
        }
        out
    }

    /// Decodes [`Numeric::to_pg_binary`]'s format; `None` when malformed.
    pub fn from_pg_binary(b: &[u8]) -> Option<Numeric> {
        let u16_at = |i: usize| b.get(i..i + 2).map(|s| u16::from_be_bytes([s[0], s[1]]));
        let ndigits = u16_at(0)? as usize;
        let weight = u16_at(2)? as i16 as i64;
        let sign = u16_at(4)?;
        let dscale = u16_at(6)? as u32;
        if b.len() != 8 + 2 * ndigits || dscale > MAX_SCALE {
            return None;
        }
        match sign {
            0xC000 => return Some(Numeric::NaN),
            0xD000 => return Some(Numeric::PosInf),
            0xF000 => return Some(Numeric::NegInf),
            0x0000 | 0x4000 => {}
            _ => return None,
        }
        let mut mag = BigInt::zero();
        for i in 0..ndigits {
            let d = u16_at(8 + 2 * i)?;
            if d >= 10000 {
                return None;
            }
            mag = mag * 10000u32 + d;
        }
        // mag is in units of 10000^(weight - ndigits + 1).
        let exp10 = 4 * (weight - ndigits as i64 + 1);
        let int = if exp10 >= 0 {
            if exp10 > MAX_INT_DIGITS + 4 {
                return None;
            }
            mag * pow10(exp10 as u64) * pow10(dscale as u64)
        } else {
            let shift = -exp10;
            // Digits below the display scale are dropped, as numeric_recv rounds to dscale.
            let target = dscale as i64;
            if target >= shift {
                mag * pow10((target - shift) as u64)
            } else {
                div_pow10_round(&mag, (shift - target) as u64)
            }
        };
        let int = if sign == 0x4000 { -int } else { int };
        let n = Numeric::Finite { int, scale: dscale };
        n.check().ok()?;
        Some(n)
    }
}

/// `p / 10^pscale` rounded to `rscale` digits: the integer of the result.
fn p_round(p: &BigInt, pscale: u64, rscale: u64) -> BigInt {
    if pscale > rscale {
        div_pow10_round(p, pscale - rscale)
    } else {
        p * pow10(rscale - pscale)
    }
}

/// A decimal float for `power`: `m × 10^e`, truncated to a number of
/// significant digits after each step.
struct Float {
    m: BigInt,
    e: i64,
}

impl Float {
    fn from(m: BigInt, e: i64) -> Float {
        Float { m, e }
    }

    fn truncated(mut self, sig: u64) -> Float {
        let d = digit_count(&self.m);
        if d > sig as i64 {
            let cut = (d - sig as i64) as u64;
            self.m /= pow10(cut);
            self.e += cut as i64;
        }
        self
    }

    fn mul(&self, o: &Float, sig: u64) -> Float {
        Float { m: &self.m * &o.m, e: self.e + o.e }.truncated(sig)
    }

    /// 1 / self with `sig` significant digits.
    fn recip(&self, sig: u64) -> Float {
        let k = sig as i64 + digit_count(&self.m);
        Float { m: pow10(k as u64) / &self.m, e: -k - self.e }.truncated(sig)
    }

    fn to_numeric(&self, scale: u32) -> Numeric {
        // m × 10^e at `scale` digits: m × 10^(e + scale), rounded.
        let shift = self.e + scale as i64;
        let int = if shift >= 0 { &self.m * pow10(shift as u64) } else { div_pow10_round(&self.m, (-shift) as u64) };
        Numeric::Finite { int, scale }
    }
}

impl fmt::Display for Numeric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Numeric::NaN => f.write_str("NaN"),
            Numeric::PosInf => f.write_str("Infinity"),
            Numeric::NegInf => f.write_str("-Infinity"),
            Numeric::Finite { int, scale } => {
                let digits = match int.to_i128() {
                    Some(small) => small.unsigned_abs().to_string(),
                    None => int.magnitude().to_string(),
                };
                let scale = *scale as usize;
                if int.is_negative() {
                    f.write_str("-")?;
                }
                if scale == 0 {
                    return f.write_str(&digits);
                }
                let padded = if digits.len() <= scale {
                    format!("{}{digits}", "0".repeat(scale + 1 - digits.len()))
                } else {
                    digits
                };
                let (i, frac) = padded.split_at(padded.len() - scale);
                write!(f, "{i}.{frac}")
            }
        }
    }
}

impl PartialEq for Numeric {
    fn eq(&self, other: &Numeric) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Numeric {}

impl PartialOrd for Numeric {
    fn partial_cmp(&self, other: &Numeric) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// PostgreSQL's order: -Infinity < finite values < Infinity < NaN, NaN = NaN.
impl Ord for Numeric {
    fn cmp(&self, other: &Numeric) -> Ordering {
        use Numeric::*;
        let rank = |n: &Numeric| match n {
            NegInf => 0,
            Finite { .. } => 1,
            PosInf => 2,
            NaN => 3,
        };
        match (self, other) {
            (Finite { int: a, scale: sa }, Finite { int: b, scale: sb }) => {
                let s = (*sa).max(*sb);
                Numeric::rescaled(a, *sa, s).cmp(&Numeric::rescaled(b, *sb, s))
            }
            _ => rank(self).cmp(&rank(other)),
        }
    }
}

/// Compares two numerics in their text form, numerically and without
/// allocating: the `pg_numeric` collation SQLite calls for every comparison
/// of stored values (indexes, ORDER BY, `=`, MIN/MAX, GROUP BY).
///
/// Text that is not a numeric (never stored by Shoal) sorts after NaN, by
/// bytes, so the order stays total.
pub fn cmp_text(a: &[u8], b: &[u8]) -> Ordering {
    match (TextNum::read(a), TextNum::read(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

/// A numeric's text split into its parts, borrowed.
struct TextNum<'a> {
    /// 0 -Infinity, 1 finite negative, 2 zero, 3 finite positive, 4 Infinity, 5 NaN.
    class: u8,
    /// Integer digits without leading zeros.
    int: &'a [u8],
    /// Fraction digits without trailing zeros.
    frac: &'a [u8],
}

impl<'a> TextNum<'a> {
    fn read(t: &'a [u8]) -> Option<TextNum<'a>> {
        let special = |class| Some(TextNum { class, int: &[], frac: &[] });
        match t {
            b"NaN" => return special(5),
            b"Infinity" => return special(4),
            b"-Infinity" => return special(0),
            _ => {}
        }
        let (neg, body) = match t.first() {
            Some(b'-') => (true, &t[1..]),
            _ => (false, t),
        };
        let (int, frac) = match body.iter().position(|c| *c == b'.') {
            Some(i) => (&body[..i], &body[i + 1..]),
            None => (body, &body[body.len()..]),
        };
        if (int.is_empty() && frac.is_empty()) || !int.iter().chain(frac).all(u8::is_ascii_digit) {
            return None;
        }
        let lead = int.iter().take_while(|c| **c == b'0').count();
        let trail = frac.iter().rev().take_while(|c| **c == b'0').count();
        let (int, frac) = (&int[lead..], &frac[..frac.len() - trail]);
        let class = if int.is_empty() && frac.is_empty() {
            2
        } else if neg {
            1
        } else {
            3
        };
        Some(TextNum { class, int, frac })
    }

    fn cmp(&self, o: &TextNum<'_>) -> Ordering {
        if self.class != o.class {
            return self.class.cmp(&o.class);
        }
        if self.class != 1 && self.class != 3 {
            return Ordering::Equal;
        }
        let mag =
            self.int.len().cmp(&o.int.len()).then_with(|| self.int.cmp(o.int)).then_with(|| self.frac.cmp(o.frac));
        if self.class == 1 {
            mag.reverse()
        } else {
            mag
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Numeric {
        Numeric::parse(s).unwrap()
    }

    fn text(s: &str) -> String {
        n(s).to_string()
    }

    #[test]
    fn input_and_output_match_postgres() {
        assert_eq!(text(" +0012.340 "), "12.340");
        assert_eq!(text("-0.00"), "0.00");
        assert_eq!(text("1e3"), "1000");
        assert_eq!(text("1.5e-3"), "0.0015");
        assert_eq!(text(".5"), "0.5");
        assert_eq!(text("5."), "5");
        assert_eq!(text("0e999999999"), "0");
        assert_eq!(text("-0.0e-5"), "0.000000");
        assert_eq!(Numeric::parse_small(b"-12.50"), Some((-1250, 2)));
        assert_eq!(Numeric::parse_small(b"7"), Some((7, 0)));
        assert_eq!(Numeric::parse_small(b"1e5"), None);
        assert_eq!(Numeric::parse_small(b"1.2.3"), None);
        assert_eq!(text("-inf"), "-Infinity");
        assert_eq!(text("NaN"), "NaN");
        assert_eq!(text("0.1"), "0.1");
        assert_eq!(text("123456789012345678901234567890.123456789"), "123456789012345678901234567890.123456789");
        for bad in ["abc", "", "1.2.3", "--1", "1e", "e5", "1 2", "."] {
            let e = Numeric::parse(bad).unwrap_err();
            assert_eq!(e.code, SqlState::INVALID_TEXT_REPRESENTATION, "{bad}");
        }
    }

    #[test]
    fn limits_are_postgres_limits() {
        assert!(Numeric::parse(&format!("1{}", "0".repeat(131_071))).is_ok());
        let e = Numeric::parse("1e131072").unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (SqlState::NUMERIC_VALUE_OUT_OF_RANGE, "value overflows numeric format")
        );
        assert!(Numeric::parse(&format!("0.{}", "1".repeat(16_383))).is_ok());
        assert!(Numeric::parse(&format!("0.{}", "1".repeat(16_384))).is_err());
        let big = n(&format!("9{}", "0".repeat(131_071)));
        assert_eq!(big.add(&big).unwrap_err().code, SqlState::NUMERIC_VALUE_OUT_OF_RANGE);
        assert_eq!(n("10").power(&n("131072")).unwrap_err().code, SqlState::NUMERIC_VALUE_OUT_OF_RANGE);
    }

    #[test]
    fn arithmetic_is_exact_with_postgres_scales() {
        assert_eq!(n("0.1").add(&n("0.2")).unwrap().to_string(), "0.3");
        assert_eq!(n("1.10").add(&n("2")).unwrap().to_string(), "3.10");
        assert_eq!(n("2").mul(&n("1.50")).unwrap().to_string(), "3.00");
        assert_eq!(n("0.000001").mul(&n("0.000001")).unwrap().to_string(), "0.000000000001");
        assert_eq!(n("1").div(&n("3")).unwrap().to_string(), "0.33333333333333333333");
        assert_eq!(n("10").div(&n("2")).unwrap().to_string(), "5.0000000000000000");
        assert_eq!(n("100000").div(&n("3.0")).unwrap().to_string(), "33333.333333333333");
        assert_eq!(n("0.001").div(&n("7")).unwrap().to_string(), "0.00014285714285714286");
        assert_eq!(n("7").div(&n("0.001")).unwrap().to_string(), "7000.0000000000000000");
        assert_eq!(n("123456789012").div(&n("0.5")).unwrap().to_string(), "246913578024.00000000");
        assert_eq!(n("1").div(&n("0")).unwrap_err().code, SqlState::DIVISION_BY_ZERO);
        assert_eq!(n("7.5").rem(&n("2")).unwrap().to_string(), "1.5");
        assert_eq!(n("-7.5").rem(&n("2")).unwrap().to_string(), "-1.5");
        assert_eq!(n("7").rem(&n("2.25")).unwrap().to_string(), "0.25");
        assert_eq!(n("inf").add(&n("-inf")).unwrap().to_string(), "NaN");
        assert_eq!(n("inf").mul(&n("0")).unwrap().to_string(), "NaN");
        assert_eq!(n("-2").mul(&n("inf")).unwrap().to_string(), "-Infinity");
    }

    #[test]
    fn rounding_is_half_away_from_zero() {
        assert_eq!(n("2.5").round(0).to_string(), "3");
        assert_eq!(n("-2.5").round(0).to_string(), "-3");
        assert_eq!(n("1234.5678").round(-2).to_string(), "1200");
        assert_eq!(n("1.23456").round(3).to_string(), "1.235");
        assert_eq!(n("1.5").round(3).to_string(), "1.500");
        assert_eq!(n("-0.4").round(0).to_string(), "0");
        assert_eq!(n("-1.999").trunc(1).to_string(), "-1.9");
        assert_eq!(n("-0.5").ceil_floor(true).to_string(), "0");
        assert_eq!(n("-0.5").ceil_floor(false).to_string(), "-1");
        assert_eq!(n("-2.5").sign().to_string(), "-1");
        assert_eq!(n("999.5").apply_typmod(3, 0).unwrap_err().message, "numeric field overflow");
        assert_eq!(n("998.5").apply_typmod(3, 0).unwrap().to_string(), "999");
        assert_eq!(n("12.345").apply_typmod(4, 2).unwrap().to_string(), "12.35");
        assert_eq!(n("0.5").apply_typmod(1, 1).unwrap().to_string(), "0.5");
        assert!(n("inf").apply_typmod(5, 2).unwrap_err().detail.unwrap().contains("infinite"));
    }

    #[test]
    fn sqrt_and_power_match_postgres() {
        assert_eq!(n("0").sqrt().unwrap().to_string(), "0.000000000000000");
        assert_eq!(n("2").sqrt().unwrap().to_string(), "1.414213562373095");
        assert_eq!(n("100").sqrt().unwrap().to_string(), "10.000000000000000");
        assert_eq!(n("0.0001").sqrt().unwrap().to_string(), "0.01000000000000000");
        assert_eq!(n("12345678.9").sqrt().unwrap().to_string(), "3513.6418286444622");
        assert_eq!(n("-1").sqrt().unwrap_err().code, SqlState::INVALID_ARGUMENT_FOR_POWER_FUNCTION);
        assert_eq!(n("2.5").power(&n("0")).unwrap().to_string(), "1.0000000000000000");
        assert_eq!(n("2.5").power(&n("2")).unwrap().to_string(), "6.2500000000000000");
        assert_eq!(n("2.5").power(&n("-1")).unwrap().to_string(), "0.4000000000000000");
        assert_eq!(n("2").power(&n("10")).unwrap().to_string(), "1024.0000000000000000");
        assert_eq!(n("1.1").power(&n("-3")).unwrap().to_string(), "0.7513148009015778");
        assert_eq!(n("2.50").power(&n("2.0")).unwrap().to_string(), "6.2500000000000000");
        assert_eq!(n("0").power(&n("-1")).unwrap_err().code, SqlState::INVALID_ARGUMENT_FOR_POWER_FUNCTION);
        assert_eq!(n("2").power(&n("0.5")).unwrap_err().code, SqlState::FEATURE_NOT_SUPPORTED);
        // The bounded-precision path agrees with the exact one where both apply.
        assert_eq!(n("1.0001").power(&n("3000")).unwrap().to_string(), "1.3498385611954852");
        assert_eq!(n("1.0001").power(&n("30000")).unwrap().to_string(), "20.0825245194103658");
        assert_eq!(n("1.0001").power(&n("-30000")).unwrap().to_string(), "0.0497945364903436");
        assert_eq!(n("0.99").power(&n("100000")).unwrap().to_string(), "0.0000000000000000");
        assert_eq!(n("3").power(&n("-40")).unwrap().to_string(), "0.0000000000000000");
    }

    #[test]
    fn floats_convert_like_postgres() {
        assert_eq!(Numeric::from_f64(0.1, 15).to_string(), "0.1");
        assert_eq!(Numeric::from_f64(1e20, 15).to_string(), "100000000000000000000");
        assert_eq!(Numeric::from_f64(1.5e-5, 15).to_string(), "0.000015");
        assert_eq!(Numeric::from_f64(0.1f32 as f64, 6).to_string(), "0.1");
        assert_eq!(Numeric::from_f64(std::f64::consts::PI, 15).to_string(), "3.14159265358979");
        assert_eq!(n("0.1").to_f64(), 0.1);
        assert_eq!(n("1.5").to_f64_exact(), Some(1.5));
        assert_eq!(n("-30.00").to_f64_exact(), Some(-30.0));
        assert_eq!(n("0.1").to_f64_exact(), None);
        assert_eq!(n("9007199254740993").to_f64_exact(), None);
        assert_eq!(n("0.0009765625").to_f64_exact(), Some(0.0009765625));
        assert_eq!(n("2.5").to_i64(i32::MIN as i64, i32::MAX as i64, "integer").unwrap(), 3);
        assert_eq!(n("-2.5").to_i64(i32::MIN as i64, i32::MAX as i64, "integer").unwrap(), -3);
        assert_eq!(
            n("99999999999999999999").to_i64(i64::MIN, i64::MAX, "bigint").unwrap_err().message,
            "bigint out of range"
        );
        assert_eq!(n("NaN").to_i64(i64::MIN, i64::MAX, "integer").unwrap_err().code, SqlState::FEATURE_NOT_SUPPORTED);
    }

    #[test]
    fn text_order_is_numeric_order() {
        let sorted = [
            "-Infinity",
            "-100",
            "-99.5",
            "-1.10",
            "-1.1",
            "-1",
            "-0.001",
            "0",
            "0.00",
            "0.001",
            "0.1",
            "1",
            "1.0",
            "1.10",
            "9",
            "10",
            "10.5",
            "100",
            "Infinity",
            "NaN",
        ];
        for a in sorted {
            for b in sorted {
                assert_eq!(cmp_text(a.as_bytes(), b.as_bytes()), n(a).cmp(&n(b)), "{a} vs {b}");
            }
        }
        assert_eq!(cmp_text(b"1.10", b"1.1"), Ordering::Equal);
        assert_eq!(cmp_text(b"0.00", b"0"), Ordering::Equal);
        assert_eq!(cmp_text(b"junk", b"NaN"), Ordering::Greater);
    }

    #[test]
    fn binary_matches_postgres() {
        assert_eq!(n("1234.50").to_pg_binary(), vec![0, 2, 0, 0, 0, 0, 0, 2, 0x04, 0xD2, 0x13, 0x88]);
        assert_eq!(n("0.00").to_pg_binary(), vec![0, 0, 0, 0, 0, 0, 0, 2]);
        assert_eq!(n("-0.0001").to_pg_binary(), vec![0, 1, 0xFF, 0xFF, 0x40, 0, 0, 4, 0, 1]);
        assert_eq!(n("10000").to_pg_binary(), vec![0, 1, 0, 1, 0, 0, 0, 0, 0, 1]);
        assert_eq!(n("NaN").to_pg_binary(), vec![0, 0, 0, 0, 0xC0, 0, 0, 0]);
        assert_eq!(n("-Infinity").to_pg_binary(), vec![0, 0, 0, 0, 0xF0, 0, 0, 32]);
        for s in
            ["0", "1.10", "-123456789012345678901234567890.000000001", "0.00001", "99999999", "Infinity", "-Infinity"]
        {
            let back = Numeric::from_pg_binary(&n(s).to_pg_binary()).unwrap();
            assert_eq!(back.to_string(), n(s).to_string(), "{s}");
        }
        assert!(Numeric::from_pg_binary(&[0, 1, 0, 0, 0, 0, 0, 0, 0x27, 0x10]).is_none(), "digit 10000");
        assert!(Numeric::from_pg_binary(&[0, 1, 0, 0]).is_none());
    }
}
