//! Stopping a session's running statement, wherever it runs.
//!
//! A cancel request (pgwire CancelRequest) or the session's
//! `statement_timeout` calls [`CancelState::cancel`]. What that does depends
//! on where the statement is, which the statement registers while it runs
//! ([`CancelState::register`]):
//!
//! ```text
//!  autocommit read, read in a transaction ─▶ interrupt its pooled read connection
//!  write on this node's writer (batched or in a transaction) ─▶ set its StatementCancel
//!  wait for the write slot (queued write, BEGIN's first write) ─▶ set its StatementCancel,
//!                                    which the wait races: it gives up at once
//!  wait for a read index ─▶ abandon the wait (CancelState::interruptible)
//!  statement forwarded to the leader ─▶ Call::CancelForwarded / Call::Cancel to the leader,
//!                                    which sets the StatementCancel there
//! ```
//!
//! **No cancel is lost on the way to the leader.** A cancel can reach the
//! leader before the statement it names: a transaction's statements are
//! numbered in order, so the leader remembers the highest number cancelled
//! and a statement at or below it fails on arrival; an autocommit write or
//! a BEGIN is named by a random id, so the origin sends the cancel where
//! it sent the statement, again until that node (or the leader it passed
//! the statement to) answers that it holds it, or the statement's call has
//! ended (`cluster::forwarded_stopper`).
//!
//! A cancel that arrives while nothing is registered (the statement is
//! between phases, about to be sent) is kept until the statement ends, so
//! the next registration fails at once with 57014;
//! [`CancelState::start_statement`] forgets it when a new statement begins.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shoal_common::{Error, Result, SqlState};
use shoal_storage::StatementCancel;

/// Why a statement was cancelled; decides the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelReason {
    User,
    Timeout,
}

/// Stops whatever the registered statement is running.
pub type Stopper = Arc<dyn Fn() + Send + Sync>;

#[derive(Default)]
struct Inner {
    /// Bumped by each statement; a stopper registered by an earlier one is stale.
    statement: u64,
    stopper: Option<Stopper>,
    cancelled: Option<CancelReason>,
    timer: Option<tokio::task::JoinHandle<()>>,
}

/// One session's cancel state; see the module docs.
#[derive(Default)]
pub struct CancelState {
    inner: Mutex<Inner>,
}

impl CancelState {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new statement starts: earlier cancels are forgotten, and with a
    /// `timeout` the statement is cancelled once it has run that long.
    pub fn start_statement(self: &Arc<Self>, timeout: Option<Duration>) {
        let mut inner = self.lock();
        inner.statement += 1;
        inner.stopper = None;
        inner.cancelled = None;
        if let Some(timer) = inner.timer.take() {
            timer.abort();
        }
        if let (Some(timeout), Ok(runtime)) = (timeout, tokio::runtime::Handle::try_current()) {
            let state = Arc::downgrade(self);
            let statement = inner.statement;
            inner.timer = Some(runtime.spawn(async move {
                tokio::time::sleep(timeout).await;
                if let Some(state) = state.upgrade() {
                    state.cancel_statement(statement, CancelReason::Timeout);
                }
            }));
        }
    }

    /// The statement ended: stops its timer.
    pub fn end_statement(&self) {
        let mut inner = self.lock();
        inner.stopper = None;
        if let Some(timer) = inner.timer.take() {
            timer.abort();
        }
    }

    /// Cancels the running statement (a cancel request).
    pub fn cancel(&self, reason: CancelReason) {
        let statement = self.lock().statement;
        self.cancel_statement(statement, reason);
    }

    fn cancel_statement(&self, statement: u64, reason: CancelReason) {
        let mut inner = self.lock();
        if inner.statement != statement || inner.cancelled.is_some() {
            return;
        }
        inner.cancelled = Some(reason);
        // Called under the lock, so a phase that has unregistered (its read
        // connection back in the pool) is never stopped late. Stoppers only
        // set a flag, interrupt SQLite or spawn a task: none blocks.
        if let Some(stop) = &inner.stopper {
            stop();
        }
    }

