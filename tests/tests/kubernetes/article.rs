//! The article's nginx Rollout, applied with only its `apiVersion` changed.

use std::time::Duration;

use sluice_tests::cluster::scenario::{Scenario, by_backend};

/// The Rollout of the article (`../shared/seed`), `apiVersion` changed and nothing else: no
/// namespace (the test's, as `kubectl apply -n` gives it), no Services, no traffic routing.
const ARTICLE: &str = "apiVersion: sluice.dev/v1alpha1
kind: Rollout
metadata:
  name: nginx-deployment
spec:
  replicas: 10
  revisionHistoryLimit: 2
  selector:
    matchLabels:
      app: nginx
  template:
    metadata:
      labels:
        app: nginx
    spec:
      containers:
      - name: nginx
        image: nginx:1.14.2
        ports:
        - name: http
          containerPort: 80
          protocol: TCP
  strategy:
    canary:
      steps:
      - setWeight: 20
      - pause: {duration: 30}
      - setWeight: 50
      - pause: {duration: 60}
      - setWeight: 80
      - pause: {}
";

#[test]
fn the_articles_nginx_rollout_deploys_and_takes_a_new_image_through_its_first_step() {
    let s = Scenario::start("article", 2);
    s.apply(ARTICLE);
    let name = "nginx-deployment";
    let r = s.wait_rollout(name, "revision 1 Healthy", Duration::from_secs(90), |r| {
        r["status"]["phase"] == "Healthy" && r["status"]["availableReplicas"] == 10
    });
    let stable = r["status"]["stableRS"].as_str().unwrap().to_owned();
    assert_eq!(s.replica_sets(name), [(stable.clone(), (10, 10))].into());
    s.wait_serving("1.14.2", Duration::from_secs(30));

    s.kubectl(&[
        "patch",
        "rollout",
        name,
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"nginx:1.15.0"}]"#,
    ]);
    let r = s.wait_rollout(
        name,
        "the first step: 20 % acknowledged by both proxies, paused",
        Duration::from_secs(60),
        |r| {
            let w = &r["status"]["canary"]["weights"];
            r["status"]["currentStepIndex"] == 1
                && w["canary"]["weight"] == 20
                && w["verified"] == true
        },
    );
    let canary = r["status"]["currentPodHash"].as_str().unwrap().to_owned();
    assert_ne!(canary, stable);
    let sets = s.replica_sets(name);
    assert_eq!(sets[&canary].0, 2, "ceil(10 × 20 %) canary pods: {sets:?}");
    assert_eq!(sets[&stable].0, 10, "the stable is kept whole: {sets:?}");

    let traffic = s.traffic(200.0);
    std::thread::sleep(Duration::from_secs(3));
    let answers = traffic.stop();
    let counts = by_backend(&answers);
    let total = answers.len() as f64;
    assert_eq!(counts.get(""), None, "no request failed: {counts:?}");
    let new = *counts.get(&s.backend(name, &canary)).unwrap_or(&0) as f64 / total;
    assert!(
        (0.15..=0.25).contains(&new),
        "about 20 % on the new image: {counts:?}"
    );

    s.sluice_ok(&["promote", "--full", name]);
    s.wait_rollout(
        name,
        "promoted: Healthy on the new image",
        Duration::from_secs(60),
        |r| r["status"]["phase"] == "Healthy" && r["status"]["stableRS"] == canary.as_str(),
    );
    s.wait_serving("1.15.0", Duration::from_secs(30));
}
