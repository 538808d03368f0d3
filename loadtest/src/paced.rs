//! A constant-rate request loop that records every answer: when it was meant to be sent, how
//! long it took, which target and backend answered, the route generation and the status. The
//! demo's request loop and the end-to-end tests' traffic; latency is measured from the
//! intended send time, so a stall is not hidden by the loop waiting for it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::HOST;
use http::{HeaderName, HeaderValue, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

/// One request and what came back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// Intended send time, since the loop started.
    pub at: Duration,
    /// From the intended send time to the end of the answer.
    pub latency: Duration,
    /// Index of the target.
    pub target: usize,
    /// Backend (or version) that answered; empty without an answer.
    pub backend: String,
    /// `x-sluice-generation`, if present.
    pub generation: Option<u64>,
    /// Status; `None` when no answer came (connection refused, reset, …).
    pub status: Option<u16>,
    /// Why no answer came, when none did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Whether the request went on a connection opened for it.
    #[serde(default)]
    pub fresh: bool,
    /// Whether the request carried a body.
    #[serde(default)]
    pub with_body: bool,
}

impl Answer {
    /// A 5xx or no answer.
    pub fn failed(&self) -> bool {
        self.status.is_none_or(|s| s >= 500)
    }
}

/// What to send.
#[derive(Debug, Clone)]
pub struct PacedConfig {
    /// Targets, `http://IP:PORT/PATH`; requests go round-robin.
    pub targets: Vec<Uri>,
    /// Requests per second, over all targets.
    pub rate: f64,
    /// Connections per target.
    pub connections: usize,
    /// Stop by itself after this long.
    pub max_duration: Duration,
    /// Extra headers.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Every Nth request of a connection worker goes on a connection opened for it (the
    /// one before is closed); 0 keeps connections alive as long as they last.
    pub new_connection_every: u32,
    /// Every Nth request of a connection worker is a `POST` with a small body; 0 sends none.
    pub body_every: u32,
}

impl PacedConfig {
    /// `rate` requests a second round-robin over `targets`, on two kept-alive connections per
    /// target, without bodies, for at most `max_duration`.
    pub fn new(targets: Vec<Uri>, rate: f64, max_duration: Duration) -> Self {
        PacedConfig {
            targets,
            rate,
            connections: 2,
            max_duration,
            headers: Vec::new(),
            new_connection_every: 0,
            body_every: 0,
        }
    }
}

/// A running loop.
pub struct PacedLoop {
    answers: Arc<Mutex<Vec<Answer>>>,
    stop: watch::Sender<bool>,
    done: tokio::task::JoinHandle<()>,
    started: Instant,
}

impl PacedLoop {
    /// Everything answered so far.
    pub fn answers(&self) -> Vec<Answer> {
        self.answers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Answers since `from` (loop time).
    pub fn answers_since(&self, from: Duration) -> Vec<Answer> {
        self.answers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|a| a.at >= from)
            .cloned()
            .collect()
    }

    /// Time since the loop started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The loop's clock at an instant.
    pub fn at(&self, t: Instant) -> Duration {
        t.saturating_duration_since(self.started)
    }

    /// Stops sending, waits for requests in flight, returns every answer.
    pub async fn stop(self) -> Vec<Answer> {
        let _ = self.stop.send(true);
        let _ = self.done.await;
        let answers = self
            .answers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut sorted = answers;
        sorted.sort_by_key(|a| a.at);
        sorted
    }
}

