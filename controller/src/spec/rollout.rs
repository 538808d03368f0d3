//! The Rollout document, with Argo Rollouts' field names (`argoproj.io/v1alpha1` documents are
//! read as they are; ours is `sluice.dev/v1alpha1`). Unknown fields are refused; Argo fields
//! sluice does not support are refused by [`super::unsupported`] before these types see them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::duration::ArgoDuration;
use super::meta::{LabelSelector, ObjectMeta, PodTemplate};
pub use super::template::{DryRun, MeasurementRetention, TemplateRef};
use crate::status::RolloutStatus;

/// A Rollout document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rollout {
    /// `sluice.dev/v1alpha1` or `argoproj.io/v1alpha1`.
    pub api_version: String,
    /// `Rollout`.
    pub kind: String,
    /// Name, namespace, labels.
    pub metadata: ObjectMeta,
    /// The desired state.
    pub spec: RolloutSpec,
    /// Status as written by a controller; ignored on input by the local runtime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<serde_json::Value>,
}

/// The desired state of a Rollout. On Kubernetes it is the spec of the `Rollout` custom
/// resource ([`RolloutResource`]), whose CRD is generated from these types: status and scale
/// subresources as Argo's, and the printer columns of `kubectl get rollouts`.
#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, kube::CustomResource,
)]
// every printcolumn(...) names its type_: the lint reads them as one repeated attribute
#[allow(clippy::duplicated_attributes)]
#[kube(
    group = "sluice.dev",
    version = "v1alpha1",
    kind = "Rollout",
    root = "RolloutResource",
    namespaced,
    status = "RolloutStatus",
    doc = "A Rollout: a Deployment that moves to a new revision step by step, with traffic split by sluice's proxies.",
    category = "sluice",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.HPAReplicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(name = "Desired", type_ = "integer", json_path = ".spec.replicas"),
    printcolumn(name = "Current", type_ = "integer", json_path = ".status.replicas"),
    printcolumn(
        name = "Up-to-date",
        type_ = "integer",
        json_path = ".status.updatedReplicas"
    ),
    printcolumn(
        name = "Available",
        type_ = "integer",
        json_path = ".status.availableReplicas"
    ),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Step",
        type_ = "integer",
        json_path = ".status.currentStepIndex"
    ),
    printcolumn(
        name = "Set weight",
        type_ = "integer",
        json_path = ".status.canary.weights.canary.weight"
    ),
    printcolumn(
        name = "Acknowledged weight",
        type_ = "integer",
        json_path = ".status.canary.weights.verifiedWeight"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RolloutSpec {
    /// Desired pods (1 by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Selects the pods of the Rollout; must match the template's labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// The pod template; its hash names the revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<PodTemplate>,
    /// Pods created before this time are restarted, one at a time, each once the others are
    /// available (on a cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_at: Option<crate::time::Time>,
    /// Instead of `template`: the Deployment whose pod template this rollout runs (on a
    /// cluster), which it scales down as `scaleDown` says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_ref: Option<WorkloadRef>,
    /// Seconds a new pod must be ready before it counts as available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ready_seconds: Option<u32>,
    /// Old revisions kept for rollback (10 by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_history_limit: Option<i32>,
    /// Paused by a person.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
    /// Seconds a rollout may go without progress (600 by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline_seconds: Option<u32>,
    /// Abort when the progress deadline passes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub progress_deadline_abort: bool,
    /// Rollbacks to one of this many recent revisions skip the steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_window: Option<RollbackWindow>,
    /// Canary or blue/green.
    pub strategy: Strategy,
}

/// `rollbackWindow`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RollbackWindow {
    /// How many recent revisions a rollback may skip the steps to.
    pub revisions: u32,
}

/// Exactly one of `canary` or `blueGreen`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Strategy {
    /// The canary strategy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryStrategy>,
    /// The blue/green strategy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blue_green: Option<BlueGreenStrategy>,
}

/// The canary strategy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CanaryStrategy {
    /// The steps, in order; none means straight to 100 %.
    #[serde(default)]
    pub steps: Vec<CanaryStep>,
    /// Service selecting the canary pods (Kubernetes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_service: Option<String>,
    /// Service selecting the stable pods (Kubernetes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_service: Option<String>,
    /// Background analysis, running from `startingStep` until the rollout ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<BackgroundAnalysis>,
    /// Seconds before the old stable is scaled down after promotion (30 by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_delay_seconds: Option<u32>,
    /// Seconds before the canary is scaled down after an abort (30 by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_scale_down_delay_seconds: Option<u32>,
    /// How many old revisions may wait for their scale-down delay at once; older ones are
    /// scaled down at once (once nothing is in flight to them). Unlimited by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_delay_revision_limit: Option<u32>,
    /// Labels and annotations of the canary's pods while it is the canary (Kubernetes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_metadata: Option<super::meta::PodMetadata>,
    /// Labels and annotations of the stable revision's pods (Kubernetes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_metadata: Option<super::meta::PodMetadata>,
    /// The fewest pods a revision taking traffic runs, whatever its share (capped at
    /// `replicas`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_pods_per_replica_set: Option<u32>,
    /// Scale the stable down as the canary takes traffic.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dynamic_stable_scale: bool,
    /// The proxy route this rollout drives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_routing: Option<TrafficRouting>,
}