    /// Why the current statement was cancelled, if it was.
    pub fn reason(&self) -> Option<CancelReason> {
        self.lock().cancelled
    }

    /// Registers how to stop the statement's current phase until the guard
    /// drops. Fails with 57014 when the statement was already cancelled.
    pub fn register(&self, stop: Stopper) -> Result<Registration<'_>> {
        let mut inner = self.lock();
        if inner.cancelled.is_some() {
            return Err(canceled(inner.cancelled));
        }
        inner.stopper = Some(stop);
        Ok(Registration { state: self, statement: inner.statement })
    }

    /// A fresh statement flag (`shoal_storage::cancel`) that a cancel of
    /// this statement sets, registered until the guard drops: for a phase
    /// that runs on this node.
    pub fn register_flag(&self) -> Result<(StatementCancel, Registration<'_>)> {
        let flag = StatementCancel::new();
        let stop = flag.clone();
        let registered = self.register(Arc::new(move || {
            stop.cancel();
        }))?;
        Ok((flag, registered))
    }

    /// Runs `wait` until it ends or the statement is cancelled; a cancel
    /// abandons it and fails with 57014. Only for waits that are safe to
    /// drop midway, i.e. have no effect of their own (a read index, a
    /// replica catching up). `wait` must not register a stopper itself.
    pub async fn interruptible<T>(&self, wait: impl Future<Output = Result<T>>) -> Result<T> {
        let (flag, _registered) = self.register_flag()?;
        tokio::select! {
            biased;
            done = wait => done,
            () = flag.cancelled() => Err(canceled(self.reason())),
        }
    }
}

/// Unregisters a stopper when its phase ends.
pub struct Registration<'a> {
    state: &'a CancelState,
    statement: u64,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut inner = self.state.lock();
        if inner.statement == self.statement {
            inner.stopper = None;
        }
    }
}

/// The error of a cancelled statement, worded as PostgreSQL words it.
pub fn canceled(reason: Option<CancelReason>) -> Error {
    let message = match reason {
        Some(CancelReason::Timeout) => "canceling statement due to statement timeout",
        _ => "canceling statement due to user request",
    };
    Error::environment(SqlState::QUERY_CANCELED, message)
}

/// Parses a time setting in milliseconds as PostgreSQL's `parse_int` does
/// (`statement_timeout`, `lock_timeout`,
/// `idle_in_transaction_session_timeout`): a C integer (decimal, `0x` hex,
/// `0` octal) or decimal number, an optional unit (`us`, `ms`, `s`, `min`,
/// `h`, `d`; none means milliseconds), a fraction rounded to the next
/// smaller unit and then to whole milliseconds (ties to even, like `rint`),
/// within 0 .. 2147483647. Returns the value and its text for `SHOW`.
pub fn parse_ms_setting(name: &str, text: &str) -> Result<(u64, String)> {
    let invalid =
        || Error::new(SqlState::INVALID_PARAMETER_VALUE, format!("invalid value for parameter \"{name}\": \"{text}\""));
    let s = text.trim_start_matches(is_c_space);
    let (used, integer) = strtol(s);
    let (value, rest) = match integer {
        Some(v) if !s[used..].starts_with(['.', 'e', 'E']) => {
            if used == 0 {
                return Err(invalid());
            }
            (v as f64, &s[used..])
        }
        // A fraction, an exponent or too many digits: read it as a double.
        _ => match strtod(s) {
            Some((used, v)) if !v.is_nan() => (v, &s[used..]),
            _ => return Err(invalid()),
        },
    };
    let rest = rest.trim_start_matches(is_c_space);
    let mut ms = value;
    if !rest.is_empty() {
        let unit_hint = || {
            invalid().with_hint("Valid units for this parameter are \"us\", \"ms\", \"s\", \"min\", \"h\", and \"d\".")
        };
        let unit: String = rest.chars().take_while(|c| !is_c_space(*c)).take(3).collect();
        if !rest[unit.len()..].trim_start_matches(is_c_space).is_empty() {
            return Err(unit_hint());
        }
        // (unit, milliseconds, the next smaller unit's milliseconds)
        const UNITS: [(&str, f64, Option<f64>); 6] = [
            ("d", 86_400_000.0, Some(3_600_000.0)),
            ("h", 3_600_000.0, Some(60_000.0)),
            ("min", 60_000.0, Some(1_000.0)),
            ("s", 1_000.0, Some(1.0)),
            ("ms", 1.0, Some(0.001)),
            ("us", 0.001, None),
        ];
        let (_, size, smaller) = UNITS.iter().find(|(u, _, _)| *u == unit).ok_or_else(unit_hint)?;
        ms = value * size;
        if let Some(smaller) = smaller {
            ms = (ms / smaller).round_ties_even() * smaller;
        }
    }
    let ms = ms.round_ties_even();
    if !(f64::from(i32::MIN)..=f64::from(i32::MAX)).contains(&ms) {
        return Err(invalid().with_hint("Value exceeds integer range."));
    }
    if ms < 0.0 {
        return Err(Error::new(
            SqlState::INVALID_PARAMETER_VALUE,
            format!("{ms} ms is outside the valid range for parameter \"{name}\" (0 .. 2147483647)"),
        ));
    }
    let ms = ms as u64;
    Ok((ms, format_ms(ms)))
}

