//! The labels and annotations of each role's pods (`canaryMetadata`/`stableMetadata`,
//! `activeMetadata`/`previewMetadata`), as Argo Rollouts applies its "ephemeral metadata": a
//! revision's pods carry its role's, set on its ReplicaSet's pod template (for pods to come)
//! and on its pods in place (no restart); when its role changes — a canary promoted to stable,
//! a preview made active — the keys of the old role go and the new role's come, so users' own
//! queries can tell the versions apart. Pure: spec, status and the current metadata in, merge
//! patches out.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::spec::meta::PodMetadata;
use crate::spec::rollout::RolloutSpec;
use crate::status::RolloutStatus;

/// The metadata revision `hash`'s pods must carry, and every key any role of the strategy sets
/// (the ones this revision must not carry unless its role sets them).
pub fn wanted(
    spec: &RolloutSpec,
    status: &RolloutStatus,
    hash: &str,
) -> (PodMetadata, BTreeSet<String>, BTreeSet<String>) {
    let mut roles: Vec<(Option<&PodMetadata>, bool)> = Vec::new();
    if let Some(c) = &spec.strategy.canary {
        let stable = status.stable_rs.as_deref() == Some(hash);
        let canary = !stable && status.current_pod_hash.as_deref() == Some(hash);
        roles.push((c.stable_metadata.as_ref(), stable));
        roles.push((c.canary_metadata.as_ref(), canary));
    }
    if let Some(b) = &spec.strategy.blue_green {
        let active = status.blue_green.active_selector.as_deref() == Some(hash);
        let preview = !active && status.blue_green.preview_selector.as_deref() == Some(hash);
        roles.push((b.active_metadata.as_ref(), active));
        roles.push((b.preview_metadata.as_ref(), preview));
    }
    let mut labels = BTreeSet::new();
    let mut annotations = BTreeSet::new();
    let mut want = PodMetadata::default();
    for (meta, mine) in roles {
        let Some(m) = meta else { continue };
        labels.extend(m.labels.keys().cloned());
        annotations.extend(m.annotations.keys().cloned());
        if mine {
            want.labels.extend(m.labels.clone());
            want.annotations.extend(m.annotations.clone());
        }
    }
    (want, labels, annotations)
}

/// One map's merge patch: `want` set, the other `managed` keys removed.
fn map_patch(
    current: Option<&BTreeMap<String, String>>,
    want: &BTreeMap<String, String>,
    managed: &BTreeSet<String>,
) -> Option<Value> {
    let empty = BTreeMap::new();
    let current = current.unwrap_or(&empty);
    let mut out = Map::new();
    for (k, v) in want {
        if current.get(k) != Some(v) {
            out.insert(k.clone(), Value::String(v.clone()));
        }
    }
    for k in managed {
        if !want.contains_key(k) && current.contains_key(k) {
            out.insert(k.clone(), Value::Null);
        }
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

/// The merge patch of an object's `metadata` (labels, annotations) so that it carries what its
/// role wants, or `None` when it does.
pub fn patch(
    labels: Option<&BTreeMap<String, String>>,
    annotations: Option<&BTreeMap<String, String>>,
    wanted: &(PodMetadata, BTreeSet<String>, BTreeSet<String>),
) -> Option<Value> {
    let (want, managed_labels, managed_annotations) = wanted;
    let mut out = Map::new();
    if let Some(p) = map_patch(labels, &want.labels, managed_labels) {
        out.insert("labels".into(), p);
    }
    if let Some(p) = map_patch(annotations, &want.annotations, managed_annotations) {
        out.insert("annotations".into(), p);
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec() -> RolloutSpec {
        serde_json::from_value(json!({
            "selector": {"matchLabels": {"app": "chip"}},
            "template": {"metadata": {"labels": {"app": "chip"}},
                         "spec": {"containers": [{"name": "chip", "image": "chip:v1"}]}},
            "strategy": {"canary": {
                "canaryMetadata": {"labels": {"role": "canary"}, "annotations": {"a": "c"}},
                "stableMetadata": {"labels": {"role": "stable", "tier": "gold"}},
                "steps": [{"setWeight": 20}]}}
        }))
        .unwrap()
    }

    fn status(stable: &str, current: &str) -> RolloutStatus {
        serde_json::from_value(json!({"stableRS": stable, "currentPodHash": current})).unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_canary_carries_the_canary_metadata_and_the_stable_the_stable_one() {
        let st = status("h1", "h2");
        let canary = wanted(&spec(), &st, "h2");
        assert_eq!(
            patch(Some(&labels(&[("app", "chip")])), None, &canary),
            Some(json!({"labels": {"role": "canary"}, "annotations": {"a": "c"}}))
        );
        let stable = wanted(&spec(), &st, "h1");
        assert_eq!(
            patch(Some(&labels(&[("app", "chip")])), None, &stable),
            Some(json!({"labels": {"role": "stable", "tier": "gold"}}))
        );
        let done = labels(&[("app", "chip"), ("role", "stable"), ("tier", "gold")]);
        assert_eq!(patch(Some(&done), None, &stable), None, "nothing to change");
    }

    #[test]
    fn a_promoted_canary_loses_the_canary_keys_and_gets_the_stable_ones() {
        let promoted = wanted(&spec(), &status("h2", "h2"), "h2");
        let was = labels(&[("app", "chip"), ("role", "canary")]);
        let ann = labels(&[("a", "c"), ("kept", "x")]);
        assert_eq!(
            patch(Some(&was), Some(&ann), &promoted),
            Some(json!({"labels": {"role": "stable", "tier": "gold"}, "annotations": {"a": null}}))
        );
        // an old revision carries no role's keys
        let old = wanted(&spec(), &status("h2", "h2"), "h1");
        let stable_before = labels(&[("app", "chip"), ("role", "stable"), ("tier", "gold")]);
        assert_eq!(
            patch(Some(&stable_before), None, &old),
            Some(json!({"labels": {"role": null, "tier": null}}))
        );
    }
}
