//! The admin API and metrics of a running proxy: bad tables refused with the field named while
//! traffic keeps flowing, the token guarding writes, and `/metrics` as Prometheus reads it.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sluice_loadtest::LoadConfig;
use sluice_tests::{Client, Proxy, proxy_exit, two_backends};

fn good_table(v1: &str, v2: &str) -> serde_json::Value {
    serde_json::json!({
        "backends": [
            {"name": "v1", "endpoints": [v1]},
            {"name": "v2", "endpoints": [v2]}
        ],
        "routes": [
            {"name": "app", "stable": "v1", "canary": "v2", "weight": 50, "debug_headers": true}
        ]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tables_get_400_naming_the_field_and_traffic_keeps_the_old_table() {
    let (v1, v2, backends) = two_backends();
    let proxy = Proxy::start(&format!(
        "{backends}routes:\n  - {{name: app, stable: v1, canary: v2, weight: 50, debug_headers: true}}\n"
    ));
    let client = Client::new();
    let before = client
        .get(proxy.admin, "/routes", &[])
        .await
        .unwrap()
        .json();

    // a request loop runs through every refusal
    let stop = Arc::new(AtomicBool::new(false));
    let addr = proxy.addr;
    let traffic = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let client = Client::new();
            let (mut ok, mut bad) = (0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                match client.get(addr, "/", &[]).await {
                    Ok(a) if a.status == 200 && a.header("x-sluice-generation") == Some("1") => {
                        ok += 1
                    }
                    _ => bad += 1,
                }
            }
            (ok, bad)
        })
    };

    let good = good_table(&v1.addr.to_string(), &v2.addr.to_string());
    let variant = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut t = good.clone();
        f(&mut t);
        t.to_string()
    };
    let cases: Vec<(String, &str)> = vec![
        (
            variant(&|t| t["routes"][0]["wieght"] = 3.into()),
            "routes[0].wieght: unknown field",
        ),
        (
            variant(&|t| t["routes"][0]["weight"] = 101.into()),
            "routes[0].weight: 101 exceeds total 100",
        ),
        (
            variant(&|t| t["routes"][0]["weight"] = "half".into()),
            "routes[0].weight: invalid type",
        ),
        (
            variant(&|t| t["routes"][0]["total"] = 20_000.into()),
            "routes[0].total",
        ),
        (
            variant(&|t| t["backends"][1]["endpoints"] = serde_json::json!([])),
            "backends[1].endpoints: must list",
        ),
        (
            variant(&|t| t["backends"][0]["endpoints"][0] = "nowhere".into()),
            "backends[0].endpoints[0]",
        ),
        (
            variant(&|t| {
                t["routes"][0]["header_rules"] =
                    serde_json::json!([{"name": "x", "match": {"regex": "(["}, "backend": "v2"}])
            }),
            "routes[0].header_rules[0].match.regex: invalid regex",
        ),
        (
            variant(&|t| {
                let r = t["routes"][0].clone();
                t["routes"].as_array_mut().unwrap().push(r);
            }),
            "routes[1].name: duplicate route name",
        ),
        (
            variant(&|t| t["routes"][0]["canary"] = "v9".into()),
            "routes[0].canary: unknown backend",
        ),
        (
            variant(&|t| t["routes"][0]["split"] = serde_json::json!({"mode": "sticky"})),
            "routes[0].split.mode: sticky mode needs",
        ),
        (
            variant(&|t| t["routes"][0]["path_prefix"] = "api".into()),
            "routes[0].path_prefix",
        ),
        (
            variant(&|t| t["backends"][0]["name"] = "v2".into()),
            "backends[1].name: duplicate backend name",
        ),
        (
            variant(&|t| t["routes"][0]["generation"] = 0.into()),
            "routes[0].generation: 0 is older",
        ),
        ("{\"routes\": [".to_owned(), "not valid JSON"),
    ];
    for (body, want) in &cases {
        let a = client
            .put(proxy.admin, "/routes", body.clone(), None)
            .await
            .unwrap();
        assert_eq!(a.status, 400, "{body}");
        let msg = a.json()["error"].as_str().unwrap().to_owned();
        assert!(msg.starts_with(want), "want {want:?}, got {msg:?}");
        let now = client
            .get(proxy.admin, "/routes", &[])
            .await
            .unwrap()
            .json();
        assert_eq!(now, before, "a refused table changed the running one");
    }
    // weight-only updates are validated the same way
    for (path, body, status) in [
        ("/routes/app/weight", r#"{"weight": 101}"#, 400),
        ("/routes/app/weight", r#"{"weight": 5, "extra": 1}"#, 400),
        ("/routes/nope/weight", r#"{"weight": 5}"#, 404),
    ] {
        let a = client.put(proxy.admin, path, body, None).await.unwrap();
        assert_eq!(a.status, status, "{path} {body}: {}", a.text());
    }
    stop.store(true, Ordering::Relaxed);
    let (ok, bad) = traffic.await.unwrap();
    assert_eq!(
        bad, 0,
        "{bad} requests failed or were served by another generation"
    );
    assert!(ok > 0);
    assert_eq!(
        client
            .get(proxy.admin, "/routes", &[])
            .await
            .unwrap()
            .json(),
        before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_need_the_token_when_one_is_configured() {
    let (v1, v2, backends) = two_backends();
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret\n").unwrap();
    let proxy = Proxy::start(&format!(
        "admin:\n  listen: 127.0.0.1:0\n  token_file: {}\n{backends}routes:\n  - {{name: app, stable: v1, canary: v2, weight: 50}}\n",
        token_file.display()
    ));
    let client = Client::new();
    let table = good_table(&v1.addr.to_string(), &v2.addr.to_string()).to_string();
    for token in [None, Some("wrong"), Some("s3cret2")] {
        let a = client
            .put(proxy.admin, "/routes", table.clone(), token)
            .await
            .unwrap();
        assert_eq!(a.status, 401);
        let a = client
            .put(proxy.admin, "/routes/app/weight", r#"{"weight": 1}"#, token)
            .await
            .unwrap();
        assert_eq!(a.status, 401);
    }
    let routes = client
        .get(proxy.admin, "/routes", &[])
        .await
        .unwrap()
        .json();
    assert_eq!(routes["routes"][0]["weight"], 50);
    assert_eq!(routes["routes"][0]["generation"], 1);
    let a = client
        .put(
            proxy.admin,
            "/routes/app/weight",
            r#"{"weight": 1}"#,
            Some("s3cret"),
        )
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.json()["weight"], 1);
}

#[test]
fn a_bad_config_file_exits_2_naming_the_field() {
    let (code, err) = proxy_exit(
        "backends:\n  - {name: v1, endpoints: [\"127.0.0.1:1\"]}\nroutes:\n  - {name: app, stable: v1, weight: 10}\n",
    );
    assert_eq!(code, Some(2));
    assert!(
        err.contains("routes[0].weight: 10 needs a canary backend"),
        "{err}"
    );
}

/// The value of one sample line in Prometheus text.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_pass_promtool_have_buckets_and_count_every_request() {
    let (_v1, _v2, backends) = two_backends();
    let proxy = Proxy::start(&format!(
        "{backends}routes:\n  - {{name: app, stable: v1, canary: v2, weight: 20}}\n"
    ));
    let mut load = LoadConfig::new(format!("http://{}/", proxy.addr).parse().unwrap(), 4);
    load.requests = Some(1_000);
    let report = sluice_loadtest::run(load).await.unwrap();
    assert_eq!(report.responses, 1_000);
    let text = Client::new()
        .get(proxy.admin, "/metrics", &[])
        .await
        .unwrap()
        .text();

    let promtool = which("promtool");
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let requests = |b: &str| {
        sample(
            &text,
            &format!("sluice_requests_total{{route=\"app\",backend=\"{b}\",code_class=\"2xx\"}}"),
        )
    };
    assert_eq!(requests("v1"), Some(800.0), "{text}");
    assert_eq!(requests("v2"), Some(200.0));
    assert!(
        text.contains("sluice_request_duration_seconds_bucket{"),
        "{text}"
    );
    assert!(
        !text.contains("quantile="),
        "durations must be a histogram, not a summary"
    );
    let count = |b: &str| {
        sample(
            &text,
            &format!("sluice_request_duration_seconds_count{{route=\"app\",backend=\"{b}\"}}"),
        )
    };
    assert_eq!(count("v1"), Some(800.0));
    assert_eq!(count("v2"), Some(200.0));
    let inf = sample(
        &text,
        "sluice_request_duration_seconds_bucket{route=\"app\",backend=\"v2\",le=\"+Inf\"}",
    );
    assert_eq!(inf, Some(200.0));
    assert_eq!(
        sample(&text, "sluice_route_weight{route=\"app\",backend=\"v2\"}"),
        Some(20.0)
    );
    assert_eq!(
        sample(&text, "sluice_route_weight{route=\"app\",backend=\"v1\"}"),
        Some(80.0)
    );
    assert_eq!(
        sample(&text, "sluice_route_generation{route=\"app\"}"),
        Some(1.0)
    );
    assert!(sample(&text, "sluice_open_connections").is_some());
    assert_eq!(
        sample(&text, "sluice_table_updates_total{result=\"ok\"}"),
        Some(1.0)
    );
    assert!(text.contains("sluice_upstream_errors_total{"));

    // /stats agrees with the traffic
    let stats = Client::new()
        .get(proxy.admin, "/stats", &[])
        .await
        .unwrap()
        .json();
    let backends = stats["routes"][0]["backends"].as_array().unwrap();
    let total = |name: &str| {
        backends.iter().find(|b| b["name"] == name).unwrap()["total"]["requests"].as_u64()
    };
    assert_eq!(total("v1"), Some(800));
    assert_eq!(total("v2"), Some(200));
    assert!(
        backends[0]["windows"]["10s"]["latency_seconds"]["p99"]
            .as_f64()
            .unwrap()
            > 0.0
    );
}

fn which(tool: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .unwrap();
    let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        !path.is_empty(),
        "{tool} is not installed: run scripts/test.sh, which installs it"
    );
    path
}
