//! The status of a Rollout, mirroring Argo Rollouts' fields (`currentStepIndex`,
//! `pauseConditions`, `abort`, `abortedAt`, `promoteFull`, `stableRS`, `currentPodHash`,
//! `canary.weights`, `phase`, `message`, `conditions`) plus what sluice needs to resume after
//! a restart: the revision history with templates, the analysis attempt, scheduled scale-downs.

use serde::{Deserialize, Serialize};

use crate::analysis::phase::RunPhase;
use crate::spec::meta::PodTemplate;
use crate::time::Time;

/// The phase, as Argo names them.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum Phase {
    /// Stable is the desired revision and every proxy applied its route.
    #[default]
    Healthy,
    /// Moving toward the desired revision.
    Progressing,
    /// Waiting for a person (or a timed pause).
    Paused,
    /// Aborted, or failed its progress deadline.
    Degraded,
}

/// Why a rollout is paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum PauseReason {
    /// A canary `pause` step.
    CanaryPauseStep,
    /// Blue/green waiting for promotion.
    BlueGreenPause,
    /// An analysis was inconclusive.
    InconclusiveAnalysis,
}

/// A pause and when it started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PauseCondition {
    /// Why.
    pub reason: PauseReason,
    /// When (a timed pause ends `duration` after this).
    pub start_time: Time,
}

/// One side of the traffic split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WeightDestination {
    /// Weight out of the route's total.
    pub weight: u32,
    /// Revision.
    pub pod_template_hash: String,
}

/// The weights set, and whether every expected proxy applied them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrafficWeights {
    /// Canary side (absent when only stable serves).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<WeightDestination>,
    /// Stable side.
    pub stable: WeightDestination,
    /// The total.
    pub total: u32,
    /// Every expected proxy (at least one) applied these weights.
    pub verified: bool,
    /// Proxies that applied them, of those expected.
    pub acknowledged: u32,
    /// Proxies expected.
    pub expected: u32,
    /// The canary weight every expected proxy applied last (what users get for sure while a
    /// change is on its way).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_weight: Option<u32>,
}

/// An analysis run the rollout is following.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunStatus {
    /// Run name.
    pub name: String,
    /// Its phase when last seen.
    pub status: RunPhase,
}

/// Canary-specific status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStatus {
    /// The weights set and verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<TrafficWeights>,
    /// The analysis of the current step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step_analysis_run_status: Option<RunStatus>,
    /// The background analysis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_background_analysis_run_status: Option<RunStatus>,
}

/// Blue/green-specific status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BlueGreenStatus {
    /// The revision users reach.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_selector: Option<String>,
    /// The revision the preview reaches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_selector: Option<String>,
    /// The pre-promotion analysis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_promotion_analysis_run_status: Option<RunStatus>,
    /// The post-promotion analysis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_promotion_analysis_run_status: Option<RunStatus>,
}

/// The type of a condition sluice writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum ConditionType {
    /// Whether the rollout is making progress (Argo's `Progressing`).
    Progressing,
    /// The spec as written is invalid and the rollout is left as it is (Argo's
    /// `InvalidSpec`).
    InvalidSpec,
}

/// A condition's status, as Kubernetes spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum ConditionStatus {
    /// It holds.
    True,
    /// It does not hold.
    False,
}

/// Why a condition has its status (Argo's reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum ConditionReason {
    /// The rollout is healthy on its new revision.
    NewReplicaSetAvailable,
    /// It did not progress within `progressDeadlineSeconds`.
    ProgressDeadlineExceeded,
    /// Its spec is invalid (the message names the field and the reason).
    InvalidSpec,
}

/// A condition, as Kubernetes writes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Its type.
    #[serde(rename = "type")]
    pub type_: ConditionType,
    /// `True` or `False`.
    pub status: ConditionStatus,
    /// Why.
    pub reason: ConditionReason,
    /// Human message.
    pub message: String,
    /// When the status last changed.
    pub last_transition_time: Time,
}

/// A revision the rollout knows, with its template (for undo and the local runtime).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevisionRecord {
    /// Revision number (grows with every new rollout).
    pub revision: u32,
    /// Its hash.
    pub pod_template_hash: String,
    /// Its template.
    pub template: PodTemplate,
}

/// A revision to scale down once its delay passed and nothing is in flight to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScaleDown {
    /// Revision.
    pub pod_template_hash: String,
    /// Not before this time; unset until the route that stopped using it is verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Time>,
}

/// The whole status.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    /// Phase (Healthy until a controller says otherwise).
    #[serde(default)]
    pub phase: Phase,
    /// Human message.
    #[serde(default)]
    pub message: String,
    /// The revision being rolled out (hash of `spec.template`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_pod_hash: Option<String>,
    /// The stable revision.
    #[serde(default, rename = "stableRS", skip_serializing_if = "Option::is_none")]
    pub stable_rs: Option<String>,
    /// Index of the current canary step (== steps when all are done).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step_index: Option<u32>,
    /// Active pauses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pause_conditions: Vec<PauseCondition>,
    /// The controller paused the rollout (cleared pause conditions then mean "promoted").
    #[serde(default)]
    pub controller_pause: bool,
    /// Aborted.
    #[serde(default)]
    pub abort: bool,
    /// When it was aborted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aborted_at: Option<Time>,
    /// Why it was aborted (a command, a failed analysis, the progress deadline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_reason: Option<String>,
    /// Skip the remaining steps and analyses.
    #[serde(default)]
    pub promote_full: bool,
    /// Canary details.
    #[serde(default)]
    pub canary: CanaryStatus,
    /// Blue/green details.
    #[serde(default)]
    pub blue_green: BlueGreenStatus,
    /// Conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Known revisions, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revisions: Vec<RevisionRecord>,
    /// Bumped by `retry`, so that analyses start afresh.
    #[serde(default)]
    pub attempt: u32,
    /// Last time the rollout made progress (for `progressDeadlineSeconds`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_at: Option<Time>,
    /// The current rollout skips its steps (a rollback inside `rollbackWindow`).
    #[serde(default)]
    pub fast_track: bool,
    /// When blue/green switched users to the new revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switched_at: Option<Time>,
    /// Scale-downs waiting for their time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scale_downs: Vec<ScaleDown>,
    /// Replicas the last `setCanaryScale` asked for (when not following the weight).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_scale: Option<i32>,
    /// Pods of every revision (Kubernetes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Pods of the current revision (Kubernetes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_replicas: Option<i32>,
    /// Ready pods (Kubernetes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// Available pods (Kubernetes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_replicas: Option<i32>,
    /// The replica count the scale subresource reports to an autoscaler (Argo's spelling).
    #[serde(
        default,
        rename = "HPAReplicas",
        skip_serializing_if = "Option::is_none"
    )]
    pub hpa_replicas: Option<i32>,
    /// The pods' label selector as text, for the scale subresource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// The `spec.restartAt` whose restart is done (Kubernetes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarted_at: Option<Time>,
}

impl RolloutStatus {
    /// The record of a revision.
    pub fn revision(&self, hash: &str) -> Option<&RevisionRecord> {
        self.revisions.iter().find(|r| r.pod_template_hash == hash)
    }

    /// The revision number of a hash, 0 when unknown.
    pub fn revision_number(&self, hash: &str) -> u32 {
        self.revision(hash).map_or(0, |r| r.revision)
    }

    /// Whether a pause condition with this reason is active.
    pub fn paused_for(&self, reason: PauseReason) -> Option<&PauseCondition> {
        self.pause_conditions.iter().find(|p| p.reason == reason)
    }
}
