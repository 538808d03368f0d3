//! Analysis providers: where a metric's number comes from.
//! - `proxy`: the proxies' own counters, merged by the hub, over a window;
//! - `prometheus`: an instant query to a Prometheus HTTP API;
//! - `web`: an HTTP call and a JSON path into its answer;
//! - `job`: a command with a timeout (exit 0 is success; its output is kept);
//! - `load`: a warm-up sent with the loadtest library; the result is the success rate.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use serde_json::Value as Json;

use crate::analysis::expr::Value;
use crate::analysis::run::{MetricSpec, ProviderOutcome};
use crate::analysis::sequential;
use crate::spec::defaults;
use crate::spec::template::{ProxyQuery, RevisionRole};
use crate::time::Time;

/// Requests, server errors (5xx) and the latency histogram counted over a span.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counted {
    /// Responses.
    pub requests: u64,
    /// Of which 5xx.
    pub errors: u64,
    /// Timed responses per latency bucket ([`sluice_api::counters::bucket_upper_seconds`]),
    /// the non-empty buckets only.
    pub latency: Vec<(usize, u64)>,
}

impl Counted {
    /// The counts of a span of the proxies' counters.
    pub fn of(t: &sluice_api::Totals) -> Self {
        Self {
            requests: t.requests(),
            errors: t.server_errors(),
            latency: t
                .buckets
                .iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(|(i, n)| (i, *n))
                .collect(),
        }
    }

    /// Timed responses, and those surely slower than `seconds` (their bucket lies wholly
    /// above it).
    pub fn slower_than(&self, seconds: f64) -> (u64, u64) {
        let timed = self.latency.iter().map(|(_, n)| n).sum();
        let slow = self
            .latency
            .iter()
            .filter(|(i, _)| *i > 0 && sluice_api::counters::bucket_upper_seconds(i - 1) >= seconds)
            .map(|(_, n)| n)
            .sum();
        (timed, slow)
    }
}

/// What one proxy counted for each revision of a route between two of its reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// When the second report was merged.
    pub at: Time,
    /// Per revision.
    pub counts: BTreeMap<String, Counted>,
}

/// The proxies' counters of a (route, revision) over the last `window` before `now`, merged
/// across proxies, with the span they cover (what the `proxy` provider reads).
pub trait CounterWindow: Send + Sync {
    /// Counters over the window and the span covered.
    fn window(
        &self,
        route: &str,
        revision: &str,
        window: Duration,
        now: Time,
    ) -> (sluice_api::Totals, Duration);
    /// The steps of a route's reports (what one proxy counted per revision between two of
    /// its reports) merged at or after `since`, oldest first.
    fn steps(&self, route: &str, since: Time) -> Vec<Step>;
}

/// The `canary-vs-stable` verdict over the steps of the route's reports: each step is what one
/// proxy counted for both revisions between two of its reports — the same moments, the same
/// traffic — and is one window of the sequential test, weighed as soon as its report is
/// merged. Fewer than `min_requests` canary responses, or no verdict yet, is not a
/// measurement.
///
/// With `slower_than`, what is compared is the share of timed responses slower than that
/// many seconds instead of the share of 5xx: the same test, on latency.
pub fn canary_vs_stable(
    params: &sequential::Params,
    steps: &[Step],
    canary: &str,
    stable: &str,
    min_requests: u64,
    slower_than: Option<f64>,
) -> ProviderOutcome {
    if canary == stable {
        return ProviderOutcome::NotEnoughData("no canary to compare with stable".to_owned());
    }
    let counts = |s: &Step, revision: &str| match (s.counts.get(revision), slower_than) {
        (None, _) => sequential::Counts::default(),
        (Some(c), None) => sequential::Counts {
            requests: c.requests,
            errors: c.errors,
        },
        (Some(c), Some(seconds)) => {
            let (timed, slow) = c.slower_than(seconds);
            sequential::Counts {
                requests: timed,
                errors: slow,
            }
        }
    };
    let what = match slower_than {
        None => "failed".to_owned(),
        Some(s) => format!("slower than {}", humantime_secs(s)),
    };
    let mut evidence = sequential::Evidence::default();
    for s in steps {
        evidence.add(params, counts(s, canary), counts(s, stable));
    }
    let figures = format!(
        "canary {} of {} {what} ({}), stable {} of {} ({}), statistic {:.2} (worse at {:.2}, not worse at {:.2})",
        evidence.canary.errors,
        evidence.canary.requests,
        rate_text(sequential::Evidence::rate(evidence.canary)),
        evidence.stable.errors,
        evidence.stable.requests,
        rate_text(sequential::Evidence::rate(evidence.stable)),
        evidence.statistic,
        params.upper(),
        params.lower(),
    );
    if evidence.canary.requests < min_requests {
        return ProviderOutcome::NotEnoughData(format!(
            "waiting for traffic: {} of {min_requests} canary requests",
            evidence.canary.requests
        ));
    }
    match evidence.verdict(params) {
        sequential::Verdict::Worse => ProviderOutcome::Decided {
            success: false,
            detail: format!("worse than stable: {figures}"),
        },
        sequential::Verdict::NotWorse => ProviderOutcome::Decided {
            success: true,
            detail: format!("not worse than stable: {figures}"),
        },
        sequential::Verdict::Undecided => {
            ProviderOutcome::NotEnoughData(format!("undecided: {figures}"))
        }
    }
}

