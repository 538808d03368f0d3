//! Which worker thread the code runs on. Each worker serves clients on its own event loop, and
//! what is bound to an event loop (an upstream connection's socket) is kept per worker, so that
//! a request never waits on another thread's loop.

use std::cell::Cell;

thread_local! {
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// Marks the current thread as worker `i` (from 1; 0 is every other thread).
pub fn enter(i: usize) {
    INDEX.with(|c| c.set(i));
}

/// The current thread's worker number: 1 and up on workers, 0 elsewhere.
pub fn index() -> usize {
    INDEX.with(Cell::get)
}

#[cfg(test)]
mod tests {
    #[test]
    fn each_thread_has_its_own_number() {
        assert_eq!(super::index(), 0);
        let t = std::thread::spawn(|| {
            super::enter(3);
            super::index()
        });
        assert_eq!(t.join().unwrap(), 3);
        assert_eq!(
            super::index(),
            0,
            "another thread's number is not this one's"
        );
    }
}
