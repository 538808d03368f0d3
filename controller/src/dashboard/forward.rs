//! `sluice dashboard`: the page served from this machine, its API calls (`/v1/…`) forwarded
//! to a controller's control API and the answers streamed back (the rollout view's live
//! events included). Request bodies are read whole first, within [`MAX_BODY`]; the bearer
//! token the page sends goes through as it came and is kept nowhere.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;

use crate::Error;

/// Largest request body forwarded.
pub const MAX_BODY: usize = 1 << 20;

/// Headers that belong to one connection, not to the request.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

/// Where the API calls go.
#[derive(Clone)]
pub struct Upstream {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Upstream {
    /// The controller at `server` (`http://HOST:PORT`).
    pub fn new(server: &str) -> Result<Self, Error> {
        let uri: Uri = server
            .parse()
            .map_err(|e| Error::field("--server", format!("{server:?} is not a URL: {e}")))?;
        if uri.scheme_str() != Some("http") || uri.authority().is_none() {
            return Err(Error::field(
                "--server",
                format!("{server:?}: the control API's address, as http://HOST:PORT"),
            ));
        }
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        connector.set_nodelay(true);
        Ok(Self {
            base: server.trim_end_matches('/').to_owned(),
            client: Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector),
        })
    }
}

fn refusal(status: StatusCode, message: String) -> Response {
    (status, axum::Json(serde_json::json!({"error": message}))).into_response()
}

async fn forward(State(up): State<Upstream>, req: Request) -> Response {
    let path = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    if !(path.starts_with("/v1/") || path == "/healthz") {
        return refusal(StatusCode::NOT_FOUND, format!("nothing at {path}"));
    }
    let (head, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return refusal(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()),
    };
    let mut out = http::Request::builder()
        .method(head.method)
        .uri(format!("{}{path}", up.base));
    for (k, v) in &head.headers {
        if !HOP_BY_HOP.contains(&k.as_str()) {
            out = out.header(k, v);
        }
    }
    let Ok(out) = out.body(Full::new(body)) else {
        return refusal(
            StatusCode::BAD_REQUEST,
            "a request that cannot be forwarded".into(),
        );
    };
    match up.client.request(out).await {
        Ok(resp) => {
            let (mut parts, body) = resp.into_parts();
            for h in HOP_BY_HOP {
                parts.headers.remove(h);
            }
            Response::from_parts(parts, Body::new(body))
        }
        Err(e) => refusal(
            StatusCode::BAD_GATEWAY,
            format!("cannot reach the controller at {}: {e}", up.base),
        ),
    }
}

/// The page, and every API call forwarded to `up`.
pub fn router(up: Upstream) -> Router {
    super::router()
        .fallback(forward)
        .with_state(up)
        .layer(axum::middleware::map_response(
            |mut r: Response| async move {
                r.headers_mut()
                    .entry(header::X_CONTENT_TYPE_OPTIONS)
                    .or_insert(http::HeaderValue::from_static("nosniff"));
                r
            },
        ))
}
