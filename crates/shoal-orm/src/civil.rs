//! Dates, timestamps, decimals and UUIDs as the backends exchange them,
//! without depending on chrono, rust_decimal or uuid (those are optional
//! features of the crate; see `types.rs`).
//!
//! ```text
//!   Value::Date(days since 1970-01-01)          ⇄ "2024-02-29"
//!   Value::Timestamp(µs since 1970-01-01 00:00)  ⇄ "2024-02-29 13:45:00.000000"
//!   Value::TimestampTz(µs since the Unix epoch)  ⇄ "2024-02-29 13:45:00.000000+00:00"
//!   Value::Decimal("-12.50")                     (canonical text, exact)
//!   Value::Uuid([u8; 16])                        ⇄ "67e55044-10b1-426f-9247-bb680e5fe0c8"
//! ```
//!
//! Text forms are fixed-width (four-digit years, six fractional digits, a
//! `+00:00` zone), so on SQLite, where they are stored as text, comparing
//! and ordering the text compares and orders the values (years 0–9999).
//! The calendar arithmetic is Howard Hinnant's `days_from_civil`.

use std::fmt::Write as _;

pub(crate) const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Days since 1970-01-01 of a proleptic Gregorian date; `None` when the
/// month or day does not exist.
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> Option<i64> {
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// The date `days` after 1970-01-01.
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => 31,
    }
}

fn push_year(year: i64, out: &mut String) {
    if (0..=9999).contains(&year) {
        let _ = write!(out, "{year:04}");
    } else {
        let _ = write!(out, "{year:+05}");
    }
}

pub(crate) fn format_date(days: i32) -> String {
    let (y, m, d) = civil_from_days(i64::from(days));
    let mut out = String::with_capacity(10);
    push_year(y, &mut out);
    let _ = write!(out, "-{m:02}-{d:02}");
    out
}

/// `YYYY-MM-DD HH:MM:SS.ffffff` (fixed width).
pub(crate) fn format_timestamp(micros: i64) -> String {
    let days = micros.div_euclid(MICROS_PER_DAY);
    let in_day = micros.rem_euclid(MICROS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    let secs = in_day / 1_000_000;
    let mut out = String::with_capacity(26);
    push_year(y, &mut out);
    let _ = write!(
        out,
        "-{m:02}-{d:02} {:02}:{:02}:{:02}.{:06}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        in_day % 1_000_000
    );
    out
}

/// `YYYY-MM-DD HH:MM:SS.ffffff+00:00`: an instant, written in UTC.
pub(crate) fn format_timestamptz(micros: i64) -> String {
    let mut out = format_timestamp(micros);
    out.push_str("+00:00");
    out
}

/// A bounded, checked cursor over ASCII digits.
struct Cursor<'a> {
    s: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn digits(&mut self, min: usize, max: usize) -> Option<(i64, usize)> {
        let start = self.at;
        let mut v: i64 = 0;
        while self.at < self.s.len() && self.at - start < max && self.s[self.at].is_ascii_digit() {
            v = v * 10 + i64::from(self.s[self.at] - b'0');
            self.at += 1;
        }
        let n = self.at - start;
        (n >= min).then_some((v, n))
    }

    fn eat(&mut self, c: u8) -> bool {
        let hit = self.s.get(self.at) == Some(&c);
        self.at += usize::from(hit);
        hit
    }

    fn done(&self) -> bool {
        self.at == self.s.len()
    }
}

fn parse_date_at(c: &mut Cursor<'_>) -> Option<i64> {
    let negative = c.eat(b'-');
    if !negative {
        c.eat(b'+');
    }
    let (y, _) = c.digits(4, 6)?;
    let y = if negative { -y } else { y };
    if !c.eat(b'-') {
        return None;
    }
    let (m, _) = c.digits(2, 2)?;
    if !c.eat(b'-') {
        return None;
    }
    let (d, _) = c.digits(2, 2)?;
    days_from_civil(y, m as u32, d as u32)
}

