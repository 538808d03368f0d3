//! `sluice demo`: the whole story on loopback with nothing but this binary. Three versions of a
//! small app (v3 answers some 5xx), two proxies (this binary's `proxy` command, as child
//! processes) subscribed to a controller in local mode, and a constant-rate request loop. A
//! canary goes 20 → 40 → 60 → 80 → 100 to v2; then v3 rolls out and the `proxy` analysis
//! aborts it by itself. The summary says how many requests each version answered, how many
//! errors users saw, and how long it took from the first bad answer to all traffic back on
//! stable at every proxy.

use std::io::IsTerminal as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sluice_loadtest::backend::{self, BackendConfig};
use sluice_loadtest::paced::{self, Answer, PacedConfig, PacedLoop};

use crate::Error;
use crate::cli::render;
use crate::control::client::ControlClient;
use crate::local::config::LocalConfig;
use crate::server::{self as ctl, RunningController};
use crate::status::Phase;

/// Why the demo could not go on.
fn demo_error(e: impl std::fmt::Display) -> Error {
    Error::Demo(e.to_string())
}

/// Demo settings.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Short pauses (for CI).
    pub fast: bool,
    /// Leave everything running after the summary.
    pub keep: bool,
    /// Proxies to start.
    pub proxies: usize,
    /// Requests per second of the loop.
    pub rate: f64,
}

/// What the demo measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// Answers per version.
    pub by_version: Vec<(String, usize)>,
    /// Answers users saw failing (5xx or no answer).
    pub errors: usize,
    /// Of those, from the bad version.
    pub errors_from_bad_version: usize,
    /// Whether the bad version was aborted by the analysis.
    pub aborted_by_analysis: bool,
    /// Seconds from the first bad answer to 100 % on stable at every proxy.
    pub first_bad_to_stable: Option<f64>,
    /// Seconds from the first bad answer to the last answer from the bad version.
    pub first_bad_to_last_bad_answer: Option<f64>,
}

struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn config_text(dir: &Path, images: &[(String, String)], fast: bool) -> String {
    let pause = if fast { 1 } else { 4 };
    let mut map = String::new();
    for (image, addr) in images {
        map.push_str(&format!("    \"{image}\": [\"{addr}\"]\n"));
    }
    format!(
        r#"apiVersion: sluice.dev/v1alpha1
kind: LocalRuntime
metadata: {{name: demo}}
spec:
  listen: 127.0.0.1:0
  stateDir: {state}
  leaseSeconds: 5
  healthCheck: {{intervalMillis: 500}}
  images:
{map}---
apiVersion: sluice.dev/v1alpha1
kind: Rollout
metadata: {{name: chip, namespace: demo}}
spec:
  replicas: 4
  revisionHistoryLimit: 2
  selector: {{matchLabels: {{app: chip}}}}
  template:
    metadata: {{labels: {{app: chip}}}}
    spec: {{containers: [{{name: chip, image: "chip:v1"}}]}}
  strategy:
    canary:
      scaleDownDelaySeconds: 5
      abortScaleDownDelaySeconds: 5
      analysis:
        templates: [{{templateName: error-rate}}]
      steps:
      - setWeight: 20
      - pause: {{duration: {pause}}}
      - setWeight: 40
      - pause: {{duration: {pause}}}
      - setWeight: 60
      - pause: {{duration: {pause}}}
      - setWeight: 80
      - pause: {{duration: {pause}}}
      - setWeight: 100
---
apiVersion: sluice.dev/v1alpha1
kind: AnalysisTemplate
metadata: {{name: error-rate, namespace: demo}}
spec:
  metrics:
    - name: canary-error-rate
      interval: 1s
      failureCondition: result > 0.05
      failureLimit: 0
      provider:
        proxy: {{query: error-rate, window: 2s, minRequests: 5}}
"#,
        state = dir.join("state").display()
    )
}

