//! Health checks of the addresses the local runtime routes to: a TCP connect, or an HTTP GET
//! whose answer is 2xx or 3xx, every interval. The engine's availability gate reads the result.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Latest health of each address.
#[derive(Default)]
pub struct Health {
    healthy: Mutex<BTreeMap<String, bool>>,
    watched: Mutex<BTreeSet<String>>,
}

impl Health {
    /// Sets the addresses to watch.
    pub fn watch(&self, addresses: BTreeSet<String>) {
        *self.watched.lock().unwrap_or_else(|p| p.into_inner()) = addresses;
    }

    /// How many of `addresses` are healthy.
    pub fn healthy_count(&self, addresses: &[String]) -> u32 {
        let h = self.healthy.lock().unwrap_or_else(|p| p.into_inner());
        addresses
            .iter()
            .filter(|a| h.get(*a).copied().unwrap_or(false))
            .count() as u32
    }

    /// Whether one address is healthy.
    pub fn is_healthy(&self, address: &str) -> bool {
        self.healthy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(address)
            .copied()
            .unwrap_or(false)
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
        let mut h = self.healthy.lock().unwrap_or_else(|p| p.into_inner());
        let mut changed = false;
        for (a, ok) in addrs.into_iter().zip(results) {
            if h.insert(a.clone(), ok) != Some(ok) {
                tracing::info!(address = %a, healthy = ok, "endpoint health changed");
                changed = true;
            }
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
