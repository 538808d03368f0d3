//! What a hostile or careless client can no longer do: blame the backend for its own broken
//! body, exhaust the admin or control listeners, confuse the host, hold a step by polling,
//! forge another proxy's reports, smuggle a duplicate key, or have an abort reported as done
//! that was not carried out. One test per defect; each fails on the code before its fix.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use sluice_tests::world::{World, WorldSpec, block, rollout, signal};
use sluice_tests::{Backend, Client, Proxy};

/// Writes `bytes` on a fresh connection and reads until the peer closes or `wait` passes.
fn exchange(addr: SocketAddr, bytes: &[u8], wait: Duration) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(wait)).unwrap();
    s.write_all(bytes).unwrap();
    read_all(&mut s)
}

fn read_all(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn status_of(answer: &str) -> Option<u16> {
    answer.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// The JSON object in a response body, whatever its framing (chunk sizes around it).
fn json_in(body: &str) -> serde_json::Value {
    let (start, end) = (body.find('{'), body.rfind('}'));
    let text = start
        .zip(end)
        .map(|(a, b)| &body[a..=b])
        .unwrap_or_default();
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// A GET that must be answered within five seconds.
fn get_within(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> sluice_tests::Answer {
    block(async {
        tokio::time::timeout(
            Duration::from_secs(5),
            Client::new().get(addr, path, headers),
        )
        .await
    })
    .unwrap_or_else(|_| panic!("GET {path} on {addr}: no answer within 5 s"))
    .unwrap()
}

fn get_json(addr: SocketAddr, path: &str) -> serde_json::Value {
    block(Client::new().get(addr, path, &[])).unwrap().json()
}

#[test]
fn a_clients_broken_or_slow_body_is_its_own_error_never_the_backends() {
    let (a, b) = (Backend::start("v1a"), Backend::start("v1b"));
    let proxy = Proxy::start(&format!(
        "upstream: {{request_timeout: 1s, eject_after_failures: 3}}
backends:
  - {{name: v1, endpoints: [\"{}\", \"{}\"]}}
routes:
  - {{name: app, stable: v1}}
",
        a.addr, b.addr
    ));
    let wait = Duration::from_secs(5);
    // a malformed chunk line, after the head went upstream
    for _ in 0..12 {
        let answer = exchange(
            proxy.addr,
            b"POST /echo HTTP/1.1\r\nhost: app\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n",
            wait,
        );
        assert_eq!(status_of(&answer), Some(400), "{answer}");
    }
    // an upload abandoned midway: the client closes with its body half sent
    for _ in 0..12 {
        let mut s = TcpStream::connect(proxy.addr).unwrap();
        s.write_all(b"POST /echo HTTP/1.1\r\nhost: app\r\ncontent-length: 1000\r\n\r\nsome")
            .unwrap();
        std::thread::sleep(Duration::from_millis(30));
        drop(s);
    }
    // an upload trickled past the request timeout: 408, the client's
    let mut s = TcpStream::connect(proxy.addr).unwrap();
    s.set_read_timeout(Some(wait)).unwrap();
    s.write_all(b"POST /echo HTTP/1.1\r\nhost: app\r\ncontent-length: 100\r\n\r\n0123456789")
        .unwrap();
    let answer = read_all(&mut s);
    assert_eq!(status_of(&answer), Some(408), "{answer}");

    // every endpoint still serves: nothing was ejected
    let client = Client::new();
    let mut names = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let a = block(client.get(proxy.addr, "/echo", &[("host", "app")])).unwrap();
        assert_eq!(a.status, 200, "{}", a.text());
        names.insert(a.json()["name"].as_str().unwrap().to_owned());
    }
    assert_eq!(names.len(), 2, "both endpoints serve: {names:?}");
    // counted as the client's, not as the backend's 5xx or upstream errors
    let deadline = Instant::now() + Duration::from_secs(5);
    let total = loop {
        let stats = get_json(proxy.admin, "/stats");
        let total = stats["routes"][0]["backends"][0]["total"].clone();
        if total["client_errors"]["body_broken"] == 24 || Instant::now() > deadline {
            break total;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(total["by_class"]["5xx"], 0, "{total}");
    assert_eq!(total["requests"], 40, "{total}");
    assert_eq!(total["errors"]["closed"], 0, "{total}");
    assert_eq!(total["errors"]["timeout"], 0, "{total}");
    assert_eq!(total["client_errors"]["body_broken"], 24, "{total}");
    assert_eq!(total["client_errors"]["body_timeout"], 1, "{total}");
    let m = block(client.get(proxy.admin, "/metrics", &[]))
        .unwrap()
        .text();
    assert!(
        m.contains(
            "sluice_client_errors_total{route=\"app\",backend=\"v1\",kind=\"body_broken\"} 24"
        ),
        "{m}"
    );
    assert!(
        !m.contains("code_class=\"5xx\"} 1") && !m.contains("kind=\"closed\"} 1"),
        "{m}"
    );
}

#[test]
fn the_admin_listener_checks_the_token_before_the_body_and_bounds_what_it_holds() {
    let backend = Backend::start("v1");
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "admin-secret").unwrap();
    let proxy = Proxy::start(&format!(
        "admin:
  listen: 127.0.0.1:0
  token_file: {}
  max_connections: 8
  idle_timeout: 1s
  max_body_bytes: 4096
backends:
  - {{name: v1, endpoints: [\"{}\"]}}
routes:
  - {{name: app, stable: v1}}
",
        token.display(),
        backend.addr
    ));
    // a 2 MB write without the token is refused from its head: no byte of body is sent
    let answer = exchange(
        proxy.admin,
        b"PUT /routes HTTP/1.1\r\nhost: admin\r\ncontent-length: 2000000\r\n\r\n",
        Duration::from_secs(3),
    );
    assert_eq!(status_of(&answer), Some(401), "{answer:?}");
    // with the token, a body over the cap is 413 and the table is kept
    let big = format!("{{\"weight\": 1, \"pad\": \"{}\"}}", "x".repeat(8000));
    let a = block(Client::new().put(proxy.admin, "/routes/app/weight", big, Some("admin-secret")))
        .unwrap();
    assert_eq!(a.status, 413, "{}", a.text());
    // idle and half-sent connections are closed at the idle deadline
    let mut idle = TcpStream::connect(proxy.admin).unwrap();
    let mut half = TcpStream::connect(proxy.admin).unwrap();
    half.write_all(b"GET /stats HTTP/1.1\r\nhost: a").unwrap();
    let t0 = Instant::now();
    for s in [&mut idle, &mut half] {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut b = [0u8; 64];
        let n = s.read(&mut b).unwrap_or(0);
        assert_eq!(n, 0, "closed without an answer");
    }
    assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
    // many more idle connections than the cap: the admin API and the traffic still serve
    let _held: Vec<TcpStream> = (0..40)
        .map(|_| TcpStream::connect(proxy.admin).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let writer = Client::new();
    let put = writer.put(
        proxy.admin,
        "/routes/app/weight",
        r#"{"weight": 0}"#,
        Some("admin-secret"),
    );
    let a = block(async { tokio::time::timeout(Duration::from_secs(5), put).await })
        .expect("an authenticated write is answered within 5 s")
        .unwrap();
    assert_eq!(a.status, 200, "{}", a.text());
    let a = get_within(proxy.admin, "/healthz", &[]);
    assert_eq!(a.status, 200);
    let a = get_within(proxy.addr, "/", &[("host", "app")]);
    assert_eq!(a.status, 200);
}

#[test]
fn host_confusion_is_refused_and_the_upstream_gets_the_host_it_was_routed_by() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let proxy = Proxy::start(&format!(
        "backends:
  - {{name: a, endpoints: [\"{}\"]}}
  - {{name: b, endpoints: [\"{}\"]}}
routes:
  - {{name: a, hosts: [a.test], stable: a}}
  - {{name: b, hosts: [b.test], stable: b}}
",
        a.addr, b.addr
    ));
    let wait = Duration::from_secs(5);
    // absolute form: routed by the target, and the upstream told that host, not `Host`
    let answer = exchange(
        proxy.addr,
        b"GET http://a.test/echo HTTP/1.1\r\nhost: b.test\r\nconnection: close\r\n\r\n",
        wait,
    );
    assert_eq!(status_of(&answer), Some(200), "{answer}");
    let body = &answer[answer.find("\r\n\r\n").unwrap() + 4..];
    let echo = json_in(body);
    assert_eq!(echo["name"], "a");
    assert_eq!(
        echo["headers"]["host"],
        serde_json::json!(["a.test"]),
        "{echo}"
    );
    for (what, request) in [
        (
            "two Host headers",
            &b"GET /echo HTTP/1.1\r\nhost: a.test\r\nhost: b.test\r\n\r\n"[..],
        ),
        ("no Host on HTTP/1.1", b"GET /echo HTTP/1.1\r\n\r\n"),
        (
            "Connection naming Host",
            b"GET /echo HTTP/1.1\r\nhost: a.test\r\nconnection: host\r\n\r\n",
        ),
    ] {
        let answer = exchange(proxy.addr, request, wait);
        assert_eq!(status_of(&answer), Some(400), "{what}: {answer}");
    }
    // HTTP/2: `:authority` and `host` must agree
    block(async {
        let mut h2 = sluice_tests::http_client::h2c(proxy.addr).await;
        let req = http::Request::builder()
            .uri("http://a.test/echo")
            .header("host", "b.test")
            .body(http_body_util::Empty::new())
            .unwrap();
        let resp = h2.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 400);
        let req = http::Request::builder()
            .uri("http://a.test/echo")
            .body(http_body_util::Empty::new())
            .unwrap();
        let resp = h2.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
    });
}

#[test]
fn evicting_idle_connections_never_drops_a_request_already_sent() {
    let backend = Backend::start("v1");
    let proxy = Proxy::start(&format!(
        "downstream: {{max_connections: 16, on_max_connections: evict-idle}}
backends:
  - {{name: v1, endpoints: [\"{}\"]}}
routes:
  - {{name: app, stable: v1}}
",
        backend.addr
    ));
    for round in 0..3 {
        // a burst of idle connections fills the cap, and stays idle long enough to be evicted
        let _idle: Vec<TcpStream> = (0..16)
            .map(|_| TcpStream::connect(proxy.addr).unwrap())
            .collect();
        std::thread::sleep(Duration::from_millis(sluice_proxy::EVICT_AFTER_MS + 150));
        // then connections whose request is in the socket before the proxy reads it
        let mut sent: Vec<TcpStream> = (0..40)
            .map(|_| {
                let mut s = TcpStream::connect(proxy.addr).unwrap();
                s.write_all(b"GET / HTTP/1.1\r\nhost: app\r\nconnection: close\r\n\r\n")
                    .unwrap();
                s
            })
            .collect();
        for (i, s) in sent.iter_mut().enumerate() {
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let answer = read_all(s);
            assert_eq!(
                status_of(&answer),
                Some(200),
                "round {round}, connection {i}: {answer:?}"
            );
        }
    }
}

#[test]
fn duplicate_json_keys_are_refused_with_their_path_and_change_nothing() {
    let (_a, _b, backends) = sluice_tests::two_backends();
    let proxy = Proxy::start(&format!(
        "{backends}routes:\n  - {{name: app, stable: v1, canary: v2, weight: 20}}\n"
    ));
    let client = Client::new();
    let a = block(client.put(
        proxy.admin,
        "/routes/app/weight",
        r#"{"weight": 20, "weight": 90}"#,
        None,
    ))
    .unwrap();
    assert_eq!(a.status, 400, "{}", a.text());
    assert_eq!(a.json()["fields"][0]["path"], "weight", "{}", a.text());
    let routes = get_json(proxy.admin, "/routes");
    assert_eq!(routes["routes"][0]["weight"], 20, "{routes}");
}

fn at_20_paused(v: &sluice_controller::control::service::RolloutView) -> bool {
    v.status
        .canary
        .weights
        .as_ref()
        .is_some_and(|w| w.verified && w.canary.as_ref().is_some_and(|c| c.weight == 20))
        && !v.status.pause_conditions.is_empty()
}

fn canary_paused_at_20() -> String {
    rollout(
        "  strategy:
    canary:
      steps:
      - setWeight: 20
      - pause: {}
      - setWeight: 100
",
    )
}

/// Writes `TOKEN` files for two proxies and a tokens file naming them, in `dir`.
fn proxy_tokens(dir: &std::path::Path) -> std::path::PathBuf {
    let file = dir.join("proxy-tokens");
    std::fs::write(
        &file,
        "# one token a proxy\nproxy-1 p1-secret-token\nproxy-2 p2-secret-token\n",
    )
    .unwrap();
    file
}

#[test]
fn proxies_hold_their_own_credential_that_polls_and_reports_only_as_themselves() {
    let tokens_dir = tempfile::tempdir().unwrap();
    let tokens = proxy_tokens(tokens_dir.path());
    std::fs::write(tokens_dir.path().join("p1"), "p1-secret-token").unwrap();
    let extra = format!("  proxyTokensFile: {}\n", tokens.display());
    let docs = canary_paused_at_20();
    let p1_token = tokens_dir.path().join("p1").display().to_string();
    let world = World::start(WorldSpec {
        documents: &docs,
        runtime_extra: &extra,
        proxies: 1,
        token: Some("operator-secret"),
        proxy_token_files: vec![p1_token],
        ..Default::default()
    });
    // a step acknowledged by the proxy reporting with its own token
    block(world.client.set_image("chip", "chip", "chip:v2")).unwrap();
    world.wait("paused at 20 %", Duration::from_secs(20), at_20_paused);
    let api = world.controller.addr;
    let client = Client::new();
    let bearer = |t: &str| format!("Bearer {t}");
    // the proxy's own token reported it Healthy (World::start waited for that); it may poll
    // as itself, not as another, and it commands nothing
    let p1 = bearer("p1-secret-token");
    let a = block(client.get(
        api,
        "/v1/routes?proxy=proxy-1&wait=0",
        &[("authorization", &p1)],
    ))
    .unwrap();
    assert!(a.status.is_success(), "{}", a.text());
    let a = block(client.get(
        api,
        "/v1/routes?proxy=proxy-2&wait=0",
        &[("authorization", &p1)],
    ))
    .unwrap();
    assert_eq!(a.status, 403, "{}", a.text());
    // an acknowledgement in a poll names the instance and a generation that was given
    for (query, field) in [
        ("applied=1", "instance"),
        ("instance=x", "applied"),
        ("instance=x&applied=999999999", "applied"),
    ] {
        let a = block(client.get(
            api,
            &format!("/v1/routes?proxy=proxy-1&wait=0&{query}"),
            &[("authorization", &p1)],
        ))
        .unwrap();
        assert_eq!(a.status, 400, "{query}: {}", a.text());
        assert!(a.text().contains(field), "{query}: {}", a.text());
    }
    let a = block(client.send(
        http::Method::POST,
        api,
        "/v1/rollouts/chip/abort",
        &[("authorization", &p1)],
        "",
    ))
    .unwrap();
    assert_eq!(a.status, 403, "{}", a.text());
    assert!(!world.view().status.abort);
    // a forged report for another (required or not) proxy id is refused
    let forged = serde_json::json!({
        "proxy": "proxy-2", "instance": "x", "table_generation": 1,
        "applied": {}, "stats": []
    });
    let a = block(client.send(
        http::Method::POST,
        api,
        "/v1/report",
        &[("authorization", &p1), ("content-type", "application/json")],
        forged.to_string(),
    ))
    .unwrap();
    assert_eq!(a.status, 403, "{}", a.text());
    let proxies = get_json(api, "/v1/proxies");
    assert_eq!(proxies.as_array().unwrap().len(), 1, "{proxies}");
    // the operator's token commands
    let (code, out, err) = world.cli(&["abort", "chip"]);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn an_anonymous_poll_or_report_touches_no_proxy_and_reads_no_body() {
    let docs = canary_paused_at_20();
    let mut world = World::start(WorldSpec {
        documents: &docs,
        proxies: 1,
        token: Some("operator-secret"),
        ..Default::default()
    });
    let api = world.controller.addr;
    // the proxy leaves on purpose (SIGTERM: it unsubscribes)
    let pid = world.proxies[0].pid();
    signal(pid, "TERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    while get_json(api, "/v1/proxies")[0]["expected"] != false {
        assert!(Instant::now() < deadline, "the proxy never left");
        std::thread::sleep(Duration::from_millis(50));
    }
    // polls without a token renew nobody's lease
    let client = Client::new();
    for _ in 0..5 {
        let a = block(client.get(api, "/v1/routes?proxy=proxy-1&wait=0", &[])).unwrap();
        assert_eq!(a.status, 401, "{}", a.text());
    }
    let proxies = get_json(api, "/v1/proxies");
    assert_eq!(proxies[0]["expected"], false, "{proxies}");
    // reports without a token are refused from their head: no body is read
    let answer = exchange(
        api,
        b"POST /v1/report HTTP/1.1\r\nhost: c\r\ncontent-length: 2000000\r\n\r\n",
        Duration::from_secs(3),
    );
    assert_eq!(status_of(&answer), Some(401), "{answer:?}");
    // a report with the token but not of the known shape is refused, naming the field
    let bearer = "Bearer operator-secret";
    let report = serde_json::json!({
        "proxy": "proxy-9", "instance": "i", "table_generation": 1,
        "applied": {}, "stats": [{"route": "shop/chip", "revision": world.hash("v1"),
            "totals": {"by_class": [0, 1, 0, 0, 0], "errors": [0, 0, 0, 0, 0],
                "buckets": vec![0; 100_000]}, "in_flight": 0}]
    });
    let a = block(client.send(
        http::Method::POST,
        api,
        "/v1/report",
        &[
            ("authorization", bearer),
            ("content-type", "application/json"),
        ],
        report.to_string(),
    ))
    .unwrap();
    assert_eq!(a.status, 400, "{}", a.text());
    assert_eq!(
        a.json()["fields"][0]["path"],
        "stats[0].totals.buckets",
        "{}",
        a.text()
    );
    // a command body with a key twice is refused
    let a = block(client.send(
        http::Method::POST,
        api,
        "/v1/rollouts/chip/undo",
        &[
            ("authorization", bearer),
            ("content-type", "application/json"),
        ],
        r#"{"toRevision": 1, "toRevision": 2}"#,
    ))
    .unwrap();
    assert_eq!(a.status, 400, "{}", a.text());
    assert_eq!(a.json()["fields"][0]["path"], "toRevision", "{}", a.text());
    world.proxies.clear();
}

#[test]
fn an_abort_reaches_the_proxies_when_the_state_cannot_be_written_and_other_commands_fail() {
    let docs = canary_paused_at_20();
    let world = World::start(WorldSpec {
        documents: &docs,
        proxies: 1,
        ..Default::default()
    });
    block(world.client.set_image("chip", "chip", "chip:v2")).unwrap();
    world.wait("paused at 20 %", Duration::from_secs(20), at_20_paused);
    // the state directory becomes a file: every write fails, whoever runs the test
    let state = world.dir.path().join(".sluice");
    std::fs::rename(&state, world.dir.path().join("state-away")).unwrap();
    std::fs::write(&state, b"").unwrap();
    let (code, out, err) = world.cli(&["promote", "chip"]);
    assert_ne!(
        code, 0,
        "a promote that cannot be persisted fails: {out}{err}"
    );
    assert!(
        format!("{out}{err}").contains("not carried out"),
        "{out}{err}"
    );
    let (code, out, err) = world.cli(&["abort", "chip"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        format!("{out}{err}").contains("not persisted"),
        "{out}{err}"
    );
    // every proxy routes all traffic to stable
    let admin = world.proxies[0].admin;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let routes = get_json(admin, "/routes");
        if routes["routes"][0]["weight"] == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the abort never reached the proxy: {routes}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let client = Client::new();
    let stable = world.hash("v1");
    for _ in 0..20 {
        let a = block(client.get(world.proxies[0].addr, "/", &[])).unwrap();
        let backend = a.header("x-sluice-backend").unwrap_or_default();
        assert!(
            backend.ends_with(&stable),
            "{backend} is not stable {stable}"
        );
    }
    let v = world.view();
    assert!(v.status.abort);
}

#[test]
fn idle_admin_connections_past_the_descriptor_limit_never_stop_the_traffic() {
    let backend = Backend::start("v1");
    let proxy = Proxy::start_limited(
        &format!(
            "backends:\n  - {{name: v1, endpoints: [\"{}\"]}}\nroutes:\n  - {{name: app, stable: v1}}\n",
            backend.addr
        ),
        Some(256),
    );
    let _held: Vec<TcpStream> = (0..363)
        .filter_map(|_| TcpStream::connect(proxy.admin).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..5 {
        let a = get_within(proxy.addr, "/", &[("host", "app")]);
        assert_eq!(a.status, 200, "{}", a.text());
    }
    let a = get_within(proxy.admin, "/readyz", &[]);
    assert_eq!(a.status, 200);
}

#[test]
fn an_abort_gets_through_hundreds_of_idle_control_connections_at_the_descriptor_limit() {
    let docs = canary_paused_at_20();
    let world = World::start(WorldSpec {
        documents: &docs,
        proxies: 1,
        token: Some("operator-secret"),
        controller_nofile: Some(256),
        ..Default::default()
    });
    block(world.client.set_image("chip", "chip", "chip:v2")).unwrap();
    world.wait("paused at 20 %", Duration::from_secs(20), at_20_paused);
    let _held: Vec<TcpStream> = (0..300)
        .filter_map(|_| TcpStream::connect(world.controller.addr).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let (code, out, err) = world.cli(&["abort", "chip"]);
    assert_eq!(code, 0, "{out}{err}");
    // and the proxy, polling with its credential, acknowledges it
    world.wait("the abort acknowledged", Duration::from_secs(20), |v| {
        v.status.abort
            && v.status
                .canary
                .weights
                .as_ref()
                .is_some_and(|w| w.verified && w.canary.as_ref().is_none_or(|c| c.weight == 0))
    });
}

#[test]
fn a_clients_own_headers_steer_only_a_rule_that_names_them_and_never_reach_the_upstream() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let proxy = Proxy::start(&format!(
        "backends:
  - {{name: a, endpoints: [\"{}\"]}}
  - {{name: b, endpoints: [\"{}\"]}}
routes:
  - name: chip
    stable: a
    canary: b
    weight: 0
    header_rules: [{{name: x-sluice-preview, match: always-never}}]
",
        a.addr, b.addr
    ));
    let echo = |headers: &[(&str, &str)]| {
        let answer = get_within(proxy.addr, "/echo", headers);
        assert_eq!(answer.status, 200, "{}", answer.text());
        answer.json()
    };
    // a header no rule names changes nothing, and none of the proxy's own gets through
    let plain = echo(&[
        ("x-sluice-backend", "b"),
        ("x-sluice-generation", "999"),
        ("x-sluice-canary", "always"),
        ("x-canary", "always"),
    ]);
    assert_eq!(plain["name"], "a", "{plain}");
    let seen = plain["headers"].as_object().unwrap();
    assert!(seen.keys().all(|k| !k.starts_with("x-sluice-")), "{seen:?}");
    assert_eq!(plain["headers"]["x-canary"], serde_json::json!(["always"]));
    // the header the rule names steers, and is still not forwarded
    let steered = echo(&[("x-sluice-preview", "always")]);
    assert_eq!(steered["name"], "b", "{steered}");
    assert!(
        steered["headers"].get("x-sluice-preview").is_none(),
        "{steered}"
    );
    // answers say who served only when the route asks for it
    let answer = get_within(proxy.addr, "/", &[("x-sluice-preview", "never")]);
    assert!(answer.header("x-sluice-backend").is_none());
}

/// Every classic request-smuggling form, each followed on the same connection by a request
/// for `/smuggled`: the proxy answers the form with a 4xx or closes the connection, the
/// backend never sees `/smuggled` nor a framing header it would read differently, and an
/// ordinary client is served after each.
#[test]
fn every_smuggling_form_is_refused_and_nothing_smuggled_reaches_the_backend() {
    use sluice_tests::servers::{Canned, Recorder};
    let recorder = Recorder::start(Canned::json("{}"), false);
    let proxy = Proxy::start(&format!(
        "backends: [{{name: v1, endpoints: [\"{}\"]}}]\nroutes: [{{name: app, stable: v1}}]\n",
        recorder.addr
    ));
    let smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70_000));
    let many_headers = format!(
        "GET / HTTP/1.1\r\nHost: x\r\n{}\r\n",
        (0..200)
            .map(|i| format!("x-h{i}: v\r\n"))
            .collect::<String>()
    );
    let big_head = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nx-big: {}\r\n\r\n",
        "b".repeat(100_000)
    );
    let forms: Vec<(&str, String)> = vec![
        (
            "CL.TE",
            format!(
                "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nX{smuggled}"
            ),
        ),
        (
            "TE.CL",
            format!(
                "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n{smuggled}"
            ),
        ),
        (
            "TE with a space before the colon",
            format!(
                "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n{smuggled}"
            ),
        ),
        (
            "TE: xchunked",
            format!(
                "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n{smuggled}"
            ),
        ),
        (
            "TE: chunked with a tab",
            format!(
                "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\tchunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n{smuggled}"
            ),
        ),
        (
            "TE: CHUNKED, identity",
            format!(
                "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n{smuggled}"
            ),
        ),
        (
            "two TE headers",
            format!(
                "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n0\r\n\r\n{smuggled}"
            ),
        ),
        (
            "TE: \"chunked\"",
            format!(
                "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \"chunked\"\r\n\r\n0\r\n\r\n{smuggled}"
            ),
        ),
        (
            "TE on HTTP/1.0",
            format!(
                "POST / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"
            ),
        ),
        (
            "two different Content-Lengths",
            format!(
                "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 38\r\n\r\n{smuggled}"
            ),
        ),
        (
            "a Content-Length list",
            format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0, 38\r\n\r\n{smuggled}"),
        ),
        (
            "a signed Content-Length",
            format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +0\r\n\r\n{smuggled}"),
        ),
        (
            "a negative Content-Length",
            format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n{smuggled}"),
        ),
        (
            "a hex Content-Length",
            format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x0\r\n\r\n{smuggled}"),
        ),
        (
            "a chunk size with a sign",
            format!(
                "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n+0\r\n\r\n{smuggled}"
            ),
        ),
        (
            "a chunk size past 64 bits",
            format!(
                "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\nA\r\n0\r\n\r\n{smuggled}"
            ),
        ),
        (
            "a chunk size that is not hex",
            format!(
                "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nz\r\n\r\n{smuggled}"
            ),
        ),
        (
            "chunk data longer than its size",
            format!(
                "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nAB\r\n0\r\n\r\n{smuggled}"
            ),
        ),
        (
            "bare LF in the head",
            format!("POST / HTTP/1.1\nHost: x\nContent-Length: 0\nX: y\r\n\r\n{smuggled}"),
        ),
        (
            "bare CR in a header",
            format!(
                "GET / HTTP/1.1\r\nHost: x\r\nX: a\rTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"
            ),
        ),
        (
            "obs-fold",
            format!(
                "GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"
            ),
        ),
        (
            "NUL in a header value",
            format!("GET / HTTP/1.1\r\nHost: x\r\nX: a\0b\r\n\r\n{smuggled}"),
        ),
        (
            "NUL in the target",
            format!("GET /a\0b HTTP/1.1\r\nHost: x\r\n\r\n{smuggled}"),
        ),
        (
            "a space in the target",
            format!("GET /a b HTTP/1.1\r\nHost: x\r\n\r\n{smuggled}"),
        ),
        (
            "invalid UTF-8 in a header name",
            format!("GET / HTTP/1.1\r\nHost: x\r\nX\u{ff}: a\r\n\r\n{smuggled}"),
        ),
        (
            "a version that is not HTTP/1.x",
            format!("GET / HTTP/2.7\r\nHost: x\r\n\r\n{smuggled}"),
        ),
        ("an URI over the head limit", long_uri),
        ("200 header fields", many_headers),
        ("a head over the limit", big_head),
    ];
    let before = recorder.seen().len();
    for (what, form) in &forms {
        let answer = raw(proxy.addr, form);
        let status: Option<u16> = answer
            .strip_prefix("HTTP/1.1 ")
            .and_then(|s| s.get(..3))
            .and_then(|s| s.parse().ok());
        assert!(
            status.is_none_or(|s| (400..500).contains(&s)),
            "{what}: {answer:?}"
        );
        assert!(
            !answer[answer.find("\r\n").map_or(0, |i| i + 2)..].contains("HTTP/1.1 "),
            "{what}: a second answer came on the connection: {answer:?}"
        );
        let ok = raw(
            proxy.addr,
            "GET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(ok.starts_with("HTTP/1.1 200"), "after {what}: {ok}");
    }
    // a form whose head is sound but whose chunks are broken is streamed until the broken
    // chunk: the backend sees that upload cut off, never complete, and never what followed
    let seen = recorder.seen();
    let whole: Vec<&str> = seen[before..]
        .iter()
        .filter(|s| s.complete)
        .map(|s| s.target.as_str())
        .collect();
    assert!(
        whole.iter().all(|t| *t == "/next"),
        "the backend saw {whole:?}"
    );
    assert_eq!(whole.len(), forms.len());
    assert!(seen.iter().all(|s| s.target != "/smuggled"));
}

/// Sends `request` and reads until the proxy closes the connection (or 3 s pass).
fn raw(addr: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let _ = s.write_all(request.as_bytes());
    read_all(&mut s)
}

/// Starts `program args` with `RUST_LOG=trace`, its log in `log`; returns it and the
/// addresses it wrote to `addr_file`. The caller kills and waits for it.
#[allow(clippy::zombie_processes)] // returned to the caller, which waits for it
fn start_tracing(
    program: &str,
    args: &[&str],
    env: &[(&str, &str)],
    log: &std::path::Path,
    addr_file: &std::path::Path,
) -> (std::process::Child, serde_json::Value) {
    let mut child = std::process::Command::new(sluice_tests::bin(program))
        .args(args)
        .arg("--addr-file")
        .arg(addr_file)
        .env("RUST_LOG", "trace")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(text) = std::fs::read_to_string(addr_file)
            && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
        {
            return (child, v);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{program} did not start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn no_token_is_ever_logged_even_at_trace_and_a_wrong_one_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (v1, v2) = (Backend::start("v1"), Backend::start("v2"));
    let operator = "operator-secret-7f3a9c";
    let proxy_token = "proxy-secret-41be02";
    let admin_token = "admin-secret-c0ffee";
    let wrong = "wrong-secret-9d9d9d";
    std::fs::write(
        dir.path().join("proxy-tokens"),
        format!("proxy-1 {proxy_token}\n"),
    )
    .unwrap();
    std::fs::write(dir.path().join("proxy-token"), proxy_token).unwrap();
    std::fs::write(dir.path().join("admin-token"), admin_token).unwrap();
    let config = dir.path().join("sluice.yaml");
    std::fs::write(
        &config,
        format!(
            "apiVersion: sluice.dev/v1alpha1
kind: LocalRuntime
metadata: {{name: test}}
spec:
  listen: 127.0.0.1:0
  tokenEnv: SLUICE_TEST_OPERATOR_TOKEN
  proxyTokensFile: {}
  healthCheck: {{intervalMillis: 200}}
  images:
    \"chip:v1\": [\"{}\"]
    \"chip:v2\": [\"{}\"]
---
{}",
            dir.path().join("proxy-tokens").display(),
            v1.addr,
            v2.addr,
            rollout(
                "  strategy:\n    canary:\n      steps:\n      - setWeight: 20\n      - pause: {}\n"
            )
        ),
    )
    .unwrap();
    let controller_log = dir.path().join("controller.log");
    let (mut controller, c) = start_tracing(
        "sluice",
        &["controller", "-c", config.to_str().unwrap()],
        &[("SLUICE_TEST_OPERATOR_TOKEN", operator)],
        &controller_log,
        &dir.path().join("controller.addr"),
    );
    let api = format!("http://{}", c["listen"].as_str().unwrap());
    let proxy_config = dir.path().join("proxy.yaml");
    std::fs::write(
        &proxy_config,
        format!(
            "listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\n  token_file: {}\n",
            dir.path().join("admin-token").display()
        ),
    )
    .unwrap();
    let proxy_log = dir.path().join("proxy.log");
    let (mut proxy, p) = start_tracing(
        "sluice-proxy",
        &[
            "--config",
            proxy_config.to_str().unwrap(),
            "--control-plane",
            &api,
            "--proxy-id",
            "proxy-1",
            "--token-file",
            dir.path().join("proxy-token").to_str().unwrap(),
        ],
        &[],
        &proxy_log,
        &dir.path().join("proxy.addr"),
    );
    let admin: SocketAddr = p["admin"].as_str().unwrap().parse().unwrap();
    let client =
        sluice_controller::control::client::ControlClient::new(&api, Some(operator.into()));
    let forged = sluice_controller::control::client::ControlClient::new(&api, Some(wrong.into()));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !block(client.get("chip")).is_ok_and(|v| {
        v.status
            .canary
            .weights
            .as_ref()
            .is_some_and(|w| w.verified && w.expected == 1)
    }) {
        assert!(Instant::now() < deadline, "the proxy never subscribed");
        std::thread::sleep(Duration::from_millis(50));
    }
    // a wrong token: refused, nothing changes
    let before = block(client.get("chip")).unwrap();
    assert!(block(forged.set_image("chip", "chip", "chip:v2")).is_err());
    assert!(block(forged.command("chip", "abort", None)).is_err());
    let a = block(Client::new().put(
        admin,
        "/routes/chip/weight",
        r#"{"weight": 50}"#,
        Some(wrong),
    ))
    .unwrap();
    assert_eq!(a.status, 401);
    let v = block(client.get("chip")).unwrap();
    assert!(!v.status.abort);
    assert_eq!(v.status.current_pod_hash, before.status.current_pod_hash);
    assert_eq!(v.generation, before.generation);
    // the right one works; a subscribed proxy refuses admin writes even with its token
    block(client.set_image("chip", "chip", "chip:v2")).unwrap();
    let a = block(Client::new().put(
        admin,
        "/routes/chip/weight",
        r#"{"weight": 50}"#,
        Some(admin_token),
    ))
    .unwrap();
    assert_ne!(a.status, 200, "{}", a.text());
    std::thread::sleep(Duration::from_millis(500));
    let _ = controller.kill();
    let _ = proxy.kill();
    let _ = (controller.wait(), proxy.wait());
    for (who, log) in [("controller", &controller_log), ("proxy", &proxy_log)] {
        let text = std::fs::read_to_string(log).unwrap();
        assert!(
            text.lines().count() > 10,
            "{who} logged too little to tell: {text}"
        );
        for secret in [operator, proxy_token, admin_token, wrong] {
            assert!(!text.contains(secret), "the {who}'s log holds {secret}");
        }
    }
}
