//! A real Kubernetes cluster for the end-to-end tests: by default the control plane this
//! harness builds and starts on loopback (`sluice-test-cluster`, one for the whole test
//! process), or the cluster `KUBECONFIG` names (kind, k3d, … — its pods' IPs must be reachable
//! from this machine). On it: sluice's CRDs and `manifests/install/` applied as a user applies
//! them, and the controller run as the install's Deployment's pods, with exactly their
//! service account's rights.

pub mod control_plane;
pub mod nodes;
pub mod pki;
pub mod pod_runner;
pub mod scenario;
pub mod sluice;

use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The cluster the tests use.
pub struct Cluster {
    /// Its kubeconfig (admin rights).
    pub kubeconfig: PathBuf,
    /// The `kubectl` to run.
    kubectl: PathBuf,
    /// Whether it is this harness's own control plane (pods on loopback, a pod runner).
    pub own: bool,
    dir: PathBuf,
    /// The control plane's process and its standard input: when the test process ends, the
    /// pipe closes and the control plane stops everything it started.
    _process: Option<Mutex<(Child, ChildStdin)>>,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();
static SERIAL: Mutex<()> = Mutex::new(());

/// Takes the cluster for one test: the tests share one cluster and one sluice install, and run
/// one at a time on it.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The cluster, started on first use.
pub fn shared() -> &'static Cluster {
    CLUSTER.get_or_init(|| match std::env::var("KUBECONFIG") {
        Ok(k) if !k.is_empty() => Cluster::external(PathBuf::from(k)),
        _ => Cluster::start_own(),
    })
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Cluster {
    fn external(kubeconfig: PathBuf) -> Self {
        let dir = tempfile::tempdir().unwrap().keep();
        let kubectl = control_plane::Components::locate()
            .map(|c| c.bin_dir.join("kubectl"))
            .unwrap_or_else(|_| PathBuf::from("kubectl"));
        Self {
            kubeconfig,
            kubectl,
            own: false,
            dir,
            _process: None,
        }
    }

    fn start_own() -> Self {
        let components = control_plane::Components::locate().unwrap_or_else(|e| panic!("{e}"));
        let dir = tempfile::Builder::new()
            .prefix("sluice-cluster-")
            .tempdir()
            .unwrap()
            .keep();
        let log_path = dir.join("sluice-test-cluster.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let mut child = Command::new(crate::bin("sluice-test-cluster"))
            .arg(dir.join("cluster"))
            .env("SLUICE_K8S_DIR", components.bin_dir.parent().unwrap())
            .stdin(Stdio::piped())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start sluice-test-cluster");
        let stdin = child.stdin.take().unwrap();
        let ready = dir.join("cluster").join("ready");
        let deadline = Instant::now() + Duration::from_secs(240);
        while !ready.exists() {
            if let Ok(Some(status)) = child.try_wait() {
                let mut logs = String::new();
                for c in ["kube-apiserver", "kube-controller-manager", "etcd", "kwok"] {
                    let p = dir.join("cluster/logs").join(format!("{c}.log"));
                    logs.push_str(&format!("--- {c}\n{}\n", tail(&p, 15)));
                }
                panic!(
                    "the test cluster exited ({status}):\n{}\n{logs}",
                    tail(&log_path, 30)
                );
            }
            assert!(
                Instant::now() < deadline,
                "the test cluster was not ready in 240 s:\n{}",
                tail(&log_path, 30)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Self {
            kubeconfig: dir.join("cluster").join("admin.kubeconfig"),
            kubectl: components.bin_dir.join("kubectl"),
            own: true,
            dir,
            _process: Some(Mutex::new((child, stdin))),
        }
    }

    /// A scratch directory that lives as long as the test process.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The last lines of a component's log (own control plane only).
    pub fn component_log(&self, name: &str, lines: usize) -> String {
        tail(
            &self.dir.join("cluster/logs").join(format!("{name}.log")),
            lines,
        )
    }

    /// `kubectl` as the admin, with `stdin` when given.
    pub fn kubectl_in(&self, args: &[&str], stdin: Option<&str>) -> Output {
        self.kubectl_as(&self.kubeconfig, args, stdin)
    }

    /// `kubectl` with another kubeconfig.
    pub fn kubectl_as(&self, kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(&self.kubectl);
        cmd.arg("--kubeconfig")
            .arg(kubeconfig)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if stdin.is_some() {
            cmd.stdin(Stdio::piped());
        }
        let mut child = cmd.spawn().expect("run kubectl");
        if let Some(text) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        }
        child.wait_with_output().expect("kubectl output")
    }

    /// `kubectl ARGS`, which must succeed; its standard output.
    pub fn kubectl(&self, args: &[&str]) -> String {
        let out = self.kubectl_in(args, None);
        assert!(
            out.status.success(),
            "kubectl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `kubectl apply --server-side -f -` of `yaml`, which must succeed.
    pub fn apply(&self, yaml: &str) -> String {
        let out = self.kubectl_in(
            &["apply", "--server-side", "--force-conflicts", "-f", "-"],
            Some(yaml),
        );
        assert!(
            out.status.success(),
            "kubectl apply failed: {}\n{yaml}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `kubectl get ARGS -o json`, or `None` when it is not found.
    pub fn get(&self, args: &[&str]) -> Option<Value> {
        let mut all = vec!["get"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-o", "json"]);
        let out = self.kubectl_in(&all, None);
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("NotFound"), "kubectl {all:?}: {err}");
            return None;
        }
        Some(serde_json::from_slice(&out.stdout).expect("kubectl's JSON"))
    }

    /// Waits until `done` gives `Some` for `kubectl get ARGS -o json`; panics with the last
    /// object after `timeout`.
    pub fn wait_for<T>(
        &self,
        what: &str,
        args: &[&str],
        timeout: Duration,
        done: impl Fn(&Value) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.get(args).unwrap_or(Value::Null);
            if let Some(t) = done(&v) {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "timed out ({timeout:?}) waiting for {what}; last: {}",
                serde_json::to_string_pretty(&v).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A fresh namespace for one test (deleted first if a former run left it), with its
    /// `default` service account made.
    pub fn namespace(&self, name: &str) {
        let _ = self.kubectl_in(&["delete", "namespace", name, "--wait=true"], None);
        self.kubectl(&["create", "namespace", name]);
        self.wait_for(
            "the namespace's default service account",
            &["-n", name, "serviceaccount", "default"],
            Duration::from_secs(30),
            |v| (!v.is_null()).then_some(()),
        );
    }
}
