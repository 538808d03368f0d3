//! The contract between the controller and its proxies, with real processes: every change
//! reaches every proxy and is acknowledged, a stopped proxy holds a step, proxies outlive their
//! controller, merged figures are right, and nothing changes without the token.

use std::time::{Duration, Instant};

use sluice_controller::control::hub::ProxyReason;
use sluice_controller::status::Phase;
use sluice_loadtest::LoadConfig;
use sluice_tests::world::{World, WorldSpec, block, rollout, signal};

fn weights_steps(n: u32) -> String {
    let mut s = String::from("  strategy:\n    canary:\n      steps:\n");
    for w in 1..=n {
        s.push_str(&format!("      - setWeight: {w}\n"));
    }
    s
}

fn percentile(sorted: &[u64], q: f64) -> u64 {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[test]
fn every_weight_change_reaches_three_proxies_and_is_acknowledged_by_all() {
    let docs = rollout(&weights_steps(100));
    let w = World::start(WorldSpec {
        documents: &docs,
        proxies: 3,
        ..Default::default()
    });
    let before = block(w.client.acks()).unwrap().len();
    block(w.client.set_image("chip", "chip", "chip:v2")).unwrap();
    let v = w.wait(
        "v2 stable after 100 acknowledged steps",
        Duration::from_secs(60),
        |v| {
            v.status.phase == Phase::Healthy
                && v.status.stable_rs.as_deref() == Some(w.hash("v2").as_str())
        },
    );
    let weights = v.status.canary.weights.unwrap();
    assert_eq!(
        (weights.acknowledged, weights.expected, weights.verified),
        (3, 3, true)
    );
    let acks = block(w.client.acks()).unwrap();
    let mine: Vec<_> = acks.iter().skip(before).collect();
    assert!(
        mine.len() >= 100,
        "only {} generations acknowledged",
        mine.len()
    );
    assert!(mine.iter().all(|a| a.proxies == 3), "{mine:?}");
    // every proxy applied the last generation
    let proxies = block(w.client.proxies()).unwrap();
    let last = v.generation;
    assert_eq!(proxies.len(), 3);
    for p in &proxies {
        assert_eq!(p.applied.get("shop/chip"), Some(&last), "{p:?}");
    }
    let mut ms: Vec<u64> = mine.iter().map(|a| a.millis).collect();
    ms.sort_unstable();
    eprintln!(
        "publish → last of 3 acknowledgements over {} changes: median {} ms, p90 {} ms, worst {} ms",
        ms.len(),
        percentile(&ms, 0.5),
        percentile(&ms, 0.9),
        ms[ms.len() - 1]
    );
}

#[test]
fn a_stopped_proxy_holds_the_step_until_it_resumes_or_its_lease_expires() {
    let docs = rollout(
        "  strategy:\n    canary:\n      steps:\n      - setWeight: 30\n      - pause: {}\n",
    );
    let w = World::start(WorldSpec {
        documents: &docs,
        proxies: 3,
        runtime_extra: "  leaseSeconds: 6\n",
        ..Default::default()
    });
    let stopped = w.proxies[2].pid();
    signal(stopped, "STOP");
    block(w.client.set_image("chip", "chip", "chip:v2")).unwrap();
    // for three seconds: published, applied by two, not verified, the step not done
    let until = Instant::now() + Duration::from_secs(3);
    let mut seen_two = false;
    while Instant::now() < until {
        let v = w.view();
        let weights = v.status.canary.weights.clone().unwrap();
        assert!(
            !weights.verified,
            "verified while a proxy was stopped: {weights:?}"
        );
        assert_eq!(v.status.current_step_index, Some(0));
        seen_two |= weights.acknowledged == 2 && weights.expected == 3;
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(seen_two, "two of three proxies never acknowledged");
    signal(stopped, "CONT");
    w.wait(
        "the step to complete once the proxy resumed",
        Duration::from_secs(10),
        |v| {
            v.status.current_step_index == Some(1)
                && v.status.canary.weights.as_ref().is_some_and(|w| w.verified)
        },
    );

    // stopped past its lease: it leaves the expected set, with an event
    signal(stopped, "STOP");
    block(w.client.command("chip", "promote", None)).unwrap();
    let v = w.wait(
        "the stopped proxy to leave the expected set",
        Duration::from_secs(15),
        |v| v.status.phase == Phase::Healthy,
    );
    let weights = v.status.canary.weights.unwrap();
    assert_eq!((weights.acknowledged, weights.expected), (2, 2));
    let events = block(w.client.events()).unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.reason == ProxyReason::ProxyLeaseExpired && e.message.contains("proxy-3")),
        "{events:?}"
    );
    signal(stopped, "CONT");
}

