//! What both strategies share: noticing a new revision, the revision history, abort, the
//! steady state, scale-downs, the progress deadline, and turning the desired state into
//! effects, phase and message.

use std::collections::BTreeMap;
use std::time::Duration;

use super::model::{AnalysisRequest, Decision, Effect, Event, Input, Reason, RunKind};
use super::route::{self, RouteIntent};
use crate::analysis::run::RunPhase;
use crate::revision::pod_template_hash;
use crate::spec::rollout::{RolloutAnalysis, TrafficRouting};
use crate::status::{
    Condition, ConditionReason, ConditionStatus, ConditionType, PauseCondition, PauseReason, Phase,
    RevisionRecord, RolloutStatus, RunStatus, ScaleDown, TrafficWeights, WeightDestination,
};
use crate::time::Time;

pub use crate::spec::defaults::{
    PROGRESS_DEADLINE_SECONDS as DEFAULT_PROGRESS_DEADLINE,
    REVISION_HISTORY_LIMIT as DEFAULT_HISTORY_LIMIT,
    SCALE_DOWN_DELAY_SECONDS as DEFAULT_SCALE_DOWN_DELAY,
};

pub(super) struct Ctx<'a> {
    pub(super) input: &'a Input<'a>,
    pub(super) st: RolloutStatus,
    /// The desired template's hash.
    pub(super) desired: String,
    pub(super) route: Option<RouteIntent>,
    pub(super) replicas: BTreeMap<String, i32>,
    pub(super) runs: Vec<AnalysisRequest>,
    pub(super) events: Vec<Event>,
    pub(super) wake: Option<Time>,
    /// Why the rollout is not moving, when it is waiting.
    pub(super) waiting: Option<String>,
    deleted: Vec<String>,
}

impl<'a> Ctx<'a> {
    pub(super) fn new(input: &'a Input<'a>) -> Self {
        let desired = input
            .spec
            .template
            .as_ref()
            .map(pod_template_hash)
            .unwrap_or_default();
        Self {
            input,
            st: input.status.clone(),
            desired,
            route: None,
            replicas: BTreeMap::new(),
            runs: Vec::new(),
            events: Vec::new(),
            wake: None,
            waiting: None,
            deleted: Vec::new(),
        }
    }

    pub(super) fn now(&self) -> Time {
        self.input.now
    }

    pub(super) fn event(&mut self, reason: Reason, message: String) {
        self.events.push(Event { reason, message });
    }

    pub(super) fn wake_at(&mut self, t: Time) {
        self.wake = Some(self.wake.map_or(t, |w| w.min(t)));
    }

    pub(super) fn wait(&mut self, why: impl Into<String>) {
        if self.waiting.is_none() {
            self.waiting = Some(why.into());
        }
    }

    pub(super) fn spec_replicas(&self) -> i32 {
        self.input
            .spec
            .replicas
            .unwrap_or(crate::spec::defaults::REPLICAS)
            .max(0)
    }

