//! A network partition between a proxy and its controller, mid-rollout. The proxy runs in a
//! network namespace of the test's own ("edge"), and reaches the controller over a veth pair
//! to a second one ("gate", where a relay carries its connections to the controller on the
//! test's loopback); its backends are relayed inside "edge". Setting the veth down drops
//! every packet between them, as a cut cable does: no reset, no refusal.

use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use sluice_controller::control::service::RolloutView;
use sluice_tests::netns::{Netns, Relay, veth};
use sluice_tests::world::{Traffic, World, WorldSpec, block, failures, rollout};

/// The proxy in "edge", killed by PID when dropped.
struct EdgeProxy {
    child: Child,
    admin: SocketAddr,
    addr: SocketAddr,
}

impl Drop for EdgeProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn canary(v: &RolloutView) -> Option<(u32, u32, bool)> {
    v.status.canary.weights.as_ref().map(|w| {
        (
            w.canary.as_ref().map_or(0, |c| c.weight),
            w.expected,
            w.verified,
        )
    })
}

/// The edge proxy's weight and generation for its one route, asked from inside "edge".
fn edge_route(edge: &Netns, admin: SocketAddr) -> Option<(u64, u64)> {
    edge.run(move || {
        let a = block(async {
            tokio::time::timeout(
                Duration::from_secs(2),
                sluice_tests::Client::new().get(admin, "/routes", &[]),
            )
            .await
        })
        .ok()?
        .ok()?;
        let r = &a.json()["routes"][0];
        Some((r["weight"].as_u64()?, r["generation"].as_u64()?))
    })
}

