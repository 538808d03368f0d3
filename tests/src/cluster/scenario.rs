//! One test on the cluster: its own namespace, the controller (the process of the install's
//! first pod), N proxies subscribed to it, and helpers to read Rollouts and ReplicaSets, run
//! `kubectl sluice` and send traffic through the proxies. Tests run one at a time (they share
//! one install and one controller lease); dropping a scenario stops its processes and deletes
//! its namespace, so the next one starts from a cluster without its rollouts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::MutexGuard;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::sluice::{Controller, install};
use super::{Cluster, serial, shared};
use crate::procs::SubscribedProxy;
use crate::world::Traffic;

/// A test's world on the cluster.
pub struct Scenario {
    /// The cluster.
    pub cluster: &'static Cluster,
    /// The test's namespace.
    pub ns: String,
    /// Controller processes; the first one leads at start.
    pub controllers: Vec<Controller>,
    /// Proxies subscribed to the leader.
    pub proxies: Vec<SubscribedProxy>,
    dir: tempfile::TempDir,
    _serial: MutexGuard<'static, ()>,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

impl Scenario {
    /// A namespace `ns`, a leading controller and `proxies` subscribed proxies.
    pub fn start(ns: &str, proxies: usize) -> Self {
        let serial = serial();
        let cluster = shared();
        let install = install(cluster);
        cluster.namespace(ns);
        let controller = Controller::start(cluster, 0);
        let dir = tempfile::tempdir().unwrap();
        let token = install.token_file.display().to_string();
        let proxies = (1..=proxies)
            .map(|i| {
                SubscribedProxy::start(
                    dir.path(),
                    &controller.url(),
                    &format!("proxy-{i}"),
                    &["--token-file", &token],
                )
            })
            .collect();
        Self {
            cluster,
            ns: ns.to_owned(),
            controllers: vec![controller],
            proxies,
            dir,
            _serial: serial,
        }
    }

    /// The leading controller (the first).
    pub fn controller(&self) -> &Controller {
        &self.controllers[0]
    }

    /// A file of `manifests/examples/` as a user of sluice applies it: Argo's `apiVersion`
    /// changed to sluice's, and the test's namespace for `chip`.
    pub fn example(&self, file: &str) -> String {
        std::fs::read_to_string(repo().join("manifests/examples").join(file))
            .unwrap()
            .replace("argoproj.io/v1alpha1", "sluice.dev/v1alpha1")
            .replace("namespace: chip", &format!("namespace: {}", self.ns))
    }