    pub(super) fn routing(&self) -> Option<&'a TrafficRouting> {
        super::route::routing_of(self.input.spec)
    }

    /// The route with only `stable`, sized from the spec.
    pub(super) fn base_route(&self, stable: &str) -> RouteIntent {
        route::base(
            self.input.namespace,
            self.input.name,
            self.routing(),
            stable,
        )
    }

    pub(super) fn total(&self) -> u32 {
        self.routing()
            .and_then(|r| r.max_traffic_weight)
            .unwrap_or(crate::spec::defaults::MAX_TRAFFIC_WEIGHT)
    }

    pub(super) fn stable(&self) -> String {
        self.st
            .stable_rs
            .clone()
            .unwrap_or_else(|| self.desired.clone())
    }

    pub(super) fn current(&self) -> String {
        self.st
            .current_pod_hash
            .clone()
            .unwrap_or_else(|| self.desired.clone())
    }

    pub(super) fn revision_number(&self, hash: &str) -> u32 {
        self.st.revision_number(hash)
    }

    pub(super) fn healthy(&self, hash: &str) -> u32 {
        self.input
            .observed
            .revisions
            .get(hash)
            .map_or(0, |r| r.healthy_endpoints)
    }

    fn in_flight(&self, hash: &str) -> u64 {
        self.input
            .observed
            .revisions
            .get(hash)
            .map_or(0, |r| r.in_flight)
    }

    /// Wants the route `r` (the runtime publishes it) and reports whether every expected
    /// proxy (at least one) applied exactly it.
    pub(super) fn route_to(&mut self, r: RouteIntent) -> bool {
        let obs = &self.input.observed.route;
        let verified = obs.published.as_ref() == Some(&r)
            && obs.expected >= 1
            && obs.acknowledged >= obs.expected;
        let canary_weight = if r.canary.is_some() { r.weight } else { 0 };
        let verified_weight = if verified {
            Some(canary_weight)
        } else {
            self.st
                .canary
                .weights
                .as_ref()
                .and_then(|w| w.verified_weight)
        };
        self.st.canary.weights = Some(TrafficWeights {
            canary: r.canary.as_ref().map(|c| WeightDestination {
                weight: r.weight,
                pod_template_hash: c.clone(),
            }),
            stable: WeightDestination {
                weight: r
                    .total
                    .saturating_sub(if r.canary.is_some() { r.weight } else { 0 }),
                pod_template_hash: r.stable.clone(),
            },
            total: r.total,
            verified,
            acknowledged: if obs.published.as_ref() == Some(&r) {
                obs.acknowledged.min(obs.expected)
            } else {
                0
            },
            expected: obs.expected,
            verified_weight,
        });
        if !verified {
            if obs.expected == 0 {
                self.wait("waiting for a proxy to subscribe to the route");
            } else {
                let acked = if obs.published.as_ref() == Some(&r) {
                    obs.acknowledged.min(obs.expected)
                } else {
                    0
                };
                self.wait(format!(
                    "waiting for proxies to apply the route ({acked}/{} acknowledged)",
                    obs.expected
                ));
            }
        }
        self.route = Some(r);
        verified
    }

    /// Asks for an analysis run and returns its observed phase.
    pub(super) fn run_analysis(
        &mut self,
        kind: RunKind,
        analysis: &RolloutAnalysis,
        revision: &str,
    ) -> (String, RunPhase) {
        let suffix = match kind {
            RunKind::Step(i) => format!("step{i}"),
            RunKind::Background => "background".to_owned(),
            RunKind::PrePromotion => "pre".to_owned(),
            RunKind::PostPromotion => "post".to_owned(),
        };
        let run = format!(
            "{}-{}-{}-{}",
            self.input.name, revision, self.st.attempt, suffix
        );
        let stable = self.stable();
        self.runs.push(AnalysisRequest {
            run: run.clone(),
            kind,
            templates: analysis
                .templates
                .iter()
                .map(crate::spec::rollout::TemplateRef::requested)
                .collect(),
            args: crate::analysis::run::resolve_args(
                &analysis.args,
                &stable,
                revision,
                crate::spec::rollout::ArgFields {
                    metadata: self.input.metadata,
                },
            ),
            secrets: crate::analysis::run::secret_args(&analysis.args),
            dry_run: analysis.dry_run.clone(),
            measurement_retention: analysis.measurement_retention.clone(),
            revision: revision.to_owned(),
            stable,
        });
        let phase = self
            .input
            .observed
            .analysis
            .get(&run)
            .copied()
            .unwrap_or(RunPhase::Pending);
        (run, phase)
    }

    /// Adds a pause condition unless one with this reason is there; returns its start.
    pub(super) fn pause(&mut self, reason: PauseReason) -> Time {
        if let Some(p) = self.st.paused_for(reason) {
            return p.start_time;
        }
        let now = self.now();
        self.st.pause_conditions.push(PauseCondition {
            reason,
            start_time: now,
        });
        self.st.controller_pause = true;
        now
    }

    /// Marks progress (for the progress deadline).
    pub(super) fn progressed(&mut self) {
        self.st.progress_at = Some(self.now());
    }

    /// Aborts now, with a reason.
    pub(super) fn abort(&mut self, reason: String) {
        if !self.st.abort {
            self.st.abort = true;
            self.st.aborted_at = Some(self.now());
            self.event(Reason::RolloutAborted, reason.clone());
            self.st.abort_reason = Some(reason);
        }
    }

    /// Step 1 of every decision: notice a new revision, keep the history.
    pub(super) fn start(&mut self) {
        if self.desired.is_empty() {
            return;
        }
        if self.st.current_pod_hash.as_deref() != Some(&self.desired) {
            self.new_revision();
        }
        self.prune_history();
    }

    fn new_revision(&mut self) {
        let now = self.now();
        let hash = self.desired.clone();
        let number = self
            .st
            .revisions
            .iter()
            .map(|r| r.revision)
            .max()
            .unwrap_or(0)
            + 1;
        let previous_number = self.st.revision(&hash).map(|r| r.revision);
        self.st.revisions.retain(|r| r.pod_template_hash != hash);
        if let Some(t) = &self.input.spec.template {
            self.st.revisions.push(RevisionRecord {
                revision: number,
                pod_template_hash: hash.clone(),
                template: t.clone(),
            });
        }
        let steps = self
            .input
            .spec
            .strategy
            .canary
            .as_ref()
            .map_or(0, |c| c.steps.len());
        let old_current = self.st.current_pod_hash.clone();
        self.st.current_pod_hash = Some(hash.clone());
        self.st.current_step_index = Some(0);
        self.st.pause_conditions.clear();
        self.st.controller_pause = false;
        self.st.abort = false;
        self.st.aborted_at = None;
        self.st.abort_reason = None;
        self.st.promote_full = false;
        self.st.fast_track = false;
        self.st.switched_at = None;
        self.st.canary_scale = None;
        self.st.canary.current_step_analysis_run_status = None;
        self.st.canary.current_background_analysis_run_status = None;
        self.st.blue_green.pre_promotion_analysis_run_status = None;
        self.st.blue_green.post_promotion_analysis_run_status = None;
        self.st
            .conditions
            .retain(|c| c.type_ != ConditionType::Progressing);
        self.st.progress_at = Some(now);
        // an abandoned canary is scaled down like an aborted one
        if let Some(old) = old_current
            && Some(&old) != self.st.stable_rs.as_ref()
            && old != hash
        {
            self.schedule_scale_down(&old, None);
        }
        match self.st.stable_rs.clone() {
            None => {
                self.st.stable_rs = Some(hash.clone());
                self.st.blue_green.active_selector = Some(hash.clone());
                self.event(
                    Reason::RolloutNew,
                    format!("initial revision {number} ({hash}) is stable"),
                );
            }
            Some(stable) if stable == hash => {
                self.st.current_step_index = Some(steps as u32);
                self.event(
                    Reason::RolloutRolledBack,
                    format!("back to the stable revision {number} ({hash}); no steps to run"),
                );
            }
            Some(_) => {
                let window = self
                    .input
                    .spec
                    .rollback_window
                    .as_ref()
                    .map_or(0, |w| w.revisions);
                let newest = number - 1;
                let within = previous_number
                    .is_some_and(|p| window > 0 && newest.saturating_sub(p) < window);
                if within {
                    self.st.fast_track = true;
                    self.st.current_step_index = Some(steps as u32);
                    self.event(
                        Reason::RolloutFastTracked,
                        format!("revision {number} ({hash}) is a rollback inside rollbackWindow: steps skipped"),
                    );
                } else {
                    self.event(
                        Reason::RolloutUpdated,
                        format!("rolling out revision {number} ({hash})"),
                    );
                }
            }
        }
    }

    /// Keeps stable, current and `revisionHistoryLimit` older revisions; a revision waiting
    /// for its scale-down (its delay, or requests still in flight to it) is kept until it is
    /// scaled down.
    fn prune_history(&mut self) {
        let limit = self
            .input
            .spec
            .revision_history_limit
            .unwrap_or(DEFAULT_HISTORY_LIMIT)
            .max(0) as usize;
        let keep: Vec<String> = [self.st.stable_rs.clone(), self.st.current_pod_hash.clone()]
            .into_iter()
            .flatten()
            .chain(
                self.st
                    .scale_downs
                    .iter()
                    .map(|s| s.pod_template_hash.clone()),
            )
            .collect();
        let mut old: Vec<&RevisionRecord> = self
            .st
            .revisions
            .iter()
            .filter(|r| !keep.contains(&r.pod_template_hash))
            .collect();
        old.sort_by_key(|r| std::cmp::Reverse(r.revision));
        let drop: Vec<String> = old
            .iter()
            .skip(limit)
            .map(|r| r.pod_template_hash.clone())
            .collect();
        for h in drop {
            self.st.revisions.retain(|r| r.pod_template_hash != h);
            self.deleted.push(h);
        }
    }

    /// Schedules a revision's scale-down; `after` unset means "once the route is verified".
    pub(super) fn schedule_scale_down(&mut self, hash: &str, after: Option<Time>) {
        if let Some(s) = self
            .st
            .scale_downs
            .iter_mut()
            .find(|s| s.pod_template_hash == hash)
        {
            if s.after.is_none() {
                s.after = after;
            }
            return;
        }
        self.st.scale_downs.push(ScaleDown {
            pod_template_hash: hash.to_owned(),
            after,
        });
    }

    /// The route only sending to `stable`; once verified, pending scale-downs get their time.
    pub(super) fn settle_on(&mut self, stable: &str, delay: u32) -> bool {
        let r = self.base_route(stable);
        let verified = self.route_to(r);
        if verified {
            let due = self.now().plus(Duration::from_secs(u64::from(delay)));
            for s in &mut self.st.scale_downs {
                if s.after.is_none() {
                    s.after = Some(due);
                }
            }
        }
        verified
    }

    /// Replicas for every known revision: `active` as given, scale-downs until due and idle,
    /// everything else 0.
    pub(super) fn size_revisions(&mut self, active: &[(String, i32)]) {
        let now = self.now();
        let replicas = self.spec_replicas();
        let mut done = Vec::new();
        // beyond scaleDownDelayRevisionLimit, the oldest revisions waiting for their delay
        // are due at once
        let limit = self.scale_down_delay_revision_limit();
        let mut waiting: Vec<(u32, String)> = self
            .st
            .scale_downs
            .iter()
            // only those whose delay runs: no traffic is sent to them any more
            .filter(|s| s.after.is_some())
            .filter(|s| !active.iter().any(|(h, _)| *h == s.pod_template_hash))
            .map(|s| {
                (
                    self.revision_number(&s.pod_template_hash),
                    s.pod_template_hash.clone(),
                )
            })
            .collect();
        waiting.sort_by(|a, b| b.cmp(a));
        let over: Vec<String> = waiting
            .into_iter()
            .skip(limit.unwrap_or(u32::MAX) as usize)
            .map(|(_, h)| h)
            .collect();
        for s in &self.st.scale_downs {
            if active.iter().any(|(h, _)| *h == s.pod_template_hash) {
                done.push(s.pod_template_hash.clone());
                continue;
            }
            let due = s.after.is_some_and(|t| now >= t) || over.contains(&s.pod_template_hash);
            if due && self.in_flight(&s.pod_template_hash) == 0 {
                done.push(s.pod_template_hash.clone());
            } else {
                if let Some(t) = s.after
                    && now < t
                {
                    self.wake = Some(self.wake.map_or(t, |w| w.min(t)));
                }
                // kept as it is until it goes: an old stable stays whole, an aborted canary
                // does not grow
                let kept = self
                    .input
                    .observed
                    .revisions
                    .get(&s.pod_template_hash)
                    .and_then(|r| r.replicas)
                    .map_or(replicas, |n| n.min(replicas));
                self.replicas.insert(s.pod_template_hash.clone(), kept);
            }
        }
        self.st
            .scale_downs
            .retain(|s| !done.contains(&s.pod_template_hash));
        for r in &self.st.revisions {
            self.replicas
                .entry(r.pod_template_hash.clone())
                .or_insert(0);
        }
        for (h, n) in active {
            self.replicas.insert(h.clone(), *n);
        }
    }

    /// `scaleDownDelayRevisionLimit` of the strategy in force.
    fn scale_down_delay_revision_limit(&self) -> Option<u32> {
        let strategy = &self.input.spec.strategy;
        strategy
            .canary
            .as_ref()
            .and_then(|c| c.scale_down_delay_revision_limit)
            .or(strategy
                .blue_green
                .as_ref()
                .and_then(|b| b.scale_down_delay_revision_limit))
    }

    /// The progress deadline: Degraded (and aborted, if configured) when nothing moved for
    /// `progressDeadlineSeconds` while progressing (pauses excepted).
    pub(super) fn check_progress_deadline(&mut self) {
        // paused or aborted, the clock stops; it starts again from zero when the rollout
        // moves on (not moved on every look, so that a waiting rollout writes nothing)
        if self.st.abort || !self.st.pause_conditions.is_empty() || self.input.spec.paused {
            self.st.progress_at = None;
            return;
        }
        let deadline = Duration::from_secs(u64::from(
            self.input
                .spec
                .progress_deadline_seconds
                .unwrap_or(DEFAULT_PROGRESS_DEADLINE),
        ));
        let since = *self.st.progress_at.get_or_insert(self.now());
        if self.now().since(since) >= deadline {
            let message = format!(
                "ProgressDeadlineExceeded: revision {} made no progress for {}s",
                self.revision_number(&self.current()),
                deadline.as_secs()
            );
            if !self
                .st
                .conditions
                .iter()
                .any(|c| c.reason == ConditionReason::ProgressDeadlineExceeded)
            {
                self.set_condition(
                    ConditionType::Progressing,
                    ConditionStatus::False,
                    ConditionReason::ProgressDeadlineExceeded,
                    &message,
                );
                self.event(Reason::ProgressDeadlineExceeded, message.clone());
            }
            if self.input.spec.progress_deadline_abort {
                self.abort(message);
            }
        } else {
            self.wake_at(since.plus(deadline));
        }
    }

    pub(super) fn set_condition(
        &mut self,
        type_: ConditionType,
        status: ConditionStatus,
        reason: ConditionReason,
        message: &str,
    ) {
        let now = self.now();
        // the transition time moves only when the condition does
        if let Some(c) = self
            .st
            .conditions
            .iter_mut()
            .find(|c| c.type_ == type_ && c.status == status && c.reason == reason)
        {
            message.clone_into(&mut c.message);
            return;
        }
        self.st.conditions.retain(|c| c.type_ != type_);
        self.st.conditions.push(Condition {
            type_,
            status: status.to_owned(),
            reason,
            message: message.to_owned(),
            last_transition_time: now,
        });
    }

    fn deadline_exceeded(&self) -> bool {
        self.st
            .conditions
            .iter()
            .any(|c| c.reason == ConditionReason::ProgressDeadlineExceeded)
    }

    /// The last step of every decision: phase, message, effects.
    pub(super) fn finish(mut self) -> Decision {
        let route = self.route.clone().unwrap_or_else(|| {
            let stable = self.stable();
            self.base_route(&stable)
        });
        let verified = self.st.canary.weights.as_ref().is_some_and(|w| w.verified);
        let current = self.current();
        let (phase, message) = if self.st.abort {
            let n = self.revision_number(&current);
            let why = self
                .st
                .abort_reason
                .as_ref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            let detail = if verified {
                "all traffic is back on stable at every proxy".to_owned()
            } else {
                self.waiting.clone().unwrap_or_default()
            };
            (
                Phase::Degraded,
                format!("RolloutAborted: Rollout aborted update to revision {n}{why}: {detail}"),
            )
        } else if self.deadline_exceeded() {
            let m = self
                .st
                .conditions
                .iter()
                .find(|c| c.reason == ConditionReason::ProgressDeadlineExceeded)
                .map(|c| c.message.clone())
                .unwrap_or_default();
            (Phase::Degraded, m)
        } else if self.input.spec.paused {
            (Phase::Paused, "paused by a person".to_owned())
        } else if let Some(p) = self.st.pause_conditions.first() {
            (Phase::Paused, format!("{:?}", p.reason))
        } else if Some(&current) != self.st.stable_rs.as_ref()
            || !verified
            || self.waiting.is_some()
        {
            (
                Phase::Progressing,
                self.waiting.clone().unwrap_or_else(|| {
                    format!("rolling out revision {}", self.revision_number(&current))
                }),
            )
        } else {
            (Phase::Healthy, String::new())
        };
        if phase != self.st.phase {
            self.event(
                Reason::RolloutPhaseChanged,
                format!("{:?} → {phase:?}", self.st.phase),
            );
        }
        self.st.phase = phase;
        self.st.message = message;
        if phase == Phase::Healthy {
            self.set_condition(
                ConditionType::Progressing,
                ConditionStatus::True,
                ConditionReason::NewReplicaSetAvailable,
                "rollout is healthy",
            );
        }
        // keep the run status fields in step with the runs
        let observed = &self.input.observed;
        let status_of = |r: &AnalysisRequest| RunStatus {
            name: r.run.clone(),
            status: observed
                .analysis
                .get(&r.run)
                .copied()
                .unwrap_or(RunPhase::Pending),
        };
        for r in &self.runs {
            let s = Some(status_of(r));
            match r.kind {
                RunKind::Step(_) => self.st.canary.current_step_analysis_run_status = s,
                RunKind::Background => self.st.canary.current_background_analysis_run_status = s,
                RunKind::PrePromotion => self.st.blue_green.pre_promotion_analysis_run_status = s,
                RunKind::PostPromotion => self.st.blue_green.post_promotion_analysis_run_status = s,
            }
        }

        let mut effects = Vec::new();
        if observed.route.published.as_ref() != Some(&route) {
            effects.push(Effect::PublishRoute(route.clone()));
        }
        for (h, n) in &self.replicas {
            let seen = observed.revisions.get(h).and_then(|r| r.replicas);
            if seen != Some(*n) {
                effects.push(Effect::Scale {
                    revision: h.clone(),
                    replicas: *n,
                });
            }
        }
        for r in &self.runs {
            if !observed.analysis.contains_key(&r.run) {
                effects.push(Effect::StartAnalysis(r.clone()));
            }
        }
        for (run, phase) in &observed.analysis {
            if !phase.is_complete() && !self.runs.iter().any(|r| &r.run == run) {
                effects.push(Effect::StopAnalysis { run: run.clone() });
            }
        }
        for h in &self.deleted {
            effects.push(Effect::DeleteRevision {
                revision: h.clone(),
            });
        }
        effects.extend(self.events.iter().cloned().map(Effect::Event));
        let requeue_after = self.wake.map(|t| t.since(self.input.now));
        Decision {
            status: self.st,
            route,
            replicas: self.replicas,
            analysis: self.runs,
            effects,
            requeue_after,
        }
    }
}
