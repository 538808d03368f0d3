//! The admin API, on its own listener (loopback by default): read and replace the route table,
//! change one route's weight, and read health, metrics and statistics.
//!
//! Writes need `Authorization: Bearer TOKEN` when a token is configured (compared in constant
//! time), checked from the head before any body is read. A bad body gets 400 with every
//! invalid field named, and the running table is kept. The listener's limits are
//! [`sluice_io::listener`]'s.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::RouteTable;
use crate::config::parse_json;
use crate::error::{ClientErrorKind, Error, UpstreamErrorKind};
use crate::state::Shared;
use crate::telemetry::stats::{self, Totals, WINDOWS};
use sluice_api::table::TableSpec;
use sluice_io::listener::ApiLimits;

/// The admin API as a router (tested without a socket). Every request that is not a read
/// must present the token before its body is read; bodies are read within `limits`.
pub fn router(shared: Arc<Shared>, limits: ApiLimits) -> Router {
    Router::new()
        .route("/routes", get(get_routes).put(put_routes))
        .route("/routes/{name}/weight", put(put_weight))
        .route("/metrics", get(get_metrics))
        .route("/stats", get(get_stats))
        .route("/log-level", put(put_log_level))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .layer(axum::middleware::from_fn_with_state(
            limits,
            sluice_io::listener::buffer_body,
        ))
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            authorize,
        ))
        .with_state(shared)
}

/// Whether a request head presents the admin token (for the listener's connection cap).
pub fn credentialed(shared: &Shared) -> sluice_io::listener::Credentialed {
    let token = shared.admin_token.clone();
    Arc::new(move |headers| token.as_ref().is_some_and(|t| bearer_matches(headers, t)))
}

/// Middleware: a write without the token is refused from its head, its body never read.
async fn authorize(
    State(shared): State<Arc<Shared>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let read = matches!(*req.method(), http::Method::GET | http::Method::HEAD);
    if !read && let Some(denied) = refuse_unauthorized(&shared, req.headers()) {
        return denied;
    }
    next.run(req).await
}

/// An API error: status and a JSON body naming the problem.
struct ApiError(Error);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let fields: Vec<_> = match &self.0 {
            Error::Invalid(fs) => fs
                .iter()
                .map(|f| json!({"path": f.path, "reason": f.reason}))
                .collect(),
            _ => Vec::new(),
        };
        let body = json!({"error": self.0.to_string(), "fields": fields});
        (self.0.status(), axum::Json(body)).into_response()
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        Self(e)
    }
}

pub use sluice_io::token::bearer_matches;

/// `None` when the request may write; otherwise the 401 to answer.
fn refuse_unauthorized(shared: &Shared, headers: &HeaderMap) -> Option<Response> {
    let token = shared.admin_token.as_ref()?;
    if bearer_matches(headers, token) {
        return None;
    }
    Some(
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            axum::Json(json!({"error": "a valid bearer token is required for writes"})),
        )
            .into_response(),
    )
}

async fn get_routes(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(shared.table().spec().clone()).into_response()
}

#[derive(Serialize)]
struct Applied {
    generations: std::collections::BTreeMap<String, u64>,
}

fn applied(table: &RouteTable) -> Applied {
    Applied {
        generations: table
            .routes()
            .iter()
            .map(|r| (r.name.clone(), r.generation))
            .collect(),
    }
}

async fn put_routes(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    if shared.is_controlled() {
        return ApiError(Error::Conflict(
            "this proxy is subscribed to a controller, which owns its route table".into(),
        ))
        .into_response();
    }
    let result = async {
        let spec: TableSpec = parse_json(&body)?;
        let table = shared.apply(spec).await?;
        tracing::info!(
            routes = table.routes().len(),
            "route table replaced through the admin API"
        );
        Ok::<_, Error>(axum::Json(applied(&table)).into_response())
    };
    result.await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "route table refused");
        ApiError(e).into_response()
    })
}

/// Body of `PUT /routes/{name}/weight`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightUpdate {
    /// New canary weight.
    pub weight: u32,
    /// New total, if it changes.
    #[serde(default)]
    pub total: Option<u32>,
}

