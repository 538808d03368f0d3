//! A whole local installation for a test: versioned backends, a controller in local mode,
//! proxies subscribed to it, a client of its API, and helpers to wait for rollout states.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use sluice_controller::control::client::ControlClient;
use sluice_controller::control::service::RolloutView;

use crate::procs::{Backend, bin};
pub use crate::procs::{Controller, SubscribedProxy, signal};

/// A local installation: backends per version, a controller, proxies.
pub struct World {
    /// Files of this world.
    pub dir: tempfile::TempDir,
    /// Backends by version name.
    pub backends: BTreeMap<String, Backend>,
    /// The controller.
    pub controller: Controller,
    /// The proxies.
    pub proxies: Vec<SubscribedProxy>,
    /// A client of the controller's API (with the token, if any).
    pub client: ControlClient,
    /// The pod template of the world's first Rollout, if any (revision hashes start here).
    template: Option<sluice_controller::spec::PodTemplate>,
}

/// The pod template of the first valid Rollout among `documents`.
fn first_template(documents: &str) -> Option<sluice_controller::spec::PodTemplate> {
    use sluice_controller::spec::{Document, parse_documents};
    parse_documents(documents)
        .ok()?
        .into_iter()
        .find_map(|d| match d {
            Ok(Document::Rollout(r)) => r.spec.template,
            _ => None,
        })
}

/// How to build a world.
pub struct WorldSpec<'a> {
    /// Versions and their `sluice-load serve` flags, e.g. `("v3", &["--error-rate", "0.3"])`.
    pub versions: Vec<(&'a str, Vec<&'a str>)>,
    /// Documents after the LocalRuntime (Rollouts, AnalysisTemplates); `{vN}` is replaced
    /// by the address of version vN.
    pub documents: &'a str,
    /// Extra LocalRuntime spec lines (indented by four spaces).
    pub runtime_extra: &'a str,
    /// Proxies to start.
    pub proxies: usize,
    /// A token for the API, if any (the operator's; proxies use it too unless given theirs).
    pub token: Option<&'a str>,
    /// Per proxy, in order, the file of its own proxy token (`proxyTokensFile` in
    /// `runtime_extra` names them to the controller).
    pub proxy_token_files: Vec<String>,
    /// The controller's open-descriptor limit, if it has one.
    pub controller_nofile: Option<u64>,
    /// Flags of `sluice controller` itself, after `-c FILE` (`--dashboard ADDR`).
    pub controller_args: Vec<String>,
}

impl Default for WorldSpec<'_> {
    fn default() -> Self {
        Self {
            versions: vec![("v1", vec![]), ("v2", vec![])],
            documents: "",
            runtime_extra: "",
            proxies: 1,
            token: None,
            proxy_token_files: Vec::new(),
            controller_nofile: None,
            controller_args: Vec::new(),
        }
    }
}

