//! One exchange with one endpoint: the request addressed to it (HTTP/1.1 on the endpoint's
//! own kept connections, the other protocols through the general client), the endpoint's
//! in-flight count and health, and the blame of a failure the client's body caused.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{HOST, HeaderName};
use http::uri::{PathAndQuery, Scheme};
use http::{Request, Response, Uri};
use http_body_util::{Either, Full};

use crate::downstream::client_body::BodyWatch;
use crate::downstream::headers;
use crate::error::Error;
use crate::state::Shared;
use crate::upstream::balance::InFlight;
use crate::upstream::endpoint::Endpoint;
use crate::upstream::{ResponseBody, UpstreamBody};
use crate::{Backend, Target};

/// `x-forwarded-host`: the client's host, for HTTP/2 upstreams.
static FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// One exchange with one endpoint; records its outcome in the endpoint's health. A failure
/// that `watch` (the streamed body's) blames on the client comes back as
/// [`Error::Client`] and is not the endpoint's. With `pass`, an HTTP/1.1 response's fields
/// may be kept as they came (see [`send`]).
pub async fn attempt(
    shared: &Shared,
    target: &Target,
    endpoint: &Arc<Endpoint>,
    req: &mut Request<UpstreamBody>,
    forward: headers::ToForward<'_>,
    watch: Option<&BodyWatch>,
    pass: bool,
) -> Result<Response<ResponseBody>, Error> {
    let backend = &target.backend;
    let taken = std::mem::replace(req, Request::new(Either::Right(Full::new(Bytes::new()))));
    let in_flight = InFlight::start(endpoint);
    let result = send(shared, backend, endpoint, taken, forward, pass).await;
    drop(in_flight);
    if let (Err(e), Some(w)) = (&result, watch)
        && let Some(kind) = w.blame(e)
    {
        return Err(Error::Client {
            kind,
            detail: e.to_string(),
        });
    }
    let failed = match &result {
        Ok(resp) => matches!(resp.status().as_u16(), 502..=504),
        Err(_) => true,
    };
    if let Err(Error::Upstream { kind, .. }) = &result {
        target.telemetry.upstream_failed(*kind);
    }
    if failed {
        let now_ms = shared.now_ms();
        let others = backend
            .endpoints
            .iter()
            .any(|e| !Arc::ptr_eq(e, endpoint) && e.health.available(now_ms));
        if endpoint
            .health
            .failure(now_ms, &shared.settings.ejection, others)
        {
            tracing::warn!(backend = %backend.name, endpoint = %endpoint.authority, "endpoint ejected after consecutive failures");
        }
    } else {
        endpoint.health.success();
    }
    result
}

/// Sends a request to one endpoint of a backend: on the endpoint's own kept connections for
/// HTTP/1.1, through the general client (addressed by URI) for the other protocols. With
/// `pass`, an HTTP/1.1 response's end-to-end fields are kept as they came, in its body and not
/// in its map, when its head allows it: for an answer the own HTTP/1.1 server writes.
pub async fn send(
    shared: &Shared,
    backend: &Backend,
    endpoint: &Arc<Endpoint>,
    mut req: Request<UpstreamBody>,
    forward: headers::ToForward<'_>,
    pass: bool,
) -> Result<Response<ResponseBody>, Error> {
    if backend.protocol == sluice_api::table::UpstreamProtocol::Http1 {
        return shared.upstreams.send_h1(endpoint, req, forward, pass).await;
    }
    forward.apply(req.headers_mut());
    if matches!(
        backend.protocol,
        sluice_api::table::UpstreamProtocol::H2c | sluice_api::table::UpstreamProtocol::H2
    ) {
        // an HTTP/2 request carries its authority once, as `:authority` (the endpoint's,
        // which the client connects and pools by); the client's host goes on as
        // `X-Forwarded-Host`, never as a `host` that disagrees (RFC 9113 §8.3.1)
        if let Some(host) = req.headers_mut().remove(HOST) {
            req.headers_mut().entry(&FORWARDED_HOST).or_insert(host);
        }
    }
    address(&mut req, &endpoint.authority, backend.protocol)?;
    // boxed, so that its state does not weigh on the HTTP/1.1 path's futures
    Box::pin(
        shared
            .upstreams
            .send(backend.protocol, backend.spec.tls.as_ref(), req),
    )
    .await
}

/// Points the request at an endpoint, keeping its path and query.
fn address(
    req: &mut Request<UpstreamBody>,
    authority: &http::uri::Authority,
    protocol: sluice_api::table::UpstreamProtocol,
) -> Result<(), Error> {
    let pq = req
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(match protocol {
        sluice_api::table::UpstreamProtocol::Https | sluice_api::table::UpstreamProtocol::H2 => {
            Scheme::HTTPS
        }
        _ => Scheme::HTTP,
    });
    parts.authority = Some(authority.clone());
    parts.path_and_query = Some(pq);
    *req.uri_mut() = Uri::from_parts(parts).map_err(|e| Error::invalid("uri", e.to_string()))?;
    Ok(())
}
