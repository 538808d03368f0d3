//! Rollouts under load lose nothing: a full canary and a full blue/green at 600 requests/s
//! over three proxies, twenty aborts at random moments, and a canary whose process dies. The
//! request loop mixes kept-alive and new connections and sends bodies with some requests;
//! every answer is kept with its time, proxy, version and status, so a failure is named.

use std::collections::BTreeMap;
use std::time::Duration;

use sluice_controller::status::Phase;
use sluice_loadtest::paced::Answer;
use sluice_tests::world::{Traffic, World, WorldSpec, block, failures, rollout, signal};

/// Requests a second over the three proxies.
const RATE: f64 = 600.0;

fn world(docs: &str, versions: Vec<(&str, Vec<&str>)>) -> World {
    World::start(WorldSpec {
        versions,
        documents: docs,
        proxies: 3,
        ..Default::default()
    })
}

fn load(w: &World) -> Traffic {
    Traffic::mixed(w.proxies.iter().map(|p| p.url("/version")).collect(), RATE)
}

/// Asserts that no request failed, naming the first few that did, and that the traffic was
/// the mix it should be.
fn none_failed(answers: &[Answer]) {
    sluice_tests::world::none_failed(answers);
    assert!(answers.len() > 500, "too little traffic: {}", answers.len());
    assert!(answers.iter().any(|a| a.fresh) && answers.iter().any(|a| !a.fresh));
    assert!(answers.iter().any(|a| a.with_body));
    for t in 0..3 {
        assert!(answers.iter().any(|a| a.target == t), "no traffic via {t}");
    }
}

/// True when rollout `chip` is Healthy on `hash` and every proxy has acknowledged it.
fn healthy_on(hash: &str) -> impl Fn(&sluice_controller::control::service::RolloutView) -> bool {
    move |v| {
        v.status.phase == Phase::Healthy
            && v.status.stable_rs.as_deref() == Some(hash)
            && v.status
                .canary
                .weights
                .as_ref()
                .is_some_and(|w| w.verified && w.canary.is_none())
    }
}

#[test]
fn a_full_canary_under_load_loses_no_request() {
    let w = world(
        &rollout(
            "  strategy:\n    canary:\n      steps:\n      - setWeight: 20\n      - pause: {duration: 1}\n      - setWeight: 50\n      - pause: {duration: 1}\n      - setWeight: 80\n      - pause: {duration: 1}\n",
        ),
        vec![("v1", vec![]), ("v2", vec![])],
    );
    let t = load(&w);
    std::thread::sleep(Duration::from_millis(500));
    block(w.client.set_image("chip", "chip", "chip:v2")).unwrap();
    w.wait(
        "v2 fully promoted",
        Duration::from_secs(30),
        healthy_on(&w.hash("v2")),
    );
    std::thread::sleep(Duration::from_millis(500));
    let answers = t.stop();
    none_failed(&answers);
    let v2 = w.hash("v2");
    let on_v2 = answers.iter().filter(|a| a.backend.ends_with(&v2)).count();
    assert!(on_v2 > 0 && on_v2 < answers.len(), "{on_v2} on v2");
    assert!(
        answers.last().is_some_and(|a| a.backend.ends_with(&v2)),
        "the last answer is not v2's"
    );
    eprintln!(
        "full canary at {RATE} req/s over 3 proxies: {} requests ({} on new connections, {} with a body), 0 failed",
        answers.len(),
        answers.iter().filter(|a| a.fresh).count(),
        answers.iter().filter(|a| a.with_body).count()
    );
}

