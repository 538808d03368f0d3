//! Health checks of the addresses the local runtime routes to: a TCP connect, or an HTTP GET
//! whose answer is 2xx or 3xx, every interval. The engine's availability gate reads the result:
//! an address is available once it has been healthy for the rollout's `minReadySeconds`, as a
//! pod is on Kubernetes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::time::Time;

/// Latest health of each address: since when it has been healthy, if it is.
#[derive(Default)]
pub struct Health {
    healthy: Mutex<BTreeMap<String, Option<Time>>>,
    watched: Mutex<BTreeSet<String>>,
}

impl Health {
    /// Sets the addresses to watch.
    pub fn watch(&self, addresses: BTreeSet<String>) {
        *self.watched.lock().unwrap_or_else(|p| p.into_inner()) = addresses;
    }

    /// How many of `addresses` have been healthy for at least `min_ready` at `now`.
    pub fn available_count(&self, addresses: &[String], min_ready: Duration, now: Time) -> u32 {
        let h = self.healthy.lock().unwrap_or_else(|p| p.into_inner());
        addresses
            .iter()
            .filter(|a| {
                h.get(*a)
                    .copied()
                    .flatten()
                    .is_some_and(|since| now.since(since) >= min_ready)
            })
            .count() as u32
    }

    /// Records one check of `address` at `now`; returns whether its health changed.
    pub fn record(&self, address: &str, ok: bool, now: Time) -> bool {
        let mut h = self.healthy.lock().unwrap_or_else(|p| p.into_inner());
        let was = h.get(address).copied().flatten();
        let since = match (ok, was) {
            (true, Some(since)) => Some(since),
            (true, None) => Some(now),
            (false, _) => None,
        };
        let changed = h
            .insert(address.to_owned(), since)
            .is_none_or(|before| before.is_some() != ok);
        if changed {
            tracing::info!(address = %address, healthy = ok, "endpoint health changed");
        }
        changed
    }

    /// Checks every watched address once, concurrently; returns whether anything changed.
    pub async fn check_all(&self, path: Option<&str>, timeout: Duration) -> bool {
        let addrs: Vec<String> = self
            .watched
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect();
        let checks = addrs.iter().map(|a| check(a, path, timeout));
        let results = futures_util::future::join_all(checks).await;
        let now = Time::now();
        let mut changed = false;
        for (a, ok) in addrs.into_iter().zip(results) {
            changed |= self.record(&a, ok, now);
        }
        changed
    }
}

/// One check: the proxy's own probe (TCP connect, or HTTP GET answering 2xx/3xx).
pub async fn check(address: &str, path: Option<&str>, timeout: Duration) -> bool {
    sluice_io::probe::probe(address, path, timeout).await
}

/// Runs checks forever at `interval`, calling `on_change` when a result changes.
pub async fn run(
    health: Arc<Health>,
    path: Option<String>,
    interval: Duration,
    timeout: Duration,
    on_change: impl Fn() + Send + 'static,
) {
    loop {
        if health.check_all(path.as_deref(), timeout).await {
            on_change();
        }
        tokio::time::sleep(interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_available_once_healthy_for_min_ready() {
        let h = Health::default();
        let a = vec!["127.0.0.1:1".to_owned()];
        let ready = Duration::from_secs(10);
        assert_eq!(h.available_count(&a, Duration::ZERO, Time(0)), 0);
        assert!(h.record(&a[0], true, Time(1_000)));
        assert_eq!(h.available_count(&a, Duration::ZERO, Time(1_000)), 1);
        assert_eq!(h.available_count(&a, ready, Time(10_999)), 0);
        // a check that finds it healthy again does not restart the clock
        assert!(!h.record(&a[0], true, Time(6_000)));
        assert_eq!(h.available_count(&a, ready, Time(11_000)), 1);
        // unhealthy: the clock starts again when it recovers
        assert!(h.record(&a[0], false, Time(12_000)));
        assert_eq!(h.available_count(&a, Duration::ZERO, Time(12_000)), 0);
        assert!(h.record(&a[0], true, Time(13_000)));
        assert_eq!(h.available_count(&a, ready, Time(22_000)), 0);
        assert_eq!(h.available_count(&a, ready, Time(23_000)), 1);
    }
}