/// Seconds as a person writes them: `250ms`, `1.5s`.
fn humantime_secs(s: f64) -> String {
    if s < 1.0 {
        format!("{}ms", (s * 1000.0).round())
    } else {
        format!("{s}s")
    }
}

fn rate_text(rate: Option<f64>) -> String {
    rate.map_or_else(|| "-".to_owned(), |r| format!("{:.2} %", r * 100.0))
}

/// A `job` provider's Kubernetes Job, to run.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRequest {
    /// The rollout it measures (its key: `namespace/name` on a cluster).
    pub rollout: String,
    /// The Job's name.
    pub name: String,
    /// The Job's metadata as the template wrote it.
    pub metadata: Option<serde_json::Value>,
    /// The Job's spec as the template wrote it.
    pub spec: serde_json::Value,
    /// How long it may run.
    pub timeout: Duration,
}

/// Runs a `job` provider's Kubernetes Job and tells how it ended: `Decided` by the Job's
/// completion, `Error` when it cannot be created or does not finish in time.
pub trait JobRunner: Send + Sync {
    /// Runs one Job to its end.
    fn run(&self, job: JobRequest) -> futures_util::future::BoxFuture<'static, ProviderOutcome>;
}

/// A Job's name for one measurement: the metric, the revision and the time, within 63
/// lowercase letters, digits and dashes.
pub fn job_name(metric: &str, revision: &str, now: Time) -> String {
    let raw = format!("{metric}-{revision}-{:x}", now.0);
    let clean: String = raw
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let tail: String = clean
        .chars()
        .rev()
        .take(63)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    tail.trim_matches('-').to_owned()
}

/// What a measurement needs to know about its rollout.
#[derive(Clone)]
pub struct Measured {
    /// The rollout (its key in the runtime's world).
    pub rollout: String,
    /// Where a `job` provider's Kubernetes Job runs, when the runtime has a cluster.
    pub jobs: Option<Arc<dyn JobRunner>>,
    /// The merged counters (for `proxy`).
    pub counters: Arc<dyn CounterWindow>,
    /// The rollout's proxy route.
    pub route: String,
    /// The revision under analysis.
    pub revision: String,
    /// The stable revision.
    pub stable: String,
    /// Addresses of the revision under analysis.
    pub revision_addresses: Vec<String>,
    /// Addresses of the stable revision.
    pub stable_addresses: Vec<String>,
}

