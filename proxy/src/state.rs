//! The state one proxy process shares between its listeners, its admin API and (later) its
//! controller subscription: the route table behind an `ArcSwap`, and what outlives tables.
//!
//! Guarantees: a new table is validated completely before it is stored; a request loads the
//! table once; writers are serialised so that no update is lost between two writers; a failed
//! update changes nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Instant;

use arc_swap::ArcSwap;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::error::{Error, Result};
use crate::telemetry::metrics::{self as telemetry, TelemetryRegistry};
use crate::upstream::{UpstreamSettings, Upstreams};
use crate::{BuildContext, RouteTable};
use sluice_api::table::TableSpec;

/// State shared by everything in one proxy process.
pub struct Shared {
    table: ArcSwap<RouteTable>,
    write: tokio::sync::Mutex<()>,
    /// Telemetry that outlives tables.
    pub telemetry: TelemetryRegistry,
    /// Upstream clients.
    pub upstreams: Upstreams,
    started: Instant,
    draining: AtomicBool,
    ready: AtomicBool,
    controlled: AtomicBool,
    /// The Prometheus exporter, when installed.
    pub prometheus: Option<PrometheusHandle>,
    /// Bearer token required for admin writes, if configured.
    pub admin_token: Option<String>,
    /// How requests are handled.
    pub settings: RequestSettings,
    /// Changes the log filter at run time, when logging allows it.
    pub log_control: std::sync::OnceLock<LogControl>,
    /// Connections and requests per worker thread.
    pub workers: crate::telemetry::workers::WorkerLoad,
}

/// Changes the log filter of the running process.
pub type LogControl = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// Settings of the request path.
#[derive(Debug, Clone, Default)]
pub struct RequestSettings {
    /// When endpoints are ejected.
    pub ejection: crate::upstream::health::EjectionPolicy,
    /// How forwarding headers are set.
    pub forwarded: crate::config::ForwardedMode,
    /// Clients whose forwarding headers are kept.
    pub trusted: Vec<crate::downstream::headers::Cidr>,
    /// One log line per request.
    pub access_log: bool,
}

impl Shared {
    /// State with an empty table.
    pub fn new(
        upstream: &UpstreamSettings,
        prometheus: Option<PrometheusHandle>,
        admin_token: Option<String>,
    ) -> Self {
        Self {
            table: ArcSwap::from_pointee(RouteTable::empty()),
            write: tokio::sync::Mutex::new(()),
            telemetry: TelemetryRegistry::default(),
            upstreams: Upstreams::new(upstream),
            started: Instant::now(),
            draining: AtomicBool::new(false),
            ready: AtomicBool::new(false),
            controlled: AtomicBool::new(false),
            prometheus,
            admin_token,
            settings: RequestSettings::default(),
            log_control: std::sync::OnceLock::new(),
            workers: crate::telemetry::workers::WorkerLoad::default(),
        }
    }

    /// Milliseconds since the process started: the clock of endpoint ejections.
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The current table (one atomic load).
    pub fn table(&self) -> Arc<RouteTable> {
        self.table.load_full()
    }

    /// When the process started: the epoch of [`Self::sec_of`].
    pub fn epoch(&self) -> Instant {
        self.started
    }

    /// Whole seconds since the process started: the clock of the stats windows.
    pub fn now_sec(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// Seconds since start of an instant.
    pub fn sec_of(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.started).as_secs()
    }

    /// Whether the process is shutting down.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Relaxed)
    }

    /// Marks the process as shutting down (not ready).
    pub fn start_draining(&self) {
        self.draining.store(true, Relaxed);
    }

    /// Whether the proxy has a table to serve (from its file, its controller or its cache).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Relaxed) && !self.is_draining()
    }

    /// Marks the proxy as having a table.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Relaxed);
    }

    /// Whether a controller owns the table (admin writes are refused).
    pub fn is_controlled(&self) -> bool {
        self.controlled.load(Relaxed)
    }

    /// Hands the table to a controller.
    pub fn set_controlled(&self, controlled: bool) {
        self.controlled.store(controlled, Relaxed);
    }

    /// Validates `spec` and, if valid, makes it the running table.
    pub async fn apply(&self, spec: TableSpec) -> Result<Arc<RouteTable>> {
        let _writer = self.write.lock().await;
        self.build_and_store(spec)
    }

    /// Changes one route's weight (and total, if given), keeping everything else.
    pub async fn set_weight(
        &self,
        route: &str,
        weight: u32,
        total: Option<u32>,
    ) -> Result<Arc<RouteTable>> {
        let _writer = self.write.lock().await;
        let mut spec = self.table().spec().clone();
        let r = spec
            .routes
            .iter_mut()
            .find(|r| r.name == route)
            .ok_or_else(|| Error::UnknownRoute(route.to_owned()))?;
        r.weight = weight;
        if let Some(t) = total {
            r.total = t;
        }
        r.generation = None;
        self.build_and_store(spec)
    }

    fn build_and_store(&self, spec: TableSpec) -> Result<Arc<RouteTable>> {
        let current = self.table();
        let built = RouteTable::build(
            spec,
            &BuildContext {
                previous: Some(&current),
                telemetry: &self.telemetry,
            },
        );
        let table = match built {
            Ok(t) => Arc::new(t),
            Err(e) => {
                metrics::counter!(telemetry::TABLE_UPDATES_TOTAL, "result" => "invalid")
                    .increment(1);
                return Err(e);
            }
        };
        self.table.store(table.clone());
        metrics::counter!(telemetry::TABLE_UPDATES_TOTAL, "result" => "ok").increment(1);
        publish_gauges(&table, &current);
        Ok(table)
    }
}

/// Sets the generation and weight gauges of the routes that changed from `previous` (a
/// route kept as it was still shows its figures).
fn publish_gauges(table: &RouteTable, previous: &RouteTable) {
    let changed = table
        .routes()
        .iter()
        .filter(|r| previous.route(&r.name).is_none_or(|p| !Arc::ptr_eq(p, r)));
    for r in changed {
        let route = r.name.clone();
        metrics::gauge!(telemetry::ROUTE_GENERATION, "route" => route.clone())
            .set(r.generation as f64);
        if let Some(s) = r.stable_target() {
            metrics::gauge!(telemetry::ROUTE_WEIGHT, "route" => route.clone(), "backend" => s.backend.name.clone())
                .set(f64::from(r.total - r.weight));
        }
        if let Some(c) = r.canary_target() {
            metrics::gauge!(telemetry::ROUTE_WEIGHT, "route" => route, "backend" => c.backend.name.clone())
                .set(f64::from(r.weight));
        }
    }
}
