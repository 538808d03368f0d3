//! The AnalysisTemplate document, with Argo Rollouts' field names, and sluice's providers:
//! `proxy` (built in), `prometheus`, `web`, `job` and `load`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::duration::ArgoDuration;
use super::meta::ObjectMeta;

/// An AnalysisTemplate (or ClusterAnalysisTemplate) document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnalysisTemplate {
    /// `sluice.dev/v1alpha1` or `argoproj.io/v1alpha1`.
    pub api_version: String,
    /// `AnalysisTemplate` or `ClusterAnalysisTemplate`.
    pub kind: String,
    /// Name and namespace.
    pub metadata: ObjectMeta,
    /// Metrics and arguments.
    pub spec: AnalysisTemplateSpec,
}

/// What a template measures. On Kubernetes it is the spec of the `AnalysisTemplate` custom
/// resource ([`AnalysisTemplateResource`]); a `ClusterAnalysisTemplate` has the same spec.
#[derive(
    Debug,
    Clone,
    Default,
    PartialEq,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
    kube::CustomResource,
)]
#[kube(
    group = "sluice.dev",
    version = "v1alpha1",
    kind = "AnalysisTemplate",
    root = "AnalysisTemplateResource",
    doc = "An AnalysisTemplate: the metrics a rollout's analysis measures and when they pass.",
    namespaced,
    category = "sluice"
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnalysisTemplateSpec {
    /// The metrics (none when the template only includes others).
    #[serde(default)]
    pub metrics: Vec<Metric>,
    /// Other templates whose metrics, arguments and rules this one includes (Argo 1.7).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub templates: Vec<TemplateRef>,
    /// Arguments the metrics use as `{{args.NAME}}`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<ArgSpec>,
    /// Metrics measured but never deciding.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dry_run: Vec<DryRun>,
    /// How many measurements to keep per metric (10 by default, as in Argo).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measurement_retention: Vec<MeasurementRetention>,
}

/// A declared argument.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ArgSpec {
    /// Name.
    pub name: String,
    /// Default value; without one the argument is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// `dryRun` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DryRun {
    /// Metric names, as a regular expression (`.*` or `*` for all).
    pub metric_name: String,
}

/// `measurementRetention` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeasurementRetention {
    /// Metric names, as a regular expression (`.*` or `*` for all).
    pub metric_name: String,
    /// Measurements kept, the newest.
    pub limit: u32,
}

/// A reference to an AnalysisTemplate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TemplateRef {
    /// Template name, in the Rollout's namespace (or a ClusterAnalysisTemplate's).
    pub template_name: String,
    /// The name is a ClusterAnalysisTemplate's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cluster_scope: bool,
}

impl TemplateRef {
    /// How an analysis request names it: a ClusterAnalysisTemplate's name behind `/`.
    pub fn requested(&self) -> String {
        if self.cluster_scope {
            format!("/{}", self.template_name)
        } else {
            self.template_name.clone()
        }
    }
}

/// A whole number, possibly written as text (so that it can come from an argument).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IntOrString {
    /// A number.
    Int(i64),
    /// Text, e.g. `"{{args.count}}"` or `"3"`.
    String(String),
}

/// One metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metric {
    /// Unique name within a run.
    pub name: String,
    /// Time between measurements; absent means one measurement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<ArgoDuration>,
    /// Wait before the first measurement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_delay: Option<ArgoDuration>,
    /// Number of measurements; with an interval and no count, measure until stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<IntOrString>,
    /// Expression that makes a measurement Successful.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_condition: Option<String>,
    /// Expression that makes a measurement Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_condition: Option<String>,
    /// Failed measurements allowed (0 by default; -1 for no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_limit: Option<IntOrString>,
    /// Inconclusive measurements allowed (0 by default; -1 for no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inconclusive_limit: Option<IntOrString>,
    /// Consecutive provider errors allowed (4 by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_error_limit: Option<IntOrString>,
    /// Where the number comes from.
    pub provider: Provider,
}

/// Exactly one provider.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Provider {
    /// sluice's proxies' own figures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<ProxyProvider>,
    /// A Prometheus query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusProvider>,
    /// An HTTP call and a JSON path into its answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web: Option<WebProvider>,
    /// A Kubernetes Job, or a command in local mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobProvider>,
    /// A warm-up load sent to a revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<LoadProvider>,
}