/// Takes one measurement.
pub async fn measure(metric: &MetricSpec, target: &Measured, now: Time) -> ProviderOutcome {
    let p = &metric.provider;
    if let Some(x) = &p.proxy {
        let revision = match x.revision {
            RevisionRole::Canary => &target.revision,
            RevisionRole::Stable => &target.stable,
        };
        let window = x
            .window
            .as_ref()
            .map_or(defaults::PROXY_WINDOW, |w| w.value);
        let min = x.min_requests.unwrap_or(defaults::PROXY_MIN_REQUESTS);
        if x.query == ProxyQuery::CanaryVsStable {
            let since = Time(now.0 - i64::try_from(window.as_millis()).unwrap_or(i64::MAX));
            let steps = target.counters.steps(&target.route, since);
            return canary_vs_stable(
                &x.sequential(),
                &steps,
                &target.revision,
                &target.stable,
                min,
                x.slower_than.as_ref().map(|d| d.value.as_secs_f64()),
            );
        }
        let (t, span) = target.counters.window(&target.route, revision, window, now);
        return proxy_value(
            x.query,
            x.quantile.unwrap_or(defaults::PROXY_QUANTILE),
            &t,
            span,
            window,
            min,
        );
    }
    if let Some(x) = &p.prometheus {
        let url = format!(
            "{}/api/v1/query?query={}",
            x.address.trim_end_matches('/'),
            percent_encode(&x.query)
        );
        let timeout = Duration::from_secs(u64::from(
            x.timeout.unwrap_or(defaults::PROMETHEUS_TIMEOUT_SECONDS),
        ));
        return match http(Method::GET, &url, &[], Bytes::new(), timeout).await {
            Ok((status, body)) if status < 300 => prometheus_value(&body),
            Ok((status, body)) => ProviderOutcome::Error(format!(
                "prometheus answered {status}: {}",
                String::from_utf8_lossy(&body)
                    .chars()
                    .take(200)
                    .collect::<String>()
            )),
            Err(e) => ProviderOutcome::Error(format!("prometheus: {e}")),
        };
    }
    if let Some(x) = &p.web {
        let method = match x.method.as_deref().unwrap_or("GET") {
            "POST" => Method::POST,
            "PUT" => Method::PUT,
            _ => Method::GET,
        };
        let body = match (&x.body, &x.json_body) {
            (Some(b), _) => Bytes::from(b.clone()),
            (None, Some(j)) => Bytes::from(j.to_string()),
            (None, None) => Bytes::new(),
        };
        let mut headers: Vec<(String, String)> = x
            .headers
            .iter()
            .map(|h| (h.key.clone(), h.value.clone()))
            .collect();
        if x.json_body.is_some() {
            headers.push(("content-type".into(), "application/json".into()));
        }
        let timeout = Duration::from_secs(u64::from(
            x.timeout_seconds.unwrap_or(defaults::WEB_TIMEOUT_SECONDS),
        ));
        return match http(method, &x.url, &headers, body, timeout).await {
            Ok((status, body)) if status < 300 => web_value(&body, x.json_path.as_deref()),
            Ok((status, _)) => ProviderOutcome::Error(format!("{} answered {status}", x.url)),
            Err(e) => ProviderOutcome::Error(format!("{}: {e}", x.url)),
        };
    }
    if let Some(x) = &p.job {
        let timeout = Duration::from_secs(u64::from(
            x.timeout_seconds.unwrap_or(defaults::JOB_TIMEOUT_SECONDS),
        ));
        if !x.command.is_empty() {
            return run_command(&x.command, timeout).await;
        }
        return match (&x.spec, &target.jobs) {
            (Some(spec), Some(jobs)) => {
                jobs.run(JobRequest {
                    rollout: target.rollout.clone(),
                    name: job_name(&metric.name, &target.revision, now),
                    metadata: x.metadata.clone(),
                    spec: spec.clone(),
                    timeout,
                })
                .await
            }
            (None, _) => ProviderOutcome::Error("the job has neither a command nor a spec".into()),
            (Some(_), None) => ProviderOutcome::Error(
                "a Kubernetes Job cannot run in local mode; give the job a command".into(),
            ),
        };
    }
    if let Some(x) = &p.load {
        let addresses = match x.revision {
            RevisionRole::Canary => &target.revision_addresses,
            RevisionRole::Stable => &target.stable_addresses,
        };
        let url = match (&x.url, addresses.first()) {
            (Some(u), _) => u.clone(),
            (None, Some(a)) => format!("http://{a}{}", x.path.as_deref().unwrap_or("/")),
            (None, None) => {
                return ProviderOutcome::Error("the revision has no address to warm up".into());
            }
        };
        let Ok(uri) = url.parse() else {
            return ProviderOutcome::Error(format!("{url} is not a URL"));
        };
        let mut cfg = sluice_loadtest::LoadConfig::new(
            uri,
            x.concurrency.unwrap_or(defaults::LOAD_CONCURRENCY).max(1) as usize,
        );
        cfg.requests = Some(x.requests);
        cfg.duration = Some(Duration::from_secs(300));
        for (k, v) in &x.headers {
            if let (Ok(k), Ok(v)) = (k.parse(), v.parse()) {
                cfg.headers.push((k, v));
            }
        }
        return match sluice_loadtest::run(cfg).await {
            Ok(r) => {
                tracing::info!(
                    url,
                    success_rate = r.success_rate(),
                    p99_us = r.latency.p99_us,
                    "warm-up done"
                );
                ProviderOutcome::Value(Value::Number(r.success_rate()))
            }
            Err(e) => ProviderOutcome::Error(format!("warm-up: {e}")),
        };
    }
    ProviderOutcome::Error("the metric has no provider".into())
}

