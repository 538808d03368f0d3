//! The upstream side. HTTP/1.1 backends are reached on each endpoint's own kept connections
//! ([`crate::upstream::h1pool`], spoken to by [`crate::upstream::h1client`]); h2c, HTTP/1.1 over TLS and HTTP/2 over TLS through pooled keep-alive
//! clients, one per protocol, so those pools are keyed by (endpoint, protocol). Bodies are
//! streamed both ways, never buffered whole.

pub mod balance;
pub mod deadline;
pub mod endpoint;
pub mod h1client;
pub mod h1pool;
pub mod health;
pub mod tls;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use http_body::{Body, Frame, SizeHint};

use crate::downstream::headers::{FORWARDING_NAMES, ToForward};
use crate::error::BodyError;
use crate::error::{Error, UpstreamErrorKind};
use crate::upstream::endpoint::Endpoint;
use h1client::SendBody;
use std::collections::HashMap;
use std::sync::Arc;

use sluice_api::table::{UpstreamProtocol, UpstreamTlsSpec};

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
    pub ejection: crate::upstream::health::EjectionPolicy,
}

impl Default for UpstreamSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(60),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_endpoint: 256,
            ejection: crate::upstream::health::EjectionPolicy::default(),
        }
    }
}

/// The body sent upstream: the client's, streamed, or one held whole (empty, or small and kept
/// so that the request can be sent again).
pub type UpstreamBody = Either<crate::downstream::client_body::ClientBody, Full<Bytes>>;

type TlsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, UpstreamBody>;
type TlsKey = (UpstreamProtocol, Option<UpstreamTlsSpec>);

/// A response body from upstream: read by hyper's clients, or by [`crate::upstream::h1client`].
#[derive(Debug)]
pub enum ResponseBody {
    /// From one of hyper's clients (h2c, TLS, upgrades).
    Hyper(Incoming),
    /// From a kept HTTP/1.1 connection of our own.
    H1(h1client::H1Body),
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            Self::Hyper(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            Self::H1(b) => Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Hyper(b) => b.is_end_stream(),
            Self::H1(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Hyper(b) => b.size_hint(),
            Self::H1(b) => b.size_hint(),
        }
    }
}

/// The bytes of a body held whole (a `Full` gives them all in its one frame, at once).
fn whole(mut full: Full<Bytes>) -> Bytes {
    let mut cx = Context::from_waker(Waker::noop());
    match Pin::new(&mut full).poll_frame(&mut cx) {
        Poll::Ready(Some(Ok(frame))) => frame.into_data().unwrap_or_default(),
        _ => Bytes::new(),
    }
}

