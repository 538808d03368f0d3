//! An invalid Rollout on the cluster: `Degraded` with the field path and the reason, and
//! nothing else changed — no new ReplicaSet, the proxies keep the last route — until fixed.

use std::time::Duration;

use sluice_tests::cluster::scenario::Scenario;

#[test]
fn an_invalid_rollout_is_degraded_naming_the_field_and_nothing_else_changes() {
    let s = Scenario::start("invalid", 2);
    let example = s.example("c2-canary-final-promote.yaml");
    s.apply(&example);
    // from here on, the Rollout's document alone, as one edits it
    let valid = example
        .split("\n---\n")
        .find(|d| d.contains("kind: Rollout"))
        .unwrap()
        .to_owned();
    let r = s.wait_rollout("chip", "revision 1 Healthy", Duration::from_secs(90), |r| {
        r["status"]["phase"] == "Healthy" && r["status"]["availableReplicas"] == 10
    });
    let v1 = r["status"]["stableRS"].as_str().unwrap().to_owned();
    s.wait_serving("v1", Duration::from_secs(20));

    // a new image and a pause the API server accepts (an int-or-string) but that is no
    // duration
    let invalid = valid
        .replace("image: fidelissauro/chip:v1", "image: fidelissauro/chip:v2")
        .replacen("pause: {duration: 10}", "pause: {duration: ten}", 1);
    assert_ne!(invalid, valid);
    // the controller's writes carry its name, so a conflict names it: the Services' selectors
    // are its own (re-applying the Services' documents is a conflict with it)
    let fields = s.kubectl(&[
        "get",
        "service",
        "chip-canary",
        "--show-managed-fields",
        "-o",
        "json",
    ]);
    assert!(
        fields.contains("\"manager\": \"sluice-controller\""),
        "{fields}"
    );
    s.apply(&invalid);
    let r = s.wait_rollout(
        "chip",
        "Degraded with InvalidSpec",
        Duration::from_secs(30),
        |r| r["status"]["phase"] == "Degraded",
    );
    let condition = r["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "InvalidSpec"))
        .cloned()
        .unwrap_or_default();
    let message = condition["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("spec.strategy.canary.steps[1].pause.duration"),
        "the condition names the field: {}",
        r["status"]
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        s.replica_sets("chip").keys().collect::<Vec<_>>(),
        [&v1],
        "no ReplicaSet for the new image"
    );
    assert_eq!(s.rollout("chip")["status"]["stableRS"], v1.as_str());
    s.wait_serving("v1", Duration::from_secs(5));

    s.apply(&invalid.replace("pause: {duration: ten}", "pause: {duration: 10}"));
    s.wait_rollout(
        "chip",
        "fixed: the canary starts",
        Duration::from_secs(60),
        |r| {
            r["status"]["canary"]["weights"]["canary"]["weight"] == 20
                && r["status"]["canary"]["weights"]["verified"] == true
        },
    );
}
