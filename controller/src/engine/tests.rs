//! The engine, driven by a simulated world: simulated time, proxies that acknowledge when told
//! to, revisions whose health the test sets, analysis runs whose verdicts the test decides.
//! Scenarios C1–C6, B1–B3 and A1 assert the exact effects and statuses; property tests check
//! the guarantees over random specs, commands and acknowledgement orders.

mod props;
mod scenarios;

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::analysis::run::RunPhase;
use crate::commands::{self, Command};
use crate::spec::rollout::RolloutSpec;
use crate::spec::{Document, parse_documents};
use crate::status::Phase;
use crate::status::RolloutStatus;
use crate::time::Time;

/// A simulated world around one rollout.
pub(super) struct Sim {
    pub spec: RolloutSpec,
    pub metadata: crate::spec::ObjectMeta,
    pub status: RolloutStatus,
    pub obs: Observations,
    pub now: Time,
    /// Acknowledge every published route at once.
    pub auto_ack: bool,
    /// Revisions with no healthy endpoint.
    pub unhealthy: Vec<String>,
    /// Every effect so far, rendered.
    pub trace: Vec<String>,
    pub last: Option<Decision>,
}

pub(super) fn rollout(yaml: &str) -> RolloutSpec {
    let text = format!(
        r#"apiVersion: sluice.dev/v1alpha1
kind: Rollout
metadata: {{name: chip, namespace: shop}}
spec:
  replicas: 4
  selector: {{matchLabels: {{app: chip}}}}
  template:
    metadata: {{labels: {{app: chip}}}}
    spec: {{containers: [{{name: chip, image: "chip:v1"}}]}}
{yaml}"#
    );
    match parse_documents(&text).unwrap().remove(0) {
        Ok(Document::Rollout(r)) => r.spec,
        other => panic!("{other:?}"),
    }
}

