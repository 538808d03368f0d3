//! The canary strategy: steps in order, each traffic change acknowledged before the next,
//! background analysis, full promotion, abort.

use super::context::{Ctx, DEFAULT_SCALE_DOWN_DELAY};
use super::model::{Reason, RunKind};
use super::route::{RouteIntent, managed_routes};
use crate::analysis::run::RunPhase;
use crate::spec::rollout::{CanaryStrategy, RolloutAnalysis};
use crate::status::PauseReason;

pub(super) fn run(ctx: &mut Ctx<'_>) {
    let default = CanaryStrategy::default();
    let spec = ctx.input.spec.strategy.canary.as_ref().unwrap_or(&default);
    let steps = &spec.steps;
    let len = steps.len() as u32;
    let current = ctx.current();
    let stable = ctx.stable();
    let replicas = ctx.spec_replicas();
    let delay = spec
        .scale_down_delay_seconds
        .unwrap_or(DEFAULT_SCALE_DOWN_DELAY);

    if ctx.st.abort {
        return abort(ctx, spec);
    }
    if current == stable {
        ctx.st.current_step_index = Some(len);
        ctx.st.pause_conditions.clear();
        ctx.st.controller_pause = false;
        ctx.settle_on(&stable, delay);
        ctx.size_revisions(&[(stable, replicas)]);
        return;
    }
    ctx.check_progress_deadline();
    if ctx.st.abort {
        return abort(ctx, spec);
    }

    let mut index = ctx.st.current_step_index.unwrap_or(0).min(len);
    if ctx.st.promote_full {
        index = len;
    }

    // background analysis, from its starting step until the rollout ends
    if background(ctx, spec, index, &current) {
        return abort(ctx, spec);
    }

    let held = ctx.input.spec.paused
        || ctx
            .st
            .paused_for(PauseReason::InconclusiveAnalysis)
            .is_some();
    loop {
        if index >= len {
            full_promotion(ctx, spec, index);
            return;
        }
        let route = route_at(ctx, spec, index, &stable, &current);
        let Some(step) = steps.get(index as usize) else {
            break;
        };
        // availability gate: never more weight to a revision without healthy endpoints
        let held_weight = held_route(ctx, &stable, &current).weight;
        if route.weight > held_weight && ctx.healthy(&current) == 0 {
            let keep = held_route(ctx, &stable, &current);
            ctx.route_to(keep);
            ctx.wait(format!(
                "waiting for revision {} to have healthy endpoints",
                ctx.revision_number(&current)
            ));
            break;
        }
        if held {
            ctx.route_to(route);
            break;
        }
        if step.set_weight.is_some() {
            if !ctx.route_to(route) {
                break;
            }
            advance(ctx, &mut index, "setWeight");
            continue;
        }
        if !ctx.route_to(route) {
            break;
        }
        if step.set_header_route.is_some() || step.set_mirror_route.is_some() {
            advance(ctx, &mut index, "route");
            continue;
        }
        if let Some(scale) = &step.set_canary_scale {
            ctx.st.canary_scale = if scale.match_traffic_weight {
                None
            } else if let Some(r) = scale.replicas {
                Some(r)
            } else {
                scale
                    .weight
                    .map(|w| ceil_share(ctx.spec_replicas(), w, 100))
            };
            advance(ctx, &mut index, "setCanaryScale");
            continue;
        }
        if let Some(pause) = &step.pause {
            if ctx.st.controller_pause && ctx.st.pause_conditions.is_empty() {
                // promoted while paused here
                advance(ctx, &mut index, "pause (promoted)");
                continue;
            }
            let start = ctx.pause(PauseReason::CanaryPauseStep);
            if let Some(d) = &pause.duration {
                let end = start.plus(d.value);
                if ctx.now() >= end {
                    ctx.st
                        .pause_conditions
                        .retain(|p| p.reason != PauseReason::CanaryPauseStep);
                    advance(ctx, &mut index, "pause");
                    continue;
                }
                ctx.wake_at(end);
            }
            break;
        }
        if let Some(a) = &step.analysis {
            let (run, phase) = ctx.run_analysis(RunKind::Step(index), a, &current);
            match phase {
                RunPhase::Successful => {
                    advance(ctx, &mut index, "analysis");
                    continue;
                }
                RunPhase::Failed | RunPhase::Error => {
                    ctx.abort(format!("analysis {run} is {phase:?}"));
                    ctx.st.current_step_index = Some(index);
                    return abort(ctx, spec);
                }
                RunPhase::Inconclusive => {
                    if ctx.st.controller_pause && ctx.st.pause_conditions.is_empty() {
                        advance(ctx, &mut index, "analysis (promoted)");
                        continue;
                    }
                    ctx.pause(PauseReason::InconclusiveAnalysis);
                }
                RunPhase::Pending | RunPhase::Running => {
                    ctx.wait(format!("waiting for analysis {run}"));
                }
            }
            break;
        }
        break;
    }
    ctx.st.current_step_index = Some(index);
    // the steps may have reached the background analysis's starting step just now
    if !ctx.runs.iter().any(|r| r.kind == RunKind::Background)
        && background(ctx, spec, index, &current)
    {
        return abort(ctx, spec);
    }
    let weight = weight_at(spec, Some(index));
    // a revision taking traffic runs at least minPodsPerReplicaSet pods (at most replicas)
    let at_least = |n: i32, share: u32| match spec.min_pods_per_replica_set {
        Some(min) if share > 0 => n.max(i32::try_from(min).unwrap_or(i32::MAX).min(replicas)),
        _ => n,
    };
    let canary_replicas = ctx
        .st
        .canary_scale
        .unwrap_or_else(|| at_least(ceil_share(replicas, weight, ctx.total()), weight));
    let stable_share = ctx.total().saturating_sub(weight);
    let stable_replicas = if spec.dynamic_stable_scale {
        at_least(
            ceil_share(replicas, stable_share, ctx.total()),
            stable_share,
        )
    } else {
        replicas
    };
    ctx.size_revisions(&[(stable, stable_replicas), (current, canary_replicas)]);
}

