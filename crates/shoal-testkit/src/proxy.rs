//! A fault-injecting TCP proxy: the network between two nodes, made
//! controllable at run time.
//!
//! ```text
//!   dialer ──▶ FaultProxy(listen) ──────────────▶ upstream
//!              ├─ ToUpstream: dialer's bytes ──▶  (requests of the node that dialed)
//!              └─ ToClient:   upstream's bytes ──▶ (its peer's responses)
//! ```
//!
//! Each direction has a [`LinkMode`], read for every chunk as it arrives:
//! - `Pass`: forward at once;
//! - `Delay(d)`: forward `d` after arrival, in order;
//! - `Drop`: read and discard. The connection stays open and writes keep
//!   succeeding, so to the sender it looks like a black hole, as a real
//!   partition does, rather than a refused or reset connection.
//!
//! TCP promises an unbroken byte stream, so a connection that lost bytes can
//! never carry traffic again: when its direction leaves `Drop`, it is closed
//! (the peers reconnect, as they would after a real partition's timeout).
//! [`FaultProxy::close_all`] closes every open connection at once.
//!
//! Every queue is bounded: a direction holds at most [`QUEUE_CHUNKS`] delayed
//! chunks before it stops reading (TCP backpressure then reaches the sender),
//! and at most [`MAX_CONNECTIONS`] connections are open.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// Chunks a direction may hold while delaying them.
pub const QUEUE_CHUNKS: usize = 1024;
/// Open connections per proxy; more are refused (closed at once).
pub const MAX_CONNECTIONS: usize = 256;
/// How long the proxy waits to reach its upstream.
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const CHUNK_BYTES: usize = 16 * 1024;

/// One direction of a proxied connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Bytes from the dialer to the upstream.
    ToUpstream,
    /// Bytes from the upstream back to the dialer.
    ToClient,
}

impl Direction {
    fn index(self) -> usize {
        self as usize
    }
}

/// What a direction does with the bytes it reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkMode {
    Pass,
    Drop,
    Delay(Duration),
}

/// Byte and connection counts of a proxy, by direction (`[ToUpstream, ToClient]`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProxyStats {
    pub accepted: u64,
    pub forwarded_bytes: [u64; 2],
    pub dropped_bytes: [u64; 2],
}

/// A listening proxy to one upstream address; stops when dropped.
pub struct FaultProxy {
    local_addr: SocketAddr,
    upstream: SocketAddr,
    control: Arc<Control>,
    accept_task: JoinHandle<()>,
}

struct Control {
    modes: watch::Sender<[LinkMode; 2]>,
    /// Bumped by `close_all`; every connection task watches it.
    close_epoch: watch::Sender<u64>,
    accepted: AtomicU64,
    forwarded: [AtomicU64; 2],
    dropped: [AtomicU64; 2],
}

impl FaultProxy {
    /// Listens on `listen` (port 0 picks a free one) and forwards every
    /// connection to `upstream`, all directions passing.
    pub async fn start(listen: SocketAddr, upstream: SocketAddr) -> std::io::Result<FaultProxy> {
        FaultProxy::serve(TcpListener::bind(listen).await?, upstream)
    }

    /// Like [`FaultProxy::start`], on a listener the caller already bound.
    pub fn start_on(listener: std::net::TcpListener, upstream: SocketAddr) -> std::io::Result<FaultProxy> {
        listener.set_nonblocking(true)?;
        FaultProxy::serve(TcpListener::from_std(listener)?, upstream)
    }

    fn serve(listener: TcpListener, upstream: SocketAddr) -> std::io::Result<FaultProxy> {
        let local_addr = listener.local_addr()?;
        let control = Arc::new(Control {
            modes: watch::Sender::new([LinkMode::Pass; 2]),
            close_epoch: watch::Sender::new(0),
            accepted: AtomicU64::new(0),
            forwarded: Default::default(),
            dropped: Default::default(),
        });
        let accept_task = tokio::spawn(accept_loop(listener, upstream, Arc::clone(&control)));
        Ok(FaultProxy { local_addr, upstream, control, accept_task })
    }