fn spawn_proxy(exe: &Path, dir: &Path, control: &str, id: &str) -> Result<(Child, String), Error> {
    let addr_file = dir.join(format!("{id}.addr"));
    let child = Command::new(exe)
        .args([
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--control-plane",
            control,
            "--proxy-id",
            id,
            "--report-interval",
            "250ms",
            "--log",
            "warn",
        ])
        .arg("--addr-file")
        .arg(&addr_file)
        .arg("--cache-dir")
        .arg(dir.join(format!("{id}-cache")))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| Error::Demo(format!("cannot start a proxy: {e}")))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(text) = std::fs::read_to_string(&addr_file)
            && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
            && let Some(l) = v["listen"].as_str()
        {
            return Ok((child, l.to_owned()));
        }
        if Instant::now() > deadline {
            return Err(Error::Demo(
                "a proxy did not start listening in 10 s".into(),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn wait_for(
    client: &ControlClient,
    what: &str,
    timeout: Duration,
    done: impl Fn(&crate::control::service::RolloutView) -> bool,
    show: &mut dyn FnMut(&crate::control::service::RolloutView),
) -> Result<crate::control::service::RolloutView, Error> {
    let deadline = Instant::now() + timeout;
    let mut last_show = Instant::now() - Duration::from_secs(10);
    loop {
        let v = client.get("chip").await.map_err(demo_error)?;
        if last_show.elapsed() >= Duration::from_millis(700) {
            show(&v);
            last_show = Instant::now();
        }
        if done(&v) {
            show(&v);
            return Ok(v);
        }
        if Instant::now() > deadline {
            return Err(Error::Demo(format!("timed out waiting for {what}")));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn traffic_line(lp: &PacedLoop) -> String {
    let since = lp.elapsed().saturating_sub(Duration::from_secs(1));
    let last = lp.answers_since(since);
    let n = last.len().max(1);
    let mut by: std::collections::BTreeMap<String, usize> = Default::default();
    for a in &last {
        *by.entry(if a.status.is_some() {
            a.backend.clone()
        } else {
            "no answer".into()
        })
        .or_default() += 1;
    }
    let errors = last.iter().filter(|a| a.failed()).count();
    let parts: Vec<String> = by
        .iter()
        .map(|(b, c)| format!("{b} {:.0}%", 100.0 * *c as f64 / n as f64))
        .collect();
    format!(
        "requests, last second: {}  errors: {errors}",
        parts.join("  ")
    )
}

/// Runs the demo; prints as it goes and returns the summary.
pub async fn run(opts: DemoOptions) -> Result<Summary, Error> {
    let tty = std::io::stdout().is_terminal();
    let dir = std::env::temp_dir().join(format!("sluice-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(demo_error)?;
    println!(
        "sluice demo: everything on loopback; files in {}",
        dir.display()
    );

    // three versions of the app
    let mut images = Vec::new();
    for (name, error_rate) in [("v1", 0.0), ("v2", 0.0), ("v3", 0.3)] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(demo_error)?;
        let addr = listener.local_addr().map_err(demo_error)?;
        let mut cfg = BackendConfig::new(name);
        cfg.error_rate = error_rate;
        cfg.error_status = http::StatusCode::SERVICE_UNAVAILABLE;
        tokio::spawn(backend::serve(listener, cfg));
        println!(
            "  app {name} on http://{addr}/version{}",
            if error_rate > 0.0 {
                " (answers 30 % 503)"
            } else {
                ""
            }
        );
        images.push((format!("chip:{name}"), addr.to_string()));
    }

    // the controller, in this process
    let cfg_path = dir.join("sluice.yaml");
    std::fs::write(&cfg_path, config_text(&dir, &images, opts.fast)).map_err(demo_error)?;
    let cfg = LocalConfig::load(&cfg_path).map_err(demo_error)?;
    let controller: RunningController = ctl::start(cfg, None, None, None)
        .await
        .map_err(demo_error)?;
    let control = format!("http://{}", controller.addr);
    println!("  controller (local runtime) on {control}");
    let client = ControlClient::new(&control, None);

    // the proxies, as child processes of this binary
    let exe = std::env::current_exe().map_err(demo_error)?;
    let mut procs = Procs(Vec::new());
    let mut targets = Vec::new();
    for i in 1..=opts.proxies.max(1) {
        let (child, listen) = spawn_proxy(&exe, &dir, &control, &format!("demo-proxy-{i}"))?;
        println!("  proxy demo-proxy-{i} on http://{listen}/version");
        procs.0.push(child);
        targets.push(
            format!("http://{listen}/version")
                .parse()
                .map_err(demo_error)?,
        );
    }
    let show = |v: &crate::control::service::RolloutView| {
        if tty {
            print!("\x1b[2J\x1b[H");
        }
        print!("{}", render::rollout(v));
    };
    wait_for(
        &client,
        "the proxies to apply revision 1",
        Duration::from_secs(20),
        |v| {
            v.status.phase == Phase::Healthy
                && v.status
                    .canary
                    .weights
                    .as_ref()
                    .is_some_and(|w| w.verified && w.expected as usize == opts.proxies.max(1))
        },
        &mut |_| {},
    )
    .await?;

    let lp = paced::start(PacedConfig {
        targets,
        rate: opts.rate,
        connections: 4,
        ..PacedConfig::new(Vec::new(), opts.rate, Duration::from_secs(600))
    });
    let mut show_with_traffic = |v: &crate::control::service::RolloutView| {
        show(v);
        println!("{}", traffic_line(&lp));
        if !tty {
            println!();
        }
    };
    tokio::time::sleep(Duration::from_secs(1)).await;

    println!("\n== rolling out v2: 20 → 40 → 60 → 80 → 100 ==");
    client
        .set_image("chip", "chip", "chip:v2")
        .await
        .map_err(demo_error)?;
    let v2_timeout = Duration::from_secs(if opts.fast { 40 } else { 60 });
    wait_for(
        &client,
        "v2 to become stable",
        v2_timeout,
        |v| {
            v.status.phase == Phase::Healthy
                && v.revisions
                    .iter()
                    .any(|r| r.role == "stable" && r.images.contains(&"chip:v2".to_owned()))
                && v.status.canary.weights.as_ref().is_some_and(|w| w.verified)
        },
        &mut show_with_traffic,
    )
    .await?;

    println!("\n== rolling out v3, which answers 30 % 503: the analysis aborts it ==");
    let v3_started = lp.elapsed();
    client
        .set_image("chip", "chip", "chip:v3")
        .await
        .map_err(demo_error)?;
    let aborted = wait_for(
        &client,
        "the analysis to abort v3",
        Duration::from_secs(30),
        |v| {
            v.status.abort
                && v.status
                    .canary
                    .weights
                    .as_ref()
                    .is_some_and(|w| w.verified && w.canary.is_none())
        },
        &mut show_with_traffic,
    )
    .await?;
    let back_on_stable = lp.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let answers = lp.stop().await;

    let summary = summarize(
        &answers,
        v3_started,
        back_on_stable,
        aborted.status.abort_reason.as_deref(),
    );
    print_summary(&summary);
    if opts.keep {
        println!(
            "\n--keep: still running. Control API {control}; try `sluice --server {control} get rollout chip --watch`. Ctrl-C stops."
        );
        let _ = tokio::signal::ctrl_c().await;
    }
    drop(procs);
    controller.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(summary)
}

/// Counts what the users saw.
pub fn summarize(
    answers: &[Answer],
    v3_started: Duration,
    back_on_stable: Duration,
    abort_reason: Option<&str>,
) -> Summary {
    let mut by: std::collections::BTreeMap<String, usize> = Default::default();
    for a in answers.iter().filter(|a| a.status.is_some()) {
        *by.entry(a.backend.clone()).or_default() += 1;
    }
    let failed: Vec<&Answer> = answers.iter().filter(|a| a.failed()).collect();
    let bad: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.at >= v3_started && a.backend == "v3")
        .collect();
    let first_bad = bad
        .iter()
        .filter(|a| a.failed())
        .map(|a| a.at + a.latency)
        .min();
    let last_bad = bad.iter().map(|a| a.at + a.latency).max();
    Summary {
        by_version: by.into_iter().collect(),
        errors: failed.len(),
        errors_from_bad_version: failed.iter().filter(|a| a.backend == "v3").count(),
        aborted_by_analysis: abort_reason.is_some_and(|r| r.contains("analysis")),
        first_bad_to_stable: first_bad.map(|f| back_on_stable.saturating_sub(f).as_secs_f64()),
        first_bad_to_last_bad_answer: first_bad
            .zip(last_bad)
            .map(|(f, l)| l.saturating_sub(f).as_secs_f64()),
    }
}

fn print_summary(s: &Summary) {
    println!("\n== summary ==");
    for (v, n) in &s.by_version {
        println!("  requests answered by {v:<4} {n}");
    }
    println!(
        "  errors users saw:       {} ({} from v3, none caused by a switch: {})",
        s.errors,
        s.errors_from_bad_version,
        s.errors == s.errors_from_bad_version
    );
    println!(
        "  aborted by analysis:    {}",
        if s.aborted_by_analysis { "yes" } else { "no" }
    );
    if let Some(t) = s.first_bad_to_stable {
        println!("  first bad answer → 100 % on stable at every proxy: {t:.2} s");
    }
    if let Some(t) = s.first_bad_to_last_bad_answer {
        println!("  first bad answer → last answer from v3:           {t:.2} s");
    }
}
