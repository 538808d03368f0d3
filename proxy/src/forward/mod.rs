//! The request path: check framing, route, decide, pick an endpoint, forward, record. One
//! table load per request, no locks, no panics; every failure becomes a response through
//! [`Error::status`]. A request with no body whose connection to an endpoint could not be
//! made is tried once more on another endpoint of the same backend (nothing reached the
//! first). Failures feed each endpoint's ejection state.

pub mod body;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{CONNECTION, HOST, HeaderName, HeaderValue, UPGRADE};
use http::uri::{PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri};
use http_body::Body as _;
use http_body_util::{BodyExt as _, Either, Full};
use hyper::body::Incoming;

use crate::Target;
use crate::downstream::client_body::{BodyWatch, ClientBody};
use crate::downstream::headers;
use crate::error::{ClientErrorKind, Error, UpstreamErrorKind};
use crate::route::decide;
use crate::state::Shared;
use crate::upstream::balance::{self, InFlight};
use crate::upstream::endpoint::Endpoint;
use crate::upstream::{ResponseBody, UpstreamBody};

pub use crate::forward::body::ProxyBody;

/// `x-sluice-backend`: which backend served (opt-in per route).
pub static BACKEND_HEADER: HeaderName = HeaderName::from_static("x-sluice-backend");
/// `x-forwarded-host`: the client's host, for HTTP/2 upstreams.
static FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
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
fn closing(mut resp: Response<ProxyBody>) -> Response<ProxyBody> {
    resp.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// Who a connection's requests come from, worked out once per connection.
#[derive(Debug)]
pub struct Downstream {
    /// The client's address.
    pub addr: SocketAddr,
    /// The forwarding header values for this client.
    pub forwarding: headers::Forwarding,
}

impl Downstream {
    /// A client at `addr` speaking `proto` ("http" or "https").
    pub fn new(addr: SocketAddr, proto: &'static str) -> Self {
        Downstream {
            addr,
            forwarding: headers::Forwarding::new(addr.ip(), proto),
        }
    }
}

/// Handles one request from `downstream`.
pub async fn handle(
    shared: Arc<Shared>,
    downstream: Arc<Downstream>,
    mut req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let started = Instant::now();
    let client = downstream.addr;
    if let Err(why) = headers::check_framing(req.headers())
        .and_then(|()| headers::check_host(req.version(), req.uri(), req.headers()))
    {
        return Ok(refuse_framing(client, why));
    }
    let table = shared.table();
    let Some((route, decision)) = decide::route(&table, req.uri(), req.headers()) else {
        return Ok(error_response(&Error::NoRoute));
    };
    let Some(target) = route.targets.get(decision.target) else {
        return Ok(error_response(&Error::NoRoute));
    };
    let backend = &target.backend;
    let now_ms = shared.now_ms();
    let Some(endpoint) =
        balance::pick_available(&backend.endpoints, now_ms, |n| rand::random_range(0..n))
    else {
        let e = Error::Upstream {
            kind: UpstreamErrorKind::NoEndpoint,
            detail: backend.name.clone(),
        };
        target
            .telemetry
            .upstream_failed(UpstreamErrorKind::NoEndpoint);
        target.telemetry.record(
            shared.sec_of(started),
            e.status().as_u16(),
            None,
            Some(UpstreamErrorKind::NoEndpoint),
        );
        return Ok(error_response(&e));
    };

    let method = req.method().clone();
    // kept for the access log only: the request's URI is rewritten for the upstream
    let path = shared
        .settings
        .access_log
        .then(|| req.uri().path().to_owned());
    let upgrade = upgrade_protocol(&req);
    // HTTP/2 extended CONNECT (RFC 8441, WebSocket over HTTP/2): tunnelled to an HTTP/2 backend
    let extended_connect = req.method() == http::Method::CONNECT
        && req.extensions().get::<hyper::ext::Protocol>().is_some();
    if extended_connect
        && !matches!(
            backend.protocol,
            sluice_api::table::UpstreamProtocol::H2c | sluice_api::table::UpstreamProtocol::H2
        )
    {
        return Ok(error_response(&Error::Upstream {
            kind: UpstreamErrorKind::Protocol,
            detail: "extended CONNECT needs an HTTP/2 backend".into(),
        }));
    }
    let client_upgrade =
        (upgrade.is_some() || extended_connect).then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers);
    if let Some(proto) = &upgrade {
        parts
            .headers
            .insert(CONNECTION, HeaderValue::from_static("upgrade"));
        parts.headers.insert(UPGRADE, proto.clone());
    }
    let s = &shared.settings;
    let trusted = s.trusted.iter().any(|c| c.contains(client.ip()));
    let append = trusted && s.forwarded == crate::config::ForwardedMode::Append;
    // set by the client that sends the request (the HTTP/1.1 one writes them as it writes
    // the head)
    let forward = headers::ToForward {
        forwarding: &downstream.forwarding,
        append,
    };
    // the upstream is told the host the request was routed by: an absolute-form target's
    // or HTTP/2's authority replaces `Host` (RFC 9112 §3.2.2)
    if let Some(a) = parts.uri.authority()
        && let Ok(v) = HeaderValue::from_str(a.as_str())
    {
        parts.headers.insert(HOST, v);
    }
    // the body is held (empty, or small on a failover route) when the request may be sent again
    let to_canary = route.failover.is_some() && Some(decision.target) == route.canary_index();
    let mirror = route.mirror.as_ref().filter(|m| {
        upgrade.is_none() && !extended_connect && m.wants(&method, parts.uri.path(), &parts.headers)
    });
    let hold_limit = [
        to_canary.then(|| route.failover.as_ref().map_or(0, |f| f.max_replay_bytes)),
        mirror.map(|m| m.max_body_bytes),
    ]
    .into_iter()
    .flatten()
    .max();
    let (replay, streamed): (Option<Bytes>, Option<Incoming>) = if body.is_end_stream() {
        (Some(Bytes::new()), None)
    } else if upgrade.is_none()
        && content_length(&parts.headers)
            .zip(hold_limit)
            .is_some_and(|(n, limit)| n <= limit)
    {
        let limit = shared.upstreams.request_timeout();
        let failed = match tokio::time::timeout(limit, body.collect()).await {
            Ok(Ok(b)) => Ok(b.to_bytes()),
            Ok(Err(e)) => Err(Error::Client {
                kind: ClientErrorKind::BodyBroken,
                detail: e.to_string(),
            }),
            Err(_) => Err(Error::Client {
                kind: ClientErrorKind::BodyTimeout,
                detail: format!("the body was not sent whole within {limit:?}"),
            }),
        };
        match failed {
            Ok(b) => (Some(b), None),
            Err(e) => return Ok(client_failed(&shared, route, target, client, started, &e)),
        }
    } else {
        (None, Some(body))
    };
    // a streamed body is watched, so that a failure it causes is blamed on the client
    let watch = streamed.as_ref().map(|_| Arc::new(BodyWatch::default()));
    let may_resend =
        upgrade.is_none() && !extended_connect && (backend.endpoints.len() > 1 || to_canary);
    let head = (replay.is_some() && (may_resend || mirror.is_some())).then(|| {
        (
            parts.method.clone(),
            parts.uri.clone(),
            parts.version,
            parts.headers.clone(),
        )
    });
    let again = |body: &Bytes| {
        head.as_ref().map(|(m, u, v, h)| {
            let mut r = Request::new(Either::Right(Full::new(body.clone())));
            *r.method_mut() = m.clone();
            *r.uri_mut() = u.clone();
            *r.version_mut() = *v;
            *r.headers_mut() = h.clone();
            r
        })
    };
    let first_body: UpstreamBody = match (streamed, &replay) {
        (Some(body), _) => Either::Left(ClientBody::new(body, watch.clone().unwrap_or_default())),
        (None, Some(b)) => Either::Right(Full::new(b.clone())),
        (None, None) => Either::Right(Full::new(Bytes::new())),
    };
    let mut req = Request::from_parts(parts, first_body);
    if let Some(m) = mirror
        && let Some(bytes) = &replay
        && bytes.len() as u64 <= m.max_body_bytes
        && let Some(copy) = again(bytes)
    {
        match m.in_flight.try_take() {
            Some(permit) => {
                if let Some(t) = route.targets.get(m.target) {
                    tokio::spawn(mirror_copy(
                        shared.clone(),
                        t.backend.clone(),
                        t.telemetry.clone(),
                        copy,
                        (downstream.clone(), append),
                        permit,
                    ));
                }
            }
            None => {
                tracing::debug!(route = %route.name, "mirror copy skipped: too many in flight")
            }
        }
    }

    let mut endpoint = endpoint.clone();
    let mut result = attempt(
        &shared,
        target,
        &endpoint,
        &mut req,
        forward,
        watch.as_deref(),
    )
    .await;
    // a connection that could not be made: another endpoint of the same backend
    if matches!(
        &result,
        Err(Error::Upstream {
            kind: UpstreamErrorKind::Connect,
            ..
        })
    ) && let Some(mut retry) = replay.as_ref().and_then(again)
        && let Some(other) = balance::pick_available(
            &backend
                .endpoints
                .iter()
                .filter(|e| !Arc::ptr_eq(e, &endpoint))
                .cloned()
                .collect::<Vec<_>>(),
            shared.now_ms(),
            |n| rand::random_range(0..n),
        )
        .cloned()
    {
        tracing::debug!(backend = %backend.name, from = %endpoint.authority, to = %other.authority, "connect failed; trying another endpoint");
        endpoint = other;
        result = attempt(&shared, target, &endpoint, &mut retry, forward, None).await;
    }
    // failover: the canary failed the request; stable gets it, the canary keeps the failure
    let mut target = target;
    if to_canary
        && let Some(fo) = &route.failover
        && let Some(stable) = route.stable_target()
    {
        let canary_failed = match &result {
            Err(Error::Upstream {
                kind: UpstreamErrorKind::Connect,
                ..
            }) => true,
            Ok(r) => {
                fo.statuses.contains(&r.status().as_u16()) && fo.safe_methods.contains(&method)
            }
            Err(_) => false,
        };
        if canary_failed
            && let Some(mut retry) = replay.as_ref().and_then(again)
            && let Some(stable_endpoint) =
                balance::pick_available(&stable.backend.endpoints, shared.now_ms(), |n| {
                    rand::random_range(0..n)
                })
                .cloned()
        {
            let elapsed = started.elapsed();
            let (status, kind) = match &result {
                Ok(r) => (r.status().as_u16(), None),
                Err(e @ Error::Upstream { kind, .. }) => (e.status().as_u16(), Some(*kind)),
                Err(e) => (e.status().as_u16(), None),
            };
            target.telemetry.record(
                shared.sec_of(started + elapsed),
                status,
                Some(elapsed),
                kind,
            );
            tracing::info!(route = %route.name, canary = %backend.name, status, "canary failed; request sent to stable");
            target = stable;
            endpoint = stable_endpoint;
            result = attempt(&shared, target, &endpoint, &mut retry, forward, None).await;
        }
    }
    let backend = &target.backend;

    let elapsed = started.elapsed();
    let now = shared.sec_of(started + elapsed);
    let mut resp = match result {
        Ok(mut resp)
            if client_upgrade.is_some()
                && (resp.status() == StatusCode::SWITCHING_PROTOCOLS
                    || (extended_connect && resp.status() == StatusCode::OK)) =>
        {
            target
                .telemetry
                .record(now, resp.status().as_u16(), None, None);
            let upstream_upgrade = hyper::upgrade::on(&mut resp);
            if let Some(client_upgrade) = client_upgrade {
                tokio::spawn(tunnel(
                    client_upgrade,
                    upstream_upgrade,
                    target.telemetry.clone(),
                    route.name.clone(),
                ));
            }
            // the 101 keeps its Connection and Upgrade headers
            let mut resp = resp.map(ProxyBody::Upstream);
            if route.debug_headers {
                let h = resp.headers_mut();
                h.insert(&BACKEND_HEADER, backend.name_header.clone());
                h.insert(&GENERATION_HEADER, route.generation_header.clone());
            }
            return Ok(resp);
        }
        Ok(resp) if crate::forward::body::is_grpc(resp.headers()) => {
            // recorded when the gRPC status is known (trailers, or this head)
            let head_status = crate::forward::body::grpc_status(resp.headers());
            let (telemetry, errors) = (target.telemetry.clone(), route.grpc_errors.clone());
            let epoch = shared.epoch();
            resp.map(|b| {
                ProxyBody::Grpc(crate::forward::body::GrpcBody::new(
                    b,
                    epoch,
                    telemetry,
                    started,
                    head_status,
                    errors,
                ))
            })
        }
        Ok(resp) => {
            target
                .telemetry
                .record(now, resp.status().as_u16(), Some(elapsed), None);
            resp.map(ProxyBody::Upstream)
        }
        Err(e @ Error::Client { .. }) => {
            return Ok(client_failed(&shared, route, target, client, started, &e));
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
    if shared.settings.access_log {
        tracing::info!(
            target: "access",
            client = %client.ip(),
            method = %method,
            path = %path.as_deref().unwrap_or_default(),
            status = resp.status().as_u16(),
            route = %route.name,
            backend = %backend.name,
            endpoint = %endpoint.authority,
            micros = elapsed.as_micros() as u64,
            "request"
        );
    }
    Ok(resp)
}

/// Counts a request the client failed itself under its own label, never as the backend's,
/// and answers it (400 or 408); the connection closes after the answer.
fn client_failed(
    shared: &Shared,
    route: &crate::Route,
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

/// Sends a copy to the mirror backend; its answer is read to the end, measured and dropped.
async fn mirror_copy(
    shared: Arc<Shared>,
    backend: Arc<crate::Backend>,
    telemetry: Arc<crate::telemetry::metrics::PairTelemetry>,
    req: Request<UpstreamBody>,
    (downstream, append): (Arc<Downstream>, bool),
    _permit: crate::route::table::CopyPermit,
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
    let result = send(&shared, &backend, &endpoint, req, forward).await;
    let elapsed = started.elapsed();
    match result {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let _ = resp.into_body().collect().await;
            telemetry.record(
                shared.sec_of(started + elapsed),
                status,
                Some(elapsed),
                None,
            );
        }
        Err(e) => {
            let kind = match &e {
                Error::Upstream { kind, .. } => Some(*kind),
                _ => None,
            };
            if let Some(k) = kind {
                telemetry.upstream_failed(k);
            }
            telemetry.record(
                shared.sec_of(started + elapsed),
                e.status().as_u16(),
                Some(elapsed),
                kind,
            );
        }
    }
}

/// The request's `Content-Length`, when it has one.
fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// The protocol an HTTP/1.1 request asks to upgrade to (`Connection: upgrade` and `Upgrade`).
fn upgrade_protocol(req: &Request<Incoming>) -> Option<HeaderValue> {
    let h = req.headers();
    let asks = h
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    if asks && req.version() == http::Version::HTTP_11 {
        h.get(UPGRADE).cloned()
    } else {
        None
    }
}

/// Copies bytes both ways between an upgraded client connection and its upstream, counted as
/// an open upgraded connection of the backend while it lasts.
async fn tunnel(
    client: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
    telemetry: Arc<crate::telemetry::metrics::PairTelemetry>,
    route: String,
) {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(pair) => pair,
        Err(e) => {
            tracing::debug!(route = %route, error = %e, "upgrade did not complete");
            return;
        }
    };
    let _open = telemetry.upgraded();
    let mut client = hyper_util::rt::TokioIo::new(client);
    let mut upstream = hyper_util::rt::TokioIo::new(upstream);
    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        tracing::debug!(route = %route, error = %e, "upgraded connection ended with an error");
    }
}

/// One exchange with one endpoint; records its outcome in the endpoint's health. A failure
/// that `watch` (the streamed body's) blames on the client comes back as
/// [`Error::Client`] and is not the endpoint's.
async fn attempt(
    shared: &Shared,
    target: &Target,
    endpoint: &Arc<Endpoint>,
    req: &mut Request<UpstreamBody>,
    forward: headers::ToForward<'_>,
    watch: Option<&BodyWatch>,
) -> Result<Response<ResponseBody>, Error> {
    let backend = &target.backend;
    let taken = std::mem::replace(req, Request::new(Either::Right(Full::new(Bytes::new()))));
    let in_flight = InFlight::start(endpoint);
    let result = send(shared, backend, endpoint, taken, forward).await;
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
/// HTTP/1.1, through the general client (addressed by URI) for the other protocols.
async fn send(
    shared: &Shared,
    backend: &crate::Backend,
    endpoint: &Arc<Endpoint>,
    mut req: Request<UpstreamBody>,
    forward: headers::ToForward<'_>,
) -> Result<Response<ResponseBody>, Error> {
    if backend.protocol == sluice_api::table::UpstreamProtocol::Http1 {
        return shared.upstreams.send_h1(endpoint, req, forward).await;
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
