//! The scenarios of DESIGN §1 that the engine decides, each as an exact trace.

use super::*;

#[test]
fn c1_weights_move_by_themselves_and_revision_2_becomes_stable() {
    let mut sim = Sim::example("c1-canary-auto.yaml");
    sim.set_image("chip:v2").settle();
    assert_eq!(sim.split(), ("r1".into(), Some(("r2".into(), 20))));
    assert_eq!(sim.phase(), Phase::Paused);
    assert_eq!(
        sim.take_trace(),
        [
            "route stable=r1 canary=r2 w=20",
            "scale r2=2",
            "event RolloutUpdated",
            "event RolloutPhaseChanged",
            "event RolloutStepCompleted",
            "event RolloutPhaseChanged",
        ]
    );
    assert_eq!(sim.decide().requeue_after, Some(Duration::from_secs(10)));
    sim.advance(9).settle();
    assert_eq!(
        sim.split().1,
        Some(("r2".into(), 20)),
        "the pause lasts 10 s"
    );
    for w in [40, 60, 80] {
        sim.advance(1).settle();
        assert_eq!(sim.split().1, Some(("r2".into(), w)));
        assert_eq!(sim.status.current_step_index, Some(w / 20 * 2 - 1));
        sim.advance(9).settle();
    }
    sim.take_trace();
    sim.advance(1).settle();
    assert_eq!(
        sim.take_trace(),
        [
            // 100 % to the canary first (sized to all 10 replicas); once acknowledged, the
            // stable role moves
            "route stable=r1 canary=r2 w=100",
            "scale r2=10",
            "event RolloutStepCompleted",
            "event RolloutPhaseChanged",
            "route stable=r2",
            "event RolloutStepCompleted",
            "event RolloutCompleted",
            "event RolloutPhaseChanged",
        ]
    );
    assert_eq!(sim.phase(), Phase::Healthy);
    assert_eq!(
        sim.status.stable_rs.as_deref(),
        Some(sim.hash("chip:v2").as_str())
    );
    // revision 1 stays up for the scale-down delay, then is scaled to zero and kept for rollback
    assert_eq!(
        sim.last
            .as_ref()
            .unwrap()
            .replicas
            .get(&sim.hash("chip:v1")),
        Some(&10)
    );
    sim.advance(30).settle();
    assert_eq!(sim.take_trace(), ["scale r1=0"]);
    assert!(sim.status.revision(&sim.hash("chip:v1")).is_some());
}

#[test]
fn c1_promotion_goes_through_100_percent_before_the_stable_role_moves() {
    let mut sim = Sim::example("c1-canary-auto.yaml");
    sim.set_image("chip:v2").settle();
    sim.auto_ack = false;
    sim.command(Command::PromoteFull).unwrap();
    sim.settle();
    // 100 % to the canary is published, but not acknowledged: the stable role has not moved
    assert_eq!(sim.split(), ("r1".into(), Some(("r2".into(), 100))));
    assert_ne!(sim.status.stable_rs, sim.status.current_pod_hash);
    assert_eq!(sim.phase(), Phase::Progressing);
    sim.ack().settle();
    // acknowledged: the stable role moves, and the old revision is kept until that is acknowledged too
    assert_eq!(sim.split(), ("r2".into(), None));
    assert_eq!(sim.status.stable_rs, sim.status.current_pod_hash);
    assert_eq!(sim.status.scale_downs[0].after, None);
    assert_eq!(sim.phase(), Phase::Progressing);
    sim.ack().settle();
    assert_eq!(sim.phase(), Phase::Healthy);
    let after = sim.status.scale_downs[0].after.unwrap();
    assert_eq!(after, sim.now.plus(Duration::from_secs(30)));
    // requests still in flight to revision 1 hold its scale-down past the delay
    let r1 = sim.hash("chip:v1");
    sim.obs.revisions.get_mut(&r1).unwrap().in_flight = 3;
    sim.advance(31).settle();
    assert_eq!(sim.last.as_ref().unwrap().replicas[&r1], 10);
    sim.obs.revisions.get_mut(&r1).unwrap().in_flight = 0;
    sim.take_trace();
    sim.settle();
    assert_eq!(sim.take_trace(), ["scale r1=0"]);
}

