//! The `prometheus` and `web` providers' fields as Argo users write them, each against a real
//! counterpart: a real Prometheus (scraping itself), and loopback servers that keep what they
//! receive, over HTTP and over TLS with a self-signed certificate. Each case goes from the
//! template's text to the measurement's verdict, as a run takes it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_controller::analysis::run::{self, MeasurementPhase, ProviderOutcome, Rules};
use sluice_controller::providers::{self, CounterWindow, Measured, Step};
use sluice_controller::spec::{AnalysisTemplate, Document};
use sluice_controller::time::Time;
use sluice_tests::servers::{Canned, Prometheus, Recorder, free_port};
use sluice_tests::world::block;

/// No proxy counters: these metrics do not read them.
struct NoCounters;

impl CounterWindow for NoCounters {
    fn window(&self, _: &str, _: &str, _: Duration, _: Time) -> (sluice_api::Totals, Duration) {
        (sluice_api::Totals::default(), Duration::ZERO)
    }
    fn steps(&self, _: &str, _: Time) -> Vec<Step> {
        Vec::new()
    }
}

fn template(yaml: &str) -> AnalysisTemplate {
    match sluice_controller::spec::parse_documents(yaml)
        .unwrap()
        .remove(0)
        .unwrap_or_else(|e| panic!("{e:?}"))
    {
        Document::AnalysisTemplate(t) => *t,
        other => panic!("{other:?}"),
    }
}

/// Each metric of the template measured once: (name, phase, value or message).
fn measure_all(yaml: &str) -> Vec<(String, MeasurementPhase, String)> {
    let t = template(yaml);
    let spec = run::build_run(&[&t], &BTreeMap::new(), &Rules::default()).unwrap();
    let target = Measured {
        rollout: "chip".into(),
        jobs: None,
        counters: Arc::new(NoCounters),
        route: "chip".into(),
        revision: "b".into(),
        stable: "a".into(),
        revision_addresses: vec![],
        stable_addresses: vec![],
    };
    spec.metrics
        .iter()
        .map(|m| {
            let now = Time::now();
            let outcome = block(providers::measure(m, &target, now));
            let meas = run::assess(m, &outcome, now).unwrap_or_else(|| panic!("{outcome:?}"));
            let shown = match (&outcome, &meas.message) {
                (ProviderOutcome::Error(e), _) => e.clone(),
                (_, Some(msg)) => msg.clone(),
                _ => meas.value.clone().unwrap_or_default(),
            };
            (m.name.clone(), meas.phase, shown)
        })
        .collect()
}

const ANSWER: &str = r#"{"status": "It worked!", "data": {"ok": true, "p99": 0.21, "version": {"major": "1"}, "latencies": [120, 340, 90]}, "items": [{"name": "api", "healthy": true}, {"name": "db", "healthy": false}]}"#;

