//! Floods an attacker on the network can send: HTTP/2 rapid reset, SETTINGS and CONTINUATION
//! floods written frame by frame, JSON nested without end, long polls with absurd parameters
//! and hundreds of live watchers that never read. Each is stopped or bounded while other
//! clients keep being served, and the state does not change.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use sluice_tests::world::{World, WorldSpec, block, rollout};
use sluice_tests::{Backend, Client, Proxy};

/// One HTTP/2 frame: length, type, flags, stream.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

/// `GET / ` to `app` in HPACK: indexed `:method GET`, `:scheme http`, `:path /`, and
/// `:authority` as a literal.
fn get_block() -> Vec<u8> {
    let mut b = vec![0x82, 0x86, 0x84, 0x01, 0x03];
    b.extend_from_slice(b"app");
    b
}

/// A raw HTTP/2 connection: the preface and an empty SETTINGS sent.
fn h2_raw(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
    s.write_all(&frame(SETTINGS, 0, 0, &[])).unwrap();
    s
}

/// Writes `frames` repeatedly, `times` times, in batches, without reading; returns how many
/// were written before the proxy stopped taking them (closed, reset, or a full window for
/// five seconds).
fn flood(s: &mut TcpStream, frames: &[u8], times: usize) -> usize {
    let batch: Vec<u8> = frames.repeat(64);
    let mut sent = 0;
    while sent < times {
        if s.write_all(&batch).is_err() {
            break;
        }
        sent += 64;
    }
    sent
}

