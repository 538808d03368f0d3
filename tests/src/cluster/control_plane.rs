//! Starts and stops the processes of the test control plane, each built from source by
//! `scripts/install-test-deps.sh`: etcd, kube-apiserver (client certificates and service-account
//! tokens, RBAC), kube-controller-manager (the ReplicaSet, Deployment, garbage-collector, Job,
//! HPA, namespace and service-account controllers), kube-scheduler and KWOK, which plays the
//! kubelet of simulated nodes whose pod CIDRs lie in 127.0.0.0/8 — so every pod's IP is a
//! loopback address this machine can listen on. Every listener is on 127.0.0.1; every log goes
//! to a file of the cluster's directory.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::pki::{self, Pki};

/// The built components: the directory of the binaries and KWOK's stages.
#[derive(Debug, Clone)]
pub struct Components {
    /// Holds `etcd`, `kube-apiserver`, `kube-controller-manager`, `kube-scheduler`, `kubectl`
    /// and `kwok`.
    pub bin_dir: PathBuf,
    /// KWOK's node and pod stages (its `fast` set: ready at once, deleted at once).
    pub kwok_stages: PathBuf,
}

impl Components {
    /// The components `scripts/install-test-deps.sh` built: `SLUICE_K8S_DIR`, else what the
    /// script prints with `--print-k8s-dir`.
    pub fn locate() -> Result<Self> {
        let dir = match std::env::var("SLUICE_K8S_DIR") {
            Ok(d) => PathBuf::from(d),
            Err(_) => {
                let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
                let out = Command::new(root.join("scripts/install-test-deps.sh"))
                    .arg("--print-k8s-dir")
                    .output()
                    .context("run scripts/install-test-deps.sh --print-k8s-dir")?;
                PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
            }
        };
        let c = Self {
            bin_dir: dir.join("bin"),
            kwok_stages: dir.join("kwok-stages.yaml"),
        };
        for b in [
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "kubectl",
            "kwok",
        ] {
            if !c.bin_dir.join(b).exists() {
                bail!(
                    "{} is missing: scripts/install-test-deps.sh builds the Kubernetes components \
                     (or set KUBECONFIG for a cluster of your own)",
                    c.bin_dir.join(b).display()
                );
            }
        }
        Ok(c)
    }

    fn bin(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }
}

/// A free loopback port (bound, then released for the component to take).
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A kubeconfig for `server` with the CA and a user given as YAML lines.
pub fn kubeconfig(server: &str, ca: &Path, user: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: {server}
    certificate-authority: {ca}
users:
- name: user
  user:
{user}
contexts:
- name: test
  context: {{cluster: test, user: user}}
current-context: test
",
        ca = ca.display()
    )
}

/// The running control plane.
pub struct ControlPlane {
    /// The admin kubeconfig (client certificate in `system:masters`).
    pub kubeconfig: PathBuf,
    /// The API server's URL.
    pub server: String,
    /// The keys and certificates.
    pub pki: Pki,
    /// Components started, in order.
    children: Vec<(&'static str, Child)>,
}

impl ControlPlane {
    /// Starts every component under `dir` and returns once the API server answers.
    pub fn start(components: &Components, dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir.join("logs"))?;
        let pki = pki::generate(dir)?;
        let server_port = free_port()?;
        let server = format!("https://127.0.0.1:{server_port}");
        let kubeconfig = dir.join("admin.kubeconfig");
        std::fs::write(
            &kubeconfig,
            kubeconfig_text(&server, &pki.ca, &pki.admin_cert, &pki.admin_key),
        )?;
        let mut plane = Self {
            kubeconfig,
            server,
            pki,
            children: Vec::new(),
        };
        let kc = plane.kubeconfig.display().to_string();

