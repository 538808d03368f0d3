//! Property tests of the engine's guarantees over random specs, commands and acknowledgements.

use super::*;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Act {
    Decide,
    Ack,
    Advance(u64),
    Cmd(Command),
    NewImage(u8),
    Proxies(u32),
    Health(bool),
    Analysis(RunPhase),
}

fn act() -> impl Strategy<Value = Act> {
    prop_oneof![
        4 => Just(Act::Decide),
        3 => Just(Act::Ack),
        2 => (1u64..40).prop_map(Act::Advance),
        1 => prop_oneof![
            Just(Command::Promote), Just(Command::PromoteFull), Just(Command::Abort),
            Just(Command::Retry), Just(Command::Pause), Just(Command::Resume),
            Just(Command::Undo { to_revision: None })
        ].prop_map(Act::Cmd),
        1 => (0u8..4).prop_map(Act::NewImage),
        1 => (0u32..4).prop_map(Act::Proxies),
        1 => any::<bool>().prop_map(Act::Health),
        1 => prop_oneof![Just(RunPhase::Successful), Just(RunPhase::Failed), Just(RunPhase::Inconclusive)].prop_map(Act::Analysis),
    ]
}

fn step_yaml() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u32..=100).prop_map(|w| format!("      - setWeight: {w}\n")),
        (1u64..30).prop_map(|d| format!("      - pause: {{duration: {d}}}\n")),
        Just("      - pause: {}\n".to_owned()),
        Just("      - analysis: {templates: [{templateName: t}]}\n".to_owned()),
        Just("      - setHeaderRoute: {name: h, match: [{headerName: x, headerValue: {exact: beta}}]}\n".to_owned()),
    ]
}

fn spec_yaml() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (proptest::collection::vec(step_yaml(), 0..8), any::<bool>()).prop_map(|(steps, bg)| {
            let mut y = String::from("  strategy:\n    canary:\n");
            if bg {
                y.push_str("      analysis: {templates: [{templateName: t}]}\n");
            }
            y.push_str("      steps:\n");
            if steps.is_empty() {
                y = y.replace("      steps:\n", "      steps: []\n");
            }
            for s in steps {
                y.push_str(&s);
            }
            y
        }),
        1 => (any::<bool>(), any::<bool>(), proptest::option::of(1u32..30)).prop_map(|(auto, pre, secs)| {
            let mut y = String::from("  strategy:\n    blueGreen:\n      activeService: a\n");
            y.push_str(&format!("      autoPromotionEnabled: {auto}\n"));
            if let Some(s) = secs {
                y.push_str(&format!("      autoPromotionSeconds: {s}\n"));
            }
            if pre {
                y.push_str("      prePromotionAnalysis: {templates: [{templateName: t}]}\n");
            }
            y
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn engine_guarantees_hold(spec in spec_yaml(), acts in proptest::collection::vec(act(), 1..60)) {
        let mut sim = Sim::new(&spec);
        sim.auto_ack = false;
        for a in acts {
            match a {
                Act::Decide => {}
                Act::Ack => { sim.ack(); }
                Act::Advance(s) => { sim.advance(s); }
                Act::Cmd(c) => { let _ = sim.command(c); }
                Act::NewImage(v) => { sim.set_image(&format!("chip:v{v}")); }
                Act::Proxies(n) => { sim.obs.route.expected = n; sim.obs.route.acknowledged = sim.obs.route.acknowledged.min(n); }
                Act::Health(h) => {
                    let cur = sim.status.current_pod_hash.clone().unwrap_or_default();
                    sim.unhealthy.retain(|x| *x != cur);
                    if !h { sim.unhealthy.push(cur); }
                }
                Act::Analysis(p) => {
                    let runs: Vec<String> = sim.last.as_ref().map(|d| d.analysis.iter().map(|a| a.run.clone()).collect()).unwrap_or_default();
                    for r in runs { sim.obs.analysis.insert(r, p); }
                }
            }
            let before = sim.status.clone();
            let published_before = sim.obs.route.published.clone();
            let acked_before = sim.obs.route.acknowledged >= sim.obs.route.expected && sim.obs.route.expected > 0;
            let aborted_cmd = sim.status.abort;
            let d = sim.decide();
            // weights always within [0, T]
            prop_assert!(d.route.weight <= d.route.total);
            // after an abort, the decision publishes no canary (unless a new revision was
            // given at the same time, which starts a new rollout, as in Argo)
            let new_revision = before.current_pod_hash != d.status.current_pod_hash;
            if (aborted_cmd && !new_revision) || d.status.abort {
                prop_assert_eq!(&d.route.canary, &None);
                prop_assert!(d.route.header_routes.is_empty());
            }
            // weight never moves up to a revision without healthy endpoints
            if let (Some(c), Some(prev)) = (&d.route.canary, &published_before) {
                let prev_w = if prev.canary.as_ref() == Some(c) { prev.weight } else { 0 };
                if sim.unhealthy.contains(c) {
                    prop_assert!(d.route.weight <= prev_w, "weight rose to {} on an unhealthy revision", d.route.weight);
                }
            }
            // no traffic step completes before every expected proxy applied it, and never with zero
            let step_before = before.current_step_index.unwrap_or(0);
            let step_after = d.status.current_step_index.unwrap_or(0);
            let same_revision = before.current_pod_hash == d.status.current_pod_hash;
            if same_revision && step_after > step_before && !d.status.promote_full && !before.promote_full {
                let crossed_weight_step = {
                    let steps = sim.spec.strategy.canary.as_ref().map(|c| c.steps.clone()).unwrap_or_default();
                    steps.iter().skip(step_before as usize).take((step_after - step_before) as usize).any(|s| s.set_weight.is_some() || s.set_header_route.is_some())
                };
                if crossed_weight_step {
                    prop_assert!(acked_before && published_before.is_some(), "a traffic step completed without acknowledgement");
                }
            }
        }
    }

    #[test]
    fn promote_full_ends_healthy_on_the_new_revision(spec in spec_yaml(), proxies in 1u32..4) {
        let mut sim = Sim::new(&spec);
        sim.obs.route.expected = proxies;
        sim.set_image("chip:v9").settle();
        if sim.phase() != Phase::Healthy {
            sim.command(Command::PromoteFull).unwrap();
            sim.settle();
        }
        prop_assert_eq!(sim.phase(), Phase::Healthy);
        let v9 = sim.hash("chip:v9");
        prop_assert_eq!(sim.status.stable_rs.as_deref(), Some(v9.as_str()));
        prop_assert_eq!(sim.split().1, None);
    }
}
