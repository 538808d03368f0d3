//! Mirroring: a copy of a matching request goes to the mirror backend, bounded in flight;
//! its answer is read to the end, measured under that backend and dropped. A copy never
//! delays or fails the real request.

use std::sync::Arc;
use std::time::Instant;

use http::Request;
use http_body_util::BodyExt as _;

use super::record::{Outcome, record};
use super::send::send;
use crate::Route;
use crate::downstream::headers::{self, Downstream};
use crate::route::table::{CopyPermit, Mirror};
use crate::state::Shared;
use crate::telemetry::metrics::PairTelemetry;
use crate::upstream::UpstreamBody;
use crate::upstream::balance;

/// Sends `copy` to the route's mirror target in the background, unless the mirror's copies
/// in flight are at their bound (then it is skipped).
pub fn spawn_copy(
    shared: &Arc<Shared>,
    route: &Route,
    mirror: &Mirror,
    copy: Request<UpstreamBody>,
    to: (Arc<Downstream>, bool),
) {
    let Some(permit) = mirror.in_flight.try_take() else {
        tracing::debug!(route = %route.name, "mirror copy skipped: too many in flight");
        return;
    };
    if let Some(t) = route.targets.get(mirror.target) {
        tokio::spawn(mirror_copy(
            shared.clone(),
            t.backend.clone(),
            t.telemetry.clone(),
            copy,
            to,
            permit,
        ));
    }
}

/// Sends a copy to the mirror backend; its answer is read to the end, measured and dropped.
async fn mirror_copy(
    shared: Arc<Shared>,
    backend: Arc<crate::Backend>,
    telemetry: Arc<PairTelemetry>,
    req: Request<UpstreamBody>,
    (downstream, append): (Arc<Downstream>, bool),
    _permit: CopyPermit,
) {
    let forward = headers::ToForward {
        forwarding: &downstream.forwarding,
        append,
    };
    let started = Instant::now();
    let Some(endpoint) = balance::pick_available(&backend.endpoints, shared.now_ms(), |n| {
        rand::random_range(0..n)
    })
    .cloned() else {
        return;
    };
    let result = send(&shared, &backend, &endpoint, req, forward, false).await;
    let elapsed = started.elapsed();
    let outcome = Outcome::of(&result);
    if let Some(kind) = outcome.kind {
        telemetry.upstream_failed(kind);
    }
    if let Ok(resp) = result {
        let _ = resp.into_body().collect().await;
    }
    record(
        &telemetry,
        shared.sec_of(started + elapsed),
        outcome,
        Some(elapsed),
    );
}
