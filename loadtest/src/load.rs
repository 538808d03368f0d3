//! Load on one target: N keep-alive connections (HTTP/1.1, or HTTP/2 with several streams
//! each), for a number of requests or a duration (whichever ends first).
//!
//! Closed loop: each connection (or stream) sends its next request as soon as the previous
//! answer is read; latency is measured from the send. Open loop (`rate`): requests are due at
//! a constant rate from the start, whatever the answers do; a connection takes the next due
//! request when it is free, and latency is measured from the time the request was *due*, so a
//! stall shows as the latency of every request it delayed (no coordinated omission).
//!
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
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
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
    /// Open loop at this many requests per second over all connections; closed loop when
    /// `None`.
    pub rate: Option<f64>,
    /// HTTP/2 (h2c, prior knowledge) with this many concurrent streams per connection;
    /// HTTP/1.1 when `None`.
    pub h2_streams: Option<usize>,
    /// Print a progress line to stderr every second.
    pub progress: bool,
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
            rate: None,
            h2_streams: None,
            progress: false,
        }
    }

    fn check(&self) -> Result<SocketAddr> {
        if self.connections == 0 {
            return Err(Error::Invalid("connections must be at least 1".into()));
        }
        if let Some(r) = self.rate
            && !(r.is_finite() && r > 0.0)
        {
            return Err(Error::Invalid(format!("rate must be above 0, not {r}")));
        }
        if self.h2_streams == Some(0) {
            return Err(Error::Invalid("streams must be at least 1".into()));
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
    let started = Instant::now();
    let deadline = cfg.duration.map(|d| started + d);
    let due = cfg.rate.map(|rate| {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let (schedule, limit) = (Schedule::new(started, rate), cfg.requests);
        std::thread::spawn(move || pace(&schedule, limit, deadline, &tx));
        tokio::sync::Mutex::new(rx)
    });
    let shared = Arc::new(Shared {
        deadline,
        due,
        issued: AtomicU64::new(0),
        answered: AtomicU64::new(0),
        cfg,
    });
    let progress = shared.cfg.progress.then(|| {
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            let mut last = 0;
            loop {
                tick.tick().await;
                let n = shared.answered.load(Relaxed);
                eprintln!(
                    "sluice-load: {:>4.0}s {n} responses, {}/s",
                    started.elapsed().as_secs_f64(),
                    n - last
                );
                last = n;
            }
        })
    });
    let mut tasks = Vec::new();
    for _ in 0..shared.cfg.connections {
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            match shared.cfg.h2_streams {
                None => http1_connection(&shared, addr).await,
                Some(streams) => h2_connection(shared, addr, streams).await,
            }
        }));
    }
    let mut total = Tally::new();
    for t in tasks {
        if let Ok(tally) = t.await {
            total.merge(tally);
        }
    }
    if let Some(p) = progress {
        p.abort();
    }
    Ok(total.finish(started.elapsed()))
}

/// What every connection of a run shares.
struct Shared {
    cfg: LoadConfig,
    deadline: Option<Instant>,
    /// Open loop: the due times of released requests, in order.
    due: Option<tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<Instant>>>,
    issued: AtomicU64,
    answered: AtomicU64,
}

/// When the requests of an open-loop run are due: the `i`th at `start + i / rate`.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    start: Instant,
    rate: f64,
}

impl Schedule {
    /// Requests at `rate` per second from `start`.
    pub fn new(start: Instant, rate: f64) -> Self {
        Self { start, rate }
    }

    /// When request `i` is due.
    pub fn due(&self, i: u64) -> Instant {
        self.start + Duration::from_secs_f64(i as f64 / self.rate)
    }

    /// How many requests are due by `now` (request 0 is due at the start).
    pub fn due_by(&self, now: Instant) -> u64 {
        (now.saturating_duration_since(self.start).as_secs_f64() * self.rate) as u64 + 1
    }
}

/// How often the pacer releases the requests that have come due. Latency is measured from
/// each request's due time, so the pacer's own lateness (up to about this) is counted too,
/// alike for every target of a comparison.
const PACER_TICK: Duration = Duration::from_micros(100);

/// The open loop's clock, on its own thread so that it keeps time whatever the runtime's
/// workers are doing: releases each request when it comes due, until `limit` requests or the
/// deadline.
fn pace(
    schedule: &Schedule,
    limit: Option<u64>,
    deadline: Option<Instant>,
    tx: &tokio::sync::mpsc::UnboundedSender<Instant>,
) {
    let mut released = 0;
    loop {
        let now = Instant::now();
        let mut upto = schedule.due_by(now);
        if let Some(n) = limit {
            upto = upto.min(n);
        }
        while released < upto {
            let due = schedule.due(released);
            if deadline.is_some_and(|d| due >= d) {
                return;
            }
            if tx.send(due).is_err() {
                return;
            }
            released += 1;
        }
        if limit.is_some_and(|n| released >= n) || deadline.is_some_and(|d| now >= d) {
            return;
        }
        std::thread::sleep(PACER_TICK);
    }
}

impl Shared {
    /// Claims the next request: `None` when the run is over, else the time its latency is
    /// measured from (now in a closed loop, its due time in an open loop).
    async fn next(&self) -> Option<Instant> {
        if let Some(due) = &self.due {
            return due.lock().await.recv().await;
        }
        let i = self.issued.fetch_add(1, Relaxed);
        if self.cfg.requests.is_some_and(|n| i >= n) {
            return None;
        }
        self.deadline
            .is_none_or(|d| Instant::now() < d)
            .then(Instant::now)
    }

