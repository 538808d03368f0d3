//! The upstream side: pooled keep-alive clients, one per protocol, so the pool is keyed by
//! (endpoint, protocol). Bodies are streamed both ways, never buffered whole.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::error::{Error, UpstreamErrorKind};
use crate::spec::UpstreamProtocol;

/// Timeouts and pool sizes for upstream connections.
#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    /// Time allowed to open a TCP connection (failures answer 502).
    pub connect_timeout: Duration,
    /// Time allowed from sending a request to the response head (failures answer 504).
    pub request_timeout: Duration,
    /// How long an idle pooled connection is kept.
    pub pool_idle_timeout: Duration,
    /// Idle connections kept per endpoint.
    pub pool_max_idle_per_endpoint: usize,
    /// When endpoints are ejected.
    pub ejection: crate::health::EjectionPolicy,
}

impl Default for UpstreamSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(60),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_endpoint: 256,
            ejection: crate::health::EjectionPolicy::default(),
        }
    }
}

/// The body sent upstream: the client's, streamed, or one held whole (empty, or small and kept
/// so that the request can be sent again).
pub type UpstreamBody = Either<Incoming, Full<Bytes>>;

/// Pooled clients for every upstream protocol.
pub struct Upstreams {
    http1: Client<HttpConnector, UpstreamBody>,
    h2c: Client<HttpConnector, UpstreamBody>,
    request_timeout: Duration,
}

impl Upstreams {
    /// Clients with these settings.
    pub fn new(s: &UpstreamSettings) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(s.connect_timeout));
        connector.enforce_http(true);
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_idle_timeout(s.pool_idle_timeout)
            .pool_max_idle_per_host(s.pool_max_idle_per_endpoint)
            .retry_canceled_requests(false)
            .set_host(false);
        let http1 = builder.build(connector.clone());
        builder.http2_only(true);
        let h2c = builder.build(connector);
        Self {
            http1,
            h2c,
            request_timeout: s.request_timeout,
        }
    }

    /// Sends `req` (already addressed to its endpoint) and waits for the response head.
    pub async fn send(
        &self,
        protocol: UpstreamProtocol,
        mut req: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, Error> {
        let fut = match protocol {
            UpstreamProtocol::Http1 => {
                *req.version_mut() = Version::HTTP_11;
                self.http1.request(req)
            }
            UpstreamProtocol::H2c => {
                *req.version_mut() = Version::HTTP_2;
                self.h2c.request(req)
            }
        };
        match tokio::time::timeout(self.request_timeout, fut).await {
            Err(_) => Err(Error::Upstream {
                kind: UpstreamErrorKind::Timeout,
                detail: format!("no response head within {:?}", self.request_timeout),
            }),
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(classify(&e)),
        }
    }
}

/// Maps a client error to its kind.
fn classify(e: &hyper_util::client::legacy::Error) -> Error {
    use std::error::Error as _;
    let detail = match e.source() {
        Some(s) => format!("{e}: {s}"),
        None => e.to_string(),
    };
    let kind = if e.is_connect() {
        UpstreamErrorKind::Connect
    } else {
        match e.source().and_then(|s| s.downcast_ref::<hyper::Error>()) {
            Some(h) if h.is_parse() || h.is_parse_status() => UpstreamErrorKind::Protocol,
            Some(h) if h.is_timeout() => UpstreamErrorKind::Timeout,
            _ => UpstreamErrorKind::Closed,
        }
    };
    Error::Upstream { kind, detail }
}