/// `trafficRouting`: sluice is the only router.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrafficRouting {
    /// The total weights are out of (100 by default, up to 10 000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_traffic_weight: Option<u32>,
    /// sluice's own settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sluice: Option<SluiceRouting>,
}

/// `trafficRouting.sluice`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SluiceRouting {
    /// The proxy route; `<namespace>/<name>` by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// Hosts the route answers (any host when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Path prefix the route answers (`/` by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    /// Hosts that reach the new version (blue/green preview) whatever the weights.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preview_hosts: Vec<String>,
    /// A header whose value `always` reaches the new version and `never` the stable one
    /// (`x-sluice-preview` by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_header: Option<String>,
    /// Sticky split keyed by this header instead of the exact split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sticky_header: Option<String>,
    /// Sticky split keyed by this cookie instead of the exact split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sticky_cookie: Option<String>,
    /// Requests the canary cannot take go to stable instead (the proxies' failover).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover: Option<Failover>,
}

/// `trafficRouting.sluice.failover`: a request whose connection to the canary cannot be made
/// goes to stable whatever its method; one of a safe method also goes to stable when the
/// canary answers one of `statuses`. The failed canary answer still counts against the canary
/// in the proxies' figures, so analysis sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Failover {
    /// Canary answers that send a safe request to stable (502 and 503 when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub statuses: Vec<u16>,
    /// Methods safe to send twice (GET, HEAD and OPTIONS when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub safe_methods: Vec<String>,
    /// Largest request body held to be sent again (64 KiB by default); larger ones stream
    /// and are not failed over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_replay_bytes: Option<u64>,
}

/// One canary step: exactly one field is set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CanaryStep {
    /// Send this share of traffic (out of `maxTrafficWeight`) to the canary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_weight: Option<u32>,
    /// Wait: `{duration: 10s}` or `{}` (until promoted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<Pause>,
    /// Run an analysis and wait for its verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<RolloutAnalysis>,
    /// Route requests matching headers to the canary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_header_route: Option<SetHeaderRoute>,
    /// Copy a share of matching requests to the canary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_mirror_route: Option<SetMirrorRoute>,
    /// Scale the canary independently of its weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_canary_scale: Option<SetCanaryScale>,
}

/// `pause`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Pause {
    /// How long; absent means until promoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<ArgoDuration>,
}

/// An analysis to run: templates and arguments.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RolloutAnalysis {
    /// AnalysisTemplates whose metrics make the run.
    pub templates: Vec<TemplateRef>,
    /// Values for the templates' arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<AnalysisArg>,
    /// Metrics (names matched as regular expressions) measured but never deciding, besides
    /// the templates' own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dry_run: Vec<DryRun>,
    /// How many measurements to keep per metric, besides the templates' own rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measurement_retention: Vec<MeasurementRetention>,
}

/// Background analysis: an analysis plus the step it starts at.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackgroundAnalysis {
    /// AnalysisTemplates whose metrics make the run.
    pub templates: Vec<TemplateRef>,
    /// Values for the templates' arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<AnalysisArg>,
    /// The step index the analysis starts at (0 by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starting_step: Option<u32>,
    /// Metrics (names matched as regular expressions) measured but never deciding.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dry_run: Vec<DryRun>,
    /// How many measurements to keep per metric.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measurement_retention: Vec<MeasurementRetention>,
}

/// An argument given to analysis templates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnalysisArg {
    /// Argument name.
    pub name: String,
    /// Literal value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Value taken from the rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<ArgValueFrom>,
}

/// `valueFrom` of an argument.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ArgValueFrom {
    /// `Stable` or `Latest`: the pod-template hash of that revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_template_hash_value: Option<PodTemplateHashValue>,
    /// A field of the Rollout: `metadata.name`, `metadata.namespace`,
    /// `metadata.labels['KEY']` or `metadata.annotations['KEY']`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_ref: Option<FieldRef>,
    /// A key of a Secret in the Rollout's namespace (on a cluster), read when the run starts
    /// and kept nowhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<SecretKeyRef>,
}

/// `valueFrom.fieldRef`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FieldRef {
    /// The field's path.
    pub field_path: String,
}

/// `valueFrom.secretKeyRef`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretKeyRef {
    /// The Secret's name.
    pub name: String,
    /// The key in its data.
    pub key: String,
}