    fn request(&self, host: Option<&HeaderValue>, path: &Uri) -> Request<Full<Bytes>> {
        let mut req = Request::new(Full::new(self.cfg.body.clone()));
        *req.method_mut() = self.cfg.method.clone();
        *req.uri_mut() = path.clone();
        if let Some(h) = host {
            req.headers_mut().insert(HOST, h.clone());
        }
        for (k, v) in &self.cfg.headers {
            req.headers_mut().append(k.clone(), v.clone());
        }
        req
    }
}

fn target_parts(cfg: &LoadConfig) -> (Option<HeaderValue>, Uri) {
    let host = cfg
        .url
        .authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok());
    let path = cfg
        .url
        .path_and_query()
        .and_then(|p| p.as_str().parse().ok())
        .unwrap_or_else(|| Uri::from_static("/"));
    (host, path)
}

async fn http1_connection(shared: &Shared, addr: SocketAddr) -> Tally {
    let mut tally = Tally::new();
    let (host, path) = target_parts(&shared.cfg);
    let mut sender: Option<http1::SendRequest<Full<Bytes>>> = None;
    while let Some(from) = shared.next().await {
        if sender.as_ref().is_none_or(|s| s.is_closed()) {
            sender = open(addr).await;
        }
        let Some(s) = sender.as_mut() else {
            tally.report.transport_errors += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        if s.ready().await.is_err() {
            sender = None;
            tally.report.transport_errors += 1;
            continue;
        }
        let req = shared.request(host.as_ref(), &path);
        if !exchange(s.send_request(req), from, &mut tally).await {
            sender = None;
        }
        shared.answered.fetch_add(1, Relaxed);
    }
    tally
}

async fn h2_connection(shared: Arc<Shared>, addr: SocketAddr, streams: usize) -> Tally {
    let mut tally = Tally::new();
    let Some(sender) = open_h2(addr).await else {
        tally.report.transport_errors += 1;
        return tally;
    };
    let mut tasks = Vec::new();
    for _ in 0..streams {
        let (shared, mut sender) = (shared.clone(), sender.clone());
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::new();
            let (host, path) = target_parts(&shared.cfg);
            while let Some(from) = shared.next().await {
                if sender.ready().await.is_err() {
                    tally.report.transport_errors += 1;
                    break;
                }
                let req = shared.request(host.as_ref(), &path);
                exchange(sender.send_request(req), from, &mut tally).await;
                shared.answered.fetch_add(1, Relaxed);
            }
            tally
        }));
    }
    for t in tasks {
        if let Ok(t) = t.await {
            tally.merge(t);
        }
    }
    tally
}

/// Waits for one answer and tallies it; false when the connection failed.
async fn exchange(
    sent: impl std::future::Future<Output = hyper::Result<http::Response<hyper::body::Incoming>>>,
    from: Instant,
    tally: &mut Tally,
) -> bool {
    match sent.await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let (backend, generation) = answered_by(resp.headers());
            match resp.into_body().collect().await {
                Ok(b) => {
                    let latency = from.elapsed();
                    let b = b.to_bytes();
                    let backend = backend.unwrap_or_else(|| short_body(&b));
                    tally.response(status, &backend, generation, latency);
                    true
                }
                Err(_) => {
                    tally.report.transport_errors += 1;
                    false
                }
            }
        }
        Err(_) => {
            tally.report.transport_errors += 1;
            false
        }
    }
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

async fn open_h2(addr: SocketAddr) -> Option<http2::SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr).await.ok()?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Some(sender)
}

/// An HTTP/1.1 connection to `addr`, driven by its own task.
pub(crate) async fn open(
    addr: impl tokio::net::ToSocketAddrs,
) -> Option<http1::SendRequest<Full<Bytes>>> {
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
        c.connections = 1;
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            c.rate = Some(bad);
            assert!(c.check().is_err(), "{bad}");
        }
        c.rate = Some(10.0);
        c.h2_streams = Some(0);
        assert!(c.check().is_err());
        c.h2_streams = Some(4);
        assert!(c.check().is_ok());
    }

    #[test]
    fn an_open_loop_schedule_spaces_requests_evenly_from_the_start() {
        let start = Instant::now();
        let s = Schedule::new(start, 4000.0);
        assert_eq!(s.due(0), start);
        assert_eq!(s.due(4000) - start, Duration::from_secs(1));
        assert_eq!(s.due(2) - s.due(1), Duration::from_micros(250));
        assert_eq!(s.due_by(start), 1);
        assert_eq!(s.due_by(start + Duration::from_micros(249)), 1);
        assert_eq!(s.due_by(start + Duration::from_micros(250)), 2);
        assert_eq!(s.due_by(start + Duration::from_secs(1)), 4001);
    }

    #[test]
    fn the_pacer_releases_each_request_once_in_order_and_stops_by_itself() {
        let start = Instant::now();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        pace(&Schedule::new(start, 20_000.0), Some(500), None, &tx);
        let mut got = Vec::new();
        while let Ok(d) = rx.try_recv() {
            got.push(d);
        }
        assert_eq!(got.len(), 500);
        assert!(
            got.windows(2)
                .all(|w| w[1] - w[0] == Duration::from_micros(50))
        );
        // a deadline ends it too: nothing due at or after it is released
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let deadline = start + Duration::from_millis(20);
        pace(&Schedule::new(start, 1000.0), None, Some(deadline), &tx);
        let mut n = 0;
        while let Ok(d) = rx.try_recv() {
            assert!(d < deadline);
            n += 1;
        }
        assert_eq!(n, 20);
    }

    #[test]
    fn short_bodies_name_the_backend() {
        assert_eq!(short_body(b"v2\n"), "v2");
        assert_eq!(short_body(b""), "?");
        assert_eq!(short_body(&[0xff, 0xfe]), "?");
    }
}
