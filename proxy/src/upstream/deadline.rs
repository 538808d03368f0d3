//! Deadlines on the request path (the upstream's response-head timeout), kept by each worker
//! thread in a list that its own ticker walks a few times per timeout, instead of a tokio
//! timer per request.
//!
//! A tokio timer costs a lock, a wheel insert and a wheel removal per request; and arming one
//! while the event loop has no other timer makes the loop wake itself through its eventfd (a
//! write, and another turn of the loop), which under load was one request in five. Here a
//! request takes a slot in its worker's list and leaves it, and a deadline is met within one
//! tick after it falls due. Off the worker threads (the admin runtime, tests), and on a
//! worker before its ticker runs, a tokio timer keeps the deadline.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use slab::Slab;

/// Deadlines counted in ticks. Pure: the ticker says when a tick has passed.
#[derive(Default)]
pub struct Deadlines {
    slots: Slab<Slot>,
    ticks: u64,
}

struct Slot {
    at: u64,
    waker: Waker,
    fired: bool,
}

impl Deadlines {
    /// A deadline `after` ticks from now (at least `after` whole ticks will have passed when
    /// it fires); returns its key.
    pub fn add(&mut self, after: u64, waker: &Waker) -> usize {
        self.slots.insert(Slot {
            at: self.ticks.saturating_add(after).saturating_add(1),
            waker: waker.clone(),
            fired: false,
        })
    }

    /// Whether the deadline `key` has fired; when not, `waker` is the one it will wake.
    pub fn check(&mut self, key: usize, waker: &Waker) -> bool {
        match self.slots.get_mut(key) {
            Some(slot) if slot.fired => true,
            Some(slot) => {
                if !slot.waker.will_wake(waker) {
                    slot.waker = waker.clone();
                }
                false
            }
            None => true,
        }
    }

    /// Forgets the deadline `key`.
    pub fn remove(&mut self, key: usize) {
        self.slots.try_remove(key);
    }

    /// Deadlines waiting (fired or not).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no deadline is waiting.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// One tick has passed: marks the deadlines that fall due and returns their wakers.
    pub fn tick(&mut self) -> Vec<Waker> {
        self.ticks += 1;
        let now = self.ticks;
        self.slots
            .iter_mut()
            .filter(|(_, s)| !s.fired && s.at <= now)
            .map(|(_, s)| {
                s.fired = true;
                s.waker.clone()
            })
            .collect()
    }
}

/// Ticks of `tick` in `d`, rounded up.
fn ticks_in(d: Duration, tick: Duration) -> u64 {
    u64::try_from(d.as_nanos().div_ceil(tick.as_nanos().max(1))).unwrap_or(u64::MAX)
}

/// How often a worker's ticker runs for deadlines of `timeout`: an eighth of it, between
/// 10 ms and 1 s.
pub fn tick_for(timeout: Duration) -> Duration {
    (timeout / 8).clamp(Duration::from_millis(10), Duration::from_secs(1))
}

/// A worker thread's deadlines and its ticker.
struct Local {
    deadlines: Deadlines,
    /// The tick, once the ticker runs on this thread.
    tick: Option<Duration>,
    /// The ticker's waker while it waits for a deadline to keep.
    idle_ticker: Option<Waker>,
}

thread_local! {
    static LOCAL: RefCell<Local> = const {
        RefCell::new(Local {
            deadlines: Deadlines { slots: Slab::new(), ticks: 0 },
            tick: None,
            idle_ticker: None,
        })
    };
}

/// Keeps this thread's deadlines, ticking every `tick` while any waits, until `stop`
/// completes. Run once per worker thread, on its event loop.
pub async fn run_ticker(tick: Duration, stop: impl Future<Output = ()>) {
    LOCAL.with(|l| l.borrow_mut().tick = Some(tick));
    let ticking = async {
        loop {
            std::future::poll_fn(|cx| {
                LOCAL.with(|l| {
                    let mut l = l.borrow_mut();
                    if l.deadlines.is_empty() {
                        l.idle_ticker = Some(cx.waker().clone());
                        Poll::Pending
                    } else {
                        Poll::Ready(())
                    }
                })
            })
            .await;
            tokio::time::sleep(tick).await;
            let due = LOCAL.with(|l| l.borrow_mut().deadlines.tick());
            for w in due {
                w.wake();
            }
        }
    };
    tokio::select! {
        () = ticking => {}
        () = stop => {}
    }
    LOCAL.with(|l| l.borrow_mut().tick = None);
}

/// The deadline ran out before the future completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

/// `inner`, unless `after` passes first.
pub fn timeout<F: Future + Unpin>(after: Duration, inner: F) -> Timeout<F> {
    Timeout {
        inner,
        after,
        state: State::Start,
    }
}

/// See [`timeout`].
pub struct Timeout<F> {
    inner: F,
    after: Duration,
    state: State,
}

enum State {
    Start,
    /// A slot in this worker's list (the worker's number, the key).
    Local(usize, usize),
    Tokio(Pin<Box<tokio::time::Sleep>>),
    Done,
}