#[test]
fn a_full_blue_green_under_load_loses_no_request() {
    let w = world(
        &rollout(
            "  strategy:\n    blueGreen:\n      activeService: chip-active\n      previewService: chip-preview\n      autoPromotionEnabled: true\n      autoPromotionSeconds: 1\n      scaleDownDelaySeconds: 1\n",
        ),
        vec![("v1", vec![]), ("v2", vec![])],
    );
    let t = load(&w);
    std::thread::sleep(Duration::from_millis(500));
    block(w.client.set_image("chip", "chip", "chip:v2")).unwrap();
    w.wait(
        "v2 active",
        Duration::from_secs(30),
        healthy_on(&w.hash("v2")),
    );
    std::thread::sleep(Duration::from_millis(500));
    let answers = t.stop();
    none_failed(&answers);
    let (v1, v2) = (w.hash("v1"), w.hash("v2"));
    // users move from v1 to v2 at once: once a proxy has answered from v2, it never answers
    // from v1 again
    for proxy in 0..3 {
        let mine: Vec<&Answer> = answers.iter().filter(|a| a.target == proxy).collect();
        let first_v2 = mine
            .iter()
            .position(|a| a.backend.ends_with(&v2))
            .expect("v2 answered");
        assert!(first_v2 > 0, "v2 answered before the switch");
        // answers are in send order; one sent just before the switch may end after it
        let late_v1 = mine[first_v2..]
            .iter()
            .filter(|a| a.backend.ends_with(&v1) && a.at > mine[first_v2].at + a.latency)
            .count();
        assert_eq!(late_v1, 0, "proxy {proxy} went back to v1");
    }
    eprintln!(
        "full blue/green at {RATE} req/s over 3 proxies: {} requests, 0 failed",
        answers.len()
    );
}

/// A pseudo-random sequence from a fixed seed (SplitMix64): the same moments every run, and
/// printed, so a failure can be replayed.
struct Moments(u64);

impl Moments {
    fn next_millis(&mut self, below: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % below
    }
}

