//! Faults under traffic: the controller SIGKILLed and restarted in every phase of a rollout,
//! a proxy SIGKILLed and restarted, and a state directory that fills up. In each, the proxies
//! keep the split they were given, the rollout goes on from where it was, and no request is
//! lost.

use std::time::{Duration, Instant};

use sluice_controller::control::service::RolloutView;
use sluice_controller::status::Phase;
use sluice_loadtest::paced::Answer;
use sluice_tests::world::{Traffic, World, WorldSpec, block, none_failed, rollout};

const SETTLE: &str = "---
apiVersion: sluice.dev/v1alpha1
kind: AnalysisTemplate
metadata: {name: settle}
spec:
  metrics:
  - name: settle
    provider: {job: {command: [sleep, \"2\"]}}
";

/// The canary's share of the answers sent between `from` and `to` (loop time).
fn share(answers: &[Answer], from: Duration, to: Duration, canary: &str) -> (f64, usize) {
    let window: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.at >= from && a.at < to && a.status.is_some())
        .collect();
    let on = window
        .iter()
        .filter(|a| a.backend.ends_with(canary))
        .count();
    (on as f64 / window.len().max(1) as f64, window.len())
}

fn weight_of(v: &RolloutView) -> Option<u32> {
    v.status
        .canary
        .weights
        .as_ref()
        .filter(|w| w.verified)
        .map(|w| w.canary.as_ref().map_or(0, |c| c.weight))
}

/// The weight verified by both proxies of a two-proxy world. A controller just restarted
/// expects only the proxies whose leases it has seen renewed, and one of them can still be in
/// its reconnect backoff: its weight is then verified by the other alone.
fn weight_by_both(v: &RolloutView) -> Option<u32> {
    weight_of(v).filter(|_| {
        v.status
            .canary
            .weights
            .as_ref()
            .is_some_and(|w| w.expected == 2)
    })
}

fn step(v: &RolloutView) -> u32 {
    v.status.current_step_index.unwrap_or(0)
}

/// SIGKILLs the controller, lets the proxies serve alone for a second, and starts it again on
/// the same state; returns the loop-time window the controller was away.
fn kill_and_restart(w: &mut World, t: &Traffic) -> (Duration, Duration) {
    w.controller.kill9();
    let from = t.now();
    std::thread::sleep(Duration::from_secs(1));
    let to = t.now();
    w.controller.restart();
    (from, to)
}

#[test]
fn the_controller_killed_in_every_phase_resumes_where_it_was_and_the_proxies_keep_their_split() {
    let docs = format!(
        "{}{SETTLE}",
        rollout(
            "  strategy:\n    canary:\n      steps:\n      - setWeight: 20\n      - pause: {}\n      - setWeight: 40\n      - analysis: {templates: [{templateName: settle}]}\n      - setWeight: 60\n      - pause: {duration: 4}\n      - setWeight: 80\n      - pause: {}\n"
        )
    );
    let mut w = World::start(WorldSpec {
        versions: vec![("v1", vec![]), ("v2", vec![]), ("v3", vec![])],
        documents: &docs,
        proxies: 2,
        ..Default::default()
    });
    let t = Traffic::mixed(w.proxies.iter().map(|p| p.url("/version")).collect(), 300.0);
    let v2 = w.hash("v2");
    let mut report = Vec::new();
    block(w.client.set_image("chip", "chip", "chip:v2")).unwrap();

    // 1. an indefinite pause at 20 %
    w.wait("paused at 20 %", Duration::from_secs(10), |v| {
        weight_by_both(v) == Some(20) && !v.status.pause_conditions.is_empty()
    });
    let (from, to) = kill_and_restart(&mut w, &t);
    let v = w.wait("back, paused at 20 %", Duration::from_secs(10), |v| {
        weight_by_both(v) == Some(20)
    });
    assert!(
        !v.status.pause_conditions.is_empty() && step(&v) == 1,
        "{:?}",
        v.status
    );
    let (got, n) = share(&t.answers(), from, to, &v2);
    assert!((0.15..=0.25).contains(&got), "{got} of {n} while away");
    report.push(format!(
        "paused: {:.0} % of {n} on the canary while away",
        got * 100.0
    ));
    block(w.client.command("chip", "promote", None)).unwrap();

    // 2. a step analysis running
    w.wait("the analysis running", Duration::from_secs(10), |v| {
        step(v) == 3 && weight_by_both(v) == Some(40)
    });
    let (from, to) = kill_and_restart(&mut w, &t);
    let v = w.view();
    assert!(step(&v) == 3 || step(&v) == 4, "{:?}", v.status);
    let (got, n) = share(&t.answers(), from, to, &v2);
    assert!((0.35..=0.45).contains(&got), "{got} of {n} while away");
    report.push(format!(
        "analysis: {:.0} % of {n} on the canary while away",
        got * 100.0
    ));

    // 3. a timed pause: it ends on time whoever counts it
    let v = w.wait("the timed pause", Duration::from_secs(15), |v| {
        step(v) == 5 && weight_by_both(v) == Some(60)
    });
    assert!(!v.status.abort);
    let paused_at = Instant::now();
    let (from, to) = kill_and_restart(&mut w, &t);
    let v = w.view();
    assert_eq!(step(&v), 5, "{:?}", v.status);
    w.wait("80 % after the pause", Duration::from_secs(10), |v| {
        weight_by_both(v) == Some(80)
    });
    let ended = paused_at.elapsed();
    assert!(
        ended < Duration::from_secs(8),
        "a 4 s pause ended after {ended:?}"
    );
    let (got, n) = share(&t.answers(), from, to, &v2);
    assert!((0.55..=0.65).contains(&got), "{got} of {n} while away");
    report.push(format!(
        "timed pause: {:.0} % of {n} on the canary while away; the 4 s pause ended after {:.1} s",
        got * 100.0,
        ended.as_secs_f64()
    ));

    // 4. promoted fully: Healthy
    block(w.client.command("chip", "promote", None)).unwrap();
    w.wait("v2 Healthy", Duration::from_secs(10), |v| {
        v.status.phase == Phase::Healthy && v.status.stable_rs.as_deref() == Some(v2.as_str())
    });
    let (from, to) = kill_and_restart(&mut w, &t);
    // it finds v2 stable, and Healthy once its first health checks find v2 available again
    let v = w.view();
    assert_eq!(v.status.stable_rs.as_deref(), Some(v2.as_str()));
    assert!(!v.status.abort);
    w.wait("Healthy again", Duration::from_secs(5), |v| {
        v.status.phase == Phase::Healthy && v.status.stable_rs.as_deref() == Some(v2.as_str())
    });
    let (got, n) = share(&t.answers(), from, to, &v2);
    assert!(got > 0.99, "{got} of {n} on v2 while away");
    report.push(format!(
        "healthy: {:.0} % of {n} on v2 while away",
        got * 100.0
    ));

    // 5. aborted: Degraded
    let v3 = w.hash("v3");
    block(w.client.set_image("chip", "chip", "chip:v3")).unwrap();
    w.wait("v3 at 20 %", Duration::from_secs(10), |v| {
        weight_by_both(v) == Some(20) && v.status.current_pod_hash.as_deref() == Some(v3.as_str())
    });
    block(w.client.command("chip", "abort", None)).unwrap();
    w.wait("aborted", Duration::from_secs(10), |v| {
        v.status.phase == Phase::Degraded && weight_by_both(v) == Some(0)
    });
    let (from, to) = kill_and_restart(&mut w, &t);
    assert!(w.view().status.abort);
    w.wait("Degraded again", Duration::from_secs(5), |v| {
        v.status.abort && v.status.phase == Phase::Degraded
    });
    assert_eq!(
        weight_by_both(&w.wait("verified", Duration::from_secs(10), |v| {
            weight_by_both(v).is_some()
        })),
        Some(0)
    );
    let (got, n) = share(&t.answers(), from, to, &v3);
    assert_eq!(got, 0.0, "{n} answers");
    report.push(format!("aborted: 0 of {n} on the canary while away"));

    let answers = t.stop();
    none_failed(&answers);
    eprintln!(
        "controller SIGKILLed and restarted in 5 phases under 300 req/s over 2 proxies, {} requests, 0 failed:\n  {}",
        answers.len(),
        report.join("\n  ")
    );
}

#[test]
fn a_killed_proxy_comes_back_ready_only_with_the_current_table() {
    let mut w = World::start(WorldSpec {
        documents: &rollout(
            "  strategy:\n    canary:\n      steps:\n      - setWeight: 20\n      - pause: {}\n      - setWeight: 60\n      - pause: {}\n",
        ),
        proxies: 2,
        ..Default::default()
    });
    // users reach the proxy that stays; the other is probed when it is back
    let t = Traffic::mixed(vec![w.proxies[0].url("/version")], 200.0);
    block(w.client.set_image("chip", "chip", "chip:v2")).unwrap();
    w.wait("paused at 20 %", Duration::from_secs(10), |v| {
        weight_of(v) == Some(20) && !v.status.pause_conditions.is_empty()
    });
    w.proxies[1].kill9();
    // the step moves on while it is away: the controller stops waiting for it once its lease
    // ends, and its cached table is now out of date
    block(w.client.command("chip", "promote", None)).unwrap();
    let v = w.wait("paused at 60 %", Duration::from_secs(15), |v| {
        weight_of(v) == Some(60) && !v.status.pause_conditions.is_empty()
    });
    w.proxies[1].start_again();
    let p = &w.proxies[1];
    let client = sluice_tests::Client::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ready = block(client.get(p.admin, "/readyz", &[])).map(|a| a.status);
        if ready.as_ref().is_ok_and(|s| *s == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "never ready: {ready:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    let v2 = w.hash("v2");
    let mut on_v2 = 0;
    for _ in 0..100 {
        let a = block(client.get(p.addr, "/version", &[])).unwrap();
        assert_eq!(a.status, 200);
        let generation: u64 = a.header("x-sluice-generation").unwrap().parse().unwrap();
        assert!(
            generation >= v.generation,
            "served generation {generation}, the current one is {}",
            v.generation
        );
        on_v2 += usize::from(a.header("x-sluice-backend").unwrap().ends_with(&v2));
    }
    assert_eq!(on_v2, 60, "the exact split of 60 % over 100 requests");
    w.wait("acknowledged by both", Duration::from_secs(10), |v| {
        v.status
            .canary
            .weights
            .as_ref()
            .is_some_and(|x| x.verified && x.expected == 2)
    });
    none_failed(&t.stop());
}

/// A tmpfs of `kib` KiB mounted on a folder of the test's, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(kib: u32) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "sluice-test"])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs (it runs as root, as CI does): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self { dir }
    }

    /// Fills it up with one file; returns that file.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.dir.path().join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 4096];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[test]
fn a_full_state_disk_stops_the_rollout_says_why_and_loses_no_state() {
    let disk = SmallDisk::mount(512);
    let state = disk.dir.path().join("state");
    let docs = rollout(
        "  strategy:\n    canary:\n      steps:\n      - setWeight: 20\n      - pause: {duration: 1}\n      - setWeight: 50\n      - pause: {}\n",
    );
    let mut w = World::start(WorldSpec {
        documents: &docs,
        runtime_extra: &format!("  stateDir: {}\n", state.display()),
        proxies: 2,
        ..Default::default()
    });
    let t = Traffic::mixed(w.proxies.iter().map(|p| p.url("/version")).collect(), 200.0);
    let filler = disk.fill();
    // the change is refused as a whole: nothing the controller cannot write is done
    let (code, out, err) = w.cli(&["set", "image", "chip", "chip=chip:v2"]);
    assert_ne!(code, 0, "{out}{err}");
    assert!(
        format!("{out}{err}").contains("No space left"),
        "{out}{err}"
    );
    assert_eq!(weight_of(&w.view()), Some(0));
    // with room for the change but not for the next step: the timed pause ends, and the
    // rollout stays at 20 %, saying why
    std::fs::remove_file(&filler).unwrap();
    block(w.client.set_image("chip", "chip", "chip:v2")).unwrap();
    w.wait("at 20 %", Duration::from_secs(10), |v| {
        weight_of(v) == Some(20)
    });
    let filler = disk.fill();
    std::thread::sleep(Duration::from_secs(3));
    let v = w.view();
    assert_eq!(weight_of(&v), Some(20), "{:?}", v.status);
    let why = v.runtime_error.clone().unwrap_or_default();
    assert!(
        why.contains("No space left") && why.contains("not advancing"),
        "{why}"
    );
    let (_, shown, _) = w.cli(&["get", "rollout", "chip"]);
    assert!(shown.contains("No space left"), "{shown}");
    // the state on disk is whole: a controller started on it now finds the rollout at 20 %
    w.controller.kill9();
    w.controller.restart();
    w.wait("back at 20 %", Duration::from_secs(10), |v| {
        weight_of(v).is_some()
    });
    assert_eq!(weight_of(&w.view()), Some(20));
    // room again: the rollout goes on by itself and the problem is gone
    std::fs::remove_file(&filler).unwrap();
    let v = w.wait("at 50 %", Duration::from_secs(10), |v| {
        weight_of(v) == Some(50)
    });
    assert!(v.runtime_error.is_none(), "{:?}", v.runtime_error);
    none_failed(&t.stop());
}