impl<F: Future + Unpin> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Poll::Ready(v) = Pin::new(&mut this.inner).poll(cx) {
            this.release();
            return Poll::Ready(Ok(v));
        }
        let due = match &mut this.state {
            State::Start => {
                let after = this.after;
                let key = LOCAL.with(|l| {
                    let mut l = l.borrow_mut();
                    let tick = l.tick?;
                    let key = l.deadlines.add(ticks_in(after, tick), cx.waker());
                    if let Some(w) = l.idle_ticker.take() {
                        w.wake();
                    }
                    Some(key)
                });
                match key {
                    Some(key) => this.state = State::Local(crate::worker::index(), key),
                    None => {
                        let mut sleep = Box::pin(tokio::time::sleep(after));
                        let due = sleep.as_mut().poll(cx).is_ready();
                        this.state = State::Tokio(sleep);
                        if due {
                            return Poll::Ready(Err(Elapsed));
                        }
                    }
                }
                false
            }
            State::Local(_, key) => {
                let key = *key;
                LOCAL.with(|l| l.borrow_mut().deadlines.check(key, cx.waker()))
            }
            State::Tokio(sleep) => sleep.as_mut().poll(cx).is_ready(),
            State::Done => true,
        };
        if due {
            this.release();
            return Poll::Ready(Err(Elapsed));
        }
        Poll::Pending
    }
}

impl<F> Timeout<F> {
    fn release(&mut self) {
        if let State::Local(worker, key) = std::mem::replace(&mut self.state, State::Done)
            && worker == crate::worker::index()
        {
            // (dropped on another thread, the slot fires later and wakes nothing that waits)
            let _ = LOCAL.try_with(|l| {
                if let Ok(mut l) = l.try_borrow_mut() {
                    l.deadlines.remove(key);
                }
            });
        }
    }
}

impl<F> Drop for Timeout<F> {
    fn drop(&mut self) {
        self.release();
    }
}

/// Deadlines waiting on this thread.
#[cfg(test)]
fn waiting() -> usize {
    LOCAL.with(|l| l.borrow().deadlines.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A single-threaded runtime whose clock moves only when every task waits.
    fn paused_runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap()
    }

    #[test]
    fn a_deadline_fires_after_its_ticks_have_passed_whole_and_only_once() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut d = Deadlines::default();
        let k2 = d.add(2, &waker);
        let k0 = d.add(0, &waker);
        assert!(!d.check(k2, &waker) && !d.check(k0, &waker));
        // the tick under way when a deadline is added may be nearly over: it does not count
        assert_eq!(d.tick().len(), 1);
        assert!(d.check(k0, &waker));
        assert!(d.tick().is_empty());
        assert!(!d.check(k2, &waker));
        assert_eq!(d.tick().len(), 1);
        assert!(d.check(k2, &waker));
        assert!(d.tick().is_empty(), "fired once");
        d.remove(k0);
        d.remove(k2);
        assert!(d.is_empty());
        // a removed key reads as fired: nothing waits on it any more
        assert!(d.check(k2, &waker));
    }

    #[test]
    fn the_waker_kept_is_the_latest_one() {
        let first = Arc::new(Count(AtomicUsize::new(0)));
        let second = Arc::new(Count(AtomicUsize::new(0)));
        let mut d = Deadlines::default();
        let k = d.add(0, &Waker::from(first.clone()));
        assert!(!d.check(k, &Waker::from(second.clone())));
        for w in d.tick() {
            w.wake();
        }
        assert_eq!(first.0.load(Ordering::SeqCst), 0);
        assert_eq!(second.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn ticks_round_up_and_the_tick_is_an_eighth_within_bounds() {
        let ms = Duration::from_millis;
        assert_eq!(ticks_in(ms(1000), ms(250)), 4);
        assert_eq!(ticks_in(ms(1001), ms(250)), 5);
        assert_eq!(ticks_in(ms(0), ms(250)), 0);
        assert_eq!(tick_for(Duration::from_secs(60)), Duration::from_secs(1));
        assert_eq!(tick_for(ms(800)), ms(100));
        assert_eq!(tick_for(ms(1)), ms(10));
    }

    /// On a worker's event loop with its ticker: the deadline is kept by the list, in time,
    /// and a future that completes first leaves no slot behind.
    #[test]
    fn on_a_ticking_thread_deadlines_are_kept_by_the_list() {
        let rt = paused_runtime();
        rt.block_on(async {
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let ticker = tokio::spawn(run_ticker(Duration::from_millis(100), async {
                let _ = stopped.await;
            }));
            tokio::task::yield_now().await;
            let start = tokio::time::Instant::now();
            let never = Box::pin(std::future::pending::<()>());
            let waited = timeout(Duration::from_millis(500), never).await;
            assert_eq!(waited, Err(Elapsed));
            let took = start.elapsed();
            assert!(
                took >= Duration::from_millis(500) && took <= Duration::from_millis(600),
                "{took:?}"
            );
            assert_eq!(waiting(), 0);

            let quick = Box::pin(tokio::time::sleep(Duration::from_millis(50)));
            assert_eq!(timeout(Duration::from_secs(5), quick).await, Ok(()));
            assert_eq!(waiting(), 0);
            let _ = stop.send(());
            ticker.await.unwrap();
        });
    }

    #[test]
    fn without_a_ticker_a_tokio_timer_keeps_the_deadline() {
        let rt = paused_runtime();
        rt.block_on(async {
            let never = Box::pin(std::future::pending::<()>());
            assert_eq!(
                timeout(Duration::from_millis(300), never).await,
                Err(Elapsed)
            );
            assert_eq!(waiting(), 0);
            let ready = Box::pin(async { 7 });
            assert_eq!(timeout(Duration::from_millis(300), ready).await, Ok(7));
        });
    }
}
