//! The open downstream connections, shared by every worker's listener: the connection cap
//! (which counts them all), eviction of the connection idle the longest, the graceful finish
//! on shutdown, and the head deadline.
//!
//! The head deadline (`downstream.header_read_timeout`) is kept here rather than by a timer
//! per request: a connection with no request in flight, no HTTP/2 and no activity for the
//! timeout is closed by [`Conns::expire_idle`], which one task calls a few times per timeout
//! (see [`sweep_interval`]). A request costs two atomic stores instead of a timer armed and
//! disarmed (and the event loop woken to re-arm its own wait, which a timer earlier than the
//! loop's next wake-up costs).

use std::collections::HashMap;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::task::Waker;
use std::time::Duration;

use tokio::sync::Notify;

use crate::downstream::framing::Verdicts;

/// One open connection, as the cap, the head deadline and shutdown see it.
pub struct Conn {
    /// Asked to close (evicted or expired): no longer counted against the cap.
    closing: AtomicBool,
    /// Requests whose answer has not been sent whole yet.
    in_flight: AtomicU32,
    /// When the last answer was sent whole, or the connection opened (milliseconds on the
    /// [`Conns`] clock).
    last_active_ms: AtomicU64,
    /// The [`Conns`] clock.
    clock_ms: Arc<AtomicU64>,
    /// The connection's reads (see [`Verdicts::reads`]) when its last answer was sent whole.
    reads_at_rest: AtomicU64,
    /// What the framing scanner saw of the connection's bytes (also whether it is HTTP/2).
    pub verdicts: Arc<Verdicts>,
    /// What the connection is asked to do: go on, finish gracefully, or close now.
    pub signal: Signal,
}

impl Conn {
    /// A request began (its head has been read).
    pub fn request_started(&self) {
        self.in_flight.fetch_add(1, Relaxed);
    }

    /// A request's answer was sent whole, or given up.
    pub fn request_ended(&self) {
        self.last_active_ms
            .store(self.clock_ms.load(Relaxed), Relaxed);
        self.reads_at_rest.store(self.verdicts.reads(), Relaxed);
        self.in_flight.fetch_sub(1, Relaxed);
    }

    /// Nothing in flight, and nothing received that a request could be made of: every byte
    /// the client sent has been read (a connection not read yet may hold a request in the
    /// socket's buffer), and none came since the last answer. Only such a connection may be
    /// evicted, or closed at the head deadline, without losing a request already sent.
    fn idle(&self) -> bool {
        self.in_flight.load(Relaxed) == 0
            && !self.closing.load(Relaxed)
            && self.verdicts.drained()
            && self.verdicts.reads() == self.reads_at_rest.load(Relaxed)
    }

    /// Nothing in flight (the head deadline also closes a connection whose head is late).
    fn unanswered(&self) -> bool {
        self.in_flight.load(Relaxed) == 0 && !self.closing.load(Relaxed)
    }
}

/// Open connections, for the cap, eviction and the head deadline. Touched on connect, close,
/// eviction and sweeps only; requests update their connection's atomics.
#[derive(Default)]
pub struct Conns {
    open: Mutex<HashMap<u64, Arc<Conn>>>,
    count: AtomicUsize,
    /// Of `count`, those asked to close.
    closing: AtomicUsize,
    next_id: AtomicU64,
    closed: Notify,
    /// A coarse clock in milliseconds, moved on by connects and sweeps, read by requests.
    clock_ms: Arc<AtomicU64>,
}