/// The Rollout's fields a `fieldRef` argument can name.
#[derive(Debug, Clone, Copy)]
pub struct ArgFields<'a> {
    /// Its name and namespace, labels and annotations.
    pub metadata: &'a super::meta::ObjectMeta,
}

impl FieldRef {
    /// The value the path names, if the Rollout has it; `Err` when the path is not one a
    /// `fieldRef` can name.
    pub fn value(&self, fields: ArgFields<'_>) -> Result<Option<String>, String> {
        let m = fields.metadata;
        let keyed = |prefix: &str| {
            self.field_path
                .strip_prefix(prefix)
                .and_then(|r| r.strip_prefix("['"))
                .and_then(|r| r.strip_suffix("']"))
        };
        match self.field_path.as_str() {
            "metadata.name" => Ok(Some(m.name.clone())),
            "metadata.namespace" => Ok(Some(m.namespace().to_owned())),
            _ => {
                if let Some(k) = keyed("metadata.labels") {
                    Ok(m.labels.get(k).cloned())
                } else if let Some(k) = keyed("metadata.annotations") {
                    Ok(m.annotations.get(k).cloned())
                } else {
                    Err(format!(
                        "{:?} is not a field an argument can take: use metadata.name, metadata.namespace, metadata.labels['KEY'] or metadata.annotations['KEY']",
                        self.field_path
                    ))
                }
            }
        }
    }
}

/// Which revision's hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum PodTemplateHashValue {
    /// The stable revision.
    Stable,
    /// The new revision.
    Latest,
}

/// `setHeaderRoute`: requests matching every header match go to the canary; no match removes
/// the route.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetHeaderRoute {
    /// Route name.
    pub name: String,
    /// Header matches.
    #[serde(default, rename = "match", skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<HeaderMatch>,
}

/// One header match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderMatch {
    /// Header name.
    pub header_name: String,
    /// How its value matches.
    pub header_value: StringMatch,
}

/// Exactly one of exact, prefix or regex.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StringMatch {
    /// Equal to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    /// Starts with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Matches the regular expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
}

/// `setMirrorRoute`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetMirrorRoute {
    /// Route name.
    pub name: String,
    /// Share of matching requests copied (0–100; 100 by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<u32>,
    /// Request matches; no match removes the route.
    #[serde(default, rename = "match", skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<RouteMatch>,
}

/// A request match of a mirror route.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteMatch {
    /// Method match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<StringMatch>,
    /// Path match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<StringMatch>,
    /// Header matches.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, StringMatch>,
}

/// `setCanaryScale`: exactly one field.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetCanaryScale {
    /// A number of pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// A share of `spec.replicas`, in percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// Follow the traffic weight again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub match_traffic_weight: bool,
}

/// The blue/green strategy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BlueGreenStrategy {
    /// Service users reach (Kubernetes); required.
    pub active_service: String,
    /// Service reaching the new version before promotion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_service: Option<String>,
    /// Promote without a person (true by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_promotion_enabled: Option<bool>,
    /// With auto-promotion, wait this long after the preview is ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_promotion_seconds: Option<u32>,
    /// Pods of the preview before promotion (all by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_replica_count: Option<i32>,
    /// Analysis before the switch; the switch waits for its success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_promotion_analysis: Option<RolloutAnalysis>,
    /// Analysis after the switch; failure switches back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_promotion_analysis: Option<RolloutAnalysis>,
    /// Seconds before the old version is scaled down after the switch (30 by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_delay_seconds: Option<u32>,
    /// Seconds before the preview is scaled down after an abort (30 by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_scale_down_delay_seconds: Option<u32>,
    /// How many old revisions may wait for their scale-down delay at once; older ones are
    /// scaled down at once (once nothing is in flight to them). Unlimited by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_delay_revision_limit: Option<u32>,
    /// Labels and annotations of the active revision's pods (Kubernetes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_metadata: Option<super::meta::PodMetadata>,
    /// Labels and annotations of the preview's pods while it is the preview (Kubernetes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_metadata: Option<super::meta::PodMetadata>,
    /// The proxy route this rollout drives (a sluice extension for blue/green).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_routing: Option<TrafficRouting>,
}

/// `workloadRef`: an existing Deployment whose pod template a Rollout runs — the easiest
/// migration: the Deployment stays as it is and the Rollout takes over its pods' template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadRef {
    /// `apps/v1`.
    pub api_version: String,
    /// `Deployment`.
    pub kind: String,
    /// Its name, in the Rollout's namespace.
    pub name: String,
    /// What happens to the Deployment's own pods (`never` by default).
    #[serde(default)]
    pub scale_down: ScaleDown,
}

/// `workloadRef.scaleDown`, as Argo Rollouts reads it.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ScaleDown {
    /// The Deployment is left as it is.
    #[default]
    Never,
    /// Scaled to zero once the rollout is healthy for the first time.
    OnSuccess,
    /// Scaled down as the rollout's pods become available.
    Progressively,
}
