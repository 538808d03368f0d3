//! The world a cluster shows the reconcile loop, from the objects the watches hold: each
//! Rollout judged on its own by the same rules as a file (an invalid one is named with its
//! field paths and left as it is, keeping its last valid spec if it had one), the
//! AnalysisTemplates, and the statuses someone else changed since the controller last wrote
//! them — how a command reaches it, since Argo Rollouts' plugin and ours patch the status
//! subresource. Pure: objects in, world out; what must be remembered between two looks is in
//! [`Memory`].

use std::collections::{BTreeMap, VecDeque};

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::DynamicObject;
use serde_json::{Value, json};

use crate::reconcile::World;
use crate::spec::rollout::WorkloadRef;
use crate::spec::{self, Document, Rollout};
use crate::status::RolloutStatus;

/// Statuses remembered per rollout as ours (written, or already handed to the loop).
pub const KNOWN_KEPT: usize = 16;

/// What the runtime remembers between two looks.
#[derive(Debug, Default, Clone)]
pub struct Memory {
    /// The last valid spec of each rollout.
    pub last_valid: BTreeMap<String, Rollout>,
    /// Per rollout, the statuses the controller wrote or took lately, newest last.
    pub known: BTreeMap<String, VecDeque<RolloutStatus>>,
}

impl Memory {
    /// Remembers `status` as one the controller knows for `rollout`.
    pub fn know(&mut self, rollout: &str, status: &RolloutStatus) {
        let known = self.known.entry(rollout.to_owned()).or_default();
        if known.back() == Some(status) {
            return;
        }
        known.push_back(status.clone());
        while known.len() > KNOWN_KEPT {
            known.pop_front();
        }
    }

    fn knows(&self, rollout: &str, status: &RolloutStatus) -> bool {
        self.known
            .get(rollout)
            .is_some_and(|k| k.iter().any(|s| s == status))
    }
}

/// The key of an object in the world and the state: `namespace/name` (a controller may run
/// the rollouts of every namespace).
pub fn key(o: &DynamicObject) -> Option<String> {
    let name = o.metadata.name.as_deref()?;
    let ns = o.metadata.namespace.as_deref().unwrap_or("default");
    Some(format!("{ns}/{name}"))
}

/// The namespace and name of a key.
pub fn split(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("default", key))
}

/// The object as a document our rules judge: its kind, name, labels and spec, nothing the
/// API server adds.
fn document(o: &DynamicObject, kind: &str) -> Value {
    let api_version = o
        .types
        .as_ref()
        .map_or(spec::API_VERSION, |t| t.api_version.as_str());
    json!({
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {
            "name": o.metadata.name,
            "namespace": o.metadata.namespace,
            "labels": o.metadata.labels.clone().unwrap_or_default(),
            "annotations": o.metadata.annotations.clone().unwrap_or_default(),
        },
        "spec": o.data.get("spec").cloned().unwrap_or(Value::Null),
    })
}

/// The status an object carries, when it has one we can read.
pub fn status_of(o: &DynamicObject) -> Option<RolloutStatus> {
    let s = o.data.get("status")?;
    if s.is_null() || s.as_object().is_some_and(serde_json::Map::is_empty) {
        return None;
    }
    serde_json::from_value(s.clone()).ok()
}