#[test]
fn c2_stops_at_80_until_promote() {
    let mut sim = Sim::example("c2-canary-final-promote.yaml");
    sim.set_image("chip:v2").settle();
    sim.advance(10).settle().advance(10).settle();
    assert_eq!(sim.split().1, Some(("r2".into(), 80)));
    assert_eq!(sim.phase(), Phase::Paused);
    assert_eq!(
        sim.decide().requeue_after,
        None,
        "an indefinite pause sets no timer"
    );
    sim.advance(3600).settle();
    assert_eq!(sim.split().1, Some(("r2".into(), 80)));
    sim.command(Command::Promote).unwrap();
    sim.settle();
    assert_eq!(sim.split(), ("r2".into(), None));
    assert_eq!(sim.phase(), Phase::Healthy);
}

#[test]
fn c2_abort_at_80_sends_everything_back_to_stable() {
    let mut sim = Sim::example("c2-canary-final-promote.yaml");
    sim.set_image("chip:v2").settle();
    sim.advance(10).settle().advance(10).settle();
    sim.auto_ack = false;
    sim.take_trace();
    sim.command(Command::Abort).unwrap();
    sim.decide();
    assert_eq!(sim.split(), ("r1".into(), None));
    assert_eq!(sim.phase(), Phase::Degraded);
    assert!(!sim.status.canary.weights.as_ref().unwrap().verified);
    assert!(
        sim.status.message.contains("waiting for proxies"),
        "{}",
        sim.status.message
    );
    sim.ack().settle();
    assert!(sim.status.canary.weights.as_ref().unwrap().verified);
    assert_eq!(
        sim.status.message,
        "RolloutAborted: Rollout aborted update to revision 2 (aborted by a person): all traffic is back on stable at every proxy"
    );
    // the canary is scaled down after abortScaleDownDelaySeconds
    sim.advance(30).settle();
    assert!(sim.take_trace().contains(&"scale r2=0".to_owned()));
    // retry starts again from the first step
    sim.command(Command::Retry).unwrap();
    sim.settle().ack().settle();
    assert_eq!(sim.split().1, Some(("r2".into(), 20)));
    assert_eq!(sim.status.attempt, 1);
}

#[test]
fn c3_a_person_looks_at_20_then_the_timed_steps_run() {
    let mut sim = Sim::example("c3-canary-initial-promote.yaml");
    sim.set_image("chip:v2").settle();
    assert_eq!(sim.split().1, Some(("r2".into(), 20)));
    sim.advance(600).settle();
    assert_eq!(sim.split().1, Some(("r2".into(), 20)));
    assert_eq!(sim.phase(), Phase::Paused);
    sim.command(Command::Promote).unwrap();
    sim.settle();
    assert_eq!(sim.split().1, Some(("r2".into(), 40)));
    for w in [60, 80] {
        sim.advance(10).settle();
        assert_eq!(sim.split().1, Some(("r2".into(), w)));
    }
    sim.advance(10).settle();
    assert_eq!(sim.phase(), Phase::Healthy);
    assert_eq!(sim.split(), ("r2".into(), None));
}

#[test]
fn c4_every_step_promoted_by_hand() {
    let mut sim = Sim::example("c4-canary-manual-steps.yaml");
    sim.set_image("chip:v2").settle();
    for w in (10..=90).step_by(10) {
        assert_eq!(sim.split().1, Some(("r2".into(), w)));
        assert_eq!(sim.phase(), Phase::Paused);
        sim.advance(100).settle();
        assert_eq!(sim.split().1, Some(("r2".into(), w)), "waits for a person");
        sim.command(Command::Promote).unwrap();
        sim.settle();
    }
    assert_eq!(sim.phase(), Phase::Healthy);
}

#[test]
fn c5_abort_at_any_step_publishes_no_canary_at_once() {
    for promotes in 0..8 {
        let mut sim = Sim::example("c3-canary-initial-promote.yaml");
        sim.set_image("chip:v2").settle();
        for _ in 0..promotes {
            let _ = sim.command(Command::Promote);
            sim.settle();
        }
        if sim.phase() == Phase::Healthy {
            assert!(
                sim.command(Command::Abort).is_err(),
                "nothing to abort when healthy"
            );
            continue;
        }
        sim.auto_ack = false;
        sim.command(Command::Abort).unwrap();
        let d = sim.decide();
        assert_eq!(d.route.canary, None, "after {promotes} promotes");
        assert!(d.route.header_routes.is_empty());
        assert_eq!(sim.phase(), Phase::Degraded);
    }
}