    /// Where dialers connect.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// Sets one direction's mode; applies to bytes read from now on.
    pub fn set(&self, direction: Direction, mode: LinkMode) {
        self.control.modes.send_modify(|modes| modes[direction.index()] = mode);
    }

    /// Sets both directions' mode.
    pub fn set_both(&self, mode: LinkMode) {
        self.control.modes.send_modify(|modes| *modes = [mode; 2]);
    }

    pub fn mode(&self, direction: Direction) -> LinkMode {
        self.control.modes.borrow()[direction.index()]
    }

    /// Both directions pass again (connections that lost bytes are closed).
    pub fn heal(&self) {
        self.set_both(LinkMode::Pass);
    }

    /// Closes every open connection; new ones are accepted as usual.
    pub fn close_all(&self) {
        self.control.close_epoch.send_modify(|epoch| *epoch += 1);
    }

    pub fn stats(&self) -> ProxyStats {
        let load = |counters: &[AtomicU64; 2]| [0, 1].map(|i| counters[i].load(Ordering::Relaxed));
        ProxyStats {
            accepted: self.control.accepted.load(Ordering::Relaxed),
            forwarded_bytes: load(&self.control.forwarded),
            dropped_bytes: load(&self.control.dropped),
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // The accept task owns the connection tasks (a JoinSet aborts its tasks when dropped).
        self.accept_task.abort();
    }
}

async fn accept_loop(listener: TcpListener, upstream: SocketAddr, control: Arc<Control>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) if connections.len() < MAX_CONNECTIONS => {
                    control.accepted.fetch_add(1, Ordering::Relaxed);
                    connections.spawn(connection(stream, upstream, Arc::clone(&control)));
                }
                Ok(_) => {} // over the limit: dropping the stream closes it
                // e.g. out of file descriptors: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Runs one proxied connection until both directions end, one breaks, or
/// `close_all` is called. Returning drops (closes) both sockets.
async fn connection(client: TcpStream, upstream: SocketAddr, control: Arc<Control>) {
    let mut closed = control.close_epoch.subscribe();
    let connect = tokio::time::timeout(UPSTREAM_CONNECT_TIMEOUT, TcpStream::connect(upstream));
    let upstream = tokio::select! {
        result = connect => match result {
            Ok(Ok(stream)) => stream,
            // Upstream down or unreachable: the dialer sees its connection closed.
            _ => return,
        },
        _ = closed.changed() => return,
    };
    // Small RPC messages should not wait for Nagle; failure only costs latency.
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (upstream_read, upstream_write) = upstream.into_split();
    let both = async {
        tokio::try_join!(
            pump(client_read, upstream_write, Direction::ToUpstream, &control),
            pump(upstream_read, client_write, Direction::ToClient, &control),
        )
    };
    tokio::select! {
        _ = both => {}
        _ = closed.changed() => {}
    }
}

/// The connection must close (a read or write failed, or the stream lost bytes).
struct Broken;

/// Moves one direction's bytes through its mode. `Ok` when the source ended
/// cleanly and the end was passed on (half-close).
async fn pump(
    mut src: OwnedReadHalf,
    mut dst: OwnedWriteHalf,
    direction: Direction,
    control: &Control,
) -> Result<(), Broken> {
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(QUEUE_CHUNKS);
    let mut modes = control.modes.subscribe();
    let d = direction.index();
    let reader = async move {
        let mut buf = vec![0u8; CHUNK_BYTES];
        let mut lost_bytes = false;
        // Delayed chunks keep their order even when the delay shrinks.
        let mut release_floor = Instant::now();
        loop {
            let n = tokio::select! {
                read = src.read(&mut buf) => match read {
                    Ok(0) => return Ok(()), // dropping `tx` lets the writer finish and half-close
                    Ok(n) => n,
                    Err(_) => return Err(Broken),
                },
                changed = modes.changed() => {
                    let healed = changed.is_err() || modes.borrow_and_update()[d] != LinkMode::Drop;
                    if lost_bytes && healed {
                        return Err(Broken);
                    }
                    continue;
                }
            };
            let mode = modes.borrow_and_update()[d];
            let delay = match mode {
                LinkMode::Drop => {
                    lost_bytes = true;
                    control.dropped[d].fetch_add(n as u64, Ordering::Relaxed);
                    continue;
                }
                _ if lost_bytes => return Err(Broken),
                LinkMode::Pass => Duration::ZERO,
                LinkMode::Delay(delay) => delay,
            };
            release_floor = release_floor.max(Instant::now() + delay);
            if tx.send((release_floor, buf[..n].to_vec())).await.is_err() {
                return Err(Broken);
            }
        }
    };
    let writer = async move {
        while let Some((release_at, chunk)) = rx.recv().await {
            tokio::time::sleep_until(release_at).await;
            dst.write_all(&chunk).await.map_err(|_| Broken)?;
            control.forwarded[d].fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        dst.shutdown().await.map_err(|_| Broken)
    };
    tokio::try_join!(reader, writer).map(|_| ())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// An echo server that also counts the bytes it received, so a test can
    /// tell "request dropped" from "response dropped".
    async fn echo_server() -> (SocketAddr, Arc<AtomicUsize>, JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&received);
        let task = tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                let counter = Arc::clone(&counter);
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    loop {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                counter.fetch_add(n, Ordering::SeqCst);
                                if socket.write_all(&buf[..n]).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        });
        (addr, received, task)
    }

