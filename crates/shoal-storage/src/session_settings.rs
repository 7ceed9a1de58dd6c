//! The session's settings, visible to `current_setting()` in reads.
//!
//! A session's settings live in the server, not in SQLite. For the duration
//! of a read, the server installs them on the executing thread
//! ([`SettingsScope`]), and `shoal_session_setting(name)` returns the value
//! (NULL when no scope is installed or the name is not set there; the SQL
//! then falls back to the static `pg_settings`). Writes and replay never
//! install a scope, so a write that reads a setting sees the same static
//! value on every replica — session state cannot make replicas diverge.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;

use rusqlite::functions::FunctionFlags;
use rusqlite::types::Value;
use rusqlite::{Connection, Result};

/// A session's settings: names (lower case) to values.
pub type Settings = Arc<BTreeMap<String, String>>;

thread_local! {
    static CURRENT: RefCell<Option<Settings>> = const { RefCell::new(None) };
}

/// Installs `settings` on this thread until dropped.
pub struct SettingsScope {
    previous: Option<Settings>,
}

impl SettingsScope {
    pub fn enter(settings: Settings) -> SettingsScope {
        SettingsScope { previous: CURRENT.with(|c| c.replace(Some(settings))) }
    }
}

impl Drop for SettingsScope {
    fn drop(&mut self) {
        let previous = self.previous.take();
        CURRENT.with(|c| *c.borrow_mut() = previous);
    }
}

/// Registers `shoal_session_setting(name)` on `conn`.
pub fn register(conn: &Connection) -> Result<()> {
    // Not deterministic: it reads the installed scope.
    conn.create_scalar_function("shoal_session_setting", 1, FunctionFlags::SQLITE_UTF8, |ctx| {
        let name: Option<String> = ctx.get(0)?;
        let Some(name) = name else { return Ok(Value::Null) };
        let name = name.to_ascii_lowercase();
        Ok(CURRENT
            .with(|c| c.borrow().as_ref().and_then(|s| s.get(&name).cloned()).map(Value::Text).unwrap_or(Value::Null)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_seen_only_inside_a_scope() {
        let conn = Connection::open_in_memory().unwrap();
        register(&conn).unwrap();
        let read = |conn: &Connection| -> Option<String> {
            conn.query_row("SELECT shoal_session_setting('Shoal.Route_Hint')", [], |r| r.get(0)).unwrap()
        };
        assert_eq!(read(&conn), None);
        let settings: Settings = Arc::new(BTreeMap::from([("shoal.route_hint".to_string(), "users:7".to_string())]));
        {
            let _scope = SettingsScope::enter(settings);
            assert_eq!(read(&conn).as_deref(), Some("users:7"));
        }
        assert_eq!(read(&conn), None, "the scope ends with its guard");
    }
}