        let (client, peer) = (free_port()?, free_port()?);
        plane.spawn(
            components,
            dir,
            "etcd",
            &[
                "--name=test".into(),
                format!("--data-dir={}", dir.join("etcd").display()),
                format!("--listen-client-urls=http://127.0.0.1:{client}"),
                format!("--advertise-client-urls=http://127.0.0.1:{client}"),
                format!("--listen-peer-urls=http://127.0.0.1:{peer}"),
                format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer}"),
                format!("--initial-cluster=test=http://127.0.0.1:{peer}"),
                "--unsafe-no-fsync=true".into(),
                "--log-level=warn".into(),
            ],
        )?;
        let p = &plane.pki;
        let apiserver_args = vec![
            format!("--etcd-servers=http://127.0.0.1:{client}"),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            format!("--secure-port={server_port}"),
            format!("--tls-cert-file={}", p.serving_cert.display()),
            format!("--tls-private-key-file={}", p.serving_key.display()),
            format!("--client-ca-file={}", p.ca.display()),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
            format!("--service-account-key-file={}", p.sa_pub.display()),
            format!("--service-account-signing-key-file={}", p.sa_key.display()),
            "--service-cluster-ip-range=10.96.0.0/16".into(),
            "--authorization-mode=RBAC".into(),
            "--endpoint-reconciler-type=none".into(),
            "--allow-privileged=true".into(),
            // nodes made Ready by KWOK: no not-ready taint for a node-lifecycle controller to lift
            "--disable-admission-plugins=TaintNodesByCondition".into(),
            format!("--cert-dir={}", dir.join("apiserver-certs").display()),
            "--v=1".into(),
        ];
        plane.spawn(components, dir, "kube-apiserver", &apiserver_args)?;
        plane.wait_ready(components, Duration::from_secs(120))?;

        let controllers = [
            "replicaset-controller",
            "deployment-controller",
            "garbage-collector-controller",
            "job-controller",
            "horizontal-pod-autoscaler-controller",
            "namespace-controller",
            "serviceaccount-controller",
            "serviceaccount-token-controller",
            "endpointslice-controller",
        ]
        .join(",");
        let kcm_args = vec![
            format!("--kubeconfig={kc}"),
            format!("--authentication-kubeconfig={kc}"),
            format!("--authorization-kubeconfig={kc}"),
            format!("--controllers={controllers}"),
            format!(
                "--service-account-private-key-file={}",
                plane.pki.sa_key.display()
            ),
            format!("--root-ca-file={}", plane.pki.ca.display()),
            "--use-service-account-credentials=false".into(),
            "--leader-elect=false".into(),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={}", free_port()?),
            "--horizontal-pod-autoscaler-sync-period=1s".into(),
            "--v=1".into(),
        ];
        plane.spawn(components, dir, "kube-controller-manager", &kcm_args)?;
        let scheduler_args = vec![
            format!("--kubeconfig={kc}"),
            format!("--authentication-kubeconfig={kc}"),
            format!("--authorization-kubeconfig={kc}"),
            "--leader-elect=false".into(),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={}", free_port()?),
            "--v=1".into(),
        ];
        plane.spawn(components, dir, "kube-scheduler", &scheduler_args)?;
        let kwok_args = vec![
            format!("--kubeconfig={kc}"),
            format!("--config={}", components.kwok_stages.display()),
            "--manage-all-nodes=false".into(),
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake".into(),
            "--node-ip=127.0.0.1".into(),
            "--cidr=127.200.0.0/16".into(),
            format!("--server-address=127.0.0.1:{}", free_port()?),
        ];
        plane.spawn(components, dir, "kwok", &kwok_args)?;
        Ok(plane)
    }

    fn spawn(
        &mut self,
        components: &Components,
        dir: &Path,
        name: &'static str,
        args: &[String],
    ) -> Result<()> {
        let log = std::fs::File::create(dir.join("logs").join(format!("{name}.log")))?;
        let child = Command::new(components.bin(name))
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("start {name}"))?;
        self.children.push((name, child));
        Ok(())
    }

    /// Waits until `kubectl get --raw /readyz` answers `ok`, failing if a component exits.
    fn wait_ready(&mut self, components: &Components, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            for (name, child) in &mut self.children {
                if let Some(status) = child.try_wait()? {
                    bail!("{name} exited while starting: {status} (see its log)");
                }
            }
            let out = Command::new(components.bin("kubectl"))
                .arg("--kubeconfig")
                .arg(&self.kubeconfig)
                .args(["get", "--raw", "/readyz"])
                .output()?;
            if out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok" {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "the API server was not ready in {timeout:?}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// A component that has exited, with its status.
    pub fn exited(&mut self) -> Option<String> {
        self.children.iter_mut().find_map(|(name, child)| {
            child
                .try_wait()
                .ok()
                .flatten()
                .map(|s| format!("{name} exited: {s}"))
        })
    }

    /// Stops every component, the last started first.
    pub fn stop(&mut self) {
        while let Some((_, mut child)) = self.children.pop() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop();
    }
}

fn kubeconfig_text(server: &str, ca: &Path, cert: &Path, key: &Path) -> String {
    kubeconfig(
        server,
        ca,
        &format!(
            "    client-certificate: {}\n    client-key: {}",
            cert.display(),
            key.display()
        ),
    )
}