#[test]
fn a_partitioned_proxy_keeps_its_table_is_dropped_at_its_lease_and_catches_up_when_healed() {
    let w = World::start(WorldSpec {
        documents: &rollout(
            "  strategy:\n    canary:\n      steps:\n      - setWeight: 20\n      - pause: {}\n      - setWeight: 50\n      - pause: {}\n      - setWeight: 80\n      - pause: {}\n",
        ),
        runtime_extra: "  leaseSeconds: 3\n",
        proxies: 2,
        ..Default::default()
    });
    let tag = std::process::id() % 200 + 20;
    let gate = Netns::create(&format!("sluice-gate-{tag}"));
    let edge = Netns::create(&format!("sluice-edge-{tag}"));
    let (gate_ip, edge_ip) = (format!("10.251.{tag}.1"), format!("10.251.{tag}.2"));
    veth(
        &gate,
        "gate0",
        &format!("{gate_ip}/30"),
        &edge,
        "edge0",
        &format!("{edge_ip}/30"),
    );
    // the controller, through the veth; the backends, inside "edge" at their own addresses
    let control: SocketAddr = w
        .controller
        .url()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let gate_listener = gate.bind(&format!("{gate_ip}:0"));
    let gate_addr = gate_listener.local_addr().unwrap();
    let mut relays = vec![Relay::start(gate_listener, control)];
    for b in w.backends.values() {
        relays.push(Relay::start(edge.bind(&b.addr.to_string()), b.addr));
    }
    let addr_file = w.dir.path().join("edge.addr");
    let log = std::fs::File::create(w.dir.path().join("edge.log")).unwrap();
    let child = edge
        .command(&sluice_tests::bin("sluice-proxy"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--control-plane",
            &format!("http://{gate_addr}"),
            "--proxy-id",
            "proxy-edge",
            "--report-interval",
            "200ms",
        ])
        .arg("--cache-dir")
        .arg(w.dir.path().join("edge-cache"))
        .arg("--addr-file")
        .arg(&addr_file)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let addrs = loop {
        if let Ok(text) = std::fs::read_to_string(&addr_file)
            && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
        {
            break v;
        }
        assert!(Instant::now() < deadline, "the edge proxy did not start");
        std::thread::sleep(Duration::from_millis(20));
    };
    let proxy = EdgeProxy {
        child,
        admin: addrs["admin"].as_str().unwrap().parse().unwrap(),
        addr: addrs["listen"].as_str().unwrap().parse().unwrap(),
    };
    w.wait("three proxies", Duration::from_secs(10), |v| {
        canary(v).is_some_and(|(_, n, ok)| n == 3 && ok)
    });
    block(w.client.set_image("chip", "chip", "chip:v2")).unwrap();
    w.wait("20 % at all three", Duration::from_secs(10), |v| {
        canary(v) == Some((20, 3, true))
    });
    // users of the edge proxy are inside "edge" with it; the others reach the two on loopback
    let edge_url = proxy.addr;
    let edge_traffic = edge.run(move || {
        Traffic::mixed(
            vec![format!("http://{edge_url}/version").parse().unwrap()],
            100.0,
        )
    });
    let traffic = Traffic::mixed(w.proxies.iter().map(|p| p.url("/version")).collect(), 200.0);
    let v2 = w.hash("v2");

    // the cut
    gate.link("gate0", false);
    let cut = Instant::now();
    let cut_at = edge_traffic.now();
    block(w.client.command("chip", "promote", None)).unwrap();
    let v = w.wait(
        "50 % verified without the edge proxy",
        Duration::from_secs(15),
        |v| canary(v) == Some((50, 2, true)),
    );
    let dropped_after = cut.elapsed();
    assert!(
        dropped_after >= Duration::from_secs(2),
        "dropped after {dropped_after:?}, before its 3 s lease"
    );
    // it still serves its last table: 20 %
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(edge_route(&edge, proxy.admin).map(|r| r.0), Some(20));
    let during: Vec<_> = edge_traffic
        .answers()
        .into_iter()
        .filter(|a| a.at >= cut_at)
        .collect();
    let on_canary = during.iter().filter(|a| a.backend.ends_with(&v2)).count();
    let share = on_canary as f64 / during.len().max(1) as f64;
    assert!(
        (0.15..=0.25).contains(&share),
        "{on_canary} of {} on the canary",
        during.len()
    );

    // healed: back within one poll
    gate.link("gate0", true);
    let healed = Instant::now();
    let deadline = healed + Duration::from_secs(40);
    loop {
        if edge_route(&edge, proxy.admin).is_some_and(|(w, g)| w == 50 && g >= v.generation) {
            break;
        }
        assert!(Instant::now() < deadline, "the edge proxy never caught up");
        std::thread::sleep(Duration::from_millis(50));
    }
    let caught_up = healed.elapsed();
    w.wait("three proxies again", Duration::from_secs(10), |v| {
        canary(v) == Some((50, 3, true))
    });
    let rejoined = healed.elapsed();

    // with delay and loss on the link, where the kernel has netem
    let netem = std::process::Command::new("ip")
        .args([
            "netns", "exec", &gate.name, "tc", "qdisc", "add", "dev", "gate0", "root",
        ])
        .args(["netem", "delay", "50ms", "10ms", "loss", "5%"])
        .output()
        .unwrap();
    let netem_report = if netem.status.success() {
        let t0 = Instant::now();
        block(w.client.command("chip", "promote", None)).unwrap();
        w.wait(
            "80 % at all three over a slow link",
            Duration::from_secs(30),
            |v| canary(v) == Some((80, 3, true)),
        );
        format!(
            "80 % acknowledged by all three over 50 ms ± 10 ms and 5 % loss in {:?}",
            t0.elapsed()
        )
    } else {
        format!(
            "delay and loss not tried: tc netem is not available here ({})",
            String::from_utf8_lossy(&netem.stderr).trim()
        )
    };

    let edge_answers = edge_traffic.stop();
    let answers = traffic.stop();
    for (who, a) in [("edge", &edge_answers), ("loopback", &answers)] {
        let failed = failures(a);
        assert!(failed.is_empty(), "{who}: {}", failed.join("\n"));
        assert!(a.len() > 100, "{who}: {} answers", a.len());
    }
    eprintln!(
        "partition: the edge proxy served {} requests, 0 failed ({:.0} % on the canary while cut off); dropped from the expected set {:.1} s after the cut (lease 3 s); caught up {:.2} s after the link came back, acknowledged by all three after {:.2} s; {netem_report}",
        edge_answers.len(),
        share * 100.0,
        dropped_after.as_secs_f64(),
        caught_up.as_secs_f64(),
        rejoined.as_secs_f64()
    );
    drop(proxy);
    drop(relays);
}