/// The proxy provider's figure from merged counters over a window.
pub fn proxy_value(
    query: ProxyQuery,
    quantile: f64,
    t: &sluice_api::Totals,
    span: Duration,
    window: Duration,
    min_requests: u64,
) -> ProviderOutcome {
    let n = t.requests();
    if n < min_requests {
        return ProviderOutcome::NotEnoughData(format!(
            "waiting for traffic: {n} of {min_requests} requests in the last {}s",
            window.as_secs()
        ));
    }
    let v = match query {
        ProxyQuery::SuccessRate => t.success_rate().unwrap_or(1.0),
        ProxyQuery::ErrorRate => t.error_rate().unwrap_or(0.0),
        ProxyQuery::RequestRate => n as f64 / span.as_secs_f64().max(1.0),
        ProxyQuery::CanaryVsStable => {
            return ProviderOutcome::Error(
                "canary-vs-stable is measured over samples, not one window".into(),
            );
        }
        ProxyQuery::Latency => match t.quantile_seconds(quantile) {
            Some(q) => q,
            None => return ProviderOutcome::NotEnoughData("no timed responses yet".into()),
        },
    };
    ProviderOutcome::Value(Value::Number(v))
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Reads a Prometheus instant-query answer: a vector becomes a vector of its values, a scalar
/// a number.
pub fn prometheus_value(body: &[u8]) -> ProviderOutcome {
    let Ok(j) = serde_json::from_slice::<Json>(body) else {
        return ProviderOutcome::Error("prometheus answer is not JSON".into());
    };
    if j["status"] != "success" {
        return ProviderOutcome::Error(format!(
            "prometheus: {}",
            j["error"].as_str().unwrap_or("query failed")
        ));
    }
    let num = |v: &Json| {
        v.get(1)
            .and_then(Json::as_str)
            .and_then(|s| s.parse::<f64>().ok())
    };
    match j["data"]["resultType"].as_str() {
        Some("vector") => {
            let values: Option<Vec<f64>> = j["data"]["result"]
                .as_array()
                .map(|rs| rs.iter().filter_map(|r| num(&r["value"])).collect());
            ProviderOutcome::Value(Value::Vector(values.unwrap_or_default()))
        }
        Some("scalar") => match num(&j["data"]["result"]) {
            Some(n) => ProviderOutcome::Value(Value::Number(n)),
            None => ProviderOutcome::Error("prometheus scalar without a value".into()),
        },
        other => ProviderOutcome::Error(format!(
            "prometheus result type {other:?} is not a vector or scalar"
        )),
    }
}

/// Follows a path like `{$.data.items[0].ok}` (braces and `$.` optional).
pub fn json_path<'j>(j: &'j Json, path: &str) -> Option<&'j Json> {
    let p = path.trim().trim_start_matches('{').trim_end_matches('}');
    let p = p.strip_prefix('$').unwrap_or(p);
    let mut cur = j;
    for seg in p.split('.').filter(|s| !s.is_empty()) {
        let (key, rest) = match seg.find('[') {
            Some(i) => (&seg[..i], &seg[i..]),
            None => (seg, ""),
        };
        if !key.is_empty() {
            cur = cur.get(key)?;
        }
        for idx in rest.split('[').filter(|s| !s.is_empty()) {
            let i: usize = idx.trim_end_matches(']').parse().ok()?;
            cur = cur.get(i)?;
        }
    }
    Some(cur)
}

