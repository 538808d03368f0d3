//! The article's scenarios (DESIGN §1) end to end in local mode, each with a request loop
//! running through two or three proxies: the weights seen in the traffic per generation, the
//! phases, and zero failed requests caused by a switch. Also the rollback-speed figures.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice_controller::analysis::run::RunPhase;
use sluice_controller::control::service::RolloutView;
use sluice_controller::engine::Reason;
use sluice_controller::status::Phase;
use sluice_loadtest::paced::Answer;
use sluice_tests::world::{Traffic, World, WorldSpec, block, example, rollout, signal};

/// Records the weight of every generation the rollout publishes, by polling its view.
/// Generation → (canary revision, weight).
type Weights = BTreeMap<u64, (Option<String>, u32)>;

struct WeightLog {
    weights: Arc<Mutex<Weights>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl WeightLog {
    fn start(w: &World) -> Self {
        let weights = Arc::new(Mutex::new(BTreeMap::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let client = w.client.clone();
        let (wt, st) = (weights.clone(), stop.clone());
        let handle = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            while !st.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(v) = rt.block_on(client.get("chip"))
                    && let Some(r) = &v.route
                {
                    wt.lock()
                        .unwrap()
                        .insert(v.generation, (r.canary.clone(), r.weight));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Self {
            weights,
            stop,
            handle: Some(handle),
        }
    }

    fn finish(mut self) -> Weights {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        self.weights.lock().unwrap().clone()
    }
}

/// Checks that each generation's answers split as its weight says (exact split: within ±1 per
/// proxy), and returns the weights seen in order.
fn check_split_per_generation(answers: &[Answer], weights: &Weights, proxies: usize) -> Vec<u32> {
    let mut by_gen: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for a in answers.iter().filter(|a| a.status.is_some()) {
        let Some(g) = a.generation else { continue };
        let e = by_gen.entry(g).or_default();
        e.0 += 1;
        if let Some((Some(c), _)) = weights.get(&g)
            && a.backend.ends_with(c.as_str())
        {
            e.1 += 1;
        }
    }
    let mut seen = Vec::new();
    let mut checked = 0;
    for (g, (n, canary)) in &by_gen {
        let Some((c, w)) = weights.get(g) else {
            continue;
        };
        let w = if c.is_some() { *w } else { 0 };
        let ideal = *n as f64 * f64::from(w) / 100.0;
        assert!(
            (*canary as f64 - ideal).abs() <= proxies as f64,
            "generation {g} at weight {w}: {canary} of {n} answers from the canary; weights seen: {weights:?}"
        );
        checked += n;
        if seen.last() != Some(&w) {
            seen.push(w);
        }
    }
    let total: u64 = by_gen.values().map(|(n, _)| n).sum();
    assert!(
        checked * 10 >= total * 9,
        "only {checked} of {total} answers had a known generation"
    );
    seen
}

fn no_failures(answers: &[Answer]) {
    let failed: Vec<&Answer> = answers.iter().filter(|a| a.failed()).collect();
    assert!(
        failed.is_empty(),
        "{} requests failed, first: {:?}",
        failed.len(),
        failed.first()
    );
    assert!(answers.len() > 10, "too little traffic: {}", answers.len());
}

fn healthy_on(w: &World, v: &str) -> impl Fn(&RolloutView) -> bool {
    let h = w.hash(v);
    move |view| {
        view.status.phase == Phase::Healthy
            && view.status.stable_rs.as_deref() == Some(h.as_str())
            && view
                .status
                .canary
                .weights
                .as_ref()
                .is_some_and(|w| w.verified)
    }
}

fn world(strategy: &str, proxies: usize) -> World {
    world_of(&rollout(strategy), proxies)
}

fn world_of(docs: &str, proxies: usize) -> World {
    World::start(WorldSpec {
        versions: vec![("v1", vec![]), ("v2", vec![]), ("v3", vec![])],
        documents: docs,
        proxies,
        ..Default::default()
    })
}

fn loop_on(w: &World) -> Traffic {
    Traffic::start(w.proxies.iter().map(|p| p.url("/version")).collect(), 200.0)
}

#[test]
fn c1_and_w1_the_canary_moves_by_itself_while_a_person_watches() {
    let w = world_of(&example("c1-canary-auto.yaml"), 2);
    let watch = Command::new(sluice_tests::bin("sluice"))
        .args([
            "--server",
            &w.controller.url(),
            "get",
            "rollout",
            "chip",
            "--watch",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let log = WeightLog::start(&w);
    let t = loop_on(&w);
    std::thread::sleep(Duration::from_millis(300));
    block(w.client.set_image("chip", "chip", "chip:v2")).unwrap();
    let v = w.wait("v2 stable", Duration::from_secs(30), healthy_on(&w, "v2"));
    std::thread::sleep(Duration::from_millis(300));
    let answers = t.stop();
    let weights = log.finish();
    no_failures(&answers);
    let seen = check_split_per_generation(&answers, &weights, 2);
    for wgt in [20, 40, 60, 80] {
        assert!(
            seen.contains(&wgt),
            "weight {wgt} never seen in the traffic: {seen:?}"
        );
    }
    // revision 1 is kept for rollback
    assert!(
        v.revisions
            .iter()
            .any(|r| r.revision == 1 && r.role == "old")
    );
    signal(watch.id(), "TERM");
    let out = watch.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for wgt in [20, 40, 60, 80] {
        assert!(
            text.contains(&format!("SetWeight:     {wgt}/100")),
            "the watch never showed {wgt}: {text}"
        );
    }
    assert!(text.contains("revision 2 is stable"), "{text}");
}

#[test]
fn c2_stops_at_80_then_promote_goes_on_and_abort_goes_back() {
    let w = world_of(&example("c2-canary-final-promote.yaml"), 2);
    let log = WeightLog::start(&w);
    let t = loop_on(&w);
    block(w.client.set_image("chip", "chip", "chip:v2")).unwrap();
    w.wait("80 % paused", Duration::from_secs(20), |v| {
        v.status.phase == Phase::Paused
            && v.status
                .canary
                .weights
                .as_ref()
                .is_some_and(|x| x.canary.as_ref().is_some_and(|c| c.weight == 80))
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        w.view().status.phase,
        Phase::Paused,
        "stays at 80 % until promoted"
    );
    block(w.client.command("chip", "promote", None)).unwrap();
    w.wait("v2 stable", Duration::from_secs(20), healthy_on(&w, "v2"));
    // and a second rollout aborted at 80 % sends everything back
    block(w.client.set_image("chip", "chip", "chip:v3")).unwrap();
    w.wait("80 % paused again", Duration::from_secs(20), |v| {
        v.status.phase == Phase::Paused && v.status.current_step_index == Some(5)
    });
    let abort_at = t.now();
    block(w.client.command("chip", "abort", None)).unwrap();
    w.wait("aborted and verified", Duration::from_secs(10), |v| {
        v.status.abort
            && v.status
                .canary
                .weights
                .as_ref()
                .is_some_and(|x| x.verified && x.canary.is_none())
    });
    std::thread::sleep(Duration::from_millis(500));
    let answers = t.stop();
    let weights = log.finish();
    no_failures(&answers);
    let seen = check_split_per_generation(&answers, &weights, 2);
    assert!(seen.contains(&80), "{seen:?}");
    let (v2, v3) = (w.hash("v2"), w.hash("v3"));
    let late_v3 = answers
        .iter()
        .filter(|a| a.backend.ends_with(&v3) && a.at > abort_at + Duration::from_millis(500))
        .count();
    assert_eq!(
        late_v3, 0,
        "v3 still answered half a second after the abort"
    );
    assert!(
        answers
            .iter()
            .filter(|a| a.at > abort_at + Duration::from_millis(500))
            .all(|a| a.backend.ends_with(&v2))
    );
}

#[test]
fn c3_and_c4_promotions_by_hand() {
    let w = world_of(&example("c3-canary-initial-promote.yaml"), 1);
    let log = WeightLog::start(&w);
    let t = loop_on(&w);
    block(w.client.set_image("chip", "chip", "chip:v2")).unwrap();
    w.wait("paused at 20 %", Duration::from_secs(10), |v| {
        v.status.phase == Phase::Paused
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        w.view().status.current_step_index,
        Some(1),
        "waits for a person at 20 %"
    );
    block(w.client.command("chip", "promote", None)).unwrap();
    w.wait(
        "the timed steps to run",
        Duration::from_secs(15),
        healthy_on(&w, "v2"),
    );
    std::thread::sleep(Duration::from_millis(200));
    let answers = t.stop();
    no_failures(&answers);
    let seen = check_split_per_generation(&answers, &log.finish(), 1);
    assert!(
        [20, 40, 60, 80].iter().all(|w| seen.contains(w)),
        "{seen:?}"
    );

    let w = world_of(&example("c4-canary-manual-steps.yaml"), 1);
    let log = WeightLog::start(&w);
    let t = loop_on(&w);
    block(w.client.set_image("chip", "chip", "chip:v2")).unwrap();
    for step in (1..18).step_by(2) {
        w.wait("a pause", Duration::from_secs(10), |v| {
            v.status.phase == Phase::Paused && v.status.current_step_index == Some(step)
        });
        std::thread::sleep(Duration::from_millis(300));
        block(w.client.command("chip", "promote", None)).unwrap();
    }
    w.wait("v2 stable", Duration::from_secs(10), healthy_on(&w, "v2"));
    let answers = t.stop();
    no_failures(&answers);
    let seen = check_split_per_generation(&answers, &log.finish(), 1);
    assert!(
        (10..=90).step_by(10).all(|w| seen.contains(&w)),
        "every step's weight served: {seen:?}"
    );
}

#[test]
fn c5_abort_reaches_every_proxy_fast_twenty_times_under_load() {
    let w = world(
        "  strategy:\n    canary:\n      steps:\n      - setWeight: 50\n      - pause: {}\n",
        3,
    );
    let log = WeightLog::start(&w);
    let t = Traffic::start(
        w.proxies.iter().map(|p| p.url("/version")).collect(),
        1000.0,
    );
    block(w.client.set_image("chip", "chip", "chip:v2")).unwrap();
    let canary = w.hash("v2");
    let mut millis = Vec::new();
    let mut acks = Vec::new();
    for i in 0..20 {
        w.wait("50 % on the canary", Duration::from_secs(10), |v| {
            v.status.phase == Phase::Paused
                && v.status
                    .canary
                    .weights
                    .as_ref()
                    .is_some_and(|x| x.verified && x.canary.is_some())
        });
        std::thread::sleep(Duration::from_millis(150));
        let at = t.now();
        block(w.client.command("chip", "abort", None)).unwrap();
        w.wait("abort acknowledged", Duration::from_secs(10), |v| {
            v.status
                .canary
                .weights
                .as_ref()
                .is_some_and(|x| x.verified && x.canary.is_none())
        });
        std::thread::sleep(Duration::from_millis(300));
        let answers = t.answers();
        let last = answers
            .iter()
            .filter(|a| {
                a.at >= at.saturating_sub(Duration::from_millis(100))
                    && a.backend.ends_with(&canary)
            })
            .map(|a| a.at)
            .max()
            .unwrap_or(at);
        millis.push(last.saturating_sub(at).as_secs_f64() * 1000.0);
        let ack = block(w.client.acks())
            .unwrap()
            .into_iter()
            .rfind(|a| a.route == "shop/chip")
            .unwrap();
        assert_eq!(ack.proxies, 3);
        acks.push(ack.millis);
        if i < 19 {
            block(w.client.command("chip", "retry", None)).unwrap();
        }
    }
    let answers = t.stop();
    let seen = check_split_per_generation(&answers, &log.finish(), 3);
    assert!(seen.contains(&50), "{seen:?}");
    no_failures(&answers);
    millis.sort_by(|a, b| a.partial_cmp(b).unwrap());
    acks.sort_unstable();
    eprintln!(
        "abort → last request sent to the canary at any of 3 proxies (1000 req/s), 20 aborts: median {:.1} ms, worst {:.1} ms; abort route published → applied by all 3: median {} ms, worst {} ms",
        millis[millis.len() / 2],
        millis[millis.len() - 1],
        acks[acks.len() / 2],
        acks[acks.len() - 1]
    );
    assert_eq!(millis.len(), 20);
}

#[test]
fn c6_undo_after_full_promotion_fast_tracks_back() {
    let w = world_of(&example("c6-rollback-window.yaml"), 2);
    let t = loop_on(&w);
    block(w.client.set_image("chip", "chip", "chip:v2")).unwrap();
    w.wait("v2 stable", Duration::from_secs(15), healthy_on(&w, "v2"));
    let undo_at = t.now();
    let (code, out, err) = w.cli(&["undo", "chip"]);
    assert_eq!(code, 0, "{out}{err}");
    let v = w.wait("back on v1", Duration::from_secs(10), healthy_on(&w, "v1"));
    assert!(
        v.events
            .iter()
            .any(|e| e.reason == Reason::RolloutFastTracked),
        "{:?}",
        v.events
    );
    std::thread::sleep(Duration::from_millis(300));
    let answers = t.stop();
    no_failures(&answers);
    // fast-tracked: no 20 % step on the way back
    let back: Vec<&Answer> = answers.iter().filter(|a| a.at > undo_at).collect();
    assert!(
        back.iter()
            .any(|a| a.backend.ends_with("v1") || a.backend.ends_with(&w.hash("v1")))
    );
}

#[test]
fn b1_preview_by_host_or_header_while_users_stay_on_active() {
    let w = world_of(&example("b1-blue-green-manual.yaml"), 2);
    let log = WeightLog::start(&w);
    let users = loop_on(&w);
    block(w.client.set_image("chip", "chip", "chip:v2")).unwrap();
    w.wait(
        "the preview paused for a person",
        Duration::from_secs(10),
        |v| v.status.phase == Phase::Paused,
    );
    let client = sluice_tests::Client::new();
    let v2 = w.hash("v2");
    block(async {
        for p in &w.proxies {
            for _ in 0..20 {
                let a = client
                    .get(p.addr, "/", &[("x-sluice-preview", "always")])
                    .await
                    .unwrap();
                assert!(a.header("x-sluice-backend").unwrap().ends_with(&v2));
                let a = client
                    .get(p.addr, "/", &[("host", "chip-preview.example.com")])
                    .await
                    .unwrap();
                assert!(a.header("x-sluice-backend").unwrap().ends_with(&v2));
            }
        }
    });
    let before_promote = users.now();
    block(w.client.command("chip", "promote", None)).unwrap();
    w.wait("switched", Duration::from_secs(10), healthy_on(&w, "v2"));
    std::thread::sleep(Duration::from_millis(300));
    let answers = users.stop();
    let seen = check_split_per_generation(&answers, &log.finish(), 2);
    assert_eq!(
        seen.first(),
        Some(&0),
        "users got weight 0 while the preview ran: {seen:?}"
    );
    no_failures(&answers);
    assert!(
        answers
            .iter()
            .filter(|a| a.at < before_promote)
            .all(|a| a.backend.ends_with(&w.hash("v1"))),
        "a user reached the preview before promotion"
    );
    assert!(
        answers
            .iter()
            .rev()
            .take(20)
            .all(|a| a.backend.ends_with(&v2))
    );
}

/// Testers' requests with the preview header, so that the proxies count the preview.
fn testers(w: &World) -> (tokio::runtime::Runtime, sluice_loadtest::paced::PacedLoop) {
    let targets = w.proxies.iter().map(|p| p.url("/version")).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let lp = rt.block_on(async {
        sluice_loadtest::paced::start(sluice_loadtest::paced::PacedConfig {
            targets,
            rate: 50.0,
            connections: 2,
            max_duration: Duration::from_secs(120),
            headers: vec![(
                "x-sluice-preview".parse().unwrap(),
                "always".parse().unwrap(),
            )],
            ..sluice_loadtest::paced::PacedConfig::new(Vec::new(), 50.0, Duration::ZERO)
        })
    });
    (rt, lp)
}

/// A blue/green example whose pre-promotion analysis passes for v2 — then a person promotes —
/// and fails for v3, which answers 20 % 5xx: users never reach v3, no switch fails a request.
fn blue_green_promoted_only_after_its_analysis(file: &str, with_testers: bool) {
    let w = World::start(WorldSpec {
        versions: vec![
            ("v1", vec![]),
            ("v2", vec![]),
            ("v3", vec!["--error-rate", "0.2"]),
        ],
        documents: &example(file),
        proxies: 2,
        ..Default::default()
    });
    let users = loop_on(&w);
    let testers = with_testers.then(|| testers(&w));
    block(w.client.set_image("chip", "chip", "chip:v2")).unwrap();
    let v = w.wait(
        "the analysis passed, waiting for a person",
        Duration::from_secs(40),
        |v| {
            v.status.phase == Phase::Paused
                && v.analysis_runs
                    .iter()
                    .any(|r| r.name.ends_with("-pre") && r.phase == RunPhase::Successful)
        },
    );
    assert_eq!(
        v.status.stable_rs.as_deref(),
        Some(w.hash("v1").as_str()),
        "no switch before the promotion"
    );
    block(w.client.command("chip", "promote", None)).unwrap();
    w.wait("v2 promoted", Duration::from_secs(20), healthy_on(&w, "v2"));
    block(w.client.set_image("chip", "chip", "chip:v3")).unwrap();
    w.wait("v3 refused", Duration::from_secs(40), |v| {
        v.status.phase == Phase::Degraded
    });
    let users_answers = users.stop();
    if let Some((rt, lp)) = testers {
        let _ = rt.block_on(lp.stop());
    }
    no_failures(&users_answers);
    assert!(
        users_answers
            .iter()
            .all(|a| !a.backend.ends_with(&w.hash("v3")))
    );
}

#[test]
fn b2_promotion_only_after_the_warm_up() {
    // the warm-up sends its own 1000 requests to the preview
    blue_green_promoted_only_after_its_analysis("b2-blue-green-warm-up.yaml", false);
}

#[test]
fn b3_promotion_only_while_the_preview_succeeds() {
    // the proxies measure the preview from the testers' requests
    blue_green_promoted_only_after_its_analysis("b3-blue-green-success-rate.yaml", true);
}

/// A1: a canary at 20 % of 200 req/s over 3 proxies answering 30 % 503, with background
/// analysis by `metric` (YAML of one metric) and the proxies' failover to stable when
/// `failover`; returns how long from the canary's first bad answer to the abort acknowledged
/// by every proxy, how many user requests failed, and the rollout then.
fn a1_abort(metric: &str, label: &str, failover: bool) -> (f64, usize, RolloutView) {
    let routing = if failover {
        "      trafficRouting: {sluice: {failover: {statuses: [503]}}}\n"
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
{metric}",
        rollout(&format!(
            "  strategy:\n    canary:\n{routing}      analysis: {{templates: [{{templateName: error-rate}}]}}\n      steps:\n      - setWeight: 20\n      - pause: {{duration: 60}}\n"
        ))
    );
    let w = World::start(WorldSpec {
        versions: vec![
            ("v1", vec![]),
            ("v2", vec!["--error-rate", "0.3", "--error-status", "503"]),
        ],
        documents: &docs,
        proxies: 3,
        ..Default::default()
    });
    let t = loop_on(&w);
    block(w.client.set_image("chip", "chip", "chip:v2")).unwrap();
    w.wait("aborted by the analysis", Duration::from_secs(20), |v| {
        v.status.abort
            && v.status
                .canary
                .weights
                .as_ref()
                .is_some_and(|x| x.verified && x.canary.is_none())
    });
    let acked = t.now();
    std::thread::sleep(Duration::from_millis(300));
    let answers = t.stop();
    let first_bad = answers
        .iter()
        .filter(|a| a.failed())
        .map(|a| a.at + a.latency)
        .min();
    assert!(
        failover || first_bad.is_some(),
        "the canary failed some requests"
    );
    let failed = answers.iter().filter(|a| a.failed()).count();
    // with failover no user sees the canary's errors: there is no first bad answer to time
    let seconds = first_bad.map_or(f64::NAN, |b| acked.saturating_sub(b).as_secs_f64());
    eprintln!(
        "{label}: first 5xx → abort acknowledged by 3 proxies: {seconds:.2} s, user requests failed meanwhile: {failed} (of {} sent at 200/s)",
        answers.len()
    );
    assert!(
        answers
            .iter()
            .filter(|a| a.failed())
            .all(|a| a.backend.ends_with(&w.hash("v2"))),
        "a failure came from stable"
    );
    // bounded: the canary's share of 200 req/s for at most 10 s
    assert!(
        failed <= 120,
        "{failed} user requests failed before the abort"
    );
    let v = w.view();
    assert!(v.status.message.contains("background analysis"));
    (seconds, failed, v)
}

#[test]
fn a1_a_bad_canary_is_aborted_by_itself_within_seconds() {
    a1_abort(
        "    - name: error-rate
      interval: 1s
      failureCondition: result > 0.05
      provider: {proxy: {query: error-rate, window: 2s, minRequests: 10}}
",
        "error-rate over a 2 s window",
        false,
    );
}

/// The `canary-vs-stable` metric of the A1 runs: a canary 4 times worse than stable is worse.
const VERSUS_STABLE: &str = "    - name: versus-stable
      interval: 1s
      provider: {proxy: {query: canary-vs-stable, window: 60s, minRequests: 10, worseRatio: 4}}
";

#[test]
fn a1_canary_vs_stable_aborts_a_bad_canary_from_the_evidence() {
    let (seconds, failed, v) = a1_abort(VERSUS_STABLE, "canary-vs-stable", false);
    // 30 % of 20 % of 200 req/s is 12 failed requests a second; each canary error weighs
    // ln(π1/π0) = ln(0.5/0.2) ≈ 0.92 against a clean stable, so about five of them pass
    // ln(95) ≈ 4.55; the verdict is taken on the report that brings them (every 100 ms while a
    // canary is live), not on a timer. The error-rate window of the test above lets 23 fail.
    assert!(failed < 23, "{failed} user requests failed");
    assert!(
        seconds < 1.5,
        "{seconds} s from the first bad answer to the abort"
    );
    // the figures that decided it are in the view (and so in `get rollout` and the API)
    let metric = &v.analysis_runs[0].metrics[0];
    let detail = metric.detail.as_deref().unwrap_or_default();
    assert!(
        detail.starts_with("worse than stable: canary ") && detail.contains("statistic"),
        "{metric:?}"
    );
}

#[test]
fn a1_canary_vs_stable_on_latency_aborts_a_slow_canary() {
    let docs = format!(
        "{}---
apiVersion: sluice.dev/v1alpha1
kind: AnalysisTemplate
metadata: {{name: slow}}
spec:
  metrics:
    - name: slower-than-stable
      interval: 1s
      provider: {{proxy: {{query: canary-vs-stable, slowerThan: 250ms, window: 60s, minRequests: 10, worseRatio: 4}}}}
",
        rollout(
            "  strategy:\n    canary:\n      analysis: {templates: [{templateName: slow}]}\n      steps:\n      - setWeight: 20\n      - pause: {duration: 60}\n"
        )
    );
    let w = World::start(WorldSpec {
        versions: vec![("v1", vec![]), ("v2", vec!["--delay", "400ms"])],
        documents: &docs,
        proxies: 3,
        ..Default::default()
    });
    let t = loop_on(&w);
    block(w.client.set_image("chip", "chip", "chip:v2")).unwrap();
    let v = w.wait("a slow canary aborted", Duration::from_secs(20), |v| {
        v.status.abort
    });
    let answers = t.stop();
    assert!(answers.iter().all(|a| !a.failed()), "slow, never failed");
    let metric = &v.analysis_runs[0].metrics[0];
    assert!(
        metric
            .detail
            .as_deref()
            .is_some_and(|d| d.starts_with("worse than stable") && d.contains("slower than 250ms")),
        "{metric:?}"
    );
}

#[test]
fn a1_canary_vs_stable_with_failover_aborts_with_no_user_request_failed() {
    // the proxies send the canary's 503s to stable; they still count against the canary
    let (_, failed, v) = a1_abort(VERSUS_STABLE, "canary-vs-stable with failover", true);
    assert_eq!(failed, 0, "no user request failed");
    let metric = &v.analysis_runs[0].metrics[0];
    assert!(
        metric
            .detail
            .as_deref()
            .is_some_and(|d| d.starts_with("worse than stable")),
        "{metric:?}"
    );
}

#[test]
fn p1_testers_reach_the_new_version_with_a_header() {
    let w = world_of(&example("p1-header-preview.yaml"), 2);
    block(w.client.set_image("chip", "chip", "chip:v2")).unwrap();
    w.wait("10 % paused", Duration::from_secs(10), |v| {
        v.status.phase == Phase::Paused
    });
    let v2 = w.hash("v2");
    let client = sluice_tests::Client::new();
    let (mut tester_v2, mut user_v2, n) = (0, 0, 200);
    block(async {
        for i in 0..n {
            let p = &w.proxies[i % 2];
            let a = client
                .get(p.addr, "/", &[("x-canary", "always")])
                .await
                .unwrap();
            tester_v2 += usize::from(a.header("x-sluice-backend").unwrap().ends_with(&v2));
            let a = client.get(p.addr, "/", &[]).await.unwrap();
            user_v2 += usize::from(a.header("x-sluice-backend").unwrap().ends_with(&v2));
        }
    });
    assert_eq!(tester_v2, n, "every tester request reaches v2");
    assert!(
        (16..=24).contains(&user_v2),
        "{user_v2} of {n} user requests on v2 at 10 %"
    );
}

#[test]
fn the_demo_runs_and_reports_the_analysis_abort() {
    let start = Instant::now();
    let out = Command::new(sluice_tests::bin("sluice"))
        .args(["demo", "--fast"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("aborted by analysis:    yes"), "{text}");
    assert!(
        text.contains("first bad answer → 100 % on stable at every proxy"),
        "{text}"
    );
    assert!(text.contains("none caused by a switch: true"), "{text}");
    assert!(start.elapsed() < Duration::from_secs(120));
}

#[test]
fn set_mirror_route_copies_traffic_to_the_canary_while_users_stay_on_stable() {
    let w = world(
        "  strategy:\n    canary:\n      steps:\n      - setMirrorRoute:\n          name: shadow\n          percentage: 50\n          match: [{method: {exact: GET}}]\n      - pause: {}\n",
        1,
    );
    block(w.client.set_image("chip", "chip", "chip:v2")).unwrap();
    w.wait("paused with the mirror on", Duration::from_secs(10), |v| {
        v.status.phase == Phase::Paused
    });
    let t = loop_on(&w);
    std::thread::sleep(Duration::from_secs(2));
    let answers = t.stop();
    no_failures(&answers);
    assert!(
        answers.iter().all(|a| a.backend.ends_with(&w.hash("v1"))),
        "a user got the canary's answer"
    );
    std::thread::sleep(Duration::from_millis(500));
    let copies = block(w.client.stats("shop/chip", &w.hash("v2"), None)).unwrap()["requests"]
        .as_u64()
        .unwrap();
    let sent = answers.len() as u64;
    assert!(
        copies + 2 >= sent / 2 && copies <= sent / 2 + 2,
        "{copies} copies of {sent} requests at 50 %"
    );
}
