//! sluice installed on the test cluster as a user installs it — `kubectl apply --server-side
//! -k manifests/` (the CRDs, the namespace, the RBAC, the token Secret and the controller's
//! Deployment), then the token set — and the controller run as the processes of that
//! Deployment's pods: `POD_NAME` and `POD_NAMESPACE` as the pod spec gives them, and a
//! kubeconfig holding a token of the `sluice-controller` service account, so the controller
//! has exactly the install's RBAC and a missing verb fails a test. On a cluster of your own
//! (`KUBECONFIG`), the Deployment is scaled to zero instead and the controller runs here
//! without a pod.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::Cluster;
use super::control_plane::kubeconfig;

/// The namespace of the install.
pub const NAMESPACE: &str = "sluice";

/// What the install left for the tests.
pub struct Install {
    /// The control API's token (operators and proxies), and the file holding it.
    pub token: String,
    /// The file holding [`Install::token`].
    pub token_file: PathBuf,
    /// A kubeconfig with a token of the `sluice-controller` service account.
    pub controller_kubeconfig: PathBuf,
    /// The Deployment's pods (own cluster), whose processes the controllers are.
    pub pods: Vec<String>,
}

static INSTALL: OnceLock<Install> = OnceLock::new();

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Installs sluice once for the test process.
pub fn install(cluster: &Cluster) -> &'static Install {
    INSTALL.get_or_init(|| {
        let manifests = repo().join("manifests");
        cluster.kubectl(&[
            "apply",
            "--server-side",
            "-k",
            &manifests.display().to_string(),
        ]);
        cluster.kubectl(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/rollouts.sluice.dev",
            "crd/analysistemplates.sluice.dev",
            "crd/clusteranalysistemplates.sluice.dev",
            "crd/analysisruns.sluice.dev",
        ]);
        let token = "sluice-test-token-0123456789abcdef".to_owned();
        cluster.apply(&format!(
            "apiVersion: v1
kind: Secret
metadata: {{name: sluice-token, namespace: {NAMESPACE}}}
type: Opaque
stringData: {{token: {token}}}
"
        ));
        let dir = cluster.dir().join("sluice");
        std::fs::create_dir_all(&dir).unwrap();
        let token_file = dir.join("token");
        std::fs::write(&token_file, &token).unwrap();
        let sa_token = cluster
            .kubectl(&[
                "-n",
                NAMESPACE,
                "create",
                "token",
                "sluice-controller",
                "--duration=48h",
            ])
            .trim()
            .to_owned();
        let raw: Value = serde_json::from_str(&cluster.kubectl(&[
            "config",
            "view",
            "--raw",
            "--minify",
            "--flatten",
            "-o",
            "json",
        ]))
        .unwrap();
        let c = &raw["clusters"][0]["cluster"];
        let server = c["server"].as_str().expect("the kubeconfig's server");
        let ca = dir.join("ca.crt");
        let data = c["certificate-authority-data"]
            .as_str()
            .expect("the kubeconfig's certificate-authority-data");
        use base64::Engine as _;
        let pem = base64::engine::general_purpose::STANDARD
            .decode(data)
            .expect("base64 certificate data");
        std::fs::write(&ca, pem).unwrap();
        let controller_kubeconfig = dir.join("controller.kubeconfig");
        std::fs::write(
            &controller_kubeconfig,
            kubeconfig(server, &ca, &format!("    token: {sa_token}")),
        )
        .unwrap();
        let pods = if cluster.own {
            cluster.wait_for(
                "the controller Deployment's two pods Running",
                &[
                    "-n",
                    NAMESPACE,
                    "pods",
                    "-l",
                    "app.kubernetes.io/name=sluice-controller",
                ],
                Duration::from_secs(60),
                |v| {
                    let names: Vec<String> = v["items"]
                        .as_array()?
                        .iter()
                        .filter(|p| p["status"]["phase"] == "Running")
                        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_owned))
                        .collect();
                    (names.len() == 2).then_some(names)
                },
            )
        } else {
            cluster.kubectl(&[
                "-n",
                NAMESPACE,
                "scale",
                "deployment",
                "sluice-controller",
                "--replicas=0",
            ]);
            Vec::new()
        };
        Install {
            token,
            token_file,
            controller_kubeconfig,
            pods,
        }
    })
}

/// One `sluice controller --kubernetes` process: the process of one of the install's pods.
pub struct Controller {
    /// The control API, once leading.
    pub addr: SocketAddr,
    /// The pod it is the process of (own cluster).
    pub pod: Option<String>,
    child: Child,
    log: PathBuf,
}

impl Controller {
    /// Starts the process of pod `index` of the install and waits until it leads.
    pub fn start(cluster: &Cluster, index: usize) -> Self {
        Self::start_with(cluster, index, "127.0.0.1:0", true)
    }

    /// Starts the process of pod `index` with its control API on `listen` (bound once it
    /// leads: candidates given one address stand for the Service that selects the leader);
    /// waits until it leads when `lead`, else returns at once with no address.
    pub fn start_with(cluster: &Cluster, index: usize, listen: &str, lead: bool) -> Self {
        let install = install(cluster);
        let dir = cluster.dir().join("sluice");
        let tag = format!("{index}-{}", unique());
        let addr_file = dir.join(format!("controller-{tag}.addr"));
        let log = dir.join(format!("controller-{tag}.log"));
        let pod = install.pods.get(index).cloned();
        let mut cmd = Command::new(crate::bin("sluice"));
        cmd.args([
            "controller",
            "--kubernetes",
            "--listen",
            listen,
            "--probe-listen",
            "127.0.0.1:0",
            "--debug-headers",
            "--lease",
            "6s",
        ])
        .arg("--token-file")
        .arg(&install.token_file)
        .arg("--addr-file")
        .arg(&addr_file)
        .env("KUBECONFIG", &install.controller_kubeconfig)
        .env("POD_NAMESPACE", NAMESPACE)
        .env("RUST_LOG", "info,kube=warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
        match &pod {
            Some(p) => cmd.env("POD_NAME", p),
            None => cmd
                .arg("--identity")
                .arg(format!("test-controller-{index}")),
        };
        let mut child = cmd.spawn().expect("start sluice controller");
        let mut addr: SocketAddr = "0.0.0.0:0".parse().unwrap();
        if lead {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if let Ok(text) = std::fs::read_to_string(&addr_file)
                    && let Ok(v) = serde_json::from_str::<Value>(&text)
                {
                    addr = v["listen"].as_str().unwrap().parse().unwrap();
                    break;
                }
                if let Ok(Some(s)) = child.try_wait() {
                    panic!(
                        "the controller exited before leading ({s}):\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
                assert!(
                    Instant::now() < deadline,
                    "the controller did not lead in 60 s:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Self {
            addr,
            pod,
            child,
            log,
        }
    }

    /// Its control API's URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Whether it has started to lead (its control API is listening).
    pub fn leads(&self) -> bool {
        self.log().contains("control API on")
    }

    /// Its PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = self.log();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Kills it with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        if !self.running() {
            return;
        }
        // SIGTERM first: a controller that stops cleanly hands its lease over at once
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}
