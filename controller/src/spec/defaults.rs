//! Every default of a field a user may leave out, written once (as Argo keeps its own in
//! `utils/defaults`): the Rollout's, the analysis providers', the local runtime's and the
//! control plane's. Code that needs a default reads it here; the README's tables quote these.

use std::time::Duration;

// --- Rollout (Argo's defaults) ---

/// `spec.replicas`.
pub const REPLICAS: i32 = 1;
/// `spec.progressDeadlineSeconds`.
pub const PROGRESS_DEADLINE_SECONDS: u32 = 600;
/// `scaleDownDelaySeconds` and `abortScaleDownDelaySeconds`.
pub const SCALE_DOWN_DELAY_SECONDS: u32 = 30;
/// `spec.revisionHistoryLimit`.
pub const REVISION_HISTORY_LIMIT: i32 = 10;
/// `trafficRouting.maxTrafficWeight`: weights are percentages.
pub const MAX_TRAFFIC_WEIGHT: u32 = sluice_api::limits::DEFAULT_TOTAL;
/// `setMirrorRoute.percentage`.
pub const MIRROR_PERCENTAGE: u32 = 100;

// --- sluice's routing ---

/// The header that sends a request to a blue/green preview.
pub const PREVIEW_HEADER: &str = "x-sluice-preview";
/// Mirror copies in flight at most, per route.
pub const MIRROR_MAX_IN_FLIGHT: usize = 100;
/// Largest request body a mirror copies.
pub const MIRROR_MAX_BODY_BYTES: u64 = 64 * 1024;

// --- analysis providers ---

/// `proxy.window`.
pub const PROXY_WINDOW: Duration = Duration::from_secs(30);
/// `proxy.minRequests`.
pub const PROXY_MIN_REQUESTS: u64 = 20;
/// `proxy.quantile`.
/// `canary-vs-stable`: the error-rate ratio that counts as worse.
pub const SEQUENTIAL_WORSE_RATIO: f64 = 2.0;
/// `canary-vs-stable`: the largest chance of failing a canary that is no worse.
pub const SEQUENTIAL_FALSE_FAILURE: f64 = 0.01;
/// `canary-vs-stable`: the largest chance of passing a canary twice as bad.
pub const SEQUENTIAL_FALSE_PASS: f64 = 0.05;
/// The default quantile, for `latency`.
pub const PROXY_QUANTILE: f64 = 0.99;
/// `prometheus.timeout`, seconds.
pub const PROMETHEUS_TIMEOUT_SECONDS: u32 = 30;
/// `web.timeoutSeconds`.
pub const WEB_TIMEOUT_SECONDS: u32 = 10;
/// `job.timeoutSeconds`.
pub const JOB_TIMEOUT_SECONDS: u32 = 300;
/// `load.concurrency`.
pub const LOAD_CONCURRENCY: u32 = 1;

// --- local runtime and control plane ---

/// `spec.listen` of the local runtime: the control API.
pub const CONTROL_LISTEN: &str = "127.0.0.1:9700";
/// Where clients find the control API (`--server`, `SLUICE_SERVER`).
pub const CONTROL_URL: &str = "http://127.0.0.1:9700";
/// `spec.leaseSeconds`: a proxy not heard from for this long is no longer expected.
pub const LEASE_SECONDS: u32 = 10;
/// `spec.healthCheck.intervalMillis`.
pub const HEALTH_INTERVAL_MILLIS: u64 = 1000;
/// `spec.healthCheck.timeoutMillis`.
pub const HEALTH_TIMEOUT_MILLIS: u64 = 500;