/// Follows the background analysis when it should run; true when it failed (abort now).
fn background(ctx: &mut Ctx<'_>, spec: &CanaryStrategy, index: u32, current: &str) -> bool {
    let Some(bg) = &spec.analysis else {
        return false;
    };
    let len = spec.steps.len() as u32;
    if ctx.st.promote_full
        || ctx.st.fast_track
        || index < bg.starting_step.unwrap_or(0)
        || index >= len
    {
        return false;
    }
    let analysis = RolloutAnalysis {
        templates: bg.templates.clone(),
        args: bg.args.clone(),
        dry_run: bg.dry_run.clone(),
        measurement_retention: bg.measurement_retention.clone(),
    };
    let seen_before = ctx
        .input
        .status
        .canary
        .current_background_analysis_run_status
        .as_ref()
        .map(|s| s.status);
    let (run, phase) = ctx.run_analysis(RunKind::Background, &analysis, current);
    match phase {
        RunPhase::Failed | RunPhase::Error => {
            ctx.abort(format!("background analysis {run} is {phase:?}"));
            true
        }
        RunPhase::Inconclusive if seen_before != Some(RunPhase::Inconclusive) => {
            ctx.pause(PauseReason::InconclusiveAnalysis);
            false
        }
        _ => false,
    }
}

fn advance(ctx: &mut Ctx<'_>, index: &mut u32, what: &str) {
    ctx.st.controller_pause = false;
    ctx.st
        .pause_conditions
        .retain(|p| p.reason != PauseReason::CanaryPauseStep);
    ctx.progressed();
    ctx.event(
        Reason::RolloutStepCompleted,
        format!("step {} ({what}) completed", *index + 1),
    );
    *index += 1;
}

