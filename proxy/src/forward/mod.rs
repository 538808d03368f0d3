//! The request path: check framing, route, decide, pick an endpoint, forward, record. One
//! table load per request, no locks, no panics; every failure becomes a response through
//! [`Error::status`]. A request with no body whose connection to an endpoint could not be
//! made is tried once more on another endpoint of the same backend (nothing reached the
//! first). Failures feed each endpoint's ejection state.

pub mod body;
mod hold;
mod mirror;
mod record;
pub mod respond;
mod retry;
mod send;
mod upgrade;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{CONNECTION, HOST, HeaderValue, UPGRADE};
use http::{Request, Response, StatusCode};
use http_body::Body as _;
use http_body_util::{Either, Full};

use crate::downstream::client_body::{BodyWatch, ClientBody, RequestBody};
use crate::downstream::headers::{self, Downstream};
use crate::error::{Error, UpstreamErrorKind};
use crate::route::decide;
use crate::state::Shared;
use crate::upstream::UpstreamBody;
use crate::upstream::balance::{self};

pub use crate::forward::body::ProxyBody;
use record::{Outcome, record};
pub use respond::refuse_framing;
use respond::{client_failed, error_response};
use send::attempt;
use upgrade::{tunnel, upgrade_protocol};

/// Handles one request from `downstream`.
pub async fn handle(
    shared: Arc<Shared>,
    downstream: Arc<Downstream>,
    mut req: Request<RequestBody>,
) -> Result<Response<ProxyBody>, Infallible> {
    let started = Instant::now();
    let client = downstream.addr;
    // the own HTTP/1.1 server takes a head only with its framing settled, its host as
    // `check_host` takes it and no upgrade asked (see `downstream::h1::head`); hyper's heads
    // are checked here
    let by_hyper = matches!(req.body(), RequestBody::Hyper(_));
    if by_hyper
        && let Err(why) = headers::check_framing(req.headers())
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
        record(
            &target.telemetry,
            shared.sec_of(started),
            Outcome::failed(&e),
            None,
        );
        return Ok(error_response(&e));
    };

    let method = req.method().clone();
    // kept for the access log only: the request's URI is rewritten for the upstream
    let path = shared
        .settings
        .access_log
        .then(|| req.uri().path().to_owned());
    let upgrade = by_hyper.then(|| upgrade_protocol(&req)).flatten();
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
    headers::strip_own(&mut parts.headers);
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
    let (replay, streamed): (Option<Bytes>, Option<RequestBody>) = if body.is_end_stream() {
        (Some(Bytes::new()), None)
    } else if upgrade.is_none()
        && hold::content_length(&parts.headers)
            .zip(hold_limit)
            .is_some_and(|(n, limit)| n <= limit)
    {
        match hold::read_whole(body, shared.upstreams.request_timeout()).await {
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
        mirror::spawn_copy(&shared, route, m, copy, (downstream.clone(), append));
    }

    // an answer the own HTTP/1.1 server writes may keep an HTTP/1.1 upstream's fields as they
    // came, unless fields are added to it here
    let pass = !by_hyper && !route.debug_headers;
    let mut endpoint = endpoint.clone();
    let mut result = attempt(
        &shared,
        target,
        &endpoint,
        &mut req,
        forward,
        watch.as_deref(),
        pass,
    )
    .await;
    // a connection that could not be made: another endpoint of the same backend
    if retry::not_connected(&result)
        && let Some(mut retry) = replay.as_ref().and_then(again)
        && let Some(other) = retry::other_endpoint(&backend.endpoints, &endpoint, shared.now_ms())
    {
        tracing::debug!(backend = %backend.name, from = %endpoint.authority, to = %other.authority, "connect failed; trying another endpoint");
        endpoint = other;
        result = attempt(&shared, target, &endpoint, &mut retry, forward, None, pass).await;
    }
    // failover: the canary failed the request; stable gets it, the canary keeps the failure
    let mut target = target;
    if to_canary
        && let Some(fo) = &route.failover
        && let Some(stable) = route.stable_target()
        && retry::canary_failed(fo, &method, &result)
        && let Some(mut retry) = replay.as_ref().and_then(again)
        && let Some(stable_endpoint) =
            balance::pick_available(&stable.backend.endpoints, shared.now_ms(), |n| {
                rand::random_range(0..n)
            })
            .cloned()
    {
        let elapsed = started.elapsed();
        let outcome = Outcome::of(&result);
        record(
            &target.telemetry,
            shared.sec_of(started + elapsed),
            outcome,
            Some(elapsed),
        );
        tracing::info!(route = %route.name, canary = %backend.name, status = outcome.status, "canary failed; request sent to stable");
        target = stable;
        endpoint = stable_endpoint;
        result = attempt(&shared, target, &endpoint, &mut retry, forward, None, pass).await;
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
            let outcome = Outcome::answered(resp.status().as_u16());
            record(&target.telemetry, now, outcome, None);
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
            respond::debug_headers(&mut resp, route, backend);
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
            let outcome = Outcome::answered(resp.status().as_u16());
            record(&target.telemetry, now, outcome, Some(elapsed));
            resp.map(ProxyBody::Upstream)
        }
        Err(e @ Error::Client { .. }) => {
            return Ok(client_failed(&shared, route, target, client, started, &e));
        }
        Err(e) => {
            tracing::warn!(route = %route.name, backend = %backend.name, endpoint = %endpoint.authority, error = %e, "upstream failed");
            record(&target.telemetry, now, Outcome::failed(&e), Some(elapsed));
            error_response(&e)
        }
    };
    headers::strip_hop_by_hop(resp.headers_mut());
    respond::debug_headers(&mut resp, route, backend);
    respond::access_log(
        &shared,
        &resp,
        route,
        backend,
        respond::Logged {
            client,
            method: &method,
            path: path.as_deref(),
            endpoint: &endpoint.authority,
            elapsed,
        },
    );
    Ok(resp)
}
