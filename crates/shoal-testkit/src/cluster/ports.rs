//! Ports for a cluster, taken from a range the caller owns.
//!
//! Tests of this repository each use their own range (e.g. 25000-25999), so
//! parallel test binaries do not collide. Inside one process, ports handed to
//! a live cluster are remembered, so two clusters of one test binary never get
//! the same port even before their servers have bound it. A port is free when
//! a listener can bind it right now.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::sync::Mutex;

use anyhow::{bail, Result};

/// Ports of live leases in this process.
static LEASED: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// Ports taken from `[base, base + count)`, returned when dropped.
pub(crate) struct PortLease {
    next: u32,
    end: u32,
    held: Vec<u16>,
}

impl PortLease {
    pub(crate) fn new(base: u16, count: u16) -> PortLease {
        let end = (u32::from(base) + u32::from(count)).min(u32::from(u16::MAX) + 1);
        PortLease { next: u32::from(base), end, held: Vec::new() }
    }

    /// The next free port of the range, for a child process to bind.
    pub(crate) fn take(&mut self) -> Result<u16> {
        let listener = self.take_listener()?;
        Ok(listener.local_addr()?.port())
    }

    /// A listener on the next free port of the range, for this process to
    /// serve on: it stays bound, so nothing can take the port between the
    /// check and its use (a proxy once found its port taken that way).
    pub(crate) fn take_listener(&mut self) -> Result<TcpListener> {
        while self.next < self.end {
            let port = self.next as u16;
            self.next += 1;
            if port == 0 {
                continue;
            }
            let mut leased = LEASED.lock().unwrap_or_else(|p| p.into_inner());
            if leased.contains(&port) {
                continue;
            }
            let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) else { continue };
            leased.insert(port);
            self.held.push(port);
            return Ok(listener);
        }
        bail!("no free port left in the cluster's range (it ends before port {})", self.end)
    }
}

impl Drop for PortLease {
    fn drop(&mut self) {
        let mut leased = LEASED.lock().unwrap_or_else(|p| p.into_inner());
        for port in &self.held {
            leased.remove(port);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_skip_busy_ones_and_return_on_drop() {
        // A range of our own, away from the ranges of the end-to-end tests.
        let busy = TcpListener::bind("127.0.0.1:0").unwrap();
        let busy_port = busy.local_addr().unwrap().port();
        // Wide ranges: the port after an ephemeral one may be in use by
        // another test's connection (a range of 3 once ran out in CI).
        let mut lease = PortLease::new(busy_port, 64);
        let first = lease.take().unwrap();
        assert_ne!(first, busy_port, "a bound port is not free");
        let mut other = PortLease::new(busy_port, 64);
        let second = other.take().unwrap();
        assert_ne!(second, first, "a leased port is not handed out twice");
        drop(lease);
        let mut again = PortLease::new(first, 1);
        assert_eq!(again.take().unwrap(), first, "a dropped lease returns its ports");
        assert!(again.take().is_err(), "an exhausted range is an error");
    }

    #[test]
    fn a_leased_listener_stays_bound_and_is_not_handed_out_again() {
        let base = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut lease = PortLease::new(base, 64);
        let listener = lease.take_listener().unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(TcpListener::bind(("127.0.0.1", port)).is_err(), "the port is still bound by the lease's listener");
        let mut other = PortLease::new(port, 64);
        assert_ne!(other.take().unwrap(), port, "a leased port is not handed out twice");
    }
}
