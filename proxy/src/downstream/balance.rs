//! The exact balance of client connections over the worker threads. The kernel hands each new
//! connection to one worker's listening socket by a hash of its addresses, so a few long-lived
//! keep-alive connections can land most on one worker while the other idles, and a worker
//! never takes over another's. As Envoy's `exact_balance` does, the worker that accepted a
//! connection hands it to the worker serving the fewest, when that is not itself: the counts
//! stay within one of each other whatever the hash did. A connection is handed over once, just
//! accepted, before anything is read from it.

use std::sync::Arc;

use tokio::sync::mpsc;

/// The worker that should serve a new connection: the one serving the fewest (`open` gives
/// `(worker, connections)`), `own` when it is one of them, else the lowest-numbered.
pub fn pick(own: usize, open: impl IntoIterator<Item = (usize, usize)>) -> usize {
    let mut best: Option<(usize, usize)> = None;
    let mut own_count = None;
    for (w, n) in open {
        if w == own {
            own_count = Some(n);
        }
        if best.is_none_or(|(_, m)| n < m) {
            best = Some((w, n));
        }
    }
    match (best, own_count) {
        (Some((_, m)), Some(n)) if n <= m => own,
        (Some((w, _)), _) => w,
        (None, _) => own,
    }
}

/// One worker's end of the balance between the workers serving one listening address: what
/// it hands to the others (`T`: a connection) and what they hand to it.
#[derive(Debug)]
pub struct Balance<T> {
    /// This worker's number, from 1.
    pub me: usize,
    peers: Arc<[mpsc::UnboundedSender<T>]>,
    /// Connections handed to this worker.
    pub inbox: mpsc::UnboundedReceiver<T>,
}

impl<T> Balance<T> {
    /// One end for each of `n` workers, numbered from 1.
    pub fn between(n: usize) -> Vec<Balance<T>> {
        let (senders, inboxes): (Vec<_>, Vec<_>) =
            (0..n).map(|_| mpsc::unbounded_channel()).unzip();
        let peers: Arc<[_]> = senders.into();
        inboxes
            .into_iter()
            .enumerate()
            .map(|(i, inbox)| Balance {
                me: i + 1,
                peers: peers.clone(),
                inbox,
            })
            .collect()
    }

    /// Hands `handed` to worker `to`; gives it back if that worker has stopped.
    pub fn hand(&self, to: usize, handed: T) -> Result<(), T> {
        match to.checked_sub(1).and_then(|i| self.peers.get(i)) {
            Some(peer) => peer.send(handed).map_err(|e| e.0),
            None => Err(handed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_keeps_a_connection_unless_another_serves_fewer() {
        assert_eq!(pick(1, [(1, 0), (2, 0)]), 1);
        assert_eq!(pick(2, [(1, 0), (2, 0)]), 2);
        assert_eq!(pick(1, [(1, 3), (2, 2)]), 2);
        assert_eq!(pick(2, [(1, 3), (2, 2)]), 2);
        assert_eq!(
            pick(3, [(1, 1), (2, 1), (3, 2)]),
            1,
            "the lowest of the fewest"
        );
        assert_eq!(pick(1, []), 1, "no counts: kept");
        assert_eq!(pick(0, [(1, 5), (2, 4)]), 2, "from outside the workers");
    }

    /// Whatever worker the kernel picks for each new connection (every sequence of 8 over 3
    /// workers), and whichever closes, the workers' counts end within one of each other.
    #[test]
    fn any_arrival_order_ends_balanced() {
        let workers = 3usize;
        for seq in 0..workers.pow(8) {
            let mut open = vec![0usize; workers];
            let mut s = seq;
            for step in 0..8 {
                let arrived_at = s % workers + 1;
                s /= workers;
                let to = pick(
                    arrived_at,
                    open.iter().copied().enumerate().map(|(i, n)| (i + 1, n)),
                );
                open[to - 1] += 1;
                // every third step a connection of the busiest worker closes
                if step % 3 == 2 {
                    let busiest = (0..workers).max_by_key(|&i| open[i]).unwrap();
                    open[busiest] -= 1;
                }
                let (lo, hi) = (open.iter().min().unwrap(), open.iter().max().unwrap());
                assert!(hi - lo <= 1, "{seq}: {open:?}");
            }
        }
    }

    #[tokio::test]
    async fn a_connection_handed_over_arrives_and_a_stopped_worker_gives_it_back() {
        let mut ends = Balance::<&str>::between(2);
        let second = ends.pop().unwrap();
        let mut first = ends.pop().unwrap();
        assert_eq!((first.me, second.me), (1, 2));
        second.hand(1, "a connection").unwrap();
        assert_eq!(first.inbox.recv().await, Some("a connection"));
        drop(first);
        assert_eq!(second.hand(1, "another"), Err("another"), "given back");
        assert_eq!(second.hand(9, "more"), Err("more"), "no such worker");
    }
}
