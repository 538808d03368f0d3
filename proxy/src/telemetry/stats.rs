//! Lock-free request statistics per (route, backend): cumulative counters and latency buckets,
//! and a ring of one-second slots for the recent windows that `/stats` reports.
//!
//! The buckets, classes and kinds are the contract's (`sluice_api::counters`), the same in
//! every proxy, so that counts from many proxies add up. The cumulative part never resets; the windowed part is
//! approximate at slot boundaries (a count racing a slot's reuse can be lost), which is fine for
//! a dashboard figure and is why decisions are made from the cumulative part.
//!
//! Time is an argument (`now_sec`), so that everything here is tested without a clock. The
//! lock-free ring was written here because no crate offers windowed, mergeable, atomic
//! histograms; `hdrhistogram` needs `&mut` on every record.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

pub use sluice_api::counters::{
    BUCKETS, CLASSES, CLIENT_KINDS, Totals, UPSTREAM_KINDS as KINDS, bucket_index, class_index,
    class_label,
};
use sluice_api::{ClientErrorKind, UpstreamErrorKind};

/// The windows `/stats` reports, in seconds.
pub const WINDOWS: [u64; 3] = [10, 60, 300];
/// Slots in the ring: one per second of the longest window.
const SLOTS: usize = 300;

#[derive(Default)]
struct Counts {
    by_class: [AtomicU64; CLASSES],
    errors: [AtomicU64; KINDS],
    client: [AtomicU64; CLIENT_KINDS],
    buckets: Box<[AtomicU64]>,
}

