//! H1 on the cluster: the HPA controller reads and writes a Rollout's scale subresource, and
//! `kubectl scale rollout` mid-rollout rescales the ReplicaSets without moving a step.

use std::time::Duration;

use sluice_tests::cluster::scenario::Scenario;

fn replicas_of(s: &Scenario, hash: &str) -> i64 {
    s.replica_sets("chip").get(hash).map(|r| r.0).unwrap_or(-1)
}

#[test]
fn h1_an_hpa_scales_the_rollout_through_its_scale_subresource_and_kubectl_scale_keeps_the_step() {
    let s = Scenario::start("h1", 2);
    // the step's pause waits for promote, so the check below does not race a timer
    s.apply(
        &s.example("h1-hpa.yaml")
            .replace("pause: {duration: 10}", "pause: {}"),
    );
    let r = s.wait_rollout("chip", "revision 1 Healthy", Duration::from_secs(90), |r| {
        r["status"]["phase"] == "Healthy" && r["status"]["availableReplicas"] == 10
    });
    let v1 = r["status"]["stableRS"].as_str().unwrap().to_owned();
    assert!(
        r["status"]["selector"]
            .as_str()
            .is_some_and(|s| s.contains("app=chip")),
        "the scale subresource's label selector: {}",
        r["status"]
    );
    // the HPA reads the scale subresource (no metrics server here: it cannot compute a
    // utilisation, but a minimum above the current count is applied without one)
    s.kubectl(&[
        "patch",
        "hpa",
        "chip",
        "--type=merge",
        "-p",
        r#"{"spec":{"minReplicas":12}}"#,
    ]);
    s.cluster.wait_for(
        "the HPA scaling the Rollout to 12",
        &["-n", &s.ns, "rollout", "chip"],
        Duration::from_secs(60),
        |r| (r["spec"]["replicas"] == 12 && r["status"]["availableReplicas"] == 12).then_some(()),
    );
    s.wait_replica_sets("chip", "the stable ReplicaSet at 12", |sets| {
        sets.get(&v1) == Some(&(12, 12))
    });
    // the HPA reads the count back from the scale subresource's status
    let hpa = s.cluster.wait_for(
        "the HPA seeing 12 replicas",
        &["-n", &s.ns, "hpa", "chip"],
        Duration::from_secs(30),
        |h| (h["status"]["currentReplicas"] == 12).then(|| h.clone()),
    );
    let able = hpa["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "AbleToScale"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        able["status"], "True",
        "the HPA can read the scale subresource: {hpa}"
    );

    s.sluice_ok(&["set", "image", "chip", "chip=fidelissauro/chip:v2"]);
    let r = s.wait_rollout("chip", "paused at 20 %", Duration::from_secs(60), |r| {
        r["status"]["currentStepIndex"] == 1 && r["status"]["canary"]["weights"]["verified"] == true
    });
    let v2 = r["status"]["currentPodHash"].as_str().unwrap().to_owned();
    s.wait_replica_sets("chip", "ceil(12 × 20 %) canary pods", |sets| {
        sets.get(&v2) == Some(&(3, 3))
    });

    s.kubectl(&["scale", "rollout", "chip", "--replicas=16"]);
    s.wait_replica_sets(
        "chip",
        "16 stable and ceil(16 × 20 %) canary pods",
        |sets| sets.get(&v1) == Some(&(16, 16)) && sets.get(&v2) == Some(&(4, 4)),
    );
    let r = s.rollout("chip");
    assert_eq!(r["status"]["currentStepIndex"], 1, "the step did not move");
    assert_eq!(r["status"]["canary"]["weights"]["canary"]["weight"], 20);
    assert_eq!(replicas_of(&s, &v1), 16);

    s.sluice_ok(&["promote", "--full", "chip"]);
    s.wait_rollout(
        "chip",
        "Healthy on v2 with 16 replicas",
        Duration::from_secs(60),
        |r| {
            r["status"]["phase"] == "Healthy"
                && r["status"]["stableRS"] == v2.as_str()
                && r["status"]["availableReplicas"] == 16
        },
    );
}