fn to_value(j: &Json) -> Option<Value> {
    match j {
        Json::Number(n) => n.as_f64().map(Value::Number),
        Json::Bool(b) => Some(Value::Bool(*b)),
        Json::String(s) => s.parse().ok().map(Value::Number),
        Json::Array(items) => items
            .iter()
            .map(|i| match to_value(i) {
                Some(Value::Number(n)) => Some(n),
                _ => None,
            })
            .collect::<Option<Vec<f64>>>()
            .map(Value::Vector),
        _ => None,
    }
}

/// A web answer as a value: the JSON path's target (or the whole body).
pub fn web_value(body: &[u8], path: Option<&str>) -> ProviderOutcome {
    let Ok(j) = serde_json::from_slice::<Json>(body) else {
        return ProviderOutcome::Error("the answer is not JSON".into());
    };
    let target = match path {
        Some(p) => match json_path(&j, p) {
            Some(t) => t,
            None => return ProviderOutcome::Error(format!("{p} is not in the answer")),
        },
        None => &j,
    };
    match to_value(target) {
        Some(v) => ProviderOutcome::Value(v),
        None => ProviderOutcome::Error(format!(
            "{target} is not a number, boolean or list of numbers"
        )),
    }
}

async fn http(
    method: Method,
    url: &str,
    headers: &[(String, String)],
    body: Bytes,
    timeout: Duration,
) -> Result<(u16, Bytes), String> {
    if !url.starts_with("http://") {
        return Err("only http:// URLs are supported by the local runtime".into());
    }
    let client = sluice_io::http::client(timeout);
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let req = req.body(Full::new(body)).map_err(|e| e.to_string())?;
    sluice_io::http::exchange(&client, req, timeout)
        .await
        .map(|(status, body)| (status.as_u16(), body))
        .map_err(|e| e.to_string())
}

async fn run_command(command: &[String], timeout: Duration) -> ProviderOutcome {
    let Some((program, args)) = command.split_first() else {
        return ProviderOutcome::Error("empty command".into());
    };
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(timeout, child).await {
        Err(_) => ProviderOutcome::Error(format!("{program} did not finish within {timeout:?}")),
        Ok(Err(e)) => ProviderOutcome::Error(format!("cannot run {program}: {e}")),
        Ok(Ok(out)) => {
            let mut detail = String::from_utf8_lossy(&out.stdout).into_owned();
            detail.push_str(&String::from_utf8_lossy(&out.stderr));
            let detail: String = detail
                .chars()
                .rev()
                .take(2000)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            ProviderOutcome::Decided {
                success: out.status.success(),
                detail: format!(
                    "exit {}: {}",
                    out.status.code().map_or("signal".into(), |c| c.to_string()),
                    detail.trim()
                ),
            }
        }
    }
}

#[cfg(test)]
mod job_name_tests {
    use super::*;

