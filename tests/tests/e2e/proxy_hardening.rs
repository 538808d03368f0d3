//! The proxy failing the right way when backends, clients and operators misbehave: timeouts,
//! ejection, slow and idle clients, smuggling attempts, hop-by-hop headers, reloads and stops.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sluice_tests::world::{block, signal};
use sluice_tests::{Backend, Client, Proxy, proxy_exit};

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}

fn metrics(proxy: &Proxy) -> String {
    block(Client::new().get(proxy.admin, "/metrics", &[]))
        .unwrap()
        .text()
}

/// A server that accepts connections and never answers.
fn black_hole() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming().flatten() {
            held.push(s);
        }
    });
    addr
}

fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

#[test]
fn a_silent_backend_gives_504_and_a_closed_port_502_told_apart_in_metrics() {
    let (hole, dead) = (black_hole(), closed_port());
    let proxy = Proxy::start(&format!(
        "upstream: {{request_timeout: 500ms, connect_timeout: 500ms}}
backends:
  - {{name: hole, endpoints: [\"{hole}\"]}}
  - {{name: dead, endpoints: [\"{dead}\"]}}
routes:
  - {{name: slow, path_prefix: /slow, stable: hole}}
  - {{name: gone, path_prefix: /gone, stable: dead}}
"
    ));
    let client = Client::new();
    let t0 = Instant::now();
    let a = block(client.get(proxy.addr, "/slow", &[])).unwrap();
    let took = t0.elapsed();
    assert_eq!(a.status, 504);
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(5),
        "{took:?}"
    );
    let a = block(client.get(proxy.addr, "/gone", &[])).unwrap();
    assert_eq!(a.status, 502);
    let m = metrics(&proxy);
    assert_eq!(
        metric(
            &m,
            "sluice_upstream_errors_total{route=\"slow\",backend=\"hole\",kind=\"timeout\"}"
        ),
        1.0,
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            "sluice_upstream_errors_total{route=\"gone\",backend=\"dead\",kind=\"connect\"}"
        ),
        1.0,
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            "sluice_upstream_errors_total{route=\"slow\",backend=\"hole\",kind=\"connect\"}"
        ),
        0.0
    );
}

fn serve_on(name: &str, addr: SocketAddr) -> std::process::Child {
    Command::new(sluice_tests::bin("sluice-load"))
        .args(["serve", "--name", name, "--listen", &addr.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn a_dead_endpoint_is_ejected_without_failing_requests_and_comes_back() {
    let live = Backend::start("a");
    let dead_addr = closed_port();
    let mut dead = serve_on("b", dead_addr);
    std::thread::sleep(Duration::from_millis(300));
    let proxy = Proxy::start(&format!(
        "upstream: {{eject_after_failures: 3, ejection_time: 2s}}
backends:
  - {{name: app, endpoints: [\"{}\", \"{dead_addr}\"]}}
routes:
  - {{name: app, stable: app}}
",
        live.addr
    ));
    let client = Client::new();
    let get = |n: usize| {
        block(async {
            let mut by = std::collections::BTreeMap::<String, usize>::new();
            for _ in 0..n {
                let a = client.get(proxy.addr, "/", &[]).await.unwrap();
                assert_eq!(a.status, 200, "a request failed: {}", a.text());
                *by.entry(a.text().trim().to_owned()).or_default() += 1;
            }
            by
        })
    };
    let before = get(100);
    assert!(before.get("b").copied().unwrap_or(0) > 10, "{before:?}");
    let _ = dead.kill();
    let _ = dead.wait();
    // connection refused: retried on the other endpoint, so nothing fails; after three, ejected
    let during = get(50);
    assert_eq!(during.get("b"), None);
    let connects = metric(
        &metrics(&proxy),
        "sluice_upstream_errors_total{route=\"app\",backend=\"app\",kind=\"connect\"}",
    );
    assert!(
        (3.0..=4.0).contains(&connects),
        "{connects} connect errors before ejection"
    );
    let after = get(200);
    assert_eq!(after.get("a"), Some(&200));
    let again = metric(
        &metrics(&proxy),
        "sluice_upstream_errors_total{route=\"app\",backend=\"app\",kind=\"connect\"}",
    );
    assert_eq!(
        again, connects,
        "requests still went to the ejected endpoint"
    );
    // back: after the ejection time it is tried again and serves
    let mut back = serve_on("b", dead_addr);
    std::thread::sleep(Duration::from_millis(2500));
    let later = get(200);
    assert!(later.get("b").copied().unwrap_or(0) > 20, "{later:?}");
    let _ = back.kill();
    let _ = back.wait();
}

/// A backend answering a 4-byte body one byte every 400 ms.
fn dribbling_backend() -> SocketAddr {
    sluice_tests::servers::spawn_loopback(|mut s| async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\n")
            .await;
        for b in b"abcd" {
            tokio::time::sleep(Duration::from_millis(400)).await;
            let _ = s.write_all(&[*b]).await;
        }
    })
}

#[test]
fn the_head_deadline_closes_an_idle_http1_connection_but_not_a_slow_answer_or_http2() {
    let b = Backend::start("v1");
    let slow = dribbling_backend();
    let proxy = Proxy::start(&format!(
        "downstream: {{header_read_timeout: 1s}}
backends: [{{name: v1, endpoints: [\"{}\"]}}, {{name: slow, endpoints: [\"{slow}\"]}}]
routes: [{{name: slow, path_prefix: /slow, stable: slow}}, {{name: app, stable: v1}}]
",
        b.addr
    ));
    let addr = proxy.addr;
    // an answer taking longer than the deadline is not cut: the deadline waits for requests
    let answer = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        while !got.ends_with(b"abcd") {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&got).into_owned()
    });
    // an idle keep-alive connection is closed one deadline (and at most a sweep) after its
    // last answer
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    let answered = Instant::now();
    assert_eq!(
        s.read(&mut buf).unwrap(),
        0,
        "the idle connection was not closed"
    );
    let idle = answered.elapsed();
    assert!(
        idle >= Duration::from_millis(800) && idle < Duration::from_secs(4),
        "closed after {idle:?}"
    );
    // HTTP/2 (prior knowledge) is left to its keep-alive pings
    block(async {
        let mut sender = sluice_tests::h2c(addr).await;
        for round in 0..2 {
            if round == 1 {
                tokio::time::sleep(Duration::from_millis(2500)).await;
            }
            let req = http::Request::get(format!("http://{addr}/"))
                .body(http_body_util::Empty::new())
                .unwrap();
            let resp = sender.send_request(req).await.unwrap();
            assert_eq!(resp.status(), 200);
        }
    });
    let answer = answer.join().unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("abcd"),
        "{answer}"
    );
}

#[test]
fn a_slow_client_is_cut_off_while_others_are_served() {
    let b = Backend::start("v1");
    let proxy = Proxy::start(&format!(
        "downstream: {{header_read_timeout: 2s}}
backends: [{{name: v1, endpoints: [\"{}\"]}}]
routes: [{{name: app, stable: v1}}]
",
        b.addr
    ));
    let addr = proxy.addr;
    let slow = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        let t0 = Instant::now();
        for byte in b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: yes\r\n\r\n" {
            if s.write_all(&[*byte]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
            if t0.elapsed() > Duration::from_secs(8) {
                break;
            }
        }
        let mut rest = Vec::new();
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = s.read_to_end(&mut rest);
        (t0.elapsed(), String::from_utf8_lossy(&rest).into_owned())
    });
    let client = Client::new();
    for _ in 0..20 {
        let a = block(client.get(addr, "/", &[])).unwrap();
        assert_eq!(a.status, 200);
        std::thread::sleep(Duration::from_millis(100));
    }
    let (took, answer) = slow.join().unwrap();
    assert!(
        took < Duration::from_secs(6),
        "the slow client was kept {took:?}"
    );
    assert!(!answer.contains("200 OK"), "{answer}");
}

#[test]
fn ten_thousand_idle_connections_beyond_the_cap_do_not_stop_a_client() {
    let b = Backend::start("v1");
    let proxy = Proxy::start(&format!(
        "downstream: {{max_connections: 200, header_read_timeout: 30s}}
backends: [{{name: v1, endpoints: [\"{}\"]}}]
routes: [{{name: app, stable: v1}}]
",
        b.addr
    ));
    let addr = proxy.addr;
    let idle = block(async {
        let mut held = Vec::new();
        for _ in 0..10_000 {
            if let Ok(Ok(s)) =
                tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr))
                    .await
            {
                held.push(s);
            }
        }
        held
    });
    assert!(
        idle.len() >= 9_000,
        "only {} idle connections opened",
        idle.len()
    );
    let t0 = Instant::now();
    let a = block(Client::new().get(addr, "/", &[])).unwrap();
    assert_eq!(a.status, 200);
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    // each worker may have one eviction under way; once they are done the cap holds
    let settled = Instant::now();
    let mut open = metric(&metrics(&proxy), "sluice_open_connections");
    while open > 202.0 && settled.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(50));
        open = metric(&metrics(&proxy), "sluice_open_connections");
    }
    assert!(
        open <= 202.0,
        "{open} connections open beyond the cap of 200"
    );
    drop(idle);
}

/// Sends `requests` on one connection and reads until the proxy closes it.
fn raw_all(addr: SocketAddr, requests: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s.write_all(requests.as_bytes()).unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    String::from_utf8_lossy(&got).into_owned()
}

fn raw(addr: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn smuggling_forms_get_400_and_hop_by_hop_headers_never_reach_the_backend() {
    let b = Backend::start("v1");
    let proxy = Proxy::start(&format!(
        "backends: [{{name: v1, endpoints: [\"{}\"]}}]\nroutes: [{{name: app, stable: v1}}]\n",
        b.addr
    ));
    // both Content-Length and Transfer-Encoding, in either order, first on a connection or
    // after a chunked request and a sized one on the same connection
    let chunked = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
        5\r\nhello\r\n0\r\n\r\n";
    let sized = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi";
    for both in [
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
    ] {
        let answer = raw(proxy.addr, both);
        assert!(
            answer.starts_with("HTTP/1.1 400"),
            "{both:?} got {answer:?}"
        );
        assert!(
            answer.contains("both Content-Length and Transfer-Encoding"),
            "{answer}"
        );
        let answers = raw_all(proxy.addr, &[chunked, sized, both].concat());
        let statuses: Vec<&str> = answers
            .match_indices("HTTP/1.1 ")
            .map(|(i, _)| &answers[i + 9..i + 12])
            .collect();
        assert_eq!(statuses, ["200", "200", "400"], "{answers}");
        assert!(answers.contains("\"body_bytes\":5") && answers.contains("\"body_bytes\":2"));
        let ok = raw(
            proxy.addr,
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(
            ok.starts_with("HTTP/1.1 200"),
            "the next request failed: {ok}"
        );
    }
    let forms = [
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n",
    ];
    for form in forms {
        let answer = raw(proxy.addr, form);
        assert!(
            answer.starts_with("HTTP/1.1 400"),
            "{form:?} got {answer:?}"
        );
        let ok = raw(
            proxy.addr,
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(
            ok.starts_with("HTTP/1.1 200"),
            "the next request failed: {ok}"
        );
    }
    let echo = block(Client::new().get(
        proxy.addr,
        "/echo",
        &[
            ("connection", "keep-alive, x-secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("te", "gzip"),
            ("x-kept", "yes"),
            ("x-forwarded-for", "6.6.6.6"),
        ],
    ))
    .unwrap()
    .json();
    let headers = echo["headers"].as_object().unwrap();
    for gone in [
        "connection",
        "x-secret",
        "keep-alive",
        "proxy-connection",
        "te",
    ] {
        assert!(
            !headers.contains_key(gone),
            "{gone} reached the backend: {headers:?}"
        );
    }
    assert_eq!(echo["headers"]["x-kept"][0], "yes");
    // an untrusted client's X-Forwarded-For is replaced, not trusted
    assert_eq!(echo["headers"]["x-forwarded-for"][0], "127.0.0.1");
    assert_eq!(echo["headers"]["forwarded"][0], "for=127.0.0.1;proto=http");
}

#[test]
fn sighup_reloads_a_valid_file_and_keeps_the_table_on_a_bad_one() {
    let (v1, v2) = (Backend::start("v1"), Backend::start("v2"));
    let table = |w: u32| {
        format!(
            "backends:\n  - {{name: v1, endpoints: [\"{}\"]}}\n  - {{name: v2, endpoints: [\"{}\"]}}\nroutes:\n  - {{name: app, stable: v1, canary: v2, weight: {w}, debug_headers: true}}\n",
            v1.addr, v2.addr
        )
    };
    let proxy = Proxy::start(&table(0));
    let file = proxy.config_path();
    let header = "listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\n";
    let client = Client::new();
    let canary_share = || {
        block(async {
            let mut n = 0;
            for _ in 0..100 {
                let a = client.get(proxy.addr, "/", &[]).await.unwrap();
                n += usize::from(a.text().trim() == "v2");
            }
            n
        })
    };
    assert_eq!(canary_share(), 0);
    std::fs::write(&file, format!("{header}{}", table(30))).unwrap();
    signal(proxy.pid(), "HUP");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(canary_share(), 30);
    std::fs::write(&file, format!("{header}{}", table(300))).unwrap();
    signal(proxy.pid(), "HUP");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(canary_share(), 30, "a bad file changed the table");
    let m = metrics(&proxy);
    assert_eq!(
        metric(&m, "sluice_config_reloads_total{result=\"ok\"}"),
        1.0,
        "{m}"
    );
    assert_eq!(
        metric(&m, "sluice_config_reloads_total{result=\"invalid\"}"),
        1.0
    );
    assert!(
        proxy.log().contains("weight: 300 exceeds total 100"),
        "{}",
        proxy.log()
    );
}

#[test]
fn sigterm_lets_a_request_in_flight_finish_and_exits_0() {
    let slow = Backend::start_with("v1", &["--delay", "2s"]);
    let mut proxy = Proxy::start(&format!(
        "backends: [{{name: v1, endpoints: [\"{}\"]}}]\nroutes: [{{name: app, stable: v1}}]\n",
        slow.addr
    ));
    let addr = proxy.addr;
    let request = std::thread::spawn(move || block(Client::new().get(addr, "/", &[])));
    std::thread::sleep(Duration::from_millis(400));
    signal(proxy.pid(), "TERM");
    let a = request
        .join()
        .unwrap()
        .expect("the request in flight completed");
    assert_eq!(a.status, 200);
    assert_eq!(a.text().trim(), "v1");
    assert_eq!(proxy.wait(Duration::from_secs(10)), Some(0));
}

#[test]
fn the_log_level_changes_at_run_time_with_the_token() {
    let b = Backend::start("v1");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t"), "tok").unwrap();
    let proxy = Proxy::start(&format!(
        "admin:\n  listen: 127.0.0.1:0\n  token_file: {}\naccess_log: true\nbackends: [{{name: v1, endpoints: [\"{}\"]}}]\nroutes: [{{name: app, stable: v1}}]\n",
        dir.path().join("t").display(),
        b.addr
    ));
    let client = Client::new();
    let a = block(client.put(proxy.admin, "/log-level", r#"{"filter": "info"}"#, None)).unwrap();
    assert_eq!(a.status, 401);
    let a = block(client.put(
        proxy.admin,
        "/log-level",
        r#"{"filter": "info"}"#,
        Some("tok"),
    ))
    .unwrap();
    assert_eq!(a.status, 200, "{}", a.text());
    let _ = block(client.get(proxy.addr, "/hello", &[])).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let log = proxy.log();
    assert!(
        log.contains("path=/hello") && log.contains("status=200"),
        "no access log line: {log}"
    );
    let a = block(client.put(
        proxy.admin,
        "/log-level",
        r#"{"filter": "[bad"}"#,
        Some("tok"),
    ))
    .unwrap();
    assert_eq!(a.status, 400);
}

/// The names of a process's threads.
fn thread_names(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_owned())
        .collect()
}

#[test]
fn workers_serve_on_threads_of_their_own_and_a_taken_address_is_refused() {
    let b = Backend::start("v1");
    let table = format!(
        "backends: [{{name: v1, endpoints: [\"{}\"]}}]\nroutes: [{{name: app, stable: v1}}]\n",
        b.addr
    );
    let proxy = Proxy::start(&format!("downstream: {{workers: 3}}\n{table}"));
    let mut workers: Vec<String> = thread_names(proxy.pid())
        .into_iter()
        .filter(|n| n.starts_with("sluice-worker-"))
        .collect();
    workers.sort();
    assert_eq!(
        workers,
        ["sluice-worker-1", "sluice-worker-2", "sluice-worker-3"]
    );
    // connections spread over the workers' sockets are all served, keep-alive included
    let addr = proxy.addr;
    let answered = block(async move {
        let mut tasks = Vec::new();
        for _ in 0..24 {
            tasks.push(tokio::spawn(async move {
                let client = Client::new();
                let mut ok = 0;
                for _ in 0..5 {
                    if client
                        .get(addr, "/", &[])
                        .await
                        .is_ok_and(|a| a.status == 200)
                    {
                        ok += 1;
                    }
                }
                ok
            }));
        }
        let mut ok = 0;
        for t in tasks {
            ok += t.await.unwrap();
        }
        ok
    });
    assert_eq!(answered, 120);
    // /stats tells how the kernel spread them over the workers
    let stats = block(Client::new().get(proxy.admin, "/stats", &[]))
        .unwrap()
        .json();
    let workers = stats["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 3, "{stats}");
    let sum = |k: &str| workers.iter().map(|w| w[k].as_u64().unwrap()).sum::<u64>();
    assert_eq!(sum("requests"), 120, "{stats}");
    assert!(sum("connections") >= 24, "{stats}");
    assert_eq!(workers[2]["worker"], 3);

    // another proxy on the same address: refused, not let in to share the connections
    let (code, err) = proxy_exit(&format!(
        "listen: {addr}\nadmin: {{listen: 127.0.0.1:0}}\n{table}"
    ));
    assert_eq!(code, Some(1));
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");

    // too many workers: a clear error, nothing started
    let (code, err) = proxy_exit(&format!("downstream: {{workers: 999}}\n{table}"));
    assert_eq!(code, Some(2));
    assert!(
        err.contains("downstream.workers: must be at most 256"),
        "{err}"
    );
}

/// Sends one request on `s` and reads its answer, leaving the connection open.
fn ask_and_keep(s: &mut TcpStream) -> String {
    s.write_all(b"GET / HTTP/1.1\r\nHost: app\r\n\r\n").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("\r\n\r\nv1") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[test]
fn new_connections_are_spread_exactly_over_the_workers_whatever_the_kernel_hash() {
    let b = Backend::start("v1");
    let table = format!(
        "backends: [{{name: v1, endpoints: [\"{}\"]}}]\nroutes: [{{name: app, stable: v1}}]\n",
        b.addr
    );
    let proxy = Proxy::start(&format!("downstream: {{workers: 3}}\n{table}"));
    // 30 keep-alive connections, one after the other, each answered and kept open
    let mut held = Vec::new();
    for _ in 0..30 {
        let mut s = TcpStream::connect(proxy.addr).unwrap();
        assert!(ask_and_keep(&mut s).starts_with("HTTP/1.1 200"));
        held.push(s);
    }
    let figures = |proxy: &Proxy| {
        let stats = block(Client::new().get(proxy.admin, "/stats", &[]))
            .unwrap()
            .json();
        let workers = stats["workers"].as_array().unwrap().clone();
        let of = |k: &str| -> Vec<u64> { workers.iter().map(|w| w[k].as_u64().unwrap()).collect() };
        (of("open"), of("requests"), of("connections"))
    };
    let (open, requests, accepted) = figures(&proxy);
    assert_eq!(open, [10, 10, 10], "each worker serves a third");
    assert_eq!(requests, [10, 10, 10], "and answered their requests");
    assert_eq!(
        accepted.iter().sum::<u64>(),
        30,
        "the kernel's spread: {accepted:?}"
    );
    // a second request on every connection, served where it was handed
    for s in &mut held {
        assert!(ask_and_keep(s).starts_with("HTTP/1.1 200"));
    }
    assert_eq!(figures(&proxy).1, [20, 20, 20]);
    // closed connections leave the counts; the next ones fill the emptiest worker first
    held.truncate(20);
    std::thread::sleep(Duration::from_millis(300));
    let (open, ..) = figures(&proxy);
    assert_eq!(open.iter().sum::<u64>(), 20, "{open:?}");
    for _ in 0..10 {
        let mut s = TcpStream::connect(proxy.addr).unwrap();
        ask_and_keep(&mut s);
        held.push(s);
    }
    assert_eq!(figures(&proxy).0, [10, 10, 10]);

    // the kernel's spread, when asked for, and a clear error for an unknown balance
    let kernel = Proxy::start(&format!(
        "downstream: {{workers: 2, connection_balance: kernel}}\n{table}"
    ));
    let mut s = TcpStream::connect(kernel.addr).unwrap();
    assert!(ask_and_keep(&mut s).starts_with("HTTP/1.1 200"));
    assert_eq!(figures(&kernel).0.iter().sum::<u64>(), 1);
    let (code, err) = proxy_exit(&format!(
        "downstream: {{connection_balance: round-robin}}\n{table}"
    ));
    assert_eq!(code, Some(2));
    assert!(err.contains("downstream.connection_balance"), "{err}");
    assert!(err.contains("exact"), "{err}");
}

/// The bytes a client got, with the value of every `date` field blanked: what may differ
/// between two correct servers answering the same requests a few seconds apart.
fn comparable(raw: &str) -> String {
    let mut out = String::new();
    let mut rest = raw;
    while let Some(at) = rest.find("\r\ndate: ") {
        let value = at + "\r\ndate: ".len();
        out.push_str(&rest[..value]);
        out.push('-');
        rest = &rest[value..];
        rest = &rest[rest.find("\r\n").unwrap_or(rest.len())..];
    }
    out + rest
}

/// An upstream that answers every request on a connection with the same bytes: field names
/// with capitals, hop-by-hop fields among them, and lines written `name:value`.
fn capitals_upstream() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = s.read(&mut buf) {
                    got.extend_from_slice(&buf[..n]);
                    while let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                        got.drain(..end + 4);
                        let answer = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\
                                      Connection: keep-alive\r\nKeep-Alive: timeout=5\r\n\
                                      X-Mixed-Case:  spaced\r\nx-lower:tight\r\n\
                                      Server: raw\r\nContent-Length: 5\r\n\r\nhello";
                        if s.write_all(answer.as_bytes()).is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn the_own_http1_server_and_hyper_answer_clients_alike() {
    let b = Backend::start("v1");
    let capitals = capitals_upstream();
    let table = format!(
        "backends: [{{name: v1, endpoints: [\"{}\"]}}, {{name: raw, endpoints: [\"{capitals}\"]}}]\n\
         routes: [{{name: app, stable: v1}}, {{name: raw, path_prefix: /raw, stable: raw}}]\n",
        b.addr
    );
    let own = Proxy::start(&table);
    let hyper = Proxy::start(&format!("downstream: {{http1_server: hyper}}\n{table}"));
    let close = "GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let conversations = [
        // what the own server takes: keep-alive, pipelined, HEAD, sized bodies, answers of
        // every framing (sized, chunked, none)
        format!(
            "GET /a?x=1 HTTP/1.1\r\nHost: x\r\nX-Two: 1\r\nX-Two: 2\r\n\r\n\
             HEAD / HTTP/1.1\r\nHost: x\r\n\r\n\
             POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
             GET /?bytes=70000 HTTP/1.1\r\nHost: x\r\nTE: trailers\r\n\r\n\
             GET /?status=204 HTTP/1.1\r\nHost: x\r\n\r\n\
             GET /?status=304 HTTP/1.1\r\nHost: x\r\n\r\n\
             GET /?status=503 HTTP/1.1\r\nHost: x\r\n\r\n\
             GET http://x/absolute HTTP/1.1\r\nHost: x\r\n\r\n{close}"
        ),
        // what it leaves to hyper, first on the connection and after requests it served
        "GET / HTTP/1.0\r\nHost: x\r\n\r\n".to_owned(),
        format!(
            "GET / HTTP/1.1\r\nHost: x\r\n\r\n\
             POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n{close}"
        ),
        format!(
            "GET / HTTP/1.1\r\nHost: x\r\n\r\n\
             POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi{close}"
        ),
        format!(
            "GET / HTTP/1.1\r\nHost: x\r\n\r\n\
             POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{close}"
        ),
        // refused by the request path on both: no Host, two Hosts, a routed host that is no host
        "GET / HTTP/1.1\r\n\r\n".to_owned(),
        "GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n".to_owned(),
        "GET / HTTP/1.1\r\nHost: a b\r\n\r\n".to_owned(),
        // two answers, and the connection kept open after them
        "GET /one HTTP/1.1\r\nHost: x\r\n\r\nGET /two HTTP/1.1\r\nHost: x\r\n\r\n".to_owned(),
        // an upstream's fields with capitals and hop-by-hop ones among them, twice on one
        // connection, and HEAD
        "GET /raw HTTP/1.1\r\nHost: x\r\n\r\n\
         HEAD /raw HTTP/1.1\r\nHost: x\r\n\r\n\
         GET /raw/again HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            .to_owned(),
    ];
    for talk in &conversations {
        let mine = raw_all(own.addr, talk);
        let theirs = raw_all(hyper.addr, talk);
        assert!(mine.starts_with("HTTP/1."), "{talk:?}: {mine:?}");
        if talk.contains("/raw") {
            // the upstream's end-to-end fields in its order, in lower case, and none of its
            // hop-by-hop ones; hyper's path writes the same fields, in the order its map is
            // left in once the hop-by-hop ones are removed
            let lines = |raw: &str| {
                let mut l: Vec<String> = comparable(raw).split("\r\n").map(str::to_owned).collect();
                l.sort();
                l
            };
            assert_eq!(
                lines(&mine),
                lines(&theirs),
                "sluice: {mine:?}\nhyper: {theirs:?}"
            );
            assert!(
                mine.contains("content-type: text/plain\r\nx-mixed-case: spaced\r\nx-lower: tight\r\nserver: raw\r\ncontent-length: 5\r\n"),
                "{mine:?}"
            );
            assert!(
                !mine.to_ascii_lowercase().contains("keep-alive"),
                "{mine:?}"
            );
            continue;
        }
        assert_eq!(
            comparable(&mine),
            comparable(&theirs),
            "{talk:?}\nsluice: {mine:?}\nhyper: {theirs:?}"
        );
    }
    let (code, err) = proxy_exit(&format!("downstream: {{http1_server: nginx}}\n{table}"));
    assert_eq!(code, Some(2));
    assert!(err.contains("downstream.http1_server"), "{err}");
}
