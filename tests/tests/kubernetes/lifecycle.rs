//! A rollout's life on the cluster beyond the scenarios: an analysis step whose `job` provider
//! runs a `batch/v1` Job (created, completed by the Job controller, deleted by nobody: it is
//! the run's record), and the Rollout deleted (the garbage collector deletes its ReplicaSets
//! and pods, and its route leaves every proxy).

use std::time::Duration;

use sluice_tests::cluster::scenario::Scenario;

const ROLLOUT: &str = "apiVersion: sluice.dev/v1alpha1
kind: Rollout
metadata:
  name: chip
spec:
  replicas: 3
  selector:
    matchLabels: {app: chip}
  template:
    metadata:
      labels: {app: chip}
    spec:
      containers:
      - name: chip
        image: fidelissauro/chip:v1
        ports: [{containerPort: 8080}]
  strategy:
    canary:
      steps:
      - setWeight: 20
      - analysis:
          templates: [{templateName: smoke}]
      - setWeight: 100
---
apiVersion: sluice.dev/v1alpha1
kind: AnalysisTemplate
metadata:
  name: smoke
spec:
  metrics:
  - name: smoke
    provider:
      job:
        spec:
          backoffLimit: 0
          template:
            spec:
              restartPolicy: Never
              containers:
              - name: smoke
                image: curlimages/curl:8.11.0
                command: [curl, -fsS, http://chip:8080/]
";

#[test]
fn a_job_analysis_step_runs_a_job_and_a_deleted_rollout_leaves_the_cluster_and_the_proxies() {
    let s = Scenario::start("lifecycle", 2);
    s.apply(ROLLOUT);
    s.wait_rollout("chip", "revision 1 Healthy", Duration::from_secs(90), |r| {
        r["status"]["phase"] == "Healthy" && r["status"]["availableReplicas"] == 3
    });
    s.wait_serving("v1", Duration::from_secs(20));
    s.sluice_ok(&["set", "image", "chip", "chip=fidelissauro/chip:v2"]);
    let r = s.wait_rollout(
        "chip",
        "the job's step passed: Healthy on v2",
        Duration::from_secs(90),
        |r| r["status"]["phase"] == "Healthy" && r["status"]["currentStepIndex"] == 3,
    );
    let v2 = r["status"]["stableRS"].as_str().unwrap().to_owned();
    let jobs = s.cluster.get(&["-n", &s.ns, "jobs"]).unwrap();
    let job = &jobs["items"][0];
    assert_eq!(
        job["metadata"]["labels"]["rollout.sluice.dev/name"], "chip",
        "{jobs}"
    );
    assert!(
        job["status"]["conditions"].as_array().is_some_and(|c| c
            .iter()
            .any(|c| c["type"] == "Complete" && c["status"] == "True")),
        "the Job controller completed it: {job}"
    );
    let runs = s.cluster.get(&["-n", &s.ns, "analysisruns"]).unwrap();
    assert!(
        runs["items"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["status"]["phase"] == "Successful")),
        "{runs}"
    );
    s.wait_serving("v2", Duration::from_secs(20));
    assert!(s.replica_sets("chip").contains_key(&v2));

    s.kubectl(&["delete", "rollout", "chip"]);
    s.cluster.wait_for(
        "the garbage collector deleting the ReplicaSets",
        &["-n", &s.ns, "replicasets"],
        Duration::from_secs(60),
        |l| {
            l["items"]
                .as_array()
                .is_some_and(|i| i.is_empty())
                .then_some(())
        },
    );
    // the route leaves the proxies: a request no longer reaches any revision
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    for p in &s.proxies {
        loop {
            let a = sluice_tests::world::block(async {
                sluice_tests::Client::new().get(p.addr, "/", &[]).await
            })
            .unwrap();
            if a.status == 404 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "proxy {} still routes: {} {:?}",
                p.id,
                a.status,
                a.header("x-sluice-version")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
