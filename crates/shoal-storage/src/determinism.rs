//! Pinning every source of non-determinism in SQLite to the log entry.
//!
//! Followers re-execute the statements the leader executed, so anything that
//! reads the clock or a random number generator must return on every replica
//! what it returned on the leader. A text rewrite of the SQL cannot see all of
//! them (a column `DEFAULT CURRENT_TIMESTAMP`, `datetime('now')` inside a
//! view or trigger), so Shoal pins them below the SQL:
//!
//! * **Time.** SQLite asks its VFS for the current time
//!   (`xCurrentTimeInt64`) for `'now'`, `CURRENT_TIMESTAMP`, `CURRENT_DATE`
//!   and `CURRENT_TIME`. Connections are opened on the `shoal` VFS, a copy of
//!   the default VFS whose clock reads the transaction timestamp of the
//!   statement running on the current thread.
//! * **Randomness.** `random()` and `randomblob()` are overridden, and
//!   `shoal_random()` (PostgreSQL's `random()`, a double in [0, 1)) and
//!   `gen_random_uuid()` added, all drawing from a per-statement generator
//!   seeded from the transaction seed and the statement's number
//!   ([`ExecContext::statement_seed`]).
//! * `shoal_now()` returns the transaction timestamp with microseconds, which
//!   is what PostgreSQL's `now()` means.
//!
//! The context is thread-local and installed for the duration of one
//! statement by [`StatementScope`]; SQLite runs a statement synchronously on
//! the calling thread, so the VFS callback and the functions see it.

use std::cell::Cell;
use std::ffi::{c_int, CStr};
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Once;

use rusqlite::ffi;
use rusqlite::functions::FunctionFlags;
use rusqlite::Connection;
use shoal_common::ExecContext;

/// Name of the VFS that reads the pinned clock.
pub const VFS_NAME: &str = "shoal";
const VFS_NAME_C: &CStr = c"shoal";

thread_local! {
    static NOW_MICROS: Cell<Option<i64>> = const { Cell::new(None) };
    static RNG_STATE: Cell<u64> = const { Cell::new(0x853c_49e6_748f_ea9b) };
}

static ORIGINAL_VFS: AtomicPtr<ffi::sqlite3_vfs> = AtomicPtr::new(std::ptr::null_mut());
static REGISTER: Once = Once::new();

/// Installs the statement's execution context on this thread until dropped.
pub struct StatementScope {
    previous_now: Option<i64>,
    previous_rng: u64,
}

impl StatementScope {
    /// Enters the context of statement number `statement` of a transaction.
    pub fn enter(ctx: &ExecContext, statement: u32) -> StatementScope {
        let previous_now = NOW_MICROS.with(|c| c.replace(Some(ctx.timestamp_micros)));
        let previous_rng = RNG_STATE.with(|c| c.replace(ctx.statement_seed(statement)));
        StatementScope { previous_now, previous_rng }
    }
}

impl Drop for StatementScope {
    fn drop(&mut self) {
        NOW_MICROS.with(|c| c.set(self.previous_now));
        RNG_STATE.with(|c| c.set(self.previous_rng));
    }
}

/// The pinned time of the running statement, or the wall clock outside one.
pub fn current_micros() -> i64 {
    NOW_MICROS.with(|c| c.get()).unwrap_or_else(|| ExecContext::now(0).timestamp_micros)
}

/// Next value of the thread's generator (SplitMix64).
fn next_random() -> u64 {
    RNG_STATE.with(|c| {
        let state = c.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        c.set(state);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    })
}

/// Julian day in milliseconds at the Unix epoch (SQLite's clock unit).
const UNIX_EPOCH_JULIAN_MS: i64 = 210_866_760_000_000;

unsafe extern "C" fn pinned_current_time_int64(vfs: *mut ffi::sqlite3_vfs, out: *mut i64) -> c_int {
    if let Some(micros) = NOW_MICROS.with(|c| c.get()) {
        // SAFETY: SQLite passes a valid pointer to an i64 it owns.
        unsafe { *out = UNIX_EPOCH_JULIAN_MS + micros.div_euclid(1000) };
        return ffi::SQLITE_OK;
    }
    let original = ORIGINAL_VFS.load(Ordering::Acquire);
    // SAFETY: `original` is the default VFS found at registration; it lives for the process.
    unsafe {
        match (*original).xCurrentTimeInt64 {
            Some(f) => f(original, out),
            None => {
                let _ = vfs;
                *out = UNIX_EPOCH_JULIAN_MS + ExecContext::now(0).timestamp_micros / 1000;
                ffi::SQLITE_OK
            }
        }
    }
}