/// What the proxy provider measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ProxyQuery {
    /// Share of responses that are not 5xx or upstream errors (0..1).
    SuccessRate,
    /// Share of responses that are 5xx or upstream errors (0..1).
    ErrorRate,
    /// A latency quantile, in seconds.
    Latency,
    /// Responses per second.
    RequestRate,
    /// A sequential verdict: is the canary's error rate worse than the stable revision's over
    /// the same moments ([`crate::analysis::sequential`])? Decides the measurement by itself.
    CanaryVsStable,
}

/// Which revision a measurement is about.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum RevisionRole {
    /// The new revision (canary or preview).
    #[default]
    Canary,
    /// The stable revision.
    Stable,
}

/// `provider.proxy`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxyProvider {
    /// The figure.
    pub query: ProxyQuery,
    /// For `latency`: the quantile (0.99 by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantile: Option<f64>,
    /// The window the figure covers (30s by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<ArgoDuration>,
    /// Fewer requests than this in the window is not a measurement (20 by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_requests: Option<u64>,
    /// Canary (default) or stable.
    #[serde(default)]
    pub revision: RevisionRole,
    /// For `canary-vs-stable`: how many times the stable error rate counts as worse (2 by
    /// default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worse_ratio: Option<f64>,
    /// For `canary-vs-stable`: the largest chance of failing a canary that is no worse (0.01
    /// by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub false_failure: Option<f64>,
    /// For `canary-vs-stable`: the largest chance of passing a canary `worseRatio` times
    /// worse (0.05 by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub false_pass: Option<f64>,
    /// For `canary-vs-stable`: compare the shares of responses slower than this (e.g.
    /// `250ms`) instead of the shares of 5xx.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slower_than: Option<ArgoDuration>,
}

impl ProxyProvider {
    /// The sequential test's settings of a `canary-vs-stable` metric.
    pub fn sequential(&self) -> crate::analysis::sequential::Params {
        use super::defaults;
        crate::analysis::sequential::Params {
            alpha: self
                .false_failure
                .unwrap_or(defaults::SEQUENTIAL_FALSE_FAILURE),
            beta: self.false_pass.unwrap_or(defaults::SEQUENTIAL_FALSE_PASS),
            worse_ratio: self.worse_ratio.unwrap_or(defaults::SEQUENTIAL_WORSE_RATIO),
        }
    }
}

/// `provider.prometheus`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrometheusProvider {
    /// Base URL of the Prometheus HTTP API.
    pub address: String,
    /// PromQL.
    pub query: String,
    /// Seconds to wait for an answer (30 by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u32>,
    /// Headers sent with the query (e.g. `X-Scope-OrgID`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<WebHeader>,
    /// Accept any certificate from an `https://` address.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
    /// A range query instead of an instant one: `result` is every value of every series.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range_query: Option<RangeQuery>,
}

/// `prometheus.rangeQuery`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RangeQuery {
    /// The first moment, an expression such as `now() - duration("5m")`.
    pub start: String,
    /// The last moment, an expression such as `now()`.
    pub end: String,
    /// The resolution, a duration such as `1m`.
    pub step: String,
}

/// A header of a web call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebHeader {
    /// Name.
    pub key: String,
    /// Value.
    pub value: String,
}

/// `provider.web`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebProvider {
    /// URL.
    pub url: String,
    /// `GET` (default), `POST` or `PUT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Headers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<WebHeader>,
    /// Request body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// JSON body as YAML (alternative to `body`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::schema::any_value")]
    pub json_body: Option<serde_json::Value>,
    /// Kubernetes JSONPath into the answer, e.g. `{$.data.ok}` (the whole answer by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_path: Option<String>,
    /// Seconds to wait (10 by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u32>,
    /// Accept any certificate from an `https://` URL.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
}

/// `provider.job`: a Kubernetes Job spec, or in local mode a command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobProvider {
    /// Job metadata (Kubernetes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::schema::any_object")]
    pub metadata: Option<serde_json::Value>,
    /// Job spec (Kubernetes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::schema::any_object")]
    pub spec: Option<serde_json::Value>,
    /// Command and arguments (local mode).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Seconds the command may run (local mode; 300 by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u32>,
}

/// `provider.load`: the warm-up of scenario B2.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadProvider {
    /// Requests to send.
    pub requests: u64,
    /// Concurrent connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// Path on the revision (`/` by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// A URL instead of the revision's addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Canary/preview (default) or stable.
    #[serde(default)]
    pub revision: RevisionRole,
    /// Extra request headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

crate::spec::schema::hand_written_schema!(IntOrString, "IntOrString", super::schema::int_or_string);