    #[test]
    fn a_job_name_is_a_dns_label_that_ends_with_the_time() {
        assert_eq!(
            job_name("Smoke_Test", "x4wwvspktq", Time(255)),
            "smoke-test-x4wwvspktq-ff"
        );
        let long = job_name(&"m".repeat(80), "h", Time(1));
        assert_eq!(long.len(), 63);
        assert!(long.ends_with("-h-1"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (requests, 5xx).
    type Pair = (u64, u64);

    /// Report steps, one per (canary, stable) pair of (requests, 5xx).
    fn steps(pairs: &[(Pair, Pair)]) -> Vec<Step> {
        pairs
            .iter()
            .enumerate()
            .map(|(i, ((cn, ce), (sn, se)))| Step {
                at: Time(100 * i as i64),
                counts: [
                    (
                        "c",
                        Counted {
                            requests: *cn,
                            errors: *ce,
                            latency: vec![],
                        },
                    ),
                    (
                        "s",
                        Counted {
                            requests: *sn,
                            errors: *se,
                            latency: vec![],
                        },
                    ),
                ]
                .into_iter()
                .filter(|(_, c)| c.requests > 0)
                .map(|(r, c)| (r.to_owned(), c))
                .collect(),
            })
            .collect()
    }

    #[test]
    fn canary_vs_stable_fails_a_canary_erring_alone_and_passes_one_erring_like_stable() {
        let p = crate::analysis::sequential::Params::default();
        let bad = steps(&[((40, 12), (160, 1)); 8]);
        match canary_vs_stable(&p, &bad, "c", "s", 20, None) {
            ProviderOutcome::Decided { success, detail } => {
                assert!(!success);
                assert!(detail.starts_with("worse than stable: canary "), "{detail}");
            }
            other => panic!("{other:?}"),
        }
        // the same spike on both: no evidence against the canary
        let spike = steps(&[((40, 10), (160, 40)); 30]);
        assert!(matches!(
            canary_vs_stable(&p, &spike, "c", "s", 20, None),
            ProviderOutcome::Decided { success: true, .. }
        ));
        // too little canary traffic is not a measurement
        assert!(matches!(
            canary_vs_stable(&p, &steps(&[((3, 3), (160, 0))]), "c", "s", 20, None),
            ProviderOutcome::NotEnoughData(m) if m.starts_with("waiting for traffic")
        ));
        // a step where the stable revision served nothing carries no comparison: the
        // canary's errors alone weigh nothing
        let alone = steps(&[((40, 12), (0, 0)); 8]);
        assert!(matches!(
            canary_vs_stable(&p, &alone, "c", "s", 20, None),
            ProviderOutcome::NotEnoughData(m) if m.starts_with("undecided")
        ));
        // no canary (the revision under analysis is the stable one)
        assert!(matches!(
            canary_vs_stable(&p, &bad, "s", "s", 20, None),
            ProviderOutcome::NotEnoughData(_)
        ));
    }

    #[test]
    fn canary_vs_stable_on_latency_compares_the_shares_of_slow_responses() {
        use sluice_api::counters::{bucket_index, bucket_upper_seconds};
        let p = crate::analysis::sequential::Params::default();
        let at = |ms: u64| bucket_index(ms * 1000);
        // 40 canary responses, `slow` of them at 800 ms, the rest at 20 ms; 160 stable ones
        // at 20 ms with one at 800 ms
        let step = |slow: u64| Step {
            at: Time(0),
            counts: [
                (
                    "c".to_owned(),
                    Counted {
                        requests: 40,
                        errors: 0,
                        latency: vec![(at(20), 40 - slow), (at(800), slow)],
                    },
                ),
                (
                    "s".to_owned(),
                    Counted {
                        requests: 160,
                        errors: 0,
                        latency: vec![(at(20), 159), (at(800), 1)],
                    },
                ),
            ]
            .into(),
        };
        let c = &step(10).counts["c"];
        assert_eq!(c.slower_than(0.25), (40, 10));
        // a threshold inside a bucket counts none of it: only surely slower responses
        let inside = bucket_upper_seconds(at(800)) - 0.001;
        assert_eq!(c.slower_than(inside), (40, 0));
        match canary_vs_stable(&p, &vec![step(10); 8], "c", "s", 20, Some(0.25)) {
            ProviderOutcome::Decided { success, detail } => {
                assert!(!success);
                assert!(detail.contains("of 320 slower than 250ms"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
        // no error at all: on the error rate there is nothing to weigh
        assert!(matches!(
            canary_vs_stable(&p, &vec![step(10); 8], "c", "s", 20, None),
            ProviderOutcome::NotEnoughData(m) if m.starts_with("undecided")
        ));
        // as slow as stable: passes in time
        assert!(matches!(
            canary_vs_stable(&p, &vec![step(0); 200], "c", "s", 20, Some(0.25)),
            ProviderOutcome::Decided { success: true, .. }
        ));
    }

    #[test]
    fn prometheus_vectors_and_scalars_become_values() {
        let v = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"0.97"]}]}}"#;
        assert_eq!(
            prometheus_value(v),
            ProviderOutcome::Value(Value::Vector(vec![0.97]))
        );
        let s = br#"{"status":"success","data":{"resultType":"scalar","result":[1,"2"]}}"#;
        assert_eq!(
            prometheus_value(s),
            ProviderOutcome::Value(Value::Number(2.0))
        );
        let empty = br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert_eq!(
            prometheus_value(empty),
            ProviderOutcome::Value(Value::Vector(vec![]))
        );
        assert!(matches!(
            prometheus_value(br#"{"status":"error","error":"bad"}"#),
            ProviderOutcome::Error(_)
        ));
        assert!(matches!(
            prometheus_value(b"nope"),
            ProviderOutcome::Error(_)
        ));
    }

    #[test]
    fn json_paths_reach_into_answers() {
        let j: Json = serde_json::json!({"data": {"items": [{"ok": 0.99}, {"ok": true}]}});
        assert_eq!(
            json_path(&j, "{$.data.items[0].ok}"),
            Some(&serde_json::json!(0.99))
        );
        assert_eq!(
            json_path(&j, "$.data.items[1].ok"),
            Some(&serde_json::json!(true))
        );
        assert_eq!(json_path(&j, "data.missing"), None);
        let body = serde_json::to_vec(&j).unwrap();
        assert_eq!(
            web_value(&body, Some("$.data.items[0].ok")),
            ProviderOutcome::Value(Value::Number(0.99))
        );
        assert!(matches!(
            web_value(&body, Some("$.data")),
            ProviderOutcome::Error(_)
        ));
    }

    #[test]
    fn proxy_figures_need_min_requests() {
        let mut t = sluice_api::Totals::default();
        t.by_class[1] = 95;
        t.by_class[4] = 5;
        t.buckets[10] = 100;
        let w = Duration::from_secs(10);
        assert_eq!(
            proxy_value(ProxyQuery::ErrorRate, 0.99, &t, w, w, 20),
            ProviderOutcome::Value(Value::Number(0.05))
        );
        assert_eq!(
            proxy_value(ProxyQuery::RequestRate, 0.99, &t, w, w, 20),
            ProviderOutcome::Value(Value::Number(10.0))
        );
        assert!(matches!(
            proxy_value(ProxyQuery::SuccessRate, 0.99, &t, w, w, 101),
            ProviderOutcome::NotEnoughData(_)
        ));
        assert!(matches!(
            proxy_value(ProxyQuery::Latency, 0.99, &t, w, w, 1),
            ProviderOutcome::Value(Value::Number(_))
        ));
    }

    #[test]
    fn queries_are_percent_encoded() {
        assert_eq!(
            percent_encode("sum(rate(x{a=\"b\"}[5m]))"),
            "sum%28rate%28x%7Ba%3D%22b%22%7D%5B5m%5D%29%29"
        );
    }

    #[tokio::test]
    async fn commands_decide_by_exit_status() {
        let ok = run_command(
            &["sh".into(), "-c".into(), "echo fine".into()],
            Duration::from_secs(5),
        )
        .await;
        assert!(
            matches!(ok, ProviderOutcome::Decided { success: true, ref detail } if detail.contains("fine"))
        );
        let bad = run_command(
            &["sh".into(), "-c".into(), "exit 3".into()],
            Duration::from_secs(5),
        )
        .await;
        assert!(
            matches!(bad, ProviderOutcome::Decided { success: false, ref detail } if detail.starts_with("exit 3"))
        );
        let slow = run_command(&["sleep".into(), "5".into()], Duration::from_millis(100)).await;
        assert!(matches!(slow, ProviderOutcome::Error(_)));
    }
}
