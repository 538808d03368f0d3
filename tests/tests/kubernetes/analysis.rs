//! A1 on the cluster: a canary whose pods answer 30 % 5xx, and one whose container never
//! listens, are each aborted by the analysis, with their AnalysisRun objects left behind.

use std::time::Duration;

use serde_json::Value;
use sluice_tests::cluster::scenario::{Scenario, by_backend};

/// Deploys A1, sends traffic, releases v2 with `patch` (JSON patch operations on the pod
/// template's first container besides the image) and waits for the analysis to abort it.
fn aborted_by_analysis(
    ns: &str,
    extra: &str,
) -> (Scenario, Value, Vec<sluice_loadtest::paced::Answer>) {
    let s = Scenario::start(ns, 3);
    s.apply(&s.example("a1-canary-analysis.yaml"));
    s.wait_rollout("chip", "revision 1 Healthy", Duration::from_secs(90), |r| {
        r["status"]["phase"] == "Healthy" && r["status"]["availableReplicas"] == 10
    });
    s.wait_serving("v1", Duration::from_secs(20));
    let traffic = s.traffic(200.0);
    let container = "/spec/template/spec/containers/0";
    s.kubectl(&[
        "patch",
        "rollout",
        "chip",
        "--type=json",
        "-p",
        &format!(
            r#"[{{"op":"replace","path":"{container}/image","value":"fidelissauro/chip:v2"}}{extra}]"#
        ),
    ]);
    let r = s.wait_rollout(
        "chip",
        "aborted by the analysis",
        Duration::from_secs(90),
        |r| r["status"]["abort"] == true && r["status"]["phase"] == "Degraded",
    );
    std::thread::sleep(Duration::from_secs(1));
    let answers = traffic.stop();
    (s, r, answers)
}

fn failed_run(s: &Scenario) -> Value {
    let runs = s.cluster.get(&["-n", &s.ns, "analysisruns"]).unwrap();
    let items = runs["items"].as_array().unwrap().clone();
    items
        .into_iter()
        .find(|run| run["status"]["phase"] == "Failed")
        .unwrap_or_else(|| panic!("no Failed AnalysisRun: {runs}"))
}

#[test]
fn a1_a_canary_answering_30_percent_errors_is_aborted_and_its_analysis_run_kept() {
    let (s, r, answers) = aborted_by_analysis(
        "a1-errors",
        r#",{"op":"add","path":"/spec/template/spec/containers/0/args","value":["--error-rate","0.3","--error-status","503"]}"#,
    );
    let run = failed_run(&s);
    let message = r["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("analysis") && message.contains("Failed"),
        "{message}"
    );
    assert_eq!(
        run["metadata"]["labels"]["rollout.sluice.dev/name"], "chip",
        "{run}"
    );
    let measurements = &run["status"]["metricResults"][0]["measurements"];
    assert!(
        measurements
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["phase"] == "Failed")),
        "a Failed measurement: {run}"
    );
    let counts = by_backend(&answers);
    let failed = counts.get("").copied().unwrap_or(0);
    eprintln!(
        "a1 on the cluster: {failed} user requests failed of {}",
        answers.len()
    );
    assert!(failed > 0 && failed < 200, "some, and bounded: {counts:?}");
    s.wait_serving("v1", Duration::from_secs(10));
}

#[test]
fn a1_a_canary_whose_container_never_listens_is_aborted_too() {
    // a container with its own command: the pod runner has nothing to start, so the pod is
    // Running and Ready and its port refuses connections
    let (s, _r, answers) = aborted_by_analysis(
        "a1-refused",
        r#",{"op":"add","path":"/spec/template/spec/containers/0/command","value":["sleep","infinity"]}"#,
    );
    failed_run(&s);
    let counts = by_backend(&answers);
    eprintln!("a1 (connection refused) on the cluster: {counts:?}");
    s.wait_serving("v1", Duration::from_secs(10));
}
