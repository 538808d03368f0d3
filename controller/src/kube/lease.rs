//! Leader election over a `coordination.k8s.io` Lease, as client-go's leader election decides
//! it (kube-runtime has none): a candidate takes a lease that is missing, released or expired,
//! renews one it holds, and follows one another holds until it expires. The write that
//! carries the decision out replaces the Lease at the resourceVersion that was read, so two
//! candidates deciding at once cannot both win: the second write is refused (409) and that
//! candidate reads again. Pure: the lease as read, who we are and the time are inputs.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

use crate::time::Time;

/// What a candidate does with the lease it read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Write the lease as ours (it was missing, released, or expired under another holder).
    Take,
    /// Write the lease again as ours, with a new renew time.
    Renew,
    /// Another candidate leads until then; look again by that time.
    Follow {
        /// The leader.
        leader: String,
        /// When its lease expires if it does not renew it.
        until: Time,
    },
}

fn millis(t: &MicroTime) -> Time {
    Time(t.0.as_millisecond())
}

fn micro(t: Time) -> MicroTime {
    MicroTime(
        k8s_openapi::jiff::Timestamp::from_millisecond(t.0)
            .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
    )
}

/// The decision of candidate `me` at `now` on `lease` (`None`: there is none yet).
pub fn decide(lease: Option<&Lease>, me: &str, now: Time) -> Decision {
    let Some(spec) = lease.and_then(|l| l.spec.as_ref()) else {
        return Decision::Take;
    };
    let holder = spec.holder_identity.as_deref().unwrap_or_default();
    if holder.is_empty() {
        return Decision::Take;
    }
    if holder == me {
        return Decision::Renew;
    }
    let duration =
        Duration::from_secs(u64::try_from(spec.lease_duration_seconds.unwrap_or(0)).unwrap_or(0));
    let renewed = spec
        .renew_time
        .as_ref()
        .or(spec.acquire_time.as_ref())
        .map(millis);
    match renewed {
        Some(at) if now < at.plus(duration) => Decision::Follow {
            leader: holder.to_owned(),
            until: at.plus(duration),
        },
        _ => Decision::Take,
    }
}

/// The lease to write for a [`Decision::Take`] or [`Decision::Renew`] of `me`: the read one's
/// metadata (so the write is refused if another candidate wrote since), held by `me`.
pub fn held(read: Option<&Lease>, me: &str, duration: Duration, now: Time) -> Lease {
    let mut lease = read.cloned().unwrap_or_default();
    let old = lease.spec.take().unwrap_or_default();
    let ours = old.holder_identity.as_deref() == Some(me);
    let transitions = old.lease_transitions.unwrap_or(0);
    lease.spec = Some(LeaseSpec {
        holder_identity: Some(me.to_owned()),
        lease_duration_seconds: Some(i32::try_from(duration.as_secs()).unwrap_or(i32::MAX)),
        acquire_time: if ours {
            old.acquire_time
        } else {
            Some(micro(now))
        },
        renew_time: Some(micro(now)),
        lease_transitions: Some(if ours || old.holder_identity.is_none() {
            transitions
        } else {
            transitions + 1
        }),
        ..old
    });
    lease
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const T0: Time = Time(1_800_000_000_000); // 2027-01-15T08:00:00Z

    fn lease(holder: &str, renewed: &str) -> Lease {
        serde_json::from_value(json!({
            "metadata": {"name": "sluice-controller", "namespace": "sluice", "resourceVersion": "41"},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15,
                     "acquireTime": "2027-01-15T07:00:00.000000Z", "renewTime": renewed,
                     "leaseTransitions": 3}
        }))
        .unwrap()
    }

    #[test]
    fn a_candidate_takes_what_nobody_holds_renews_its_own_and_follows_a_live_leader() {
        assert_eq!(decide(None, "a", T0), Decision::Take);
        let live = lease("b", "2027-01-15T08:00:00.000000Z");
        assert_eq!(decide(Some(&live), "b", T0), Decision::Renew);
        assert_eq!(
            decide(Some(&live), "a", T0.plus(Duration::from_secs(14))),
            Decision::Follow {
                leader: "b".into(),
                until: T0.plus(Duration::from_secs(15))
            }
        );
        assert_eq!(
            decide(Some(&live), "a", T0.plus(Duration::from_secs(15))),
            Decision::Take,
            "expired"
        );
        let released = lease("", "2027-01-15T08:00:00.000000Z");
        assert_eq!(decide(Some(&released), "a", T0), Decision::Take);
    }

    #[test]
    fn the_written_lease_keeps_the_read_version_and_counts_a_change_of_leader() {
        let read = lease("b", "2027-01-15T07:59:00.000000Z");
        let taken = held(Some(&read), "a", Duration::from_secs(15), T0);
        let v = serde_json::to_value(&taken).unwrap();
        assert_eq!(v["metadata"]["resourceVersion"], "41");
        assert_eq!(v["spec"]["holderIdentity"], "a");
        assert_eq!(v["spec"]["leaseTransitions"], 4);
        assert_eq!(v["spec"]["acquireTime"], "2027-01-15T08:00:00.000000Z");
        assert_eq!(v["spec"]["renewTime"], "2027-01-15T08:00:00.000000Z");
        let renewed = held(
            Some(&taken),
            "a",
            Duration::from_secs(15),
            T0.plus(Duration::from_secs(5)),
        );
        let v = serde_json::to_value(&renewed).unwrap();
        assert_eq!(
            v["spec"]["leaseTransitions"], 4,
            "renewing is no transition"
        );
        assert_eq!(v["spec"]["acquireTime"], "2027-01-15T08:00:00.000000Z");
        assert_eq!(v["spec"]["renewTime"], "2027-01-15T08:00:05.000000Z");
        let first = held(None, "a", Duration::from_secs(15), T0);
        assert_eq!(first.spec.unwrap().lease_transitions, Some(0));
    }
}
