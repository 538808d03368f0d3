//! A command on a Rollout object, as the patches that carry it out: the command is applied to
//! the object's spec and status by the same [`crate::commands::apply`] the local runtime uses,
//! and the difference is sent as JSON merge patches (RFC 7386) — the status one through the
//! status subresource first, then the spec one, as Argo Rollouts' plugin does. So `promote`
//! clears `status.pauseConditions` (or moves `status.currentStepIndex` on), `abort` sets
//! `status.abort`, `pause` sets `spec.paused`, `undo` and `set image` replace
//! `spec.template`. Pure: no client, no clock.

use serde_json::{Map, Value};

use crate::Error;
use crate::commands::{self, Command};
use crate::spec::rollout::RolloutResource;
use crate::time::Time;

/// What a command sends.
#[derive(Debug, Clone, PartialEq)]
pub struct Patches {
    /// Merge patch of the status subresource (`{"status": {...}}`), if the status changes.
    pub status: Option<Value>,
    /// Merge patch of the object (`{"spec": {...}}`), if the spec changes.
    pub spec: Option<Value>,
    /// What the command did, in a sentence.
    pub message: String,
}

/// The RFC 7386 merge patch that turns `before` into `after`, or `None` when they are equal:
/// objects are compared key by key (a key gone is `null`), anything else is replaced whole.
pub fn merge_patch(before: &Value, after: &Value) -> Option<Value> {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            let mut patch = Map::new();
            for (k, bv) in b {
                match a.get(k) {
                    None => {
                        patch.insert(k.clone(), Value::Null);
                    }
                    Some(av) => {
                        if let Some(p) = merge_patch(bv, av) {
                            patch.insert(k.clone(), p);
                        }
                    }
                }
            }
            for (k, av) in a {
                if !b.contains_key(k) {
                    patch.insert(k.clone(), av.clone());
                }
            }
            (!patch.is_empty()).then_some(Value::Object(patch))
        }
        _ if before == after => None,
        _ => Some(after.clone()),
    }
}

fn json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// The patches of `command` on `rollout` at `now`; `Err` when the command does not apply.
pub fn of_command(
    rollout: &RolloutResource,
    command: Command,
    now: Time,
) -> Result<Patches, Error> {
    let mut spec = rollout.spec.clone();
    let mut status = rollout.status.clone().unwrap_or_default();
    let message = commands::apply(command, &mut spec, &mut status, now)?;
    let old_status = json(&rollout.status.clone().unwrap_or_default());
    Ok(Patches {
        status: merge_patch(&old_status, &json(&status))
            .map(|p| serde_json::json!({ "status": p })),
        spec: merge_patch(&json(&rollout.spec), &json(&spec))
            .map(|p| serde_json::json!({ "spec": p })),
        message,
    })
}

/// The patch of `set image`: `container`'s image in `spec.template` becomes `image`.
pub fn of_set_image(
    rollout: &RolloutResource,
    container: &str,
    image: &str,
) -> Result<Patches, Error> {
    let mut template = rollout
        .spec
        .template
        .clone()
        .ok_or_else(|| Error::field("spec.template", "the rollout has no pod template"))?;
    if !template.set_image(container, image) {
        return Err(Error::field(
            "container",
            format!("no container named {container:?}"),
        ));
    }
    Ok(Patches {
        status: None,
        spec: Some(serde_json::json!({ "spec": { "template": template } })),
        message: format!("{container} image set to {image}"),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rollout(status: Value, paused: bool) -> RolloutResource {
        serde_json::from_value(super::super::rollout_object(status, paused)).unwrap()
    }

    #[test]
    fn a_merge_patch_names_only_what_changed_and_nulls_what_went() {
        let before = json!({"a": 1, "b": {"c": 2, "d": 3}, "e": [1, 2], "gone": true});
        let after = json!({"a": 1, "b": {"c": 5, "d": 3}, "e": [1], "new": "x"});
        assert_eq!(
            merge_patch(&before, &after),
            Some(json!({"b": {"c": 5}, "e": [1], "gone": null, "new": "x"}))
        );
        assert_eq!(merge_patch(&before, &before), None);
    }

    #[test]
    fn promote_at_a_pause_clears_the_pause_through_the_status_alone() {
        let r = rollout(
            json!({"phase": "Paused", "currentStepIndex": 1, "controllerPause": true,
                   "pauseConditions": [{"reason": "CanaryPauseStep", "startTime": "2026-12-06T10:00:00Z"}]}),
            false,
        );
        let p = of_command(&r, Command::Promote, Time(1_800_000_000_000)).unwrap();
        assert_eq!(p.spec, None);
        // Argo's plugin sends exactly this: `{"status":{"pauseConditions":null}}`
        assert_eq!(p.status, Some(json!({"status": {"pauseConditions": null}})));
    }

    #[test]
    fn abort_retry_and_pause_patch_argos_fields() {
        let r = rollout(
            json!({"phase": "Progressing", "currentStepIndex": 2, "currentPodHash": "h2", "stableRS": "h1"}),
            false,
        );
        let now = Time(1_800_000_000_000);
        let abort = of_command(&r, Command::Abort, now).unwrap();
        assert_eq!(abort.spec, None);
        let status = &abort.status.as_ref().unwrap()["status"];
        assert_eq!(status["abort"], json!(true));
        assert_eq!(status["abortedAt"], json!("2027-01-15T08:00:00.000Z"));
        let pause = of_command(&r, Command::Pause, now).unwrap();
        assert_eq!(pause.spec, Some(json!({"spec": {"paused": true}})));
        assert_eq!(pause.status, None);
        let refused = of_command(&r, Command::Retry, now);
        assert!(matches!(refused, Err(Error::Refused(_))), "{refused:?}");
    }

    #[test]
    fn set_image_replaces_the_template_and_names_a_missing_container() {
        let r = rollout(json!({}), false);
        let p = of_set_image(&r, "chip", "chip:v2").unwrap();
        assert_eq!(
            p.spec.unwrap()["spec"]["template"]["spec"]["containers"][0]["image"],
            json!("chip:v2")
        );
        let e = of_set_image(&r, "nope", "x").unwrap_err();
        assert_eq!(e.to_string(), "container: no container named \"nope\"");
    }
}
