//! The proxy's traffic split, measured by real traffic: exact and sticky weights, rule
//! precedence, and weight changes under load.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sluice_loadtest::LoadConfig;
use sluice_tests::{Backend, Client, Proxy, two_backends};

fn url(proxy: &Proxy) -> http::Uri {
    format!("http://{}/", proxy.addr).parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_split_gives_exact_tallies_over_ten_totals_from_eight_connections() {
    let (_v1, _v2, backends) = two_backends();
    for (weight, total) in [(20u64, 100u64), (1, 10_000)] {
        let proxy = Proxy::start(&format!(
            "{backends}routes:\n  - {{name: app, stable: v1, canary: v2, weight: {weight}, total: {total}}}\n"
        ));
        let mut load = LoadConfig::new(url(&proxy), 8);
        load.requests = Some(10 * total);
        let report = sluice_loadtest::run(load).await.unwrap();
        assert_eq!(report.transport_errors, 0);
        assert_eq!(report.by_status.get(&200), Some(&(10 * total)));
        assert_eq!(
            report.by_backend.get("v2"),
            Some(&(10 * weight)),
            "{weight}/{total}"
        );
        assert_eq!(
            report.by_backend.get("v1"),
            Some(&(10 * (total - weight))),
            "{weight}/{total}"
        );
    }
}

/// Sends one request per key and returns which backend answered each.
async fn backend_per_key(proxy: &Proxy, keys: usize) -> Vec<String> {
    let client = Client::new();
    let addr = proxy.addr;
    let mut out = vec![String::new(); keys];
    for chunk_start in (0..keys).step_by(500) {
        let mut tasks = Vec::new();
        for i in chunk_start..(chunk_start + 500).min(keys) {
            let client = client.clone();
            tasks.push(tokio::spawn(async move {
                let key = format!("user-{i}");
                let a = client.get(addr, "/", &[("x-user", &key)]).await.unwrap();
                assert_eq!(a.status, 200);
                (i, a.text().trim().to_owned())
            }));
        }
        for t in tasks {
            let (i, b) = t.await.unwrap();
            out[i] = b;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_split_is_stable_across_proxies_and_only_grows_the_canary() {
    let (_v1, _v2, backends) = two_backends();
    let config = format!(
        "{backends}routes:\n  - {{name: app, stable: v1, canary: v2, weight: 30, split: {{mode: sticky, header: x-user}}}}\n"
    );
    let first = Proxy::start(&config);
    let second = Proxy::start(&config);
    const KEYS: usize = 10_000;
    let at_30 = backend_per_key(&first, KEYS).await;
    let canary = at_30.iter().filter(|b| *b == "v2").count();
    assert!(
        (2850..=3150).contains(&canary),
        "{canary} of {KEYS} keys on the canary at weight 30"
    );
    let elsewhere = backend_per_key(&second, KEYS).await;
    let differ = at_30.iter().zip(&elsewhere).filter(|(a, b)| a != b).count();
    assert_eq!(
        differ, 0,
        "a second proxy answered differently for {differ} keys"
    );

    let a = Client::new()
        .put(first.admin, "/routes/app/weight", r#"{"weight": 60}"#, None)
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{}", a.text());
    let at_60 = backend_per_key(&first, KEYS).await;
    let moved_back = at_30
        .iter()
        .zip(&at_60)
        .filter(|(before, after)| *before == "v2" && *after == "v1")
        .count();
    assert_eq!(
        moved_back, 0,
        "raising the weight moved keys off the canary"
    );
    let canary_60 = at_60.iter().filter(|b| *b == "v2").count();
    assert!((5850..=6150).contains(&canary_60), "{canary_60}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_take_precedence_in_order_over_real_traffic() {
    let (v1, v2, v3) = (
        Backend::start("v1"),
        Backend::start("v2"),
        Backend::start("v3"),
    );
    let config = |weight: u32| {
        format!(
            r#"backends:
  - {{name: v1, endpoints: ["{}"]}}
  - {{name: v2, endpoints: ["{}"]}}
  - {{name: v3, endpoints: ["{}"]}}
routes:
  - name: app
    hosts: [app.test, preview.test, beta.test]
    stable: v1
    canary: v2
    weight: {weight}
    header_rules:
      - {{name: x-canary, match: always-never}}
      - {{name: x-version, match: {{exact: "3"}}, backend: v3}}
      - {{name: x-group, match: {{prefix: beta-}}, backend: v2}}
      - {{name: x-user, match: {{regex: "^[0-9]+-internal$"}}, backend: v3}}
    cookie_rules:
      - {{name: canary, match: always-never}}
      - {{name: tier, match: {{exact: gold}}, backend: v3}}
    host_rules:
      - {{host: preview.test, backend: v2}}
      - {{host: beta.test, backend: v3}}
"#,
            v1.addr, v2.addr, v3.addr
        )
    };
    // (weight, host, headers, expected backend)
    type Case<'a> = (u32, &'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        (0, "app.test", &[], "v1"),
        (100, "app.test", &[], "v2"),
        (0, "app.test", &[("x-canary", "always")], "v2"),
        (100, "app.test", &[("x-canary", "never")], "v1"),
        (0, "app.test", &[("x-canary", "maybe")], "v1"),
        (0, "app.test", &[("x-version", "3")], "v3"),
        (0, "app.test", &[("x-version", "30")], "v1"),
        (0, "app.test", &[("x-group", "beta-a")], "v2"),
        (0, "app.test", &[("x-group", "a-beta-")], "v1"),
        (0, "app.test", &[("x-user", "7-internal")], "v3"),
        (0, "app.test", &[("x-user", "7-internal-no")], "v1"),
        (
            0,
            "app.test",
            &[("x-version", "3"), ("x-canary", "never")],
            "v1",
        ),
        (
            0,
            "app.test",
            &[("x-group", "beta-a"), ("x-version", "3")],
            "v3",
        ),
        (
            0,
            "app.test",
            &[("x-canary", "never"), ("cookie", "canary=always")],
            "v1",
        ),
        (0, "app.test", &[("cookie", "canary=always")], "v2"),
        (100, "app.test", &[("cookie", "x=1; canary=never")], "v1"),
        (0, "app.test", &[("cookie", "tier=gold")], "v3"),
        (0, "preview.test", &[], "v2"),
        (0, "preview.test", &[("cookie", "canary=never")], "v1"),
        (100, "beta.test", &[], "v3"),
        (0, "beta.test", &[("x-canary", "always")], "v2"),
        (0, "beta.test:8080", &[("cookie", "tier=silver")], "v3"),
    ];
    let client = Client::new();
    for weight in [0, 100] {
        let proxy = Proxy::start(&config(weight));
        for (w, host, headers, want) in cases.iter().filter(|c| c.0 == weight) {
            let mut hs: Vec<(&str, &str)> = headers.to_vec();
            hs.push(("host", host));
            let a = client.get(proxy.addr, "/", &hs).await.unwrap();
            assert_eq!(a.status, 200);
            assert_eq!(
                a.text().trim(),
                *want,
                "weight {w}, host {host}, {headers:?}"
            );
        }
        // no route takes an unknown host
        let a = client
            .get(proxy.addr, "/", &[("host", "other.test")])
            .await
            .unwrap();
        assert_eq!(a.status, 404);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_changing_every_10ms_under_load_lose_nothing_and_stay_exact() {
    let (_v1, _v2, backends) = two_backends();
    let proxy = Proxy::start(&format!(
        "{backends}routes:\n  - {{name: app, stable: v1, canary: v2, weight: 20, debug_headers: true}}\n"
    ));
    let admin = proxy.admin;
    let done = Arc::new(AtomicBool::new(false));
    let changer = {
        let done = done.clone();
        tokio::spawn(async move {
            let client = Client::new();
            let mut weight_of = BTreeMap::from([(1u64, 20u64)]);
            let weights = [0u64, 10, 25, 50, 75, 90, 100, 33, 1, 99];
            let mut i = 0;
            while !done.load(Ordering::Relaxed) {
                let w = weights[i % weights.len()];
                i += 1;
                let a = client
                    .put(
                        admin,
                        "/routes/app/weight",
                        format!("{{\"weight\": {w}}}"),
                        None,
                    )
                    .await
                    .unwrap();
                assert_eq!(a.status, 200, "{}", a.text());
                let g = a.json()["generation"].as_u64().unwrap();
                weight_of.insert(g, w);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            weight_of
        })
    };
    let mut load = LoadConfig::new(url(&proxy), 8);
    load.requests = Some(24_000);
    load.duration = Some(Duration::from_secs(120));
    let report = sluice_loadtest::run(load).await.unwrap();
    done.store(true, Ordering::Relaxed);
    let weight_of = changer.await.unwrap();

    assert_eq!(report.transport_errors, 0);
    assert_eq!(
        report.by_status.get(&200),
        Some(&24_000),
        "{:?}",
        report.by_status
    );
    assert!(
        report.by_generation.len() >= 10,
        "only {} generations served: the weights did not change under load",
        report.by_generation.len()
    );
    for (generation, tally) in &report.by_generation {
        let w = weight_of[generation];
        let n: u64 = tally.values().sum();
        let canary = tally.get("v2").copied().unwrap_or(0);
        let ideal = n as f64 * w as f64 / 100.0;
        assert!(
            (canary as f64 - ideal).abs() <= 1.0,
            "generation {generation} at weight {w}: {canary} of {n} on the canary"
        );
    }
}
