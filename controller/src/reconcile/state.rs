//! What the reconcile loop keeps per rollout and saves through its port: the status, the spec
//! changes made by commands, the route decided and the route served, the recorded scales, the
//! recent events, the analysis runs. Also the problems it shows in the views, each in its own
//! slot, so that one rollout's failure never shows on another and clearing one never needs a
//! message to be matched.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::runs::RunRecord;
use crate::control::service::EventView;
use crate::engine::{Reason, RouteIntent};
use crate::spec::PodTemplate;
use crate::spec::rollout::{Rollout, RolloutSpec};
use crate::status::RolloutStatus;
use crate::time::Time;

/// Events kept per rollout.
pub const EVENTS_KEPT: usize = 100;

/// A rollout's state in the loop (saved).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// The template as its owners last wrote it.
    pub file_template: Option<PodTemplate>,
    /// A template set by `set image` or `undo`, in force until the owners' template changes.
    pub template_override: Option<PodTemplate>,
    /// `spec.paused` as set by `pause` / `resume` / `promote`.
    pub paused_override: Option<bool>,
    /// Status.
    pub status: RolloutStatus,
    /// The route last decided (what the engine observes as published).
    pub published: Option<RouteIntent>,
    /// The route the hub serves, with its generation (what views show).
    #[serde(default)]
    pub live: Option<(RouteIntent, u64)>,
    /// Replicas recorded per revision.
    pub replicas: BTreeMap<String, i32>,
    /// Recent events.
    pub events: VecDeque<EventView>,
    /// When the engine asked to look again.
    pub next_wake: Option<Time>,
}

impl Entry {
    /// The spec in force: the owners' with the changes commands made.
    pub fn effective(&self, r: &Rollout) -> RolloutSpec {
        let mut spec = r.spec.clone();
        if let Some(t) = &self.template_override {
            spec.template = Some(t.clone());
        }
        if let Some(p) = self.paused_override {
            spec.paused = p;
        }
        spec
    }

    /// Records an event, keeping the newest [`EVENTS_KEPT`].
    pub fn record(&mut self, time: Time, reason: Reason, message: &str) {
        self.events.push_back(EventView {
            time,
            reason,
            message: message.to_owned(),
        });
        while self.events.len() > EVENTS_KEPT {
            self.events.pop_front();
        }
    }

    /// Takes the owners' template: a changed one replaces any override.
    pub fn follow(&mut self, template: Option<&PodTemplate>) -> bool {
        if self.file_template.as_ref() == template {
            return false;
        }
        self.file_template = template.cloned();
        self.template_override = None;
        true
    }
}

/// Everything the loop saves.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Rollouts by name.
    pub rollouts: BTreeMap<String, Entry>,
    /// Analysis runs by name.
    pub runs: BTreeMap<String, RunRecord>,
}

/// What keeps the loop from doing its work, each in its own slot.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Problems {
    /// What the owners wrote last is invalid; the previous world stays in force.
    pub world: Option<String>,
    /// The state cannot be saved; nothing advances except aborts.
    pub state: Option<String>,
    /// Per rollout: its route could not be built or published.
    pub rollouts: BTreeMap<String, String>,
    /// Per rollout: its spec as written now is invalid, and it is left as it is.
    pub invalid: BTreeMap<String, String>,
    /// The state could not be shown where the owners look (a Rollout's status, its
    /// ReplicaSets and Services on a cluster).
    pub reflect: Option<String>,
}

impl Problems {
    /// The problems a rollout's view shows, joined; `None` when there are none.
    pub fn of(&self, rollout: &str) -> Option<String> {
        let all: Vec<&str> = [
            self.world.as_deref(),
            self.state.as_deref(),
            self.reflect.as_deref(),
        ]
        .into_iter()
        .flatten()
        .chain(self.invalid.get(rollout).map(String::as_str))
        .chain(self.rollouts.get(rollout).map(String::as_str))
        .collect();
        (!all.is_empty()).then(|| all.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rollouts_problem_shows_on_it_alone_and_shared_ones_on_every_rollout() {
        let mut p = Problems::default();
        assert_eq!(p.of("a"), None);
        p.rollouts
            .insert("a".into(), "rollout a: no addresses".into());
        assert_eq!(p.of("a").as_deref(), Some("rollout a: no addresses"));
        assert_eq!(p.of("b"), None);
        p.state = Some("cannot write state".into());
        assert_eq!(
            p.of("a").as_deref(),
            Some("cannot write state; rollout a: no addresses")
        );
        assert_eq!(p.of("b").as_deref(), Some("cannot write state"));
    }

    #[test]
    fn a_changed_owner_template_replaces_the_override() {
        let t1: PodTemplate = serde_json::from_value(serde_json::json!({
            "spec": {"containers": [{"name": "app", "image": "app:v1"}]}
        }))
        .unwrap();
        let mut t2 = t1.clone();
        assert!(t2.set_image("app", "app:v2"));
        let mut e = Entry::default();
        assert!(e.follow(Some(&t1)));
        e.template_override = Some(t2.clone());
        assert!(!e.follow(Some(&t1)), "the same template keeps the override");
        assert_eq!(e.template_override.as_ref(), Some(&t2));
        assert!(e.follow(Some(&t2)));
        assert_eq!(e.template_override, None);
    }
}
