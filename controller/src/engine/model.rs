//! What the engine reads and what it decides: its input (spec, status, observations of the
//! world, the time) and its decision (the new status, the effects to carry out, the events,
//! when to look again). Plain data, shared by the engine's strategies and every runtime.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::route::RouteIntent;
use crate::analysis::run::RunPhase;
use crate::spec::rollout::RolloutSpec;
use crate::status::RolloutStatus;
use crate::time::Time;

/// What the runtime saw of the route this rollout drives.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteObservation {
    /// The route last published to proxies (for this rollout).
    pub published: Option<RouteIntent>,
    /// Proxies expected to apply it (live leases plus required proxies).
    pub expected: u32,
    /// Expected proxies that applied the published route's generation.
    pub acknowledged: u32,
}

/// What the runtime saw of one revision.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevisionObservation {
    /// Endpoints passing health checks.
    pub healthy_endpoints: u32,
    /// Requests in flight to it, across proxies.
    pub in_flight: u64,
    /// Its current scale, when known.
    pub replicas: Option<i32>,
}

/// Everything the engine is told about the world.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observations {
    /// The route.
    pub route: RouteObservation,
    /// Revisions by hash.
    pub revisions: BTreeMap<String, RevisionObservation>,
    /// Analysis runs by name, with their phase.
    pub analysis: BTreeMap<String, RunPhase>,
}

/// The engine's input.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// Rollout name.
    pub name: &'a str,
    /// Rollout namespace.
    pub namespace: &'a str,
    /// Its metadata (what `fieldRef` arguments read).
    pub metadata: &'a crate::spec::ObjectMeta,
    /// Desired state.
    pub spec: &'a RolloutSpec,
    /// Status as last written.
    pub status: &'a RolloutStatus,
    /// What the runtime sees.
    pub observed: &'a Observations,
    /// The time of this decision.
    pub now: Time,
}

/// Why an analysis run exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RunKind {
    /// An `analysis` canary step, by index.
    Step(u32),
    /// Background analysis of a canary.
    Background,
    /// Blue/green before the switch.
    PrePromotion,
    /// Blue/green after the switch.
    PostPromotion,
}

/// An analysis run the rollout wants running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisRequest {
    /// Unique run name.
    pub run: String,
    /// Why.
    pub kind: RunKind,
    /// Template names.
    pub templates: Vec<String>,
    /// Arguments, resolved.
    pub args: BTreeMap<String, String>,
    /// Arguments read from a Secret's key when the run starts (never kept in the state).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, crate::spec::rollout::SecretKeyRef>,
    /// The rollout's own dry-run rules, besides the templates'.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dry_run: Vec<crate::spec::rollout::DryRun>,
    /// The rollout's own measurement-retention rules, besides the templates'.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measurement_retention: Vec<crate::spec::rollout::MeasurementRetention>,
    /// The revision under analysis.
    pub revision: String,
    /// The stable revision at the time.
    pub stable: String,
}

/// Why a rollout event happened (the names Argo Rollouts gives its events where it has one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reason {
    /// The first revision became stable.
    RolloutNew,
    /// A new revision started rolling out.
    RolloutUpdated,
    /// The template went back to the stable revision: nothing to run.
    RolloutRolledBack,
    /// A rollback inside `rollbackWindow`: steps skipped.
    RolloutFastTracked,
    /// A canary step completed.
    RolloutStepCompleted,
    /// Blue/green: users were switched to the new revision.
    RolloutSwitched,
    /// The new revision became stable.
    RolloutCompleted,
    /// The rollout was aborted (by a person or an analysis).
    RolloutAborted,
    /// The phase changed.
    RolloutPhaseChanged,
    /// The rollout did not progress within `progressDeadlineSeconds`.
    ProgressDeadlineExceeded,
    /// A person's command (promote, abort, set image, …).
    Command,
    /// An analysis run ended within every limit.
    AnalysisRunSuccessful,
    /// An analysis run ended with too many failed measurements.
    AnalysisRunFailed,
    /// An analysis run ended with too many inconclusive measurements.
    AnalysisRunInconclusive,
    /// An analysis run ended with too many provider errors.
    AnalysisRunError,
}

impl Reason {
    /// Its name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RolloutNew => "RolloutNew",
            Self::RolloutUpdated => "RolloutUpdated",
            Self::RolloutRolledBack => "RolloutRolledBack",
            Self::RolloutFastTracked => "RolloutFastTracked",
            Self::RolloutStepCompleted => "RolloutStepCompleted",
            Self::RolloutSwitched => "RolloutSwitched",
            Self::RolloutCompleted => "RolloutCompleted",
            Self::RolloutAborted => "RolloutAborted",
            Self::RolloutPhaseChanged => "RolloutPhaseChanged",
            Self::ProgressDeadlineExceeded => "ProgressDeadlineExceeded",
            Self::Command => "Command",
            Self::AnalysisRunSuccessful => "AnalysisRunSuccessful",
            Self::AnalysisRunFailed => "AnalysisRunFailed",
            Self::AnalysisRunInconclusive => "AnalysisRunInconclusive",
            Self::AnalysisRunError => "AnalysisRunError",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something worth telling a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Why.
    pub reason: Reason,
    /// Human message.
    pub message: String,
}

/// One thing the runtime must do, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Effect {
    /// Publish this route to the proxies (a new generation).
    PublishRoute(RouteIntent),
    /// Scale a revision.
    Scale {
        /// Revision hash.
        revision: String,
        /// Replicas.
        replicas: i32,
    },
    /// Start an analysis run.
    StartAnalysis(AnalysisRequest),
    /// Stop (terminate) an analysis run.
    StopAnalysis {
        /// Run name.
        run: String,
    },
    /// Forget a revision beyond `revisionHistoryLimit`.
    DeleteRevision {
        /// Revision hash.
        revision: String,
    },
    /// Record an event.
    Event(Event),
}

/// The engine's output.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The new status.
    pub status: RolloutStatus,
    /// The route the proxies should have.
    pub route: RouteIntent,
    /// Replicas each revision should have.
    pub replicas: BTreeMap<String, i32>,
    /// Analysis runs that should be running.
    pub analysis: Vec<AnalysisRequest>,
    /// What to do now: the difference between the above and the observations, plus events.
    pub effects: Vec<Effect>,
    /// Look again after this long at the latest (a timer is due); `None` means only when
    /// something changes (an acknowledgement, a run result, a command).
    pub requeue_after: Option<Duration>,
}
