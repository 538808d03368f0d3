//! Criterion benchmarks of the proxy's per-request decisions and of a table change:
//! `cargo bench -p sluice-proxy --bench routing`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use sluice_proxy::Shared;
use sluice_proxy::UpstreamSettings;
use sluice_proxy::router;
use sluice_proxy::{RouteTable, TableSpec};

fn spec(weight: u32) -> TableSpec {
    sluice_proxy::config::parse_yaml(&format!(
        r#"
backends:
  - {{name: v1, endpoints: ["127.0.0.1:9001"]}}
  - {{name: v2, endpoints: ["127.0.0.1:9002"]}}
  - {{name: v3, endpoints: ["127.0.0.1:9003"]}}
routes:
  - name: app
    stable: v1
    canary: v2
    weight: {weight}
    header_rules:
      - {{name: x-canary, match: {{exact: "yes"}}, backend: v2}}
      - {{name: x-version, match: {{exact: "3"}}, backend: v3}}
      - {{name: x-group, match: {{prefix: beta-}}, backend: v2}}
      - {{name: x-tenant, match: {{prefix: internal-}}, backend: v3}}
      - {{name: x-user, match: {{regex: "^[0-9]+-staff$"}}, backend: v3}}
  - name: sticky
    path_prefix: /sticky
    stable: v1
    canary: v2
    weight: {weight}
    split: {{mode: sticky, header: x-user}}
"#
    ))
    .unwrap()
}

/// A request with 10 headers, five of them named by the rules, none matching.
fn request_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("host", "app.example.com"),
        ("user-agent", "Mozilla/5.0 (X11; Linux x86_64)"),
        ("accept", "text/html,application/xhtml+xml"),
        ("accept-language", "en-US,en;q=0.9"),
        ("cookie", "session=abc123; theme=dark"),
        ("x-canary", "no"),
        ("x-version", "2"),
        ("x-group", "alpha-7"),
        ("x-tenant", "acme"),
        ("x-user", "12345-guest"),
    ] {
        h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
    }
    h
}

fn shared() -> Shared {
    let s = Shared::new(&UpstreamSettings::default(), None, None);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(s.apply(spec(20))).unwrap();
    s
}

fn routing(c: &mut Criterion) {
    let s = shared();
    let table: Arc<RouteTable> = s.table();
    let headers = request_headers();
    let uri: Uri = "/cart/items?id=7".parse().unwrap();
    c.bench_function(
        "routing decision: 5 header rules, 10 headers, none matching",
        |b| b.iter(|| black_box(router::route(&table, &uri, black_box(&headers)).unwrap().1)),
    );
    let route = table.route("app").unwrap().clone();
    let no_headers = HeaderMap::new();
    c.bench_function("exact split counter, 2 threads (time per decision)", |b| {
        b.iter_custom(|iters| {
            let per_thread = iters / 2 + 1;
            let started = Instant::now();
            std::thread::scope(|scope| {
                for _ in 0..2 {
                    let (route, headers) = (&route, &no_headers);
                    scope.spawn(move || {
                        for _ in 0..per_thread {
                            black_box(router::decide(route, None, headers));
                        }
                    });
                }
            });
            started
                .elapsed()
                .mul_f64(iters as f64 / (2 * per_thread) as f64)
        })
    });
    c.bench_function("sticky hash (xxh3, 36-byte key)", |b| {
        let salt = sluice_proxy::sticky_salt("sticky", "v2");
        let key = b"3f2b8c1e-9d4a-4b6f-8e2a-7c5d1f0a9b3e";
        b.iter(|| {
            black_box(sluice_proxy::sticky_bucket(
                black_box(&salt),
                black_box(key),
            ))
        })
    });
}

fn table_swap(c: &mut Criterion) {
    let s = shared();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut weight = 0;
    c.bench_function(
        "table swap: weight change (build, validate, publish)",
        |b| {
            b.iter(|| {
                weight = (weight + 1) % 100;
                black_box(rt.block_on(s.set_weight("app", weight, None)).unwrap())
            })
        },
    );
    let built = s.table();
    let swap = arc_swap::ArcSwap::new(built.clone());
    c.bench_function("table swap: publishing a built table", |b| {
        b.iter(|| swap.store(black_box(built.clone())))
    });
}

/// A table of `n` routes as a big installation has them: half by host (`svc{i}.example.com`,
/// each with its own path prefix), a quarter by `*.` suffix, the rest by path prefix alone.
fn scale_spec(n: usize) -> TableSpec {
    let mut spec = String::from(
        "backends:\n  - {name: v1, endpoints: [\"127.0.0.1:9001\"]}\n  - {name: v2, endpoints: [\"127.0.0.1:9002\"]}\nroutes:\n",
    );
    for i in 0..n {
        let line = match i % 4 {
            0 | 1 => format!(
                "  - {{name: r{i}, hosts: [svc{i}.example.com], path_prefix: /api/{i}, stable: v1, canary: v2, weight: 20}}\n"
            ),
            2 => format!(
                "  - {{name: r{i}, hosts: [\"*.zone{i}.example.org\"], stable: v1, canary: v2, weight: 20}}\n"
            ),
            _ => format!(
                "  - {{name: r{i}, path_prefix: /path/{i}/, stable: v1, canary: v2, weight: 20}}\n"
            ),
        };
        spec.push_str(&line);
    }
    sluice_proxy::config::parse_yaml(&spec).unwrap()
}

/// The routing decision and a weight change (a whole table built and swapped) with 1, 100
/// and 10 000 routes.
fn scale(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for n in [1usize, 100, 10_000] {
        let s = Shared::new(&UpstreamSettings::default(), None, None);
        rt.block_on(s.apply(scale_spec(n))).unwrap();
        let table = s.table();
        // a request for a route in the middle of the table, and one no route takes but the
        // path-prefix routes
        let i = (n / 2) & !3;
        let mut headers = request_headers();
        headers.insert(
            http::header::HOST,
            HeaderValue::from_str(&format!("svc{i}.example.com")).unwrap(),
        );
        let uri: Uri = format!("/api/{i}/items").parse().unwrap();
        assert_eq!(
            router::route(&table, &uri, &headers).map(|(r, _)| r.name.clone()),
            Some(format!("r{i}"))
        );
        c.bench_function(&format!("routing decision, {n} routes"), |b| {
            b.iter(|| black_box(router::route(&table, &uri, black_box(&headers)).unwrap().1))
        });
        let mut weight = 0;
        let name = format!("r{}", n - 1);
        c.bench_function(&format!("table swap: weight change, {n} routes"), |b| {
            b.iter(|| {
                weight = (weight + 1) % 100;
                black_box(rt.block_on(s.set_weight(&name, weight, None)).unwrap())
            })
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = routing, table_swap, scale
}
criterion_main!(benches);
