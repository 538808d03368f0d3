//! The documents users write: Rollouts and AnalysisTemplates with Argo Rollouts' field names,
//! read from multi-document YAML. Each document is checked in three passes, and every problem
//! is reported with its field path: unsupported Argo fields, then types and unknown fields,
//! then impossible values.

pub mod defaults;
pub mod duration;
pub mod local;
pub mod meta;
pub mod rollout;
pub(crate) mod schema;
pub mod template;
pub mod unsupported;
pub mod validate;

use serde_json::Value;
use sluice_api::FieldError;

pub use duration::ArgoDuration;
pub use meta::{Container, LabelSelector, ObjectMeta, PodTemplate};
pub use rollout::Rollout;
pub use template::AnalysisTemplate;

/// Our API group version.
pub const API_VERSION: &str = "sluice.dev/v1alpha1";
/// Argo Rollouts' API group version, accepted as it is.
pub const ARGO_API_VERSION: &str = "argoproj.io/v1alpha1";

/// One parsed, valid document.
#[derive(Debug, Clone, PartialEq)]
pub enum Document {
    /// A Rollout.
    Rollout(Box<Rollout>),
    /// An AnalysisTemplate or ClusterAnalysisTemplate.
    AnalysisTemplate(Box<AnalysisTemplate>),
    /// The local runtime's settings.
    LocalRuntime(Box<local::LocalRuntime>),
    /// Another Kubernetes kind (Service, HorizontalPodAutoscaler, …): accepted, not interpreted.
    Other {
        /// Its apiVersion.
        api_version: String,
        /// Its kind.
        kind: String,
        /// Its name.
        name: String,
    },
}

/// Why one document of a file is invalid.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentError {
    /// Position of the document in its file (0-based).
    pub index: usize,
    /// Its kind, when it has one.
    pub kind: String,
    /// Its name, when it has one.
    pub name: String,
    /// Every problem, with its field path.
    pub errors: Vec<FieldError>,
}

impl DocumentError {
    /// Its problems, each with a path that starts with the document.
    pub fn field_errors(&self) -> Vec<FieldError> {
        let what = match (self.kind.is_empty(), self.name.is_empty()) {
            (false, false) => format!("{} {:?}", self.kind, self.name),
            (false, true) => self.kind.clone(),
            _ => "document".to_owned(),
        };
        let doc = format!("document {} ({what})", self.index + 1);
        self.errors
            .iter()
            .map(|e| {
                let path = if e.path.is_empty() || e.path == "." {
                    doc.clone()
                } else {
                    format!("{doc}: {}", e.path)
                };
                FieldError::new(path, e.reason.clone())
            })
            .collect()
    }
}

impl std::fmt::Display for DocumentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.field_errors().iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Parses every document of a multi-document YAML text. The outer error is a YAML syntax
/// error (nothing could be read); otherwise each document is valid or says why not.
pub fn parse_documents(text: &str) -> Result<Vec<Result<Document, DocumentError>>, String> {
    let trees: Vec<Value> =
        serde_saphyr::from_multiple(text).map_err(|e| format!("not valid YAML: {e}"))?;
    Ok(trees
        .into_iter()
        .enumerate()
        .map(|(i, t)| parse_document(t, i))
        .collect())
}

fn text_at<'a>(tree: &'a Value, pointer: &str) -> &'a str {
    tree.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Parses and checks one document tree.