#[test]
fn proxies_outlive_their_controller_and_generations_continue_upward() {
    let docs = rollout(
        "  strategy:\n    canary:\n      steps:\n      - setWeight: 25\n      - pause: {}\n",
    );
    let mut w = World::start(WorldSpec {
        documents: &docs,
        proxies: 2,
        ..Default::default()
    });
    block(w.client.set_image("chip", "chip", "chip:v2")).unwrap();
    let v = w.wait("25 % acknowledged", Duration::from_secs(10), |v| {
        v.status
            .canary
            .weights
            .as_ref()
            .is_some_and(|w| w.verified && w.canary.as_ref().is_some_and(|c| c.weight == 25))
    });
    let generation = v.generation;
    w.controller.kill9();

    // both proxies keep the same split, measured by traffic
    for p in &w.proxies {
        let mut load = LoadConfig::new(p.url("/"), 4);
        load.requests = Some(400);
        let r = block(sluice_loadtest::run(load)).unwrap();
        assert_eq!(r.transport_errors, 0);
        assert_eq!(r.by_status.get(&200), Some(&400));
        assert_eq!(
            r.by_generation.keys().copied().collect::<Vec<_>>(),
            vec![generation]
        );
        let canary: u64 = r
            .by_backend
            .iter()
            .filter(|(b, _)| b.ends_with(&w.hash("v2")))
            .map(|(_, n)| n)
            .sum();
        assert_eq!(canary, 100, "{:?}", r.by_backend);
    }

    // a proxy restarted while the controller is down serves its cached table and is ready
    w.proxies[0].restart();
    let admin = w.proxies[0].admin;
    let ready = block(async {
        let client = sluice_tests::Client::new();
        for _ in 0..100 {
            if let Ok(a) = client.get(admin, "/readyz", &[]).await
                && a.status == 200
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    });
    assert!(ready, "the restarted proxy never reported ready");
    let mut load = LoadConfig::new(w.proxies[0].url("/"), 4);
    load.requests = Some(200);
    let r = block(sluice_loadtest::run(load)).unwrap();
    assert_eq!(r.by_status.get(&200), Some(&200));
    assert_eq!(
        r.by_generation.keys().copied().collect::<Vec<_>>(),
        vec![generation]
    );

    // the controller comes back; the next change gets a higher generation
    w.controller.restart();
    w.client = sluice_controller::control::client::ControlClient::new(&w.controller.url(), None);
    // every request counted reaches the new controller: proxy 1 had been sending only the
    // pairs that changed; told (409) that this controller has no earlier report of it, it
    // sends them all (proxy 0, restarted, counts its 200 from zero)
    let counted = || -> u64 {
        ["v1", "v2"]
            .iter()
            .map(|v| {
                block(w.client.stats("shop/chip", &w.hash(v), None))
                    .ok()
                    .and_then(|s| s["requests"].as_u64())
                    .unwrap_or(0)
            })
            .sum()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while counted() != 600 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(counted(), 600);
    block(w.client.command("chip", "promote", None)).unwrap();
    let v = w.wait(
        "v2 stable after the restart",
        Duration::from_secs(15),
        |v| {
            v.status.phase == Phase::Healthy
                && v.status.canary.weights.as_ref().is_some_and(|w| w.verified)
        },
    );
    assert!(
        v.generation > generation,
        "{} is not above {generation}",
        v.generation
    );
}

#[test]
fn merged_figures_match_what_the_clients_saw() {
    let docs = rollout("  strategy:\n    canary:\n      steps: [{setWeight: 50}]\n");
    let w = World::start(WorldSpec {
        documents: &docs,
        proxies: 2,
        ..Default::default()
    });
    // different latencies and error rates through each proxy, recorded request by request
    let client = sluice_tests::Client::new();
    let plans = [
        (&w.proxies[0], 2u64, 50u64, 300u64),
        (&w.proxies[1], 25, 10, 200),
    ];
    let mut latencies = Vec::new();
    let (mut total, mut failed) = (0u64, 0u64);
    block(async {
        for (proxy, delay, every, n) in plans {
            for i in 0..n {
                let status = if i % every == 0 { "&status=503" } else { "" };
                let path = format!("/?delay_ms={delay}{status}");
                let t0 = Instant::now();
                let a = client.get(proxy.addr, &path, &[]).await.unwrap();
                latencies.push(t0.elapsed().as_secs_f64());
                total += 1;
                failed += u64::from(a.status.as_u16() >= 500);
            }
        }
    });
    std::thread::sleep(Duration::from_millis(800)); // a report or two
    let stats = block(w.client.stats("shop/chip", &w.hash("v1"), None)).unwrap();
    assert_eq!(stats["requests"].as_u64(), Some(total));
    assert_eq!(stats["byClass"][4].as_u64(), Some(failed));
    let success = stats["successRate"].as_f64().unwrap();
    assert!((success - (1.0 - failed as f64 / total as f64)).abs() < 1e-9);
    latencies.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let client_p99 = latencies[((latencies.len() as f64) * 0.99).ceil() as usize - 1];
    let merged_p99 = stats["p99"].as_f64().unwrap();
    // bucket upper bounds are at most 19 % above the value; the client also counts its own overhead
    assert!(
        merged_p99 >= client_p99 * 0.8 && merged_p99 <= client_p99 * 1.25,
        "merged p99 {merged_p99} vs the clients' {client_p99}"
    );
}

#[test]
fn without_the_token_nothing_changes() {
    let docs = rollout(
        "  strategy:\n    canary:\n      steps:\n      - setWeight: 25\n      - pause: {}\n",
    );
    let w = World::start(WorldSpec {
        documents: &docs,
        proxies: 1,
        token: Some("t0ken"),
        ..Default::default()
    });
    let before = w.view();
    let anonymous =
        sluice_controller::control::client::ControlClient::new(&w.controller.url(), None);
    let wrong = sluice_controller::control::client::ControlClient::new(
        &w.controller.url(),
        Some("nope".into()),
    );
    for c in [&anonymous, &wrong] {
        for cmd in [
            "promote",
            "promote-full",
            "abort",
            "retry",
            "pause",
            "resume",
            "undo",
        ] {
            let e = block(c.command("chip", cmd, None)).unwrap_err();
            assert!(
                matches!(e, sluice_controller::Error::Unauthorized(_)),
                "{cmd}: {e}"
            );
        }
        let e = block(c.set_image("chip", "chip", "chip:v2")).unwrap_err();
        assert!(
            matches!(e, sluice_controller::Error::Unauthorized(_)),
            "{e}"
        );
        let report = r#"{"proxy":"forged","instance":"x","table_generation":99,"applied":{"shop/chip":99},"stats":[]}"#;
        let e = block(c.raw_post("/v1/report", report)).unwrap_err();
        assert!(
            matches!(e, sluice_controller::Error::Unauthorized(_)),
            "{e}"
        );
        let e = block(c.raw_post("/v1/unsubscribe", r#"{"proxy":"proxy-1","instance":"x"}"#))
            .unwrap_err();
        assert!(
            matches!(e, sluice_controller::Error::Unauthorized(_)),
            "{e}"
        );
    }
    std::thread::sleep(Duration::from_millis(500));
    let after = w.view();
    assert_eq!(
        after.status.current_pod_hash,
        before.status.current_pod_hash
    );
    assert_eq!(after.paused, before.paused);
    assert_eq!(after.status.abort, before.status.abort);
    assert!(
        block(w.client.proxies())
            .unwrap()
            .iter()
            .all(|p| p.id != "forged")
    );
    // with the token it works (and the proxy, which has the token, keeps reporting)
    block(w.client.set_image("chip", "chip", "chip:v2")).unwrap();
    w.wait(
        "25 % acknowledged with the token",
        Duration::from_secs(10),
        |v| {
            v.status
                .canary
                .weights
                .as_ref()
                .is_some_and(|w| w.verified && w.canary.is_some())
        },
    );
}

#[test]
fn a_subscribed_proxy_refuses_admin_writes_and_unsubscribes_on_sigterm() {
    let docs = rollout("  strategy:\n    canary:\n      steps: [{setWeight: 10}]\n");
    let w = World::start(WorldSpec {
        documents: &docs,
        proxies: 2,
        ..Default::default()
    });
    let client = sluice_tests::Client::new();
    let admin = w.proxies[0].admin;
    let a = block(client.put(admin, "/routes", "{}", None)).unwrap();
    assert_eq!(a.status, 409, "{}", a.text());
    let a = block(client.put(
        admin,
        "/routes/shop%2Fchip/weight",
        r#"{"weight": 5}"#,
        None,
    ))
    .unwrap();
    assert_eq!(a.status, 409, "{}", a.text());
    let routes = block(client.get(admin, "/routes", &[])).unwrap().json();
    assert_eq!(routes["routes"][0]["name"], "shop/chip");
    assert_eq!(routes["routes"][0]["weight"], 0);

    signal(w.proxies[1].pid(), "TERM");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let events = block(w.client.events()).unwrap();
        if events
            .iter()
            .any(|e| e.reason == ProxyReason::ProxyUnsubscribed && e.message.contains("proxy-2"))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no unsubscribe event: {events:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let proxies = block(w.client.proxies()).unwrap();
    let expected: Vec<&str> = proxies
        .iter()
        .filter(|p| p.expected)
        .map(|p| p.id.as_str())
        .collect();
    assert_eq!(expected, ["proxy-1"]);
}
