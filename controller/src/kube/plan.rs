//! What the cluster must be told so that it shows a rollout's state, as the writes that get it
//! there from what the watches hold: each revision's ReplicaSet created or scaled to the
//! replicas the engine recorded (new ones first, then the Services, then scale-downs and
//! deletions of revisions the engine dropped, as Argo Rollouts orders them so that no role is
//! ever left without pods), Argo's `scale-down-deadline` annotation on a revision waiting for
//! its scale-down (removed when it serves again), each managed Service's selector, and the Rollout's status with
//! Argo's replica counts — written only when it differs. An invalid rollout gets
//! `phase: Degraded` and an `InvalidSpec` condition and nothing else: its ReplicaSets stay as
//! they are. Pure: objects in, writes out.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Service;
use kube::api::DynamicObject;
use serde_json::{Value, json};

use super::patch::merge_patch;
use super::replicaset::{self, HASH_LABEL};
use super::services;
use super::world::status_of;
use crate::reconcile::Entry;
use crate::spec::Rollout;
use crate::spec::rollout::RolloutResource;
use crate::status::{
    Condition, ConditionReason, ConditionStatus, ConditionType, Phase, RolloutStatus,
};
use crate::time::Time;

/// One write to the API server.
#[derive(Debug, Clone)]
pub enum Write {
    /// Create a revision's ReplicaSet.
    CreateReplicaSet(Box<ReplicaSet>),
    /// Set a ReplicaSet's `spec.replicas`.
    ScaleReplicaSet {
        /// Its name.
        name: String,
        /// The replicas.
        replicas: i32,
    },
    /// Merge-patch the metadata of a ReplicaSet's pod template (the role's labels).
    PatchPodTemplate {
        /// The ReplicaSet.
        name: String,
        /// The merge patch of `spec.template.metadata`.
        patch: Value,
    },
    /// Merge-patch a pod's metadata (the role's labels, in place).
    PatchPod {
        /// The pod.
        name: String,
        /// The merge patch of `metadata`.
        patch: Value,
    },
    /// Delete a pod (a restart asked by `spec.restartAt`; its ReplicaSet makes a new one).
    DeletePod {
        /// Its name.
        name: String,
    },
    /// Scale the Deployment a `workloadRef` points at down.
    ScaleDeployment {
        /// Its name.
        name: String,
        /// The replicas.
        replicas: i32,
    },
    /// Set (or remove) a ReplicaSet's `scale-down-deadline` annotation.
    AnnotateDeadline {
        /// Its name.
        name: String,
        /// The deadline (RFC 3339), or `None` to remove it.
        deadline: Option<String>,
    },
    /// Delete a ReplicaSet the engine no longer keeps.
    DeleteReplicaSet {
        /// Its name.
        name: String,
    },
    /// Merge-patch a Service (its selector).
    PatchService {
        /// Its name.
        name: String,
        /// The merge patch.
        patch: Value,
    },
    /// Create an analysis run's object.
    CreateAnalysisRun(Box<crate::crd::AnalysisRunResource>),
    /// Merge-patch an analysis run's status subresource.
    PatchRunStatus {
        /// The run.
        name: String,
        /// The merge patch (`{"status": …}`).
        patch: Value,
        /// The status once patched.
        shown: Box<crate::crd::AnalysisRunStatus>,
    },
    /// Post an Event on the Rollout.
    CreateEvent(Box<k8s_openapi::api::core::v1::Event>),
    /// Merge-patch the Rollout's status subresource.
    PatchStatus {
        /// The rollout.
        rollout: String,
        /// The merge patch (`{"status": …}`).
        patch: Value,
        /// The status once patched.
        shown: Box<RolloutStatus>,
    },
}

impl Write {
    /// The write in a few words, for logs.
    pub fn what(&self) -> String {
        match self {
            Self::CreateReplicaSet(rs) => format!(
                "create replicaset {}",
                rs.metadata.name.as_deref().unwrap_or_default()
            ),
            Self::ScaleReplicaSet { name, replicas } => {
                format!("scale replicaset {name} to {replicas}")
            }
            Self::DeleteReplicaSet { name } => format!("delete replicaset {name}"),
            Self::PatchPodTemplate { name, .. } => {
                format!("patch replicaset {name} pod template metadata")
            }
            Self::PatchPod { name, .. } => format!("patch pod {name} metadata"),
            Self::DeletePod { name } => format!("delete pod {name} (restart)"),
            Self::ScaleDeployment { name, replicas } => {
                format!("scale deployment {name} to {replicas}")
            }
            Self::AnnotateDeadline { name, .. } => {
                format!("annotate replicaset {name} scale-down-deadline")
            }
            Self::PatchService { name, .. } => format!("patch service {name}"),
            Self::CreateAnalysisRun(r) => format!(
                "create analysisrun {}",
                r.metadata.name.as_deref().unwrap_or_default()
            ),
            Self::PatchRunStatus { name, .. } => format!("patch analysisrun {name} status"),
            Self::PatchStatus { rollout, .. } => format!("patch rollout {rollout} status"),
            Self::CreateEvent(e) => {
                format!("post event {}", e.reason.as_deref().unwrap_or_default())
            }
        }
    }
}

