//! How the clients' connections and requests spread over the worker threads: the kernel
//! hands each new connection to one worker's listening socket by a hash, and a worker never
//! takes over another's connections once it serves them, so an uneven spread is a busy core
//! beside an idle one. The counters of each worker sit on their own cache line; `/stats`
//! reads them, and the exact balance (`downstream::balance`) reads the open connections.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use serde::Serialize;

use crate::config::MAX_WORKERS;

#[derive(Debug, Default)]
#[repr(align(64))]
struct Slot {
    connections: AtomicU64,
    requests: AtomicU64,
    /// Connections given to the worker and not yet closed (written by the worker that
    /// accepted one and by the one that closes it).
    open: AtomicUsize,
}

/// The counters of every worker (slot 0 is any other thread).
#[derive(Debug)]
pub struct WorkerLoad {
    slots: Box<[Slot]>,
    count: AtomicUsize,
}

/// One worker's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WorkerFigures {
    /// The worker's number, from 1.
    pub worker: usize,
    /// Client connections it accepted from its listening sockets.
    pub connections: u64,
    /// Requests it served.
    pub requests: u64,
    /// Client connections it serves now.
    pub open: usize,
}

impl Default for WorkerLoad {
    fn default() -> Self {
        Self {
            slots: (0..=MAX_WORKERS).map(|_| Slot::default()).collect(),
            count: AtomicUsize::new(0),
        }
    }
}

impl WorkerLoad {
    /// Says how many workers there are.
    pub fn set_count(&self, n: usize) {
        self.count.store(n.min(MAX_WORKERS), Relaxed);
    }

    /// Worker `w` accepted a connection.
    pub fn accepted(&self, w: usize) {
        if let Some(s) = self.slots.get(w) {
            s.connections.fetch_add(1, Relaxed);
        }
    }

    /// Worker `w` is given a connection to serve.
    pub fn assign(&self, w: usize) {
        if let Some(s) = self.slots.get(w) {
            s.open.fetch_add(1, Relaxed);
        }
    }

    /// A connection worker `w` served has closed.
    pub fn release(&self, w: usize) {
        if let Some(s) = self.slots.get(w) {
            let _ = s
                .open
                .fetch_update(Relaxed, Relaxed, |n| Some(n.saturating_sub(1)));
        }
    }

    /// How many connections each worker serves now, by worker number from 1.
    pub fn open(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        (1..=self.count.load(Relaxed))
            .filter_map(|w| Some((w, self.slots.get(w)?.open.load(Relaxed))))
    }

    /// Worker `w` took a request.
    pub fn request(&self, w: usize) {
        if let Some(s) = self.slots.get(w) {
            s.requests.fetch_add(1, Relaxed);
        }
    }

    /// Every worker's figures, in order.
    pub fn figures(&self) -> Vec<WorkerFigures> {
        (1..=self.count.load(Relaxed))
            .filter_map(|w| {
                let s = self.slots.get(w)?;
                Some(WorkerFigures {
                    worker: w,
                    connections: s.connections.load(Relaxed),
                    requests: s.requests.load(Relaxed),
                    open: s.open.load(Relaxed),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_worker_counts_its_own_and_others_count_nowhere() {
        let load = WorkerLoad::default();
        load.set_count(2);
        load.accepted(1);
        load.request(1);
        load.request(1);
        load.accepted(2);
        load.assign(2);
        load.assign(2);
        load.release(2);
        load.release(1);
        load.request(0);
        load.request(MAX_WORKERS + 7);
        load.assign(MAX_WORKERS + 7);
        assert_eq!(load.open().collect::<Vec<_>>(), [(1, 0), (2, 1)]);
        assert_eq!(
            load.figures(),
            [
                WorkerFigures {
                    worker: 1,
                    connections: 1,
                    requests: 2,
                    open: 0
                },
                WorkerFigures {
                    worker: 2,
                    connections: 1,
                    requests: 0,
                    open: 1
                }
            ]
        );
        assert_eq!(std::mem::align_of::<Slot>(), 64);
    }
}
