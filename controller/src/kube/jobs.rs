//! The `job` analysis provider on a cluster, as Argo Rollouts runs it: the template's Job
//! (its `metadata` and `spec` as written) is created in the rollout's namespace, labelled
//! with the rollout, and its completion is the measurement — `Complete` passes, `Failed`
//! fails, with the Job's own words; a Job that does not finish within the provider's
//! `timeoutSeconds` is deleted (with its pods) and is an Error measurement.

use std::time::Duration;

use futures_util::future::BoxFuture;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, DeleteParams};
use serde_json::json;

use super::runs::ROLLOUT_LABEL;
use super::world::split;
use crate::analysis::run::ProviderOutcome;
use crate::providers::{JobRequest, JobRunner};

/// Runs Jobs through the API server.
pub struct KubeJobs {
    client: kube::Client,
    poll: Duration,
}

impl KubeJobs {
    /// Jobs through `client`, looked at every `poll`.
    pub fn new(client: kube::Client, poll: Duration) -> Self {
        Self { client, poll }
    }
}

/// How a Job ended, if it has.
fn ended(job: &Job) -> Option<ProviderOutcome> {
    let status = job.status.as_ref()?;
    let conditions = status.conditions.as_deref().unwrap_or_default();
    let holds = |t: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == t && c.status == "True")
    };
    let name = job.metadata.name.as_deref().unwrap_or_default();
    if let Some(c) = holds("Complete") {
        return Some(ProviderOutcome::Decided {
            success: true,
            detail: format!("job {name} complete{}", words(c.message.as_deref())),
        });
    }
    if let Some(c) = holds("Failed") {
        return Some(ProviderOutcome::Decided {
            success: false,
            detail: format!(
                "job {name} failed: {}{}",
                c.reason.as_deref().unwrap_or("Failed"),
                words(c.message.as_deref())
            ),
        });
    }
    None
}

fn words(message: Option<&str>) -> String {
    message
        .filter(|m| !m.is_empty())
        .map(|m| format!(" ({m})"))
        .unwrap_or_default()
}

async fn run(client: kube::Client, poll: Duration, req: JobRequest) -> ProviderOutcome {
    let (ns, rollout) = split(&req.rollout);
    let mut metadata = req.metadata.clone().unwrap_or_else(|| json!({}));
    metadata["name"] = json!(req.name);
    metadata["namespace"] = json!(ns);
    metadata["labels"][ROLLOUT_LABEL] = json!(rollout);
    let job: Job = match serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": req.spec,
    })) {
        Ok(j) => j,
        Err(e) => return ProviderOutcome::Error(format!("the job's spec is not a Job spec: {e}")),
    };
    let api = Api::<Job>::namespaced(client, ns);
    if let Err(e) = api.create(&super::params::post_params(), &job).await {
        return ProviderOutcome::Error(format!("cannot create job {}: {e}", req.name));
    }
    let deadline = tokio::time::Instant::now() + req.timeout;
    loop {
        tokio::time::sleep(poll).await;
        match api.get_opt(&req.name).await {
            Ok(Some(j)) => {
                if let Some(outcome) = ended(&j) {
                    return outcome;
                }
            }
            Ok(None) => return ProviderOutcome::Error(format!("job {} was deleted", req.name)),
            Err(e) => tracing::warn!(job = %req.name, error = %e, "cannot look at the job"),
        }
        if tokio::time::Instant::now() >= deadline {
            let _ = api.delete(&req.name, &DeleteParams::background()).await;
            return ProviderOutcome::Error(format!(
                "job {} did not finish within {:?}; deleted",
                req.name, req.timeout
            ));
        }
    }
}

impl JobRunner for KubeJobs {
    fn run(&self, job: JobRequest) -> BoxFuture<'static, ProviderOutcome> {
        Box::pin(run(self.client.clone(), self.poll, job))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::cache::Cache;
    use crate::kube::fake::FakeApi;

    const JOBS: &str = "/apis/batch/v1/namespaces/shop/jobs";

    fn request(timeout: Duration) -> JobRequest {
        JobRequest {
            rollout: "shop/chip".into(),
            name: "smoke-h2-1".into(),
            metadata: Some(json!({"labels": {"team": "web"}})),
            spec: json!({"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "smoke", "image": "curlimages/curl", "args": ["http://chip"]}]}}}),
            timeout,
        }
    }

    async fn finish(api: &FakeApi, condition: serde_json::Value) {
        let path = format!("{JOBS}/smoke-h2-1");
        while api.get(&path).is_none() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let mut job = api.get(&path).unwrap();
        job["status"] = json!({"conditions": [condition]});
        api.put(&path, job);
    }

    #[tokio::test]
    async fn a_complete_job_passes_and_a_failed_one_fails_with_its_reason() {
        let (_cache, writers) = Cache::new();
        let (client, api) = FakeApi::start(writers);
        let jobs = KubeJobs::new(client, Duration::from_millis(5));
        let running = jobs.run(request(Duration::from_secs(30)));
        let (outcome, ()) = tokio::join!(
            running,
            finish(&api, json!({"type": "Complete", "status": "True"}))
        );
        assert_eq!(
            outcome,
            ProviderOutcome::Decided {
                success: true,
                detail: "job smoke-h2-1 complete".into()
            }
        );
        let calls = api.take_calls();
        assert_eq!(calls[0].line(), format!("POST {JOBS}"));
        assert_eq!(calls[0].body["metadata"]["labels"]["team"], "web");
        assert_eq!(calls[0].body["metadata"]["labels"][ROLLOUT_LABEL], "chip");
        assert_eq!(calls[0].body["spec"]["backoffLimit"], 0);
        assert!(
            calls[1..]
                .iter()
                .all(|c| c.line() == format!("GET {JOBS}/smoke-h2-1"))
        );

        let (_cache, writers) = Cache::new();
        let (client, api) = FakeApi::start(writers);
        let jobs = KubeJobs::new(client, Duration::from_millis(5));
        let (outcome, ()) = tokio::join!(
            jobs.run(request(Duration::from_secs(30))),
            finish(
                &api,
                json!({"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                       "message": "Job has reached the specified backoff limit"})
            )
        );
        assert_eq!(
            outcome,
            ProviderOutcome::Decided {
                success: false,
                detail: "job smoke-h2-1 failed: BackoffLimitExceeded (Job has reached the specified backoff limit)".into()
            }
        );
    }

    #[tokio::test]
    async fn a_job_past_its_timeout_is_deleted_and_is_an_error() {
        let (_cache, writers) = Cache::new();
        let (client, api) = FakeApi::start(writers);
        let jobs = KubeJobs::new(client, Duration::from_millis(5));
        let outcome = jobs.run(request(Duration::from_millis(20))).await;
        assert!(
            matches!(&outcome, ProviderOutcome::Error(e) if e.contains("did not finish")),
            "{outcome:?}"
        );
        let calls = api.take_calls();
        assert_eq!(
            calls.last().unwrap().line(),
            format!("DELETE {JOBS}/smoke-h2-1")
        );
        assert!(api.get(&format!("{JOBS}/smoke-h2-1")).is_none());
    }
}
