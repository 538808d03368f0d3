//! A revision's ReplicaSet, as Argo Rollouts makes it so that existing dashboards and queries
//! keep working: named `<rollout>-<hash>`, its pods labelled and selected with
//! `rollouts-pod-template-hash`, owned by the Rollout (deleting the Rollout deletes it), and
//! annotated with the revision number. Pure: the object to create from the rollout, the
//! template and the number of replicas.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::Resource;

use crate::Error;
use crate::spec::PodTemplate;
use crate::spec::rollout::RolloutResource;

/// The label that ties a pod to its revision (Argo's name).
pub const HASH_LABEL: &str = "rollouts-pod-template-hash";
/// The annotation with a ReplicaSet's revision number.
pub const REVISION_ANNOTATION: &str = "rollout.sluice.dev/revision";
/// The annotation with the time after which a ReplicaSet may be scaled down (Argo's name).
pub const SCALE_DOWN_DEADLINE_ANNOTATION: &str = "scale-down-deadline";

/// The ReplicaSet name of a rollout's revision.
pub fn name(rollout: &str, hash: &str) -> String {
    format!("{rollout}-{hash}")
}

/// The ReplicaSet of revision `revision` (hash `hash`, pod template `template`) of `rollout`,
/// with `replicas` pods. Fails when the rollout has no uid yet (it cannot own anything) or the
/// template is not a pod template.
pub fn replica_set(
    rollout: &RolloutResource,
    template: &PodTemplate,
    hash: &str,
    revision: u32,
    replicas: i32,
) -> Result<ReplicaSet, Error> {
    let owner = rollout
        .controller_owner_ref(&())
        .ok_or_else(|| Error::field("metadata.uid", "the rollout has no uid yet"))?;
    let mut pod: PodTemplateSpec = serde_json::from_value(template.0.clone())
        .map_err(|e| Error::field("spec.template", e.to_string()))?;
    let meta = pod.metadata.get_or_insert_with(Default::default);
    meta.labels
        .get_or_insert_with(Default::default)
        .insert(HASH_LABEL.to_owned(), hash.to_owned());
    // without a selector, the template's labels select its pods
    let selector = rollout
        .spec
        .selector
        .clone()
        .unwrap_or_else(|| crate::spec::LabelSelector {
            match_labels: template.labels(),
            match_expressions: Vec::new(),
        });
    let mut match_labels = selector.match_labels.clone();
    match_labels.insert(HASH_LABEL.to_owned(), hash.to_owned());
    let match_expressions = if selector.match_expressions.is_empty() {
        None
    } else {
        Some(
            serde_json::from_value(serde_json::Value::Array(selector.match_expressions.clone()))
                .map_err(|e| Error::field("spec.selector.matchExpressions", e.to_string()))?,
        )
    };
    let rollout_name = rollout.metadata.name.clone().unwrap_or_default();
    Ok(ReplicaSet {
        metadata: ObjectMeta {
            name: Some(name(&rollout_name, hash)),
            namespace: rollout.metadata.namespace.clone(),
            labels: Some(
                pod.metadata
                    .as_ref()
                    .and_then(|m| m.labels.clone())
                    .unwrap_or_default(),
            ),
            annotations: Some(BTreeMap::from([(
                REVISION_ANNOTATION.to_owned(),
                revision.to_string(),
            )])),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            min_ready_seconds: None,
            selector: LabelSelector {
                match_labels: Some(match_labels),
                match_expressions,
            },
            template: Some(pod),
        }),
        status: None,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rollout(uid: Option<&str>) -> RolloutResource {
        let mut r: RolloutResource = serde_json::from_value(json!({
            "apiVersion": "sluice.dev/v1alpha1",
            "kind": "Rollout",
            "metadata": {"name": "chip", "namespace": "shop"},
            "spec": {
                "selector": {"matchLabels": {"app": "chip"}},
                "template": {"metadata": {"labels": {"app": "chip"}},
                             "spec": {"containers": [{"name": "chip", "image": "chip:v1",
                                                      "ports": [{"containerPort": 8080}]}]}},
                "strategy": {"canary": {"steps": [{"setWeight": 20}]}}
            }
        }))
        .unwrap();
        r.metadata.uid = uid.map(str::to_owned);
        r
    }

    #[test]
    fn a_revisions_replica_set_is_argos_shape_owned_by_the_rollout() {
        let r = rollout(Some("u-1"));
        let rs = replica_set(&r, r.spec.template.as_ref().unwrap(), "abc123", 2, 3).unwrap();
        let v = serde_json::to_value(&rs).unwrap();
        assert_eq!(v["metadata"]["name"], "chip-abc123");
        assert_eq!(v["metadata"]["namespace"], "shop");
        assert_eq!(
            v["metadata"]["labels"],
            json!({"app": "chip", "rollouts-pod-template-hash": "abc123"})
        );
        assert_eq!(
            v["metadata"]["annotations"],
            json!({"rollout.sluice.dev/revision": "2"})
        );
        assert_eq!(
            v["metadata"]["ownerReferences"],
            json!([{"apiVersion": "sluice.dev/v1alpha1", "kind": "Rollout", "name": "chip",
                    "uid": "u-1", "controller": true}])
        );
        assert_eq!(v["spec"]["replicas"], 3);
        assert_eq!(
            v["spec"]["selector"],
            json!({"matchLabels": {"app": "chip", "rollouts-pod-template-hash": "abc123"}})
        );
        assert_eq!(
            v["spec"]["template"]["metadata"]["labels"]["rollouts-pod-template-hash"],
            "abc123"
        );
        assert_eq!(
            v["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"],
            8080
        );
    }

    #[test]
    fn a_rollout_without_a_uid_or_with_a_broken_template_makes_none() {
        let r = rollout(None);
        let e = replica_set(&r, r.spec.template.as_ref().unwrap(), "h", 1, 1).unwrap_err();
        assert_eq!(e.to_string(), "metadata.uid: the rollout has no uid yet");
        let r = rollout(Some("u"));
        let broken = PodTemplate(json!({"spec": {"containers": "not a list"}}));
        let e = replica_set(&r, &broken, "h", 1, 1).unwrap_err();
        assert!(e.to_string().starts_with("spec.template: "), "{e}");
    }
}
