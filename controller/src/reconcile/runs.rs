//! Drives analysis runs for every runtime: each run is a task that measures its metrics when
//! they are due (by the pure scheduling rules), records the measurements in the run, and wakes
//! the runtime when the verdict changes. Runs are part of the persisted state, so a restarted
//! controller picks them up where they were.
//!
//! The driver sees its runtime through [`RunHost`]: the records, the templates and the
//! targets, nothing more.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::analysis::run::{self, MetricState, RunPhase, RunSpec};
use crate::engine::AnalysisRequest;
use crate::providers;
pub use crate::providers::Measured;
use crate::time::Time;

/// A run and everything measured so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    /// What the rollout asked for.
    pub request: AnalysisRequest,
    /// The rollout it belongs to.
    pub rollout: String,
    /// When it started.
    pub started: Time,
    /// Metric states.
    pub metrics: Vec<MetricState>,
    /// Verdict so far.
    pub phase: RunPhase,
    /// Stopped early by the rollout.
    pub terminated: bool,
    /// Why it could not run, if it could not.
    pub error: Option<String>,
    /// Metric names that are dry runs.
    #[serde(default)]
    pub dry_run: Vec<String>,
}

impl RunRecord {
    /// A new run.
    pub fn new(rollout: &str, request: AnalysisRequest, now: Time) -> Self {
        Self {
            request,
            rollout: rollout.to_owned(),
            started: now,
            metrics: Vec::new(),
            phase: RunPhase::Pending,
            terminated: false,
            error: None,
            dry_run: Vec::new(),
        }
    }
}

/// What the run driver needs of its runtime.
pub trait RunHost: Send + Sync + 'static {
    /// The run's record, if it still exists.
    fn run(&self, name: &str) -> Option<RunRecord>;
    /// Changes the run's record (and wakes the runtime when that changed anything).
    fn update_run(&self, name: &str, f: impl FnOnce(&mut RunRecord));
    /// Asks the runtime to look at its runs again.
    fn wake(&self);
    /// The AnalysisTemplate of that name that `rollout`'s runs use, if there is one.
    fn template(&self, rollout: &str, name: &str) -> Option<crate::spec::AnalysisTemplate>;
    /// What the run's providers measure; `None` while the rollout is unknown.
    fn target_of(&self, rec: &RunRecord) -> Option<Measured>;
    /// A signal on every report of the proxies merged, for the metrics that weigh each report
    /// as it comes (`canary-vs-stable`); `None` where there is none.
    fn reports(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }
    /// The value of key `key` of Secret `secret` for `rollout`'s runs.
    fn secret(
        &self,
        rollout: &str,
        secret: &str,
        key: &str,
    ) -> futures_util::future::BoxFuture<'_, Result<String, Error>>;
}

/// The run's arguments: those resolved when it was asked for, and those read from Secrets
/// now (kept in memory for this run only, never in the state).
async fn args_of(rt: &impl RunHost, rec: &RunRecord) -> Result<BTreeMap<String, String>, Error> {
    let mut args = rec.request.args.clone();
    for (arg, from) in &rec.request.secrets {
        let value = rt
            .secret(&rec.rollout, &from.name, &from.key)
            .await
            .map_err(|e| {
                Error::field(format!("args.{arg}.valueFrom.secretKeyRef"), e.to_string())
            })?;
        args.insert(arg.clone(), value);
    }
    Ok(args)
}

/// Builds the run's spec from the runtime's templates.
fn spec_of(
    rt: &impl RunHost,
    rec: &RunRecord,
    args: &BTreeMap<String, String>,
) -> Result<RunSpec, Error> {
    let templates = run::included(&rec.request.templates, |name| {
        rt.template(&rec.rollout, name)
    })?;
    let refs: Vec<&crate::spec::AnalysisTemplate> = templates.iter().collect();
    let rules = run::Rules {
        dry_run: &rec.request.dry_run,
        retention: &rec.request.measurement_retention,
    };
    run::build_run(&refs, args, &rules).map_err(Error::Invalid)
}

/// Whether a metric weighs every report as it is merged: a `proxy` `canary-vs-stable` verdict.
/// While it waits for a verdict (too little traffic, or undecided), it is evaluated again on
/// each report instead of at its interval; once decided, its next measurement is at its
/// interval as any other's.
fn continuous(m: &run::MetricSpec) -> bool {
    m.provider
        .proxy
        .as_ref()
        .is_some_and(|p| p.query == crate::spec::template::ProxyQuery::CanaryVsStable)
}

