//! The request path: route, decide, pick an endpoint, forward, record. One table load per
//! request, no locks, no panics; every failure becomes a response through [`Error::status`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{HOST, HeaderName, HeaderValue};
use http::uri::{PathAndQuery, Scheme};
use http::{Request, Response, Uri};
use http_body_util::{Either, Full};
use hyper::body::Incoming;

use crate::balance::{self, InFlight};
use crate::error::{Error, UpstreamErrorKind};
use crate::headers;
use crate::router;
use crate::state::Shared;

/// The body of every response the proxy sends: the upstream's, streamed, or its own.
pub type ProxyBody = Either<Incoming, Full<Bytes>>;

/// `x-sluice-backend`: which backend served (opt-in per route).
pub static BACKEND_HEADER: HeaderName = HeaderName::from_static("x-sluice-backend");
/// `x-sluice-generation`: which route generation decided (opt-in per route).
pub static GENERATION_HEADER: HeaderName = HeaderName::from_static("x-sluice-generation");

/// Handles one request from `client`.
pub async fn handle(
    shared: Arc<Shared>,
    client: SocketAddr,
    mut req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let started = Instant::now();
    let table = shared.table();
    let host = router::request_host(req.uri(), req.headers());
    let Some(route) = router::select(&table, host, req.uri().path()) else {
        return Ok(error_response(&Error::NoRoute));
    };
    let decision = router::decide(route, host, req.headers());
    let Some(target) = route.targets.get(decision.target) else {
        return Ok(error_response(&Error::NoRoute));
    };
    let backend = &target.backend;
    let endpoint = balance::pick(&backend.endpoints, |n| rand::random_range(0..n));
    let Some(endpoint) = endpoint else {
        let e = Error::Upstream {
            kind: UpstreamErrorKind::NoEndpoint,
            detail: backend.name.clone(),
        };
        target.telemetry.record(
            shared.sec_of(started),
            e.status().as_u16(),
            None,
            Some(UpstreamErrorKind::NoEndpoint),
        );
        return Ok(error_response(&e));
    };

    if let Err(e) = address(&mut req, &endpoint.authority) {
        return Ok(error_response(&e));
    }
    headers::strip_hop_by_hop(req.headers_mut());
    headers::add_forwarded(req.headers_mut(), client.ip(), "http");

    let in_flight = InFlight::start(endpoint);
    let result = shared.upstreams.send(backend.protocol, req).await;
    drop(in_flight);
    let elapsed = started.elapsed();
    let now = shared.sec_of(started + elapsed);
    let mut resp = match result {
        Ok(resp) => {
            target
                .telemetry
                .record(now, resp.status().as_u16(), Some(elapsed), None);
            resp.map(Either::Left)
        }
        Err(e) => {
            let kind = match &e {
                Error::Upstream { kind, .. } => Some(*kind),
                _ => None,
            };
            tracing::warn!(route = %route.name, backend = %backend.name, endpoint = %endpoint.authority, error = %e, "upstream failed");
            target
                .telemetry
                .record(now, e.status().as_u16(), Some(elapsed), kind);
            error_response(&e)
        }
    };
    headers::strip_hop_by_hop(resp.headers_mut());
    if route.debug_headers {
        let h = resp.headers_mut();
        h.insert(&BACKEND_HEADER, backend.name_header.clone());
        h.insert(&GENERATION_HEADER, route.generation_header.clone());
    }
    Ok(resp)
}

/// Points the request at an endpoint, keeping its path, query and host.
fn address(req: &mut Request<Incoming>, authority: &http::uri::Authority) -> Result<(), Error> {
    if !req.headers().contains_key(HOST)
        && let Some(a) = req.uri().authority()
        && let Ok(v) = HeaderValue::from_str(a.as_str())
    {
        req.headers_mut().insert(HOST, v);
    }
    let pq = req
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = Some(authority.clone());
    parts.path_and_query = Some(pq);
    *req.uri_mut() = Uri::from_parts(parts).map_err(|e| Error::invalid("uri", e.to_string()))?;
    Ok(())
}

/// The proxy's own answer for an error.
pub fn error_response(e: &Error) -> Response<ProxyBody> {
    let mut resp = Response::new(Either::Right(Full::new(Bytes::from(format!(
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