pub fn parse_document(tree: Value, index: usize) -> Result<Document, DocumentError> {
    let kind = text_at(&tree, "/kind").to_owned();
    let name = text_at(&tree, "/metadata/name").to_owned();
    let api_version = text_at(&tree, "/apiVersion").to_owned();
    let fail = |errors: Vec<FieldError>| DocumentError {
        index,
        kind: kind.clone(),
        name: name.clone(),
        errors,
    };
    if !tree.is_object() {
        return Err(fail(vec![FieldError::new(
            "",
            "a document must be a mapping",
        )]));
    }
    if api_version.is_empty() {
        return Err(fail(vec![FieldError::new("apiVersion", "required")]));
    }
    if kind.is_empty() {
        return Err(fail(vec![FieldError::new("kind", "required")]));
    }
    let ours = api_version == API_VERSION || api_version == ARGO_API_VERSION;
    match kind.as_str() {
        "Rollout" | "AnalysisTemplate" | "ClusterAnalysisTemplate" if !ours => {
            Err(fail(vec![FieldError::new(
                "apiVersion",
                format!("{api_version:?} must be {API_VERSION} or {ARGO_API_VERSION}"),
            )]))
        }
        "Rollout" => {
            let mut tree = tree;
            drop_nulls(&mut tree);
            let unsupported = unsupported::in_rollout(&tree);
            if !unsupported.is_empty() {
                return Err(fail(unsupported));
            }
            let r: Rollout = typed(tree).map_err(|e| fail(vec![e]))?;
            let errors = validate::rollout(&r);
            if errors.is_empty() {
                Ok(Document::Rollout(Box::new(r)))
            } else {
                Err(fail(errors))
            }
        }
        "AnalysisTemplate" | "ClusterAnalysisTemplate" => {
            let mut tree = tree;
            drop_nulls(&mut tree);
            let unsupported = unsupported::in_analysis_template(&tree);
            if !unsupported.is_empty() {
                return Err(fail(unsupported));
            }
            let t: AnalysisTemplate = typed(tree).map_err(|e| fail(vec![e]))?;
            let errors = validate::analysis_template(&t);
            if errors.is_empty() {
                Ok(Document::AnalysisTemplate(Box::new(t)))
            } else {
                Err(fail(errors))
            }
        }
        "LocalRuntime" if api_version == API_VERSION => {
            let r: local::LocalRuntime = typed(tree).map_err(|e| fail(vec![e]))?;
            let errors = local::validate(&r);
            if errors.is_empty() {
                Ok(Document::LocalRuntime(Box::new(r)))
            } else {
                Err(fail(errors))
            }
        }
        "Experiment" | "AnalysisRun" if ours => Err(fail(vec![FieldError::new(
            "kind",
            format!("unsupported Argo field: kind {kind}"),
        )])),
        _ if ours => Err(fail(vec![FieldError::new(
            "kind",
            format!("{kind:?} is not a kind of {api_version}"),
        )])),
        _ => {
            if name.is_empty() {
                return Err(fail(vec![FieldError::new("metadata.name", "required")]));
            }
            let mut errors = Vec::new();
            if kind == "HorizontalPodAutoscaler" {
                let target_kind = text_at(&tree, "/spec/scaleTargetRef/kind");
                let target_api = text_at(&tree, "/spec/scaleTargetRef/apiVersion");
                if target_kind == "Rollout"
                    && target_api != API_VERSION
                    && target_api != ARGO_API_VERSION
                {
                    errors.push(FieldError::new(
                        "spec.scaleTargetRef.apiVersion",
                        format!("a Rollout target needs {API_VERSION} or {ARGO_API_VERSION}"),
                    ));
                }
            }
            if errors.is_empty() {
                Ok(Document::Other {
                    api_version,
                    kind,
                    name,
                })
            } else {
                Err(fail(errors))
            }
        }
    }
}

/// Deserializes a tree with the failing field's path in the error.
/// Fields whose value is kept as written, nulls included (a pod template, a Job, a JSON body).
const KEPT_WHOLE: [&str; 3] = ["template", "job", "jsonBody"];

