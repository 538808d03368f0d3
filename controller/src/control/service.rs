//! What the control API needs from a runtime: the rollouts, their views, and commands. The
//! reconcile loop implements it over any runtime's port, so the API, the CLI and the
//! dashboard do not change with the runtime.

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::Error;
use crate::commands::Command;
use crate::engine::RouteIntent;
use crate::status::{Phase, RolloutStatus};
use crate::time::Time;

/// A line of `list rollouts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutSummary {
    /// What the control API knows it by (`/v1/rollouts/KEY`): its name, or on a cluster
    /// `namespace/name`.
    #[serde(default)]
    pub key: String,
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// `canary` or `blueGreen`.
    pub strategy: String,
    /// Phase.
    pub phase: Phase,
    /// Step (1-based) of steps, for canaries.
    pub step: Option<(u32, u32)>,
    /// Canary weight set, and whether every proxy applied it.
    pub weight: Option<(u32, u32, bool)>,
    /// Message.
    pub message: String,
}

/// Figures of one revision over the last window, merged across proxies.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevisionStats {
    /// Responses in the window.
    pub requests: u64,
    /// Responses per second.
    pub rate: f64,
    /// Share of 5xx and upstream errors (0..1), `None` without requests.
    pub error_rate: Option<f64>,
    /// 99th percentile latency, seconds.
    pub p99_seconds: Option<f64>,
    /// Window length, seconds.
    pub window_seconds: f64,
}

/// A revision in a rollout view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevisionView {
    /// Revision number.
    pub revision: u32,
    /// Pod-template hash.
    pub pod_template_hash: String,
    /// `stable`, `canary`, `preview`, `active` or `old`.
    pub role: String,
    /// Images of its containers.
    pub images: Vec<String>,
    /// Addresses serving it.
    pub addresses: Vec<String>,
    /// Healthy addresses.
    pub healthy: u32,
    /// Replicas asked for.
    pub replicas: Option<i32>,
    /// Recent figures.
    pub stats: RevisionStats,
}

/// One metric of an analysis run, as shown to a person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricView {
    /// Metric name.
    pub name: String,
    /// Its phase.
    pub phase: crate::analysis::run::RunPhase,
    /// Measurements so far (value and phase), newest last, at most 10.
    pub measurements: Vec<(String, crate::analysis::run::MeasurementPhase)>,
    /// Why the last attempt was not a measurement.
    pub waiting: Option<String>,
    /// What the provider said of the newest measurement, where it decided it by itself (a
    /// job's output, the figures of `canary-vs-stable`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Measured but never deciding.
    pub dry_run: bool,
    /// Its conditions (`success: result < 0.05`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<String>,
}

/// An analysis run, as shown to a person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisRunView {
    /// Run name.
    pub name: String,
    /// Why it runs.
    pub kind: crate::engine::RunKind,
    /// Phase.
    pub phase: crate::analysis::run::RunPhase,
    /// Metrics.
    pub metrics: Vec<MetricView>,
    /// Why it could not start, if it could not.
    pub error: Option<String>,
}

/// An event, with its time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    /// When.
    pub time: Time,
    /// Why.
    pub reason: crate::engine::Reason,
    /// Message.
    pub message: String,
}

/// Everything `get rollout` and the dashboard show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutView {
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// `canary` or `blueGreen`.
    pub strategy: String,
    /// Number of canary steps.
    pub steps: u32,
    /// Each canary step in words (`set weight 20 %`, `pause 30s`, `pause until promoted`…).
    #[serde(default)]
    pub step_list: Vec<String>,
    /// The status.
    pub status: RolloutStatus,
    /// Whether a person paused it.
    pub paused: bool,
    /// The route as last published, with its generation.
    pub route: Option<RouteIntent>,
    /// Its generation.
    pub generation: u64,
    /// Revisions, newest first.
    pub revisions: Vec<RevisionView>,
    /// Analysis runs of the current revision.
    pub analysis_runs: Vec<AnalysisRunView>,
    /// Recent events, oldest first.
    pub events: Vec<EventView>,
    /// A runtime problem (e.g. the state cannot be written), if any.
    pub runtime_error: Option<String>,
}

/// The rollouts of a runtime.
pub trait RolloutService: Send + Sync + 'static {
    /// Every rollout.
    fn list(&self) -> Vec<RolloutSummary>;
    /// One rollout.
    fn get(&self, name: &str) -> Option<RolloutView>;
    /// Applies a command (a change to status and spec fields).
    fn command(&self, name: &str, command: Command) -> BoxFuture<'_, Result<String, Error>>;
    /// Changes a container's image, which starts a rollout.
    fn set_image(
        &self,
        name: &str,
        container: &str,
        image: &str,
    ) -> BoxFuture<'_, Result<String, Error>>;
    /// Bumps on every change of any rollout.
    fn changes(&self) -> watch::Receiver<u64>;
}