/// Runs (or resumes) one run until it is done or terminated.
pub async fn drive(rt: Arc<impl RunHost>, name: String) {
    let mut reports = rt.reports();
    let Some(rec) = rt.run(&name) else { return };
    let built = match args_of(&*rt, &rec).await {
        Ok(args) => {
            // a template the owners wrote with the rollout may reach the runtime's view a
            // moment after it (a watch catching up): looked for again before giving up
            let mut waited = Duration::ZERO;
            loop {
                match spec_of(&*rt, &rec, &args) {
                    Err(Error::NotFound(_)) if waited < TEMPLATE_WAIT => {
                        tokio::time::sleep(TEMPLATE_RETRY).await;
                        waited += TEMPLATE_RETRY;
                    }
                    built => break built,
                }
            }
        }
        Err(e) => Err(e),
    };
    let spec = match built {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(run = %name, error = %e, "analysis cannot run");
            rt.update_run(&name, |r| {
                r.error = Some(e.to_string());
                r.phase = RunPhase::Error;
            });
            return;
        }
    };
    rt.update_run(&name, |r| {
        r.dry_run = spec
            .metrics
            .iter()
            .filter(|m| m.dry_run)
            .map(|m| m.name.clone())
            .collect();
        for m in &spec.metrics {
            match r.metrics.iter_mut().find(|s| s.name == m.name) {
                Some(s) => s.conditions = m.conditions(),
                None => r.metrics.push(MetricState {
                    name: m.name.clone(),
                    conditions: m.conditions(),
                    ..MetricState::default()
                }),
            }
        }
        if r.phase == RunPhase::Pending {
            r.phase = RunPhase::Running;
        }
    });
    loop {
        let Some(rec) = rt.run(&name) else { return };
        if rec.terminated || rec.phase.is_complete() {
            return;
        }
        let now = Time::now();
        let states: BTreeMap<&str, &MetricState> =
            rec.metrics.iter().map(|m| (m.name.as_str(), m)).collect();
        let mut due = Vec::new();
        // whether the metrics are looked at because a report came, not because they are due
        let mut from_report = false;
        let mut next: Option<Time> = None;
        for m in &spec.metrics {
            let Some(state) = states.get(m.name.as_str()) else {
                continue;
            };
            if let Some(t) = run::next_due(m, state, rec.started) {
                if t <= now {
                    due.push(m.clone());
                } else {
                    next = Some(next.map_or(t, |n| n.min(t)));
                }
            }
        }
        if due.is_empty() {
            let Some(next) = next else {
                // every metric is done: settle the verdict
                rt.update_run(&name, |r| {
                    r.phase = run::run_phase(&spec, &r.metrics, r.terminated)
                });
                rt.wake();
                return;
            };
            let sleep = next
                .since(now)
                .min(Duration::from_secs(1))
                .max(Duration::from_millis(5));
            let waiting: Vec<run::MetricSpec> = spec
                .metrics
                .iter()
                .filter(|m| continuous(m))
                .filter(|m| {
                    states
                        .get(m.name.as_str())
                        .is_some_and(|s| s.waiting.is_some())
                })
                .cloned()
                .collect();
            match reports.as_mut() {
                Some(rx) if !waiting.is_empty() => {
                    tokio::select! {
                        () = tokio::time::sleep(sleep) => continue,
                        changed = rx.changed() => {
                            if changed.is_err() {
                                reports = None;
                                continue;
                            }
                            due = waiting;
                            from_report = true;
                        }
                    }
                }
                _ => {
                    tokio::time::sleep(sleep).await;
                    continue;
                }
            }
        }
        let Some(target) = rt.target_of(&rec) else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let mut recorded = false;
        for m in due {
            let outcome = providers::measure(&m, &target, Time::now()).await;
            let at = Time::now();
            let measurement = run::assess(&m, &outcome, at);
            let last = states.get(m.name.as_str()).and_then(|s| s.last_attempt);
            if from_report && measurement.is_none() && !record_look(last, at) {
                // still undecided: looked at again on the next report, kept once a second
                tracing::debug!(run = %name, metric = %m.name, outcome = ?outcome, "looked");
                continue;
            }
            tracing::info!(run = %name, metric = %m.name, outcome = ?outcome, "measured");
            rt.update_run(&name, |r| {
                if let Some(state) = r.metrics.iter_mut().find(|s| s.name == m.name) {
                    run::record(state, &outcome, measurement.clone(), at);
                    run::retain(state, m.retention);
                }
                r.phase = run::run_phase(&spec, &r.metrics, r.terminated);
            });
            recorded = true;
        }
        if recorded {
            rt.wake();
        }
    }
}

/// Whether an undecided look taken on a report is kept in the run (and so saved and shown):
/// once a second at most, so that a verdict weighed on every report does not write the state
/// on every report. A decided one is always kept.
fn record_look(last: Option<Time>, now: Time) -> bool {
    last.is_none_or(|t| now.since(t) >= UNDECIDED_KEPT_EVERY)
}

/// How long a run waits for a template it names to be known before it is an Error.
const TEMPLATE_WAIT: Duration = Duration::from_secs(10);
/// How often it looks again meanwhile.
const TEMPLATE_RETRY: Duration = Duration::from_millis(250);

/// How often an undecided look taken on a report is kept.
const UNDECIDED_KEPT_EVERY: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_undecided_look_on_a_report_is_kept_once_a_second() {
        let t = Time(10_000);
        assert!(record_look(None, t), "the first look is kept");
        assert!(!record_look(Some(Time(9_500)), t));
        assert!(record_look(Some(Time(9_000)), t));
        assert!(!record_look(Some(t), t));
    }
}