#[test]
fn c6_undo_after_full_promotion_rolls_back_and_fast_tracks_inside_the_window() {
    let mut sim = Sim::example("c6-rollback-window.yaml");
    sim.set_image("chip:v2").settle();
    sim.advance(10).settle().advance(10).settle();
    assert_eq!(sim.phase(), Phase::Healthy);
    assert_eq!(sim.split(), ("r2".into(), None));
    sim.take_trace();
    assert_eq!(
        sim.command(Command::Undo { to_revision: None }).unwrap(),
        "rolling back to revision 1"
    );
    sim.settle();
    // inside the window: no steps, straight to 100 % and promotion
    assert_eq!(sim.split(), ("r3".into(), None));
    assert_eq!(sim.phase(), Phase::Healthy);
    let trace = sim.take_trace();
    assert_eq!(trace[0], "route stable=r2 canary=r3 w=100", "{trace:?}");
    assert!(trace.contains(&"event RolloutFastTracked".to_owned()));
    assert_eq!(
        sim.status.current_pod_hash.as_deref(),
        Some(sim.hash("chip:v1").as_str())
    );

    // outside the window, the steps run
    let mut spec = example("c6-rollback-window.yaml");
    spec.rollback_window.as_mut().unwrap().revisions = 1;
    let mut sim = Sim::with(spec);
    for v in ["chip:v2", "chip:v3"] {
        sim.set_image(v).settle();
        sim.advance(10).settle().advance(10).settle();
    }
    sim.command(Command::Undo {
        to_revision: Some(1),
    })
    .unwrap();
    sim.settle();
    assert_eq!(sim.split().1, Some(("r4".into(), 20)));
    assert!(
        sim.command(Command::Undo {
            to_revision: Some(9)
        })
        .unwrap_err()
        .to_string()
        .contains("no revision 9")
    );
}

#[test]
fn c6_undo_during_a_rollout_goes_back_to_stable_without_steps() {
    let mut sim = Sim::example("c2-canary-final-promote.yaml");
    sim.set_image("chip:v2").settle();
    sim.command(Command::Undo { to_revision: None }).unwrap();
    sim.settle();
    assert_eq!(sim.split(), ("r3".into(), None));
    assert_eq!(sim.phase(), Phase::Healthy);
    assert_eq!(
        sim.status.stable_rs.as_deref(),
        Some(sim.hash("chip:v1").as_str())
    );
    // the abandoned canary is scaled down after the delay
    sim.advance(30).settle();
    assert_eq!(sim.last.as_ref().unwrap().replicas[&sim.hash("chip:v2")], 0);
}

#[test]
fn b1_preview_is_reachable_while_users_stay_on_active_until_promote() {
    let mut sim = Sim::example("b1-blue-green-manual.yaml");
    sim.set_image("chip:v2").settle();
    assert_eq!(
        sim.take_trace(),
        [
            "route stable=r1 canary=r2 w=0 preview=x-sluice-preview",
            "scale r2=10",
            "event RolloutUpdated",
            "event RolloutPhaseChanged",
            "event RolloutPhaseChanged",
        ]
    );
    let r = sim.obs.route.published.clone().unwrap();
    assert_eq!(r.preview_hosts, ["chip-preview.example.com"]);
    assert_eq!(sim.phase(), Phase::Paused);
    assert_eq!(
        sim.status.blue_green.active_selector.as_deref(),
        Some(sim.hash("chip:v1").as_str())
    );
    assert_eq!(
        sim.status.blue_green.preview_selector.as_deref(),
        Some(sim.hash("chip:v2").as_str())
    );
    sim.advance(3600).settle();
    assert_eq!(sim.split().0, "r1");
    sim.command(Command::Promote).unwrap();
    sim.settle();
    assert_eq!(sim.split(), ("r2".into(), None));
    assert_eq!(sim.phase(), Phase::Healthy);
    assert_eq!(
        sim.status.blue_green.active_selector.as_deref(),
        Some(sim.hash("chip:v2").as_str())
    );
}

