//! Endpoint health: passive outlier ejection (an endpoint that fails several times in a row
//! is left out for a while that grows on repeat) and active probes (TCP connect or HTTP GET).
//!
//! The state lives in atomics on each endpoint, shared by every request; time is passed in as
//! milliseconds since the process started, so the rules are tested without a clock. The last
//! available endpoint of a backend is never ejected.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// When an endpoint is ejected, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EjectionPolicy {
    /// Consecutive failures that eject (0: never).
    pub after_failures: u32,
    /// First ejection time; doubles on each repeat.
    pub base: Duration,
    /// Longest ejection.
    pub max: Duration,
}

impl Default for EjectionPolicy {
    fn default() -> Self {
        Self {
            after_failures: 5,
            base: Duration::from_secs(10),
            max: Duration::from_secs(300),
        }
    }
}

/// Health of one endpoint.
#[derive(Debug, Default)]
pub struct EndpointHealth {
    consecutive_failures: AtomicU32,
    ejections: AtomicU32,
    ejected_until_ms: AtomicU64,
    probe_down: AtomicBool,
    probe_streak: AtomicU32,
    next_probe_ms: AtomicU64,
}

impl EndpointHealth {
    /// Whether requests may go to it at `now_ms`.
    pub fn available(&self, now_ms: u64) -> bool {
        !self.probe_down.load(Relaxed) && now_ms >= self.ejected_until_ms.load(Relaxed)
    }

    /// Whether it is ejected at `now_ms` (for metrics and tests).
    pub fn ejected(&self, now_ms: u64) -> bool {
        now_ms < self.ejected_until_ms.load(Relaxed)
    }

    /// An exchange succeeded.
    pub fn success(&self) {
        if self.consecutive_failures.load(Relaxed) != 0 {
            self.consecutive_failures.store(0, Relaxed);
        }
    }

    /// An exchange failed; ejects when the policy says so and `may_eject` (another endpoint
    /// of the backend is available). Returns whether it was ejected now.
    pub fn failure(&self, now_ms: u64, policy: &EjectionPolicy, may_eject: bool) -> bool {
        let n = self.consecutive_failures.fetch_add(1, Relaxed) + 1;
        if policy.after_failures == 0
            || n < policy.after_failures
            || !may_eject
            || self.ejected(now_ms)
        {
            return false;
        }
        let times = self.ejections.fetch_add(1, Relaxed);
        let factor = 1u32.checked_shl(times.min(16)).unwrap_or(u32::MAX);
        let time = policy.base.saturating_mul(factor).min(policy.max);
        let until = now_ms.saturating_add(u64::try_from(time.as_millis()).unwrap_or(u64::MAX));
        self.ejected_until_ms.store(until, Relaxed);
        self.consecutive_failures.store(0, Relaxed);
        true
    }

    /// Records a probe result with thresholds; returns whether the probe state changed.
    pub fn probe(&self, ok: bool, healthy_threshold: u32, unhealthy_threshold: u32) -> bool {
        let down = self.probe_down.load(Relaxed);
        if ok != down {
            // the result agrees with the current state
            self.probe_streak.store(0, Relaxed);
            return false;
        }
        let streak = self.probe_streak.fetch_add(1, Relaxed) + 1;
        let needed = if down {
            healthy_threshold
        } else {
            unhealthy_threshold
        };
        if streak >= needed.max(1) {
            self.probe_down.store(!down, Relaxed);
            self.probe_streak.store(0, Relaxed);
            return true;
        }
        false
    }

    /// Whether a probe is due at `now_ms`; if so, schedules the next one.
    pub fn probe_due(&self, now_ms: u64, interval: Duration) -> bool {
        let next = self.next_probe_ms.load(Relaxed);
        if now_ms < next {
            return false;
        }
        let then = now_ms.saturating_add(u64::try_from(interval.as_millis()).unwrap_or(u64::MAX));
        self.next_probe_ms
            .compare_exchange(next, then, Relaxed, Relaxed)
            .is_ok()
    }

    /// Whether the active probe says it is down.
    pub fn probe_down(&self) -> bool {
        self.probe_down.load(Relaxed)
    }
}

pub use sluice_io::probe::probe;

#[cfg(test)]
mod tests {
    use super::*;

    const P: EjectionPolicy = EjectionPolicy {
        after_failures: 3,
        base: Duration::from_secs(10),
        max: Duration::from_secs(25),
    };

    #[test]
    fn ejects_after_consecutive_failures_for_a_growing_time() {
        let h = EndpointHealth::default();
        assert!(!h.failure(0, &P, true));
        assert!(!h.failure(0, &P, true));
        h.success();
        assert!(!h.failure(0, &P, true));
        assert!(!h.failure(0, &P, true));
        assert!(h.failure(1_000, &P, true), "third in a row ejects");
        assert!(!h.available(10_999));
        assert!(h.available(11_000));
        for _ in 0..3 {
            h.failure(20_000, &P, true);
        }
        assert!(!h.available(39_999), "twice as long the second time");
        assert!(h.available(40_000));
        for _ in 0..3 {
            h.failure(50_000, &P, true);
        }
        assert!(h.available(75_000), "capped at the maximum");
    }

    #[test]
    fn the_last_available_endpoint_is_never_ejected() {
        let h = EndpointHealth::default();
        for _ in 0..10 {
            assert!(!h.failure(0, &P, false));
        }
        assert!(h.available(0));
        let off = EjectionPolicy {
            after_failures: 0,
            ..P
        };
        for _ in 0..10 {
            assert!(!h.failure(0, &off, true));
        }
    }

    #[test]
    fn probes_flip_state_after_their_thresholds() {
        let h = EndpointHealth::default();
        assert!(!h.probe(false, 2, 2));
        assert!(h.probe(false, 2, 2), "two failures mark it down");
        assert!(!h.available(0));
        assert!(!h.probe(true, 2, 2));
        assert!(!h.probe(false, 2, 2), "a failure resets the streak");
        assert!(!h.probe(true, 2, 2));
        assert!(h.probe(true, 2, 2));
        assert!(h.available(0));
        assert!(h.probe_due(0, Duration::from_secs(1)));
        assert!(!h.probe_due(999, Duration::from_secs(1)));
        assert!(h.probe_due(1_000, Duration::from_secs(1)));
    }
}
