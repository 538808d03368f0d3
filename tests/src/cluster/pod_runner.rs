//! The pod runner: the part of a kubelet that KWOK leaves out. KWOK marks the pods of its
//! simulated nodes Running and gives each a loopback IP; the runner starts, for every
//! container of such a pod, the process its image names — `sluice-load serve --name <tag>
//! --listen <pod IP>:<container port>` followed by the container's `args` — and kills it
//! when the pod goes (deleted, or no longer Running). A process that exits is started again,
//! as a kubelet restarts a container. So the addresses in a pod's status really answer, with
//! the version its image tag names.
//!
//! Not run: a container with a `command` of its own (the runner has nothing to run for it,
//! so its port refuses connections — a container that never listens), one without a
//! container port, and the controller's own image `sluice` (the tests start the controller
//! themselves, with its service account's token, as that pod's process).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio::sync::watch;

/// One process to run: what a container of a Running pod asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Serve {
    /// The version name: the image's tag (`latest` without one).
    pub name: String,
    /// `IP:port`.
    pub listen: String,
    /// The container's `args`.
    pub args: Vec<String>,
}

/// The image's repository name (last path segment) and tag.
fn image_parts(image: &str) -> (&str, &str) {
    let last = image.rsplit('/').next().unwrap_or(image);
    let last = last.split('@').next().unwrap_or(last);
    match last.split_once(':') {
        Some((repo, tag)) => (repo, tag),
        None => (last, "latest"),
    }
}

/// What each container of `pod` should run, keyed `namespace/pod/container` with the pod's
/// UID (a pod of the same name made again is another pod). Pure.
pub fn wanted(pod: &Pod) -> Vec<((String, String), Serve)> {
    let running = pod
        .status
        .as_ref()
        .is_some_and(|s| s.phase.as_deref() == Some("Running"));
    let ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone());
    let (Some(ip), true, None) = (ip, running, pod.metadata.deletion_timestamp.as_ref()) else {
        return Vec::new();
    };
    let Some(spec) = &pod.spec else {
        return Vec::new();
    };
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let ip = if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip
    };
    spec.containers
        .iter()
        .filter(|c| c.command.is_none())
        .filter_map(|c| {
            let (repo, tag) = image_parts(c.image.as_deref()?);
            if repo == "sluice" {
                return None;
            }
            let port = c.ports.as_ref()?.first()?.container_port;
            Some((
                (format!("{ns}/{name}/{}", c.name), uid.clone()),
                Serve {
                    name: tag.to_owned(),
                    listen: format!("{ip}:{port}"),
                    args: c.args.clone().unwrap_or_default(),
                },
            ))
        })
        .collect()
}

struct Running {
    serve: Serve,
    child: Child,
}

/// Runs the processes of every Running pod until `stop` turns true, then kills them all.
pub async fn run(client: Client, serve_bin: PathBuf, mut stop: watch::Receiver<bool>) {
    let (reader, writer) = reflector::store::<Pod>();
    let stream = reflector::reflector(
        writer,
        watcher(Api::<Pod>::all(client), watcher::Config::default()),
    )
    .default_backoff()
    .touched_objects();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while stream.next().await.is_some() {}
    });
    let mut running: BTreeMap<(String, String), Running> = BTreeMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    while !*stop.borrow() {
        tokio::select! {
            _ = tick.tick() => reconcile(&reader, &mut running, &serve_bin),
            _ = stop.changed() => {}
        }
    }
    for (_, mut r) in std::mem::take(&mut running) {
        let _ = r.child.kill();
        let _ = r.child.wait();
    }
}

fn reconcile(
    reader: &Store<Pod>,
    running: &mut BTreeMap<(String, String), Running>,
    serve_bin: &Path,
) {
    let wanted: BTreeMap<_, _> = reader.state().iter().flat_map(|p| wanted(p)).collect();
    let gone: BTreeSet<_> = running
        .iter()
        .filter(|(k, r)| wanted.get(*k) != Some(&r.serve))
        .map(|(k, _)| k.clone())
        .collect();
    for k in gone {
        if let Some(mut r) = running.remove(&k) {
            let _ = r.child.kill();
            let _ = r.child.wait();
        }
    }
    for (k, serve) in wanted {
        if let Some(r) = running.get_mut(&k) {
            // restarted as a kubelet restarts an exited container (an address still held by
            // a process just stopped, say)
            if matches!(r.child.try_wait(), Ok(Some(_)))
                && let Ok(child) = start(serve_bin, &serve)
            {
                r.child = child;
            }
            continue;
        }
        if let Ok(child) = start(serve_bin, &serve) {
            running.insert(k, Running { serve, child });
        }
    }
}

fn start(serve_bin: &Path, serve: &Serve) -> std::io::Result<Child> {
    Command::new(serve_bin)
        .args(["serve", "--name", &serve.name, "--listen", &serve.listen])
        .args(&serve.args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}
