//! A tiny versioned HTTP backend: answers its name (body and `x-sluice-version`), optionally
//! after a delay or with a share of 5xx answers (or per request: `?delay_ms=N&status=S`),
//! streams `?bytes=N` zero bytes, and echoes what it received on `/echo`. It is
//! the backend of the tests, of the README's first command and of the demo.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

/// How the backend behaves.
#[derive(Debug, Clone)]
pub struct BackendConfig {
    /// The version name it answers.
    pub name: String,
    /// Delay before every answer.
    pub delay: Duration,
    /// Share of answers (0.0..=1.0) that are `error_status`, spread exactly: any run of
    /// 1/`error_rate` consecutive requests holds the same number of errors.
    pub error_rate: f64,
    /// The status of error answers.
    pub error_status: StatusCode,
}

impl BackendConfig {
    /// A healthy, fast backend called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            delay: Duration::ZERO,
            error_rate: 0.0,
            error_status: StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

struct State {
    cfg: BackendConfig,
    counter: AtomicU64,
    name_header: HeaderValue,
    body: Bytes,
}

/// Whether request number `k` gets an error at `rate` (same rule as the proxy's exact split,
/// in parts per million).
pub fn is_error(k: u64, rate: f64) -> bool {
    const PARTS: u64 = 1_000_000;
    let w = (rate.clamp(0.0, 1.0) * PARTS as f64).round() as u64;
    let k = k % PARTS;
    (k + 1) * w / PARTS - k * w / PARTS == 1
}

/// Serves `listener` forever.
pub async fn serve(listener: TcpListener, cfg: BackendConfig) {
    let state = Arc::new(State {
        name_header: HeaderValue::from_str(&cfg.name)
            .unwrap_or_else(|_| HeaderValue::from_static("invalid-name")),
        body: Bytes::from(format!("{}\n", cfg.name)),
        counter: AtomicU64::new(0),
        cfg,
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let conn = builder
            .serve_connection_with_upgrades(
                TokioIo::new(stream),
                service_fn(move |req| answer(state.clone(), req)),
            )
            .into_owned();
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}

/// `?bytes=N`: answer N bytes, streamed in 64 KiB chunks.
fn bytes_wanted(query: Option<&str>) -> Option<u64> {
    query?
        .split('&')
        .find_map(|p| p.strip_prefix("bytes=")?.parse().ok())
}

/// A body of `left` zero bytes, produced as it is read.
pub struct Zeros {
    left: u64,
}

impl Zeros {
    /// A body of `n` zero bytes.
    pub fn new(n: u64) -> Self {
        Self { left: n }
    }
}

impl http_body::Body for Zeros {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        const CHUNK: u64 = 64 * 1024;
        static ZEROS: [u8; CHUNK as usize] = [0; CHUNK as usize];
        if self.left == 0 {
            return std::task::Poll::Ready(None);
        }
        let n = self.left.min(CHUNK);
        self.left -= n;
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from_static(
            &ZEROS[..n as usize],
        )))))
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.left)
    }
}

/// What the backend answers: a small body, or a streamed one.
pub enum Answer {
    /// A body held whole.
    Full(Full<Bytes>),
    /// Zero bytes streamed.
    Stream(Zeros),
}

impl http_body::Body for Answer {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Answer::Full(f) => std::pin::Pin::new(f).poll_frame(cx),
            Answer::Stream(z) => std::pin::Pin::new(z).poll_frame(cx),
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            Answer::Full(f) => f.size_hint(),
            Answer::Stream(z) => z.size_hint(),
        }
    }
}

/// Per-request overrides from the query string: `delay_ms=N` and `status=S`.
fn overrides(query: Option<&str>) -> (Option<Duration>, Option<StatusCode>) {
    let mut delay = None;
    let mut status = None;
    for pair in query.unwrap_or_default().split('&') {
        match pair.split_once('=') {
            Some(("delay_ms", v)) => delay = v.parse().ok().map(Duration::from_millis),
            Some(("status", v)) => {
                status = v.parse().ok().and_then(|s| StatusCode::from_u16(s).ok())
            }
            _ => {}
        }
    }
    (delay, status)
}

async fn answer(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Answer>, Infallible> {
    let k = state.counter.fetch_add(1, Relaxed);
    let (delay, forced_status) = overrides(req.uri().query());
    let delay = delay.unwrap_or(state.cfg.delay);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let (parts, body) = req.into_parts();
    // Read the whole request body, counting it, so uploads are really received.
    let mut received = 0u64;
    let mut body = body;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => received += f.data_ref().map_or(0, |d| d.len() as u64),
            Err(_) => break,
        }
    }
    let mut resp = if parts.uri.path() == "/echo" {
        let headers: BTreeMap<String, Vec<String>> = parts
            .headers
            .keys()
            .map(|k| {
                (
                    k.as_str().to_owned(),
                    parts
                        .headers
                        .get_all(k)
                        .iter()
                        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                        .collect(),
                )
            })
            .collect();
        let echo = serde_json::json!({
            "name": state.cfg.name,
            "method": parts.method.as_str(),
            "uri": parts.uri.to_string(),
            "version": format!("{:?}", parts.version),
            "headers": headers,
            "body_bytes": received,
        });
        let mut r = Response::new(Answer::Full(Full::new(Bytes::from(echo.to_string()))));
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r
    } else {
        match bytes_wanted(parts.uri.query()) {
            Some(n) => Response::new(Answer::Stream(Zeros { left: n })),
            None => Response::new(Answer::Full(Full::new(state.body.clone()))),
        }
    };
    if let Some(s) = forced_status {
        *resp.status_mut() = s;
    } else if is_error(k, state.cfg.error_rate) {
        *resp.status_mut() = state.cfg.error_status;
    }
    resp.headers_mut()
        .insert("x-sluice-version", state.name_header.clone());
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_overrides_delay_and_status() {
        assert_eq!(
            overrides(Some("delay_ms=20&status=503")),
            (
                Some(Duration::from_millis(20)),
                Some(StatusCode::SERVICE_UNAVAILABLE)
            )
        );
        assert_eq!(overrides(Some("x=1")), (None, None));
        assert_eq!(overrides(None), (None, None));
        assert_eq!(overrides(Some("status=99")), (None, None));
    }

    #[test]
    fn error_share_is_exact_over_any_window() {
        let errors = (0..1000).filter(|k| is_error(*k, 0.1)).count();
        assert_eq!(errors, 100);
        let errors = (0..10).filter(|k| is_error(*k, 0.1)).count();
        assert_eq!(errors, 1);
        assert!(!(0..1000).any(|k| is_error(k, 0.0)));
        assert!((0..1000).all(|k| is_error(k, 1.0)));
    }
}
