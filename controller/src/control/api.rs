//! The control API: proxies poll for routes and report; people and tools list, watch and
//! command rollouts. Every state-changing call needs the bearer token (compared in constant
//! time, never logged) when one is configured — reports included, since a forged report could
//! promote a bad canary.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::json;
use sluice_proxy::config::parse_json;
use sluice_proxy::control::protocol::{Report, Unsubscribe};

use super::hub::Hub;
use super::service::{RolloutService, ServiceError};
use crate::commands::Command;
use crate::time::Time;

/// Longest long poll.
const MAX_WAIT: Duration = Duration::from_secs(30);

/// Shared by every handler.
pub struct ApiState {
    /// The proxies' hub.
    pub hub: Arc<Hub>,
    /// The rollouts.
    pub rollouts: Arc<dyn RolloutService>,
    /// Bearer token for state-changing calls.
    pub token: Option<String>,
}

/// The API as a router (tested without a socket as well as on loopback).
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/v1/routes", get(routes))
        .route("/v1/report", post(report))
        .route("/v1/unsubscribe", post(unsubscribe))
        .route("/v1/proxies", get(proxies))
        .route("/v1/events", get(events))
        .route("/v1/acks", get(acks))
        .route("/v1/stats", get(stats))
        .route("/v1/rollouts", get(list))
        .route("/v1/rollouts/{name}", get(get_one))
        .route("/v1/rollouts/{name}/watch", get(watch))
        .route("/v1/rollouts/{name}/set-image", post(set_image))
        .route("/v1/rollouts/{name}/{command}", post(command))
        .with_state(state)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({"error": message.into()}))).into_response()
}

/// `None` when allowed; the 401 otherwise.
fn refuse_unauthorized(state: &ApiState, headers: &HeaderMap) -> Option<Response> {
    let token = state.token.as_ref()?;
    if sluice_proxy::admin::bearer_matches(headers, token) {
        None
    } else {
        Some(
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                axum::Json(json!({"error": "a valid bearer token is required"})),
            )
                .into_response(),
        )
    }
}

#[derive(Debug, Deserialize)]
struct RoutesQuery {
    proxy: Option<String>,
    #[serde(default)]
    after: u64,
    #[serde(default)]
    wait: Option<u64>,
}

async fn routes(State(s): State<Arc<ApiState>>, Query(q): Query<RoutesQuery>) -> Response {
    if let Some(p) = &q.proxy {
        s.hub.polled(p, Time::now());
    }
    let wait = q
        .wait
        .map_or(MAX_WAIT, |w| Duration::from_secs(w).min(MAX_WAIT));
    match s.hub.wait_newer(q.after, wait).await {
        Some(snapshot) => axum::Json(snapshot).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    }
}

