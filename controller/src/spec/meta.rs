//! Kubernetes object metadata, label selectors and pod templates, as much of them as sluice
//! reads. Metadata is Kubernetes', not Argo's, so fields sluice does not use (uid,
//! resourceVersion, …) are accepted and ignored; a pod template is kept whole as written.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Object metadata.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    /// Name (required).
    #[serde(default)]
    pub name: String,
    /// Namespace (`default` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Labels and annotations given to the pods of a role (`canaryMetadata`, `stableMetadata`,
/// `activeMetadata`, `previewMetadata`): they follow the role, so a revision's pods change them
/// when it is promoted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodMetadata {
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl ObjectMeta {
    /// The namespace, `default` when unset.
    pub fn namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or("default")
    }
}

/// A label selector.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelector {
    /// Labels that must all be present with these values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    /// Set-based requirements, kept as written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "super::schema::any_objects")]
    pub match_expressions: Vec<serde_json::Value>,
}

/// A pod template, kept whole (it is hashed to name the revision).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PodTemplate(pub serde_json::Value);

/// A container of a pod template: what sluice needs of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    /// Container name.
    pub name: String,
    /// Image reference.
    pub image: String,
}

impl PodTemplate {
    /// The template's labels.
    pub fn labels(&self) -> BTreeMap<String, String> {
        self.0
            .pointer("/metadata/labels")
            .and_then(|l| l.as_object())
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The containers, or why the template has none that sluice can use.
    pub fn containers(&self) -> Result<Vec<Container>, (String, String)> {
        let list = self
            .0
            .pointer("/spec/containers")
            .and_then(|c| c.as_array())
            .ok_or_else(|| {
                (
                    "spec.containers".to_owned(),
                    "required: at least one container".to_owned(),
                )
            })?;
        if list.is_empty() {
            return Err((
                "spec.containers".to_owned(),
                "required: at least one container".to_owned(),
            ));
        }
        let mut out = Vec::new();
        for (i, c) in list.iter().enumerate() {
            let field = |f: &str| c.get(f).and_then(|v| v.as_str()).filter(|s| !s.is_empty());
            let name = field("name")
                .ok_or_else(|| (format!("spec.containers[{i}].name"), "required".to_owned()))?;
            let image = field("image")
                .ok_or_else(|| (format!("spec.containers[{i}].image"), "required".to_owned()))?;
            out.push(Container {
                name: name.to_owned(),
                image: image.to_owned(),
            });
        }
        Ok(out)
    }

    /// Sets the image of one container; false when there is no such container.
    pub fn set_image(&mut self, container: &str, image: &str) -> bool {
        let Some(list) = self
            .0
            .pointer_mut("/spec/containers")
            .and_then(|c| c.as_array_mut())
        else {
            return false;
        };
        for c in list {
            if c.get("name").and_then(|n| n.as_str()) == Some(container)
                && let Some(obj) = c.as_object_mut()
            {
                obj.insert(
                    "image".to_owned(),
                    serde_json::Value::String(image.to_owned()),
                );
                return true;
            }
        }
        false
    }
}

crate::spec::schema::hand_written_schema!(PodTemplate, "PodTemplate", super::schema::any_object);