impl Conns {
    /// Adds a connection opened at `now_ms`.
    pub fn add(&self, now_ms: u64) -> (u64, Arc<Conn>) {
        self.clock_ms.fetch_max(now_ms, Relaxed);
        let id = self.next_id.fetch_add(1, Relaxed);
        let c = Arc::new(Conn {
            closing: AtomicBool::new(false),
            in_flight: AtomicU32::new(0),
            last_active_ms: AtomicU64::new(now_ms),
            clock_ms: self.clock_ms.clone(),
            reads_at_rest: AtomicU64::new(0),
            verdicts: Arc::default(),
            signal: Signal::default(),
        });
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, c.clone());
        self.count.fetch_add(1, Relaxed);
        (id, c)
    }

    /// Removes a connection that has ended.
    pub fn remove(&self, id: u64) {
        let gone = self
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        if gone.is_some_and(|c| c.closing.load(Relaxed)) {
            self.closing.fetch_sub(1, Relaxed);
        }
        self.count.fetch_sub(1, Relaxed);
        self.closed.notify_waiters();
    }

    /// Connections open.
    pub fn count(&self) -> usize {
        self.count.load(Relaxed)
    }

    /// Connections open and not asked to close.
    pub fn staying(&self) -> usize {
        self.count().saturating_sub(self.closing.load(Relaxed))
    }

    /// Asks `c` to close now, for `why` ([`Signal::EVICT`] or [`Signal::EXPIRE`]).
    fn close(&self, c: &Conn, why: u8) {
        if !c.closing.swap(true, Relaxed) {
            self.closing.fetch_add(1, Relaxed);
        }
        c.signal.raise(why);
    }

    /// The coarse clock: the latest time a connect or a sweep saw.
    #[cfg(test)]
    fn now_ms(&self) -> u64 {
        self.clock_ms.load(Relaxed)
    }

    /// Asks the connection idle the longest to close, at `now_ms`; false when none has been
    /// idle for [`EVICT_AFTER_MS`].
    pub fn evict_idle(&self, now_ms: u64) -> bool {
        self.clock_ms.fetch_max(now_ms, Relaxed);
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let victim = open
            .values()
            .filter(|c| {
                c.idle() && now_ms.saturating_sub(c.last_active_ms.load(Relaxed)) >= EVICT_AFTER_MS
            })
            .min_by_key(|c| c.last_active_ms.load(Relaxed));
        match victim {
            Some(c) => {
                self.close(c, Signal::EVICT);
                true
            }
            None => false,
        }
    }

    /// Moves the clock to `now_ms` and closes every HTTP/1 connection that has had no request
    /// in flight for `limit_ms` (idle, or sending a head too slowly). Returns how many.
    pub fn expire_idle(&self, now_ms: u64, limit_ms: u64) -> usize {
        self.clock_ms.fetch_max(now_ms, Relaxed);
        let mut expired = 0;
        for c in self.open.lock().unwrap_or_else(|p| p.into_inner()).values() {
            let since = now_ms.saturating_sub(c.last_active_ms.load(Relaxed));
            if c.unanswered() && since >= limit_ms && !c.verdicts.is_http2() {
                self.close(c, Signal::EXPIRE);
                expired += 1;
            }
        }
        expired
    }

    /// Asks every open connection to finish its in-flight requests and close.
    pub fn finish_all(&self) {
        for c in self.open.lock().unwrap_or_else(|p| p.into_inner()).values() {
            c.signal.raise(Signal::FINISH);
        }
    }

    /// Waits until fewer than `max` connections are open.
    pub async fn wait_below(&self, max: usize) {
        loop {
            let closed = self.closed.notified();
            if self.count() < max {
                return;
            }
            closed.await;
        }
    }
}

/// How long a connection must have been idle (since it opened, or since its last answer)
/// before it may be evicted. "Every byte read" is what the connection's task last saw, and a
/// connection just accepted, or just answered, is seen as drained until the event loop
/// reports the bytes already in its socket (the runtime's first read of a new socket waits
/// for that report rather than trying): on a busy machine that report can come many
/// milliseconds later. A quarter of a second covers it; a newcomer meanwhile waits.
pub const EVICT_AFTER_MS: u64 = 250;

/// How often [`Conns::expire_idle`] runs for a head deadline of `limit`: an eighth of it,
/// between 10 ms and 1 s, so a connection is closed at most that much after its deadline.
pub fn sweep_interval(limit: Duration) -> Duration {
    (limit / 8).clamp(Duration::from_millis(10), Duration::from_secs(1))
}

/// A request to a connection from outside its task: one atomic word and the task's waker.
/// Looked at on every wake of the connection, so the check is one load and a waker compare;
/// the lock is taken only when the waker changes or a signal is raised. (A `Notify` and
/// hyper-util's graceful watcher each took a lock on every wake.)
#[derive(Default)]
pub struct Signal {
    raised: AtomicU8,
    waker: Mutex<Option<Waker>>,
}

impl Signal {
    /// Nothing asked.
    pub const NONE: u8 = 0;
    /// Finish the in-flight requests, then close (graceful shutdown).
    pub const FINISH: u8 = 1;
    /// Close now: evicted at `max_connections`.
    pub const EVICT: u8 = 2;
    /// Close now: no request head within `header_read_timeout`.
    pub const EXPIRE: u8 = 3;