/// `YYYY-MM-DD` → days since 1970-01-01.
pub(crate) fn parse_date(text: &str) -> Option<i32> {
    let mut c = Cursor { s: text.trim().as_bytes(), at: 0 };
    let days = parse_date_at(&mut c)?;
    c.done().then_some(())?;
    i32::try_from(days).ok()
}

/// `YYYY-MM-DD[ T]HH:MM[:SS[.fraction]][Z|±HH[:MM]]` → (µs since
/// 1970-01-01 of the wall-clock time, the zone offset in seconds if one was
/// written). Digits past microseconds are dropped.
pub(crate) fn parse_timestamp(text: &str) -> Option<(i64, Option<i64>)> {
    let mut c = Cursor { s: text.trim().as_bytes(), at: 0 };
    let days = parse_date_at(&mut c)?;
    if !(c.eat(b' ') || c.eat(b'T') || c.eat(b't')) {
        // A bare date is midnight.
        return c.done().then_some((days.checked_mul(MICROS_PER_DAY)?, None));
    }
    let (h, _) = c.digits(2, 2)?;
    c.eat(b':').then_some(())?;
    let (mi, _) = c.digits(2, 2)?;
    let mut s = 0;
    let mut micros = 0;
    if c.eat(b':') {
        s = c.digits(2, 2)?.0;
        if c.eat(b'.') {
            let (frac, n) = c.digits(1, 9)?;
            micros = if n <= 6 { frac * 10_i64.pow(6 - n as u32) } else { frac / 10_i64.pow(n as u32 - 6) };
        }
    }
    if h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let offset = if c.eat(b'Z') || c.eat(b'z') {
        Some(0)
    } else if c.s.get(c.at).is_some_and(|b| *b == b'+' || *b == b'-') {
        let sign = if c.eat(b'-') { -1 } else { i64::from(c.eat(b'+')) };
        let (oh, _) = c.digits(2, 2)?;
        c.eat(b':');
        let om = if c.done() { 0 } else { c.digits(2, 2)?.0 };
        Some(sign * (oh * 3600 + om * 60))
    } else {
        None
    };
    c.done().then_some(())?;
    let in_day = ((h * 60 + mi) * 60 + s) * 1_000_000 + micros;
    Some((days.checked_mul(MICROS_PER_DAY)?.checked_add(in_day)?, offset))
}

/// An instant from text: an explicit zone is honoured, none means UTC.
pub(crate) fn parse_timestamptz(text: &str) -> Option<i64> {
    let (local, offset) = parse_timestamp(text)?;
    local.checked_sub(offset.unwrap_or(0).checked_mul(1_000_000)?)
}

/// Canonical decimal text (`-12.50`, `0.001`, `7`), or `None` for anything
/// else (exponents, `NaN`, stray characters). Leading zeros go; the scale
/// (trailing fractional zeros) is kept, as NUMERIC keeps it.
pub(crate) fn canonical_decimal(text: &str) -> Option<String> {
    let t = text.trim();
    let (negative, body) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty() && frac.is_empty() || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let int = int.trim_start_matches('0');
    let zero = int.is_empty() && frac.bytes().all(|b| b == b'0');
    let mut out = String::with_capacity(t.len() + 1);
    if negative && !zero {
        out.push('-');
    }
    out.push_str(if int.is_empty() { "0" } else { int });
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    Some(out)
}

/// Significant digits of canonical decimal text (SQLite keeps 15 exactly).
pub(crate) fn significant_digits(canonical: &str) -> usize {
    let digits: String = canonical.chars().filter(char::is_ascii_digit).collect();
    let trimmed = digits.trim_start_matches('0');
    let trimmed = if canonical.contains('.') { trimmed.trim_end_matches('0') } else { trimmed };
    trimmed.len().max(1)
}