#[test]
fn b1_preview_waits_for_healthy_endpoints() {
    let mut sim = Sim::example("b1-blue-green-manual.yaml");
    let r2 = sim.hash("chip:v2");
    sim.unhealthy.push(r2);
    sim.set_image("chip:v2").settle();
    assert_eq!(sim.split(), ("r1".into(), None));
    assert_eq!(sim.phase(), Phase::Progressing);
    assert!(
        sim.status.message.contains("healthy endpoints"),
        "{}",
        sim.status.message
    );
    sim.unhealthy.clear();
    sim.settle();
    assert_eq!(sim.split().1, Some(("r2".into(), 0)));
}

#[test]
fn b2_promotion_only_after_the_warm_up_succeeded() {
    for (result, switched) in [(RunPhase::Successful, true), (RunPhase::Failed, false)] {
        let mut sim = Sim::example("b2-blue-green-warm-up.yaml");
        sim.set_image("chip:v2").settle();
        assert!(sim.take_trace().contains(&"start PrePromotion".to_owned()));
        assert_eq!(sim.split().0, "r1");
        sim.advance(60).settle();
        assert_eq!(sim.split().0, "r1", "no switch while the warm-up runs");
        sim.run_result(RunKind::PrePromotion, result).settle();
        if switched {
            // autoPromotionEnabled: false — the warm-up passed, a person promotes
            assert_eq!(sim.split().0, "r1");
            assert_eq!(sim.phase(), Phase::Paused);
            sim.command(Command::Promote).unwrap();
            sim.settle();
            assert_eq!(sim.split(), ("r2".into(), None));
            assert_eq!(sim.phase(), Phase::Healthy);
        } else {
            assert_eq!(sim.split(), ("r1".into(), None));
            assert_eq!(sim.phase(), Phase::Degraded);
            assert!(
                sim.status.message.contains("pre-promotion analysis"),
                "{}",
                sim.status.message
            );
        }
    }
}

#[test]
fn b3_post_promotion_failure_switches_users_back() {
    let yaml = "  strategy:
    blueGreen:
      activeService: chip-active
      autoPromotionSeconds: 20
      postPromotionAnalysis:
        templates: [{templateName: chip-error-rate-check}]
";
    let mut sim = Sim::new(yaml);
    sim.set_image("chip:v2").settle();
    assert_eq!(
        sim.phase(),
        Phase::Paused,
        "auto-promotion waits autoPromotionSeconds"
    );
    assert_eq!(sim.decide().requeue_after, Some(Duration::from_secs(20)));
    sim.advance(20).settle();
    assert_eq!(sim.split(), ("r2".into(), None), "switched");
    assert_ne!(
        sim.status.stable_rs, sim.status.current_pod_hash,
        "not stable before the analysis"
    );
    sim.run_result(RunKind::PostPromotion, RunPhase::Failed)
        .settle();
    assert_eq!(sim.split(), ("r1".into(), None), "switched back");
    assert_eq!(sim.phase(), Phase::Degraded);
}

#[test]
fn b3_auto_promotion_seconds_is_ignored_without_auto_promotion() {
    let yaml = "  strategy:
    blueGreen:
      activeService: chip-active
      autoPromotionEnabled: false
      autoPromotionSeconds: 5
";
    let mut sim = Sim::new(yaml);
    sim.set_image("chip:v2").settle();
    sim.advance(60).settle();
    assert_eq!(sim.split().0, "r1");
    assert_eq!(sim.phase(), Phase::Paused);
}

#[test]
fn a1_a_failing_background_analysis_aborts_by_itself() {
    let mut sim = Sim::example("a1-canary-analysis.yaml");
    sim.set_image("chip:v2").settle();
    let trace = sim.take_trace();
    assert!(trace.contains(&"start Background".to_owned()), "{trace:?}");
    assert_eq!(sim.split().1, Some(("r2".into(), 20)));
    sim.advance(5);
    sim.run_result(RunKind::Background, RunPhase::Failed)
        .settle();
    assert_eq!(sim.split(), ("r1".into(), None));
    assert_eq!(sim.phase(), Phase::Degraded);
    assert!(
        sim.status.message.contains("background analysis"),
        "{}",
        sim.status.message
    );
    assert!(sim.status.abort);
}

