//! One rollout decided until it settles, in memory: observe, run the engine, take its effects
//! into the state, and again while an effect changed what the next decision would see (a
//! published route, a scale, a run). Pure apart from what [`Sight`] reports, so the shell's
//! rules — a route decided in this round is observed as published but not acknowledged, a
//! terminated run counts as successful, a forgotten revision takes its runs with it — are
//! tested without a runtime.

use std::collections::BTreeMap;

use super::runs::RunRecord;
use super::state::State;
use crate::analysis::run::RunPhase;
use crate::engine::{
    self, Effect, Input, Observations, RevisionObservation, RouteIntent, RouteObservation,
};
use crate::revision::pod_template_hash;
use crate::spec::rollout::Rollout;
use crate::time::Time;

/// Rounds of decisions per rollout and tick, at most (a decision that keeps acting is a bug;
/// this bounds it).
const ROUNDS: usize = 8;

/// What the loop sees of the world for one rollout.
pub trait Sight {
    /// (expected proxies, those that applied `generation` of `route`); `None` asks only for
    /// the expected count.
    fn acknowledgements(&self, route: &str, generation: Option<u64>) -> (u32, u32);
    /// The generation the proxies are being served for `route`, 0 when none.
    fn generation(&self, route: &str) -> u64;
    /// (healthy endpoints, requests in flight) of a revision.
    fn revision(
        &self,
        rollout: &str,
        route: &str,
        template: &crate::spec::PodTemplate,
    ) -> (u32, u64);
}

/// A change the tick made to the runs, undone if the state cannot be saved.
#[derive(Debug, Clone, PartialEq)]
pub enum RunChange {
    /// A run was started.
    Started(String),
    /// A run was marked terminated.
    Terminated(String),
    /// A run was forgotten with its revision.
    Forgotten(String, Box<RunRecord>),
}

/// What settling a rollout asks the loop to carry out once the state is saved.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settled {
    /// The route to publish, if the decision changed it.
    pub publish: Option<RouteIntent>,
    /// Scales to carry out: (revision, replicas).
    pub scales: Vec<(String, i32)>,
    /// Run changes, in order.
    pub runs: Vec<RunChange>,
}

/// The route name a rollout drives (commands never change its routing, so the owners' spec
/// says it).
pub fn route_of(r: &Rollout) -> String {
    engine::route::route_name(r.metadata.namespace(), &r.metadata.name, &r.spec)
}

/// What the engine observes. `pending`: a route decided in this tick is not yet published,
/// so nobody can have acknowledged it.
pub fn observe(
    state: &State,
    name: &str,
    r: &Rollout,
    sight: &impl Sight,
    pending: bool,
) -> Observations {
    let Some(e) = state.rollouts.get(name) else {
        return Observations::default();
    };
    let spec = e.effective(r);
    let route = route_of(r);
    let (expected, acknowledged) = match (&e.published, pending) {
        (Some(_), false) => sight.acknowledgements(&route, Some(sight.generation(&route))),
        _ => (sight.acknowledgements(&route, None).0, 0),
    };
    let mut revisions = BTreeMap::new();
    let templates = e
        .status
        .revisions
        .iter()
        .map(|rev| &rev.template)
        .chain(spec.template.as_ref());
    for t in templates {
        let hash = pod_template_hash(t);
        let (healthy_endpoints, in_flight) = sight.revision(name, &route, t);
        revisions.insert(
            hash.clone(),
            RevisionObservation {
                healthy_endpoints,
                in_flight,
                replicas: e.replicas.get(&hash).copied(),
            },
        );
    }
    let analysis = state
        .runs
        .iter()
        .filter(|(_, run)| run.rollout == name)
        .map(|(n, run)| {
            let phase = if run.terminated && !run.phase.is_complete() {
                RunPhase::Successful
            } else {
                run.phase
            };
            (n.clone(), phase)
        })
        .collect();
    Observations {
        route: RouteObservation {
            published: e.published.clone(),
            expected,
            acknowledged,
        },
        revisions,
        analysis,
    }
}

