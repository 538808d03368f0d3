//! What a person sees of a rollout (`get rollout`, `list rollouts`, the API and the dashboard),
//! built from the loop's state and figures its caller measures. One rule each for the
//! strategy's name, a revision's role and the step shown, whatever the runtime.

use std::time::Duration;

use sluice_api::Totals;

use super::runs::RunRecord;
use super::state::Entry;
use crate::analysis::run::RunPhase;
use crate::control::service::{
    AnalysisRunView, MetricView, RevisionStats, RevisionView, RolloutSummary, RolloutView,
};
use crate::spec::PodTemplate;
use crate::spec::rollout::{Rollout, RolloutSpec};
use crate::status::RolloutStatus;

/// Window of the figures in views.
pub const VIEW_WINDOW: Duration = Duration::from_secs(10);
/// Measurements shown per metric, newest last.
const MEASUREMENTS_SHOWN: usize = 10;

/// The strategy's name: `blueGreen` when the spec has one, else `canary`.
pub fn strategy(spec: &RolloutSpec) -> &'static str {
    if spec.strategy.blue_green.is_some() {
        "blueGreen"
    } else {
        "canary"
    }
}

/// A revision's role: `stable` when it is both, else `stable`/`active` for the stable one,
/// `canary`/`preview` for the current one, `old` for the rest.
pub fn role(hash: &str, stable: &str, current: &str, blue_green: bool) -> &'static str {
    match (hash == stable, hash == current) {
        (true, true) => "stable",
        (true, false) if blue_green => "active",
        (true, false) => "stable",
        (false, true) if blue_green => "preview",
        (false, true) => "canary",
        (false, false) => "old",
    }
}

/// A line of `list rollouts`.
pub fn summary(
    key: &str,
    name: &str,
    namespace: &str,
    spec: &RolloutSpec,
    status: &RolloutStatus,
) -> RolloutSummary {
    let steps = spec.strategy.canary.as_ref().map(|c| c.steps.len() as u32);
    RolloutSummary {
        key: key.to_owned(),
        name: name.to_owned(),
        namespace: namespace.to_owned(),
        strategy: strategy(spec).to_owned(),
        phase: status.phase,
        step: steps.map(|n| (status.current_step_index.unwrap_or(0).min(n), n)),
        weight: status.canary.weights.as_ref().map(|w| {
            (
                w.canary.as_ref().map_or(0, |c| c.weight),
                w.total,
                w.verified,
            )
        }),
        message: status.message.clone(),
    }
}

/// A revision as a view shows it, without figures (where the proxies' counters cannot be
/// read, as from a cluster's API server alone).
pub fn bare_revision(
    rev: &crate::status::RevisionRecord,
    stable: &str,
    current: &str,
    blue_green: bool,
) -> RevisionView {
    RevisionView {
        revision: rev.revision,
        pod_template_hash: rev.pod_template_hash.clone(),
        role: role(&rev.pod_template_hash, stable, current, blue_green).to_owned(),
        images: rev
            .template
            .containers()
            .map(|cs| cs.into_iter().map(|c| c.image).collect())
            .unwrap_or_default(),
        addresses: Vec::new(),
        healthy: 0,
        replicas: None,
        stats: RevisionStats::default(),
    }
}

/// What the caller measured of one revision.
pub struct Figures {
    /// Addresses serving it.
    pub addresses: Vec<String>,
    /// How many are healthy.
    pub healthy: u32,
    /// Its counters over the view window, merged across proxies.
    pub totals: Totals,
    /// The span the counters cover.
    pub span: Duration,
}

/// Everything a rollout view is built from.
pub struct Sources<'a> {
    /// The rollout as its owners wrote it.
    pub rollout: &'a Rollout,
    /// The spec in force.
    pub spec: &'a RolloutSpec,
    /// Its state.
    pub entry: &'a Entry,
    /// Its analysis runs, by name.
    pub runs: &'a [(String, RunRecord)],
    /// Figures of a revision (its template and hash).
    pub figures: &'a dyn Fn(&PodTemplate, &str) -> Figures,
    /// What keeps the loop from doing its work for it, if anything.
    pub problem: Option<String>,
}

fn stats(f: &Figures) -> RevisionStats {
    let n = f.totals.requests();
    RevisionStats {
        requests: n,
        rate: n as f64 / f.span.as_secs_f64().max(1.0),
        error_rate: f.totals.error_rate(),
        p99_seconds: f.totals.quantile_seconds(0.99),
        window_seconds: f.span.as_secs_f64(),
    }
}