async fn report(State(s): State<Arc<ApiState>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(denied) = refuse_unauthorized(&s, &headers) {
        return denied;
    }
    match parse_json::<Report>(&body) {
        Ok(r) => {
            s.hub.report(r, Time::now());
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

async fn unsubscribe(State(s): State<Arc<ApiState>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(denied) = refuse_unauthorized(&s, &headers) {
        return denied;
    }
    match parse_json::<Unsubscribe>(&body) {
        Ok(u) => {
            s.hub.unsubscribe(&u, Time::now());
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

async fn proxies(State(s): State<Arc<ApiState>>) -> Response {
    axum::Json(s.hub.proxies(Time::now())).into_response()
}

async fn acks(State(s): State<Arc<ApiState>>) -> Response {
    axum::Json(s.hub.ack_latencies()).into_response()
}

async fn events(State(s): State<Arc<ApiState>>) -> Response {
    axum::Json(s.hub.events()).into_response()
}

#[derive(Debug, Deserialize)]
struct StatsQuery {
    route: String,
    revision: String,
    /// Seconds; since start when absent.
    window: Option<u64>,
}

async fn stats(State(s): State<Arc<ApiState>>, Query(q): Query<StatsQuery>) -> Response {
    let (totals, span, in_flight) = match q.window {
        Some(w) => {
            let (t, span) =
                s.hub
                    .window(&q.route, &q.revision, Duration::from_secs(w), Time::now());
            let (_, f) = s.hub.merged(&q.route, &q.revision);
            (t, Some(span.as_secs_f64()), f)
        }
        None => {
            let (t, f) = s.hub.merged(&q.route, &q.revision);
            (t, None, f)
        }
    };
    let requests = totals.requests();
    let errors = totals.by_class[4];
    axum::Json(json!({
        "route": q.route,
        "revision": q.revision,
        "requests": requests,
        "byClass": totals.by_class,
        "errors": totals.errors,
        "inFlight": in_flight,
        "windowSeconds": span,
        "successRate": (requests > 0).then(|| 1.0 - errors as f64 / requests as f64),
        "errorRate": (requests > 0).then(|| errors as f64 / requests as f64),
        "p50": totals.quantile_seconds(0.5),
        "p90": totals.quantile_seconds(0.9),
        "p99": totals.quantile_seconds(0.99),
        "buckets": totals.buckets,
    }))
    .into_response()
}

async fn list(State(s): State<Arc<ApiState>>) -> Response {
    axum::Json(s.rollouts.list()).into_response()
}

async fn get_one(State(s): State<Arc<ApiState>>, Path(name): Path<String>) -> Response {
    match s.rollouts.get(&name) {
        Some(v) => axum::Json(v).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no rollout named {name:?}")),
    }
}

async fn watch(State(s): State<Arc<ApiState>>, Path(name): Path<String>) -> Response {
    if s.rollouts.get(&name).is_none() {
        return error(StatusCode::NOT_FOUND, format!("no rollout named {name:?}"));
    }
    Sse::new(watch_stream(s, name))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(10)))
        .into_response()
}

fn watch_stream(s: Arc<ApiState>, name: String) -> impl Stream<Item = Result<Event, Infallible>> {
    let mut changes = s.rollouts.changes();
    async_stream(move |tx| async move {
        let mut last = None;
        loop {
            let view = s.rollouts.get(&name);
            let Some(view) = view else { break };
            let text = serde_json::to_string(&view).unwrap_or_default();
            if last.as_ref() != Some(&text) {
                if tx
                    .send(Ok(Event::default().event("rollout").data(text.clone())))
                    .await
                    .is_err()
                {
                    break;
                }
                last = Some(text);
            }
            // wake on a change, and at least every second (figures move on their own)
            let _ = tokio::time::timeout(Duration::from_secs(1), changes.changed()).await;
        }
    })
}

/// A stream fed by a task through a channel (no macro crate needed).
fn async_stream<F, Fut>(f: F) -> impl Stream<Item = Result<Event, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<Event, Infallible>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(f(tx));
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UndoBody {
    to_revision: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SetImageBody {
    container: String,
    image: String,
}

fn service_error(e: ServiceError) -> Response {
    let status = match &e {
        ServiceError::NotFound(_) => StatusCode::NOT_FOUND,
        ServiceError::Refused(_) => StatusCode::CONFLICT,
        ServiceError::Invalid(_) => StatusCode::BAD_REQUEST,
        ServiceError::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, e.to_string())
}

async fn command(
    State(s): State<Arc<ApiState>>,
    Path((name, command)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(denied) = refuse_unauthorized(&s, &headers) {
        return denied;
    }
    let cmd = match command.as_str() {
        "promote" => Command::Promote,
        "promote-full" => Command::PromoteFull,
        "abort" => Command::Abort,
        "retry" => Command::Retry,
        "pause" => Command::Pause,
        "resume" => Command::Resume,
        "undo" => {
            let to_revision = if body.iter().all(u8::is_ascii_whitespace) {
                None
            } else {
                match parse_json::<UndoBody>(&body) {
                    Ok(b) => b.to_revision,
                    Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
                }
            };
            Command::Undo { to_revision }
        }
        other => {
            return error(
                StatusCode::NOT_FOUND,
                format!(
                    "no command {other:?} (promote, promote-full, abort, retry, pause, resume, undo, set-image)"
                ),
            );
        }
    };
    match s.rollouts.command(&name, cmd).await {
        Ok(message) => axum::Json(json!({"message": message})).into_response(),
        Err(e) => service_error(e),
    }
}

async fn set_image(
    State(s): State<Arc<ApiState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(denied) = refuse_unauthorized(&s, &headers) {
        return denied;
    }
    let b: SetImageBody = match parse_json(&body) {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    match s.rollouts.set_image(&name, &b.container, &b.image).await {
        Ok(message) => axum::Json(json!({"message": message})).into_response(),
        Err(e) => service_error(e),
    }
}
