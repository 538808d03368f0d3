//! The local runtime with real processes: every analysis provider against a real counterpart,
//! a controller killed during a timed pause, the CLI's exit codes and watch, and bad input.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use sluice_controller::engine::Reason;
use sluice_controller::status::Phase;
use sluice_tests::servers::{Prometheus, free_port};
use sluice_tests::world::{Traffic, World, WorldSpec, block, rollout, signal};

fn stable_is(
    w: &World,
    v: &str,
) -> impl Fn(&sluice_controller::control::service::RolloutView) -> bool {
    let h = w.hash(v);
    move |view| {
        view.status.phase == Phase::Healthy
            && view.status.stable_rs.as_deref() == Some(h.as_str())
            && view
                .status
                .canary
                .weights
                .as_ref()
                .is_some_and(|w| w.verified)
    }
}

fn aborted(view: &sluice_controller::control::service::RolloutView) -> bool {
    view.status.phase == Phase::Degraded
        && view.status.abort
        && view
            .status
            .canary
            .weights
            .as_ref()
            .is_some_and(|w| w.verified && w.canary.is_none())
}

fn traffic(w: &World, rate: f64) -> Traffic {
    Traffic::start(w.proxies.iter().map(|p| p.url("/")).collect(), rate)
}

/// A web server answering `{"data": {"ok": N}}` with N from an atomic.
fn web_server(ok: Arc<AtomicU32>) -> SocketAddr {
    sluice_tests::servers::spawn_loopback(move |stream| {
        let ok = ok.clone();
        async move {
            let svc = hyper::service::service_fn(move |_req| {
                let body = format!("{{\"data\": {{\"ok\": {}}}}}", ok.load(Ordering::Relaxed));
                async move {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(
                        http_body_util::Full::new(bytes::Bytes::from(body)),
                    ))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await;
        }
    })
}

const STEP_ANALYSIS: &str = "  strategy:
    canary:
      steps:
      - setWeight: 20
      - analysis: {templates: [{templateName: check}]}
      - setWeight: 100
";

#[test]
fn web_provider_promotes_on_success_and_aborts_on_failure() {
    let ok = Arc::new(AtomicU32::new(1));
    let addr = web_server(ok.clone());
    let docs = format!(
        "{}---
apiVersion: sluice.dev/v1alpha1
kind: AnalysisTemplate
metadata: {{name: check}}
spec:
  metrics:
    - name: web-ok
      successCondition: result == 1
      provider:
        web: {{url: \"http://{addr}/health\", jsonPath: \"{{$.data.ok}}\", timeoutSeconds: 2}}
",
        rollout(STEP_ANALYSIS)
    );
    let w = World::start(WorldSpec {
        versions: vec![("v1", vec![]), ("v2", vec![]), ("v3", vec![])],
        documents: &docs,
        ..Default::default()
    });
    block(w.client.set_image("chip", "chip", "chip:v2")).unwrap();
    let v = w.wait(
        "v2 promoted after the web check",
        Duration::from_secs(20),
        stable_is(&w, "v2"),
    );
    assert!(
        v.events
            .iter()
            .any(|e| e.reason == Reason::RolloutCompleted)
    );
    ok.store(0, Ordering::Relaxed);
    block(w.client.set_image("chip", "chip", "chip:v3")).unwrap();
    let v = w.wait(
        "v3 aborted by the web check",
        Duration::from_secs(20),
        aborted,
    );
    assert!(
        v.status.message.contains("analysis"),
        "{}",
        v.status.message
    );
    let run = v
        .analysis_runs
        .iter()
        .find(|r| r.name.contains("step1"))
        .expect("the step's run");
    assert_eq!(run.metrics[0].measurements[0].0, "0");
}

#[test]
fn job_provider_follows_the_command_exit_status() {
    let marker = tempfile::NamedTempFile::new().unwrap();
    let path = marker.path().to_owned();
    let docs = format!(
        "{}---
apiVersion: sluice.dev/v1alpha1
kind: AnalysisTemplate
metadata: {{name: check}}
spec:
  metrics:
    - name: smoke-test
      provider:
        job: {{command: [sh, -c, \"test -e {}\"], timeoutSeconds: 10}}
",
        rollout(STEP_ANALYSIS),
        path.display()
    );
    let w = World::start(WorldSpec {
        versions: vec![("v1", vec![]), ("v2", vec![]), ("v3", vec![])],
        documents: &docs,
        ..Default::default()
    });
    block(w.client.set_image("chip", "chip", "chip:v2")).unwrap();
    w.wait(
        "v2 promoted by a passing command",
        Duration::from_secs(20),
        stable_is(&w, "v2"),
    );
    drop(marker);
    assert!(!path.exists());
    block(w.client.set_image("chip", "chip", "chip:v3")).unwrap();
    let v = w.wait(
        "v3 aborted by a failing command",
        Duration::from_secs(20),
        aborted,
    );
    let run = v
        .analysis_runs
        .iter()
        .find(|r| r.name.contains("step1"))
        .unwrap();
    assert_eq!(run.metrics[0].measurements[0].0, "failed");
}

#[test]
fn load_provider_warms_up_the_preview_before_promotion() {
    let docs = format!(
        "{}---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {{name: warm-up}}
spec:
  metrics:
    - name: warm-up
      successCondition: result >= 0.99
      provider:
        load: {{requests: 300, concurrency: 3, path: /version}}
",
        rollout(
            "  strategy:\n    blueGreen:\n      activeService: chip-active\n      prePromotionAnalysis:\n        templates: [{templateName: warm-up}]\n"
        )
    );
    let w = World::start(WorldSpec {
        versions: vec![
            ("v1", vec![]),
            ("v2", vec![]),
            ("v3", vec!["--error-rate", "1.0"]),
        ],
        documents: &docs,
        ..Default::default()
    });
    let before = w.backends["v2"].addr;
    block(w.client.set_image("chip", "chip", "chip:v2")).unwrap();
    w.wait(
        "v2 switched after a good warm-up",
        Duration::from_secs(30),
        stable_is(&w, "v2"),
    );
    let _ = before;
    block(w.client.set_image("chip", "chip", "chip:v3")).unwrap();
    let v = w.wait(
        "v3 refused after a failing warm-up",
        Duration::from_secs(30),
        aborted,
    );
    assert!(
        v.status.message.contains("pre-promotion"),
        "{}",
        v.status.message
    );
    let run = v
        .analysis_runs
        .iter()
        .find(|r| r.name.ends_with("-pre"))
        .unwrap();
    assert_eq!(run.metrics[0].measurements[0].0, "0");
}

#[test]
fn proxy_provider_waits_for_traffic_then_measures() {
    let docs = format!(
        "{}---
apiVersion: sluice.dev/v1alpha1
kind: AnalysisTemplate
metadata: {{name: check}}
spec:
  metrics:
    - name: error-rate
      interval: 1s
      count: 2
      failureCondition: result > 0.05
      provider:
        proxy: {{query: error-rate, window: 3s, minRequests: 20}}
",
        rollout(STEP_ANALYSIS)
    );
    let w = World::start(WorldSpec {
        versions: vec![
            ("v1", vec![]),
            ("v2", vec![]),
            ("v3", vec!["--error-rate", "0.5"]),
        ],
        documents: &docs,
        ..Default::default()
    });
    block(w.client.set_image("chip", "chip", "chip:v2")).unwrap();
    // no traffic: not a measurement, and the rollout neither fails nor moves
    let v = w.wait(
        "the metric to wait for traffic",
        Duration::from_secs(10),
        |v| {
            v.analysis_runs.iter().any(|r| {
                r.metrics.iter().any(|m| {
                    m.waiting
                        .as_deref()
                        .is_some_and(|x| x.contains("waiting for traffic"))
                })
            })
        },
    );
    assert_eq!(v.status.phase, Phase::Progressing);
    std::thread::sleep(Duration::from_secs(2));
    let v = w.view();
    assert_eq!(v.status.phase, Phase::Progressing, "{}", v.status.message);
    assert!(v.analysis_runs[0].metrics[0].measurements.is_empty());
    // with traffic above minRequests it measures and promotes
    let t = traffic(&w, 100.0);
    w.wait(
        "v2 promoted once traffic flows",
        Duration::from_secs(20),
        stable_is(&w, "v2"),
    );
    // and a bad canary is caught
    block(w.client.set_image("chip", "chip", "chip:v3")).unwrap();
    w.wait(
        "v3 aborted by its error rate",
        Duration::from_secs(20),
        aborted,
    );
    let answers = t.stop();
    assert!(answers.iter().all(|a| a.status.is_some()), "requests lost");
}

#[test]
fn prometheus_provider_reads_the_proxies_metrics_through_a_real_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    // the world needs the Prometheus address in its template, and Prometheus needs the
    // proxies' admin addresses: start Prometheus on a fixed port first, point it at the
    // proxies after they start by rewriting its config and reloading it (SIGHUP)
    let port_holder = free_port();
    let prom = Prometheus::start(
        dir.path(),
        format!("127.0.0.1:{port_holder}").parse().unwrap(),
        &[],
    );
    let docs = format!(
        "{}---
apiVersion: sluice.dev/v1alpha1
kind: AnalysisTemplate
metadata: {{name: check}}
spec:
  args: [{{name: revision}}]
  metrics:
    - name: canary-5xx-rate
      initialDelay: 4s
      successCondition: result[0] < 0.5
      provider:
        prometheus:
          address: http://127.0.0.1:{port_holder}
          query: sum(rate(sluice_requests_total{{code_class=\"5xx\",backend=~\".*{{{{args.revision}}}}\"}}[5s])) or vector(0)
",
        rollout("  strategy:\n    canary:\n      steps:\n      - setWeight: 50\n      - analysis:\n          templates: [{templateName: check}]\n          args: [{name: revision, valueFrom: {podTemplateHashValue: Latest}}]\n      - setWeight: 100\n")
    );
    let w = World::start(WorldSpec {
        versions: vec![
            ("v1", vec![]),
            ("v2", vec![]),
            ("v3", vec!["--error-rate", "1.0"]),
        ],
        documents: &docs,
        ..Default::default()
    });
    let admins: Vec<String> = w.proxies.iter().map(|p| p.admin.to_string()).collect();
    prom.retarget(&admins);
    let t = traffic(&w, 100.0);
    block(w.client.set_image("chip", "chip", "chip:v2")).unwrap();
    w.wait(
        "v2 promoted by the Prometheus query",
        Duration::from_secs(40),
        stable_is(&w, "v2"),
    );
    block(w.client.set_image("chip", "chip", "chip:v3")).unwrap();
    let v = w.wait(
        "v3 aborted by the Prometheus query",
        Duration::from_secs(40),
        aborted,
    );
    let run = v
        .analysis_runs
        .iter()
        .find(|r| r.name.contains("step1"))
        .unwrap();
    let value: f64 = run.metrics[0].measurements[0]
        .0
        .trim_matches(['[', ']'])
        .parse()
        .unwrap();
    assert!(value >= 0.5, "{value}");
    let _ = t.stop();
}

#[test]
fn a_timed_pause_survives_a_killed_controller_and_ends_on_time() {
    let docs = rollout(
        "  strategy:\n    canary:\n      steps:\n      - setWeight: 20\n      - pause: {duration: 6s}\n      - setWeight: 100\n",
    );
    let mut w = World::start(WorldSpec {
        documents: &docs,
        proxies: 1,
        ..Default::default()
    });
    block(w.client.set_image("chip", "chip", "chip:v2")).unwrap();
    let v = w.wait("the pause to start", Duration::from_secs(10), |v| {
        !v.status.pause_conditions.is_empty()
    });
    let start = v.status.pause_conditions[0].start_time;
    std::thread::sleep(Duration::from_secs(2));
    w.controller.kill9();
    std::thread::sleep(Duration::from_millis(500));
    w.controller.restart();
    w.client = sluice_controller::control::client::ControlClient::new(&w.controller.url(), None);
    w.wait("the pause to end", Duration::from_secs(15), |v| {
        v.status.current_step_index.unwrap_or(0) >= 2
    });
    let ended = sluice_controller::time::Time::now();
    let late = ended.0 - start.plus(Duration::from_secs(6)).0;
    assert!(
        (-100..=1000).contains(&late),
        "the pause ended {late} ms after its due time"
    );
    w.wait(
        "the rollout to complete",
        Duration::from_secs(15),
        stable_is(&w, "v2"),
    );
}

#[test]
fn status_exit_codes_and_the_watch_output() {
    let docs = rollout(
        "  strategy:\n    canary:\n      steps:\n      - setWeight: 20\n      - pause: {}\n",
    );
    let w = World::start(WorldSpec {
        documents: &docs,
        proxies: 1,
        ..Default::default()
    });
    let (code, out, _) = w.cli(&["status", "chip", "--timeout", "10s"]);
    assert_eq!(code, 0, "{out}");
    let t = traffic(&w, 100.0);
    block(w.client.set_image("chip", "chip", "chip:v2")).unwrap();
    w.wait("20 %", Duration::from_secs(10), |v| {
        v.status.phase == Phase::Paused
    });
    // stuck at an indefinite pause: times out with 2
    let (code, _, err) = w.cli(&["status", "chip", "--timeout", "1s"]);
    assert_eq!(code, 2, "{err}");
    // the watch shows the step, the weights and per-revision figures
    std::thread::sleep(Duration::from_secs(2));
    let watch = Command::new(sluice_tests::bin("sluice"))
        .args([
            "--server",
            &w.controller.url(),
            "get",
            "rollout",
            "chip",
            "--watch",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    signal(watch.id(), "TERM");
    let out = watch.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Step:          1/2"), "{text}");
    assert!(text.contains("SetWeight:     20/100"), "{text}");
    assert!(text.contains("acknowledged by 1/1 proxies"), "{text}");
    let canary_row = text
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with("2 ") && l.contains("canary"))
        .expect("a canary row");
    let rate: f64 = canary_row
        .split_whitespace()
        .nth(5)
        .unwrap()
        .parse()
        .unwrap();
    assert!(rate > 5.0, "canary rate {rate} in {canary_row}");
    assert!(
        text.matches("----").count() >= 2,
        "the watch printed once: {text}"
    );
    // aborted: 1
    let (code, _, _) = w.cli(&["abort", "chip"]);
    assert_eq!(code, 0);
    let (code, out, _) = w.cli(&["status", "chip", "--timeout", "10s"]);
    assert_eq!(code, 1, "{out}");
    let answers = t.stop();
    assert!(
        answers.iter().all(|a| !a.failed()),
        "a switch failed requests"
    );
}

#[test]
fn bad_input_gets_clear_errors_and_changes_nothing() {
    // broken at start
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "apiVersion: sluice.dev/v1alpha1\nkind: LocalRuntime\nmetadata: {name: x}\nspec:\n  images: {\"chip:v1\": [\"nowhere\"]}\n").unwrap();
    let out = Command::new(sluice_tests::bin("sluice"))
        .args(["controller", "-c"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("spec.images.chip:v1[0]: \"nowhere\" is not host:port"),
        "{err}"
    );

    let docs = rollout(
        "  strategy:\n    canary:\n      steps:\n      - setWeight: 20\n      - pause: {}\n",
    );
    let w = World::start(WorldSpec {
        documents: &docs,
        proxies: 1,
        token: Some("s3cret"),
        ..Default::default()
    });
    // broken while running: the old config keeps working, the views say why
    let good = std::fs::read_to_string(w.config_path()).unwrap();
    std::fs::write(
        w.config_path(),
        good.replace("setWeight: 20", "setWeight: 200"),
    )
    .unwrap();
    let v = w.wait(
        "the bad config to be noticed",
        Duration::from_secs(10),
        |v| v.runtime_error.is_some(),
    );
    assert!(
        v.runtime_error
            .as_ref()
            .unwrap()
            .contains("setWeight: 200 exceeds maxTrafficWeight"),
        "{:?}",
        v.runtime_error
    );
    block(w.client.set_image("chip", "chip", "chip:v2")).unwrap();
    w.wait(
        "the old config to keep working",
        Duration::from_secs(10),
        |v| {
            v.status
                .canary
                .weights
                .as_ref()
                .is_some_and(|w| w.verified && w.canary.as_ref().is_some_and(|c| c.weight == 20))
        },
    );
    // unknown rollout: 3; no token: 5; unreachable: 4; refused: 6
    let (code, _, err) = w.cli(&["promote", "nope"]);
    assert_eq!(code, 3, "{err}");
    let out = Command::new(sluice_tests::bin("sluice"))
        .args(["--server", &w.controller.url(), "abort", "chip"])
        .env_remove("SLUICE_TOKEN")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!w.view().status.abort);
    let out = Command::new(sluice_tests::bin("sluice"))
        .args(["--server", "http://127.0.0.1:1", "list", "rollouts"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    let (code, _, err) = w.cli(&["retry", "chip"]);
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("not aborted"), "{err}");
    let (code, _, err) = w.cli(&["set", "image", "chip", "chip=chip:v9"]);
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("no addresses for image chip:v9"), "{err}");
}
