//! Metric names, the Prometheus recorder, and the per-(route, backend) handles that the request
//! path records into without looking anything up.
//!
//! Every label value comes from a closed set: route and backend names (validated, from the
//! table), status classes, and [`UpstreamErrorKind`] labels. Handles are registered when a table
//! is built, so a request only increments atomics.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::error::{ClientErrorKind, UpstreamErrorKind};
use crate::telemetry::stats::{self, RequestStats};

/// Responses by route, backend and status class.
pub const REQUESTS_TOTAL: &str = "sluice_requests_total";
/// Time from receiving a request to the upstream's response head, as a histogram.
pub const REQUEST_DURATION_SECONDS: &str = "sluice_request_duration_seconds";
/// Failed upstream exchanges by route, backend and kind.
pub const UPSTREAM_ERRORS_TOTAL: &str = "sluice_upstream_errors_total";
/// Requests the client failed itself (a broken or too slow body) by route, backend and kind;
/// never counted as the backend's.
pub const CLIENT_ERRORS_TOTAL: &str = "sluice_client_errors_total";
/// The weight of each backend of a route, out of the route's total.
pub const ROUTE_WEIGHT: &str = "sluice_route_weight";
/// The generation of each route's applied table.
pub const ROUTE_GENERATION: &str = "sluice_route_generation";
/// Open upgraded connections (WebSocket and others) by route and backend.
pub const UPGRADED_CONNECTIONS: &str = "sluice_upgraded_connections";
/// Open downstream connections.
pub const OPEN_CONNECTIONS: &str = "sluice_open_connections";
/// Config file reloads (SIGHUP) by result (`ok` or `invalid`).
pub const CONFIG_RELOADS_TOTAL: &str = "sluice_config_reloads_total";
/// Route table applications by result (`ok` or `invalid`).
pub const TABLE_UPDATES_TOTAL: &str = "sluice_table_updates_total";

/// Buckets of [`REQUEST_DURATION_SECONDS`], fixed so that histograms of many proxies add up.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Installs the global Prometheus recorder; call once, at start-up.
pub fn install_prometheus() -> Result<PrometheusHandle, String> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(REQUEST_DURATION_SECONDS.to_owned()),
            &DURATION_BUCKETS,
        )
        .map_err(|e| e.to_string())?
        .install_recorder()
        .map_err(|e| e.to_string())
}

/// Registers metric descriptions (the `# HELP` lines).
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        REQUESTS_TOTAL,
        "Responses by route, backend and status class."
    );
    describe_histogram!(
        REQUEST_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "Time from a request's arrival to the upstream's response head."
    );
    describe_counter!(
        UPSTREAM_ERRORS_TOTAL,
        "Failed upstream exchanges by route, backend and kind."
    );
    describe_counter!(
        CLIENT_ERRORS_TOTAL,
        "Requests the client failed itself (a broken or too slow body) by route, backend and kind."
    );
    describe_gauge!(
        ROUTE_WEIGHT,
        "Weight of each backend of a route, out of the route's total."
    );
    describe_gauge!(
        ROUTE_GENERATION,
        "Generation of each route's applied table."
    );
    describe_gauge!(OPEN_CONNECTIONS, "Open downstream connections.");
    describe_gauge!(
        UPGRADED_CONNECTIONS,
        "Open upgraded connections (WebSocket and others) by route and backend."
    );
    describe_counter!(
        CONFIG_RELOADS_TOTAL,
        "Config file reloads (SIGHUP) by result (ok or invalid)."
    );
    describe_counter!(
        TABLE_UPDATES_TOTAL,
        "Route table applications by result (ok or invalid)."
    );
}

/// Everything recorded for one (route, backend) pair.
pub struct PairTelemetry {
    upgraded: metrics::Gauge,
    requests: [Counter; stats::CLASSES],
    duration: Histogram,
    errors: [Counter; UpstreamErrorKind::ALL.len()],
    client_errors: [Counter; ClientErrorKind::ALL.len()],
    /// The pair's statistics, for `/stats` and reports.
    pub stats: RequestStats,
}

impl PairTelemetry {
    fn register(route: &str, backend: &str) -> Self {
        let labels = |extra: (&'static str, &'static str)| {
            [
                ("route", route.to_owned()),
                ("backend", backend.to_owned()),
                (extra.0, extra.1.to_owned()),
            ]
        };
        Self {
            upgraded: metrics::gauge!(
                UPGRADED_CONNECTIONS,
                &[("route", route.to_owned()), ("backend", backend.to_owned())]
            ),
            requests: std::array::from_fn(|i| {
                metrics::counter!(
                    REQUESTS_TOTAL,
                    &labels(("code_class", stats::class_label(i)))
                )
            }),
            duration: metrics::histogram!(
                REQUEST_DURATION_SECONDS,
                &[("route", route.to_owned()), ("backend", backend.to_owned())]
            ),
            errors: UpstreamErrorKind::ALL
                .map(|k| metrics::counter!(UPSTREAM_ERRORS_TOTAL, &labels(("kind", k.label())))),
            client_errors: ClientErrorKind::ALL
                .map(|k| metrics::counter!(CLIENT_ERRORS_TOTAL, &labels(("kind", k.label())))),
            stats: RequestStats::new(),
        }
    }

    /// Counts an open upgraded connection until the guard is dropped.
    pub fn upgraded(&self) -> UpgradedGuard {
        self.upgraded.increment(1.0);
        UpgradedGuard(self.upgraded.clone())
    }

    /// Counts one failed exchange with an upstream (a request may have two: a connect failure
    /// retried on another endpoint).
    pub fn upstream_failed(&self, kind: UpstreamErrorKind) {
        if let Some(c) = self.errors.get(kind.index()) {
            c.increment(1);
        }
    }

    /// Records a request the client failed itself: kept out of the pair's responses.
    pub fn client_failed(&self, now_sec: u64, kind: ClientErrorKind) {
        if let Some(c) = self.client_errors.get(kind.index()) {
            c.increment(1);
        }
        self.stats.record_client_error(now_sec, kind);
    }

    /// Records one answered request (its upstream errors are counted by
    /// [`PairTelemetry::upstream_failed`]).
    pub fn record(
        &self,
        now_sec: u64,
        status: u16,
        latency: Option<std::time::Duration>,
        error: Option<UpstreamErrorKind>,
    ) {
        let class = stats::class_index(status);
        if let Some(c) = self.requests.get(class) {
            c.increment(1);
        }
        if let Some(l) = latency {
            self.duration.record(l.as_secs_f64());
        }
        let micros = latency.map(|l| u64::try_from(l.as_micros()).unwrap_or(u64::MAX));
        self.stats.record(now_sec, status, micros, error);
    }
}

/// Decrements the upgraded-connections gauge when dropped.
pub struct UpgradedGuard(metrics::Gauge);

impl Drop for UpgradedGuard {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// Keeps each pair's telemetry across table swaps, so counters and windows carry on.
#[derive(Default)]
pub struct TelemetryRegistry {
    pairs: Mutex<HashMap<(String, String), Arc<PairTelemetry>>>,
}

impl TelemetryRegistry {
    /// The telemetry of a pair, created on first use.
    pub fn pair(&self, route: &str, backend: &str) -> Arc<PairTelemetry> {
        let mut pairs = self.pairs.lock().unwrap_or_else(|p| p.into_inner());
        pairs
            .entry((route.to_owned(), backend.to_owned()))
            .or_insert_with(|| Arc::new(PairTelemetry::register(route, backend)))
            .clone()
    }
}