/// A one-second analysis step: a job that sleeps.
const SETTLE: &str = "---
apiVersion: sluice.dev/v1alpha1
kind: AnalysisTemplate
metadata: {name: settle}
spec:
  metrics:
  - name: settle
    provider: {job: {command: [sleep, \"1\"]}}
";

#[test]
fn twenty_aborts_at_random_moments_under_load_lose_no_request() {
    let docs = format!(
        "{}{SETTLE}",
        rollout(
            "  strategy:\n    canary:\n      steps:\n      - setWeight: 10\n      - pause: {duration: 1}\n      - setWeight: 40\n      - analysis: {templates: [{templateName: settle}]}\n      - setWeight: 70\n      - pause: {}\n"
        )
    );
    let w = world(&docs, vec![("v1", vec![]), ("v2", vec![])]);
    let t = load(&w);
    let canary = w.hash("v2");
    let mut moments = Moments(0x5eed_0022);
    let mut took = Vec::new();
    let mut hit: BTreeMap<String, u32> = BTreeMap::new();
    block(w.client.set_image("chip", "chip", "chip:v2")).unwrap();
    for i in 0..20 {
        w.wait("the canary under way", Duration::from_secs(10), |v| {
            v.status.current_pod_hash.as_deref() == Some(canary.as_str()) && !v.status.abort
        });
        let wait = moments.next_millis(3500);
        std::thread::sleep(Duration::from_millis(wait));
        let before = w.view();
        let step = before.status.current_step_index.unwrap_or(0) as usize;
        let moment = format!(
            "{} ({})",
            before.step_list.get(step).cloned().unwrap_or_default(),
            if before.status.pause_conditions.is_empty() {
                "running"
            } else {
                "paused"
            }
        );
        *hit.entry(moment.clone()).or_default() += 1;
        let at = t.now();
        block(w.client.command("chip", "abort", None)).unwrap();
        w.wait("every proxy at 0 %", Duration::from_secs(10), |v| {
            v.status.abort
                && v.status
                    .canary
                    .weights
                    .as_ref()
                    .is_some_and(|x| x.verified && x.canary.is_none())
        });
        std::thread::sleep(Duration::from_millis(300));
        let last = t
            .answers()
            .iter()
            .filter(|a| a.at >= at && a.backend.ends_with(&canary))
            .map(|a| a.at)
            .max()
            .unwrap_or(at);
        let ms = last.saturating_sub(at).as_secs_f64() * 1000.0;
        assert!(
            ms < 2000.0,
            "abort {i} after {wait} ms at {moment}: the canary still answered {ms:.0} ms later"
        );
        took.push(ms);
        if i < 19 {
            block(w.client.command("chip", "retry", None)).unwrap();
        }
    }
    let answers = t.stop();
    none_failed(&answers);
    assert!(
        hit.len() >= 3,
        "the aborts came at too few moments: {hit:?}"
    );
    took.sort_by(|a, b| a.total_cmp(b));
    eprintln!(
        "20 aborts at random moments ({hit:?}) under {RATE} req/s over 3 proxies: {} requests, 0 failed; abort → last request to the canary: median {:.0} ms, worst {:.0} ms",
        answers.len(),
        took[10],
        took[19]
    );
}

/// A canary at 30 % whose process is SIGKILLed; a background analysis on the error rate.
fn dying_canary(failover: bool) -> (usize, usize, f64) {
    let routing = if failover {
        "      trafficRouting: {sluice: {failover: {statuses: [502, 503]}}}\n"
    } else {
        ""
    };
    let docs = format!(
        "{}---
apiVersion: sluice.dev/v1alpha1
kind: AnalysisTemplate
metadata: {{name: error-rate}}
spec:
  metrics:
  - name: error-rate
    interval: 1s
    failureCondition: result > 0.05
    provider: {{proxy: {{query: error-rate, window: 2s, minRequests: 10}}}}
",
        rollout(&format!(
            "  strategy:\n    canary:\n{routing}      analysis: {{templates: [{{templateName: error-rate}}]}}\n      steps:\n      - setWeight: 30\n      - pause: {{}}\n"
        ))
    );
    let w = world(&docs, vec![("v1", vec![]), ("v2", vec![])]);
    let t = load(&w);
    block(w.client.set_image("chip", "chip", "chip:v2")).unwrap();
    w.wait("30 % on the canary", Duration::from_secs(10), |v| {
        v.status
            .canary
            .weights
            .as_ref()
            .is_some_and(|x| x.verified && x.canary.as_ref().is_some_and(|c| c.weight == 30))
    });
    std::thread::sleep(Duration::from_millis(1500));
    let killed = t.now();
    signal(w.backends["v2"].pid(), "KILL");
    w.wait("aborted by the analysis", Duration::from_secs(20), |v| {
        v.status.abort
            && v.status
                .canary
                .weights
                .as_ref()
                .is_some_and(|x| x.verified && x.canary.is_none())
    });
    let aborted = t.now();
    std::thread::sleep(Duration::from_millis(300));
    let answers = t.stop();
    let failed = failures(&answers);
    let v1 = w.hash("v1");
    assert!(
        answers
            .iter()
            .filter(|a| a.failed())
            .all(|a| a.at + a.latency >= killed && !a.backend.ends_with(&v1)),
        "a failure that was not the canary's:\n{}",
        failed.join("\n")
    );
    (
        failed.len(),
        answers.len(),
        aborted.saturating_sub(killed).as_secs_f64(),
    )
}

#[test]
fn a_canary_that_dies_with_failover_fails_no_user_and_is_aborted() {
    let (failed, sent, seconds) = dying_canary(true);
    eprintln!(
        "canary SIGKILLed at 30 % with failover: aborted {seconds:.1} s later; {failed} of {sent} user requests failed"
    );
    assert_eq!(failed, 0);
    assert!(seconds < 10.0, "the abort took {seconds:.1} s");
}

#[test]
fn a_canary_that_dies_without_failover_is_aborted_within_a_bound() {
    let (failed, sent, seconds) = dying_canary(false);
    eprintln!(
        "canary SIGKILLed at 30 % without failover: aborted {seconds:.1} s later; {failed} of {sent} user requests failed meanwhile"
    );
    assert!(seconds < 10.0, "the abort took {seconds:.1} s");
    // at most the canary's share of the requests sent until the abort
    assert!(
        (failed as f64) <= RATE * 0.3 * seconds + 50.0,
        "{failed} failed in {seconds:.1} s"
    );
}
