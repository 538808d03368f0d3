//! The control API: proxies poll for routes and report; people and tools list, watch and
//! command rollouts. Who may do what is [`super::auth`]'s: with credentials configured, a
//! command needs the operator token, and a poll, a report or an unsubscribe needs a token
//! covering the proxy id it names (the operator's covers every id) — a forged report could
//! promote a bad canary, and a poll renews a lease. The credential is checked from the head
//! before any body is read; bodies, connections and idle time are bounded by the listener
//! ([`sluice_io::listener`]). Reads that change nothing are open.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::json;
use sluice_api::FieldError;
use sluice_api::parse::parse_json;
use sluice_api::protocol::{Report, Unsubscribe};
use sluice_io::listener::ApiLimits;

use super::auth::{Caller, Credentials};
use super::hub::{CounterWindow, Hub, ReportRefused};
use super::service::RolloutService;
use crate::Error;
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
    /// The operator and proxy credentials.
    pub credentials: Credentials,
}

/// The API as a router (tested without a socket as well as on loopback); bodies are read
/// within `limits`, after the credential is checked.
pub fn router(state: Arc<ApiState>, limits: ApiLimits) -> Router {
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
        .route("/v1/rollouts/{name}/history", get(history))
        .route("/v1/rollouts/{name}/proxies", get(rollout_proxies))
        .route("/v1/auth", get(auth))
        .route("/v1/rollouts/{name}/set-image", post(set_image))
        .route("/v1/rollouts/{name}/{command}", post(command))
        .layer(axum::middleware::from_fn_with_state(
            limits,
            sluice_io::listener::buffer_body,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authorize,
        ))
        .with_state(state)
}

/// Whether a request head presents a valid credential (for the listener's connection cap).
pub fn credentialed(state: &Arc<ApiState>) -> sluice_io::listener::Credentialed {
    let state = state.clone();
    Arc::new(move |headers| state.credentials.identify(headers).is_known())
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({"error": message.into()}))).into_response()
}

fn unauthorized(message: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        axum::Json(json!({"error": message})),
    )
        .into_response()
}

/// Middleware: names the caller for the handlers, and refuses from the head (before any body
/// is read) a write without a credential, and a command without the operator's.
async fn authorize(
    State(s): State<Arc<ApiState>>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let caller = s.credentials.identify(req.headers());
    let read = matches!(*req.method(), http::Method::GET | http::Method::HEAD);
    if !read {
        if !caller.is_known() {
            return unauthorized("a valid bearer token is required");
        }
        if req.uri().path().starts_with("/v1/rollouts/") && caller != Caller::Operator {
            return error(
                StatusCode::FORBIDDEN,
                "a proxy token cannot command rollouts: the operator token is required",
            );
        }
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

/// `None` when `caller` may act as proxy `id`; the 401 or 403 otherwise.
/// A 400 for an id that is not a name: no caller, not even the operator, adds such a proxy.
fn refuse_as_proxy(caller: &Caller, id: &str) -> Option<Response> {
    if !sluice_api::limits::valid_name(id) {
        return Some(error(
            StatusCode::BAD_REQUEST,
            format!("proxy: {}", sluice_api::limits::NAME_RULE),
        ));
    }
    match caller {
        _ if caller.may_act_as(id) => None,
        Caller::Anonymous => Some(unauthorized(&format!(
            "acting as proxy {id:?} needs a token that covers it"
        ))),
        _ => Some(error(
            StatusCode::FORBIDDEN,
            format!("this token does not cover proxy {id:?}"),
        )),
    }
}

#[derive(Debug, Deserialize)]
struct RoutesQuery {
    proxy: Option<String>,
    #[serde(default)]
    after: u64,
    #[serde(default)]
    wait: Option<u64>,
    /// With `applied`: the proxy's instance (as in its reports).
    #[serde(default)]
    instance: Option<String>,
    /// The table generation this instance applied (its acknowledgement).
    #[serde(default)]
    applied: Option<u64>,
}

async fn routes(
    State(s): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<RoutesQuery>,
) -> Response {
    // polling as a proxy renews its lease: only with a credential that covers it
    if let Some(p) = &q.proxy {
        if let Some(refused) = refuse_as_proxy(&caller, p) {
            return refused;
        }
        s.hub.polled(p, Time::now());
    }
    match (&q.proxy, &q.instance, q.applied) {
        (_, None, None) => {}
        (Some(p), Some(instance), Some(g)) => {
            if let Err(e) = s.hub.acknowledged(p, instance, g, Time::now()) {
                return invalid(&[e]);
            }
        }
        (None, _, _) => {
            return invalid(&[FieldError::new(
                "proxy",
                "missing: an acknowledgement names its proxy",
            )]);
        }
        (Some(_), None, Some(_)) => {
            return invalid(&[FieldError::new(
                "instance",
                "missing: an acknowledgement names the proxy's instance",
            )]);
        }
        (Some(_), Some(_), None) => {
            return invalid(&[FieldError::new(
                "applied",
                "missing: the generation the instance applied",
            )]);
        }
    }
    let wait = q
        .wait
        .map_or(MAX_WAIT, |w| Duration::from_secs(w).min(MAX_WAIT));
    match s.hub.wait_newer(q.after, wait).await {
        Some(snapshot) => axum::Json(snapshot).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    }
}

/// A 400 naming every invalid field.
fn invalid(fields: &[sluice_api::FieldError]) -> Response {
    let message = fields
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    let fields: Vec<_> = fields
        .iter()
        .map(|f| json!({"path": f.path, "reason": f.reason}))
        .collect();
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"error": message, "fields": fields})),
    )
        .into_response()
}