fn run_view(name: &str, rec: &RunRecord) -> AnalysisRunView {
    AnalysisRunView {
        name: name.to_owned(),
        kind: rec.request.kind,
        phase: rec.phase,
        metrics: rec
            .metrics
            .iter()
            .map(|m| {
                let skip = m.measurements.len().saturating_sub(MEASUREMENTS_SHOWN);
                MetricView {
                    name: m.name.clone(),
                    phase: m
                        .measurements
                        .last()
                        .map_or(RunPhase::Pending, |_| rec.phase),
                    measurements: m.measurements[skip..]
                        .iter()
                        .map(|x| {
                            let shown = x
                                .value
                                .clone()
                                .unwrap_or_else(|| x.message.clone().unwrap_or_default());
                            (shown, x.phase)
                        })
                        .collect(),
                    waiting: m.waiting.clone(),
                    detail: m
                        .measurements
                        .last()
                        .filter(|x| x.value.is_some())
                        .and_then(|x| x.message.clone()),
                    dry_run: rec.dry_run.contains(&m.name),
                    conditions: m.conditions.clone(),
                }
            })
            .collect(),
        error: rec.error.clone(),
    }
}

/// Each canary step of a spec, in words.
pub fn step_list(spec: &RolloutSpec) -> Vec<String> {
    let Some(c) = &spec.strategy.canary else {
        return Vec::new();
    };
    c.steps
        .iter()
        .map(|step| {
            if let Some(w) = step.set_weight {
                return format!("set weight {w}");
            }
            if let Some(p) = &step.pause {
                return match &p.duration {
                    Some(d) => format!("pause {d}"),
                    None => "pause until promoted".to_owned(),
                };
            }
            if let Some(a) = &step.analysis {
                let names: Vec<&str> = a
                    .templates
                    .iter()
                    .map(|t| t.template_name.as_str())
                    .collect();
                return format!("analysis {}", names.join(", "));
            }
            if let Some(h) = &step.set_header_route {
                return if h.matches.is_empty() {
                    format!("remove header route {}", h.name)
                } else {
                    format!("header route {}", h.name)
                };
            }
            if let Some(m) = &step.set_mirror_route {
                return match m.percentage {
                    Some(p) if !m.matches.is_empty() => format!("mirror {p} % ({})", m.name),
                    _ if m.matches.is_empty() => format!("remove mirror {}", m.name),
                    _ => format!("mirror ({})", m.name),
                };
            }
            if let Some(sc) = &step.set_canary_scale {
                return match (sc.replicas, sc.weight, sc.match_traffic_weight) {
                    (Some(r), _, _) => format!("canary scale {r} replicas"),
                    (_, Some(w), _) => format!("canary scale {w} %"),
                    _ => "canary scale matches traffic".to_owned(),
                };
            }
            "step".to_owned()
        })
        .collect()
}

/// Everything `get rollout` and the dashboard show of one rollout.
pub fn rollout(s: Sources<'_>) -> RolloutView {
    let e = s.entry;
    let current = e.status.current_pod_hash.clone().unwrap_or_default();
    let stable = e.status.stable_rs.clone().unwrap_or_default();
    let blue_green = s.spec.strategy.blue_green.is_some();
    let mut revisions: Vec<RevisionView> = e
        .status
        .revisions
        .iter()
        .map(|rev| {
            let hash = &rev.pod_template_hash;
            let f = (s.figures)(&rev.template, hash);
            RevisionView {
                revision: rev.revision,
                pod_template_hash: hash.clone(),
                role: role(hash, &stable, &current, blue_green).to_owned(),
                images: rev
                    .template
                    .containers()
                    .map(|cs| cs.into_iter().map(|c| c.image).collect())
                    .unwrap_or_default(),
                healthy: f.healthy,
                stats: stats(&f),
                addresses: f.addresses,
                replicas: e.replicas.get(hash).copied(),
            }
        })
        .collect();
    revisions.sort_by_key(|r| std::cmp::Reverse(r.revision));
    RolloutView {
        step_list: step_list(s.spec),
        name: s.rollout.metadata.name.clone(),
        namespace: s.rollout.metadata.namespace().to_owned(),
        strategy: strategy(s.spec).to_owned(),
        steps: s
            .spec
            .strategy
            .canary
            .as_ref()
            .map_or(0, |c| c.steps.len() as u32),
        status: e.status.clone(),
        paused: s.spec.paused,
        generation: e.live.as_ref().map_or(0, |(_, g)| *g),
        route: e.live.as_ref().map(|(r, _)| r.clone()),
        revisions,
        analysis_runs: s
            .runs
            .iter()
            .filter(|(_, rec)| rec.request.revision == current)
            .map(|(n, rec)| run_view(n, rec))
            .collect(),
        events: e.events.iter().cloned().collect(),
        runtime_error: s.problem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_follow_the_strategy() {
        for bg in [false, true] {
            assert_eq!(role("a", "a", "a", bg), "stable");
            assert_eq!(role("x", "a", "b", bg), "old");
        }
        assert_eq!(role("a", "a", "b", false), "stable");
        assert_eq!(role("a", "a", "b", true), "active");
        assert_eq!(role("b", "a", "b", false), "canary");
        assert_eq!(role("b", "a", "b", true), "preview");
    }
}
