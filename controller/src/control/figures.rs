//! What the dashboard shows beside a rollout's view: each revision's figures over the last
//! minutes (from the hub's samples), the moments the canary's weight changed and the
//! rollout's events (to mark on the charts), and the weight each proxy serves now (from the
//! generation of the route it applied).

use std::time::Duration;

use serde::Serialize;

use super::hub::{Hub, Point};
use super::service::RolloutView;
use crate::engine::Reason;
use crate::time::Time;

/// A revision's figures over time.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RevisionSeries {
    /// Pod-template hash.
    pub pod_template_hash: String,
    /// Its role now.
    pub role: String,
    /// Figures, oldest first.
    pub points: Vec<Point>,
}

/// A moment to mark on the charts.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Mark {
    /// When.
    pub at: Time,
    /// `weight`, `abort`, or the event's reason.
    pub kind: String,
    /// What happened, in words.
    pub text: String,
}

/// A rollout's recent history.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct History {
    /// When it was taken.
    pub now: Time,
    /// Since when.
    pub since: Time,
    /// Per revision.
    pub revisions: Vec<RevisionSeries>,
    /// Weight changes and events, oldest first.
    pub marks: Vec<Mark>,
}

/// The history of `view`'s rollout since `since`, a point per `step`.
pub fn history(hub: &Hub, view: &RolloutView, since: Time, step: Duration, now: Time) -> History {
    let route = view.route.as_ref().map(|r| r.route.clone());
    let revisions = view
        .revisions
        .iter()
        .map(|r| RevisionSeries {
            pod_template_hash: r.pod_template_hash.clone(),
            role: r.role.clone(),
            points: route.as_deref().map_or_else(Vec::new, |route| {
                hub.series(route, &r.pod_template_hash, since, step)
            }),
        })
        .collect();
    let mut marks: Vec<Mark> = route
        .as_deref()
        .map(|route| hub.weight_changes(route, since))
        .unwrap_or_default()
        .into_iter()
        .map(|(at, share)| Mark {
            at,
            kind: "weight".to_owned(),
            text: format!("canary weight {}", percent(share)),
        })
        .collect();
    marks.extend(view.events.iter().filter(|e| e.time >= since).map(|e| {
        // an abort, by analysis or by a person's command
        let abort = e.reason == Reason::RolloutAborted
            || (e.reason == Reason::Command && e.message.starts_with("aborted"));
        Mark {
            at: e.time,
            kind: if abort {
                "abort".to_owned()
            } else {
                format!("{:?}", e.reason)
            },
            text: e.message.clone(),
        }
    }));
    marks.sort_by_key(|m| m.at);
    History {
        now,
        since,
        revisions,
        marks,
    }
}

fn percent(share: f64) -> String {
    if share.fract() == 0.0 {
        format!("{share:.0} %")
    } else {
        format!("{share:.2} %")
    }
}

/// What one proxy serves for a rollout's route.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyWeight {
    /// Proxy id.
    pub id: String,
    /// Whether a step waits for it (its lease is live, or it is required).
    pub expected: bool,
    /// When its lease ends.
    pub lease_until: Time,
    /// The generation of the route it applied, if any.
    pub generation: Option<u64>,
    /// Whether that is the route's current generation.
    pub current: bool,
    /// The canary's share (percent) it serves; `None` when unknown.
    pub weight: Option<f64>,
}

/// The weight each proxy serves for `view`'s route.
pub fn proxy_weights(hub: &Hub, view: &RolloutView, now: Time) -> Vec<ProxyWeight> {
    let Some(route) = view.route.as_ref().map(|r| r.route.clone()) else {
        return Vec::new();
    };
    let current = hub
        .route(&route)
        .and_then(|(r, _)| r.generation)
        .unwrap_or(0);
    hub.proxies(now)
        .into_iter()
        .map(|p| {
            let generation = p.applied.get(&route).copied();
            ProxyWeight {
                weight: generation.and_then(|g| hub.weight_at(&route, g)),
                current: generation.is_some_and(|g| g >= current),
                generation,
                expected: p.expected,
                lease_until: p.lease_until,
                id: p.id,
            }
        })
        .collect()
}
