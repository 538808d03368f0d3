//! The `web` provider: an HTTP(S) call with the template's method, headers, body and timeout,
//! and `result` as Argo Rollouts makes it: the value the `jsonPath` finds in a JSON answer
//! (an object, a list, a string, a number, a boolean, or nil), or the whole answer as a
//! string when it is not JSON.

use std::time::Duration;

use bytes::Bytes;
use http::Method;
use serde_json::Value as Json;

use crate::analysis::expr::Value;
use crate::analysis::run::ProviderOutcome;
use crate::spec::defaults;
use crate::spec::template::WebProvider;

use super::client;
use super::jsonpath::JsonPath;

/// A web metric's request: method, body and headers.
pub type WebRequest = (Method, Bytes, Vec<(String, String)>);

/// The request a `web` metric sends, or why it cannot be sent (as Argo refuses it).
pub fn request(x: &WebProvider) -> Result<WebRequest, String> {
    let method = match x.method.as_deref().unwrap_or("GET") {
        "GET" => Method::GET,
        "POST" => Method::POST,
        "PUT" => Method::PUT,
        other => return Err(format!("method {other:?} is not GET, POST or PUT")),
    };
    let body = match (&x.body, &x.json_body) {
        (Some(_), Some(_)) => return Err("use either body or jsonBody, not both".into()),
        (Some(b), None) => Some(Bytes::from(b.clone())),
        (None, Some(j)) => Some(Bytes::from(j.to_string())),
        (None, None) => None,
    };
    if body.is_some() && method == Method::GET {
        return Err("body and jsonBody go with POST or PUT, not GET".into());
    }
    let mut headers: Vec<(String, String)> = x
        .headers
        .iter()
        .map(|h| (h.key.clone(), h.value.clone()))
        .collect();
    if x.json_body.is_some() {
        headers.push(("content-type".into(), "application/json".into()));
    }
    Ok((method, body.unwrap_or_default(), headers))
}

/// One measurement of a `web` metric.
pub async fn measure(x: &WebProvider) -> ProviderOutcome {
    let (method, body, headers) = match request(x) {
        Ok(r) => r,
        Err(e) => return ProviderOutcome::Error(e),
    };
    let call = client::Call {
        method,
        url: &x.url,
        headers,
        body,
        timeout: Duration::from_secs(u64::from(
            x.timeout_seconds.unwrap_or(defaults::WEB_TIMEOUT_SECONDS),
        )),
        insecure: x.insecure,
    };
    match client::call(call).await {
        Ok((status, body)) if (200..300).contains(&status) => {
            web_value(&body, x.json_path.as_deref())
        }
        Ok((status, _)) => ProviderOutcome::Error(format!("{} answered {status}", x.url)),
        Err(e) => ProviderOutcome::Error(format!("{}: {e}", x.url)),
    }
}

/// A web answer as `result`: the first value the path finds in it (the whole answer without
/// a path), or the answer as a string when it is not JSON.
pub fn web_value(body: &[u8], path: Option<&str>) -> ProviderOutcome {
    let Ok(j) = serde_json::from_slice::<Json>(body) else {
        return ProviderOutcome::Value(Value::String(String::from_utf8_lossy(body).into_owned()));
    };
    let written = path.unwrap_or("{$}");
    let path = match JsonPath::parse(written) {
        Ok(p) => p,
        Err(e) => return ProviderOutcome::Error(format!("jsonPath {e}")),
    };
    match path.find(&j).first() {
        Some(found) => ProviderOutcome::Value(Value::from_json(found)),
        None => ProviderOutcome::Error(format!("jsonPath {written} finds nothing in the answer")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_become_results_as_argo_makes_them() {
        let body =
            br#"{"data": {"ok": true, "p99": 0.2, "version": {"major": "1"}, "items": [1, 2]}}"#;
        let val = |p: &str| match web_value(body, Some(p)) {
            ProviderOutcome::Value(v) => v,
            other => panic!("{p}: {other:?}"),
        };
        assert_eq!(val("{$.data.ok}"), Value::Bool(true));
        assert_eq!(val("{$.data.p99}"), Value::Number(0.2));
        assert_eq!(val("{$.data.items}"), Value::numbers([1.0, 2.0]));
        assert_eq!(val("{$.data.version.major}"), Value::String("1".into()));
        assert!(matches!(val("{$.data.version}"), Value::Map(_)));
        // no path: the whole answer
        assert!(matches!(
            web_value(body, None),
            ProviderOutcome::Value(Value::Map(_))
        ));
        // not JSON: the answer as a string
        assert_eq!(
            web_value(b"It worked!", Some("{$.x}")),
            ProviderOutcome::Value(Value::String("It worked!".into()))
        );
        assert!(matches!(
            web_value(body, Some("{$.data.missing}")),
            ProviderOutcome::Error(e) if e.contains("finds nothing")
        ));
    }

    #[test]
    fn requests_are_refused_as_argo_refuses_them() {
        let base = WebProvider {
            url: "http://127.0.0.1:1/".into(),
            method: None,
            headers: vec![],
            body: None,
            json_body: None,
            json_path: None,
            timeout_seconds: None,
            insecure: false,
        };
        assert!(request(&base).is_ok());
        let get_body = WebProvider {
            body: Some("x".into()),
            ..base.clone()
        };
        assert!(request(&get_body).unwrap_err().contains("not GET"));
        let both = WebProvider {
            method: Some("POST".into()),
            body: Some("x".into()),
            json_body: Some(serde_json::json!({"a": 1})),
            ..base.clone()
        };
        assert!(request(&both).unwrap_err().contains("not both"));
        let json = WebProvider {
            method: Some("PUT".into()),
            json_body: Some(serde_json::json!({"a": 1})),
            ..base.clone()
        };
        let (m, body, headers) = request(&json).unwrap();
        assert_eq!((m, &body[..]), (Method::PUT, &br#"{"a":1}"#[..]));
        assert!(headers.contains(&("content-type".into(), "application/json".into())));
        let patch = WebProvider {
            method: Some("PATCH".into()),
            ..base
        };
        assert!(request(&patch).is_err());
    }
}
