//! The proxy's own answers and what every answer gets on its way out: the error answers
//! (one place renders them, [`Error::status`] decides their code), the debug headers, the
//! access log line, and the answer to a request the client failed itself.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Response;
use http::header::{CONNECTION, HeaderName, HeaderValue};
use http_body_util::Full;

use super::body::ProxyBody;
use crate::error::Error;
use crate::state::Shared;
use crate::{Backend, Route, Target};

/// `x-sluice-backend`: which backend served (opt-in per route).
pub static BACKEND_HEADER: HeaderName = HeaderName::from_static("x-sluice-backend");
/// `x-sluice-generation`: which route generation decided (opt-in per route).
pub static GENERATION_HEADER: HeaderName = HeaderName::from_static("x-sluice-generation");

/// The 400 for a request whose framing or host two parsers could read differently; the
/// connection closes after it.
pub fn refuse_framing(client: SocketAddr, why: &str) -> Response<ProxyBody> {
    tracing::warn!(client = %client, why, "refused an ambiguous request");
    closing(error_response(&Error::invalid(
        "request",
        format!("refused: {why}"),
    )))
}

/// An answer after which the connection closes.
pub fn closing(mut resp: Response<ProxyBody>) -> Response<ProxyBody> {
    resp.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// The proxy's own answer for an error.
pub fn error_response(e: &Error) -> Response<ProxyBody> {
    let mut resp = Response::new(ProxyBody::Own(Full::new(Bytes::from(format!(
        "sluice: {}\n",
        match e {
            Error::Upstream { kind, .. } => format!("upstream {}", kind.label()),
            other => other.to_string(),
        }
    )))));
    *resp.status_mut() = e.status();
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// Counts a request the client failed itself under its own label, never as the backend's,
/// and answers it (400 or 408); the connection closes after the answer.
pub fn client_failed(
    shared: &Shared,
    route: &Route,
    target: &Target,
    client: SocketAddr,
    started: Instant,
    e: &Error,
) -> Response<ProxyBody> {
    if let Error::Client { kind, .. } = e {
        target
            .telemetry
            .client_failed(shared.sec_of(started), *kind);
    }
    tracing::debug!(client = %client, route = %route.name, error = %e, "the client failed its request");
    closing(error_response(e))
}

/// Adds `x-sluice-backend` and `x-sluice-generation` when the route asks for them.
pub fn debug_headers<B>(resp: &mut Response<B>, route: &Route, backend: &Backend) {
    if route.debug_headers {
        let h = resp.headers_mut();
        h.insert(&BACKEND_HEADER, backend.name_header.clone());
        h.insert(&GENERATION_HEADER, route.generation_header.clone());
    }
}

/// What the access log says of one request.
pub struct Logged<'a> {
    /// The client.
    pub client: SocketAddr,
    /// The method.
    pub method: &'a http::Method,
    /// The path as the client sent it.
    pub path: Option<&'a str>,
    /// The endpoint that answered.
    pub endpoint: &'a http::uri::Authority,
    /// How long the answer took.
    pub elapsed: Duration,
}

/// One access log line (target `access`), when the access log is on.
pub fn access_log<B>(
    shared: &Shared,
    resp: &Response<B>,
    route: &Route,
    backend: &Backend,
    l: Logged<'_>,
) {
    if shared.settings.access_log {
        tracing::info!(
            target: "access",
            client = %l.client.ip(),
            method = %l.method,
            path = %l.path.unwrap_or_default(),
            status = resp.status().as_u16(),
            route = %route.name,
            backend = %backend.name,
            endpoint = %l.endpoint,
            micros = l.elapsed.as_micros() as u64,
            "request"
        );
    }
}