/// Starts a loop.
pub fn start(cfg: PacedConfig) -> PacedLoop {
    let answers = Arc::new(Mutex::new(Vec::new()));
    let (stop, stop_rx) = watch::channel(false);
    let started = Instant::now();
    let cfg = Arc::new(cfg);
    let ans = answers.clone();
    let done = tokio::spawn(async move {
        let mut queues = Vec::new();
        let mut workers = Vec::new();
        for (t, uri) in cfg.targets.iter().enumerate() {
            let (tx, rx) = mpsc::unbounded_channel::<Duration>();
            let rx = Arc::new(tokio::sync::Mutex::new(rx));
            for _ in 0..cfg.connections.max(1) {
                workers.push(tokio::spawn(worker(
                    uri.clone(),
                    t,
                    rx.clone(),
                    cfg.clone(),
                    ans.clone(),
                    started,
                )));
            }
            queues.push(tx);
        }
        let period = Duration::from_secs_f64(1.0 / cfg.rate.max(0.1));
        let mut n: u64 = 0;
        let mut stop_rx = stop_rx;
        loop {
            let at = period.mul_f64(n as f64);
            if at >= cfg.max_duration || *stop_rx.borrow() {
                break;
            }
            let due = started + at;
            tokio::select! {
                () = tokio::time::sleep_until(due.into()) => {}
                _ = stop_rx.changed() => break,
            }
            if let Some(q) = queues.get((n as usize) % queues.len().max(1)) {
                let _ = q.send(at);
            }
            n += 1;
        }
        drop(queues);
        for w in workers {
            let _ = w.await;
        }
    });
    PacedLoop {
        answers,
        stop,
        done,
        started,
    }
}

/// The body of the requests that carry one.
const BODY: &[u8] =
    b"{\"order\":42,\"items\":[\"chip\",\"fish\"],\"note\":\"a request with a body\"}";

async fn connect(uri: &Uri) -> Option<http1::SendRequest<Full<Bytes>>> {
    let authority = uri.authority()?;
    let addr = format!(
        "{}:{}",
        authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']'),
        authority.port_u16().unwrap_or(80)
    );
    crate::load::open(addr).await
}

async fn worker(
    uri: Uri,
    target: usize,
    rx: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Duration>>>,
    cfg: Arc<PacedConfig>,
    answers: Arc<Mutex<Vec<Answer>>>,
    started: Instant,
) {
    let mut sender: Option<http1::SendRequest<Full<Bytes>>> = None;
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let host = uri
        .authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok());
    let every = |n: u64, k: u32| k > 0 && n % u64::from(k) == u64::from(k) - 1;
    let mut n: u64 = 0;
    loop {
        let at = {
            let mut guard = rx.lock().await;
            match guard.recv().await {
                Some(at) => at,
                None => return,
            }
        };
        let fresh =
            every(n, cfg.new_connection_every) || sender.as_ref().is_none_or(|s| s.is_closed());
        let with_body = every(n, cfg.body_every);
        n += 1;
        let mut answer = Answer {
            at,
            latency: Duration::ZERO,
            target,
            backend: String::new(),
            generation: None,
            status: None,
            error: None,
            fresh,
            with_body,
        };
        if fresh {
            sender = connect(&uri).await;
            if sender.is_none() {
                answer.error = Some("connect failed".into());
            }
        }
        if let Some(s) = sender.as_mut() {
            let body = if with_body {
                Bytes::from_static(BODY)
            } else {
                Bytes::new()
            };
            let mut req = Request::new(Full::new(body));
            if with_body {
                *req.method_mut() = http::Method::POST;
            }
            *req.uri_mut() = path.parse().unwrap_or_else(|_| Uri::from_static("/"));
            if let Some(h) = &host {
                req.headers_mut().insert(HOST, h.clone());
            }
            for (k, v) in &cfg.headers {
                req.headers_mut().append(k.clone(), v.clone());
            }
            let result: Result<(u16, String, Option<u64>), String> = async {
                s.ready()
                    .await
                    .map_err(|e| format!("connection closed: {e}"))?;
                let resp = s
                    .send_request(req)
                    .await
                    .map_err(|e| format!("no answer: {e}"))?;
                let status = resp.status().as_u16();
                let (backend, generation) = crate::load::answered_by(resp.headers());
                let body = resp
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| format!("answer cut short: {e}"))?
                    .to_bytes();
                let backend = backend.unwrap_or_else(|| {
                    String::from_utf8_lossy(&body)
                        .trim()
                        .chars()
                        .take(64)
                        .collect()
                });
                Ok((status, backend, generation))
            }
            .await;
            match result {
                Ok((status, backend, generation)) => {
                    answer.status = Some(status);
                    answer.backend = backend;
                    answer.generation = generation;
                }
                Err(e) => {
                    answer.error = Some(e);
                    sender = None;
                }
            }
        }
        answer.latency = started.elapsed().saturating_sub(at);
        answers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(answer);
    }
}
