//! The dashboard in a real headless Chromium (`tests/browser/dashboard.cjs`, driven with
//! playwright-core, with axe-core's accessibility check), against a real controller serving
//! it (`--dashboard`), three subscribed proxies and traffic through them; and `sluice
//! dashboard` forwarding the page's calls to that controller.

use std::process::Command;
use std::time::Duration;

use sluice_tests::bin;
use sluice_tests::servers::free_port;
use sluice_tests::world::{Traffic, World, WorldSpec, block, rollout};

fn node_modules() -> String {
    let out = Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../scripts/install-test-deps.sh"
        ))
        .arg("--print-node-modules")
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

const TOKEN: &str = "dashboard-admin-token";

fn canary_world(dashboard: u16) -> World {
    World::start(WorldSpec {
        documents: &rollout(
            "  strategy:\n    canary:\n      steps:\n      - setWeight: 20\n      - pause: {}\n      - setWeight: 50\n      - pause: {duration: 1h}\n      - setWeight: 100\n",
        ),
        proxies: 3,
        token: Some(TOKEN),
        controller_args: vec!["--dashboard".into(), format!("127.0.0.1:{dashboard}")],
        ..Default::default()
    })
}

#[test]
fn the_dashboard_shows_and_steers_a_canary_in_a_real_browser() {
    let port = free_port();
    let w = canary_world(port);
    let t = Traffic::start(w.proxies.iter().map(|p| p.url("/")).collect(), 100.0);
    block(w.client.set_image("chip", "chip", "chip:v2")).unwrap();
    w.wait(
        "the canary paused at step 2",
        Duration::from_secs(30),
        |v| v.status.current_step_index == Some(1) && !v.status.pause_conditions.is_empty(),
    );
    let shots = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/dashboard");
    let out = Command::new("node")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/browser/dashboard.cjs"
        ))
        .env("NODE_PATH", node_modules())
        .env("DASHBOARD", format!("http://127.0.0.1:{port}"))
        .env("TOKEN", TOKEN)
        .env("ROLLOUT", "chip")
        .env("CHROMIUM", "/usr/bin/chromium")
        .env("SHOTS", shots)
        .output()
        .expect("node is installed by scripts/install-test-deps.sh");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    assert!(said.contains("checks passed"), "{said}");
    // what the page did, seen from the API: aborted, every proxy on stable
    let v = block(w.client.get("chip")).unwrap();
    assert!(v.status.abort, "{:?}", v.status);
    let answers = t.stop();
    assert!(
        answers.iter().all(|a| a.status == Some(200)),
        "no request failed"
    );
    assert!(
        std::path::Path::new(shots)
            .join("rollout-mid-canary.png")
            .exists()
    );
}

#[test]
fn a_controller_without_a_token_refuses_to_serve_the_dashboard() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        "apiVersion: sluice.dev/v1alpha1\nkind: LocalRuntime\nmetadata: {name: t}\nspec:\n  listen: 127.0.0.1:0\n  images: {\"chip:v1\": [\"127.0.0.1:9\"]}\n",
    )
    .unwrap();
    let out = Command::new(bin("sluice"))
        .args(["controller", "-c"])
        .arg(&cfg)
        .args(["--dashboard", "127.0.0.1:0"])
        .env_remove("SLUICE_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--dashboard needs an operator token"), "{err}");
}

#[test]
fn sluice_dashboard_serves_the_page_and_forwards_its_calls() {
    let w = canary_world(free_port());
    let port = free_port();
    let mut child = Command::new(bin("sluice"))
        .args(["--server", &w.controller.url(), "dashboard", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let client = sluice_tests::Client::new();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let page = loop {
        if let Ok(a) = block(client.get(addr, "/", &[])) {
            break a;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "sluice dashboard did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(page.status, 200);
    let _ = &page.body;
    let csp = page
        .headers
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let list = block(client.get(addr, "/v1/rollouts", &[])).unwrap();
    assert_eq!(list.status, 200);
    assert!(String::from_utf8_lossy(&list.body).contains("\"key\":\"chip\""));
    // a command without the token is refused by the controller, through the forwarder
    let refused = block(client.post(addr, "/v1/rollouts/chip/abort", &[], b"{}")).unwrap();
    assert_eq!(refused.status, 401);
    let bearer = format!("Bearer {TOKEN}");
    let paused = block(client.post(
        addr,
        "/v1/rollouts/chip/pause",
        &[("authorization", bearer.as_str())],
        b"{}",
    ))
    .unwrap();
    assert_eq!(
        paused.status,
        200,
        "{}",
        String::from_utf8_lossy(&paused.body)
    );
    assert!(block(w.client.get("chip")).unwrap().paused);
    let nothing = block(client.get(addr, "/etc/passwd", &[])).unwrap();
    assert_eq!(nothing.status, 404);
    let _ = child.kill();
    let _ = child.wait();
}
