//! Protocols through the proxy: WebSocket upgrades that stay on their backend.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use sluice_tests::world::block;
use sluice_tests::{Client, Proxy};
use tokio_tungstenite::tungstenite::Message;

/// A WebSocket server answering every text message with `NAME:message`.
fn ws_echo(name: &'static str) -> SocketAddr {
    sluice_tests::servers::spawn_loopback(move |s| async move {
        let Ok(mut ws) = tokio_tungstenite::accept_async(s).await else {
            return;
        };
        while let Some(Ok(m)) = ws.next().await {
            if let Message::Text(t) = m
                && ws.send(Message::text(format!("{name}:{t}"))).await.is_err()
            {
                return;
            }
        }
    })
}

#[test]
fn a_websocket_stays_on_its_backend_when_the_weights_move() {
    let (v1, v2) = (ws_echo("v1"), ws_echo("v2"));
    let proxy = Proxy::start(&format!(
        "backends:\n  - {{name: v1, endpoints: [\"{v1}\"]}}\n  - {{name: v2, endpoints: [\"{v2}\"]}}\nroutes:\n  - {{name: ws, stable: v1, canary: v2, weight: 0}}\n"
    ));
    let url = format!("ws://{}/chat", proxy.addr);
    block(async {
        let (mut first, resp) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .unwrap();
        assert_eq!(resp.status(), 101);
        first.send(Message::text("hello")).await.unwrap();
        assert_eq!(
            first
                .next()
                .await
                .unwrap()
                .unwrap()
                .into_text()
                .unwrap()
                .as_str(),
            "v1:hello"
        );

        let client = Client::new();
        let a = client
            .put(proxy.admin, "/routes/ws/weight", r#"{"weight": 100}"#, None)
            .await
            .unwrap();
        assert_eq!(a.status, 200);
        let metrics = client
            .get(proxy.admin, "/metrics", &[])
            .await
            .unwrap()
            .text();
        assert!(
            metrics.contains("sluice_upgraded_connections{route=\"ws\",backend=\"v1\"} 1"),
            "{metrics}"
        );

        // the open socket keeps talking to v1; a new one goes to v2
        for i in 0..5 {
            first.send(Message::text(format!("m{i}"))).await.unwrap();
            assert_eq!(
                first
                    .next()
                    .await
                    .unwrap()
                    .unwrap()
                    .into_text()
                    .unwrap()
                    .as_str(),
                format!("v1:m{i}")
            );
        }
        let (mut second, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .unwrap();
        second.send(Message::text("hi")).await.unwrap();
        assert_eq!(
            second
                .next()
                .await
                .unwrap()
                .unwrap()
                .into_text()
                .unwrap()
                .as_str(),
            "v2:hi"
        );
        first.close(None).await.unwrap();
        drop(first);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let metrics = client
            .get(proxy.admin, "/metrics", &[])
            .await
            .unwrap()
            .text();
        assert!(
            metrics.contains("sluice_upgraded_connections{route=\"ws\",backend=\"v1\"} 0"),
            "{metrics}"
        );
    });
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[test]
fn a_gibibyte_streams_up_and_down_in_little_memory() {
    use http_body_util::BodyExt;
    const GIB: u64 = 1 << 30;
    let b = sluice_tests::Backend::start("v1");
    let proxy = Proxy::start(&format!(
        "backends: [{{name: v1, endpoints: [\"{}\"]}}]\nroutes: [{{name: big, stable: v1}}]\n",
        b.addr
    ));
    block(async {
        let client: hyper_util::client::legacy::Client<_, sluice_loadtest::backend::Zeros> =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http();
        let req = http::Request::post(format!("http://{}/echo", proxy.addr))
            .body(sluice_loadtest::backend::Zeros::new(GIB))
            .unwrap();
        let resp = client.request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let echo: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(echo["body_bytes"].as_u64(), Some(GIB), "{echo}");

        let resp = client
            .request(
                http::Request::get(format!("http://{}/?bytes={GIB}", proxy.addr))
                    .body(sluice_loadtest::backend::Zeros::new(0))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let mut body = resp.into_body();
        let mut got = 0u64;
        while let Some(frame) = body.frame().await {
            if let Some(d) = frame.unwrap().data_ref() {
                got += d.len() as u64;
            }
        }
        assert_eq!(got, GIB);
    });
    let peak = peak_rss_kib(proxy.pid());
    eprintln!(
        "proxy peak RSS over a 1 GiB upload and download: {} MiB",
        peak / 1024
    );
    assert!(peak < 64 * 1024, "peak RSS {peak} KiB");
}

#[test]
fn failover_sends_what_the_canary_fails_to_stable_and_counts_it_against_the_canary() {
    let stable = sluice_tests::Backend::start("v1");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let failing =
        sluice_tests::Backend::start_with("v3", &["--error-rate", "1.0", "--error-status", "503"]);
    let proxy = Proxy::start(&format!(
        "backends:
  - {{name: v1, endpoints: [\"{}\"]}}
  - {{name: v2, endpoints: [\"{closed}\"]}}
  - {{name: v3, endpoints: [\"{}\"]}}
routes:
  - {{name: down, path_prefix: /down, stable: v1, canary: v2, weight: 50, failover: {{}}}}
  - {{name: bad, path_prefix: /bad, stable: v1, canary: v3, weight: 100, failover: {{}}}}
",
        stable.addr, failing.addr
    ));
    let client = Client::new();
    block(async {
        // the canary's port is closed: GETs and POSTs all end on stable
        for i in 0..100 {
            let a = client.get(proxy.addr, "/down", &[]).await.unwrap();
            assert_eq!((a.status.as_u16(), a.text().trim()), (200, "v1"), "GET {i}");
            let a = client
                .send(
                    http::Method::POST,
                    proxy.addr,
                    "/down",
                    &[("content-type", "text/plain")],
                    "payload",
                )
                .await
                .unwrap();
            assert_eq!(
                (a.status.as_u16(), a.text().trim()),
                (200, "v1"),
                "POST {i}"
            );
        }
        // the canary answers 503: GETs are sent again to stable, POSTs are not
        let a = client.get(proxy.addr, "/bad", &[]).await.unwrap();
        assert_eq!((a.status.as_u16(), a.text().trim()), (200, "v1"));
        let a = client
            .send(http::Method::POST, proxy.addr, "/bad", &[], "x")
            .await
            .unwrap();
        assert_eq!(a.status.as_u16(), 503);
        assert_eq!(a.text().trim(), "v3");
    });
    let stats = block(client.get(proxy.admin, "/stats", &[]))
        .unwrap()
        .json();
    let pair = |route: &str, backend: &str| {
        stats["routes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == route)
            .unwrap()["backends"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["name"] == backend)
            .unwrap()["total"]
            .clone()
    };
    // half of the 200 requests were decided for the canary: each is a canary failure
    assert_eq!(pair("down", "v2")["by_class"]["5xx"], 100, "{stats}");
    assert_eq!(pair("down", "v2")["errors"]["connect"], 100);
    assert_eq!(pair("down", "v1")["by_class"]["2xx"], 200);
    assert_eq!(pair("bad", "v3")["by_class"]["5xx"], 2);
}

#[test]
fn mirroring_copies_a_share_without_delaying_or_failing_the_real_requests() {
    let (v1, v2) = (
        sluice_tests::Backend::start("v1"),
        sluice_tests::Backend::start("v2"),
    );
    let slow = sluice_tests::Backend::start_with("v3", &["--delay", "5s"]);
    let proxy = Proxy::start(&format!(
        "backends:
  - {{name: v1, endpoints: [\"{}\"]}}
  - {{name: v2, endpoints: [\"{}\"]}}
  - {{name: v3, endpoints: [\"{}\"]}}
routes:
  - {{name: half, path_prefix: /half, stable: v1, mirror: {{backend: v2, percentage: 50}}}}
  - {{name: slow, path_prefix: /slow, stable: v1, mirror: {{backend: v3, percentage: 100, max_in_flight: 10}}}}
",
        v1.addr, v2.addr, slow.addr
    ));
    let mut load =
        sluice_loadtest::LoadConfig::new(format!("http://{}/half", proxy.addr).parse().unwrap(), 8);
    load.requests = Some(2000);
    let r = block(sluice_loadtest::run(load)).unwrap();
    assert_eq!(
        r.by_backend.get("v1"),
        Some(&2000),
        "the client saw a copy's answer: {:?}",
        r.by_backend
    );
    // with a target that sleeps 5 s, every real request still ends fast
    let client = Client::new();
    let slowest = block(async {
        let mut worst = Duration::ZERO;
        for _ in 0..100 {
            let t0 = std::time::Instant::now();
            let a = client.get(proxy.addr, "/slow", &[]).await.unwrap();
            assert_eq!(a.text().trim(), "v1");
            worst = worst.max(t0.elapsed());
        }
        worst
    });
    assert!(
        slowest < Duration::from_secs(1),
        "a request took {slowest:?}"
    );
    std::thread::sleep(Duration::from_millis(5500));
    let stats = block(client.get(proxy.admin, "/stats", &[]))
        .unwrap()
        .json();
    let requests = |route: &str, backend: &str| {
        stats["routes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == route)
            .unwrap()["backends"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["name"] == backend)
            .unwrap()["total"]["requests"]
            .as_u64()
            .unwrap()
    };
    let copies = requests("half", "v2");
    assert!(
        (950..=1050).contains(&copies),
        "{copies} copies of 2000 at 50 %"
    );
    let slow_copies = requests("slow", "v3");
    assert!(
        (1..=10).contains(&slow_copies),
        "{slow_copies} copies sent with at most 10 in flight"
    );
}

/// An HTTP/2 server accepting extended CONNECT and echoing the tunnel's bytes with a prefix.
fn h2_connect_echo(name: &'static str) -> SocketAddr {
    sluice_tests::servers::spawn_loopback(move |s| async move {
        let svc = hyper::service::service_fn(
            move |mut req: http::Request<hyper::body::Incoming>| async move {
                let ok = req.method() == http::Method::CONNECT
                    && req
                        .extensions()
                        .get::<hyper::ext::Protocol>()
                        .is_some_and(|p| p.as_str() == "websocket");
                if ok {
                    let on = hyper::upgrade::on(&mut req);
                    tokio::spawn(async move {
                        use tokio::io::{AsyncReadExt, AsyncWriteExt};
                        let Ok(up) = on.await else { return };
                        let mut io = hyper_util::rt::TokioIo::new(up);
                        let mut buf = [0u8; 1024];
                        while let Ok(n) = io.read(&mut buf).await {
                            if n == 0 {
                                break;
                            }
                            let mut out = format!("{name}:").into_bytes();
                            out.extend_from_slice(&buf[..n]);
                            if io.write_all(&out).await.is_err() {
                                break;
                            }
                        }
                    });
                }
                let status = if ok { 200 } else { 400 };
                Ok::<_, std::convert::Infallible>(
                    http::Response::builder()
                        .status(status)
                        .body(http_body_util::Empty::<bytes::Bytes>::new())
                        .unwrap(),
                )
            },
        );
        let _ = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .enable_connect_protocol()
            .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
            .await;
    })
}

#[test]
fn http2_extended_connect_tunnels_to_an_http2_backend() {
    let backend = h2_connect_echo("v2");
    let proxy = Proxy::start(&format!(
        "backends: [{{name: v2, endpoints: [\"{backend}\"], protocol: h2c}}]\nroutes: [{{name: ws, stable: v2}}]\n"
    ));
    block(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut sender = sluice_tests::h2c(proxy.addr).await;
        // the proxy advertises extended CONNECT once its settings arrive
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut req = http::Request::connect(format!("http://{}/chat", proxy.addr))
            .body(http_body_util::Empty::new())
            .unwrap();
        req.extensions_mut()
            .insert(hyper::ext::Protocol::from_static("websocket"));
        let mut resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        let up = hyper::upgrade::on(&mut resp).await.unwrap();
        let mut io = hyper_util::rt::TokioIo::new(up);
        io.write_all(b"hello").await.unwrap();
        let mut buf = [0u8; 64];
        let n = io.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"v2:hello");
    });
}
