//! Commands are changes to the status and spec fields, with Argo Rollouts' semantics, so that
//! the CLI patches the same fields on Kubernetes that it asks the control API to change
//! locally, and the engine sees one model.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::spec::rollout::RolloutSpec;
use crate::status::RolloutStatus;
use crate::time::Time;

/// A command a person (or a pipeline) gives a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "command")]
pub enum Command {
    /// Clear the pause; when not paused, skip the current step.
    Promote,
    /// Skip every remaining step and analysis.
    PromoteFull,
    /// Send all traffic back to stable.
    Abort,
    /// Start an aborted rollout again from its first step.
    Retry,
    /// Pause (`spec.paused`).
    Pause,
    /// Undo a pause (`spec.paused = false`).
    Resume,
    /// Roll back to a previous revision (the one before the current, or `to_revision`).
    Undo {
        /// Revision number.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to_revision: Option<u32>,
    },
}

fn refuse(msg: impl Into<String>) -> Error {
    Error::Refused(msg.into())
}

/// Applies a command; returns what it did, in a sentence.
pub fn apply(
    command: Command,
    spec: &mut RolloutSpec,
    status: &mut RolloutStatus,
    now: Time,
) -> Result<String> {
    let settled = status.current_pod_hash.is_some() && status.current_pod_hash == status.stable_rs;
    match command {
        Command::Promote => {
            if status.abort {
                return Err(refuse(
                    "the rollout is aborted: use retry to start it again",
                ));
            }
            if settled {
                return Err(refuse("nothing to promote: the rollout is healthy"));
            }
            if !status.pause_conditions.is_empty() || spec.paused {
                status.pause_conditions.clear();
                spec.paused = false;
                status.controller_pause = true;
                return Ok("promoted: the pause is cleared".into());
            }
            if let Some(steps) = spec.strategy.canary.as_ref().map(|c| c.steps.len() as u32) {
                let i = status.current_step_index.unwrap_or(0);
                if i < steps {
                    status.current_step_index = Some(i + 1);
                    status.canary.current_step_analysis_run_status = None;
                    return Ok(format!("promoted: step {} skipped", i + 1));
                }
                return Err(refuse("nothing to promote: every step is done"));
            }
            Err(refuse(
                "nothing to promote: the rollout is not paused (promote --full skips the analyses)",
            ))
        }
        Command::PromoteFull => {
            if status.abort {
                return Err(refuse(
                    "the rollout is aborted: use retry to start it again",
                ));
            }
            if settled {
                return Err(refuse("nothing to promote: the rollout is healthy"));
            }
            status.promote_full = true;
            status.pause_conditions.clear();
            spec.paused = false;
            Ok("promoting fully: remaining steps and analyses skipped".into())
        }
        Command::Abort => {
            if settled {
                return Err(refuse("nothing to abort: the rollout is healthy"));
            }
            if status.abort {
                return Ok("already aborted".into());
            }
            status.abort = true;
            status.aborted_at = Some(now);
            status.abort_reason = Some("aborted by a person".into());
            Ok("aborted: all traffic goes back to stable".into())
        }
        Command::Retry => {
            if !status.abort {
                return Err(refuse("nothing to retry: the rollout is not aborted"));
            }
            status.abort = false;
            status.aborted_at = None;
            status.abort_reason = None;
            status.current_step_index = Some(0);
            status.pause_conditions.clear();
            status.controller_pause = false;
            status.promote_full = false;
            status.attempt += 1;
            status.progress_at = Some(now);
            status.canary.current_step_analysis_run_status = None;
            status.canary.current_background_analysis_run_status = None;
            status.blue_green.pre_promotion_analysis_run_status = None;
            status.blue_green.post_promotion_analysis_run_status = None;
            status
                .conditions
                .retain(|c| c.reason != crate::status::ConditionReason::ProgressDeadlineExceeded);
            Ok("retrying from the first step".into())
        }
        Command::Pause => {
            spec.paused = true;
            Ok("paused".into())
        }
        Command::Resume => {
            spec.paused = false;
            Ok("resumed".into())
        }
        Command::Undo { to_revision } => {
            let current = status.current_pod_hash.clone().unwrap_or_default();
            let target = match to_revision {
                Some(n) => status
                    .revisions
                    .iter()
                    .find(|r| r.revision == n)
                    .ok_or_else(|| {
                        let known: Vec<String> = status
                            .revisions
                            .iter()
                            .map(|r| r.revision.to_string())
                            .collect();
                        refuse(format!(
                            "no revision {n} (known: {})",
                            if known.is_empty() {
                                "none".into()
                            } else {
                                known.join(", ")
                            }
                        ))
                    })?,
                None => status
                    .revisions
                    .iter()
                    .filter(|r| r.pod_template_hash != current)
                    .max_by_key(|r| r.revision)
                    .ok_or_else(|| refuse("no previous revision to go back to"))?,
            };
            if target.pod_template_hash == current {
                return Err(refuse(format!(
                    "revision {} is already the current one",
                    target.revision
                )));
            }
            spec.template = Some(target.template.clone());
            Ok(format!("rolling back to revision {}", target.revision))
        }
    }
}