/// Pooled clients for every upstream protocol.
pub struct Upstreams {
    http1: Client<HttpConnector, UpstreamBody>,
    h2c: Client<HttpConnector, UpstreamBody>,
    /// Clients over TLS, one per (protocol, trust, server name), made on first use.
    tls: std::sync::Mutex<HashMap<TlsKey, Arc<TlsClient>>>,
    settings: UpstreamSettings,
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
            tls: std::sync::Mutex::new(HashMap::new()),
            settings: s.clone(),
            request_timeout: s.request_timeout,
        }
    }

    fn tls_client(
        &self,
        protocol: UpstreamProtocol,
        spec: Option<&UpstreamTlsSpec>,
    ) -> Result<Arc<TlsClient>, Error> {
        let key = (protocol, spec.cloned());
        let mut clients = self.tls.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        let h2 = protocol == UpstreamProtocol::H2;
        let cfg = tls::client_tls_config(spec).map_err(|detail| Error::Upstream {
            kind: UpstreamErrorKind::Protocol,
            detail,
        })?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(self.settings.connect_timeout));
        connector.enforce_http(false);
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(cfg)
            .https_only();
        let https = match spec.and_then(|s| s.server_name.clone()) {
            Some(name) => {
                let name = rustls_pki_types::ServerName::try_from(name.clone()).map_err(|e| {
                    Error::Upstream {
                        kind: UpstreamErrorKind::Protocol,
                        detail: format!("{name:?}: {e}"),
                    }
                })?;
                let b = builder
                    .with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name));
                if h2 {
                    b.enable_http2().wrap_connector(connector)
                } else {
                    b.enable_http1().wrap_connector(connector)
                }
            }
            None => {
                if h2 {
                    builder.enable_http2().wrap_connector(connector)
                } else {
                    builder.enable_http1().wrap_connector(connector)
                }
            }
        };
        let mut b = Client::builder(TokioExecutor::new());
        b.pool_idle_timeout(self.settings.pool_idle_timeout)
            .pool_max_idle_per_host(self.settings.pool_max_idle_per_endpoint)
            .retry_canceled_requests(false)
            .set_host(false);
        if h2 {
            b.http2_only(true);
        }
        let client = Arc::new(b.build(https));
        clients.insert(key, client.clone());
        Ok(client)
    }

    /// How long an upstream may take to send a response head.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// Sends a request to an HTTP/1.1 endpoint on one of its kept connections, or a new one
    /// ([`crate::upstream::h1client`]); the connection goes back to the endpoint's pool when the
    /// response body has ended. A request asking for a protocol upgrade goes on a fresh
    /// connection through hyper's client, which hands the connection over after a 101. With
    /// `pass`, the response's end-to-end fields are kept as they came when its head allows it
    /// (see [`h1client::passed`]).
    pub async fn send_h1(
        &self,
        endpoint: &Arc<Endpoint>,
        mut req: Request<UpstreamBody>,
        forward: ToForward<'_>,
        pass: bool,
    ) -> Result<Response<ResponseBody>, Error> {
        if req.headers().contains_key(http::header::UPGRADE) {
            forward.apply(req.headers_mut());
            // boxed, as the rare path: its state does not weigh on every request's future
            return Box::pin(self.send_h1_upgrade(endpoint, req)).await;
        }
        let replacing = match forward.replacing_lines() {
            Some(lines) => h1client::codec::Replacing {
                names: &FORWARDING_NAMES,
                lines,
            },
            None => {
                forward.apply(req.headers_mut());
                h1client::codec::Replacing::default()
            }
        };
        let (parts, body) = req.into_parts();
        let head = Request::from_parts(parts, ());
        let body = match body {
            Either::Right(full) => SendBody::Full(whole(full)),
            Either::Left(streamed) => {
                let length = streamed.size_hint().exact();
                SendBody::Streamed(streamed, length)
            }
        };
        let pooled = endpoint
            .h1
            .checkout(Instant::now(), self.settings.pool_idle_timeout);
        let conn = match pooled {
            Some(c) => c,
            None => h1client::H1Conn::new(Box::pin(self.connect_tcp(&endpoint.authority)).await?),
        };
        let home = h1client::Home {
            pool: endpoint.h1.clone(),
            max_idle: self.settings.pool_max_idle_per_endpoint,
            slot: crate::upstream::h1pool::slot(),
        };
        let connect = || async {
            Ok(h1client::H1Conn::new(
                self.connect_tcp(&endpoint.authority).await?,
            ))
        };
        // boxed: the exchange's state is large, and every future that holds it inline is
        // moved (copied) as it is built up the request path
        let exchange = Box::pin(h1client::exchange(
            conn, connect, head, replacing, body, home, pass,
        ));
        // the worker's coarse deadline list, not a timer per request
        match crate::upstream::deadline::timeout(self.request_timeout, exchange).await {
            Err(_) => Err(Error::Upstream {
                kind: UpstreamErrorKind::Timeout,
                detail: format!("no response head within {:?}", self.request_timeout),
            }),
            Ok(result) => result.map(|r| r.map(ResponseBody::H1)),
        }
    }

    /// An upgrade request on a fresh connection of hyper's client.
    async fn send_h1_upgrade(
        &self,
        endpoint: &Endpoint,
        mut req: Request<UpstreamBody>,
    ) -> Result<Response<ResponseBody>, Error> {
        *req.version_mut() = Version::HTTP_11;
        if req.uri().authority().is_some() {
            // origin form on the wire (a request from an HTTP/2 client has an absolute URI)
            let pq = req
                .uri()
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
            *req.uri_mut() = http::Uri::from(pq);
        }
        let authority = &endpoint.authority;
        let stream = self.connect_tcp(authority).await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| Error::Upstream {
                kind: UpstreamErrorKind::Connect,
                detail: format!("handshake with {authority}: {e}"),
            })?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        match tokio::time::timeout(self.request_timeout, sender.send_request(req)).await {
            Err(_) => Err(Error::Upstream {
                kind: UpstreamErrorKind::Timeout,
                detail: format!("no response head within {:?}", self.request_timeout),
            }),
            Ok(Err(e)) => Err(classify_hyper(&e)),
            Ok(Ok(resp)) => Ok(resp.map(ResponseBody::Hyper)),
        }
    }

    /// A TCP connection to an endpoint, within the connect timeout, with Nagle off.
    async fn connect_tcp(
        &self,
        authority: &http::uri::Authority,
    ) -> Result<tokio::net::TcpStream, Error> {
        let failed = |detail: String| Error::Upstream {
            kind: UpstreamErrorKind::Connect,
            detail,
        };
        let connect = async {
            let stream = tokio::net::TcpStream::connect(authority.as_str()).await?;
            stream.set_nodelay(true)?;
            Ok::<_, std::io::Error>(stream)
        };
        match tokio::time::timeout(self.settings.connect_timeout, connect).await {
            Err(_) => Err(failed(format!(
                "connect to {authority} timed out after {:?}",
                self.settings.connect_timeout
            ))),
            Ok(Err(e)) => Err(failed(format!("connect to {authority}: {e}"))),
            Ok(Ok(s)) => Ok(s),
        }
    }

    /// Sends `req` (already addressed to its endpoint) and waits for the response head.
    pub async fn send(
        &self,
        protocol: UpstreamProtocol,
        tls: Option<&UpstreamTlsSpec>,
        mut req: Request<UpstreamBody>,
    ) -> Result<Response<ResponseBody>, Error> {
        let fut = match protocol {
            UpstreamProtocol::Http1 => {
                *req.version_mut() = Version::HTTP_11;
                self.http1.request(req)
            }
            UpstreamProtocol::H2c => {
                *req.version_mut() = Version::HTTP_2;
                self.h2c.request(req)
            }
            UpstreamProtocol::Https | UpstreamProtocol::H2 => {
                *req.version_mut() = if protocol == UpstreamProtocol::H2 {
                    Version::HTTP_2
                } else {
                    Version::HTTP_11
                };
                let client = self.tls_client(protocol, tls)?;
                client.request(req)
            }
        };
        match tokio::time::timeout(self.request_timeout, fut).await {
            Err(_) => Err(Error::Upstream {
                kind: UpstreamErrorKind::Timeout,
                detail: format!("no response head within {:?}", self.request_timeout),
            }),
            Ok(Ok(resp)) => Ok(resp.map(ResponseBody::Hyper)),
            Ok(Err(e)) => Err(classify(&e)),
        }
    }
}

/// Maps a client error to its kind.
/// What a failed exchange on an HTTP/1.1 connection of our own was.
fn classify_hyper(e: &hyper::Error) -> Error {
    let kind = if e.is_parse() || e.is_parse_status() {
        UpstreamErrorKind::Protocol
    } else if e.is_timeout() {
        UpstreamErrorKind::Timeout
    } else {
        UpstreamErrorKind::Closed
    };
    Error::Upstream {
        kind,
        detail: e.to_string(),
    }
}

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