/// The 400 for a body that did not parse.
fn unparsed(e: sluice_api::Error) -> Response {
    invalid(e.fields())
}

async fn report(
    State(s): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Response {
    let r: Report = match parse_json(&body) {
        Ok(r) => r,
        Err(e) => return unparsed(e),
    };
    if let Some(refused) = refuse_as_proxy(&caller, &r.proxy) {
        return refused;
    }
    match s.hub.report(r, Time::now()) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(ReportRefused::Invalid(fields)) => invalid(&fields),
        Err(ReportRefused::NoEarlierReport) => (
            StatusCode::CONFLICT,
            axum::Json(json!({
                "error": "changes_only: no earlier report of this instance here; send every pair",
            })),
        )
            .into_response(),
    }
}

async fn unsubscribe(
    State(s): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Response {
    let u: Unsubscribe = match parse_json(&body) {
        Ok(u) => u,
        Err(e) => return unparsed(e),
    };
    if let Some(refused) = refuse_as_proxy(&caller, &u.proxy) {
        return refused;
    }
    s.hub.unsubscribe(&u, Time::now());
    StatusCode::NO_CONTENT.into_response()
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
    axum::Json(json!({
        "route": q.route,
        "revision": q.revision,
        "requests": totals.requests(),
        "byClass": totals.by_class,
        "errors": totals.errors,
        "inFlight": in_flight,
        "windowSeconds": span,
        "successRate": totals.success_rate(),
        "errorRate": totals.error_rate(),
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

/// Who the presented credential makes the caller, so that a dashboard knows whether it
/// may act; `open` when the controller has no credentials at all.
async fn auth(State(s): State<Arc<ApiState>>, Extension(caller): Extension<Caller>) -> Response {
    let who = match caller {
        Caller::Operator => "operator",
        Caller::Proxy(_) => "proxy",
        Caller::Anonymous => "anonymous",
    };
    axum::Json(json!({"caller": who, "open": s.credentials.is_open()})).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    /// How far back, seconds (10 to 900; 300 by default).
    seconds: Option<u64>,
    /// Seconds between points (1 to 60; 2 by default).
    step: Option<u64>,
}

async fn history(
    State(s): State<Arc<ApiState>>,
    Path(name): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> Response {
    let Some(view) = s.rollouts.get(&name) else {
        return error(StatusCode::NOT_FOUND, format!("no rollout named {name:?}"));
    };
    let now = Time::now();
    let back = Duration::from_secs(q.seconds.unwrap_or(300).clamp(10, 900));
    let step = Duration::from_secs(q.step.unwrap_or(2).clamp(1, 60));
    let since = Time(now.0 - i64::try_from(back.as_millis()).unwrap_or(0));
    axum::Json(super::figures::history(&s.hub, &view, since, step, now)).into_response()
}

async fn rollout_proxies(State(s): State<Arc<ApiState>>, Path(name): Path<String>) -> Response {
    let Some(view) = s.rollouts.get(&name) else {
        return error(StatusCode::NOT_FOUND, format!("no rollout named {name:?}"));
    };
    axum::Json(super::figures::proxy_weights(&s.hub, &view, Time::now())).into_response()
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

/// The one place an error of the controller becomes a status code.
fn service_error(e: Error) -> Response {
    let status = match &e {
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::Refused(_) => StatusCode::CONFLICT,
        Error::Invalid(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, e.to_string())
}

async fn command(
    State(s): State<Arc<ApiState>>,
    Path((name, command)): Path<(String, String)>,
    body: Bytes,
) -> Response {
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
                    Err(e) => return unparsed(e),
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
    body: Bytes,
) -> Response {
    let b: SetImageBody = match parse_json(&body) {
        Ok(b) => b,
        Err(e) => return unparsed(e),
    };
    match s.rollouts.set_image(&name, &b.container, &b.image).await {
        Ok(message) => axum::Json(json!({"message": message})).into_response(),
        Err(e) => service_error(e),
    }
}
