//! Kubernetes Events for what the loop records of a rollout (a new revision, each step, a
//! promotion, an abort, a phase change, a command, an analysis run's verdict), as
//! `kubectl describe rollout` and `kubectl get events` show Argo Rollouts': one `core/v1`
//! Event per record, on the Rollout, `Warning` for an abort, a missed deadline or an analysis
//! run that did not succeed. Each record is posted once: the runtime remembers the last one it
//! posted per rollout, and on a restart starts from the state it saved, so nothing is posted
//! twice. Pure.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time as KubeTime;
use kube::api::{DynamicObject, ObjectMeta};

use crate::control::service::EventView;
use crate::engine::Reason;
use crate::reconcile::Entry;
use crate::spec::API_VERSION;

/// The component Events name as their source.
pub const COMPONENT: &str = "sluice-controller";

/// The records of `entry` after `last` (all of them when `last` is `None` or no longer kept),
/// oldest first.
pub fn unposted<'a>(entry: &'a Entry, last: Option<&EventView>) -> Vec<&'a EventView> {
    let all: Vec<&EventView> = entry.events.iter().collect();
    let from = match last {
        None => 0,
        Some(l) => match all.iter().rposition(|e| *e == l) {
            Some(i) => i + 1,
            None => all
                .iter()
                .position(|e| e.time > l.time)
                .unwrap_or(all.len()),
        },
    };
    all[from..].to_vec()
}

fn kube_time(t: crate::time::Time) -> Option<KubeTime> {
    k8s_openapi::jiff::Timestamp::from_millisecond(t.0)
        .ok()
        .map(KubeTime)
}

/// The Event of record `e` (the `n`-th posted at its time) on the Rollout `o`.
pub fn event(o: &DynamicObject, e: &EventView, n: usize) -> Event {
    let name = o.metadata.name.clone().unwrap_or_default();
    let warning = matches!(
        e.reason,
        Reason::RolloutAborted
            | Reason::ProgressDeadlineExceeded
            | Reason::AnalysisRunFailed
            | Reason::AnalysisRunError
            | Reason::AnalysisRunInconclusive
    );
    let millis = u64::try_from(e.time.0).unwrap_or(0);
    Event {
        metadata: ObjectMeta {
            // unique as client-go makes them: the object's name and a time in hex
            name: Some(format!("{name}.{:x}", millis * 1000 + n as u64)),
            namespace: o.metadata.namespace.clone(),
            ..ObjectMeta::default()
        },
        involved_object: ObjectReference {
            api_version: Some(API_VERSION.to_owned()),
            kind: Some("Rollout".to_owned()),
            name: Some(name),
            namespace: o.metadata.namespace.clone(),
            uid: o.metadata.uid.clone(),
            resource_version: o.metadata.resource_version.clone(),
            ..ObjectReference::default()
        },
        reason: Some(e.reason.as_str().to_owned()),
        message: Some(e.message.clone()),
        type_: Some(if warning { "Warning" } else { "Normal" }.to_owned()),
        first_timestamp: kube_time(e.time),
        last_timestamp: kube_time(e.time),
        count: Some(1),
        source: Some(EventSource {
            component: Some(COMPONENT.to_owned()),
            host: None,
        }),
        reporting_component: Some(COMPONENT.to_owned()),
        ..Event::default()
    }
}

/// The record an Event was made of.
pub fn record_of(e: &Event) -> Option<EventView> {
    let reason: Reason =
        serde_json::from_value(serde_json::Value::String(e.reason.clone()?)).ok()?;
    Some(EventView {
        time: crate::time::Time(e.last_timestamp.as_ref()?.0.as_millisecond()),
        reason,
        message: e.message.clone()?,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::time::Time;

    fn entry(n: i64) -> Entry {
        let mut e = Entry::default();
        for i in 0..n {
            e.record(
                Time(1_000 + i),
                Reason::RolloutStepCompleted,
                &format!("step {i}"),
            );
        }
        e
    }

    #[test]
    fn each_record_is_posted_once_in_order() {
        let e = entry(3);
        assert_eq!(unposted(&e, None).len(), 3);
        let last = e.events[1].clone();
        let rest = unposted(&e, Some(&last));
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].message, "step 2");
        assert!(unposted(&e, e.events.back()).is_empty());
        // the last posted one no longer kept: everything newer than it
        let gone = EventView {
            time: Time(1_000),
            reason: Reason::Command,
            message: "trimmed".into(),
        };
        assert_eq!(unposted(&e, Some(&gone)).len(), 2);
    }

    #[test]
    fn an_abort_is_a_warning_on_the_rollout() {
        let o: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "sluice.dev/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "chip", "namespace": "shop", "uid": "u-1"}
        }))
        .unwrap();
        let e = EventView {
            time: Time(1_800_000_000_000),
            reason: Reason::RolloutAborted,
            message: "aborted".into(),
        };
        let v = serde_json::to_value(event(&o, &e, 0)).unwrap();
        assert_eq!(v["type"], "Warning");
        assert_eq!(v["reason"], "RolloutAborted");
        assert_eq!(v["involvedObject"]["kind"], "Rollout");
        assert_eq!(v["involvedObject"]["uid"], "u-1");
        assert_eq!(v["metadata"]["namespace"], "shop");
        assert_eq!(v["lastTimestamp"], "2027-01-15T08:00:00Z");
        assert_eq!(record_of(&event(&o, &e, 0)), Some(e));
    }
}
