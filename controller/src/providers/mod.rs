//! Analysis providers: where a metric's value comes from. Each provider is a module:
//! - [`proxy`]: the proxies' own counters, merged by the hub, over a window;
//! - [`prometheus`]: an instant or range query to a Prometheus HTTP API;
//! - [`web`]: an HTTP call and a JSONPath into its answer;
//! - [`job`]: a Kubernetes Job, or a command in local mode;
//! - [`load`]: a warm-up sent with the loadtest library.

mod client;
pub mod job;
pub mod jsonpath;
pub mod load;
pub mod prometheus;
pub mod proxy;
pub mod web;

use std::sync::Arc;

use crate::analysis::run::{MetricSpec, ProviderOutcome};
use crate::time::Time;

pub use job::{JobRequest, JobRunner, job_name};
pub use proxy::{Counted, CounterWindow, Step, canary_vs_stable};

/// What a measurement needs to know about its rollout.
#[derive(Clone)]
pub struct Measured {
    /// The rollout (its key in the runtime's world).
    pub rollout: String,
    /// Where a `job` provider's Kubernetes Job runs, when the runtime has a cluster.
    pub jobs: Option<Arc<dyn JobRunner>>,
    /// The merged counters (for `proxy`).
    pub counters: Arc<dyn CounterWindow>,
    /// The rollout's proxy route.
    pub route: String,
    /// The revision under analysis.
    pub revision: String,
    /// The stable revision.
    pub stable: String,
    /// Addresses of the revision under analysis.
    pub revision_addresses: Vec<String>,
    /// Addresses of the stable revision.
    pub stable_addresses: Vec<String>,
}

/// Takes one measurement.
pub async fn measure(metric: &MetricSpec, target: &Measured, now: Time) -> ProviderOutcome {
    let p = &metric.provider;
    if let Some(x) = &p.proxy {
        let counters = proxy::Counters {
            window: target.counters.as_ref(),
            route: &target.route,
            revision: &target.revision,
            stable: &target.stable,
        };
        return proxy::measure(x, &counters, now);
    }
    if let Some(x) = &p.prometheus {
        return prometheus::measure(x, now).await;
    }
    if let Some(x) = &p.web {
        return web::measure(x).await;
    }
    if let Some(x) = &p.job {
        let at = job::JobTarget {
            rollout: &target.rollout,
            revision: &target.revision,
            jobs: target.jobs.as_ref(),
        };
        return job::measure(x, metric, &at, now).await;
    }
    if let Some(x) = &p.load {
        return load::measure(x, &target.revision_addresses, &target.stable_addresses).await;
    }
    ProviderOutcome::Error("the metric has no provider".into())
}
