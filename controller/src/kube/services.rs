//! The Services a rollout manages, as Argo Rollouts manages them: each one's selector gets the
//! `rollouts-pod-template-hash` of the revision its role serves — `stableService` the stable
//! revision and `canaryService` the canary (the stable one when there is none); blue/green's
//! `activeService` the active revision and `previewService` the preview (the active one when
//! there is none). The rest of each selector is left as its owners wrote it. The proxies do not
//! wait for these (they get pod addresses directly); the Services are for everything else that
//! reaches a role by name. Pure: the rollout's spec and status in, the patches out.

use serde_json::{Value, json};

use super::replicaset::HASH_LABEL;
use crate::spec::rollout::RolloutSpec;
use crate::status::RolloutStatus;

/// Each managed Service with the revision hash its selector must have, in a stable order.
pub fn selectors(spec: &RolloutSpec, status: &RolloutStatus) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut add = |service: &Option<String>, hash: Option<&String>| {
        if let (Some(s), Some(h)) = (service, hash) {
            out.push((s.clone(), h.clone()));
        }
    };
    if let Some(c) = &spec.strategy.canary {
        let stable = status.stable_rs.as_ref();
        let canary = status
            .canary
            .weights
            .as_ref()
            .and_then(|w| w.canary.as_ref().map(|d| &d.pod_template_hash))
            .or(status
                .current_pod_hash
                .as_ref()
                .filter(|_| stable.is_none()))
            .or(stable);
        add(&c.stable_service, stable);
        add(&c.canary_service, canary);
    }
    if let Some(b) = &spec.strategy.blue_green {
        let active = status.blue_green.active_selector.as_ref();
        let preview = status.blue_green.preview_selector.as_ref().or(active);
        add(&Some(b.active_service.clone()), active);
        add(&b.preview_service, preview);
    }
    out
}

/// The merge patch that points a Service's selector at revision `hash`, or `None` when its
/// selector (as read) already does.
pub fn patch(current_selector: Option<&Value>, hash: &str) -> Option<Value> {
    let now = current_selector
        .and_then(|s| s.get(HASH_LABEL))
        .and_then(Value::as_str);
    (now != Some(hash)).then(|| json!({"spec": {"selector": {HASH_LABEL: hash}}}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(strategy: Value) -> RolloutSpec {
        serde_json::from_value(json!({
            "selector": {"matchLabels": {"app": "chip"}},
            "template": {"spec": {"containers": [{"name": "chip", "image": "chip:v1"}]}},
            "strategy": strategy
        }))
        .unwrap()
    }

    fn status(v: Value) -> RolloutStatus {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn canary_services_follow_the_stable_and_canary_revisions() {
        let s = spec(
            json!({"canary": {"stableService": "chip-stable", "canaryService": "chip-canary",
                                        "steps": [{"setWeight": 20}]}}),
        );
        // first deploy: both on the only revision
        let first = status(json!({"currentPodHash": "h1"}));
        assert_eq!(
            selectors(&s, &first),
            [("chip-canary".to_owned(), "h1".to_owned())],
            "no stable revision yet: the stable Service is left alone"
        );
        let mid = status(json!({"currentPodHash": "h2", "stableRS": "h1",
            "canary": {"weights": {"canary": {"weight": 20, "podTemplateHash": "h2"},
                                   "stable": {"weight": 80, "podTemplateHash": "h1"},
                                   "total": 100, "verified": true, "acknowledged": 1, "expected": 1}}}));
        assert_eq!(
            selectors(&s, &mid),
            [
                ("chip-stable".to_owned(), "h1".to_owned()),
                ("chip-canary".to_owned(), "h2".to_owned())
            ]
        );
        let done = status(json!({"currentPodHash": "h2", "stableRS": "h2"}));
        assert_eq!(
            selectors(&s, &done),
            [
                ("chip-stable".to_owned(), "h2".to_owned()),
                ("chip-canary".to_owned(), "h2".to_owned())
            ]
        );
    }

    #[test]
    fn blue_green_services_follow_the_active_and_preview_revisions() {
        let s = spec(
            json!({"blueGreen": {"activeService": "chip-active", "previewService": "chip-preview"}}),
        );
        let st = status(json!({"blueGreen": {"activeSelector": "h1", "previewSelector": "h2"}}));
        assert_eq!(
            selectors(&s, &st),
            [
                ("chip-active".to_owned(), "h1".to_owned()),
                ("chip-preview".to_owned(), "h2".to_owned())
            ]
        );
        let st = status(json!({"blueGreen": {"activeSelector": "h1"}}));
        assert_eq!(
            selectors(&s, &st)[1],
            ("chip-preview".to_owned(), "h1".to_owned())
        );
    }

    #[test]
    fn a_selector_already_on_the_revision_needs_no_patch() {
        let sel = json!({"app": "chip", "rollouts-pod-template-hash": "h1"});
        assert_eq!(patch(Some(&sel), "h1"), None);
        assert_eq!(
            patch(Some(&sel), "h2"),
            Some(json!({"spec": {"selector": {"rollouts-pod-template-hash": "h2"}}}))
        );
        assert!(patch(None, "h1").is_some());
    }
}
