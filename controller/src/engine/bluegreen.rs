//! The blue/green strategy: the new revision runs beside the active one, reachable only as
//! a preview; after pre-promotion analysis and promotion (by a person, or automatically) users
//! switch to it; post-promotion analysis that fails switches them back.

use std::time::Duration;

use super::context::{Ctx, DEFAULT_SCALE_DOWN_DELAY};
use super::model::{Reason, RunKind};
use super::route::DEFAULT_PREVIEW_HEADER;
use crate::analysis::run::RunPhase;
use crate::spec::rollout::BlueGreenStrategy;
use crate::status::PauseReason;

pub(super) fn run(ctx: &mut Ctx<'_>) {
    let default = BlueGreenStrategy::default();
    let spec = ctx
        .input
        .spec
        .strategy
        .blue_green
        .as_ref()
        .unwrap_or(&default);
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
        ctx.st.pause_conditions.clear();
        ctx.st.controller_pause = false;
        ctx.st.blue_green.active_selector = Some(stable.clone());
        ctx.st.blue_green.preview_selector = Some(stable.clone());
        ctx.settle_on(&stable, delay);
        ctx.size_revisions(&[(stable, replicas)]);
        return;
    }
    ctx.check_progress_deadline();
    if ctx.st.abort {
        return abort(ctx, spec);
    }

    let switched = ctx.st.blue_green.active_selector.as_deref() == Some(current.as_str());
    if !switched {
        let preview_replicas = spec.preview_replica_count.unwrap_or(replicas).max(0);
        ctx.size_revisions(&[
            (stable.clone(), replicas),
            (current.clone(), preview_replicas),
        ]);
        ctx.st.blue_green.active_selector = Some(stable.clone());
        if ctx.healthy(&current) == 0 {
            let only_active = ctx.base_route(&stable);
            ctx.route_to(only_active);
            ctx.wait(format!(
                "waiting for the preview (revision {}) to have healthy endpoints",
                ctx.revision_number(&current)
            ));
            return;
        }
        ctx.st.blue_green.preview_selector = Some(current.clone());
        let mut preview = ctx.base_route(&stable);
        preview.canary = Some(current.clone());
        let sluice = ctx.routing().and_then(|r| r.sluice.as_ref());
        preview.preview_hosts = sluice.map(|s| s.preview_hosts.clone()).unwrap_or_default();
        preview.preview_header = Some(
            sluice
                .and_then(|s| s.preview_header.clone())
                .unwrap_or_else(|| DEFAULT_PREVIEW_HEADER.to_owned()),
        );
        if !ctx.route_to(preview) || ctx.input.spec.paused {
            return;
        }
        match gate(
            ctx,
            RunKind::PrePromotion,
            spec.pre_promotion_analysis.as_ref(),
            &current,
            "pre-promotion",
        ) {
            Gate::Open => {}
            Gate::Closed => return,
            Gate::Abort => return abort(ctx, spec),
        }
        if !ctx.st.promote_full {
            let promoted = ctx.st.controller_pause && ctx.st.pause_conditions.is_empty();
            if !promoted {
                if spec.auto_promotion_enabled == Some(false) {
                    ctx.pause(PauseReason::BlueGreenPause);
                    return;
                }
                if let Some(secs) = spec.auto_promotion_seconds {
                    let start = ctx.pause(PauseReason::BlueGreenPause);
                    let end = start.plus(Duration::from_secs(u64::from(secs)));
                    if ctx.now() < end {
                        ctx.wake_at(end);
                        return;
                    }
                }
            }
        }
        // switch users to the new revision
        ctx.st.pause_conditions.clear();
        ctx.st.controller_pause = false;
        ctx.st.blue_green.active_selector = Some(current.clone());
        ctx.st.switched_at = Some(ctx.now());
        ctx.progressed();
        let n = ctx.revision_number(&current);
        ctx.event(
            Reason::RolloutSwitched,
            format!("users switched to revision {n} ({current})"),
        );
    }

    // switched: users are on the new revision; the old one stays up until promotion
    ctx.size_revisions(&[(stable.clone(), replicas), (current.clone(), replicas)]);
    let active = ctx.base_route(&current);
    if !ctx.route_to(active) {
        return;
    }
    match gate(
        ctx,
        RunKind::PostPromotion,
        spec.post_promotion_analysis.as_ref(),
        &current,
        "post-promotion",
    ) {
        Gate::Open => {}
        Gate::Closed => return,
        Gate::Abort => return abort(ctx, spec),
    }
    let n = ctx.revision_number(&current);
    ctx.st.stable_rs = Some(current.clone());
    ctx.st.promote_full = false;
    ctx.st.pause_conditions.clear();
    ctx.st.controller_pause = false;
    ctx.st.blue_green.preview_selector = Some(current.clone());
    ctx.progressed();
    ctx.schedule_scale_down(&stable, None);
    ctx.event(
        Reason::RolloutCompleted,
        format!("revision {n} ({current}) is stable"),
    );
    ctx.settle_on(&current, delay);
    ctx.size_revisions(&[(current, replicas)]);
}

/// What an analysis before or after the switch lets happen.
enum Gate {
    /// Go on.
    Open,
    /// Wait (running, or paused as inconclusive).
    Closed,
    /// It failed: abort.
    Abort,
}

/// Follows a pre- or post-promotion analysis: Successful opens, Failed or Error aborts,
/// Inconclusive pauses until promoted, anything else waits. `promote --full` skips it.
fn gate(
    ctx: &mut Ctx<'_>,
    kind: RunKind,
    analysis: Option<&crate::spec::rollout::RolloutAnalysis>,
    current: &str,
    what: &str,
) -> Gate {
    let Some(a) = analysis.filter(|_| !ctx.st.promote_full) else {
        return Gate::Open;
    };
    let (run, phase) = ctx.run_analysis(kind, a, current);
    match phase {
        RunPhase::Successful => Gate::Open,
        RunPhase::Failed | RunPhase::Error => {
            ctx.abort(format!("{what} analysis {run} is {phase:?}"));
            Gate::Abort
        }
        RunPhase::Inconclusive if ctx.st.controller_pause && ctx.st.pause_conditions.is_empty() => {
            Gate::Open
        }
        RunPhase::Inconclusive => {
            ctx.pause(PauseReason::InconclusiveAnalysis);
            Gate::Closed
        }
        RunPhase::Pending | RunPhase::Running => {
            ctx.wait(format!("waiting for analysis {run}"));
            Gate::Closed
        }
    }
}

fn abort(ctx: &mut Ctx<'_>, spec: &BlueGreenStrategy) {
    let current = ctx.current();
    let stable = ctx.stable();
    let replicas = ctx.spec_replicas();
    ctx.st.pause_conditions.clear();
    ctx.st.controller_pause = false;
    ctx.st.blue_green.active_selector = Some(stable.clone());
    if current != stable {
        ctx.schedule_scale_down(&current, None);
    }
    let delay = spec
        .abort_scale_down_delay_seconds
        .unwrap_or(DEFAULT_SCALE_DOWN_DELAY);
    ctx.settle_on(&stable, delay);
    ctx.size_revisions(&[(stable, replicas)]);
}