/// Why a document is invalid, in one line of `path: reason` parts.
fn reasons(e: &spec::DocumentError) -> String {
    e.errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// A Rollout with a `workloadRef` as our rules judge it: the Deployment's pod template (and
/// selector, unless the Rollout has one) in place of the reference, which is given back
/// apart; `Err` names what is missing.
fn resolved(
    mut doc: Value,
    deployments: &[&Deployment],
) -> Result<(Value, Option<WorkloadRef>), String> {
    let Some(reference) = doc["spec"].get("workloadRef").cloned() else {
        return Ok((doc, None));
    };
    if !doc["spec"]["template"].is_null() {
        return Err("spec.workloadRef: set template or workloadRef, not both".into());
    }
    let wr: WorkloadRef =
        serde_json::from_value(reference).map_err(|e| format!("spec.workloadRef: {e}"))?;
    let ns = doc["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default")
        .to_owned();
    let d = deployments
        .iter()
        .find(|d| {
            d.metadata.name.as_deref() == Some(wr.name.as_str())
                && d.metadata.namespace.as_deref() == Some(ns.as_str())
        })
        .ok_or_else(|| {
            format!(
                "spec.workloadRef: no Deployment {:?} in namespace {ns}",
                wr.name
            )
        })?;
    let spec = d
        .spec
        .as_ref()
        .ok_or("spec.workloadRef: the Deployment has no spec")?;
    doc["spec"]["template"] = serde_json::to_value(&spec.template).unwrap_or(Value::Null);
    if doc["spec"]["selector"].is_null() {
        doc["spec"]["selector"] = serde_json::to_value(&spec.selector).unwrap_or(Value::Null);
    }
    if let Some(m) = doc["spec"].as_object_mut() {
        m.remove("workloadRef");
    }
    Ok((doc, Some(wr)))
}

/// The world the objects show, updating `memory`.
pub fn world(
    rollouts: &[&DynamicObject],
    templates: &[&DynamicObject],
    deployments: &[&Deployment],
    memory: &mut Memory,
) -> World {
    let mut w = World::default();
    let mut present = Vec::new();
    for o in rollouts {
        let Some(name) = key(o) else {
            continue;
        };
        present.push(name.clone());
        let parsed = resolved(document(o, "Rollout"), deployments).and_then(|(doc, wr)| {
            spec::parse_document(doc, 0)
                .map(|d| (d, wr))
                .map_err(|e| reasons(&e))
        });
        match parsed {
            Ok((Document::Rollout(mut r), wr)) => {
                r.spec.workload_ref = wr;
                memory.last_valid.insert(name.clone(), (*r).clone());
                w.rollouts.insert(name.clone(), *r);
            }
            Ok(_) => {}
            Err(why) => {
                w.invalid
                    .insert(name.clone(), format!("rollout {name}: {why}"));
                if let Some(r) = memory.last_valid.get(&name) {
                    w.rollouts.insert(name.clone(), r.clone());
                }
            }
        }
        if let Some(status) = status_of(o)
            && !memory.knows(&name, &status)
        {
            memory.know(&name, &status);
            w.commanded.insert(name, status);
        }
    }
    memory.last_valid.retain(|n, _| present.contains(n));
    memory.known.retain(|n, _| present.contains(n));
    for o in templates {
        let kind = if o.metadata.namespace.is_none() {
            "ClusterAnalysisTemplate"
        } else {
            "AnalysisTemplate"
        };
        match spec::parse_document(document(o, kind), 0) {
            Ok(Document::AnalysisTemplate(t)) => {
                // a ClusterAnalysisTemplate (no namespace) is known by its name alone
                let name = match (&o.metadata.namespace, key(o)) {
                    (None, _) => o.metadata.name.clone(),
                    (Some(_), k) => k,
                };
                if let Some(name) = name {
                    w.templates.insert(name, *t);
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(
                template = o.metadata.name.as_deref().unwrap_or_default(),
                "analysis template is invalid, not used: {}",
                reasons(&e)
            ),
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(v: Value) -> DynamicObject {
        serde_json::from_value(v).unwrap()
    }

    fn rollout(image: &str, status: Value) -> DynamicObject {
        let mut v = crate::kube::rollout_object(status, false);
        v["spec"]["template"]["spec"]["containers"][0]["image"] = json!(image);
        v["metadata"]["uid"] = json!("u-1");
        v["metadata"]["resourceVersion"] = json!("5");
        v["metadata"]["managedFields"] = json!([{"manager": "kubectl"}]);
        object(v)
    }

    #[test]
    fn a_valid_rollout_is_in_the_world_whatever_the_api_server_added() {
        let mut m = Memory::default();
        let r = rollout("chip:v1", Value::Null);
        let w = world(&[&r], &[], &[], &mut m);
        assert_eq!(w.rollouts.len(), 1);
        assert!(w.invalid.is_empty() && w.commanded.is_empty());
        assert_eq!(w.rollouts["shop/chip"].metadata.name, "chip");
    }

    #[test]
    fn an_invalid_rollout_is_named_with_its_field_and_keeps_its_last_valid_spec() {
        let mut m = Memory::default();
        let good = rollout("chip:v1", Value::Null);
        world(&[&good], &[], &[], &mut m);
        let mut bad = crate::kube::rollout_object(Value::Null, false);
        bad["spec"]["strategy"]["canary"]["steps"] = json!([{"setWeight": 150}]);
        let bad = object(bad);
        let w = world(&[&bad], &[], &[], &mut m);
        let why = &w.invalid["shop/chip"];
        assert!(why.starts_with("rollout shop/chip: "), "{why}");
        assert!(
            why.contains("spec.strategy.canary.steps[0].setWeight"),
            "{why}"
        );
        assert_eq!(
            w.rollouts["shop/chip"], m.last_valid["shop/chip"],
            "the last valid spec stays"
        );
        // never valid: invalid and absent
        let mut fresh = Memory::default();
        let w = world(&[&bad], &[], &[], &mut fresh);
        assert!(w.rollouts.is_empty());
        assert!(w.invalid.contains_key("shop/chip"));
    }

    #[test]
    fn a_status_the_controller_does_not_know_is_handed_over_once() {
        let mut m = Memory::default();
        let ours: RolloutStatus =
            serde_json::from_value(json!({"phase": "Paused", "currentStepIndex": 1})).unwrap();
        m.know("shop/chip", &ours);
        let r = rollout("chip:v1", serde_json::to_value(&ours).unwrap());
        assert!(world(&[&r], &[], &[], &mut m).commanded.is_empty(), "ours");
        let mut promoted = ours.clone();
        promoted.controller_pause = true;
        let r = rollout("chip:v1", serde_json::to_value(&promoted).unwrap());
        let w = world(&[&r], &[], &[], &mut m);
        assert_eq!(w.commanded.get("shop/chip"), Some(&promoted));
        assert!(
            world(&[&r], &[], &[], &mut m).commanded.is_empty(),
            "handed over once"
        );
        // the older status of ours, seen late from the watch, is no command either
        let r = rollout("chip:v1", serde_json::to_value(&ours).unwrap());
        assert!(world(&[&r], &[], &[], &mut m).commanded.is_empty());
    }

    #[test]
    fn a_deleted_rollout_is_forgotten() {
        let mut m = Memory::default();
        let r = rollout("chip:v1", json!({"phase": "Healthy"}));
        world(&[&r], &[], &[], &mut m);
        assert!(m.last_valid.contains_key("shop/chip") && m.known.contains_key("shop/chip"));
        let w = world(&[], &[], &[], &mut m);
        assert!(w.rollouts.is_empty());
        assert!(m.last_valid.is_empty() && m.known.is_empty());
    }

    #[test]
    fn templates_are_read_and_an_invalid_one_is_left_out() {
        let mut m = Memory::default();
        let good = object(json!({
            "apiVersion": "sluice.dev/v1alpha1", "kind": "AnalysisTemplate",
            "metadata": {"name": "errors", "namespace": "shop"},
            "spec": {"metrics": [{"name": "errors", "successCondition": "result < 0.05",
                                  "provider": {"proxy": {"query": "error-rate"}}}]}
        }));
        let bad = object(json!({
            "apiVersion": "sluice.dev/v1alpha1", "kind": "AnalysisTemplate",
            "metadata": {"name": "broken", "namespace": "shop"},
            "spec": {"metrics": "none"}
        }));
        let w = world(&[], &[&good, &bad], &[], &mut m);
        assert_eq!(w.templates.keys().collect::<Vec<_>>(), ["shop/errors"]);
    }
}