#[test]
fn a1_step_analysis_success_goes_on_and_inconclusive_pauses() {
    let mut sim = Sim::example("a1-canary-analysis.yaml");
    sim.set_image("chip:v2").settle();
    sim.advance(30).settle();
    assert!(sim.take_trace().contains(&"start Step(2)".to_owned()));
    assert_eq!(sim.split().1, Some(("r2".into(), 20)));
    sim.run_result(RunKind::Step(2), RunPhase::Inconclusive)
        .settle();
    assert_eq!(sim.phase(), Phase::Paused);
    assert_eq!(
        sim.status.pause_conditions[0].reason,
        crate::status::PauseReason::InconclusiveAnalysis
    );
    sim.command(Command::Promote).unwrap();
    sim.settle();
    assert_eq!(sim.split().1, Some(("r2".into(), 50)));
    // the background run ends with the rollout
    sim.advance(30).settle();
    assert_eq!(sim.phase(), Phase::Healthy);
    assert!(sim.take_trace().contains(&"stop analysis".to_owned()));
}

#[test]
fn acknowledgements_gate_every_traffic_step() {
    let mut sim = Sim::example("c1-canary-auto.yaml");
    sim.auto_ack = false;
    sim.set_image("chip:v2").settle();
    assert_eq!(sim.status.current_step_index, Some(0));
    assert_eq!(sim.phase(), Phase::Progressing);
    // the pause has not started: time passes, nothing moves
    sim.advance(100).settle();
    assert_eq!(sim.status.current_step_index, Some(0));
    assert!(sim.status.pause_conditions.is_empty());
    // two of three proxies
    sim.obs.route.expected = 3;
    sim.obs.route.acknowledged = 2;
    sim.settle();
    assert_eq!(sim.status.current_step_index, Some(0));
    let w = sim.status.canary.weights.clone().unwrap();
    assert_eq!((w.acknowledged, w.expected, w.verified), (2, 3, false));
    // zero proxies never completes a step
    sim.obs.route.expected = 0;
    sim.obs.route.acknowledged = 0;
    sim.settle();
    assert_eq!(sim.status.current_step_index, Some(0));
    assert!(
        sim.status.message.contains("subscribe"),
        "{}",
        sim.status.message
    );
    sim.obs.route.expected = 3;
    sim.ack().settle();
    assert_eq!(sim.status.current_step_index, Some(1));
    // the timed pause counts from the acknowledgement
    assert_eq!(sim.status.pause_conditions[0].start_time, sim.now);
}

#[test]
fn a_timed_pause_resumes_with_its_remaining_time_after_a_restart() {
    let mut sim = Sim::example("c1-canary-auto.yaml");
    sim.set_image("chip:v2").settle();
    sim.advance(4);
    // a "restarted" controller: same spec and status, fresh observations of the same world
    let saved = serde_json::to_string(&sim.status).unwrap();
    sim.status = serde_json::from_str(&saved).unwrap();
    assert_eq!(sim.decide().requeue_after, Some(Duration::from_secs(6)));
    sim.advance(6).settle();
    assert_eq!(sim.split().1, Some(("r2".into(), 40)));
}

#[test]
fn weight_never_moves_to_a_revision_without_healthy_endpoints() {
    let mut sim = Sim::example("c1-canary-auto.yaml");
    let r2 = sim.hash("chip:v2");
    sim.unhealthy.push(r2.clone());
    sim.set_image("chip:v2").settle();
    assert_eq!(sim.split().1, Some(("r2".into(), 0)));
    assert_eq!(sim.phase(), Phase::Progressing);
    sim.unhealthy.clear();
    sim.settle();
    assert_eq!(sim.split().1, Some(("r2".into(), 20)));
    sim.unhealthy.push(r2);
    sim.advance(10).settle();
    assert_eq!(sim.split().1, Some(("r2".into(), 20)), "held at 20 %");
}

#[test]
fn progress_deadline_degrades_and_aborts_when_asked() {
    let mut spec = example("c1-canary-auto.yaml");
    spec.progress_deadline_seconds = Some(60);
    spec.progress_deadline_abort = true;
    let mut sim = Sim::with(spec);
    sim.auto_ack = false;
    sim.set_image("chip:v2").settle();
    sim.advance(59).settle();
    assert_eq!(sim.phase(), Phase::Progressing);
    sim.advance(1).settle();
    assert_eq!(sim.phase(), Phase::Degraded);
    assert!(sim.status.abort);
    assert_eq!(sim.split(), ("r1".into(), None));
}

