//! The counters a proxy keeps per (route, backend) and reports, what they mean, and their
//! arithmetic: the one place that knows which status class index is 5xx, how counters from
//! many proxies add up, and how a window is the difference of two snapshots.
//!
//! Latency buckets are fixed and log-spaced (four per octave from 50 µs to about 150 s, ±9 %
//! precision), the same in every proxy, so that counts from many proxies can be summed
//! bucket by bucket and quantiles taken from the sum.

use serde::{Deserialize, Serialize};

/// Number of latency buckets; the last one is the overflow bucket (+Inf).
pub const BUCKETS: usize = 88;
/// Lower edge of the bucket scale, in microseconds.
const FIRST_BOUND_MICROS: f64 = 50.0;
/// Buckets per doubling.
const PER_OCTAVE: f64 = 4.0;
/// Status classes 1xx..5xx.
pub const CLASSES: usize = 5;
/// The class index of 5xx answers: a backend's errors.
pub const SERVER_ERROR_CLASS: usize = 4;
/// Kinds of upstream errors.
pub const UPSTREAM_KINDS: usize = UpstreamErrorKind::ALL.len();
/// Kinds of client errors.
pub const CLIENT_KINDS: usize = ClientErrorKind::ALL.len();

/// Upper bound of bucket `i` in seconds (`f64::INFINITY` for the last one).
pub fn bucket_upper_seconds(i: usize) -> f64 {
    if i + 1 >= BUCKETS {
        return f64::INFINITY;
    }
    FIRST_BOUND_MICROS * (i as f64 / PER_OCTAVE).exp2() / 1e6
}

/// The bucket a latency falls in.
pub fn bucket_index(micros: u64) -> usize {
    if micros as f64 <= FIRST_BOUND_MICROS {
        return 0;
    }
    let i = (PER_OCTAVE * (micros as f64 / FIRST_BOUND_MICROS).log2()).ceil();
    // `i` is positive and finite here; the cast saturates on anything absurd.
    (i as usize).min(BUCKETS - 1)
}

/// The status class index of a status code: 0 for 1xx … 4 for 5xx.
pub fn class_index(status: u16) -> usize {
    usize::from(status / 100).clamp(1, CLASSES) - 1
}

/// Label of a class index.
pub fn class_label(i: usize) -> &'static str {
    ["1xx", "2xx", "3xx", "4xx", "5xx"][i.min(CLASSES - 1)]
}

/// Why an upstream exchange failed; a closed set, used as the `kind` metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UpstreamErrorKind {
    /// The TCP connection could not be made (refused, unreachable, connect timeout).
    Connect,
    /// No response head arrived within the request timeout.
    Timeout,
    /// The connection closed or was reset before a complete response head.
    Closed,
    /// The upstream spoke something that is not valid HTTP.
    Protocol,
    /// The backend had no endpoint to send to.
    NoEndpoint,
}

impl UpstreamErrorKind {
    /// Every kind, in label order.
    pub const ALL: [UpstreamErrorKind; 5] = [
        Self::Connect,
        Self::Timeout,
        Self::Closed,
        Self::Protocol,
        Self::NoEndpoint,
    ];

    /// The metrics label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Timeout => "timeout",
            Self::Closed => "closed",
            Self::Protocol => "protocol",
            Self::NoEndpoint => "no_endpoint",
        }
    }

    /// Position in [`Self::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// How a client failed its own request; a closed set, used as the `kind` label of
/// `sluice_client_errors_total`. These are never the backend's: they count neither as its
/// 5xx nor as its upstream errors, and feed neither ejection nor analysis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientErrorKind {
    /// The request body broke off: a malformed chunk, or the client closed or reset the
    /// connection before the body's end.
    BodyBroken,
    /// The client was still sending its body when the request timeout came.
    BodyTimeout,
}

impl ClientErrorKind {
    /// Every kind, in label order.
    pub const ALL: [ClientErrorKind; 2] = [Self::BodyBroken, Self::BodyTimeout];