/// What the planner looks at for one rollout.
pub struct Seen<'a> {
    /// The Rollout object as watched.
    pub object: &'a DynamicObject,
    /// Its spec in force (the last valid one).
    pub rollout: Option<&'a Rollout>,
    /// Why its spec as written now is invalid.
    pub invalid: Option<&'a str>,
    /// The loop's state of it.
    pub entry: Option<&'a Entry>,
    /// The ReplicaSets it owns.
    pub replica_sets: Vec<&'a ReplicaSet>,
    /// The Deployment its `workloadRef` points at, if any.
    pub deployment: Option<&'a k8s_openapi::api::apps::v1::Deployment>,
    /// The pods of those ReplicaSets.
    pub pods: Vec<&'a k8s_openapi::api::core::v1::Pod>,
    /// The Services of its namespace.
    pub services: &'a [&'a Service],
    /// Now (for conditions' transition times).
    pub now: Time,
}

/// Whether `rs` is owned (as controller) by the object with `uid`.
pub fn owned_by(rs: &ReplicaSet, uid: &str) -> bool {
    rs.metadata
        .owner_references
        .as_ref()
        .is_some_and(|o| o.iter().any(|r| r.uid == uid && r.controller == Some(true)))
}

fn hash_of(rs: &ReplicaSet) -> Option<&str> {
    rs.metadata
        .labels
        .as_ref()?
        .get(HASH_LABEL)
        .map(String::as_str)
}

/// The label selector of the rollout's pods, as `kubectl` prints one (`k=v,k2=v2`).
fn selector_text(r: &Rollout) -> Option<String> {
    let labels = match &r.spec.selector {
        Some(s) => s.match_labels.clone(),
        None => r.spec.template.as_ref()?.labels(),
    };
    (!labels.is_empty()).then(|| {
        labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    })
}

/// The status shown for an invalid rollout: what it had, Degraded, with the reason.
fn invalid_status(before: Option<RolloutStatus>, why: &str, now: Time) -> RolloutStatus {
    let mut s = before.unwrap_or_default();
    s.phase = Phase::Degraded;
    s.message = why.to_owned();
    let unchanged = s
        .conditions
        .iter()
        .any(|c| c.type_ == ConditionType::InvalidSpec && c.message == why);
    if !unchanged {
        s.conditions
            .retain(|c| c.type_ != ConditionType::InvalidSpec);
        s.conditions.push(Condition {
            type_: ConditionType::InvalidSpec,
            status: ConditionStatus::True,
            reason: ConditionReason::InvalidSpec,
            message: why.to_owned(),
            last_transition_time: now,
        });
    }
    s
}

/// The loop's status with the counts a cluster shows (Argo's fields), from the ReplicaSets.
fn shown_status(entry: &Entry, rollout: &Rollout, sets: &[&ReplicaSet]) -> RolloutStatus {
    let mut s = entry.status.clone();
    let count = |f: fn(&ReplicaSet) -> Option<i32>| sets.iter().filter_map(|r| f(r)).sum::<i32>();
    let total = count(|r| r.status.as_ref().map(|s| s.replicas));
    s.replicas = Some(total);
    s.updated_replicas = Some(
        sets.iter()
            .filter(|r| hash_of(r).is_some() && hash_of(r) == s.current_pod_hash.as_deref())
            .filter_map(|r| r.status.as_ref().map(|s| s.replicas))
            .sum(),
    );
    s.ready_replicas = Some(count(|r| r.status.as_ref().and_then(|s| s.ready_replicas)));
    s.available_replicas = Some(count(|r| {
        r.status.as_ref().and_then(|s| s.available_replicas)
    }));
    s.hpa_replicas = Some(total);
    s.selector = selector_text(rollout);
    s.conditions
        .retain(|c| c.type_ != ConditionType::InvalidSpec);
    s
}