/// The Rollout of a scenario in `manifests/examples/`, the one copy the engine tests and the
/// end-to-end tests share (10 replicas, so a 20 % canary is sized 2).
pub(super) fn example(file: &str) -> RolloutSpec {
    let path = format!(
        "{}/../manifests/examples/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    // the simulation names its images chip:vN, as the end-to-end backends do
    let text = text.replace("fidelissauro/chip:", "chip:");
    parse_documents(&text)
        .unwrap()
        .into_iter()
        .find_map(|d| match d {
            Ok(Document::Rollout(r)) => Some(r.spec),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{path} has no valid Rollout"))
}

impl Sim {
    pub fn new(yaml: &str) -> Self {
        Self::with(rollout(yaml))
    }

    /// The scenario of an example manifest.
    pub fn example(file: &str) -> Self {
        Self::with(example(file))
    }

    pub fn with(spec: RolloutSpec) -> Self {
        let mut sim = Self {
            spec,
            metadata: serde_json::from_value(
                serde_json::json!({"name": "chip", "namespace": "shop"}),
            )
            .expect("metadata"),
            status: RolloutStatus::default(),
            obs: Observations::default(),
            now: Time(1_800_000_000_000),
            auto_ack: true,
            unhealthy: Vec::new(),
            trace: Vec::new(),
            last: None,
        };
        sim.obs.route.expected = 1;
        sim.settle();
        sim.trace.clear();
        sim
    }

    pub fn hash(&self, image: &str) -> String {
        let mut t = self.spec.template.clone().unwrap();
        t.set_image("chip", image);
        crate::revision::pod_template_hash(&t)
    }

    /// A short name for a hash: `r<revision number>` when known.
    fn name(&self, status: &RolloutStatus, hash: &str) -> String {
        match status.revision(hash) {
            Some(r) => format!("r{}", r.revision),
            None => hash.to_owned(),
        }
    }

    pub fn decide(&mut self) -> Decision {
        for (h, r) in self.obs.revisions.iter_mut() {
            r.healthy_endpoints = if self.unhealthy.contains(h) { 0 } else { 2 };
        }
        if let Some(t) = &self.spec.template {
            let h = crate::revision::pod_template_hash(t);
            self.obs
                .revisions
                .entry(h.clone())
                .or_default()
                .healthy_endpoints = if self.unhealthy.contains(&h) { 0 } else { 2 };
        }
        let input = Input {
            name: "chip",
            namespace: "shop",
            metadata: &self.metadata,
            spec: &self.spec,
            status: &self.status,
            observed: &self.obs,
            now: self.now,
        };
        let d = decide(&input);
        // the same inputs always give the same outputs
        assert_eq!(decide(&input), d);
        for e in &d.effects {
            let line = match e {
                Effect::PublishRoute(r) => {
                    self.obs.route.published = Some(r.clone());
                    self.obs.route.acknowledged = if self.auto_ack {
                        self.obs.route.expected
                    } else {
                        0
                    };
                    let canary = r
                        .canary
                        .as_ref()
                        .map(|c| format!(" canary={} w={}", self.name(&d.status, c), r.weight))
                        .unwrap_or_default();
                    let extra = if r.header_routes.is_empty() {
                        String::new()
                    } else {
                        format!(" headers={}", r.header_routes.len())
                    };
                    let preview = r
                        .preview_header
                        .as_ref()
                        .map(|h| format!(" preview={h}"))
                        .unwrap_or_default();
                    format!(
                        "route stable={}{canary}{extra}{preview}",
                        self.name(&d.status, &r.stable)
                    )
                }
                Effect::Scale { revision, replicas } => {
                    self.obs
                        .revisions
                        .entry(revision.clone())
                        .or_default()
                        .replicas = Some(*replicas);
                    format!("scale {}={replicas}", self.name(&d.status, revision))
                }
                Effect::StartAnalysis(a) => {
                    self.obs.analysis.insert(a.run.clone(), RunPhase::Running);
                    format!("start {:?}", a.kind)
                }
                Effect::StopAnalysis { run } => {
                    self.obs.analysis.insert(run.clone(), RunPhase::Successful);
                    "stop analysis".to_owned()
                }
                Effect::DeleteRevision { revision } => {
                    self.obs.revisions.remove(revision);
                    format!("delete {revision}")
                }
                Effect::Event(e) => format!("event {}", e.reason),
            };
            self.trace.push(line);
        }
        self.status = d.status.clone();
        self.last = Some(d.clone());
        d
    }

    /// Decides until nothing more happens (at most 30 rounds).
    pub fn settle(&mut self) -> &mut Self {
        for _ in 0..30 {
            let d = self.decide();
            if d.effects.iter().all(|e| matches!(e, Effect::Event(_))) {
                break;
            }
        }
        self
    }

    pub fn ack(&mut self) -> &mut Self {
        self.obs.route.acknowledged = self.obs.route.expected;
        self
    }

    pub fn advance(&mut self, secs: u64) -> &mut Self {
        self.now = self.now.plus(Duration::from_secs(secs));
        self
    }

    pub fn set_image(&mut self, image: &str) -> &mut Self {
        let mut t = self.spec.template.clone().unwrap();
        t.set_image("chip", image);
        self.spec.template = Some(t);
        self
    }

    pub fn command(&mut self, c: Command) -> Result<String, crate::Error> {
        commands::apply(c, &mut self.spec, &mut self.status, self.now)
    }

    pub fn run_result(&mut self, kind: RunKind, phase: RunPhase) -> &mut Self {
        let run = self
            .last
            .as_ref()
            .and_then(|d| d.analysis.iter().find(|a| a.kind == kind))
            .map(|a| a.run.clone())
            .unwrap_or_else(|| panic!("no {kind:?} run is wanted"));
        self.obs.analysis.insert(run, phase);
        self
    }

    /// (canary revision name, weight) as published; `None` when only stable serves.
    pub fn split(&self) -> (String, Option<(String, u32)>) {
        let r = self.obs.route.published.as_ref().unwrap();
        (
            self.name(&self.status, &r.stable),
            r.canary
                .as_ref()
                .map(|c| (self.name(&self.status, c), r.weight)),
        )
    }

    pub fn phase(&self) -> Phase {
        self.status.phase
    }

    pub fn take_trace(&mut self) -> Vec<String> {
        std::mem::take(&mut self.trace)
    }
}

#[test]
fn first_revision_is_stable_at_once() {
    let mut sim = Sim::new("  strategy:\n    canary:\n      steps: [{setWeight: 20}]\n");
    assert_eq!(sim.phase(), Phase::Healthy);
    assert_eq!(sim.status.stable_rs, sim.status.current_pod_hash);
    assert_eq!(sim.split(), ("r1".to_owned(), None));
    assert_eq!(sim.status.revisions.len(), 1);
    // nothing to do when nothing changes
    let d = sim.decide();
    assert!(d.effects.is_empty(), "{:?}", d.effects);
    let _ = BTreeMap::<u8, u8>::new();
}
