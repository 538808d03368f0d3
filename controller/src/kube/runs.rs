//! A rollout's analysis runs as `AnalysisRun` objects, so that `kubectl get analysisruns` and
//! Argo's tooling see each one with its measurements: created when the run starts (owned by
//! the Rollout, labelled with the revision it analyses), its status patched as measurements
//! come. The run itself is driven by the loop, from its state; the object shows it. Pure.

use std::collections::BTreeMap;

use kube::api::{DynamicObject, ObjectMeta, Resource};
use serde_json::json;

use super::patch::merge_patch;
use super::replicaset::HASH_LABEL;
use crate::analysis::run::written_metrics;
use crate::crd::{AnalysisRunResource, AnalysisRunSpec, AnalysisRunStatus};
use crate::reconcile::RunRecord;
use crate::spec::AnalysisTemplate;
use crate::spec::rollout::RolloutResource;

/// The label with the name of the rollout a run belongs to.
pub const ROLLOUT_LABEL: &str = "rollout.sluice.dev/name";

/// The object of run `name` of the Rollout `o`, its metrics from `templates`.
pub fn object(
    o: &DynamicObject,
    name: &str,
    run: &RunRecord,
    templates: &[&AnalysisTemplate],
) -> AnalysisRunResource {
    let (metrics, args) = written_metrics(templates, &run.request.args);
    let owner = o.metadata.uid.clone().map(|uid| {
        k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            api_version: RolloutResource::api_version(&()).into_owned(),
            kind: RolloutResource::kind(&()).into_owned(),
            name: o.metadata.name.clone().unwrap_or_default(),
            uid,
            controller: Some(true),
            block_owner_deletion: None,
        }
    });
    AnalysisRunResource {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: o.metadata.namespace.clone(),
            labels: Some(BTreeMap::from([
                (HASH_LABEL.to_owned(), run.request.revision.clone()),
                (
                    ROLLOUT_LABEL.to_owned(),
                    o.metadata.name.clone().unwrap_or_default(),
                ),
            ])),
            owner_references: owner.map(|r| vec![r]),
            ..ObjectMeta::default()
        },
        spec: AnalysisRunSpec {
            metrics,
            args,
            terminate: run.terminated,
        },
        status: None,
    }
}

/// The status of a run's object.
pub fn status(run: &RunRecord) -> AnalysisRunStatus {
    AnalysisRunStatus {
        phase: Some(run.phase),
        message: run.error.clone(),
        started_at: Some(run.started),
        metric_results: run.metrics.clone(),
    }
}

/// The merge patch of a run's status subresource from `before` (`None`: never written), or
/// `None` when it shows `run` already.
pub fn status_patch(
    before: Option<&AnalysisRunStatus>,
    run: &RunRecord,
) -> Option<serde_json::Value> {
    let old = serde_json::to_value(before.cloned().unwrap_or_default()).ok()?;
    let new = serde_json::to_value(status(run)).ok()?;
    merge_patch(&old, &new).map(|p| json!({ "status": p }))
}
