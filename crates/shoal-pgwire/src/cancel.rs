//! Cancel requests: `(pid, secret key)` → the session's [`Canceller`].
//!
//! PostgreSQL cancels a running statement through a *second* connection that
//! sends only a CancelRequest carrying the BackendKeyData the first
//! connection received at startup. The registry maps those keys to the
//! session's canceller; a [`CancelGuard`] removes the entry when its
//! connection ends, so a stale key can never reach a later session.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use pgwire::messages::startup::SecretKey;

use crate::backend::Canceller;

/// All cancellable connections of one listener.
pub(crate) struct CancelRegistry {
    next_pid: AtomicI32,
    /// Keyed SipHash with process-random keys: an unpredictable secret per
    /// connection without a dependency on a random number crate.
    secrets: RandomState,
    entries: Mutex<HashMap<i32, (i32, Canceller)>>,
}

impl CancelRegistry {
    pub(crate) fn new() -> CancelRegistry {
        let secrets = RandomState::new();
        // Start pids somewhere unpredictable but positive, like real pids.
        let first_pid = 10_000 + (secrets.hash_one("pid") % 1_000_000) as i32;
        CancelRegistry { next_pid: AtomicI32::new(first_pid), secrets, entries: Mutex::new(HashMap::new()) }
    }

    /// Registers a session; returns its pid, secret key and the guard that
    /// unregisters it.
    pub(crate) fn register(self: &Arc<Self>, canceller: Canceller) -> (i32, i32, CancelGuard) {
        let pid = self.next_pid.fetch_add(1, Ordering::Relaxed).max(1);
        let secret = self.secrets.hash_one(pid) as i32;
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).insert(pid, (secret, canceller));
        (pid, secret, CancelGuard { registry: self.clone(), pid })
    }

    /// Invokes the canceller of `pid` if `key` matches; a wrong key is
    /// silently ignored, as PostgreSQL does.
    pub(crate) fn cancel(&self, pid: i32, key: &SecretKey) -> bool {
        let canceller = {
            let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            match (entries.get(&pid), key.as_i32()) {
                (Some((secret, canceller)), Some(k)) if *secret == k => Some(canceller.clone()),
                _ => None,
            }
        };
        // Called outside the lock: a canceller may take its own locks.
        match canceller {
            Some(c) => {
                c();
                true
            }
            None => false,
        }
    }
}

/// Removes a connection's entry when the connection ends.
pub(crate) struct CancelGuard {
    registry: Arc<CancelRegistry>,
    pid: i32,
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        self.registry.entries.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.pid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn cancel_needs_the_right_key_and_a_live_guard() {
        let registry = Arc::new(CancelRegistry::new());
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        let (pid, secret, guard) = registry.register(Arc::new(move || {
            h.fetch_add(1, Ordering::SeqCst);
        }));
        assert!(!registry.cancel(pid, &SecretKey::I32(secret.wrapping_add(1))));
        assert!(registry.cancel(pid, &SecretKey::I32(secret)));
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        drop(guard);
        assert!(!registry.cancel(pid, &SecretKey::I32(secret)));
        let (pid2, _, _g) = registry.register(Arc::new(|| {}));
        assert_ne!(pid, pid2);
    }
}
