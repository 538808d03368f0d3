//! Argo Rollouts fields that sluice does not support. A document that uses one is refused with
//! "unsupported Argo field: PATH" rather than "unknown field", and never silently ignored: a
//! user moving over must know which part of their spec would not be honoured.

use serde_json::Value;

use sluice_api::FieldError;

/// (where, fields): `[]` after a segment means every element of that array.
const ROLLOUT: &[(&str, &[&str])] = &[
    ("spec", &["analysis"]),
    (
        "spec.strategy.canary",
        &[
            "maxSurge",
            "maxUnavailable",
            "antiAffinity",
            "pingPong",
            "replicaProgressThreshold",
        ],
    ),
    (
        "spec.strategy.canary.trafficRouting",
        &[
            "istio",
            "nginx",
            "alb",
            "smi",
            "ambassador",
            "appMesh",
            "traefik",
            "apisix",
            "plugins",
            "managedRoutes",
        ],
    ),
    ("spec.strategy.canary.steps[]", &["experiment", "plugin"]),
    ("spec.strategy.canary.analysis", &["analysisRunMetadata"]),
    (
        "spec.strategy.canary.steps[].analysis",
        &["analysisRunMetadata"],
    ),
    (
        "spec.strategy.blueGreen",
        &["antiAffinity", "maxUnavailable"],
    ),
    (
        "spec.strategy.blueGreen.prePromotionAnalysis",
        &["analysisRunMetadata"],
    ),
    (
        "spec.strategy.blueGreen.postPromotionAnalysis",
        &["analysisRunMetadata"],
    ),
];

const ANALYSIS_TEMPLATE: &[(&str, &[&str])] = &[
    ("spec.args[]", &["valueFrom"]),
    ("spec.metrics[].provider.prometheus", &["authentication"]),
    ("spec.metrics[].provider.web", &["authentication"]),
    (
        "spec.metrics[].provider",
        &[
            "datadog",
            "newRelic",
            "wavefront",
            "kayenta",
            "cloudWatch",
            "graphite",
            "influxdb",
            "skywalking",
            "plugin",
        ],
    ),
    ("spec.metrics[]", &["consecutiveSuccessLimit"]),
];

/// Every unsupported Argo field in a Rollout tree.
pub fn in_rollout(tree: &Value) -> Vec<FieldError> {
    find(tree, ROLLOUT)
}

/// Every unsupported Argo field in an AnalysisTemplate tree.
pub fn in_analysis_template(tree: &Value) -> Vec<FieldError> {
    find(tree, ANALYSIS_TEMPLATE)
}

fn find(tree: &Value, table: &[(&str, &[&str])]) -> Vec<FieldError> {
    let mut out = Vec::new();
    for (place, fields) in table {
        for (path, node) in resolve(tree, place) {
            let Some(obj) = node.as_object() else {
                continue;
            };
            for f in *fields {
                if obj.contains_key(*f) {
                    let full = format!("{path}.{f}");
                    out.push(FieldError::new(
                        full.clone(),
                        format!("unsupported Argo field: {full}"),
                    ));
                }
            }
        }
    }
    out
}

/// The nodes at a dotted place, with their concrete paths.
fn resolve<'v>(tree: &'v Value, place: &str) -> Vec<(String, &'v Value)> {
    let mut nodes = vec![(String::new(), tree)];
    for seg in place.split('.') {
        let (key, each) = match seg.strip_suffix("[]") {
            Some(k) => (k, true),
            None => (seg, false),
        };
        let mut next = Vec::new();
        for (path, node) in nodes {
            let Some(child) = node.get(key) else { continue };
            let child_path = if path.is_empty() {
                key.to_owned()
            } else {
                format!("{path}.{key}")
            };
            if each {
                if let Some(items) = child.as_array() {
                    for (i, item) in items.iter().enumerate() {
                        next.push((format!("{child_path}[{i}]"), item));
                    }
                }
            } else {
                next.push((child_path, child));
            }
        }
        nodes = next;
    }
    nodes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupported_fields_are_named_with_their_path() {
        let tree = serde_json::json!({
            "spec": {"strategy": {"canary": {
                "maxSurge": 1,
                "trafficRouting": {"istio": {}},
                "steps": [{"setWeight": 5}, {"experiment": {}}]
            }}}
        });
        let found: Vec<String> = in_rollout(&tree)
            .into_iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(
            found,
            vec![
                "spec.strategy.canary.maxSurge: unsupported Argo field: spec.strategy.canary.maxSurge",
                "spec.strategy.canary.trafficRouting.istio: unsupported Argo field: spec.strategy.canary.trafficRouting.istio",
                "spec.strategy.canary.steps[1].experiment: unsupported Argo field: spec.strategy.canary.steps[1].experiment",
            ]
        );
        let t = serde_json::json!({"spec": {"metrics": [{"provider": {"datadog": {}}}]}});
        assert_eq!(
            in_analysis_template(&t)[0].path,
            "spec.metrics[0].provider.datadog"
        );
        assert!(in_rollout(&serde_json::json!("scalar")).is_empty());
    }
}