    async fn proxy_to_echo() -> (FaultProxy, Arc<AtomicUsize>, JoinHandle<()>) {
        let (echo, received, task) = echo_server().await;
        let proxy = FaultProxy::start("127.0.0.1:0".parse().unwrap(), echo).await.unwrap();
        (proxy, received, task)
    }

    async fn dial(proxy: &FaultProxy) -> TcpStream {
        TcpStream::connect(proxy.local_addr()).await.unwrap()
    }

    /// Sends `msg` and reads the echo, or `None` if nothing came back in `wait`.
    async fn round_trip(stream: &mut TcpStream, msg: &[u8], wait: Duration) -> Option<Vec<u8>> {
        stream.write_all(msg).await.unwrap();
        let mut buf = vec![0u8; msg.len()];
        match tokio::time::timeout(wait, stream.read_exact(&mut buf)).await {
            Ok(Ok(_)) => Some(buf),
            _ => None,
        }
    }

    /// Whether the proxy closed the connection within `wait`.
    async fn closes_within(stream: &mut TcpStream, wait: Duration) -> bool {
        let mut buf = [0u8; 64];
        matches!(tokio::time::timeout(wait, stream.read(&mut buf)).await, Ok(Ok(0) | Err(_)))
    }

    const PATIENCE: Duration = Duration::from_secs(5);
    const SILENCE: Duration = Duration::from_millis(300);

    #[tokio::test]
    async fn passes_bytes_both_ways() {
        let (proxy, received, _echo) = proxy_to_echo().await;
        let mut stream = dial(&proxy).await;
        assert_eq!(round_trip(&mut stream, b"hello", PATIENCE).await.as_deref(), Some(&b"hello"[..]));
        assert_eq!(received.load(Ordering::SeqCst), 5);
        let stats = proxy.stats();
        assert_eq!((stats.accepted, stats.forwarded_bytes, stats.dropped_bytes), (1, [5, 5], [0, 0]));
    }

