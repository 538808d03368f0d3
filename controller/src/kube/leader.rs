//! Leader election carried out: each round reads the Lease, takes the [`super::lease`]
//! decision and writes it at the resourceVersion it read (create when there is none), so two
//! candidates deciding at once cannot both win. A candidate waits until it leads; a leader
//! renews every [`RETRY`] and gives up the lead when it could not renew within
//! [`Elector::renew_deadline`] — well before the lease expires for the others — so two
//! leaders never act at once.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch};

use super::lease::{self, Decision};
use crate::Error;
use crate::time::Time;

/// The label that tells the leader's pod from the others: the control API's Service selects
/// `"true"`, so proxies and the CLI reach the leader alone.
pub const LEADER_LABEL: &str = "sluice.dev/leader";

/// Labels this candidate's pod `leading` or not (a merge patch of its labels).
pub async fn mark(pods: &Api<Pod>, pod: &str, leading: bool) -> Result<(), Error> {
    let patch = serde_json::json!({"metadata": {"labels": {LEADER_LABEL: leading.to_string()}}});
    pods.patch(pod, &super::params::patch_params(), &Patch::Merge(patch))
        .await
        .map(drop)
        .map_err(|e| Error::Unreachable(format!("cannot label pod {pod}: {e}")))
}

/// How often a candidate looks again and a leader renews.
pub const RETRY: Duration = Duration::from_secs(2);

/// One candidate for the lead.
pub struct Elector {
    api: Api<Lease>,
    name: String,
    me: String,
    duration: Duration,
}

impl Elector {
    /// Candidate `me` for Lease `name`, held for `duration` at a time.
    pub fn new(api: Api<Lease>, name: &str, me: &str, duration: Duration) -> Self {
        Self {
            api,
            name: name.to_owned(),
            me: me.to_owned(),
            duration,
        }
    }

    /// Who this candidate is.
    pub fn identity(&self) -> &str {
        &self.me
    }

    /// How long a leader may go without renewing before it gives up the lead: two thirds
    /// of the lease, as client-go's defaults (10 s of 15 s).
    pub fn renew_deadline(&self) -> Duration {
        self.duration * 2 / 3
    }

    /// One round at `now`: `Ok(true)` when this candidate leads after it, `Ok(false)` when
    /// another does (or won the race to write).
    pub async fn round(&self, now: Time) -> Result<bool, Error> {
        let unreachable = |e: kube::Error| Error::Unreachable(format!("lease {}: {e}", self.name));
        let read = self.api.get_opt(&self.name).await.map_err(unreachable)?;
        match lease::decide(read.as_ref(), &self.me, now) {
            Decision::Follow { .. } => Ok(false),
            Decision::Take | Decision::Renew => {
                let mut ours = lease::held(read.as_ref(), &self.me, self.duration, now);
                ours.metadata.name = Some(self.name.clone());
                let pp = super::params::post_params();
                let written = match read {
                    None => self.api.create(&pp, &ours).await,
                    Some(_) => self.api.replace(&self.name, &pp, &ours).await,
                };
                match written {
                    Ok(_) => Ok(true),
                    // another candidate wrote first
                    Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                    Err(e) => Err(unreachable(e)),
                }
            }
        }
    }

    /// Waits until this candidate leads.
    pub async fn acquire(&self) {
        loop {
            match self.round(Time::now()).await {
                Ok(true) => {
                    tracing::info!(identity = %self.me, lease = %self.name, "leading");
                    return;
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "cannot take part in the election"),
            }
            tokio::time::sleep(RETRY).await;
        }
    }

    /// Renews the lead until it cannot within the renew deadline; returns then.
    pub async fn keep(&self) {
        let mut renewed = Time::now();
        loop {
            tokio::time::sleep(RETRY).await;
            let now = Time::now();
            match self.round(now).await {
                Ok(true) => renewed = now,
                Ok(false) => {
                    tracing::error!(identity = %self.me, "another controller leads now");
                    return;
                }
                Err(e) => tracing::warn!(error = %e, "cannot renew the lead"),
            }
            if now.since(renewed) >= self.renew_deadline() {
                tracing::error!(identity = %self.me, "could not renew the lead in time");
                return;
            }
        }
    }
}
