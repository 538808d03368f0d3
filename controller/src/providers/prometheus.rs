//! The `prometheus` provider: an instant query (a vector is a list of its values, a scalar a
//! number) or a range query (`rangeQuery`: every value of every series, in order), with the
//! template's headers, timeout and `insecure`, as Argo Rollouts makes them.

use std::time::Duration;

use bytes::Bytes;
use http::Method;
use serde_json::Value as Json;

use crate::analysis::expr::{Expr, Value};
use crate::analysis::run::ProviderOutcome;
use crate::spec::defaults;
use crate::spec::duration::ArgoDuration;
use crate::spec::template::PrometheusProvider;
use crate::time::Time;

use super::client;

/// The URL of a query at `now`: `/api/v1/query`, or `/api/v1/query_range` with the range's
/// start and end evaluated at `now` and its step in seconds.
pub fn query_url(x: &PrometheusProvider, now: Time) -> Result<String, String> {
    let base = x.address.trim_end_matches('/');
    let query = percent_encode(&x.query);
    let Some(r) = &x.range_query else {
        return Ok(format!("{base}/api/v1/query?query={query}"));
    };
    let now = now.0 as f64 / 1000.0;
    let moment = |field: &str, text: &str| {
        Expr::parse(text)
            .and_then(|e| e.eval_time(now))
            .map_err(|e| format!("rangeQuery.{field}: {e}"))
    };
    let (start, end) = (moment("start", &r.start)?, moment("end", &r.end)?);
    let step = ArgoDuration::parse(&r.step)
        .map_err(|e| format!("rangeQuery.step: {e}"))?
        .value
        .as_secs_f64();
    if step <= 0.0 {
        return Err("rangeQuery.step: must be longer than 0".into());
    }
    if end < start {
        return Err(format!("rangeQuery: end ({end}) is before start ({start})"));
    }
    Ok(format!(
        "{base}/api/v1/query_range?query={query}&start={start:.3}&end={end:.3}&step={step}"
    ))
}

/// One measurement of a `prometheus` metric.
pub async fn measure(x: &PrometheusProvider, now: Time) -> ProviderOutcome {
    let url = match query_url(x, now) {
        Ok(u) => u,
        Err(e) => return ProviderOutcome::Error(e),
    };
    let timeout = Duration::from_secs(u64::from(
        x.timeout.unwrap_or(defaults::PROMETHEUS_TIMEOUT_SECONDS),
    ));
    let call = client::Call {
        method: Method::GET,
        url: &url,
        headers: x
            .headers
            .iter()
            .map(|h| (h.key.clone(), h.value.clone()))
            .collect(),
        body: Bytes::new(),
        timeout,
        insecure: x.insecure,
    };
    match client::call(call).await {
        Ok((status, body)) if status < 300 => prometheus_value(&body),
        Ok((status, body)) => ProviderOutcome::Error(format!(
            "prometheus answered {status}: {}",
            String::from_utf8_lossy(&body)
                .chars()
                .take(200)
                .collect::<String>()
        )),
        Err(e) => ProviderOutcome::Error(format!("prometheus: {e}")),
    }
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

/// Reads a Prometheus answer: a vector is the list of its values, a matrix the list of every
/// value of every series, a scalar a number.
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
    // a sample is [time, "value"]; Prometheus writes NaN and ±Inf as text too
    let num = |v: &Json| {
        v.get(1)
            .and_then(Json::as_str)
            .and_then(|s| s.parse::<f64>().ok())
    };
    let series = || j["data"]["result"].as_array().cloned().unwrap_or_default();
    match j["data"]["resultType"].as_str() {
        Some("vector") => ProviderOutcome::Value(Value::numbers(
            series().iter().filter_map(|r| num(&r["value"])),
        )),
        Some("matrix") => ProviderOutcome::Value(Value::numbers(series().iter().flat_map(|r| {
            r["values"]
                .as_array()
                .map(|vs| vs.iter().filter_map(num).collect::<Vec<_>>())
                .unwrap_or_default()
        }))),
        Some("scalar") => match num(&j["data"]["result"]) {
            Some(n) => ProviderOutcome::Value(Value::Number(n)),
            None => ProviderOutcome::Error("prometheus scalar without a value".into()),
        },
        other => ProviderOutcome::Error(format!(
            "prometheus result type {other:?} is not a vector, matrix or scalar"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::template::RangeQuery;

    #[test]
    fn vectors_matrices_and_scalars_become_values() {
        let v = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"0.97"]}]}}"#;
        assert_eq!(
            prometheus_value(v),
            ProviderOutcome::Value(Value::numbers([0.97]))
        );
        let s = br#"{"status":"success","data":{"resultType":"scalar","result":[1,"2"]}}"#;
        assert_eq!(
            prometheus_value(s),
            ProviderOutcome::Value(Value::Number(2.0))
        );
        let m = br#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"a":"1"},"values":[[1,"10"],[2,"20"]]},
            {"metric":{"a":"2"},"values":[[1,"NaN"]]}]}}"#;
        match prometheus_value(m) {
            ProviderOutcome::Value(v) => assert_eq!(v.to_string(), "[10,20,NaN]"),
            other => panic!("{other:?}"),
        }
        let empty = br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert_eq!(
            prometheus_value(empty),
            ProviderOutcome::Value(Value::numbers([]))
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

    fn provider(range: Option<RangeQuery>) -> PrometheusProvider {
        PrometheusProvider {
            address: "http://127.0.0.1:9090/".into(),
            query: "sum(rate(x{a=\"b\"}[5m]))".into(),
            timeout: None,
            headers: vec![],
            insecure: false,
            range_query: range,
        }
    }

    #[test]
    fn instant_and_range_queries_have_their_urls() {
        assert_eq!(
            query_url(&provider(None), Time(0)).unwrap(),
            "http://127.0.0.1:9090/api/v1/query?query=sum%28rate%28x%7Ba%3D%22b%22%7D%5B5m%5D%29%29"
        );
        let range = |start: &str, step: &str| RangeQuery {
            start: start.into(),
            end: "now()".into(),
            step: step.into(),
        };
        let url = query_url(
            &provider(Some(range("now() - duration(\"5m\")", "1m"))),
            Time(1_000_000_000),
        )
        .unwrap();
        assert!(
            url.ends_with("/api/v1/query_range?query=sum%28rate%28x%7Ba%3D%22b%22%7D%5B5m%5D%29%29&start=999700.000&end=1000000.000&step=60"),
            "{url}"
        );
        for (start, step, why) in [
            ("now() + duration(\"5m\")", "1m", "before start"),
            ("5", "1m", "a time is needed"),
            ("now(", "1m", "rangeQuery.start: syntax error"),
            ("now()", "soon", "rangeQuery.step"),
        ] {
            let e = query_url(&provider(Some(range(start, step))), Time(1_000_000)).unwrap_err();
            assert!(e.contains(why), "{start} {step}: {e}");
        }
    }
}