impl Counts {
    fn new() -> Self {
        Self {
            by_class: Default::default(),
            errors: Default::default(),
            client: Default::default(),
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn add_client(&self, kind: ClientErrorKind) {
        if let Some(c) = self.client.get(kind.index()) {
            c.fetch_add(1, Relaxed);
        }
    }

    fn add(&self, class: usize, bucket: Option<usize>, error: Option<UpstreamErrorKind>) {
        if let Some(c) = self.by_class.get(class) {
            c.fetch_add(1, Relaxed);
        }
        if let Some(b) = bucket.and_then(|b| self.buckets.get(b)) {
            b.fetch_add(1, Relaxed);
        }
        if let Some(e) = error.and_then(|e| self.errors.get(e.index())) {
            e.fetch_add(1, Relaxed);
        }
    }

    fn clear(&self) {
        let all = self
            .by_class
            .iter()
            .chain(&self.errors)
            .chain(&self.client)
            .chain(&*self.buckets);
        for a in all {
            a.store(0, Relaxed);
        }
    }

    fn add_into(&self, acc: &mut Totals) {
        for (a, c) in acc.by_class.iter_mut().zip(&self.by_class) {
            *a += c.load(Relaxed);
        }
        for (a, c) in acc.errors.iter_mut().zip(&self.errors) {
            *a += c.load(Relaxed);
        }
        for (a, c) in acc.client_errors.iter_mut().zip(&self.client) {
            *a += c.load(Relaxed);
        }
        for (a, c) in acc.buckets.iter_mut().zip(&*self.buckets) {
            *a += c.load(Relaxed);
        }
    }
}

struct Slot {
    second: AtomicU64,
    counts: Counts,
}

/// Statistics of one (route, backend) pair.
pub struct RequestStats {
    total: Counts,
    ring: Box<[Slot]>,
}

impl Default for RequestStats {
    fn default() -> Self {
        Self::new()
    }
}

impl RequestStats {
    /// Empty statistics.
    pub fn new() -> Self {
        Self {
            total: Counts::new(),
            ring: (0..SLOTS)
                .map(|_| Slot {
                    second: AtomicU64::new(u64::MAX),
                    counts: Counts::new(),
                })
                .collect(),
        }
    }

    /// Records one response (or failure) at second `now_sec`. `latency_micros` is `None` for
    /// exchanges kept out of the latency figures.
    pub fn record(
        &self,
        now_sec: u64,
        status: u16,
        latency_micros: Option<u64>,
        error: Option<UpstreamErrorKind>,
    ) {
        let class = class_index(status);
        let bucket = latency_micros.map(bucket_index);
        self.total.add(class, bucket, error);
        if let Some(slot) = self.slot(now_sec) {
            slot.counts.add(class, bucket, error);
        }
    }

    /// Records a request the client failed itself, at second `now_sec`.
    pub fn record_client_error(&self, now_sec: u64, kind: ClientErrorKind) {
        self.total.add_client(kind);
        if let Some(slot) = self.slot(now_sec) {
            slot.counts.add_client(kind);
        }
    }

    /// The ring slot of `now_sec`, cleared first when it still held an older second.
    fn slot(&self, now_sec: u64) -> Option<&Slot> {
        let slot = self.ring.get((now_sec % SLOTS as u64) as usize)?;
        let seen = slot.second.load(Relaxed);
        if seen != now_sec
            && slot
                .second
                .compare_exchange(seen, now_sec, Relaxed, Relaxed)
                .is_ok()
        {
            slot.counts.clear();
        }
        Some(slot)
    }

    /// Everything since start.
    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        self.total.add_into(&mut t);
        t
    }

    /// The last `window` seconds up to and including `now_sec`.
    pub fn window(&self, now_sec: u64, window: u64) -> Totals {
        let mut t = Totals::default();
        let oldest = now_sec.saturating_sub(window.saturating_sub(1));
        for slot in &*self.ring {
            let s = slot.second.load(Relaxed);
            if s != u64::MAX && s >= oldest && s <= now_sec {
                slot.counts.add_into(&mut t);
            }
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_count_only_their_seconds() {
        let s = RequestStats::new();
        s.record(100, 200, Some(1_000), None);
        s.record(105, 503, Some(2_000), Some(UpstreamErrorKind::Closed));
        s.record(109, 200, None, None);
        assert_eq!(s.window(109, 10).requests(), 3);
        assert_eq!(s.window(109, 5).requests(), 2);
        assert_eq!(s.window(110, 10).requests(), 2);
        assert_eq!(
            s.window(109, 10).errors[UpstreamErrorKind::Closed.index()],
            1
        );
        // a slot reused 300 s later forgets its old second
        s.record(400, 200, None, None);
        assert_eq!(s.window(400, 10).requests(), 1);
        assert_eq!(s.window(400, 300).requests(), 3);
        assert_eq!(s.totals().requests(), 4);
        assert_eq!(s.totals().buckets.iter().sum::<u64>(), 2);
    }

    #[test]
    fn client_errors_are_kept_apart_from_the_backends_figures() {
        let s = RequestStats::new();
        s.record(10, 200, Some(1_000), None);
        s.record_client_error(10, ClientErrorKind::BodyBroken);
        s.record_client_error(11, ClientErrorKind::BodyTimeout);
        s.record_client_error(11, ClientErrorKind::BodyBroken);
        let t = s.totals();
        assert_eq!(
            t.requests(),
            1,
            "a client's failure is no response of the backend"
        );
        assert_eq!(t.by_class[4], 0);
        assert_eq!(t.errors, [0; KINDS]);
        assert_eq!(t.client_errors, [2, 1]);
        assert_eq!(s.window(11, 1).client_errors, [1, 1]);
        assert_eq!(s.window(11, 1).requests(), 0);
    }

    #[test]
    fn quantiles_come_from_bucket_bounds() {
        let s = RequestStats::new();
        for _ in 0..90 {
            s.record(1, 200, Some(100), None);
        }
        for _ in 0..10 {
            s.record(1, 200, Some(10_000), None);
        }
        let t = s.totals();
        assert_eq!(t.quantile_seconds(0.5), Some(0.0001));
        assert_eq!(t.quantile_seconds(0.9), Some(0.0001));
        let p99 = t.quantile_seconds(0.99).unwrap();
        assert!((0.01..0.0119).contains(&p99));
        assert_eq!(Totals::default().quantile_seconds(0.5), None);
    }
}