fn status_write(name: &str, before: Option<RolloutStatus>, shown: RolloutStatus) -> Option<Write> {
    let old = serde_json::to_value(before.unwrap_or_default()).unwrap_or(Value::Null);
    let new = serde_json::to_value(&shown).unwrap_or(Value::Null);
    merge_patch(&old, &new).map(|p| Write::PatchStatus {
        rollout: name.to_owned(),
        patch: json!({ "status": p }),
        shown: Box::new(shown),
    })
}

/// What `spec.restartAt` asks now.
struct Restart {
    /// The pod to delete now, if any.
    write: Option<Write>,
    /// Every pod is newer than `restartAt` (or none is asked).
    done: bool,
}

/// `spec.restartAt`, as Argo restarts pods: once its time has come, the oldest pod created
/// before it is deleted — one at a time, and only while every other pod of the rollout is
/// Ready, so that capacity never drops by more than one; done when none is older.
fn restart(seen: &Seen<'_>, rollout: &Rollout) -> Restart {
    let Some(at) = rollout.spec.restart_at else {
        return Restart {
            write: None,
            done: false,
        };
    };
    if seen.now < at {
        return Restart {
            write: None,
            done: false,
        };
    }
    let created = |p: &k8s_openapi::api::core::v1::Pod| {
        p.metadata
            .creation_timestamp
            .as_ref()
            .map(|t| Time(t.0.as_millisecond()))
    };
    let mut older: Vec<&&k8s_openapi::api::core::v1::Pod> = seen
        .pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| created(p).is_some_and(|t| t < at))
        .collect();
    if older.is_empty() {
        return Restart {
            write: None,
            done: true,
        };
    }
    let all_ready = seen
        .pods
        .iter()
        .all(|p| super::endpoints::available(p, 0, seen.now));
    older.sort_by_key(|p| created(p));
    Restart {
        write: all_ready.then(|| Write::DeletePod {
            name: older[0].metadata.name.clone().unwrap_or_default(),
        }),
        done: false,
    }
}

/// The Deployment a `workloadRef` points at, scaled down as its `scaleDown` says — `never`;
/// `onsuccess`: to zero once the rollout is healthy on its revision; `progressively`: by as
/// many pods as the rollout's stable revision has available — and never scaled back up.
fn workload_scale_down(seen: &Seen<'_>, rollout: &Rollout, entry: &Entry) -> Option<Write> {
    use crate::spec::rollout::ScaleDown;
    let wr = rollout.spec.workload_ref.as_ref()?;
    let d = seen.deployment?;
    let now = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let st = &entry.status;
    let settled = st.stable_rs.is_some() && st.stable_rs == st.current_pod_hash;
    let wanted = match wr.scale_down {
        ScaleDown::Never => return None,
        ScaleDown::OnSuccess => (settled && st.phase == Phase::Healthy).then_some(0)?,
        ScaleDown::Progressively => {
            let stable = st.stable_rs.as_deref()?;
            let available: i32 = seen
                .replica_sets
                .iter()
                .filter(|r| hash_of(r) == Some(stable))
                .filter_map(|r| r.status.as_ref().and_then(|s| s.available_replicas))
                .sum();
            (rollout.spec.replicas.unwrap_or(1) - available).max(0)
        }
    };
    (wanted < now).then(|| Write::ScaleDeployment {
        name: wr.name.clone(),
        replicas: wanted,
    })
}

/// The patches that give each revision's pod template and pods its role's labels and
/// annotations ([`super::roles`]).
fn role_metadata(
    seen: &Seen<'_>,
    rollout: &Rollout,
    entry: &Entry,
    by_hash: &BTreeMap<&str, &ReplicaSet>,
) -> Vec<Write> {
    let mut out = Vec::new();
    for (hash, rs) in by_hash {
        let wanted = super::roles::wanted(&rollout.spec, &entry.status, hash);
        if wanted.1.is_empty() && wanted.2.is_empty() {
            continue;
        }
        let name = rs.metadata.name.clone().unwrap_or_default();
        let template = rs
            .spec
            .as_ref()
            .and_then(|s| s.template.as_ref())
            .and_then(|t| t.metadata.as_ref());
        if let Some(p) = super::roles::patch(
            template.and_then(|m| m.labels.as_ref()),
            template.and_then(|m| m.annotations.as_ref()),
            &wanted,
        ) {
            out.push(Write::PatchPodTemplate {
                name: name.clone(),
                patch: json!({"spec": {"template": {"metadata": p}}}),
            });
        }
        for pod in seen.pods.iter().filter(|p| {
            p.metadata
                .owner_references
                .as_ref()
                .is_some_and(|o| o.iter().any(|r| r.kind == "ReplicaSet" && r.name == name))
        }) {
            if let Some(p) = super::roles::patch(
                pod.metadata.labels.as_ref(),
                pod.metadata.annotations.as_ref(),
                &wanted,
            ) {
                out.push(Write::PatchPod {
                    name: pod.metadata.name.clone().unwrap_or_default(),
                    patch: json!({ "metadata": p }),
                });
            }
        }
    }
    out
}

