//! `sluice-load run` as a user runs it: closed and open loop, HTTP/1.1 and HTTP/2, JSON
//! output, tallies by backend, and clear refusals of arguments that describe no load.

use std::process::Command;

use sluice_tests::{Proxy, two_backends};

fn load(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(sluice_tests::bin("sluice-load"))
        .arg("run")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn split_proxy() -> (Proxy, [sluice_tests::Backend; 2]) {
    let (v1, v2, backends) = two_backends();
    let proxy = Proxy::start(&format!(
        "{backends}routes:\n  - {{name: app, stable: v1, canary: v2, weight: 20}}\n"
    ));
    (proxy, [v1, v2])
}

#[test]
fn closed_loop_over_http1_and_http2_tallies_the_exact_split_as_json() {
    let (proxy, _backends) = split_proxy();
    let url = format!("http://{}/", proxy.addr);
    for extra in [&[][..], &["--h2", "8"][..]] {
        let mut args = vec!["-c", "4", "-n", "2000", "--json", "--quiet", &url];
        args.extend_from_slice(extra);
        let (code, out, err) = load(&args);
        assert_eq!(code, 0, "{err}");
        let r: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(r["responses"], 2000, "{extra:?}: {out}");
        assert_eq!(r["by_status"]["200"], 2000);
        assert_eq!(r["by_backend"]["v1"], 1600, "{extra:?}: {out}");
        assert_eq!(r["by_backend"]["v2"], 400, "{extra:?}: {out}");
        let l = &r["latency"];
        let (p50, p99, max) = (
            l["p50_us"].as_u64().unwrap(),
            l["p99_us"].as_u64().unwrap(),
            l["max_us"].as_u64().unwrap(),
        );
        assert!(0 < p50 && p50 <= p99 && p99 <= max, "{l}");
        assert!(err.is_empty(), "--quiet printed: {err}");
    }
}

#[test]
fn open_loop_sends_at_the_rate_whatever_the_answers_and_prints_progress() {
    let (proxy, _backends) = split_proxy();
    let url = format!("http://{}/", proxy.addr);
    let (code, out, err) = load(&["-c", "4", "-r", "400", "-d", "2500ms", "--json", &url]);
    assert_eq!(code, 0, "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    // due at 0, 2.5 ms, … up to the deadline: exactly 1000 requests, answered
    assert_eq!(r["responses"], 1000, "{out}");
    assert_eq!(r["by_backend"]["v2"], 200, "{out}");
    let elapsed = r["elapsed_seconds"].as_f64().unwrap();
    assert!((2.4..4.0).contains(&elapsed), "{elapsed}");
    assert!(
        err.lines().filter(|l| l.contains("responses,")).count() >= 2,
        "no progress lines: {err}"
    );
    // a slow target does not slow the schedule: latency counts from each due time
    let slow = format!("http://{}/?delay_ms=100", proxy.addr);
    let (code, out, err) = load(&["-c", "1", "-r", "50", "-n", "20", "--json", "-q", &slow]);
    assert_eq!(code, 0, "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["responses"], 20);
    // one connection answering every 100 ms while requests come due every 20 ms: the last
    // one waited about 19 × 80 ms before it was even sent
    let max = r["latency"]["max_us"].as_u64().unwrap();
    assert!(max > 1_200_000, "queueing was hidden: max {max} µs");
}

#[test]
fn arguments_that_describe_no_load_are_refused_with_the_reason() {
    for (args, why) in [
        (&["-r", "0", "-n", "10", "http://127.0.0.1:1/"][..], "rate"),
        (
            &["--h2", "0", "-n", "10", "http://127.0.0.1:1/"][..],
            "streams",
        ),
        (
            &["-c", "0", "-n", "10", "http://127.0.0.1:1/"][..],
            "connections",
        ),
        (&["-n", "10", "https://127.0.0.1:1/"][..], "http://"),
    ] {
        let (code, _, err) = load(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(why), "{args:?}: {err}");
    }
}