/// Decides `name` until it settles; returns what to carry out. The entry's `next_wake` says
/// when a timer is due.
pub fn settle(
    state: &mut State,
    name: &str,
    r: &Rollout,
    sight: &impl Sight,
    now: Time,
) -> Settled {
    let mut out = Settled::default();
    for _ in 0..ROUNDS {
        let Some(entry) = state.rollouts.get(name).cloned() else {
            break;
        };
        let spec = entry.effective(r);
        let observed = observe(state, name, r, sight, out.publish.is_some());
        let decision = engine::decide(&Input {
            // the object's name: on a cluster the entry's is `namespace/name`
            name: &r.metadata.name,
            namespace: r.metadata.namespace(),
            metadata: &r.metadata,
            spec: &spec,
            status: &entry.status,
            observed: &observed,
            now,
        });
        let mut entry = entry;
        entry.status = decision.status.clone();
        entry.next_wake = decision.requeue_after.map(|w| now.plus(w));
        let mut acted = false;
        for effect in decision.effects {
            match effect {
                Effect::PublishRoute(intent) => {
                    // observed as published by the next round of this tick
                    entry.published = Some(intent.clone());
                    out.publish = Some(intent);
                    acted = true;
                }
                Effect::Scale { revision, replicas } => {
                    entry.replicas.insert(revision.clone(), replicas);
                    out.scales.retain(|(r, _)| *r != revision);
                    out.scales.push((revision, replicas));
                    acted = true;
                }
                Effect::StartAnalysis(request) => {
                    let run = request.run.clone();
                    state
                        .runs
                        .insert(run.clone(), RunRecord::new(name, request, now));
                    out.runs.push(RunChange::Started(run));
                    acted = true;
                }
                Effect::StopAnalysis { run } => {
                    if let Some(record) = state.runs.get_mut(&run)
                        && !record.terminated
                    {
                        record.terminated = true;
                        out.runs.push(RunChange::Terminated(run));
                    }
                    acted = true;
                }
                Effect::DeleteRevision { revision } => {
                    entry.replicas.remove(&revision);
                    let gone: Vec<String> = state
                        .runs
                        .iter()
                        .filter(|(_, run)| run.rollout == name && run.request.revision == revision)
                        .map(|(n, _)| n.clone())
                        .collect();
                    for run in gone {
                        if let Some(record) = state.runs.remove(&run) {
                            out.runs.push(RunChange::Forgotten(run, Box::new(record)));
                        }
                    }
                }
                Effect::Event(event) => {
                    tracing::info!(rollout = %name, reason = %event.reason, "{}", event.message);
                    entry.record(now, event.reason, &event.message);
                }
            }
        }
        state.rollouts.insert(name.to_owned(), entry);
        if !acted {
            break;
        }
    }
    out
}