    /// Leaves the connection task's waker with the signal when it is not the one left
    /// last (`known`); then a raised signal wakes the task.
    pub fn listen(&self, known: &mut Option<Waker>, waker: &Waker) {
        if !known.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *self.waker.lock().unwrap_or_else(|p| p.into_inner()) = Some(waker.clone());
            *known = Some(waker.clone());
        }
    }

    /// What was asked last (the strongest of what was asked).
    pub fn raised(&self) -> u8 {
        self.raised.load(Acquire)
    }

    fn raise(&self, what: u8) {
        self.raised.fetch_max(what, AcqRel);
        if let Some(w) = self
            .waker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            w.wake_by_ref();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_idle_for_the_limit_is_expired_once_and_a_busy_one_never() {
        let conns = Conns::default();
        let (_, idle) = conns.add(1_000);
        let (_, busy) = conns.add(1_000);
        let (_, answered) = conns.add(1_000);
        busy.request_started();
        answered.request_started();
        conns.expire_idle(1_500, 1_000);
        answered.request_ended();

        assert_eq!(conns.expire_idle(1_999, 1_000), 0);
        assert_eq!(conns.now_ms(), 1_999);
        assert_eq!(conns.expire_idle(2_000, 1_000), 1);
        assert_eq!(idle.signal.raised(), Signal::EXPIRE);
        assert_eq!(conns.staying(), 2);
        // asked once: a later sweep leaves it alone
        assert_eq!(conns.expire_idle(2_400, 1_000), 0);
        assert_eq!(conns.expire_idle(2_500, 1_000), 1);
        assert_eq!(answered.signal.raised(), Signal::EXPIRE);
        assert_eq!(conns.expire_idle(60_000, 1_000), 0);
        assert_eq!(busy.signal.raised(), Signal::NONE);
        busy.request_ended();
        assert_eq!(conns.expire_idle(61_000, 1_000), 1);
    }

    #[test]
    fn http2_connections_are_not_expired_and_the_clock_never_goes_back() {
        let conns = Conns::default();
        let (_, h2) = conns.add(5_000);
        h2.verdicts.mark_http2();
        assert_eq!(conns.expire_idle(100_000, 1_000), 0);
        assert_eq!(h2.signal.raised(), Signal::NONE);
        conns.add(10);
        assert_eq!(conns.now_ms(), 100_000);
    }

    #[test]
    fn a_connection_with_unread_bytes_is_never_evicted() {
        let conns = Conns::default();
        let later = 100 + EVICT_AFTER_MS;
        // accepted, not read yet: its request may be in the socket's buffer
        let (_, fresh) = conns.add(100);
        assert!(!conns.evict_idle(later));
        // read part of a head: still receiving a request
        fresh.verdicts.read(true);
        fresh.verdicts.read(false);
        assert!(!conns.evict_idle(later));
        // its request answered, everything read: idle
        fresh.request_started();
        fresh.request_ended();
        assert!(conns.evict_idle(later * 2));
        assert_eq!(fresh.signal.raised(), Signal::EVICT);
        // an answered connection that has received more since is not idle
        let (_, kept) = conns.add(200);
        kept.verdicts.read(false);
        kept.request_started();
        kept.request_ended();
        kept.verdicts.read(true);
        kept.verdicts.read(false);
        assert!(!conns.evict_idle(later * 3));
        assert_eq!(kept.signal.raised(), Signal::NONE);
    }

    #[test]
    fn a_connection_seen_drained_is_evicted_only_once_it_has_been_quiet_long_enough() {
        let conns = Conns::default();
        // just accepted and seen drained before the event loop reported its bytes
        let (_, fresh) = conns.add(1_000);
        fresh.verdicts.read(false);
        assert!(!conns.evict_idle(1_000));
        assert!(!conns.evict_idle(1_000 + EVICT_AFTER_MS - 1));
        // just answered (the clock is at 1 000 + EVICT_AFTER_MS - 1): its next request may
        // be on its way
        let (_, answered) = conns.add(900);
        quiet(&answered).request_started();
        answered.request_ended();
        let answered_at = 1_000 + EVICT_AFTER_MS - 1;
        assert!(conns.evict_idle(1_000 + EVICT_AFTER_MS));
        assert_eq!(fresh.signal.raised(), Signal::EVICT);
        assert_eq!(answered.signal.raised(), Signal::NONE);
        assert!(!conns.evict_idle(answered_at + EVICT_AFTER_MS - 1));
        assert!(conns.evict_idle(answered_at + EVICT_AFTER_MS));
        assert_eq!(answered.signal.raised(), Signal::EVICT);
    }

    /// A connection that has been read to the end, as an idle one is.
    fn quiet(c: &Conn) -> &Conn {
        c.verdicts.read(false);
        c
    }

    #[test]
    fn eviction_takes_the_connection_idle_the_longest_and_never_a_busy_one() {
        let conns = Conns::default();
        let now = 300 + EVICT_AFTER_MS;
        let (_, old_busy) = conns.add(100);
        quiet(&old_busy).request_started();
        let (old_id, old) = conns.add(200);
        quiet(&old);
        let (_, newer) = conns.add(300);
        quiet(&newer);
        assert!(conns.evict_idle(now));
        assert_eq!(old.signal.raised(), Signal::EVICT);
        assert!(conns.evict_idle(now));
        assert_eq!(newer.signal.raised(), Signal::EVICT);
        assert!(!conns.evict_idle(now * 10));
        assert_eq!(old_busy.signal.raised(), Signal::NONE);
        assert_eq!((conns.count(), conns.staying()), (3, 1));
        conns.remove(old_id);
        assert_eq!((conns.count(), conns.staying()), (2, 1));
        conns.finish_all();
        assert_eq!(old_busy.signal.raised(), Signal::FINISH);
        assert_eq!(old.signal.raised(), Signal::EVICT);
    }

    #[test]
    fn the_sweep_runs_an_eighth_of_the_limit_within_bounds() {
        assert_eq!(
            sweep_interval(Duration::from_secs(30)),
            Duration::from_secs(1)
        );
        assert_eq!(
            sweep_interval(Duration::from_secs(2)),
            Duration::from_millis(250)
        );
        assert_eq!(
            sweep_interval(Duration::from_millis(20)),
            Duration::from_millis(10)
        );
    }
}
