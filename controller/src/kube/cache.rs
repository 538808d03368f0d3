//! What the controller's Kubernetes runtime reads, as kube-runtime reflectors keep it: the
//! Rollouts and AnalysisTemplates of every namespace, or of one, and the
//! ClusterAnalysisTemplates (as untyped objects, so that one object the
//! API server accepted but our rules refuse never stops the watch: it is judged on its own),
//! and the ReplicaSets and Pods that carry a revision label, the Services, and the
//! Deployments (what a `workloadRef` points at). Reads come from
//! here; only writes go to the API server. A test fills the stores itself through
//! [`Writers`] and watches nothing.

use std::sync::Arc;

use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::reflector::Store;
use kube::runtime::reflector::store::Writer;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource};
use tokio::sync::Notify;

use super::replicaset::HASH_LABEL;
use crate::spec::rollout::RolloutResource;
use crate::spec::template::AnalysisTemplateResource;

/// The stores the runtime reads.
#[derive(Clone)]
pub struct Cache {
    /// Rollouts, untyped.
    pub rollouts: Store<DynamicObject>,
    /// AnalysisTemplates, untyped.
    pub templates: Store<DynamicObject>,
    /// ClusterAnalysisTemplates, untyped.
    pub cluster_templates: Store<DynamicObject>,
    /// ReplicaSets with a `rollouts-pod-template-hash` label.
    pub replica_sets: Store<ReplicaSet>,
    /// Pods with a `rollouts-pod-template-hash` label.
    pub pods: Store<Pod>,
    /// Services.
    pub services: Store<Service>,
    /// Deployments (what a `workloadRef` points at).
    pub deployments: Store<Deployment>,
    /// Notified on every change any watch sees.
    pub changed: Arc<Notify>,
}

/// The writing side of each store.
pub struct Writers {
    /// Rollouts.
    pub rollouts: Writer<DynamicObject>,
    /// AnalysisTemplates.
    pub templates: Writer<DynamicObject>,
    /// ClusterAnalysisTemplates.
    pub cluster_templates: Writer<DynamicObject>,
    /// ReplicaSets.
    pub replica_sets: Writer<ReplicaSet>,
    /// Pods.
    pub pods: Writer<Pod>,
    /// Services.
    pub services: Writer<Service>,
    /// Deployments.
    pub deployments: Writer<Deployment>,
}

/// The API resource of Rollouts.
pub fn rollout_resource() -> ApiResource {
    ApiResource::erase::<RolloutResource>(&())
}

/// The API resource of ClusterAnalysisTemplates.
pub fn cluster_template_resource() -> ApiResource {
    ApiResource::erase::<crate::crd::ClusterAnalysisTemplateResource>(&())
}

/// The API resource of AnalysisTemplates.
pub fn template_resource() -> ApiResource {
    ApiResource::erase::<AnalysisTemplateResource>(&())
}

impl Cache {
    /// Empty stores and their writers.
    pub fn new() -> (Self, Writers) {
        let writers = Writers {
            rollouts: Writer::new(rollout_resource()),
            templates: Writer::new(template_resource()),
            cluster_templates: Writer::new(cluster_template_resource()),
            replica_sets: Writer::default(),
            pods: Writer::default(),
            services: Writer::default(),
            deployments: Writer::default(),
        };
        let cache = Self {
            rollouts: writers.rollouts.as_reader(),
            templates: writers.templates.as_reader(),
            cluster_templates: writers.cluster_templates.as_reader(),
            replica_sets: writers.replica_sets.as_reader(),
            pods: writers.pods.as_reader(),
            services: writers.services.as_reader(),
            deployments: writers.deployments.as_reader(),
            changed: Arc::new(Notify::new()),
        };
        (cache, writers)
    }

    /// Whether every store has had its first full list.
    pub async fn ready(&self) {
        let _ = self.rollouts.wait_until_ready().await;
        let _ = self.templates.wait_until_ready().await;
        let _ = self.cluster_templates.wait_until_ready().await;
        let _ = self.replica_sets.wait_until_ready().await;
        let _ = self.pods.wait_until_ready().await;
        let _ = self.services.wait_until_ready().await;
        let _ = self.deployments.wait_until_ready().await;
    }
}

/// Keeps one store in step with the API server until the process ends, notifying `changed`
/// on every event; a failed watch is retried with kube-runtime's backoff.
async fn follow<K>(
    api: Api<K>,
    config: watcher::Config,
    writer: Writer<K>,
    changed: Arc<Notify>,
    kind: &'static str,
) where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    let stream = watcher(api, config).default_backoff().reflect(writer);
    futures_util::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        if let Err(e) = event {
            tracing::warn!(kind, error = %e, "watch failed; retrying");
        }
        changed.notify_one();
    }
}

/// An API of `K` in `namespace`, or in every namespace.
fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

fn dynamic_api(client: &Client, namespace: Option<&str>, ar: &ApiResource) -> Api<DynamicObject> {
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, ar),
        None => Api::all_with(client.clone(), ar),
    }
}

/// Starts the watches that keep `cache` (made with `writers`) filled: of `namespace`, or of
/// every namespace.
pub fn watch(
    client: &Client,
    namespace: Option<&str>,
    cache: &Cache,
    writers: Writers,
) -> Vec<tokio::task::JoinHandle<()>> {
    let labelled = || watcher::Config::default().labels(HASH_LABEL);
    let all = watcher::Config::default;
    let changed = &cache.changed;
    vec![
        tokio::spawn(follow(
            dynamic_api(client, namespace, &rollout_resource()),
            all(),
            writers.rollouts,
            changed.clone(),
            "Rollout",
        )),
        tokio::spawn(follow(
            dynamic_api(client, namespace, &template_resource()),
            all(),
            writers.templates,
            changed.clone(),
            "AnalysisTemplate",
        )),
        tokio::spawn(follow(
            Api::all_with(client.clone(), &cluster_template_resource()),
            all(),
            writers.cluster_templates,
            changed.clone(),
            "ClusterAnalysisTemplate",
        )),
        tokio::spawn(follow(
            api::<ReplicaSet>(client, namespace),
            labelled(),
            writers.replica_sets,
            changed.clone(),
            "ReplicaSet",
        )),
        tokio::spawn(follow(
            api::<Pod>(client, namespace),
            labelled(),
            writers.pods,
            changed.clone(),
            "Pod",
        )),
        tokio::spawn(follow(
            api::<Service>(client, namespace),
            all(),
            writers.services,
            changed.clone(),
            "Service",
        )),
        tokio::spawn(follow(
            api::<Deployment>(client, namespace),
            all(),
            writers.deployments,
            changed.clone(),
            "Deployment",
        )),
    ]
}