    /// The metrics label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::BodyBroken => "body_broken",
            Self::BodyTimeout => "body_timeout",
        }
    }

    /// Position in [`Self::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Plain counts: a proxy's snapshot, a sum of snapshots from several proxies, or the
/// difference of two (a window).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Totals {
    /// Responses by status class, 1xx..5xx.
    pub by_class: [u64; CLASSES],
    /// Upstream errors by kind, in [`UpstreamErrorKind::ALL`] order.
    pub errors: [u64; UPSTREAM_KINDS],
    /// Requests the client failed itself, by kind, in [`ClientErrorKind::ALL`] order: not in
    /// `by_class`, so never in a backend's requests, errors or rates.
    #[serde(default)]
    pub client_errors: [u64; CLIENT_KINDS],
    /// Latency bucket counts (only responses that were timed).
    pub buckets: Vec<u64>,
}

impl Default for Totals {
    fn default() -> Self {
        Self {
            by_class: [0; CLASSES],
            errors: [0; UPSTREAM_KINDS],
            client_errors: [0; CLIENT_KINDS],
            buckets: vec![0; BUCKETS],
        }
    }
}

impl Totals {
    /// All responses.
    pub fn requests(&self) -> u64 {
        self.by_class.iter().sum()
    }

    /// The backend's errors: 5xx answers (upstream failures are answered 5xx, so they are in).
    pub fn server_errors(&self) -> u64 {
        self.by_class[SERVER_ERROR_CLASS]
    }

    /// The share of responses that were 5xx; `None` with no responses.
    pub fn error_rate(&self) -> Option<f64> {
        let n = self.requests();
        (n > 0).then(|| self.server_errors() as f64 / n as f64)
    }

    /// The share of responses that were not 5xx; `None` with no responses.
    pub fn success_rate(&self) -> Option<f64> {
        self.error_rate().map(|e| 1.0 - e)
    }