async fn put_weight(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    if shared.is_controlled() {
        return ApiError(Error::Conflict(
            "this proxy is subscribed to a controller, which owns its route table".into(),
        ))
        .into_response();
    }
    let result = async {
        let update: WeightUpdate = parse_json(&body)?;
        let table = shared
            .set_weight(&name, update.weight, update.total)
            .await?;
        let route = table
            .route(&name)
            .ok_or_else(|| Error::UnknownRoute(name.clone()))?;
        Ok::<_, Error>(
            axum::Json(json!({
                "route": route.name,
                "generation": route.generation,
                "weight": route.weight,
                "total": route.total,
            }))
            .into_response(),
        )
    };
    result.await.unwrap_or_else(|e| ApiError(e).into_response())
}

/// Body of `PUT /log-level`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogLevel {
    /// A tracing filter, e.g. `debug` or `info,sluice_proxy=trace`.
    pub filter: String,
}

async fn put_log_level(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let level: LogLevel = match parse_json(&body) {
        Ok(l) => l,
        Err(e) => return ApiError(e.into()).into_response(),
    };
    let Some(control) = shared.log_control.get() else {
        return (
            StatusCode::NOT_IMPLEMENTED,
            axum::Json(json!({"error": "this process's logging cannot be changed at run time"})),
        )
            .into_response();
    };
    match control(&level.filter) {
        Ok(()) => {
            tracing::warn!(filter = %level.filter, "log filter changed through the admin API");
            axum::Json(json!({"filter": level.filter})).into_response()
        }
        Err(e) => ApiError(Error::invalid("filter", e)).into_response(),
    }
}

async fn get_metrics(State(shared): State<Arc<Shared>>) -> Response {
    match &shared.prometheus {
        Some(h) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            h.render(),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "metrics are not enabled\n").into_response(),
    }
}

async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    if shared.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n").into_response()
    } else if !shared.is_ready() {
        (StatusCode::SERVICE_UNAVAILABLE, "no route table yet\n").into_response()
    } else {
        "ready\n".into_response()
    }
}

#[derive(Serialize)]
struct StatsView {
    uptime_seconds: u64,
    routes: Vec<RouteStats>,
    workers: Vec<crate::telemetry::workers::WorkerFigures>,
}

#[derive(Serialize)]
struct RouteStats {
    name: String,
    generation: u64,
    weight: u32,
    total: u32,
    backends: Vec<BackendStats>,
}

#[derive(Serialize)]
struct BackendStats {
    name: String,
    role: &'static str,
    windows: std::collections::BTreeMap<String, WindowView>,
    total: WindowView,
}

#[derive(Serialize)]
struct WindowView {
    requests: u64,
    by_class: std::collections::BTreeMap<&'static str, u64>,
    errors: std::collections::BTreeMap<&'static str, u64>,
    client_errors: std::collections::BTreeMap<&'static str, u64>,
    latency_seconds: std::collections::BTreeMap<&'static str, Option<f64>>,
}

fn window_view(t: &Totals) -> WindowView {
    WindowView {
        requests: t.requests(),
        by_class: (0..stats::CLASSES)
            .map(|i| (stats::class_label(i), t.by_class[i]))
            .collect(),
        errors: UpstreamErrorKind::ALL
            .iter()
            .map(|k| (k.label(), t.errors[k.index()]))
            .collect(),
        client_errors: ClientErrorKind::ALL
            .iter()
            .map(|k| (k.label(), t.client_errors[k.index()]))
            .collect(),
        latency_seconds: [("p50", 0.5), ("p90", 0.9), ("p99", 0.99)]
            .into_iter()
            .map(|(n, q)| (n, t.quantile_seconds(q)))
            .collect(),
    }
}

async fn get_stats(State(shared): State<Arc<Shared>>) -> Response {
    let table = shared.table();
    let now = shared.now_sec();
    let routes = table
        .routes()
        .iter()
        .map(|r| RouteStats {
            name: r.name.clone(),
            generation: r.generation,
            weight: r.weight,
            total: r.total,
            backends: r
                .targets
                .iter()
                .enumerate()
                .map(|(i, t)| BackendStats {
                    name: t.backend.name.clone(),
                    role: if Some(i) == r.canary_index() {
                        "canary"
                    } else if i == r.stable_index() {
                        "stable"
                    } else {
                        "rule"
                    },
                    windows: WINDOWS
                        .iter()
                        .map(|w| {
                            (
                                format!("{w}s"),
                                window_view(&t.telemetry.stats.window(now, *w)),
                            )
                        })
                        .collect(),
                    total: window_view(&t.telemetry.stats.totals()),
                })
                .collect(),
        })
        .collect();
    axum::Json(StatsView {
        uptime_seconds: now,
        routes,
        workers: shared.workers.figures(),
    })
    .into_response()
}
