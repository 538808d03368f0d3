//! The addresses a revision is served at on a cluster: its pods (by the
//! `rollouts-pod-template-hash` label) that are not being deleted, have an IP and have been
//! Ready for at least `minReadySeconds` — what Kubernetes calls available. Each gives
//! `IP:port`, the port being the first container port of the pod's first container that has
//! one. These go into the route table the proxies receive, so that a switch never waits for
//! kube-proxy, a Service selector or DNS; their count is the engine's availability gate.
//! Pure: the pods and the time are inputs.

use k8s_openapi::api::core::v1::Pod;

use super::replicaset::HASH_LABEL;
use crate::time::Time;

/// The first container port of the pod, if any container has one.
fn port(pod: &Pod) -> Option<i32> {
    pod.spec.as_ref()?.containers.iter().find_map(|c| {
        c.ports
            .as_ref()
            .and_then(|ps| ps.first())
            .map(|p| p.container_port)
    })
}

/// When the pod last became Ready, if it is Ready now.
fn ready_since(pod: &Pod) -> Option<Option<Time>> {
    let condition = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")?;
    (condition.status == "True").then(|| {
        condition
            .last_transition_time
            .as_ref()
            .map(|t| Time(t.0.as_millisecond()))
    })
}

/// Whether a pod serves: not being deleted, Ready for `min_ready_seconds` at `now`.
pub fn available(pod: &Pod, min_ready_seconds: u32, now: Time) -> bool {
    if pod.metadata.deletion_timestamp.is_some() {
        return false;
    }
    match ready_since(pod) {
        None => false,
        Some(_) if min_ready_seconds == 0 => true,
        Some(None) => false,
        Some(Some(since)) => {
            now.since(since) >= std::time::Duration::from_secs(u64::from(min_ready_seconds))
        }
    }
}

/// `IP:port` of every available pod of revision `hash` among `pods`, sorted.
pub fn addresses<'a>(
    pods: impl IntoIterator<Item = &'a Pod>,
    hash: &str,
    min_ready_seconds: u32,
    now: Time,
) -> Vec<String> {
    let mut out: Vec<String> = pods
        .into_iter()
        .filter(|p| {
            p.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(HASH_LABEL))
                .is_some_and(|h| h == hash)
        })
        .filter(|p| available(p, min_ready_seconds, now))
        .filter_map(|p| {
            let ip = p.status.as_ref()?.pod_ip.clone()?;
            let port = port(p)?;
            Some(if ip.contains(':') {
                format!("[{ip}]:{port}")
            } else {
                format!("{ip}:{port}")
            })
        })
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(name: &str, hash: &str, ip: Option<&str>, ready: Option<&str>) -> Pod {
        let mut status = json!({"phase": "Running"});
        if let Some(ip) = ip {
            status["podIP"] = json!(ip);
        }
        if let Some(since) = ready {
            status["conditions"] =
                json!([{"type": "Ready", "status": "True", "lastTransitionTime": since}]);
        }
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"app": "chip", "rollouts-pod-template-hash": hash}},
            "spec": {"containers": [{"name": "side"}, {"name": "chip", "image": "chip:v1",
                                     "ports": [{"containerPort": 8080}, {"containerPort": 9090}]}]},
            "status": status
        }))
        .unwrap()
    }

    #[test]
    fn ready_pods_of_the_revision_give_their_ip_and_first_container_port() {
        let now = Time(1_800_000_010_000);
        let since = "2027-01-15T08:00:00Z"; // Time(1_800_000_000_000)
        let pods = [
            pod("a", "h1", Some("10.0.0.2"), Some(since)),
            pod("b", "h1", Some("10.0.0.1"), Some(since)),
            pod("c", "h2", Some("10.0.0.3"), Some(since)),
            pod("d", "h1", None, Some(since)),
            pod("e", "h1", Some("10.0.0.5"), None),
            pod("f", "h1", Some("fd00::7"), Some(since)),
        ];
        assert_eq!(
            addresses(&pods, "h1", 0, now),
            ["10.0.0.1:8080", "10.0.0.2:8080", "[fd00::7]:8080"]
        );
    }

    #[test]
    fn min_ready_seconds_holds_a_pod_back_and_deletion_removes_it() {
        let since = "2027-01-15T08:00:00Z";
        let p = pod("a", "h1", Some("10.0.0.1"), Some(since));
        assert!(!available(&p, 15, Time(1_800_000_010_000)));
        assert!(available(&p, 10, Time(1_800_000_010_000)));
        let mut going = p.clone();
        going.metadata.deletion_timestamp = p
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c[0].last_transition_time.clone());
        assert!(!available(&going, 0, Time(1_800_000_010_000)));
    }
}
