//! The `sluice` CLI against a cluster's API server, through the real binary and a kubeconfig:
//! an API server on loopback that keeps one Rollout object, records every request and answers
//! GET and merge PATCH (of the object and of its status subresource) as Kubernetes does. The
//! exact patches are the unit tests' (`kube::rollouts`); here: the kubeconfig, the namespace,
//! `--kubernetes`, `kubectl-sluice`, and the exit codes.

use std::process::Command;
use std::sync::{Arc, Mutex};

use http_body_util::BodyExt;
use serde_json::{Value, json};
use sluice_tests::bin;

/// (method, path, body) of every request.
type Log = Arc<Mutex<Vec<(String, String, Value)>>>;

fn merge(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(t), Some(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

/// An API server holding `rollout` in namespace `shop`; returns its URL and the request log.
fn api_server(rollout: Value) -> (String, Log, Arc<Mutex<Value>>) {
    let log: Log = Arc::default();
    let object = Arc::new(Mutex::new(rollout));
    let (l, o) = (log.clone(), object.clone());
    let addr = sluice_tests::servers::spawn_loopback(move |stream| {
        let (log, object) = (l.clone(), o.clone());
        async move {
            let svc =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let (log, object) = (log.clone(), object.clone());
                    async move {
                        let method = req.method().to_string();
                        let path = req.uri().path().to_owned();
                        let bytes = req.into_body().collect().await.unwrap().to_bytes();
                        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                        log.lock()
                            .unwrap()
                            .push((method.clone(), path.clone(), body.clone()));
                        let base = "/apis/sluice.dev/v1alpha1/namespaces/shop/rollouts";
                        let (status, answer) = match (method.as_str(), path.as_str()) {
                            ("GET", p) if p == base => (
                                200,
                                json!({"apiVersion": "sluice.dev/v1alpha1", "kind": "RolloutList",
                                   "metadata": {}, "items": [object.lock().unwrap().clone()]}),
                            ),
                            ("GET", p) if p == format!("{base}/chip") => {
                                (200, object.lock().unwrap().clone())
                            }
                            ("PATCH", p)
                                if p == format!("{base}/chip")
                                    || p == format!("{base}/chip/status") =>
                            {
                                let mut o = object.lock().unwrap();
                                merge(&mut o, &body);
                                (200, o.clone())
                            }
                            _ => (
                                404,
                                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                   "message": format!("{path} not found"), "reason": "NotFound",
                                   "code": 404}),
                            ),
                        };
                        Ok::<_, std::convert::Infallible>(
                            hyper::Response::builder()
                                .status(status)
                                .header("content-type", "application/json")
                                .body(http_body_util::Full::new(bytes::Bytes::from(
                                    answer.to_string(),
                                )))
                                .unwrap(),
                        )
                    }
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await;
        }
    });
    (format!("http://{addr}"), log, object)
}

fn paused_rollout() -> Value {
    json!({
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "chip", "namespace": "shop"},
        "spec": {
            "replicas": 4,
            "selector": {"matchLabels": {"app": "chip"}},
            "template": {"metadata": {"labels": {"app": "chip"}},
                         "spec": {"containers": [{"name": "chip", "image": "chip:v2"}]}},
            "strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}, {"setWeight": 100}]}}
        },
        "status": {"phase": "Paused", "currentStepIndex": 1, "controllerPause": true,
                   "message": "CanaryPauseStep",
                   "pauseConditions": [{"reason": "CanaryPauseStep", "startTime": "2026-12-06T10:00:00Z"}]}
    })
}

fn kubeconfig(dir: &std::path::Path, server: &str, namespace: &str) -> std::path::PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {{server: \"{server}\"}}
users:
- name: test
  user: {{token: not-checked}}
contexts:
- name: test
  context: {{cluster: test, user: test, namespace: {namespace}}}
current-context: test
"
        ),
    )
    .unwrap();
    path
}

fn sluice(exe: &std::path::Path, kubeconfig: &std::path::Path, args: &[&str]) -> (i32, String) {
    sluice_tests::procs::finished(
        Command::new(exe)
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env_remove("SLUICE_SERVER"),
    )
}

#[test]
fn promote_abort_and_set_image_reach_the_rollout_object_as_argos_patches() {
    let (server, log, object) = api_server(paused_rollout());
    let dir = tempfile::tempdir().unwrap();
    let config = kubeconfig(dir.path(), &server, "shop");
    let exe = bin("sluice");

    let (code, out) = sluice(&exe, &config, &["--kubernetes", "list", "rollouts"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("chip") && out.contains("Paused"), "{out}");

    let (code, out) = sluice(&exe, &config, &["--kubernetes", "promote", "chip"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = sluice(&exe, &config, &["--kubernetes", "abort", "chip"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = sluice(
        &exe,
        &config,
        &["--kubernetes", "set", "image", "chip", "chip=chip:v3"],
    );
    assert_eq!(code, 0, "{out}");

    let patches: Vec<(String, Value)> = log
        .lock()
        .unwrap()
        .iter()
        .filter(|(m, _, _)| m == "PATCH")
        .map(|(_, p, b)| (p.clone(), b.clone()))
        .collect();
    let base = "/apis/sluice.dev/v1alpha1/namespaces/shop/rollouts/chip";
    assert_eq!(patches.len(), 3, "{patches:#?}");
    assert_eq!(
        patches[0],
        (
            format!("{base}/status"),
            json!({"status": {"pauseConditions": null}})
        )
    );
    assert_eq!(patches[1].0, format!("{base}/status"));
    assert_eq!(patches[1].1["status"]["abort"], json!(true));
    assert_eq!(patches[2].0, base);
    assert_eq!(
        patches[2].1["spec"]["template"]["spec"]["containers"][0]["image"],
        json!("chip:v3")
    );
    let o = object.lock().unwrap();
    assert_eq!(o["status"]["abort"], json!(true));
    assert!(o["status"].get("pauseConditions").is_none());
}

#[test]
fn as_kubectl_sluice_it_talks_to_the_cluster_and_says_so_when_a_rollout_is_missing() {
    let (server, log, _) = api_server(paused_rollout());
    let dir = tempfile::tempdir().unwrap();
    let config = kubeconfig(dir.path(), &server, "elsewhere");
    let plugin = dir.path().join("kubectl-sluice");
    std::fs::copy(bin("sluice"), &plugin).unwrap();

    // the kubeconfig's namespace has no such rollout: exit 3, as for a controller
    let (code, out) = sluice(&plugin, &config, &["get", "rollout", "chip"]);
    assert_eq!(code, 3, "{out}");
    // -n picks the namespace; the plugin needs no --kubernetes
    let (code, out) = sluice(&plugin, &config, &["-n", "shop", "get", "rollout", "chip"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("chip"), "{out}");
    let paths: Vec<String> = log
        .lock()
        .unwrap()
        .iter()
        .map(|(_, p, _)| p.clone())
        .collect();
    assert_eq!(
        paths,
        [
            "/apis/sluice.dev/v1alpha1/namespaces/elsewhere/rollouts/chip",
            "/apis/sluice.dev/v1alpha1/namespaces/shop/rollouts/chip",
        ]
    );
    // a refused command changes nothing and exits 6
    let (code, out) = sluice(&plugin, &config, &["-n", "shop", "retry", "chip"]);
    assert_eq!(code, 6, "{out}");
    assert!(log.lock().unwrap().iter().all(|(m, _, _)| m == "GET"));
}
