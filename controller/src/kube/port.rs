//! The Kubernetes runtime's side of the reconcile port. The world is the Rollouts and
//! AnalysisTemplates the watches hold (of every namespace, or of one), keyed
//! `namespace/name` ([`super::world`]); a revision
//! runs on the available pods of its ReplicaSet, whose `IP:port` go straight into the route
//! table; the state is kept in the API server ([`super::stored`]); and after each tick the
//! cluster is brought in line with it ([`super::plan`]): ReplicaSets, Services, statuses.
//! Scales are carried out there, level-based, so a write that failed is made again on the
//! next tick.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use futures_util::future::BoxFuture;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{ConfigMap, Event, PodTemplateSpec, Service};
use kube::Client;
use kube::api::{Api, DeleteParams, Patch};

use super::cache::{Cache, rollout_resource};
use super::endpoints;
use super::events;
use super::plan::{self, Write};
use super::replicaset;
use super::stored::Stored;
use super::world::{self, Memory};
use crate::Error;
use crate::control::service::EventView;
use crate::crd::{AnalysisRunResource, AnalysisRunStatus};
use crate::reconcile::{Port, Refresh, State, World};
use crate::revision::pod_template_hash;
use crate::spec::PodTemplate;
use crate::time::Time;

/// How often a `job` provider's Job is looked at.
const JOB_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// The ConfigMap that holds the controller's state.
pub const STATE_CONFIGMAP: &str = "sluice-controller-state";

/// The Kubernetes runtime's port.
pub struct KubePort {
    client: Client,
    cache: Cache,
    state: Stored,
    loaded: Mutex<Option<State>>,
    world: RwLock<Arc<World>>,
    memory: Mutex<Memory>,
    /// Per rollout, the last record posted as an Event.
    posted: Mutex<BTreeMap<String, EventView>>,
    /// Per analysis run (`namespace/name`), whether its object exists and the status last
    /// written to it.
    runs_shown: Mutex<BTreeMap<String, Option<AnalysisRunStatus>>>,
    debug_headers: bool,
}

fn is_conflict<T>(r: &Result<T, kube::Error>) -> bool {
    matches!(r, Err(kube::Error::Api(s)) if s.code == 409)
}

