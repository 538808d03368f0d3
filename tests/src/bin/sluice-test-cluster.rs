//! `sluice-test-cluster DIR`: a Kubernetes control plane on loopback for the tests (etcd,
//! kube-apiserver, kube-controller-manager, kube-scheduler, KWOK with two simulated nodes and
//! the pod runner), built from source by `scripts/install-test-deps.sh`. It writes
//! `DIR/admin.kubeconfig`, then `DIR/ready` once the nodes are Ready and the service accounts
//! are made, and runs until its standard input closes (the test process that started it has
//! ended, however it ended) or it is sent SIGTERM or SIGINT; then it stops every process it
//! started. Run by hand, it is a cluster to look at: `KUBECONFIG=DIR/admin.kubeconfig kubectl …`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sluice_tests::cluster::control_plane::{Components, ControlPlane};
use sluice_tests::cluster::{nodes, pod_runner};
use tokio::io::AsyncReadExt;

fn kubectl(components: &Components, kubeconfig: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(components.bin_dir.join("kubectl"))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()?;
    if !out.status.success() {
        bail!(
            "kubectl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Waits until the nodes are Ready and `default/default` exists.
fn wait_settled(components: &Components, plane: &mut ControlPlane) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let kc = plane.kubeconfig.clone();
    loop {
        if let Some(e) = plane.exited() {
            bail!("{e} (see its log)");
        }
        let ready = kubectl(
            components,
            &kc,
            &[
                "get",
                "nodes",
                "-o",
                "jsonpath={range .items[*]}{.status.conditions[?(@.type=='Ready')].status}{' '}{end}",
            ],
        )
        .unwrap_or_default();
        let sa = kubectl(
            components,
            &kc,
            &["-n", "default", "get", "serviceaccount", "default"],
        );
        if ready.split_whitespace().filter(|s| *s == "True").count() == nodes::COUNT && sa.is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the cluster did not settle in 120 s: nodes '{ready}', service account {sa:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn serve_bin() -> PathBuf {
    if let Ok(dir) = std::env::var("SLUICE_BIN_DIR") {
        return Path::new(&dir).join("sluice-load");
    }
    let exe = std::env::current_exe().expect("own path");
    exe.parent().expect("a directory").join("sluice-load")
}

async fn until_told_to_stop() {
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 64];
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal");
    let closed = async { while !matches!(stdin.read(&mut buf).await, Ok(0) | Err(_)) {} };
    tokio::select! {
        _ = closed => {}
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

fn main() -> Result<()> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .context("usage: sluice-test-cluster DIR")?,
    );
    std::fs::create_dir_all(&dir)?;
    let components = Components::locate()?;
    let mut plane = ControlPlane::start(&components, &dir)?;
    let nodes_file = dir.join("nodes.yaml");
    std::fs::write(&nodes_file, nodes::manifest())?;
    kubectl(
        &components,
        &plane.kubeconfig,
        &["apply", "-f", &nodes_file.display().to_string()],
    )?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let config = kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(&plane.kubeconfig)?,
            &kube::config::KubeConfigOptions::default(),
        )
        .await?;
        let client = kube::Client::try_from(config)?;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let runner = tokio::spawn(pod_runner::run(client, serve_bin(), stop_rx));
        let settled = tokio::task::block_in_place(|| wait_settled(&components, &mut plane));
        if let Err(e) = settled {
            stop_tx.send_replace(true);
            let _ = runner.await;
            return Err(e);
        }
        std::fs::write(dir.join("ready"), plane.server.as_bytes())?;
        eprintln!("cluster ready: KUBECONFIG={}", plane.kubeconfig.display());
        until_told_to_stop().await;
        stop_tx.send_replace(true);
        let _ = runner.await;
        Ok::<_, anyhow::Error>(())
    })?;
    plane.stop();
    Ok(())
}
