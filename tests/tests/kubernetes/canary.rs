//! C1 and C2 on the cluster: the ReplicaSets, the Services' selectors and `stableRS` as the
//! canary moves, the old revision scaled down after its delay, the printer columns, and an
//! abort under load acknowledged by every proxy with no request lost.

use std::time::Duration;

use serde_json::Value;
use sluice_tests::cluster::scenario::{Scenario, by_backend};

/// Waits until revision `hash` of rollout `name` has `want` replicas, all ready.
fn wait_replicas(s: &Scenario, name: &str, hash: &str, want: i64) {
    s.wait_replica_sets(
        name,
        &format!("ReplicaSet {hash} never had {want} ready replicas"),
        |sets| sets.get(hash) == Some(&(want, want)),
    );
}

fn weight(r: &Value) -> (i64, bool) {
    let w = &r["status"]["canary"]["weights"];
    (
        w["canary"]["weight"].as_i64().unwrap_or(0),
        w["verified"] == true,
    )
}

#[test]
fn c1_walks_every_step_moves_the_selectors_and_scales_the_old_revision_down_after_its_delay() {
    let s = Scenario::start("c1", 2);
    s.apply(&s.example("c1-canary-auto.yaml"));
    let r = s.wait_rollout("chip", "revision 1 Healthy", Duration::from_secs(90), |r| {
        r["status"]["phase"] == "Healthy" && r["status"]["availableReplicas"] == 10
    });
    let v1 = r["status"]["stableRS"].as_str().unwrap().to_owned();
    assert_eq!(s.selector_hash("chip-stable"), v1);
    assert_eq!(s.selector_hash("chip-canary"), v1);

    s.sluice_ok(&["set", "image", "chip", "chip=fidelissauro/chip:v2"]);
    let mut v2 = String::new();
    for w in [20, 40, 60, 80] {
        let r = s.wait_rollout(
            "chip",
            &format!("{w} % acknowledged by both proxies"),
            Duration::from_secs(60),
            |r| weight(r) == (w, true),
        );
        v2 = r["status"]["currentPodHash"].as_str().unwrap().to_owned();
        assert_eq!(
            r["status"]["stableRS"],
            v1.as_str(),
            "stable until promoted"
        );
        wait_replicas(&s, "chip", &v2, (10 * w + 99) / 100);
        assert_eq!(
            s.replica_sets("chip")[&v1].0,
            10,
            "the stable is kept whole"
        );
        assert_eq!(s.selector_hash("chip-canary"), v2);
        assert_eq!(s.selector_hash("chip-stable"), v1);
    }
    let table = s.kubectl(&["get", "rollouts"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "DESIRED",
            "CURRENT",
            "UP-TO-DATE",
            "AVAILABLE",
            "PHASE",
            "STEP",
            "SET",
            "WEIGHT",
            "ACKNOWLEDGED",
            "WEIGHT",
            "AGE"
        ],
        "{table}"
    );
    assert!(
        table.lines().nth(1).unwrap().starts_with("chip "),
        "{table}"
    );

    let r = s.wait_rollout(
        "chip",
        "promoted: Healthy on v2",
        Duration::from_secs(60),
        |r| r["status"]["phase"] == "Healthy" && r["status"]["stableRS"] == v2.as_str(),
    );
    assert_eq!(weight(&r).0, 0, "no canary weight once promoted");
    wait_replicas(&s, "chip", &v2, 10);
    assert_eq!(s.selector_hash("chip-stable"), v2);
    assert_eq!(s.selector_hash("chip-canary"), v2);
    // the old revision waits out its scale-down delay (30 s), marked with Argo's annotation
    let old = s
        .cluster
        .get(&["-n", &s.ns, "replicaset", &format!("chip-{v1}")])
        .unwrap();
    assert_eq!(old["spec"]["replicas"], 10, "not scaled down at the switch");
    assert!(
        old["metadata"]["annotations"]["scale-down-deadline"].is_string(),
        "{}",
        old["metadata"]
    );
    let promoted = std::time::Instant::now();
    s.cluster.wait_for(
        "the old revision scaled to zero",
        &["-n", &s.ns, "replicaset", &format!("chip-{v1}")],
        Duration::from_secs(90),
        |rs| (rs["spec"]["replicas"] == 0).then_some(()),
    );
    assert!(
        promoted.elapsed() > Duration::from_secs(15),
        "scaled down only after its delay"
    );
    s.wait_serving("v2", Duration::from_secs(10));
}

#[test]
fn c2_an_abort_under_load_reaches_every_proxy_and_loses_no_request() {
    let s = Scenario::start("c2", 3);
    s.apply(&s.example("c2-canary-final-promote.yaml"));
    let r = s.wait_rollout("chip", "revision 1 Healthy", Duration::from_secs(90), |r| {
        r["status"]["phase"] == "Healthy" && r["status"]["availableReplicas"] == 10
    });
    let v1 = r["status"]["stableRS"].as_str().unwrap().to_owned();
    s.sluice_ok(&["set", "image", "chip", "chip=fidelissauro/chip:v2"]);
    let r = s.wait_rollout("chip", "60 % acknowledged", Duration::from_secs(60), |r| {
        weight(r) == (60, true)
    });
    let v2 = r["status"]["currentPodHash"].as_str().unwrap().to_owned();

    let traffic = s.traffic(300.0);
    std::thread::sleep(Duration::from_secs(2));
    s.sluice_ok(&["abort", "chip"]);
    let r = s.wait_rollout(
        "chip",
        "the abort acknowledged by all 3 proxies",
        Duration::from_secs(30),
        |r| {
            let w = &r["status"]["canary"]["weights"];
            r["status"]["abort"] == true
                && w["verified"] == true
                && w["acknowledged"] == 3
                && w["canary"]["weight"].as_i64().unwrap_or(0) == 0
        },
    );
    assert_eq!(r["status"]["stableRS"], v1.as_str());
    let aborted_at = traffic.now();
    std::thread::sleep(Duration::from_secs(2));
    let answers = traffic.stop();
    let counts = by_backend(&answers);
    assert_eq!(counts.get(""), None, "no request failed: {counts:?}");
    assert!(
        counts
            .get(&s.backend("chip", &v2))
            .is_some_and(|n| *n > 100),
        "{counts:?}"
    );
    let late_canary = answers
        .iter()
        .filter(|a| a.at > aborted_at + Duration::from_millis(100))
        .filter(|a| a.backend == s.backend("chip", &v2))
        .count();
    assert_eq!(
        late_canary, 0,
        "nothing reaches the canary once the abort is acknowledged"
    );
    assert_eq!(
        s.selector_hash("chip-canary"),
        v1,
        "the canary Service back on stable"
    );
}
