//! sluice on Kubernetes. The CLI's side of a cluster: Rollout objects listed, shown and
//! commanded through the API server with the patches Argo Rollouts' plugin sends
//! ([`rollouts`], [`patch`]). The controller's runtime: a [`crate::reconcile::Port`] on the API
//! server ([`port`]) that reads what the watches hold ([`cache`], [`world`]), keeps its state
//! in a ConfigMap ([`stored`]) and writes what the loop decided ([`plan`]), built from pure
//! rules: a revision's ReplicaSet ([`replicaset`]), the addresses of its available pods
//! ([`endpoints`]), the managed Services' selectors ([`services`]) and leader election over a
//! Lease ([`lease`]). The CRDs are [`crate::crd`]'s.

pub mod cache;
pub mod controller;
pub mod endpoints;
pub mod events;
pub mod jobs;
pub mod leader;
pub mod lease;
pub mod params;
pub mod patch;
pub mod plan;
pub mod port;
pub mod rbac;
pub mod replicaset;
pub mod roles;
pub mod rollouts;
pub mod runs;
pub mod services;
pub mod stored;
pub mod world;

pub use rollouts::ClusterRollouts;

/// A Rollout object `shop/chip` on `chip:v1`, canary 20 % then a pause, with `status`.
#[cfg(test)]
pub(crate) fn rollout_object(status: serde_json::Value, paused: bool) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "chip", "namespace": "shop"},
        "spec": {
            "paused": paused,
            "selector": {"matchLabels": {"app": "chip"}},
            "template": {"metadata": {"labels": {"app": "chip"}},
                         "spec": {"containers": [{"name": "chip", "image": "chip:v1"}]}},
            "strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}]}}
        },
        "status": status
    })
}

#[cfg(test)]
pub(crate) mod fake;
#[cfg(test)]
mod runtime_tests;
