//! The header, cookie, host and sticky matchers over arbitrary requests: a decision is always
//! one of the route's targets, the same request always gets the same decision from the rules,
//! and the cookie reader finds only what the `Cookie` headers hold.

#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};

use sluice_proxy::{RouteTable, Shared, UpstreamSettings};

#[derive(Debug, Arbitrary)]
struct Request {
    path: String,
    host: Option<String>,
    headers: Vec<(String, Vec<u8>)>,
    cookies: Vec<(String, String)>,
}

const TABLE: &str = r#"
backends:
  - {name: v1, endpoints: ["127.0.0.1:9"]}
  - {name: v2, endpoints: ["127.0.0.1:9"]}
  - {name: v3, endpoints: ["127.0.0.1:9"]}
routes:
  - name: hosts
    hosts: ["shop.example.com", "*.preview.example.com"]
    stable: v1
    canary: v2
    weight: 0
    host_rules: [{host: beta.preview.example.com, backend: v3}]
  - name: sticky
    path_prefix: /sticky
    stable: v1
    canary: v2
    weight: 37
    split: {mode: sticky, header: x-user}
  - name: sticky-cookie
    path_prefix: /cookie
    stable: v1
    canary: v2
    weight: 50
    split: {mode: sticky, cookie: session}
  - name: rules
    stable: v1
    canary: v2
    weight: 0
    header_rules:
      - {name: x-canary, match: always-never}
      - {name: x-version, match: {exact: "3"}, backend: v3}
      - {name: x-group, match: {prefix: beta-}, backend: v2}
      - {name: x-user, match: {regex: "^[0-9]+-staff$"}, backend: v3}
    cookie_rules:
      - {name: canary, match: always-never}
      - {name: tier, match: {exact: gold}, backend: v3}
"#;

/// The table, built once.
fn table() -> &'static Arc<RouteTable> {
    static TABLE_BUILT: OnceLock<Arc<RouteTable>> = OnceLock::new();
    TABLE_BUILT.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let shared = Shared::new(&UpstreamSettings::default(), None, None);
        let spec = sluice_proxy::config::parse_yaml(TABLE).expect("the table");
        rt.block_on(shared.apply(spec)).expect("the table builds")
    })
}

fuzz_target!(|req: Request| {
    let table = table();
    let Ok(uri) = http::Uri::builder()
        .path_and_query(if req.path.starts_with('/') {
            req.path.clone()
        } else {
            format!("/{}", req.path)
        })
        .build()
    else {
        return;
    };
    let mut headers = http::HeaderMap::new();
    if let Some(h) = req
        .host
        .as_deref()
        .and_then(|h| http::HeaderValue::from_str(h).ok())
    {
        headers.insert(http::header::HOST, h);
    }
    for (k, v) in &req.headers {
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            http::HeaderValue::from_bytes(v),
        ) {
            headers.append(k, v);
        }
    }
    let cookie_line = req
        .cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    if let Ok(v) = http::HeaderValue::from_str(&cookie_line) {
        headers.append(http::header::COOKIE, v);
    }
    for (k, _) in &req.cookies {
        if let Some(v) = sluice_proxy::router::cookie(&headers, k) {
            assert!(
                headers
                    .get_all(http::header::COOKIE)
                    .iter()
                    .any(|c| v.is_empty()
                        || c.as_bytes().windows(v.len()).any(|w| w == v.as_bytes())),
                "cookie {k}={v} is not in the request"
            );
        }
    }
    if let Some((route, decision)) = sluice_proxy::router::route(table, &uri, &headers) {
        assert!(decision.target < route.targets.len());
        let host = sluice_proxy::router::request_host(&uri, &headers);
        let again = sluice_proxy::router::decide(route, host, &headers);
        // the exact split (also a sticky route's, for a request without its key) counts
        // requests; anything else decides by the request alone
        if route.weight == 0 || decision.reason != sluice_proxy::router::Reason::Weight {
            assert_eq!(decision, again, "{:?}", route.name);
        }
    }
});