#[test]
fn promote_when_not_paused_skips_the_current_step() {
    let mut sim = Sim::example("c1-canary-auto.yaml");
    sim.auto_ack = false;
    sim.set_image("chip:v2").settle();
    assert_eq!(sim.status.current_step_index, Some(0));
    assert_eq!(
        sim.command(Command::Promote).unwrap(),
        "promoted: step 1 skipped"
    );
    assert_eq!(sim.status.current_step_index, Some(1));
}

#[test]
fn header_routes_reach_the_canary_from_their_step_on() {
    let mut sim = Sim::example("p1-header-preview.yaml");
    sim.set_image("chip:v2").settle();
    let r = sim.obs.route.published.clone().unwrap();
    assert_eq!(r.weight, 10);
    assert_eq!(r.header_routes.len(), 1);
    assert_eq!(r.header_routes[0].name, "testers");
    // the route stays through the later steps, and goes with the rollout's end
    sim.command(Command::Promote).unwrap();
    sim.settle();
    let r = sim.obs.route.published.clone().unwrap();
    assert_eq!((r.weight, r.header_routes.len()), (50, 1));
    sim.command(Command::Promote).unwrap();
    sim.settle();
    assert!(
        sim.obs
            .route
            .published
            .as_ref()
            .unwrap()
            .header_routes
            .is_empty()
    );
}

#[test]
fn history_keeps_revision_history_limit_old_revisions() {
    let mut spec = example("c2-canary-final-promote.yaml");
    spec.revision_history_limit = Some(1);
    let mut sim = Sim::with(spec);
    for v in ["chip:v2", "chip:v3", "chip:v4"] {
        sim.set_image(v).settle();
        sim.command(Command::PromoteFull).unwrap();
        sim.settle();
    }
    let kept =
        |sim: &Sim| -> Vec<u32> { sim.status.revisions.iter().map(|r| r.revision).collect() };
    assert_eq!(
        kept(&sim),
        [1, 2, 3, 4],
        "a revision is not forgotten before it is scaled down"
    );
    sim.advance(31).settle();
    assert_eq!(kept(&sim), [3, 4]);
    assert!(sim.trace.iter().any(|t| t.starts_with("delete ")));
}

#[test]
fn min_pods_per_replica_set_floors_a_revision_taking_traffic_up_to_replicas() {
    for (min, want) in [(3, 3), (50, 10)] {
        let mut spec = example("c4-canary-manual-steps.yaml");
        spec.strategy
            .canary
            .as_mut()
            .unwrap()
            .min_pods_per_replica_set = Some(min);
        let mut sim = Sim::with(spec);
        sim.set_image("chip:v2").settle();
        sim.ack().settle();
        let v2 = sim.hash("chip:v2");
        assert_eq!(
            sim.last.as_ref().unwrap().replicas[&v2],
            want,
            "10 % of 10 replicas is 1; minPodsPerReplicaSet {min}"
        );
    }
    let mut sim = Sim::example("c4-canary-manual-steps.yaml");
    sim.set_image("chip:v2").settle();
    sim.ack().settle();
    assert_eq!(sim.last.as_ref().unwrap().replicas[&sim.hash("chip:v2")], 1);
}

#[test]
fn scale_down_delay_revision_limit_scales_the_oldest_waiting_revisions_down_at_once() {
    let mut spec = example("c2-canary-final-promote.yaml");
    spec.strategy
        .canary
        .as_mut()
        .unwrap()
        .scale_down_delay_revision_limit = Some(1);
    let mut sim = Sim::with(spec);
    for v in ["chip:v2", "chip:v3"] {
        sim.set_image(v).settle();
        sim.command(Command::PromoteFull).unwrap();
        sim.settle();
        sim.ack().settle();
        sim.advance(1);
    }
    let replicas = &sim.last.as_ref().unwrap().replicas;
    assert_eq!(replicas[&sim.hash("chip:v1")], 0, "beyond the limit: now");
    assert_eq!(
        replicas[&sim.hash("chip:v2")],
        10,
        "within it: after its delay"
    );
    assert_eq!(replicas[&sim.hash("chip:v3")], 10);
    sim.advance(30).settle();
    assert_eq!(sim.last.as_ref().unwrap().replicas[&sim.hash("chip:v2")], 0);
}
