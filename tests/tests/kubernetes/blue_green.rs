//! B1 on the cluster: the preview reachable by its header and its host while users stay on
//! active, then `kubectl sluice promote` switches with no request lost.

use std::time::Duration;

use sluice_tests::cluster::scenario::{Scenario, by_backend};

fn version(s: &Scenario, headers: &[(&str, &str)]) -> String {
    let addr = s.proxies[0].addr;
    let a = sluice_tests::world::block(async {
        sluice_tests::Client::new().get(addr, "/", headers).await
    })
    .unwrap();
    assert_eq!(a.status, 200);
    a.header("x-sluice-version").unwrap_or_default().to_owned()
}

#[test]
fn b1_the_preview_answers_its_header_and_host_until_promote_switches_everyone() {
    let s = Scenario::start("b1", 2);
    s.apply(&s.example("b1-blue-green-manual.yaml"));
    let r = s.wait_rollout("chip", "revision 1 Healthy", Duration::from_secs(90), |r| {
        r["status"]["phase"] == "Healthy" && r["status"]["availableReplicas"] == 10
    });
    let v1 = r["status"]["stableRS"].as_str().unwrap().to_owned();
    assert_eq!(s.selector_hash("chip-active"), v1);

    s.sluice_ok(&["set", "image", "chip", "chip=fidelissauro/chip:v2"]);
    let r = s.wait_rollout(
        "chip",
        "the preview up, waiting for promote",
        Duration::from_secs(60),
        |r| {
            r["status"]["phase"] == "Paused"
                && r["status"]["blueGreen"]["previewSelector"].is_string()
                && r["status"]["blueGreen"]["previewSelector"] != v1.as_str()
        },
    );
    let v2 = r["status"]["currentPodHash"].as_str().unwrap().to_owned();
    assert_eq!(s.selector_hash("chip-preview"), v2);
    assert_eq!(s.selector_hash("chip-active"), v1);
    // the proxies take the preview route from the controller; wait for it on the first
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while version(&s, &[("x-sluice-preview", "always")]) != "v2" {
        assert!(
            std::time::Instant::now() < deadline,
            "the preview header never reached v2"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(version(&s, &[("host", "chip-preview.example.com")]), "v2");
    assert_eq!(version(&s, &[]), "v1", "users stay on active");
    s.wait_serving("v1", Duration::from_secs(10));

    let traffic = s.traffic(200.0);
    std::thread::sleep(Duration::from_secs(1));
    s.sluice_ok(&["promote", "chip"]);
    s.wait_rollout(
        "chip",
        "switched: Healthy on v2",
        Duration::from_secs(60),
        |r| r["status"]["phase"] == "Healthy" && r["status"]["stableRS"] == v2.as_str(),
    );
    s.wait_serving("v2", Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(1));
    let answers = traffic.stop();
    let counts = by_backend(&answers);
    assert_eq!(
        counts.get(""),
        None,
        "no request failed at the switch: {counts:?}"
    );
    assert!(
        counts.contains_key(&s.backend("chip", &v1))
            && counts.contains_key(&s.backend("chip", &v2)),
        "{counts:?}"
    );
    assert_eq!(s.selector_hash("chip-active"), v2);
}
