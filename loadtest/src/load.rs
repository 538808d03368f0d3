//! Closed-loop load: N keep-alive HTTP/1.1 connections, each sending its next request as soon as
//! the previous answer is read, for a number of requests or a duration (whichever ends first).
//! Every answer is tallied by status, by the backend that served it (`x-sluice-backend`,
//! `x-sluice-version`, or a short body) and by `x-sluice-generation`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HOST, HeaderName, HeaderValue};
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::error::{Error, Result};
use crate::report::{Report, Tally};

/// What to send, how hard, and for how long.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Target, `http://host:port/path`.
    pub url: Uri,
    /// Concurrent keep-alive connections.
    pub connections: usize,
    /// Stop after this many requests in all.
    pub requests: Option<u64>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Extra request headers.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Request method.
    pub method: Method,
    /// Request body (empty by default).
    pub body: Bytes,
}

impl LoadConfig {
    /// A GET load on `url` with `connections` connections and no limit set yet.
    pub fn new(url: Uri, connections: usize) -> Self {
        Self {
            url,
            connections,
            requests: None,
            duration: None,
            headers: Vec::new(),
            method: Method::GET,
            body: Bytes::new(),
        }
    }

    fn check(&self) -> Result<SocketAddr> {
        if self.connections == 0 {
            return Err(Error::Invalid("connections must be at least 1".into()));
        }
        if self.requests.is_none() && self.duration.is_none() {
            return Err(Error::Invalid(
                "set a request count or a duration, or the load never ends".into(),
            ));
        }
        if self.url.scheme_str() != Some("http") {
            return Err(Error::Invalid(format!(
                "{} is not an http:// URL",
                self.url
            )));
        }
        let authority = self
            .url
            .authority()
            .ok_or_else(|| Error::Invalid(format!("{} has no host", self.url)))?;
        let port = authority.port_u16().unwrap_or(80);
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let ip = if host == "localhost" {
            "127.0.0.1".parse().ok()
        } else {
            host.parse().ok()
        };
        ip.map(|ip| SocketAddr::new(ip, port)).ok_or_else(|| {
            Error::Invalid(format!("{host} is not an IP address (loopback loads only)"))
        })
    }
}

/// Runs the load and returns what it saw.
pub async fn run(cfg: LoadConfig) -> Result<Report> {
    let addr = cfg.check()?;
    // Fail fast when nothing listens at all.
    TcpStream::connect(addr)
        .await
        .map_err(|source| Error::Connect {
            addr: addr.to_string(),
            source,
        })?;
    let cfg = Arc::new(cfg);
    let issued = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = cfg.duration.map(|d| started + d);
    let mut tasks = Vec::new();
    for _ in 0..cfg.connections {
        let (cfg, issued) = (cfg.clone(), issued.clone());
        tasks.push(tokio::spawn(connection(cfg, addr, issued, deadline)));
    }
    let mut total = Tally::new();
    for t in tasks {
        if let Ok(tally) = t.await {
            total.merge(tally);
        }
    }
    Ok(total.finish(started.elapsed()))
}

fn may_send(cfg: &LoadConfig, issued: &AtomicU64, deadline: Option<Instant>) -> bool {
    if deadline.is_some_and(|d| Instant::now() >= d) {
        return false;
    }
    match cfg.requests {
        Some(n) => issued.fetch_add(1, Relaxed) < n,
        None => true,
    }
}

async fn connection(
    cfg: Arc<LoadConfig>,
    addr: SocketAddr,
    issued: Arc<AtomicU64>,
    deadline: Option<Instant>,
) -> Tally {
    let mut tally = Tally::new();
    let host = cfg
        .url
        .authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok());
    let path = cfg
        .url
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let mut sender: Option<http1::SendRequest<Full<Bytes>>> = None;
    while may_send(&cfg, &issued, deadline) {
        if sender.as_ref().is_none_or(|s| s.is_closed()) {
            sender = open(addr).await;
        }
        let Some(s) = sender.as_mut() else {
            tally.report.transport_errors += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let mut req = Request::new(Full::new(cfg.body.clone()));
        *req.method_mut() = cfg.method.clone();
        *req.uri_mut() = path.parse().unwrap_or_else(|_| Uri::from_static("/"));
        if let Some(h) = &host {
            req.headers_mut().insert(HOST, h.clone());
        }
        for (k, v) in &cfg.headers {
            req.headers_mut().append(k.clone(), v.clone());
        }
        let t0 = Instant::now();
        if s.ready().await.is_err() {
            sender = None;
            tally.report.transport_errors += 1;
            continue;
        }
        match s.send_request(req).await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let (backend, generation) = answered_by(resp.headers());
                let body = resp.into_body().collect().await;
                let latency = t0.elapsed();
                match body {
                    Ok(b) => {
                        let b = b.to_bytes();
                        let backend = backend.unwrap_or_else(|| short_body(&b));
                        tally.response(status, &backend, generation, latency);
                    }
                    Err(_) => {
                        tally.report.transport_errors += 1;
                        sender = None;
                    }
                }
            }
            Err(_) => {
                tally.report.transport_errors += 1;
                sender = None;
            }
        }
    }
    tally
}

/// Who answered, from the response headers: the backend (`x-sluice-backend`, else
/// `x-sluice-version`) and the route generation (`x-sluice-generation`).
pub fn answered_by(headers: &http::HeaderMap) -> (Option<String>, Option<u64>) {
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let backend = header("x-sluice-backend").or_else(|| header("x-sluice-version"));
    let generation = header("x-sluice-generation").and_then(|g| g.parse().ok());
    (backend, generation)
}

/// The body as a backend name when it is short text (the test backends answer their name).
fn short_body(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) if s.trim().len() <= 64 && !s.trim().is_empty() => s.trim().to_owned(),
        _ => "?".to_owned(),
    }
}

async fn open(addr: SocketAddr) -> Option<http1::SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr).await.ok()?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await.ok()?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Some(sender)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_load_needs_an_end_and_a_loopback_target() {
        let mut c = LoadConfig::new("http://127.0.0.1:1/".parse().unwrap(), 1);
        assert!(c.check().is_err());
        c.requests = Some(1);
        assert!(c.check().is_ok());
        c.url = "http://example.com/".parse().unwrap();
        assert!(c.check().is_err());
        c.url = "http://localhost:8080/".parse().unwrap();
        assert_eq!(c.check().unwrap().port(), 8080);
        c.connections = 0;
        assert!(c.check().is_err());
    }

    #[test]
    fn short_bodies_name_the_backend() {
        assert_eq!(short_body(b"v2\n"), "v2");
        assert_eq!(short_body(b""), "?");
        assert_eq!(short_body(&[0xff, 0xfe]), "?");
    }
}