/// ⌈n · part / whole⌉.
fn ceil_share(n: i32, part: u32, whole: u32) -> i32 {
    if whole == 0 {
        return 0;
    }
    let (num, den) = (i64::from(n.max(0)) * i64::from(part), i64::from(whole));
    let v = (num + den - 1) / den;
    i32::try_from(v).unwrap_or(i32::MAX)
}

/// The canary weight in force at step `index`: the last `setWeight` at or before it.
fn weight_at(spec: &CanaryStrategy, index: Option<u32>) -> u32 {
    let Some(i) = index else { return 0 };
    spec.steps
        .iter()
        .take(i as usize + 1)
        .filter_map(|s| s.set_weight)
        .next_back()
        .unwrap_or(0)
}

fn route_at(
    ctx: &Ctx<'_>,
    spec: &CanaryStrategy,
    index: u32,
    stable: &str,
    current: &str,
) -> RouteIntent {
    let mut r = ctx.base_route(stable);
    r.canary = Some(current.to_owned());
    r.weight = weight_at(spec, Some(index)).min(r.total);
    let (headers, mirrors) = managed_routes(&spec.steps, index as usize + 1);
    r.header_routes = headers;
    r.mirror_routes = mirrors;
    r
}

/// The route to hold while the canary has no healthy endpoint: the one published, if it is
/// this rollout's, else the canary at weight 0. Never more weight than the proxies have.
fn held_route(ctx: &Ctx<'_>, stable: &str, current: &str) -> RouteIntent {
    match &ctx.input.observed.route.published {
        Some(r) if r.stable == stable && r.canary.as_deref() == Some(current) => r.clone(),
        _ => {
            let mut r = ctx.base_route(stable);
            r.canary = Some(current.to_owned());
            r
        }
    }
}

fn full_promotion(ctx: &mut Ctx<'_>, spec: &CanaryStrategy, index: u32) {
    let current = ctx.current();
    let stable = ctx.stable();
    let replicas = ctx.spec_replicas();
    ctx.st.current_step_index = Some(index);
    let mut full = ctx.base_route(&stable);
    full.canary = Some(current.clone());
    full.weight = full.total;
    if ctx.healthy(&current) == 0 {
        let keep = held_route(ctx, &stable, &current);
        ctx.route_to(keep);
        ctx.wait(format!(
            "waiting for revision {} to have healthy endpoints",
            ctx.revision_number(&current)
        ));
        ctx.size_revisions(&[(stable, replicas), (current, replicas)]);
        return;
    }
    if !ctx.route_to(full) {
        ctx.size_revisions(&[(stable, replicas), (current, replicas)]);
        return;
    }
    // promote: the stable role moves to the new revision
    let n = ctx.revision_number(&current);
    ctx.st.stable_rs = Some(current.clone());
    ctx.st.pause_conditions.clear();
    ctx.st.controller_pause = false;
    ctx.st.promote_full = false;
    ctx.st.canary_scale = None;
    ctx.progressed();
    ctx.schedule_scale_down(&stable, None);
    ctx.event(
        Reason::RolloutCompleted,
        format!("revision {n} ({current}) is stable"),
    );
    let delay = spec
        .scale_down_delay_seconds
        .unwrap_or(DEFAULT_SCALE_DOWN_DELAY);
    ctx.settle_on(&current, delay);
    ctx.size_revisions(&[(current, replicas)]);
}

fn abort(ctx: &mut Ctx<'_>, spec: &CanaryStrategy) {
    let current = ctx.current();
    let stable = ctx.stable();
    let replicas = ctx.spec_replicas();
    ctx.st.pause_conditions.clear();
    ctx.st.controller_pause = false;
    if current != stable {
        ctx.schedule_scale_down(&current, None);
    }
    let delay = spec
        .abort_scale_down_delay_seconds
        .unwrap_or(DEFAULT_SCALE_DOWN_DELAY);
    ctx.settle_on(&stable, delay);
    ctx.size_revisions(&[(stable, replicas)]);
}
