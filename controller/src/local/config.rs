//! A local config file: Rollout and AnalysisTemplate documents (either apiVersion) and one
//! `LocalRuntime` document. Loaded whole and checked whole: every rollout's images must have
//! addresses, every template it names must exist, and steps the local proxies cannot carry out
//! yet are refused.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use sluice_api::FieldError;

use crate::Error;
use crate::spec::local::LocalRuntimeSpec;
use crate::spec::rollout::RolloutAnalysis;
use crate::spec::{AnalysisTemplate, Document, PodTemplate, Rollout, parse_documents};

/// A loaded, checked local config.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalConfig {
    /// Where it was read from.
    pub path: PathBuf,
    /// The runtime settings.
    pub runtime: LocalRuntimeSpec,
    /// Rollouts by name.
    pub rollouts: BTreeMap<String, Rollout>,
    /// Analysis templates by name.
    pub templates: BTreeMap<String, AnalysisTemplate>,
}

impl LocalConfig {
    /// Reads and checks a config file; each error's path names the document and field.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::field(path.display().to_string(), format!("cannot read: {e}")))?;
        Self::parse(path, &text)
    }

    /// Parses and checks the text of a config file.
    pub fn parse(path: &Path, text: &str) -> Result<Self, Error> {
        let docs =
            parse_documents(text).map_err(|e| Error::field(path.display().to_string(), e))?;
        let mut errors = Vec::new();
        let mut runtime = None;
        let mut rollouts = BTreeMap::new();
        let mut templates = BTreeMap::new();
        for d in docs {
            match d {
                Err(e) => errors.extend(e.field_errors()),
                Ok(Document::Rollout(r)) => {
                    if rollouts.contains_key(&r.metadata.name) {
                        errors.push(FieldError::new(
                            format!("Rollout {:?}", r.metadata.name),
                            "is defined twice",
                        ));
                    }
                    rollouts.insert(r.metadata.name.clone(), *r);
                }
                Ok(Document::AnalysisTemplate(t)) => {
                    templates.insert(t.metadata.name.clone(), *t);
                }
                Ok(Document::LocalRuntime(r)) => {
                    if runtime.is_some() {
                        errors.push(FieldError::new(
                            "LocalRuntime",
                            "more than one LocalRuntime document",
                        ));
                    }
                    runtime = Some(r.spec);
                }
                Ok(Document::Other { .. }) => {}
            }
        }
        let Some(runtime) = runtime else {
            errors.push(FieldError::new(
                "LocalRuntime",
                "no LocalRuntime document: add one with spec.images mapping each image to its addresses",
            ));
            return Err(Error::Invalid(errors));
        };
        let cfg = Self {
            path: path.to_owned(),
            runtime,
            rollouts,
            templates,
        };
        errors.extend(cfg.cross_check());
        if errors.is_empty() {
            Ok(cfg)
        } else {
            Err(Error::Invalid(errors))
        }
    }

    fn cross_check(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        // templates included through spec.templates exist and include no loop; in local mode
        // AnalysisTemplates and ClusterAnalysisTemplates share one set of names
        for (name, t) in &self.templates {
            let doc = format!("AnalysisTemplate {name:?}");
            for (i, r) in t.spec.templates.iter().enumerate() {
                if !self.templates.contains_key(&r.template_name) {
                    errors.push(FieldError::new(
                        format!("{doc}: spec.templates[{i}].templateName"),
                        format!(
                            "no AnalysisTemplate named {:?} in this file",
                            r.template_name
                        ),
                    ));
                }
            }
            let found = crate::analysis::run::included(std::slice::from_ref(name), |n| {
                self.templates.get(n.trim_start_matches('/'))
            });
            if let Err(Error::Invalid(e)) = found {
                errors.extend(e);
            }
        }
        for (name, r) in &self.rollouts {
            let doc = format!("Rollout {name:?}");
            if r.spec.workload_ref.is_some() {
                errors.push(FieldError::new(
                    format!("{doc}: spec.workloadRef"),
                    "needs a Kubernetes cluster (local mode has no Deployments): write the pod template in spec.template",
                ));
            }
            if r.spec.restart_at.is_some() {
                errors.push(FieldError::new(
                    format!("{doc}: spec.restartAt"),
                    "needs a Kubernetes cluster (local mode runs no pods to restart)",
                ));
            }
            if let Some(t) = &r.spec.template
                && let Err(e) = self.check_images(t)
            {
                errors.push(FieldError::new(format!("{doc}: spec.template"), e));
            }
            errors.extend(
                crate::reconcile::translate::check(r)
                    .into_iter()
                    .map(|e| FieldError::new(format!("{doc}: {}", e.path), e.reason)),
            );
            let mut analyses: Vec<(String, &RolloutAnalysis)> = Vec::new();
            let mut background = None;
            if let Some(c) = &r.spec.strategy.canary {
                for (i, s) in c.steps.iter().enumerate() {
                    if let Some(a) = &s.analysis {
                        analyses.push((format!("spec.strategy.canary.steps[{i}].analysis"), a));
                    }
                }
                if let Some(bg) = &c.analysis {
                    background = Some(
                        bg.templates
                            .iter()
                            .map(|t| t.template_name.clone())
                            .collect::<Vec<_>>(),
                    );
                }
            }
            if let Some(b) = &r.spec.strategy.blue_green {
                if let Some(a) = &b.pre_promotion_analysis {
                    analyses.push(("spec.strategy.blueGreen.prePromotionAnalysis".into(), a));
                }
                if let Some(a) = &b.post_promotion_analysis {
                    analyses.push(("spec.strategy.blueGreen.postPromotionAnalysis".into(), a));
                }
            }
            let mut names: Vec<(String, String)> = analyses
                .iter()
                .flat_map(|(p, a)| {
                    a.templates
                        .iter()
                        .map(move |t| (p.clone(), t.template_name.clone()))
                })
                .collect();
            if let Some(bg) = background {
                names.extend(
                    bg.into_iter()
                        .map(|t| ("spec.strategy.canary.analysis".to_owned(), t)),
                );
            }
            for (path, t) in names {
                if !self.templates.contains_key(&t) {
                    errors.push(FieldError::new(
                        format!("{doc}: {path}"),
                        format!("no AnalysisTemplate named {t:?} in this file"),
                    ));
                }
            }
        }
        errors.extend(self.route_clashes());
        errors
    }

    /// Two rollouts whose routes share a name, or take the same hosts and path prefix: the
    /// proxies would refuse the table they make together, and every rollout would wait.
    fn route_clashes(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let mut by_name: BTreeMap<String, &str> = BTreeMap::new();
        let mut by_match: BTreeMap<(Vec<String>, String), &str> = BTreeMap::new();
        for (name, r) in &self.rollouts {
            let namespace = r.metadata.namespace();
            let routing = crate::engine::route::routing_of(&r.spec);
            let intent = crate::engine::route::base(namespace, name, routing, "");
            let field = format!(
                "Rollout {name:?}: spec.strategy.{}.trafficRouting.sluice",
                if r.spec.strategy.blue_green.is_some() {
                    "blueGreen"
                } else {
                    "canary"
                }
            );
            if let Some(other) = by_name.insert(intent.route.clone(), name) {
                errors.push(FieldError::new(
                    format!("{field}.route"),
                    format!(
                        "route {:?} is rollout {other:?}'s too; give one of them another",
                        intent.route
                    ),
                ));
            }
            let mut hosts: Vec<String> = intent
                .hosts
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect();
            hosts.sort();
            let shown = if hosts.is_empty() {
                "any host".to_owned()
            } else {
                hosts.join(", ")
            };
            if let Some(other) = by_match.insert((hosts, intent.path_prefix.clone()), name) {
                errors.push(FieldError::new(
                    format!("{field}.hosts"),
                    format!(
                        "rollout {other:?} already takes {shown} with path prefix {:?}; give one of them its own hosts or pathPrefix",
                        intent.path_prefix
                    ),
                ));
            }
        }
        errors
    }

    /// Checks that every container image of a template has addresses.
    pub fn check_images(&self, t: &PodTemplate) -> Result<(), String> {
        let containers = t.containers().map_err(|(p, r)| format!("{p}: {r}"))?;
        if containers
            .iter()
            .any(|c| self.runtime.images.contains_key(&c.image))
        {
            Ok(())
        } else {
            let images: Vec<&str> = containers.iter().map(|c| c.image.as_str()).collect();
            Err(format!(
                "no addresses for image {} in the LocalRuntime's spec.images",
                images.join(", ")
            ))
        }
    }

    /// The addresses a template's version runs at.
    pub fn addresses(&self, t: &PodTemplate) -> Vec<String> {
        let mut out = BTreeSet::new();
        if let Ok(cs) = t.containers() {
            for c in cs {
                if let Some(a) = self.runtime.images.get(&c.image) {
                    out.extend(a.iter().cloned());
                }
            }
        }
        out.into_iter().collect()
    }

    /// Every address of every image (what the health checker watches).
    pub fn all_addresses(&self) -> BTreeSet<String> {
        self.runtime.images.values().flatten().cloned().collect()
    }

    /// Where state is kept.
    pub fn state_dir(&self) -> PathBuf {
        match &self.runtime.state_dir {
            Some(d) if d.is_absolute() => d.clone(),
            Some(d) => self.path.parent().unwrap_or(Path::new(".")).join(d),
            None => self.path.parent().unwrap_or(Path::new(".")).join(".sluice"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUNTIME: &str = "apiVersion: sluice.dev/v1alpha1
kind: LocalRuntime
metadata: {name: here}
spec:
  images: {\"chip:v1\": [\"127.0.0.1:9001\"]}
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: chip}
spec:
  selector: {matchLabels: {app: chip}}
  template:
    metadata: {labels: {app: chip}}
    spec: {containers: [{name: chip, image: \"chip:v1\"}]}
  strategy:
    canary:
      steps:
      - analysis: {templates: [{templateName: all}, {templateName: slo, clusterScope: true}]}
";

    fn template(kind: &str, name: &str, includes: &str) -> String {
        format!(
            "---\napiVersion: argoproj.io/v1alpha1\nkind: {kind}\nmetadata: {{name: {name}}}\nspec:\n  templates: [{includes}]\n  metrics: [{{name: m-{name}, provider: {{proxy: {{query: error-rate}}}}}}]\n"
        )
    }

    fn parse(extra: &str) -> Result<LocalConfig, Error> {
        LocalConfig::parse(Path::new("local.yaml"), &format!("{RUNTIME}{extra}"))
    }

    #[test]
    fn rollouts_on_the_same_route_or_the_same_hosts_and_prefix_are_refused() {
        let rollout = |name: &str, routing: &str| {
            format!(
                "---\napiVersion: sluice.dev/v1alpha1\nkind: Rollout\nmetadata: {{name: {name}, namespace: shop}}\nspec:\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec: {{containers: [{{name: app, image: \"chip:v1\"}}]}}\n  strategy:\n    canary:\n      {routing}\n      steps: [{{setWeight: 50}}]\n"
            )
        };
        let parse = |rollouts: &str| {
            LocalConfig::parse(
                Path::new("local.yaml"),
                &format!(
                    "apiVersion: sluice.dev/v1alpha1\nkind: LocalRuntime\nmetadata: {{name: t}}\nspec:\n  images: {{\"chip:v1\": [\"127.0.0.1:9001\"]}}\n{rollouts}"
                ),
            )
        };
        let ok = format!(
            "{}{}{}",
            rollout("a", "trafficRouting: {sluice: {hosts: [a.test]}}"),
            rollout(
                "b",
                "trafficRouting: {sluice: {hosts: [a.test], pathPrefix: /b}}"
            ),
            rollout("c", "trafficRouting: {sluice: {hosts: [c.test]}}"),
        );
        if let Err(e) = parse(&ok) {
            panic!("{e}");
        }
        for (second, field, words) in [
            (
                "trafficRouting: {sluice: {hosts: [A.test]}}",
                "Rollout \"b\": spec.strategy.canary.trafficRouting.sluice.hosts",
                "rollout \"a\" already takes a.test with path prefix \"/\"",
            ),
            (
                "trafficRouting: {sluice: {hosts: [b.test], route: shop/a}}",
                "Rollout \"b\": spec.strategy.canary.trafficRouting.sluice.route",
                "route \"shop/a\" is rollout \"a\"'s too",
            ),
        ] {
            let text = format!(
                "{}{}",
                rollout("a", "trafficRouting: {sluice: {hosts: [a.test]}}"),
                rollout("b", second)
            );
            let Err(Error::Invalid(e)) = parse(&text) else {
                panic!("{second} is refused")
            };
            assert!(
                e.iter()
                    .any(|f| f.path == field && f.reason.contains(words)),
                "{e:?}"
            );
        }
        // two rollouts without routing both take any host at /
        let text = format!("{}{}", rollout("a", ""), rollout("b", ""));
        assert!(matches!(parse(&text), Err(Error::Invalid(_))));
    }

    #[test]
    fn included_and_cluster_templates_resolve_and_loops_or_gaps_are_refused() {
        let good = format!(
            "{}{}{}",
            template("AnalysisTemplate", "all", "{templateName: base}"),
            template("AnalysisTemplate", "base", ""),
            template(
                "ClusterAnalysisTemplate",
                "slo",
                "{templateName: base, clusterScope: true}"
            ),
        );
        parse(&good).unwrap();
        let gap = format!(
            "{}{}",
            template("AnalysisTemplate", "all", "{templateName: nowhere}"),
            template("ClusterAnalysisTemplate", "slo", ""),
        );
        let Err(Error::Invalid(e)) = parse(&gap) else {
            panic!("a missing include is refused")
        };
        assert_eq!(
            e[0].path,
            "AnalysisTemplate \"all\": spec.templates[0].templateName"
        );
        let looped = format!(
            "{}{}{}",
            template("AnalysisTemplate", "all", "{templateName: b}"),
            template("AnalysisTemplate", "b", "{templateName: all}"),
            template("ClusterAnalysisTemplate", "slo", ""),
        );
        let Err(Error::Invalid(e)) = parse(&looped) else {
            panic!("a loop is refused")
        };
        assert!(
            e.iter().any(|x| x.reason.contains("all -> b -> all")),
            "{e:?}"
        );
    }
}