    #[tokio::test]
    async fn delay_holds_bytes_back_in_order() {
        let (proxy, _, _echo) = proxy_to_echo().await;
        proxy.set(Direction::ToUpstream, LinkMode::Delay(Duration::from_millis(300)));
        let mut stream = dial(&proxy).await;
        let started = std::time::Instant::now();
        stream.write_all(b"ab").await.unwrap();
        assert_eq!(round_trip(&mut stream, b"cd", PATIENCE).await.as_deref(), Some(&b"ab"[..]));
        let mut rest = [0u8; 2];
        tokio::time::timeout(PATIENCE, stream.read_exact(&mut rest)).await.unwrap().unwrap();
        assert_eq!(&rest, b"cd");
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(300), "delayed by only {took:?}");
    }

    #[tokio::test]
    async fn drop_is_a_black_hole_and_heal_closes_the_broken_connection() {
        let (proxy, received, _echo) = proxy_to_echo().await;
        let mut stream = dial(&proxy).await;
        assert!(round_trip(&mut stream, b"ping", PATIENCE).await.is_some());
        proxy.set_both(LinkMode::Drop);
        assert_eq!(round_trip(&mut stream, b"lost", SILENCE).await, None, "nothing comes back");
        assert_eq!(received.load(Ordering::SeqCst), 4, "the upstream never saw the dropped bytes");
        assert!(!closes_within(&mut stream, SILENCE).await, "the connection stays open while dropping");
        assert_eq!(proxy.stats().dropped_bytes[0], 4);

        proxy.heal();
        assert!(closes_within(&mut stream, PATIENCE).await, "a stream that lost bytes must not resume");
        let mut fresh = dial(&proxy).await;
        assert!(round_trip(&mut fresh, b"again", PATIENCE).await.is_some(), "new connections pass after heal");
    }

    #[tokio::test]
    async fn a_connection_that_lost_nothing_survives_a_partition() {
        let (proxy, _, _echo) = proxy_to_echo().await;
        let mut stream = dial(&proxy).await;
        assert!(round_trip(&mut stream, b"1", PATIENCE).await.is_some());
        proxy.set_both(LinkMode::Drop);
        tokio::time::sleep(Duration::from_millis(50)).await;
        proxy.heal();
        assert!(round_trip(&mut stream, b"2", PATIENCE).await.is_some());
    }

    #[tokio::test]
    async fn one_way_drop_lets_requests_through_but_not_answers() {
        let (proxy, received, _echo) = proxy_to_echo().await;
        proxy.set(Direction::ToClient, LinkMode::Drop);
        assert_eq!(proxy.mode(Direction::ToUpstream), LinkMode::Pass);
        let mut stream = dial(&proxy).await;
        assert_eq!(round_trip(&mut stream, b"one-way", SILENCE).await, None);
        assert_eq!(received.load(Ordering::SeqCst), 7, "the request arrived");
        let stats = proxy.stats();
        assert_eq!((stats.forwarded_bytes[0], stats.dropped_bytes[1]), (7, 7));
    }

    #[tokio::test]
    async fn close_all_closes_open_connections_only() {
        let (proxy, _, _echo) = proxy_to_echo().await;
        let mut stream = dial(&proxy).await;
        assert!(round_trip(&mut stream, b"x", PATIENCE).await.is_some());
        proxy.close_all();
        assert!(closes_within(&mut stream, PATIENCE).await);
        let mut fresh = dial(&proxy).await;
        assert!(round_trip(&mut fresh, b"y", PATIENCE).await.is_some());
    }

    #[tokio::test]
    async fn an_unreachable_upstream_closes_the_dialer() {
        // Bind and release a port so nothing listens there.
        let dead = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
        let proxy = FaultProxy::start("127.0.0.1:0".parse().unwrap(), dead).await.unwrap();
        let mut stream = dial(&proxy).await;
        assert!(closes_within(&mut stream, PATIENCE).await);
    }

    #[tokio::test]
    async fn dropping_the_proxy_stops_it() {
        let (proxy, _, _echo) = proxy_to_echo().await;
        let addr = proxy.local_addr();
        let mut stream = dial(&proxy).await;
        drop(proxy);
        assert!(closes_within(&mut stream, PATIENCE).await, "open connections end with the proxy");
        // The listener goes with the accept task; allow the runtime a moment to run the abort.
        let deadline = std::time::Instant::now() + PATIENCE;
        while TcpStream::connect(addr).await.is_ok() {
            assert!(std::time::Instant::now() < deadline, "still accepting after drop");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