pub(crate) fn format_uuid(bytes: &[u8; 16]) -> String {
    let mut out = String::with_capacity(36);
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// The hyphenated form (any case), with or without braces, or 32 bare hex digits.
pub(crate) fn parse_uuid(text: &str) -> Option<[u8; 16]> {
    let t = text.trim();
    let t = t.strip_prefix('{').and_then(|r| r.strip_suffix('}')).unwrap_or(t);
    let hex: Vec<u8> = match t.len() {
        36 => {
            let b = t.as_bytes();
            if [8, 13, 18, 23].iter().any(|&i| b[i] != b'-') {
                return None;
            }
            b.iter().copied().filter(|c| *c != b'-').collect()
        }
        32 => t.as_bytes().to_vec(),
        _ => return None,
    };
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_round_trips() {
        assert_eq!(days_from_civil(1970, 1, 1), Some(0));
        assert_eq!(days_from_civil(2000, 3, 1), Some(11_017));
        assert_eq!(days_from_civil(2023, 2, 29), None);
        assert_eq!(days_from_civil(2024, 13, 1), None);
        for days in [-800_000, -1, 0, 59, 10_956, 19_782, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), Some(days));
        }
    }

    #[test]
    fn dates_and_timestamps_as_text() {
        assert_eq!(format_date(19_782), "2024-02-29");
        assert_eq!(parse_date("2024-02-29"), Some(19_782));
        assert_eq!(parse_date("2024-02-30"), None);
        assert_eq!(parse_date("24-02-01"), None);
        let t = 19_782 * MICROS_PER_DAY + ((13 * 60 + 45) * 60 + 7) * 1_000_000 + 250;
        assert_eq!(format_timestamp(t), "2024-02-29 13:45:07.000250");
        assert_eq!(format_timestamptz(t), "2024-02-29 13:45:07.000250+00:00");
        assert_eq!(parse_timestamp("2024-02-29 13:45:07.000250"), Some((t, None)));
        assert_eq!(parse_timestamp("2024-02-29T13:45:07.0002509Z"), Some((t, Some(0))));
        assert_eq!(parse_timestamptz("2024-02-29 15:45:07.00025+02:00"), Some(t));
        assert_eq!(parse_timestamp("2024-02-29 13:45"), Some((t - 7_000_250, None)));
        assert_eq!(format_timestamp(-1), "1969-12-31 23:59:59.999999");
        assert_eq!(parse_timestamp("2024-02-29 24:00:00"), None);
        assert_eq!(parse_timestamp("2024-02-29 13:45:07 junk"), None);
        // Text order is value order on SQLite.
        assert!(format_timestamp(t) < format_timestamp(t + 1));
    }

    #[test]
    fn decimals_are_canonical_text() {
        assert_eq!(canonical_decimal("007.50").as_deref(), Some("7.50"));
        assert_eq!(canonical_decimal("-0.00").as_deref(), Some("0.00"));
        assert_eq!(canonical_decimal(".5").as_deref(), Some("0.5"));
        assert_eq!(canonical_decimal("+3").as_deref(), Some("3"));
        for bad in ["", "-", "1e5", "NaN", "1.2.3", "12a"] {
            assert_eq!(canonical_decimal(bad), None, "{bad}");
        }
        assert_eq!(significant_digits("0.00120"), 2);
        assert_eq!(significant_digits("1200"), 4);
        assert_eq!(significant_digits("123456789.123456789"), 18);
    }

    #[test]
    fn uuids_as_text() {
        let text = "67e55044-10b1-426f-9247-bb680e5fe0c8";
        let bytes = parse_uuid(text).unwrap();
        assert_eq!(format_uuid(&bytes), text);
        assert_eq!(parse_uuid("{67E55044-10B1-426F-9247-BB680E5FE0C8}"), Some(bytes));
        assert_eq!(parse_uuid("67e5504410b1426f9247bb680e5fe0c8"), Some(bytes));
        assert_eq!(parse_uuid("67e55044-10b1-426f-9247-bb680e5fe0c"), None);
        assert_eq!(parse_uuid("67e55044_10b1_426f_9247_bb680e5fe0c8"), None);
    }
}