/// Removes every field whose value is null, as the API server reads a custom resource (`steps:`
/// with nothing after it is no steps), except inside what is kept whole.
fn drop_nulls(tree: &mut Value) {
    match tree {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            for (k, v) in map.iter_mut() {
                if !KEPT_WHOLE.contains(&k.as_str()) {
                    drop_nulls(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

fn typed<T: serde::de::DeserializeOwned>(tree: Value) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(tree).map_err(|e| {
        let path = e.path().to_string();
        FieldError::new(path, e.into_inner().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_field_written_with_no_value_is_absent_as_kubernetes_reads_it() {
        let text = "apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: chip}
spec:
  replicas:
  selector: {matchLabels: {app: chip}}
  template:
    metadata: {labels: {app: chip}, annotations: {kept: null}}
    spec: {containers: [{name: chip, image: \"chip:v1\"}]}
  strategy:
    canary:
      steps:
";
        let doc = parse_documents(text).unwrap().remove(0);
        let Ok(Document::Rollout(r)) = doc else {
            panic!("{doc:?}")
        };
        assert_eq!(r.spec.replicas, None);
        assert!(r.spec.strategy.canary.unwrap().steps.is_empty());
        let t = r.spec.template.unwrap();
        assert_eq!(
            t.0.pointer("/metadata/annotations/kept"),
            Some(&Value::Null),
            "the pod template is kept as written"
        );
    }

    #[test]
    fn a_failover_names_http_statuses_and_methods_in_capitals() {
        let doc = |failover: &str| {
            format!(
                "apiVersion: sluice.dev/v1alpha1\nkind: Rollout\nmetadata: {{name: chip}}\nspec:\n  selector: {{matchLabels: {{app: chip}}}}\n  template: {{metadata: {{labels: {{app: chip}}}}, spec: {{containers: [{{name: c, image: i}}]}}}}\n  strategy: {{canary: {{trafficRouting: {{sluice: {{failover: {failover}}}}}, steps: [{{setWeight: 5}}]}}}}\n"
            )
        };
        let errors = |f: &str| match parse_documents(&doc(f)).unwrap().remove(0) {
            Ok(_) => Vec::new(),
            Err(e) => e.errors.iter().map(ToString::to_string).collect(),
        };
        assert_eq!(errors("{}"), Vec::<String>::new());
        assert_eq!(
            errors("{statuses: [503], safeMethods: [GET], maxReplayBytes: 1024}"),
            Vec::<String>::new()
        );
        let p = "spec.strategy.canary.trafficRouting.sluice.failover";
        assert_eq!(
            errors("{statuses: [503, 700], safeMethods: [get]}"),
            [
                format!("{p}.statuses[1]: 700 is not an HTTP status"),
                format!("{p}.safeMethods[0]: \"get\" is not a method in capitals (GET, HEAD, …)"),
            ]
        );
        assert_eq!(
            errors("{retries: 2}").len(),
            1,
            "an unknown field is refused"
        );
    }

    #[test]
    fn a_workload_ref_stands_for_the_template_and_is_checked() {
        let doc = |spec: &str| {
            format!(
                "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata: {{name: chip}}\nspec:\n{spec}  strategy: {{canary: {{steps: [{{setWeight: 5}}]}}}}\n"
            )
        };
        let errors = |spec: &str| match parse_documents(&doc(spec)).unwrap().remove(0) {
            Ok(_) => Vec::new(),
            Err(e) => e.errors.iter().map(ToString::to_string).collect(),
        };
        let referring = "  workloadRef: {apiVersion: apps/v1, kind: Deployment, name: chip, scaleDown: onsuccess}\n";
        assert_eq!(errors(referring), Vec::<String>::new());
        let both =
            format!("{referring}  template: {{spec: {{containers: [{{name: c, image: i}}]}}}}\n");
        assert_eq!(
            errors(&both),
            ["spec.workloadRef: set template or workloadRef, not both"]
        );
        let stateful = "  workloadRef: {apiVersion: apps/v1, kind: StatefulSet, name: chip}\n";
        assert_eq!(
            errors(stateful),
            [
                "spec.workloadRef: must refer to an apps/v1 Deployment (apiVersion: apps/v1, kind: Deployment)"
            ]
        );
        let unknown = "  workloadRef: {apiVersion: apps/v1, kind: Deployment, name: chip, scaleDown: sometimes}\n";
        assert!(!errors(unknown).is_empty());
    }

    #[test]
    fn both_api_versions_parse_the_same() {
        let doc = |api: &str| {
            format!(
                "apiVersion: {api}\nkind: Rollout\nmetadata: {{name: a}}\nspec:\n  template: {{spec: {{containers: [{{name: c, image: i}}]}}}}\n  strategy: {{canary: {{steps: [{{setWeight: 5}}]}}}}\n"
            )
        };
        let parse = |t: &str| match parse_documents(t).unwrap().remove(0) {
            Ok(Document::Rollout(r)) => r.spec,
            other => panic!("{other:?}"),
        };
        assert_eq!(parse(&doc(API_VERSION)), parse(&doc(ARGO_API_VERSION)));
    }

    fn yaml_tree() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            "[a-zA-Z0-9 {}:]{0,12}".prop_map(serde_json::Value::from),
            prop_oneof![
                Just("Rollout"),
                Just("AnalysisTemplate"),
                Just("argoproj.io/v1alpha1"),
                Just("10s"),
                Just("canary")
            ]
            .prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(5, 64, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                proptest::collection::btree_map(
                    prop_oneof![
                        Just("apiVersion"),
                        Just("kind"),
                        Just("metadata"),
                        Just("name"),
                        Just("spec"),
                        Just("strategy"),
                        Just("canary"),
                        Just("blueGreen"),
                        Just("steps"),
                        Just("setWeight"),
                        Just("pause"),
                        Just("duration"),
                        Just("metrics"),
                        Just("provider"),
                        Just("template"),
                        Just("templates"),
                        Just("analysis"),
                        Just("x")
                    ]
                    .prop_map(str::to_owned),
                    inner,
                    0..5
                )
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn arbitrary_text_never_panics_the_parser(text in "\\PC{0,200}") {
            let _ = parse_documents(&text);
        }

        #[test]
        fn arbitrary_documents_never_panic_the_parser(tree in yaml_tree(), kind in prop_oneof![Just("Rollout"), Just("AnalysisTemplate"), Just("Service")]) {
            let mut t = tree;
            if let Some(obj) = t.as_object_mut() {
                obj.insert("apiVersion".into(), "argoproj.io/v1alpha1".into());
                obj.insert("kind".into(), kind.into());
            }
            let _ = parse_document(t.clone(), 0);
            let text = serde_json::to_string(&t).unwrap();
            let _ = parse_documents(&text);
        }
    }
}