/// C's `isspace` in the "C" locale.
fn is_c_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

/// C's `strtol(s, &end, 0)`: the bytes used and the value (`None` on
/// overflow). No digits: `(0, Some(0))`.
fn strtol(s: &str) -> (usize, Option<i64>) {
    let b = s.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let negative = b.first() == Some(&b'-');
    let radix = if b.get(i) == Some(&b'0')
        && matches!(b.get(i + 1), Some(b'x' | b'X'))
        && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
    {
        i += 2;
        16
    } else if b.get(i) == Some(&b'0') {
        8
    } else {
        10
    };
    let start = i;
    while b.get(i).is_some_and(|c| (*c as char).is_digit(radix)) {
        i += 1;
    }
    if i == start {
        return (0, Some(0));
    }
    let value = i64::from_str_radix(&s[start..i], radix).ok().map(|v| if negative { -v } else { v });
    (i, value)
}

/// C's `strtod` for decimal numbers: the bytes used and the value, or
/// `None` when no number starts `s`.
fn strtod(s: &str) -> Option<(usize, f64)> {
    let b = s.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let lower = s[i..].to_ascii_lowercase();
    for word in ["infinity", "inf", "nan"] {
        if lower.starts_with(word) {
            let v = if word == "nan" { f64::NAN } else { f64::INFINITY };
            return Some((i + word.len(), if b.first() == Some(&b'-') { -v } else { v }));
        }
    }
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    let mut count = digits(&mut i);
    if b.get(i) == Some(&b'.') {
        i += 1;
        count += digits(&mut i);
    }
    if count == 0 {
        return None;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1 + usize::from(matches!(b.get(i + 1), Some(b'+' | b'-')));
        if digits(&mut j) > 0 {
            i = j;
        }
    }
    s[..i].parse().ok().map(|v| (i, v))
}