    /// The latency below which a share `q` (0..=1) of timed responses fell, as the upper bound
    /// of the bucket that holds it; `None` with no timed responses.
    pub fn quantile_seconds(&self, q: f64) -> Option<f64> {
        let n: u64 = self.buckets.iter().sum();
        if n == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.buckets.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(bucket_upper_seconds(i));
            }
        }
        None
    }

    /// `self += other`, saturating: a sum of counters never wraps round to a small number.
    pub fn add(&mut self, other: &Totals) {
        self.zip_with(other, u64::saturating_add);
    }

    /// `self - earlier`, each counter floored at 0: what happened between two snapshots.
    pub fn minus(&self, earlier: &Totals) -> Totals {
        let mut out = self.clone();
        out.zip_with(earlier, u64::saturating_sub);
        out
    }

    fn zip_with(&mut self, other: &Totals, f: fn(u64, u64) -> u64) {
        for (a, b) in self.by_class.iter_mut().zip(&other.by_class) {
            *a = f(*a, *b);
        }
        for (a, b) in self.errors.iter_mut().zip(&other.errors) {
            *a = f(*a, *b);
        }
        for (a, b) in self.client_errors.iter_mut().zip(&other.client_errors) {
            *a = f(*a, *b);
        }
        if self.buckets.len() < other.buckets.len() {
            self.buckets.resize(other.buckets.len(), 0);
        }
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a = f(*a, *b);
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn buckets_grow_by_a_fourth_of_an_octave() {
        assert_eq!(bucket_index(0), 0);
        assert_eq!(bucket_index(50), 0);
        assert_eq!(bucket_index(51), 1);
        assert_eq!(bucket_index(100), 4);
        assert_eq!(bucket_index(101), 5);
        assert_eq!(bucket_index(u64::MAX), BUCKETS - 1);
        assert!((bucket_upper_seconds(4) - 0.0001).abs() < 1e-12);
        assert!(bucket_upper_seconds(BUCKETS - 1).is_infinite());
        // every latency up to 100 s falls in a bucket whose upper bound is at most 19 % above it
        for micros in [60, 999, 12_345, 1_000_000, 99_000_000] {
            let upper = bucket_upper_seconds(bucket_index(micros)) * 1e6;
            assert!(upper >= micros as f64 && upper <= micros as f64 * 1.19 + 1.0);
        }
    }

    #[test]
    fn classes_cover_every_status() {
        assert_eq!(class_index(101), 0);
        assert_eq!(class_index(200), 1);
        assert_eq!(class_index(302), 2);
        assert_eq!(class_index(404), 3);
        assert_eq!(class_index(503), SERVER_ERROR_CLASS);
        assert_eq!(class_index(999), SERVER_ERROR_CLASS);
        assert_eq!(class_index(0), 0);
        assert_eq!(class_label(SERVER_ERROR_CLASS), "5xx");
    }

    #[test]
    fn kind_indices_follow_all() {
        for (i, k) in UpstreamErrorKind::ALL.iter().enumerate() {
            assert_eq!(k.index(), i);
        }
        for (i, k) in ClientErrorKind::ALL.iter().enumerate() {
            assert_eq!(k.index(), i);
        }
    }

    fn totals(ok: u64, bad: u64) -> Totals {
        let mut t = Totals::default();
        t.by_class[class_index(200)] = ok;
        t.by_class[class_index(503)] = bad;
        t
    }

    #[test]
    fn rates_count_only_5xx_as_errors_and_are_none_without_requests() {
        let mut t = totals(95, 5);
        t.by_class[class_index(404)] = 100;
        t.client_errors = [7, 7];
        assert_eq!(t.requests(), 200);
        assert_eq!(t.server_errors(), 5);
        assert_eq!(t.error_rate(), Some(0.025));
        assert_eq!(t.success_rate(), Some(0.975));
        assert_eq!(Totals::default().error_rate(), None);
        assert_eq!(Totals::default().success_rate(), None);
    }

    #[test]
    fn quantiles_come_from_bucket_bounds() {
        let mut t = Totals::default();
        t.buckets[bucket_index(100)] = 90;
        t.buckets[bucket_index(10_000)] = 10;
        assert_eq!(t.quantile_seconds(0.5), Some(0.0001));
        assert_eq!(t.quantile_seconds(0.9), Some(0.0001));
        let p99 = t.quantile_seconds(0.99).unwrap();
        assert!((0.01..0.0119).contains(&p99));
        assert_eq!(Totals::default().quantile_seconds(0.5), None);
    }

    #[test]
    fn sums_saturate_and_take_the_longer_bucket_list() {
        let mut a = totals(u64::MAX - 1, 1);
        let mut b = totals(5, 1);
        b.buckets.push(3);
        a.add(&b);
        assert_eq!(a.by_class[1], u64::MAX);
        assert_eq!(a.server_errors(), 2);
        assert_eq!(a.buckets.len(), BUCKETS + 1);
        assert_eq!(a.buckets[BUCKETS], 3);
    }

    proptest! {
        #[test]
        fn a_window_is_what_was_added(
            base in proptest::collection::vec(0u64..1_000_000, CLASSES),
            more in proptest::collection::vec(0u64..1_000_000, CLASSES),
            errors in 0u64..1_000, client in 0u64..1_000,
        ) {
            let mut earlier = Totals::default();
            earlier.by_class.copy_from_slice(&base);
            let mut added = Totals::default();
            added.by_class.copy_from_slice(&more);
            added.errors[UpstreamErrorKind::Closed.index()] = errors;
            added.client_errors[ClientErrorKind::BodyBroken.index()] = client;
            added.buckets[3] = errors;
            let mut later = earlier.clone();
            later.add(&added);
            prop_assert_eq!(later.minus(&earlier), added);
            // a counter that went down (a restart) never gives a negative window
            prop_assert_eq!(earlier.minus(&later).requests(), 0);
        }
    }
}
