//! Keep-alive HTTP/1.1 connections to one endpoint, for the request path's most common case.
//!
//! Each endpoint owns its pool, so finding a connection is a pop from a small vector under an
//! uncontended lock: no key to hash, no task per connection. The pool has a slot per worker
//! thread ([`crate::worker`]): a connection is registered with the event loop of the worker that
//! opened it, and goes back to that worker's slot only. A connection is in the pool only
//! while idle: it is taken out for a request and put back when its response body has ended
//! ([`crate::upstream::h1client`]). The newest goes out first; one idle too long, or closed by the
//! upstream while idle, is dropped when a checkout meets it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A connection a pool can keep: it tells whether it is still idle and open.
pub trait Reusable {
    /// Open, with nothing sent by the upstream since its last response.
    fn idle_and_open(&self) -> bool;
}

/// One kept connection.
struct Kept<C> {
    conn: C,
    since: Instant,
}

/// Slots per pool; workers beyond this share slots (still correct, only slower).
const SLOTS: usize = 32;

/// The pool of one endpoint's idle HTTP/1.1 connections (of type `C`, the client's).
pub struct H1Pool<C> {
    slots: [Mutex<Vec<Kept<C>>>; SLOTS],
}

impl<C> Default for H1Pool<C> {
    fn default() -> Self {
        Self {
            slots: std::array::from_fn(|_| Mutex::new(Vec::new())),
        }
    }
}

/// The current worker's slot.
pub fn slot() -> usize {
    crate::worker::index() % SLOTS
}

impl<C> std::fmt::Debug for H1Pool<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H1Pool").field("kept", &self.len()).finish()
    }
}

impl<C: Reusable> H1Pool<C> {
    /// An idle connection, newest first; drops the closed ones and those idle longer than
    /// `idle_timeout` on the way.
    pub fn checkout(&self, now: Instant, idle_timeout: Duration) -> Option<C> {
        let mut kept = self.slots[slot()].lock().unwrap_or_else(|p| p.into_inner());
        while let Some(k) = kept.pop() {
            if now.saturating_duration_since(k.since) > idle_timeout {
                // the rest are older still
                kept.clear();
                return None;
            }
            if k.conn.idle_and_open() {
                return Some(k.conn);
            }
        }
        None
    }

    /// Keeps an idle connection in slot `slot` (the worker's that opened it); drops it when
    /// `max` are kept there already.
    pub fn put_back(&self, slot: usize, conn: C, now: Instant, max: usize) {
        let mut kept = self.slots[slot % SLOTS]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if kept.len() < max {
            kept.push(Kept { conn, since: now });
        }
    }
}

impl<C> H1Pool<C> {
    /// Idle connections kept, in every slot.
    pub fn len(&self) -> usize {
        self.slots
            .iter()
            .map(|s| s.lock().map(|k| k.len()).unwrap_or(0))
            .sum()
    }

    /// Whether no connection is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::h1client::H1Conn;
    use tokio::io::AsyncWriteExt as _;

    /// A connected pair: our side as a kept connection, and the upstream's side.
    async fn pair(l: &tokio::net::TcpListener) -> (H1Conn, tokio::net::TcpStream) {
        let ours = tokio::net::TcpStream::connect(l.local_addr().unwrap())
            .await
            .unwrap();
        let (theirs, _) = l.accept().await.unwrap();
        (H1Conn::new(ours), theirs)
    }

    #[tokio::test]
    async fn the_newest_open_connection_goes_out_first() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let pool = H1Pool::default();
        let idle = Duration::from_secs(60);
        assert!(pool.checkout(Instant::now(), idle).is_none());
        let (a, _a) = pair(&l).await;
        let (b, _b) = pair(&l).await;
        let b_port = format!("{b:?}");
        let t0 = Instant::now();
        pool.put_back(slot(), a, t0, 8);
        pool.put_back(slot(), b, t0, 8);
        let out = pool.checkout(t0, idle).unwrap();
        assert_eq!(format!("{out:?}"), b_port);
        assert_eq!(pool.len(), 1);
    }

    #[tokio::test]
    async fn closed_idle_too_long_and_surplus_connections_are_dropped() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let pool = H1Pool::default();
        let t0 = Instant::now();
        let mut theirs = Vec::new();
        for _ in 0..3 {
            let (c, t) = pair(&l).await;
            pool.put_back(slot(), c, t0, 2);
            theirs.push(t);
        }
        assert_eq!(pool.len(), 2, "the third one is over the maximum");
        // idle longer than the timeout: dropped, not handed out
        let later = t0 + Duration::from_secs(61);
        assert!(pool.checkout(later, Duration::from_secs(60)).is_none());
        assert!(pool.is_empty());

        // closed by the upstream, or sent bytes nobody asked for, while idle: dropped
        let (closed, t) = pair(&l).await;
        drop(t);
        let (chatty, mut t) = pair(&l).await;
        t.write_all(b"HTTP/1.1 200 OK\r\n").await.unwrap();
        let (open, _t) = pair(&l).await;
        let open_port = format!("{open:?}");
        closed.readable().await;
        chatty.readable().await;
        pool.put_back(slot(), open, t0, 8);
        pool.put_back(slot(), closed, t0, 8);
        pool.put_back(slot(), chatty, t0, 8);
        let out = pool.checkout(t0, Duration::from_secs(60)).unwrap();
        assert_eq!(
            format!("{out:?}"),
            open_port,
            "the two below it were passed over"
        );
        assert!(pool.is_empty());
    }
}