/// A millisecond value as PostgreSQL shows it: in the largest unit that
/// divides it exactly.
fn format_ms(ms: u64) -> String {
    if ms == 0 {
        return "0".into();
    }
    for (unit, size) in [("d", 86_400_000), ("h", 3_600_000), ("min", 60_000), ("s", 1_000)] {
        if ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn time_settings_parse_like_postgres() {
        // Each answer was checked against PostgreSQL 15 (SET, then SHOW).
        let ok = |t: &str| parse_ms_setting("statement_timeout", t).map(|(_, shown)| shown).unwrap();
        for (text, shown) in [
            ("0", "0"),
            ("5000", "5s"),
            ("1500", "1500ms"),
            ("100ms", "100ms"),
            ("100 ms", "100ms"),
            ("5s", "5s"),
            ("1min", "1min"),
            (" 2 h", "2h"),
            ("120min", "2h"),
            ("1d", "1d"),
            ("24d", "24d"),
            ("1.5s", "1500ms"),
            ("1.2345s", "1234ms"),
            ("1.5", "2ms"),
            ("2.5", "2ms"),
            ("0.5", "0"),
            ("0.6", "1ms"),
            ("10us", "0"),
            ("-0.4", "0"),
            ("0x10", "16ms"),
            ("010", "8ms"),
            ("+5", "5ms"),
            (".5s", "500ms"),
            ("5.", "5ms"),
            ("1e3", "1s"),
            ("1e-3s", "1ms"),
            ("2147483647", "2147483647ms"),
        ] {
            assert_eq!(ok(text), shown, "{text}");
        }
        let err = |t: &str| parse_ms_setting("statement_timeout", t).unwrap_err();
        let units = "Valid units for this parameter are \"us\", \"ms\", \"s\", \"min\", \"h\", and \"d\".";
        let range = "Value exceeds integer range.";
        for (text, hint) in [
            ("abc", None),
            ("", None),
            ("true", None),
            ("NaN", None),
            ("5 parsecs", Some(units)),
            ("5S", Some(units)),
            ("5s x", Some(units)),
            ("1e", Some(units)),
            ("2147483648", Some(range)),
            ("3000000000", Some(range)),
            ("1e10", Some(range)),
            ("25d", Some(range)),
        ] {
            let e = err(text);
            assert_eq!(e.code, SqlState::INVALID_PARAMETER_VALUE, "{text}");
            assert_eq!(e.message, format!("invalid value for parameter \"statement_timeout\": \"{text}\""));
            assert_eq!(e.hint.as_deref(), hint, "{text}");
        }
        assert_eq!(
            err("-5s").message,
            "-5000 ms is outside the valid range for parameter \"statement_timeout\" (0 .. 2147483647)"
        );
    }

    #[tokio::test]
    async fn a_cancel_stops_the_registered_phase_or_the_next_one() {
        let state = Arc::new(CancelState::default());
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        state.start_statement(None);
        let guard = state.register(Arc::new(move || {
            h.fetch_add(1, Ordering::SeqCst);
        }));
        state.cancel(CancelReason::User);
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        drop(guard);
        // Between phases the cancel is kept: the next phase fails at once.
        let err = state.register(Arc::new(|| {})).err().unwrap();
        assert_eq!(err.message, "canceling statement due to user request");
        // A new statement forgets it.
        state.start_statement(None);
        assert!(state.register(Arc::new(|| {})).is_ok());
    }

    #[tokio::test]
    async fn a_cancel_abandons_an_interruptible_wait() {
        let state = Arc::new(CancelState::default());
        state.start_statement(Some(Duration::from_millis(20)));
        let forever = std::future::pending::<Result<()>>();
        let err = tokio::time::timeout(Duration::from_secs(5), state.interruptible(forever))
            .await
            .expect("the timeout ended the wait")
            .unwrap_err();
        assert_eq!(err.message, "canceling statement due to statement timeout");
        // A wait that ends first is not disturbed; a cancel before the wait means no wait at all.
        state.start_statement(None);
        assert_eq!(state.interruptible(async { Ok(7) }).await.unwrap(), 7);
        state.cancel(CancelReason::User);
        let err = state.interruptible(async { Ok(8) }).await.unwrap_err();
        assert_eq!(err.message, "canceling statement due to user request", "already cancelled: never waits");
    }

    #[tokio::test]
    async fn statement_timeout_fires_only_for_its_statement() {
        let state = Arc::new(CancelState::default());
        state.start_statement(Some(Duration::from_millis(20)));
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert_eq!(state.reason(), Some(CancelReason::Timeout));
        state.start_statement(Some(Duration::from_millis(20)));
        state.end_statement();
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert_eq!(state.reason(), None, "an ended statement's timer is stopped");
    }
}
