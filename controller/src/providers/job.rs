//! The `job` provider: a Kubernetes Job run by the runtime (its completion decides), or in
//! local mode a command with a timeout (exit 0 is success; its output is kept).

use std::time::Duration;

use crate::analysis::run::{MetricSpec, ProviderOutcome};
use crate::spec::defaults;
use crate::spec::template::JobProvider;
use crate::time::Time;

use std::sync::Arc;

/// A `job` provider's Kubernetes Job, to run.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRequest {
    /// The rollout it measures (its key: `namespace/name` on a cluster).
    pub rollout: String,
    /// The Job's name.
    pub name: String,
    /// The Job's metadata as the template wrote it.
    pub metadata: Option<serde_json::Value>,
    /// The Job's spec as the template wrote it.
    pub spec: serde_json::Value,
    /// How long it may run.
    pub timeout: Duration,
}

/// Runs a `job` provider's Kubernetes Job and tells how it ended: `Decided` by the Job's
/// completion, `Error` when it cannot be created or does not finish in time.
pub trait JobRunner: Send + Sync {
    /// Runs one Job to its end.
    fn run(&self, job: JobRequest) -> futures_util::future::BoxFuture<'static, ProviderOutcome>;
}

/// A Job's name for one measurement: the metric, the revision and the time, within 63
/// lowercase letters, digits and dashes.
pub fn job_name(metric: &str, revision: &str, now: Time) -> String {
    let raw = format!("{metric}-{revision}-{:x}", now.0);
    let clean: String = raw
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let tail: String = clean
        .chars()
        .rev()
        .take(63)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    tail.trim_matches('-').to_owned()
}

/// Where a `job` metric's Job runs: the rollout it measures, the revision, and the runtime's
/// Job runner (none in local mode).
pub struct JobTarget<'a> {
    /// The rollout's key.
    pub rollout: &'a str,
    /// The revision under analysis.
    pub revision: &'a str,
    /// The runtime's Job runner.
    pub jobs: Option<&'a Arc<dyn JobRunner>>,
}

/// One measurement of a `job` metric.
pub async fn measure(
    x: &JobProvider,
    metric: &MetricSpec,
    target: &JobTarget<'_>,
    now: Time,
) -> ProviderOutcome {
    let timeout = Duration::from_secs(u64::from(
        x.timeout_seconds.unwrap_or(defaults::JOB_TIMEOUT_SECONDS),
    ));
    if !x.command.is_empty() {
        return run_command(&x.command, timeout).await;
    }
    match (&x.spec, target.jobs) {
        (Some(spec), Some(jobs)) => {
            jobs.run(JobRequest {
                rollout: target.rollout.to_owned(),
                name: job_name(&metric.name, target.revision, now),
                metadata: x.metadata.clone(),
                spec: spec.clone(),
                timeout,
            })
            .await
        }
        (None, _) => ProviderOutcome::Error("the job has neither a command nor a spec".into()),
        (Some(_), None) => ProviderOutcome::Error(
            "a Kubernetes Job cannot run in local mode; give the job a command".into(),
        ),
    }
}

async fn run_command(command: &[String], timeout: Duration) -> ProviderOutcome {
    let Some((program, args)) = command.split_first() else {
        return ProviderOutcome::Error("empty command".into());
    };
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(timeout, child).await {
        Err(_) => ProviderOutcome::Error(format!("{program} did not finish within {timeout:?}")),
        Ok(Err(e)) => ProviderOutcome::Error(format!("cannot run {program}: {e}")),
        Ok(Ok(out)) => {
            let mut detail = String::from_utf8_lossy(&out.stdout).into_owned();
            detail.push_str(&String::from_utf8_lossy(&out.stderr));
            let detail: String = detail
                .chars()
                .rev()
                .take(2000)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            ProviderOutcome::Decided {
                success: out.status.success(),
                detail: format!(
                    "exit {}: {}",
                    out.status.code().map_or("signal".into(), |c| c.to_string()),
                    detail.trim()
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_name_is_a_dns_label_that_ends_with_the_time() {
        assert_eq!(
            job_name("Smoke_Test", "x4wwvspktq", Time(255)),
            "smoke-test-x4wwvspktq-ff"
        );
        let long = job_name(&"m".repeat(80), "h", Time(1));
        assert_eq!(long.len(), 63);
        assert!(long.ends_with("-h-1"));
    }

    #[tokio::test]
    async fn commands_decide_by_exit_status() {
        let ok = run_command(
            &["sh".into(), "-c".into(), "echo fine".into()],
            Duration::from_secs(5),
        )
        .await;
        assert!(
            matches!(ok, ProviderOutcome::Decided { success: true, ref detail } if detail.contains("fine"))
        );
        let bad = run_command(
            &["sh".into(), "-c".into(), "exit 3".into()],
            Duration::from_secs(5),
        )
        .await;
        assert!(
            matches!(bad, ProviderOutcome::Decided { success: false, ref detail } if detail.starts_with("exit 3"))
        );
        let slow = run_command(&["sleep".into(), "5".into()], Duration::from_millis(100)).await;
        assert!(matches!(slow, ProviderOutcome::Error(_)));
    }
}
