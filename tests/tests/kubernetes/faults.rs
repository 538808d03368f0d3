//! The controller killed on the cluster: SIGKILL during a pause (the restarted one resumes at
//! the same step and publishes no new generation), and a leader killed with a second replica
//! standing by (it takes over within the lease while the proxies keep serving).

use std::time::Duration;

use sluice_tests::cluster::scenario::{Scenario, by_backend};
use sluice_tests::cluster::sluice::Controller;

fn paused_at_80(s: &Scenario) -> String {
    s.apply(&s.example("c2-canary-final-promote.yaml"));
    s.wait_rollout("chip", "revision 1 Healthy", Duration::from_secs(90), |r| {
        r["status"]["phase"] == "Healthy" && r["status"]["availableReplicas"] == 10
    });
    s.sluice_ok(&["set", "image", "chip", "chip=fidelissauro/chip:v2"]);
    let r = s.wait_rollout(
        "chip",
        "the last step: paused at 80 %",
        Duration::from_secs(60),
        |r| {
            r["status"]["currentStepIndex"] == 5
                && r["status"]["canary"]["weights"]["canary"]["weight"] == 80
                && r["status"]["canary"]["weights"]["verified"] == true
        },
    );
    r["status"]["currentPodHash"].as_str().unwrap().to_owned()
}

#[test]
fn a_controller_killed_during_a_pause_resumes_at_the_same_step_with_the_same_generations() {
    let mut s = Scenario::start("kill-pause", 2);
    let v2 = paused_at_80(&s);
    let traffic = s.traffic(100.0);
    std::thread::sleep(Duration::from_secs(1));
    let before: std::collections::BTreeSet<u64> = traffic
        .answers()
        .iter()
        .filter_map(|a| a.generation)
        .collect();
    assert_eq!(before.len(), 1, "one generation served: {before:?}");

    let addr = s.controllers[0].addr.to_string();
    s.controllers[0].kill();
    std::thread::sleep(Duration::from_secs(1));
    s.controllers[0] = Controller::start_with(s.cluster, 0, &addr, true);
    std::thread::sleep(Duration::from_secs(3));
    let r = s.rollout("chip");
    assert_eq!(r["status"]["currentStepIndex"], 5, "the same step");
    assert_eq!(r["status"]["currentPodHash"], v2.as_str());
    assert_eq!(r["status"]["canary"]["weights"]["canary"]["weight"], 80);
    let answers = traffic.stop();
    let after: std::collections::BTreeSet<u64> =
        answers.iter().filter_map(|a| a.generation).collect();
    assert_eq!(after, before, "no new generation for the same route");
    assert_eq!(by_backend(&answers).get(""), None, "no request failed");

    s.sluice_ok(&["promote", "chip"]);
    s.wait_rollout(
        "chip",
        "promoted after the restart",
        Duration::from_secs(60),
        |r| r["status"]["phase"] == "Healthy" && r["status"]["stableRS"] == v2.as_str(),
    );
}

#[test]
fn a_killed_leader_hands_over_to_the_other_replica_within_the_lease_while_proxies_serve() {
    let mut s = Scenario::start("leader", 2);
    let v2 = paused_at_80(&s);
    let addr = s.controllers[0].addr.to_string();
    // the second replica, a candidate on the same control address (the Service that selects
    // the leader's pod)
    s.controllers
        .push(Controller::start_with(s.cluster, 1, &addr, false));
    let second_pod = s.controllers[1].pod.clone();
    std::thread::sleep(Duration::from_secs(2));
    assert!(!s.controllers[1].leads(), "one leader at a time");

    let traffic = s.traffic(200.0);
    std::thread::sleep(Duration::from_secs(1));
    s.controllers[0].kill();
    let killed = std::time::Instant::now();
    while !s.controllers[1].leads() {
        assert!(
            killed.elapsed() < Duration::from_secs(20),
            "the second replica did not take over: {}",
            s.controllers[1].log_tail(20)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("leader handover after {:?}", killed.elapsed());
    if let Some(pod) = &second_pod {
        s.cluster.wait_for(
            "the new leader's pod labelled",
            &["-n", "sluice", "pod", pod],
            Duration::from_secs(10),
            |p| (p["metadata"]["labels"]["sluice.dev/leader"] == "true").then_some(()),
        );
    }
    // the new leader carries the rollout on
    s.sluice_ok(&["promote", "chip"]);
    s.wait_rollout(
        "chip",
        "promoted through the new leader",
        Duration::from_secs(60),
        |r| {
            r["status"]["phase"] == "Healthy"
                && r["status"]["stableRS"] == v2.as_str()
                && r["status"]["canary"]["weights"]["verified"] == true
        },
    );
    s.wait_serving("v2", Duration::from_secs(20));
    let answers = traffic.stop();
    let counts = by_backend(&answers);
    assert_eq!(
        counts.get(""),
        None,
        "the proxies served throughout: {counts:?}"
    );
}