/// The documents of a scenario in `manifests/examples/` (the one copy the engine tests and
/// these tests share), made to run here: the images are the test backends' (`chip:vN`), and
/// every pause, analysis interval and measurement window lasts a tenth as long (at least a
/// second). The Services in the file are other kinds, which the local runtime skips.
pub fn example(file: &str) -> String {
    let path = format!(
        "{}/../manifests/examples/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.replace("fidelissauro/chip:", "chip:")
        .lines()
        .map(shorten_pause)
        .collect::<Vec<_>>()
        .join("\n")
}

/// A `duration: 30s`, `interval: 10` or `window: 5m` with a tenth of the time, in whole
/// seconds.
fn shorten_pause(line: &str) -> String {
    let Some((at, key)) = ["duration: ", "interval: ", "window: "]
        .iter()
        .find_map(|k| line.find(k).map(|at| (at, *k)))
    else {
        return line.to_owned();
    };
    let start = at + key.len();
    let rest = &line[start..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let Ok(n) = digits.parse::<u64>() else {
        return line.to_owned();
    };
    let unit = rest[digits.len()..].chars().next();
    let (seconds, unit_len) = match unit {
        Some('s') => (n, 1),
        Some('m') => (n * 60, 1),
        Some('h') => (n * 3600, 1),
        _ => (n, 0),
    };
    format!(
        "{}{}{}",
        &line[..start],
        (seconds / 10).max(1),
        &rest[digits.len() + unit_len..]
    )
}

/// A Rollout document named `chip` in namespace `shop`, on image `chip:v1`, with `strategy`
/// (YAML indented under `spec:` by two spaces).
pub fn rollout(strategy: &str) -> String {
    format!(
        "apiVersion: sluice.dev/v1alpha1
kind: Rollout
metadata: {{name: chip, namespace: shop}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: chip}}}}
  template:
    metadata: {{labels: {{app: chip}}}}
    spec: {{containers: [{{name: chip, image: \"chip:v1\"}}]}}
{strategy}"
    )
}

impl World {
    /// Builds and starts a world, and waits until revision 1 is Healthy at every proxy.
    pub fn start(spec: WorldSpec<'_>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut backends = BTreeMap::new();
        let mut images = String::new();
        let mut docs = spec.documents.to_owned();
        for (v, flags) in &spec.versions {
            let b = Backend::start_with(v, flags);
            images.push_str(&format!("    \"chip:{v}\": [\"{}\"]\n", b.addr));
            docs = docs.replace(&format!("{{{v}}}"), &b.addr.to_string());
            backends.insert((*v).to_owned(), b);
        }
        let token_line = match spec.token {
            Some(t) => {
                std::fs::write(dir.path().join("token"), t).unwrap();
                format!("  tokenFile: {}\n", dir.path().join("token").display())
            }
            None => String::new(),
        };
        let config = format!(
            "apiVersion: sluice.dev/v1alpha1
kind: LocalRuntime
metadata: {{name: test}}
spec:
  listen: 127.0.0.1:0
  debugHeaders: true
{lease}  healthCheck: {{intervalMillis: 200}}
{token_line}{extra}  images:
{images}---
{docs}",
            extra = spec.runtime_extra,
            lease = if spec.runtime_extra.contains("leaseSeconds") {
                ""
            } else {
                "  leaseSeconds: 5\n"
            },
        );
        let cfg_path = dir.path().join("sluice.yaml");
        std::fs::write(&cfg_path, config).unwrap();
        let flags: Vec<&str> = spec.controller_args.iter().map(String::as_str).collect();
        let controller = Controller::start_flagged(&cfg_path, &[], &flags, spec.controller_nofile);
        let mut proxies = Vec::new();
        let token_args: Vec<String> = match spec.token {
            Some(_) => vec![
                "--token-file".into(),
                dir.path().join("token").display().to_string(),
            ],
            None => vec![],
        };
        for i in 1..=spec.proxies {
            let own: Vec<String> = match spec.proxy_token_files.get(i - 1) {
                Some(f) => vec!["--token-file".into(), f.clone()],
                None => token_args.clone(),
            };
            let args: Vec<&str> = own.iter().map(String::as_str).collect();
            proxies.push(SubscribedProxy::start(
                dir.path(),
                &controller.url(),
                &format!("proxy-{i}"),
                &args,
            ));
        }
        let client = ControlClient::new(&controller.url(), spec.token.map(str::to_owned));
        let world = Self {
            dir,
            backends,
            controller,
            proxies,
            client,
            template: first_template(&docs),
        };
        if spec.proxies > 0 && spec.documents.contains("kind: Rollout") {
            world.wait(
                "revision 1 Healthy at every proxy",
                Duration::from_secs(20),
                |v| {
                    v.status.phase == sluice_controller::status::Phase::Healthy
                        && v.status
                            .canary
                            .weights
                            .as_ref()
                            .is_some_and(|w| w.verified && w.expected as usize == spec.proxies)
                },
            );
        }
        world
    }

    /// The config file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("sluice.yaml")
    }

    /// Blocks (on a helper runtime) for a view of rollout `chip`.
    pub fn view(&self) -> RolloutView {
        block(self.client.get("chip")).expect("get rollout chip")
    }

    /// Waits until `done` holds for rollout `chip`; panics with the last view after `timeout`.
    pub fn wait(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&RolloutView) -> bool,
    ) -> RolloutView {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.view();
            if done(&v) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; last status: {:?}: {}\n{}",
                v.status.phase,
                v.status.message,
                self.controller
                    .log()
                    .lines()
                    .rev()
                    .take(30)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The hash of version `v`'s template.
    pub fn hash(&self, v: &str) -> String {
        let mut t = self.template.clone().unwrap_or_else(|| {
            serde_json::from_value(serde_json::json!({
                "metadata": {"labels": {"app": "chip"}},
                "spec": {"containers": [{"name": "chip", "image": "chip:v1"}]}
            }))
            .unwrap()
        });
        assert!(t.set_image("chip", &format!("chip:{v}")));
        sluice_controller::revision::pod_template_hash(&t)
    }

    /// Runs a `sluice` CLI command against this world's controller.
    pub fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let mut cmd = Command::new(bin("sluice"));
        cmd.arg("--server").arg(self.controller.url()).args(args);
        if self.dir.path().join("token").exists() {
            cmd.arg("--token-file").arg(self.dir.path().join("token"));
        }
        let out = cmd.output().expect("run sluice");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// Runs a future to completion on a fresh current-thread runtime (for sync test code).
pub fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// A constant-rate request loop running on its own runtime, for sync tests.
pub struct Traffic {
    runtime: tokio::runtime::Runtime,
    lp: Option<sluice_loadtest::paced::PacedLoop>,
}

impl Traffic {
    /// Starts `rate` requests a second, round-robin over `targets`, on kept-alive connections.
    pub fn start(targets: Vec<http::Uri>, rate: f64) -> Self {
        Self::start_with(sluice_loadtest::paced::PacedConfig::new(
            targets,
            rate,
            Duration::from_secs(240),
        ))
    }

    /// Starts `rate` requests a second round-robin over `targets` as users send them: four
    /// connections per target, every 8th request on a new connection, every 5th a `POST` with
    /// a body.
    pub fn mixed(targets: Vec<http::Uri>, rate: f64) -> Self {
        Self::start_with(sluice_loadtest::paced::PacedConfig {
            connections: 4,
            new_connection_every: 8,
            body_every: 5,
            ..sluice_loadtest::paced::PacedConfig::new(targets, rate, Duration::from_secs(240))
        })
    }

    /// Starts a loop as `cfg` says.
    pub fn start_with(cfg: sluice_loadtest::paced::PacedConfig) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let lp = runtime.block_on(async { sluice_loadtest::paced::start(cfg) });
        Self {
            runtime,
            lp: Some(lp),
        }
    }

    /// Answers so far.
    pub fn answers(&self) -> Vec<sluice_loadtest::paced::Answer> {
        self.lp.as_ref().map(|l| l.answers()).unwrap_or_default()
    }

    /// The loop's clock now.
    pub fn now(&self) -> Duration {
        self.lp.as_ref().map(|l| l.elapsed()).unwrap_or_default()
    }

    /// Stops and returns every answer, in send order.
    pub fn stop(mut self) -> Vec<sluice_loadtest::paced::Answer> {
        let lp = self.lp.take().expect("running");
        self.runtime.block_on(lp.stop())
    }
}

/// The failed answers, one line each: when, through which target, what came back and why.
pub fn failures(answers: &[sluice_loadtest::paced::Answer]) -> Vec<String> {
    answers
        .iter()
        .filter(|a| a.failed())
        .map(|a| {
            format!(
                "at {:.3} s via target {} ({}{}): {}",
                a.at.as_secs_f64(),
                a.target,
                if a.fresh {
                    "new connection"
                } else {
                    "kept-alive"
                },
                if a.with_body { ", with a body" } else { "" },
                match (a.status, &a.error) {
                    (Some(s), _) => format!("{s} from {:?}", a.backend),
                    (None, Some(e)) => e.clone(),
                    (None, None) => "no answer".into(),
                }
            )
        })
        .collect()
}

/// Panics when a request failed, naming the first ten that did.
pub fn none_failed(answers: &[sluice_loadtest::paced::Answer]) {
    let failed = failures(answers);
    assert!(
        failed.is_empty(),
        "{} of {} requests failed:\n{}",
        failed.len(),
        answers.len(),
        failed
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