/// Undoes the run changes of a tick whose state could not be saved, newest first.
pub fn undo_runs(state: &mut State, changes: &[RunChange]) {
    for change in changes.iter().rev() {
        match change {
            RunChange::Started(run) => {
                state.runs.remove(run);
            }
            RunChange::Terminated(run) => {
                if let Some(record) = state.runs.get_mut(run) {
                    record.terminated = false;
                }
            }
            RunChange::Forgotten(run, record) => {
                state.runs.insert(run.clone(), (**record).clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::engine::AnalysisRequest;
    use crate::engine::RunKind;
    use crate::spec::{Document, PodTemplate, parse_documents};

    /// One proxy, which has applied generation `applied` of every route; every revision has
    /// one healthy endpoint.
    struct OneProxy {
        applied: Cell<u64>,
        served: u64,
    }

    impl Sight for OneProxy {
        fn acknowledgements(&self, _route: &str, generation: Option<u64>) -> (u32, u32) {
            match generation {
                Some(g) if self.applied.get() >= g => (1, 1),
                _ => (1, 0),
            }
        }
        fn generation(&self, _route: &str) -> u64 {
            self.served
        }
        fn revision(&self, _rollout: &str, _route: &str, _t: &PodTemplate) -> (u32, u64) {
            (1, 0)
        }
    }

    fn canary() -> Rollout {
        let text = "apiVersion: sluice.dev/v1alpha1
kind: Rollout
metadata: {name: chip, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: chip}}
  template:
    metadata: {labels: {app: chip}}
    spec: {containers: [{name: chip, image: \"chip:v1\"}]}
  strategy:
    canary:
      analysis: {templates: [{templateName: t}]}
      steps: [{setWeight: 20}, {pause: {}}]
";
        match parse_documents(text).unwrap().remove(0) {
            Ok(Document::Rollout(r)) => *r,
            other => panic!("{other:?}"),
        }
    }

    fn released(r: &Rollout) -> (State, Rollout) {
        let mut state = State::default();
        let mut entry = crate::reconcile::Entry::default();
        entry.follow(r.spec.template.as_ref());
        state.rollouts.insert("chip".into(), entry);
        let sight = OneProxy {
            applied: Cell::new(u64::MAX),
            served: 1,
        };
        settle(&mut state, "chip", r, &sight, Time(0));
        let mut next = r.clone();
        let mut t = next.spec.template.clone().unwrap();
        assert!(t.set_image("chip", "chip:v2"));
        next.spec.template = Some(t);
        (state, next)
    }

    #[test]
    fn a_route_decided_in_this_tick_is_published_but_never_acknowledged_in_it() {
        let (mut state, r) = released(&canary());
        // the proxy has applied everything it was ever served: only a pending route is unseen
        let sight = OneProxy {
            applied: Cell::new(u64::MAX),
            served: 1,
        };
        let out = settle(&mut state, "chip", &r, &sight, Time(1_000));
        let published = out.publish.expect("the canary's first weight is published");
        assert_eq!(published.weight, 20);
        let e = &state.rollouts["chip"];
        assert_eq!(e.published.as_ref(), Some(&published));
        assert_eq!(e.status.current_step_index, Some(0), "not acknowledged yet");
        let weights = e.status.canary.weights.as_ref().unwrap();
        assert!(!weights.verified);
        assert_eq!(
            out.scales.len(),
            1,
            "the canary is sized once: {:?}",
            out.scales
        );
        assert!(
            matches!(out.runs.as_slice(), [RunChange::Started(_)]),
            "the background analysis starts: {:?}",
            out.runs
        );

        // the next tick sees the proxy's acknowledgement and completes the step
        let out = settle(&mut state, "chip", &r, &sight, Time(2_000));
        assert_eq!(out.publish, None);
        assert_eq!(state.rollouts["chip"].status.current_step_index, Some(1));
    }

    #[test]
    fn a_terminated_run_counts_as_successful_and_undo_restores_every_run_change() {
        let (mut state, r) = released(&canary());
        let request = AnalysisRequest {
            run: "run-1".into(),
            kind: RunKind::Background,
            templates: vec!["t".into()],
            args: Default::default(),
            secrets: Default::default(),
            dry_run: Vec::new(),
            measurement_retention: Vec::new(),
            revision: "h2".into(),
            stable: "h1".into(),
        };
        let mut record = RunRecord::new("chip", request.clone(), Time(0));
        record.terminated = true;
        state.runs.insert("run-1".into(), record);
        let sight = OneProxy {
            applied: Cell::new(0),
            served: 0,
        };
        let seen = observe(&state, "chip", &r, &sight, false);
        assert_eq!(seen.analysis["run-1"], RunPhase::Successful);

        let before = state.clone();
        let forgotten = state.runs.remove("run-1").unwrap();
        state
            .runs
            .insert("run-2".into(), RunRecord::new("chip", request, Time(1)));
        state.runs.get_mut("run-2").unwrap().terminated = true;
        undo_runs(
            &mut state,
            &[
                RunChange::Forgotten("run-1".into(), Box::new(forgotten)),
                RunChange::Started("run-2".into()),
                RunChange::Terminated("run-2".into()),
            ],
        );
        assert_eq!(state, before);
    }
}