unsafe extern "C" fn pinned_current_time(vfs: *mut ffi::sqlite3_vfs, out: *mut f64) -> c_int {
    let mut ms = 0i64;
    // SAFETY: forwards SQLite's own pointers.
    let rc = unsafe { pinned_current_time_int64(vfs, &mut ms) };
    // SAFETY: SQLite passes a valid pointer to a double it owns.
    unsafe { *out = ms as f64 / 86_400_000.0 };
    rc
}

/// Registers the `shoal` VFS once per process.
pub fn register_vfs() {
    REGISTER.call_once(|| {
        // SAFETY: sqlite3_vfs_find(NULL) returns the default VFS, which is
        // static for the life of the process. We copy it (keeping its
        // pAppData, which the unix VFS relies on), replace only the clock, and
        // leak the copy: SQLite keeps the pointer forever.
        unsafe {
            let original = ffi::sqlite3_vfs_find(std::ptr::null());
            if original.is_null() {
                return;
            }
            ORIGINAL_VFS.store(original, Ordering::Release);
            let mut copy: ffi::sqlite3_vfs = std::ptr::read(original);
            copy.zName = VFS_NAME_C.as_ptr();
            copy.pNext = std::ptr::null_mut();
            copy.xCurrentTime = Some(pinned_current_time);
            if copy.iVersion >= 2 {
                copy.xCurrentTimeInt64 = Some(pinned_current_time_int64);
            }
            let leaked = Box::into_raw(Box::new(copy));
            ffi::sqlite3_vfs_register(leaked, 0);
        }
    });
}

/// Formats microseconds since the epoch as `YYYY-MM-DD HH:MM:SS.ffffff` (UTC).
pub fn format_timestamp_micros(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    let (y, m, d) = shoal_common::convert::civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{frac:06}", tod / 3600, (tod / 60) % 60, tod % 60)
}

/// Formats 16 random bytes as a version-4 UUID.
fn uuid_v4(hi: u64, lo: u64) -> String {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&hi.to_be_bytes());
    b[8..].copy_from_slice(&lo.to_be_bytes());
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

/// Registers the pinned functions on a connection.
pub fn register_functions(conn: &Connection) -> rusqlite::Result<()> {
    // Not SQLITE_DETERMINISTIC: they must be evaluated per row, but they are
    // deterministic *given the statement scope*, which is all replay needs.
    let flags = FunctionFlags::SQLITE_UTF8;
    conn.create_scalar_function("random", 0, flags, |_| Ok(next_random() as i64))?;
    conn.create_scalar_function("randomblob", 1, flags, |ctx| {
        let n = ctx.get::<i64>(0).unwrap_or(1).clamp(1, 1 << 20) as usize;
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            out.extend_from_slice(&next_random().to_le_bytes());
        }
        out.truncate(n);
        Ok(out)
    })?;
    conn.create_scalar_function("shoal_random", 0, flags, |_| Ok((next_random() >> 11) as f64 / (1u64 << 53) as f64))?;
    conn.create_scalar_function("gen_random_uuid", 0, flags, |_| Ok(uuid_v4(next_random(), next_random())))?;
    conn.create_scalar_function("shoal_now", 0, flags, |_| Ok(format_timestamp_micros(current_micros())))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_timestamps() {
        assert_eq!(format_timestamp_micros(0), "1970-01-01 00:00:00.000000");
        assert_eq!(format_timestamp_micros(951_827_696_123_456), "2000-02-29 12:34:56.123456");
        assert_eq!(format_timestamp_micros(-1), "1969-12-31 23:59:59.999999");
    }

    #[test]
    fn uuid_has_version_and_variant() {
        let u = uuid_v4(u64::MAX, 0);
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_eq!(&u[19..20], "8");
    }

    #[test]
    fn vfs_clock_and_functions_follow_the_scope() {
        register_vfs();
        let conn = Connection::open_with_flags_and_vfs(
            ":memory:",
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_CREATE,
            VFS_NAME,
        )
        .unwrap();
        register_functions(&conn).unwrap();
        let ctx = ExecContext { timestamp_micros: 951_827_696_123_456, seed: 42 };
        let query =
            "SELECT datetime('now'), CURRENT_TIMESTAMP, shoal_now(), random(), hex(randomblob(4)), gen_random_uuid()";
        let run = || {
            let _scope = StatementScope::enter(&ctx, 3);
            conn.query_row(query, [], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                ))
            })
            .unwrap()
        };
        let first = run();
        assert_eq!(first.0, "2000-02-29 12:34:56");
        assert_eq!(first.1, "2000-02-29 12:34:56");
        assert_eq!(first.2, "2000-02-29 12:34:56.123456");
        assert_eq!(first, run(), "same scope must give the same values");
    }
}