#[test]
fn web_fields_against_a_loopback_server() {
    let r = Recorder::start(Canned::json(ANSWER), false);
    let url = format!("http://{}/check", r.addr);
    let got = measure_all(&format!(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {{name: web}}
spec:
  metrics:
    - name: whole
      successCondition: "result.status == 'It worked!' && result.data.ok"
      provider: {{web: {{url: "{url}"}}}}
    - name: path
      successCondition: "result.major == '1' && asInt(result.major) == 1"
      provider:
        web:
          url: "{url}"
          jsonPath: "{{$.data.version}}"
    - name: list
      successCondition: "all(result, {{# < 1000}}) && len(filter(result, # > 100)) == 2"
      provider:
        web:
          url: "{url}"
          jsonPath: "{{$.data.latencies}}"
    - name: filter
      failureCondition: "result == false"
      provider:
        web:
          url: "{url}"
          jsonPath: "{{$.items[?(@.name == 'db')].healthy}}"
    - name: post
      successCondition: "result < 0.5"
      provider:
        web:
          url: "{url}"
          method: POST
          timeoutSeconds: 5
          headers: [{{key: X-Token, value: abc}}, {{key: X-Scope-OrgID, value: tenant_a}}]
          jsonBody: {{canary: b, window: 5m}}
          jsonPath: "{{$.data.p99}}"
    - name: put
      successCondition: "result['p99'] < 0.5"
      provider:
        web:
          url: "{url}"
          method: PUT
          body: "plain text"
          jsonPath: "{{$.data}}"
"#
    ));
    for (name, phase, shown) in &got {
        let want = if name == "filter" {
            MeasurementPhase::Failed
        } else {
            MeasurementPhase::Successful
        };
        assert_eq!(*phase, want, "{name}: {shown}");
    }
    assert_eq!(got[1].2, r#"{"major":"1"}"#, "the value is shown as JSON");
    let seen = r.seen();
    assert_eq!(seen.len(), 6);
    assert_eq!(
        (seen[0].method.as_str(), seen[0].target.as_str()),
        ("GET", "/check")
    );
    let post = &seen[4];
    assert_eq!(post.method, "POST");
    let header = |s: &sluice_tests::servers::Seen, k: &str| {
        s.headers
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(header(post, "x-token").as_deref(), Some("abc"));
    assert_eq!(header(post, "x-scope-orgid").as_deref(), Some("tenant_a"));
    assert_eq!(
        header(post, "content-type").as_deref(),
        Some("application/json")
    );
    let body: serde_json::Value = serde_json::from_slice(&post.body).unwrap();
    assert_eq!(body, serde_json::json!({"canary": "b", "window": "5m"}));
    assert_eq!(
        (seen[5].method.as_str(), &seen[5].body[..]),
        ("PUT", &b"plain text"[..])
    );
}

#[test]
fn a_web_answer_that_is_not_json_is_the_result_as_text_and_a_slow_one_is_an_error() {
    let text = Recorder::start(
        Canned {
            content_type: "text/plain",
            ..Canned::json("It worked!")
        },
        false,
    );
    let slow = Recorder::start(
        Canned {
            delay: Duration::from_secs(5),
            ..Canned::json("{}")
        },
        false,
    );
    let failing = Recorder::start(
        Canned {
            status: 503,
            ..Canned::json("{}")
        },
        false,
    );
    let got = measure_all(&format!(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {{name: web}}
spec:
  metrics:
    - name: text
      successCondition: "result == 'It worked!'"
      provider: {{web: {{url: "http://{}/", jsonPath: "{{$.x}}"}}}}
    - name: slow
      successCondition: "true"
      provider: {{web: {{url: "http://{}/", timeoutSeconds: 1}}}}
    - name: failing
      successCondition: "true"
      provider: {{web: {{url: "http://{}/"}}}}
"#,
        text.addr, slow.addr, failing.addr
    ));
    assert_eq!(got[0].1, MeasurementPhase::Successful, "{:?}", got[0]);
    assert_eq!(got[1].1, MeasurementPhase::Error);
    assert!(got[1].2.contains("no answer within 1s"), "{:?}", got[1]);
    assert_eq!(got[2].1, MeasurementPhase::Error);
    assert!(got[2].2.contains("answered 503"), "{:?}", got[2]);
}

#[test]
fn web_and_prometheus_over_tls_need_insecure_for_a_self_signed_certificate() {
    let web = Recorder::start(Canned::json(ANSWER), true);
    let prom = Recorder::start(
        Canned::json(
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"0.99"]}]}}"#,
        ),
        true,
    );
    let doc = |insecure: bool| {
        format!(
            r#"
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {{name: tls}}
spec:
  metrics:
    - name: web
      successCondition: "result.data.ok"
      provider: {{web: {{url: "https://{w}/", insecure: {insecure}}}}}
    - name: prometheus
      successCondition: "result[0] >= 0.95"
      provider:
        prometheus:
          address: "https://{p}"
          query: up
          insecure: {insecure}
          timeout: 5
          headers: [{{key: X-Scope-OrgID, value: tenant_a}}]
"#,
            w = web.addr,
            p = prom.addr
        )
    };
    for (name, phase, shown) in measure_all(&doc(false)) {
        assert_eq!(phase, MeasurementPhase::Error, "{name}: {shown}");
        assert!(
            shown.to_lowercase().contains("certificate"),
            "{name}: a self-signed certificate is refused: {shown}"
        );
    }
    assert!(
        web.seen().is_empty(),
        "nothing was sent before the handshake failed"
    );
    for (name, phase, shown) in measure_all(&doc(true)) {
        assert_eq!(phase, MeasurementPhase::Successful, "{name}: {shown}");
    }
    let seen = prom.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].target, "/api/v1/query?query=up");
    assert!(
        seen[0]
            .headers
            .contains(&("x-scope-orgid".to_owned(), "tenant_a".to_owned())),
        "{:?}",
        seen[0].headers
    );
}

/// A real Prometheus scraping itself every second, once it holds `samples` samples of `up`.
fn prometheus(dir: &std::path::Path, samples: usize) -> Prometheus {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let p = Prometheus::start(dir, addr, &[addr.to_string()]);
    let client = sluice_tests::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let a = block(client.get(addr, "/api/v1/query?query=count_over_time(up%5B1m%5D)", &[]));
        let n = a.ok().and_then(|a| {
            let j: serde_json::Value = serde_json::from_slice(&a.body).ok()?;
            j["data"]["result"][0]["value"][1]
                .as_str()?
                .parse::<usize>()
                .ok()
        });
        if n.is_some_and(|n| n >= samples) {
            return p;
        }
        assert!(
            Instant::now() < deadline,
            "prometheus did not scrape itself in time"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn prometheus_instant_and_range_queries_against_a_real_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let p = prometheus(dir.path(), 4);
    let addr = p.addr;
    let got = measure_all(&format!(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {{name: prom}}
spec:
  args: [{{name: lookback, value: 30s}}]
  metrics:
    - name: instant
      successCondition: "result[0] == 1 && len(result) == 1"
      provider:
        prometheus:
          address: "http://{addr}"
          query: up{{job="sluice"}}
          timeout: 10
          headers: [{{key: X-Scope-OrgID, value: tenant_a}}]
    - name: range
      successCondition: "len(result) >= 4 && all(result, # == 1)"
      provider:
        prometheus:
          address: "http://{addr}"
          query: up{{job="sluice"}}
          rangeQuery:
            start: 'now() - duration("{{{{args.lookback}}}}")'
            end: now()
            step: 1s
    - name: nothing
      successCondition: "default(result[0], 0) == 0"
      failureCondition: "len(result) > 0"
      provider:
        prometheus:
          address: "http://{addr}"
          query: up{{job="nowhere"}}
    - name: scalar
      successCondition: "result == 2"
      provider:
        prometheus:
          address: "http://{addr}"
          query: scalar(vector(2))
"#
    ));
    let phases: Vec<(&str, MeasurementPhase)> =
        got.iter().map(|(n, p, _)| (n.as_str(), *p)).collect();
    assert_eq!(
        phases,
        [
            ("instant", MeasurementPhase::Successful),
            ("range", MeasurementPhase::Successful),
            // an empty vector: result[0] is an evaluation error, as in Argo
            ("nothing", MeasurementPhase::Error),
            ("scalar", MeasurementPhase::Successful),
        ],
        "{got:?}"
    );
    assert!(got[2].2.contains("out of range"), "{:?}", got[2]);
}