/// Every write that brings the cluster in line with the loop's state of one rollout.
pub fn writes(seen: &Seen<'_>) -> Vec<Write> {
    let o = seen.object;
    let Some(name) = o.metadata.name.as_deref() else {
        return Vec::new();
    };
    let before = status_of(o);
    if let Some(why) = seen.invalid {
        let shown = invalid_status(before.clone(), why, seen.now);
        return status_write(name, before, shown).into_iter().collect();
    }
    let (Some(rollout), Some(entry)) = (seen.rollout, seen.entry) else {
        return Vec::new();
    };
    let by_hash: BTreeMap<&str, &ReplicaSet> = seen
        .replica_sets
        .iter()
        .filter_map(|rs| hash_of(rs).map(|h| (h, *rs)))
        .collect();
    let mut ups = Vec::new();
    let mut downs = Vec::new();
    for (hash, &replicas) in &entry.replicas {
        match by_hash.get(hash.as_str()) {
            None if replicas > 0 => {
                let Some(record) = entry.status.revision(hash) else {
                    continue;
                };
                let owner = RolloutResource {
                    metadata: kube::api::ObjectMeta {
                        name: Some(name.to_owned()),
                        namespace: o.metadata.namespace.clone(),
                        uid: o.metadata.uid.clone(),
                        ..Default::default()
                    },
                    spec: rollout.spec.clone(),
                    status: None,
                };
                if let Ok(rs) = replicaset::replica_set(
                    &owner,
                    &record.template,
                    hash,
                    record.revision,
                    replicas,
                ) {
                    ups.push(Write::CreateReplicaSet(Box::new(rs)));
                }
            }
            None => {}
            Some(rs) => {
                let now = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                if now != replicas {
                    let w = Write::ScaleReplicaSet {
                        name: rs.metadata.name.clone().unwrap_or_default(),
                        replicas,
                    };
                    if replicas > now {
                        ups.push(w)
                    } else {
                        downs.push(w)
                    }
                }
            }
        }
    }
    for (hash, rs) in &by_hash {
        let deadline = entry
            .status
            .scale_downs
            .iter()
            .find(|s| s.pod_template_hash == *hash)
            .and_then(|s| s.after)
            .and_then(|t| k8s_openapi::jiff::Timestamp::from_millisecond(t.0).ok())
            .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
        let annotated = rs
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(replicaset::SCALE_DOWN_DEADLINE_ANNOTATION))
            .cloned();
        if deadline != annotated && entry.replicas.contains_key(*hash) {
            downs.push(Write::AnnotateDeadline {
                name: rs.metadata.name.clone().unwrap_or_default(),
                deadline,
            });
        }
    }
    for (hash, rs) in &by_hash {
        if !entry.replicas.contains_key(*hash) {
            downs.push(Write::DeleteReplicaSet {
                name: rs.metadata.name.clone().unwrap_or_default(),
            });
        }
    }
    let mut out = ups;
    for (service, hash) in services::selectors(&rollout.spec, &entry.status) {
        let current = seen
            .services
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some(service.as_str()))
            .map(|s| {
                s.spec
                    .as_ref()
                    .and_then(|sp| sp.selector.as_ref())
                    .map(|sel| serde_json::to_value(sel).unwrap_or(Value::Null))
            });
        // a Service that does not exist (yet) is not written: the views say so
        if let Some(current) = current
            && let Some(patch) = services::patch(current.as_ref(), &hash)
        {
            out.push(Write::PatchService {
                name: service,
                patch,
            });
        }
    }
    out.extend(role_metadata(seen, rollout, entry, &by_hash));
    out.extend(workload_scale_down(seen, rollout, entry));
    let restart = restart(seen, rollout);
    out.extend(restart.write);
    out.extend(downs);
    let mut shown = shown_status(entry, rollout, &seen.replica_sets);
    shown.restarted_at = if restart.done {
        rollout.spec.restart_at
    } else {
        before.as_ref().and_then(|b| b.restarted_at)
    };
    out.extend(status_write(name, before, shown));
    out
}