    /// `kubectl apply --server-side` of `yaml` into the namespace.
    pub fn apply(&self, yaml: &str) -> String {
        let out = self.cluster.kubectl_in(
            &["apply", "--server-side", "-n", &self.ns, "-f", "-"],
            Some(yaml),
        );
        assert!(
            out.status.success(),
            "kubectl apply failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `kubectl ARGS` in the namespace, which must succeed.
    pub fn kubectl(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", self.ns.as_str()];
        all.extend_from_slice(args);
        self.cluster.kubectl(&all)
    }

    /// Rollout `name`.
    pub fn rollout(&self, name: &str) -> Value {
        self.cluster
            .get(&["-n", &self.ns, "rollout", name])
            .unwrap_or(Value::Null)
    }

    /// Waits until `done` holds for rollout `name`; on a timeout, panics with its status and
    /// the controller's last lines.
    pub fn wait_rollout(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let r = self.rollout(name);
            if done(&r) {
                return r;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out ({timeout:?}) waiting for {what}; status: {}\ncontroller:\n{}",
                    serde_json::to_string_pretty(&r["status"]).unwrap_or_default(),
                    self.controllers
                        .iter()
                        .map(|c| c.log_tail(25))
                        .collect::<Vec<_>>()
                        .join("\n---\n")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The ReplicaSets rollout `name` owns: pod-template hash → (spec replicas, ready
    /// replicas).
    pub fn replica_sets(&self, name: &str) -> BTreeMap<String, (i64, i64)> {
        let list = self
            .cluster
            .get(&["-n", &self.ns, "replicasets"])
            .unwrap_or(Value::Null);
        list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|rs| {
                rs["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|o| {
                        o.iter()
                            .any(|o| o["kind"] == "Rollout" && o["name"] == name)
                    })
            })
            .map(|rs| {
                (
                    rs["metadata"]["labels"]["rollouts-pod-template-hash"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    (
                        rs["spec"]["replicas"].as_i64().unwrap_or(0),
                        rs["status"]["readyReplicas"].as_i64().unwrap_or(0),
                    ),
                )
            })
            .collect()
    }

    /// Waits until `done` holds for rollout `name`'s ReplicaSets ([`Scenario::replica_sets`]);
    /// panics saying `what` with the last ones after 30 s.
    pub fn wait_replica_sets(
        &self,
        name: &str,
        what: &str,
        done: impl Fn(&BTreeMap<String, (i64, i64)>) -> bool,
    ) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let sets = self.replica_sets(name);
            if done(&sets) {
                return;
            }
            assert!(Instant::now() < deadline, "{what}: {sets:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The pod-template hash Service `service`'s selector names (empty when none).
    pub fn selector_hash(&self, service: &str) -> String {
        self.cluster
            .get(&["-n", &self.ns, "service", service])
            .and_then(|v| {
                v["spec"]["selector"]["rollouts-pod-template-hash"]
                    .as_str()
                    .map(str::to_owned)
            })
            .unwrap_or_default()
    }

    /// `kubectl sluice -n NS ARGS` (the `sluice` binary as a kubectl plugin); exit code,
    /// stdout, stderr.
    pub fn sluice(&self, args: &[&str]) -> (i32, String, String) {
        let plugins = self.dir.path().join("plugins");
        if !plugins.join("kubectl-sluice").exists() {
            std::fs::create_dir_all(&plugins).unwrap();
            std::os::unix::fs::symlink(crate::bin("sluice"), plugins.join("kubectl-sluice"))
                .unwrap();
        }
        let path = format!(
            "{}:{}",
            plugins.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let kubectl = super::control_plane::Components::locate()
            .map(|c| c.bin_dir.join("kubectl"))
            .unwrap_or_else(|_| PathBuf::from("kubectl"));
        let out = Command::new(kubectl)
            .arg("sluice")
            .args(["-n", &self.ns])
            .args(args)
            .env("PATH", path)
            .env("KUBECONFIG", &self.cluster.kubeconfig)
            .output()
            .expect("run kubectl sluice");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `kubectl sluice ARGS`, which must succeed; its stdout.
    pub fn sluice_ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.sluice(args);
        assert_eq!(code, 0, "kubectl sluice {args:?}: {out}{err}");
        out
    }

    /// The backend name the proxies give revision `hash` of rollout `name` (what
    /// [`by_backend`] counts).
    pub fn backend(&self, name: &str, hash: &str) -> String {
        format!("{}/{name}:{hash}", self.ns)
    }

    /// The proxies' traffic addresses as URIs.
    pub fn targets(&self) -> Vec<http::Uri> {
        self.proxies
            .iter()
            .map(|p| format!("http://{}/", p.addr).parse().unwrap())
            .collect()
    }

    /// `rate` requests a second round-robin over the proxies.
    pub fn traffic(&self, rate: f64) -> Traffic {
        Traffic::start(self.targets(), rate)
    }

    /// Waits until every proxy serves `version` for a plain request (its table has the
    /// rollout's route with that revision's pods).
    pub fn wait_serving(&self, version: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        for p in &self.proxies {
            loop {
                let answer =
                    crate::world::block(async { crate::Client::new().get(p.addr, "/", &[]).await });
                if let Ok(a) = &answer
                    && a.status == 200
                    && a.header("x-sluice-version") == Some(version)
                {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "proxy {} does not serve {version}: {:?}",
                    p.id,
                    answer.map(|a| (a.status, a.text()))
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        // the controller has the install's RBAC and no more: a call it is refused is a
        // missing rule
        let refused: Vec<String> = self
            .controllers
            .iter()
            .flat_map(|c| {
                c.log()
                    .lines()
                    .filter(|l| l.contains("forbidden") || l.contains("Forbidden"))
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect();
        self.proxies.clear();
        self.controllers.clear();
        let _ = self.cluster.kubectl_in(
            &[
                "delete",
                "namespace",
                &self.ns,
                "--wait=true",
                "--timeout=90s",
            ],
            None,
        );
        if !std::thread::panicking() {
            assert!(
                refused.is_empty(),
                "the API server refused the controller: {refused:#?}"
            );
        }
    }
}

/// Counts answers per backend that served them (`<namespace>/<rollout>:<pod-template-hash>`,
/// see [`Scenario::backend`]), with `""` for requests that got no answer or a 5xx.
pub fn by_backend(answers: &[sluice_loadtest::paced::Answer]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for a in answers {
        let key = if a.failed() {
            String::new()
        } else {
            a.backend.clone()
        };
        *m.entry(key).or_insert(0) += 1;
    }
    m
}