/// Reads until the proxy closes the connection (or 10 s pass); returns the frame types seen.
fn frames_until_closed(s: &mut TcpStream) -> (Vec<u8>, bool) {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut bytes = Vec::new();
    let mut buf = [0u8; 65536];
    let closed = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    let mut kinds = Vec::new();
    let mut at = 0;
    while at + 9 <= bytes.len() {
        let len = (usize::from(bytes[at]) << 16)
            | (usize::from(bytes[at + 1]) << 8)
            | usize::from(bytes[at + 2]);
        kinds.push(bytes[at + 3]);
        at += 9 + len;
    }
    (kinds, closed)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Requests the proxy has counted on route `app`.
fn counted(admin: SocketAddr) -> u64 {
    let a = block(Client::new().get(admin, "/stats", &[])).unwrap();
    a.json()["routes"][0]["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["total"]["requests"].as_u64().unwrap_or(0))
        .sum()
}

/// An ordinary client's request, which must be answered within 5 s.
fn served(proxy: SocketAddr) {
    let a = block(async {
        tokio::time::timeout(
            Duration::from_secs(5),
            Client::new().get(proxy, "/", &[("host", "app")]),
        )
        .await
    })
    .expect("an ordinary request is answered within 5 s during the flood")
    .unwrap();
    assert_eq!(a.status, 200);
}

fn flood_proxy() -> (Backend, Proxy) {
    let backend = Backend::start("v1");
    let proxy = Proxy::start(&format!(
        "backends:\n  - {{name: v1, endpoints: [\"{}\"]}}\nroutes:\n  - {{name: app, stable: v1}}\n",
        backend.addr
    ));
    (backend, proxy)
}

#[test]
fn http2_rapid_reset_is_cut_off_and_forwards_little() {
    let (_backend, proxy) = flood_proxy();
    let before = counted(proxy.admin);
    let mut s = h2_raw(proxy.addr);
    let block_ = get_block();
    let mut pairs = Vec::new();
    let streams = 20_000u32;
    for i in 0..streams {
        let id = 2 * i + 1;
        pairs.extend(frame(HEADERS, END_STREAM | END_HEADERS, id, &block_));
        pairs.extend(frame(RST_STREAM, 0, id, &8u32.to_be_bytes()));
    }
    let t0 = Instant::now();
    let _ = s.write_all(&pairs);
    served(proxy.addr);
    let (kinds, closed) = frames_until_closed(&mut s);
    assert!(closed, "the connection was not closed");
    assert!(kinds.contains(&GOAWAY), "no GOAWAY: {kinds:?}");
    std::thread::sleep(Duration::from_millis(300));
    let forwarded = counted(proxy.admin) - before;
    eprintln!(
        "HTTP/2 rapid reset: {streams} opened and reset, GOAWAY and close after {:?}, {forwarded} requests reached the route",
        t0.elapsed()
    );
    assert!(
        forwarded < u64::from(streams) / 10,
        "{forwarded} of {streams} reset requests were forwarded"
    );
    served(proxy.addr);
}

#[test]
fn http2_settings_and_continuation_floods_are_bounded() {
    let (_backend, proxy) = flood_proxy();
    let rss_before = rss_kib(proxy.pid());
    // SETTINGS, each to be acknowledged, from a client that never reads the acknowledgements
    let mut s = h2_raw(proxy.addr);
    let settings = frame(SETTINGS, 0, 0, &[0x00, 0x03, 0x00, 0x00, 0x00, 0x64]);
    let sent = flood(&mut s, &settings, 500_000);
    served(proxy.addr);
    let rss_settings = rss_kib(proxy.pid());
    eprintln!(
        "SETTINGS flood: {sent} frames taken before the proxy stopped reading or closed; RSS {rss_before} → {rss_settings} KiB"
    );
    drop(s);
    // CONTINUATION without end: one header block that never finishes
    let mut s = h2_raw(proxy.addr);
    let _ = s.write_all(&frame(HEADERS, END_STREAM, 1, &get_block()));
    let mut field = vec![0x00, 0x05];
    field.extend_from_slice(b"x-pad");
    field.extend_from_slice(&[0x7f, 0x81, 0x7f]); // a value of 127 + 16 257 bytes
    field.extend(std::iter::repeat_n(b'a', 16_384));
    let cont = frame(CONTINUATION, 0, 1, &field[..16_384]);
    let sent = flood(&mut s, &cont, 20_000);
    let (kinds, closed) = frames_until_closed(&mut s);
    served(proxy.addr);
    let rss_after = rss_kib(proxy.pid());
    eprintln!(
        "CONTINUATION flood: closed after {sent} frames of 16 KiB ({kinds:?}); RSS {rss_before} → {rss_after} KiB"
    );
    assert!(closed, "the endless header block was not cut off");
    assert!(
        sent < 20_000,
        "the proxy read 20 000 CONTINUATION frames (320 MB) of one header block"
    );
    for rss in [rss_settings, rss_after] {
        assert!(
            rss < rss_before + 64 * 1024,
            "RSS grew from {rss_before} to {rss} KiB"
        );
    }
}

fn paused_world() -> World {
    let w = World::start(WorldSpec {
        documents: &rollout(
            "  strategy:\n    canary:\n      steps:\n      - setWeight: 20\n      - pause: {}\n",
        ),
        proxies: 2,
        token: Some("operator-secret"),
        ..Default::default()
    });
    block(w.client.set_image("chip", "chip", "chip:v2")).unwrap();
    w.wait("paused at 20 %", Duration::from_secs(10), |v| {
        v.status
            .canary
            .weights
            .as_ref()
            .is_some_and(|x| x.verified && x.canary.as_ref().is_some_and(|c| c.weight == 20))
    });
    w
}

fn raw_status(addr: SocketAddr, request: &[u8]) -> Option<u16> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

#[test]
fn nested_json_absurd_long_polls_and_forged_reports_change_nothing() {
    let w = paused_world();
    let api: SocketAddr = w
        .controller
        .url()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let before = w.view();
    let auth = "authorization: Bearer operator-secret\r\n";
    // JSON nested a hundred thousand deep, to each endpoint that reads a body
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    for path in [
        "/v1/report",
        "/v1/rollouts/chip/set-image",
        "/v1/rollouts/chip/undo",
        "/v1/unsubscribe",
    ] {
        let request = format!(
            "POST {path} HTTP/1.1\r\nhost: api\r\n{auth}content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{deep}",
            deep.len()
        );
        let status = raw_status(api, request.as_bytes());
        assert!(
            status.is_some_and(|s| (400..500).contains(&s)),
            "{path}: {status:?}"
        );
    }
    // the proxy's admin API: nested, and not JSON at all
    let admin = w.proxies[0].admin;
    for body in [deep.as_str(), "{\"weight\": 1e999999}", "\u{0}\u{1}"] {
        let request = format!(
            "PUT /routes HTTP/1.1\r\nhost: admin\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let status = raw_status(admin, request.as_bytes());
        assert!(
            status.is_some_and(|s| (400..500).contains(&s)),
            "admin: {status:?}"
        );
    }
    // long polls with absurd parameters: refused, or answered within the longest wait
    for query in [
        "after=18446744073709551616",
        "after=-1",
        "wait=-5",
        "wait=99999999999999999999",
        "after=abc",
        "proxy=%00%ff&wait=0",
    ] {
        let request = format!(
            "GET /v1/routes?{query} HTTP/1.1\r\nhost: api\r\n{auth}connection: close\r\n\r\n"
        );
        let status = raw_status(api, request.as_bytes());
        assert!(
            status.is_some_and(|s| (400..500).contains(&s)),
            "{query}: {status:?}"
        );
    }
    // a clamped wait is answered
    let t0 = Instant::now();
    let status = raw_status(
        api,
        format!(
            "GET /v1/routes?after=18446744073709551615&wait=1 HTTP/1.1\r\nhost: api\r\n{auth}connection: close\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(status, Some(204));
    assert!(t0.elapsed() < Duration::from_secs(5));
    // forged reports: absurd counters, an unknown route, another proxy's id, a future time
    for body in [
        r#"{"proxy":"proxy-1","generation":1,"routes":[{"route":"shop/chip","backends":[{"backend":"x","requests":-5}]}]}"#,
        r#"{"proxy":"proxy-1","generation":18446744073709551615,"routes":[]}"#,
        r#"{"proxy":"proxy-9","generation":1,"routes":[{"route":"nowhere","backends":[]}]}"#,
        r#"{"proxy":"","generation":1,"routes":[]}"#,
    ] {
        let request = format!(
            "POST /v1/report HTTP/1.1\r\nhost: api\r\n{auth}content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let status = raw_status(api, request.as_bytes());
        assert!(status.is_some(), "{body}");
    }
    // nothing changed: the same step and weight, and both proxies still acknowledged
    let after = w.wait("both proxies current", Duration::from_secs(10), |v| {
        v.status
            .canary
            .weights
            .as_ref()
            .is_some_and(|x| x.verified && x.expected == 2)
    });
    assert_eq!(
        after.status.current_step_index,
        before.status.current_step_index
    );
    assert_eq!(after.route, before.route);
    assert!(!after.status.abort);
}

#[test]
fn hundreds_of_watchers_that_never_read_do_not_stop_an_abort() {
    let w = paused_world();
    let api: SocketAddr = w
        .controller
        .url()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let rss_before = rss_kib(w.controller.pid());
    let watchers: Vec<TcpStream> = (0..300)
        .map(|_| {
            let mut s = TcpStream::connect(api).unwrap();
            s.write_all(b"GET /v1/rollouts/chip/watch HTTP/1.1\r\nhost: api\r\n\r\n")
                .unwrap();
            s
        })
        .collect();
    // the views change many times while nobody reads them
    for _ in 0..20 {
        block(w.client.command("chip", "pause", None)).unwrap();
        block(w.client.command("chip", "resume", None)).unwrap();
    }
    std::thread::sleep(Duration::from_secs(2));
    let t0 = Instant::now();
    block(w.client.command("chip", "abort", None)).unwrap();
    w.wait("every proxy at 0 %", Duration::from_secs(10), |v| {
        v.status
            .canary
            .weights
            .as_ref()
            .is_some_and(|x| x.verified && x.canary.is_none())
    });
    let took = t0.elapsed();
    let rss_after = rss_kib(w.controller.pid());
    eprintln!(
        "300 watchers that never read: abort acknowledged by both proxies in {took:?}; controller RSS {rss_before} → {rss_after} KiB"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(
        rss_after < rss_before + 128 * 1024,
        "RSS grew from {rss_before} to {rss_after} KiB"
    );
    drop(watchers);
}

#[test]
fn a_proxy_id_that_is_not_a_name_is_refused_by_both_sides() {
    let out = std::process::Command::new(sluice_tests::bin("sluice-proxy"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--control-plane",
            "http://127.0.0.1:9",
            "--proxy-id",
            "edge 1",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--proxy-id: must be 1 to 128 characters"),
        "{err}"
    );
    let w = World::start(WorldSpec {
        proxies: 0,
        ..Default::default()
    });
    let api: SocketAddr = w
        .controller
        .url()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    for query in [
        "proxy=edge%201&wait=0",
        "proxy=&wait=0",
        &format!("proxy={}&wait=0", "a".repeat(129)),
    ] {
        let status = raw_status(
            api,
            format!("GET /v1/routes?{query} HTTP/1.1\r\nhost: api\r\nconnection: close\r\n\r\n")
                .as_bytes(),
        );
        assert_eq!(status, Some(400), "{query}");
    }
    let proxies = block(Client::new().get(api, "/v1/proxies", &[])).unwrap();
    assert_eq!(
        proxies.json().as_array().map(Vec::len),
        Some(0),
        "{}",
        proxies.text()
    );
}