fn unpoisoned<T>(r: std::sync::LockResult<T>) -> T {
    r.unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl KubePort {
    /// The port reading from `cache`, with the state it saved last in namespace `home`
    /// (read now).
    pub async fn open(
        client: Client,
        home: &str,
        cache: Cache,
        debug_headers: bool,
    ) -> Result<Self, Error> {
        let state = Stored::new(
            Api::<ConfigMap>::namespaced(client.clone(), home),
            STATE_CONFIGMAP,
            "state.json",
        );
        let loaded = match state.read().await? {
            None => State::default(),
            Some(text) => serde_json::from_str(&text).map_err(|e| {
                Error::State(format!("configmap {STATE_CONFIGMAP} holds no state: {e}"))
            })?,
        };
        // what was recorded before this start was posted by whoever recorded it
        let posted = loaded
            .rollouts
            .iter()
            .filter_map(|(k, e)| e.events.back().map(|v| (k.clone(), v.clone())))
            .collect();
        let port = Self {
            client,
            cache,
            state,
            loaded: Mutex::new(Some(loaded)),
            world: RwLock::new(Arc::new(World::default())),
            memory: Mutex::new(Memory::default()),
            posted: Mutex::new(posted),
            runs_shown: Mutex::new(BTreeMap::new()),
            debug_headers,
        };
        port.refresh();
        Ok(port)
    }

    fn min_ready_seconds(&self, rollout: &str) -> u32 {
        self.world()
            .rollouts
            .get(rollout)
            .and_then(|r| r.spec.min_ready_seconds)
            .unwrap_or(0)
    }

    /// Every write (with its namespace) that brings the cluster in line with `state`, with
    /// the problems that keep some rollout from being shown (a managed Service that does not
    /// exist).
    fn plan(&self, state: &State, now: Time) -> (Vec<(String, Write)>, Vec<String>) {
        let world = self.world();
        let objects = self.cache.rollouts.state();
        let sets = self.cache.replica_sets.state();
        let services = self.cache.services.state();
        let pods = self.cache.pods.state();
        let deployments = self.cache.deployments.state();
        let mut writes = Vec::new();
        let mut problems = Vec::new();
        for o in &objects {
            let Some(key) = world::key(o) else {
                continue;
            };
            let ns = o.metadata.namespace.clone().unwrap_or_default();
            let uid = o.metadata.uid.as_deref().unwrap_or_default();
            let services: Vec<&Service> = services
                .iter()
                .map(AsRef::as_ref)
                .filter(|s| s.metadata.namespace.as_deref() == Some(ns.as_str()))
                .collect();
            let rollout = world.rollouts.get(&key);
            let entry = state.rollouts.get(&key);
            if let (Some(r), Some(e)) = (rollout, entry)
                && !world.invalid.contains_key(&key)
            {
                for (service, _) in super::services::selectors(&r.spec, &e.status) {
                    if !services
                        .iter()
                        .any(|s| s.metadata.name.as_deref() == Some(&service))
                    {
                        problems.push(format!("rollout {key}: service {service:?} does not exist"));
                    }
                }
            }
            let owned: Vec<&ReplicaSet> = sets
                .iter()
                .map(AsRef::as_ref)
                .filter(|rs| plan::owned_by(rs, uid))
                .collect();
            let owned_uids: Vec<&str> = owned
                .iter()
                .filter_map(|rs| rs.metadata.uid.as_deref())
                .collect();
            let deployment = rollout
                .and_then(|r| r.spec.workload_ref.as_ref())
                .and_then(|wr| {
                    deployments.iter().map(AsRef::as_ref).find(|d| {
                        d.metadata.name.as_deref() == Some(wr.name.as_str())
                            && d.metadata.namespace.as_deref() == Some(ns.as_str())
                    })
                });
            let seen = plan::Seen {
                object: o,
                rollout,
                deployment,
                invalid: world.invalid.get(&key).map(String::as_str),
                entry,
                pods: pods
                    .iter()
                    .map(AsRef::as_ref)
                    .filter(|p| {
                        p.metadata.namespace.as_deref() == Some(ns.as_str())
                            && p.metadata.owner_references.as_ref().is_some_and(|o| {
                                o.iter().any(|r| owned_uids.contains(&r.uid.as_str()))
                            })
                    })
                    .collect(),
                replica_sets: owned,
                services: &services,
                now,
            };
            writes.extend(
                self.run_writes(o, &key, &ns, state, &world)
                    .into_iter()
                    .map(|w| (ns.clone(), w)),
            );
            writes.extend(plan::writes(&seen).into_iter().map(|w| (ns.clone(), w)));
            if let Some(e) = entry {
                let posted = unpoisoned(self.posted.lock());
                let new = events::unposted(e, posted.get(&key));
                writes.extend(new.iter().enumerate().map(|(n, v)| {
                    (
                        ns.clone(),
                        Write::CreateEvent(Box::new(events::event(o, v, n))),
                    )
                }));
            }
        }
        (writes, problems)
    }

    /// The writes that show rollout `key`'s analysis runs as AnalysisRun objects.
    fn run_writes(
        &self,
        o: &kube::api::DynamicObject,
        key: &str,
        ns: &str,
        state: &State,
        world: &World,
    ) -> Vec<Write> {
        let shown = unpoisoned(self.runs_shown.lock());
        let mut out = Vec::new();
        for (name, run) in state.runs.iter().filter(|(_, r)| r.rollout == key) {
            let at = format!("{ns}/{name}");
            let before = match shown.get(&at) {
                None => {
                    let templates = crate::analysis::run::included(&run.request.templates, |t| {
                        crate::reconcile::template(world, key, t)
                    })
                    .unwrap_or_default();
                    out.push(Write::CreateAnalysisRun(Box::new(super::runs::object(
                        o, name, run, &templates,
                    ))));
                    None
                }
                Some(before) => before.as_ref(),
            };
            if let Some(patch) = super::runs::status_patch(before, run) {
                out.push(Write::PatchRunStatus {
                    name: name.clone(),
                    patch,
                    shown: Box::new(super::runs::status(run)),
                });
            }
        }
        out
    }

    async fn carry_out(&self, ns: &str, write: Write) -> Result<(), kube::Error> {
        let sets = Api::<ReplicaSet>::namespaced(self.client.clone(), ns);
        let merge = super::params::patch_params();
        match write {
            Write::CreateReplicaSet(rs) => sets
                .create(&super::params::post_params(), &rs)
                .await
                .map(drop),
            Write::ScaleReplicaSet { name, replicas } => sets
                .patch(
                    &name,
                    &merge,
                    &Patch::Merge(serde_json::json!({"spec": {"replicas": replicas}})),
                )
                .await
                .map(drop),
            Write::PatchPodTemplate { name, patch } => sets
                .patch(&name, &merge, &Patch::Merge(patch))
                .await
                .map(drop),
            Write::PatchPod { name, patch } => {
                Api::<k8s_openapi::api::core::v1::Pod>::namespaced(self.client.clone(), ns)
                    .patch(&name, &merge, &Patch::Merge(patch))
                    .await
                    .map(drop)
            }
            Write::DeletePod { name } => {
                Api::<k8s_openapi::api::core::v1::Pod>::namespaced(self.client.clone(), ns)
                    .delete(&name, &DeleteParams::default())
                    .await
                    .map(drop)
            }
            Write::ScaleDeployment { name, replicas } => {
                Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(self.client.clone(), ns)
                    .patch(
                        &name,
                        &merge,
                        &Patch::Merge(serde_json::json!({"spec": {"replicas": replicas}})),
                    )
                    .await
                    .map(drop)
            }
            Write::AnnotateDeadline { name, deadline } => sets
                .patch(
                    &name,
                    &merge,
                    &Patch::Merge(serde_json::json!({"metadata": {"annotations": {
                        replicaset::SCALE_DOWN_DEADLINE_ANNOTATION: deadline
                    }}})),
                )
                .await
                .map(drop),
            Write::DeleteReplicaSet { name } => sets
                .delete(&name, &DeleteParams::background())
                .await
                .map(drop),
            Write::PatchService { name, patch } => {
                Api::<Service>::namespaced(self.client.clone(), ns)
                    .patch(&name, &merge, &Patch::Merge(patch))
                    .await
                    .map(drop)
            }
            Write::CreateAnalysisRun(run) => {
                let name = run.metadata.name.clone().unwrap_or_default();
                let created = Api::<AnalysisRunResource>::namespaced(self.client.clone(), ns)
                    .create(&super::params::post_params(), &run)
                    .await;
                // made before a restart: it is there already
                if created.is_ok() || is_conflict(&created) {
                    unpoisoned(self.runs_shown.lock())
                        .entry(format!("{ns}/{name}"))
                        .or_insert(None);
                    Ok(())
                } else {
                    created.map(drop)
                }
            }
            Write::PatchRunStatus { name, patch, shown } => {
                Api::<AnalysisRunResource>::namespaced(self.client.clone(), ns)
                    .patch_status(&name, &super::params::patch_params(), &Patch::Merge(patch))
                    .await?;
                unpoisoned(self.runs_shown.lock()).insert(format!("{ns}/{name}"), Some(*shown));
                Ok(())
            }
            Write::CreateEvent(event) => {
                Api::<Event>::namespaced(self.client.clone(), ns)
                    .create(&super::params::post_params(), &event)
                    .await?;
                if let (Some(name), Some(record)) =
                    (&event.involved_object.name, events::record_of(&event))
                {
                    unpoisoned(self.posted.lock()).insert(format!("{ns}/{name}"), record);
                }
                Ok(())
            }
            Write::PatchStatus {
                rollout,
                patch,
                shown,
            } => {
                let api = Api::<kube::api::DynamicObject>::namespaced_with(
                    self.client.clone(),
                    ns,
                    &rollout_resource(),
                );
                api.patch_status(&rollout, &merge, &Patch::Merge(patch))
                    .await?;
                unpoisoned(self.memory.lock()).know(&format!("{ns}/{rollout}"), &shown);
                Ok(())
            }
        }
    }
}

impl Port for KubePort {
    fn refresh(&self) -> Refresh {
        let rollouts = self.cache.rollouts.state();
        let mut templates = self.cache.templates.state();
        templates.extend(self.cache.cluster_templates.state());
        let deployments = self.cache.deployments.state();
        let next = {
            let mut memory = unpoisoned(self.memory.lock());
            world::world(
                &rollouts.iter().map(AsRef::as_ref).collect::<Vec<_>>(),
                &templates.iter().map(AsRef::as_ref).collect::<Vec<_>>(),
                &deployments.iter().map(AsRef::as_ref).collect::<Vec<_>>(),
                &mut memory,
            )
        };
        let mut world = unpoisoned(self.world.write());
        if **world == next {
            return Refresh::Unchanged;
        }
        *world = Arc::new(next);
        Refresh::Changed
    }

    fn world(&self) -> Arc<World> {
        unpoisoned(self.world.read()).clone()
    }

    fn addresses(&self, rollout: &str, template: &PodTemplate) -> Vec<String> {
        let (ns, name) = world::split(rollout);
        let set = replicaset::name(name, &pod_template_hash(template));
        let pods = self.cache.pods.state();
        let owned = pods.iter().map(AsRef::as_ref).filter(|p| {
            p.metadata.namespace.as_deref() == Some(ns)
                && p.metadata
                    .owner_references
                    .as_ref()
                    .is_some_and(|o| o.iter().any(|r| r.kind == "ReplicaSet" && r.name == set))
        });
        endpoints::addresses(
            owned,
            &pod_template_hash(template),
            self.min_ready_seconds(rollout),
            Time::now(),
        )
    }

    /// Every address is an available pod (`minReadySeconds` is applied to the pods).
    fn healthy(&self, _rollout: &str, addresses: &[String]) -> u32 {
        u32::try_from(addresses.len()).unwrap_or(u32::MAX)
    }

    fn check_template(&self, template: &PodTemplate) -> Result<(), Error> {
        let pod: PodTemplateSpec = serde_json::from_value(template.0.clone())
            .map_err(|e| Error::field("spec.template", e.to_string()))?;
        if pod.spec.is_none_or(|s| s.containers.is_empty()) {
            return Err(Error::field(
                "spec.template.spec.containers",
                "a pod needs at least one container",
            ));
        }
        Ok(())
    }

    fn debug_headers(&self) -> bool {
        self.debug_headers
    }

    fn load(&self) -> Result<State, Error> {
        Ok(unpoisoned(self.loaded.lock()).take().unwrap_or_default())
    }

    fn save(&self, state: State) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            let text = serde_json::to_string(&state)
                .map_err(|e| Error::State(format!("cannot encode the state: {e}")))?;
            self.state.write(text).await
        })
    }

    fn secret(
        &self,
        rollout: &str,
        secret: &str,
        key: &str,
    ) -> BoxFuture<'_, Result<String, Error>> {
        let (ns, _) = world::split(rollout);
        let api = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(self.client.clone(), ns);
        let (ns, secret, key) = (ns.to_owned(), secret.to_owned(), key.to_owned());
        Box::pin(async move {
            let s = api
                .get(&secret)
                .await
                .map_err(|e| Error::Unreachable(format!("secret {ns}/{secret}: {e}")))?;
            let bytes = s.data.and_then(|mut d| d.remove(&key)).ok_or_else(|| {
                Error::NotFound(format!("secret {ns}/{secret} has no key {key:?}"))
            })?;
            String::from_utf8(bytes.0).map_err(|_| {
                Error::Refused(format!("secret {ns}/{secret} key {key:?} is not text"))
            })
        })
    }

    fn jobs(&self) -> Option<Arc<dyn crate::providers::JobRunner>> {
        Some(Arc::new(super::jobs::KubeJobs::new(
            self.client.clone(),
            JOB_POLL,
        )))
    }

    fn reflect(&self, state: &State, now: Time) -> BoxFuture<'_, Result<(), Error>> {
        let (writes, mut problems) = self.plan(state, now);
        Box::pin(async move {
            for (ns, w) in writes {
                let what = w.what();
                if let Err(e) = self.carry_out(&ns, w).await {
                    tracing::warn!(error = %e, "cannot write {what}");
                    problems.push(format!("cannot write to the API server: {e}"));
                }
            }
            if problems.is_empty() {
                Ok(())
            } else {
                problems.dedup();
                Err(Error::Unreachable(problems.join("; ")))
            }
        })
    }
}
