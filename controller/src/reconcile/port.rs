//! The port a runtime implements so that the shared reconcile loop can run in its world: what
//! the rollouts and templates say, where a revision runs and whether it is healthy, how the
//! state is kept, and how it is shown where the runtime's owners look (on a cluster: the
//! ReplicaSets the engine's scales call for, the Services, the statuses). Everything else —
//! deciding, publishing routes to the proxies, driving analysis runs, the views — is the
//! loop's and the same for every runtime.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::state::State;
use crate::Error;
use crate::spec::{AnalysisTemplate, PodTemplate, Rollout};
use crate::status::RolloutStatus;
use crate::time::Time;

/// What a runtime's owners wrote: the rollouts and the analysis templates, by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct World {
    /// Rollouts by name.
    pub rollouts: BTreeMap<String, Rollout>,
    /// Analysis templates by name.
    pub templates: BTreeMap<String, AnalysisTemplate>,
    /// Rollouts whose spec, as written now, is invalid, with why (field path and reason).
    /// Such a rollout is left as it is: not decided, nothing scaled or published for it. If
    /// it was valid before, `rollouts` keeps that spec so that its state and route stay.
    pub invalid: BTreeMap<String, String>,
    /// Statuses someone else changed since the loop last showed them (a command sent to the
    /// cluster's API, as Argo Rollouts' plugin does): the loop takes each as the rollout's
    /// status.
    pub commanded: BTreeMap<String, RolloutStatus>,
}

/// The template an analysis of `rollout` requests as `name` ([`TemplateRef::requested`]): a
/// ClusterAnalysisTemplate's (`/NAME`) is keyed by its name alone; an AnalysisTemplate's is
/// keyed `namespace/name` on a cluster (where rollouts are too) and by its name alone in local
/// mode, where both kinds share one set of names.
///
/// [`TemplateRef::requested`]: crate::spec::rollout::TemplateRef::requested
pub fn template<'w>(world: &'w World, rollout: &str, name: &str) -> Option<&'w AnalysisTemplate> {
    if let Some(cluster) = name.strip_prefix('/') {
        return world.templates.get(cluster);
    }
    match rollout.split_once('/') {
        Some((ns, _)) => world.templates.get(&format!("{ns}/{name}")),
        None => world.templates.get(name),
    }
}

/// What [`Port::refresh`] found.
#[derive(Debug)]
pub enum Refresh {
    /// Nothing new.
    Unchanged,
    /// The world changed; [`Port::world`] has the new one.
    Changed,
    /// What the owners wrote now is invalid; the previous world stays in force.
    Invalid(Error),
}

/// A runtime, as the reconcile loop sees it.
pub trait Port: Send + Sync + 'static {
    /// Looks again at what the owners wrote (a config file, watched objects).
    fn refresh(&self) -> Refresh;
    /// The world now in force.
    fn world(&self) -> Arc<World>;
    /// The addresses a revision (a pod template) of a rollout is served at: what the proxies
    /// route to.
    fn addresses(&self, rollout: &str, template: &PodTemplate) -> Vec<String>;
    /// How many of `addresses` of `rollout` are available now (healthy, for the rollout's
    /// `minReadySeconds`).
    fn healthy(&self, rollout: &str, addresses: &[String]) -> u32;
    /// Whether a template can run in this world (checked before `set image` and `undo`).
    fn check_template(&self, template: &PodTemplate) -> Result<(), Error>;
    /// Whether the routes this runtime publishes carry the debug response headers.
    fn debug_headers(&self) -> bool;
    /// The state as last saved, or the empty state on a first start.
    fn load(&self) -> Result<State, Error>;
    /// Saves the state whole and durably, without blocking the async runtime's threads; the
    /// loop carries out no effect of a decision before the state holding it is saved.
    fn save(&self, state: State) -> BoxFuture<'_, Result<(), Error>>;
    /// The value of key `key` of Secret `secret` in `rollout`'s namespace (an analysis
    /// argument's `secretKeyRef`); local mode has no Secrets.
    fn secret(
        &self,
        rollout: &str,
        secret: &str,
        key: &str,
    ) -> BoxFuture<'_, Result<String, Error>> {
        let _ = (rollout, secret, key);
        Box::pin(async {
            Err(Error::Refused(
                "a secretKeyRef argument needs a Kubernetes cluster (local mode has no Secrets)"
                    .into(),
            ))
        })
    }
    /// Where a `job` provider's Kubernetes Jobs run, when the runtime has a cluster (local
    /// mode runs a job's `command` instead).
    fn jobs(&self) -> Option<Arc<dyn crate::providers::JobRunner>> {
        None
    }
    /// Shows the state, once saved and carried out, where the runtime's owners look (on a
    /// cluster: each Rollout's status, its ReplicaSets and Services). Level-based: called
    /// after every tick with the whole state and the tick's time, it changes only what
    /// differs. It reads the state before it returns (under the reconciler's lock, so the
    /// state is not copied each tick); the future only writes.
    fn reflect(&self, state: &State, now: Time) -> BoxFuture<'_, Result<(), Error>> {
        let _ = (state, now);
        Box::pin(async { Ok(()) })
    }
}
