//! The listener of an HTTP API that must never starve anything else: the proxy's admin API,
//! and the controller's control API.
//!
//! What a client on the network can hold is bounded:
//! - **connections**: at most [`ApiLimits::max_connections`]. One more evicts the connection
//!   idle the longest, else the oldest busy one that never presented a credential; when every
//!   connection is busy and credentialed, the newcomer is closed. So anonymous clients can
//!   never keep an operator (an abort) or a proxy (a poll) out;
//! - **time**: a connection that sends no complete request head for
//!   [`ApiLimits::idle_timeout`] (idle keep-alive, or a head sent too slowly) is closed, and a
//!   request body not received whole within [`ApiLimits::body_timeout`] is answered 408;
//! - **memory**: a body over [`ApiLimits::max_body_bytes`] is answered 413 without being kept.
//!
//! The credential is checked by the API's own middleware from the head, before any body is
//! read ([`buffer_body`] runs after it). Only HTTP/1.1 is served.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body as AxumBody;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http_body::Body;
use http_body_util::BodyExt as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tower::ServiceExt as _;

use crate::Holding;

/// How much of the process one API listener's clients may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiLimits {
    /// Open connections at most.
    pub max_connections: usize,
    /// A connection with no complete request head for this long is closed.
    pub idle_timeout: Duration,
    /// The largest request body taken.
    pub max_body_bytes: usize,
    /// A request body must arrive whole within this.
    pub body_timeout: Duration,
}

impl Default for ApiLimits {
    fn default() -> Self {
        Self {
            max_connections: 64,
            idle_timeout: Duration::from_secs(10),
            max_body_bytes: 1024 * 1024,
            body_timeout: Duration::from_secs(10),
        }
    }
}

impl ApiLimits {
    /// These limits with `max_connections` lowered to a quarter of the process's open-file
    /// limit, so that this listener alone can never use up the descriptors the rest of the
    /// process (the traffic listener, the upstream connections, the state files) needs.
    pub fn within_descriptors(self) -> Self {
        let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .unwrap_or(u64::MAX);
        let share = usize::try_from(soft / 4).unwrap_or(usize::MAX).max(4);
        Self {
            max_connections: self.max_connections.min(share),
            ..self
        }
    }
}

/// Whether a request's head presents a valid credential (of any role): a connection that has
/// carried one is evicted only after the anonymous ones.
pub type Credentialed = Arc<dyn Fn(&http::HeaderMap) -> bool + Send + Sync>;

/// One connection, as the cap sees it.
#[derive(Debug, Default)]
struct Conn {
    /// Asked to close for a newcomer: no longer counted, never picked again.
    closing: AtomicBool,
    in_flight: AtomicU32,
    credentialed: AtomicBool,
    /// Milliseconds since the server started: the last answer ended, or the connection opened.
    last_active_ms: AtomicU64,
    close: Notify,
}

/// What [`victim`] is told of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnFacts {
    /// Its id.
    pub id: u64,
    /// Requests whose answer has not ended.
    pub in_flight: u32,
    /// Whether it carried a valid credential.
    pub credentialed: bool,
    /// When it was last active (larger is later).
    pub last_active_ms: u64,
}

/// The connection to close for a newcomer at the cap: the one idle the longest, else the
/// oldest busy one that never presented a credential; `None` when every one is busy and
/// credentialed (then the newcomer is closed instead).
pub fn victim(conns: &[ConnFacts]) -> Option<u64> {
    let idle = conns
        .iter()
        .filter(|c| c.in_flight == 0)
        .min_by_key(|c| c.last_active_ms);
    let anonymous = || {
        conns
            .iter()
            .filter(|c| !c.credentialed)
            .min_by_key(|c| c.last_active_ms)
    };
    idle.or_else(anonymous).map(|c| c.id)
}

#[derive(Default)]
struct Registry {
    open: Mutex<HashMap<u64, Arc<Conn>>>,
    next_id: AtomicU64,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes room for one more under `max` (asking a connection to close); false when there
    /// is none to make.
    fn make_room(&self, max: usize) -> bool {
        let open = self.lock();
        let staying = || open.values().filter(|c| !c.closing.load(Relaxed));
        if staying().count() < max {
            return true;
        }
        let facts: Vec<ConnFacts> = open
            .iter()
            .filter(|(_, c)| !c.closing.load(Relaxed))
            .map(|(id, c)| ConnFacts {
                id: *id,
                in_flight: c.in_flight.load(Relaxed),
                credentialed: c.credentialed.load(Relaxed),
                last_active_ms: c.last_active_ms.load(Relaxed),
            })
            .collect();
        match victim(&facts).and_then(|id| open.get(&id)) {
            Some(c) => {
                c.closing.store(true, Relaxed);
                c.close.notify_one();
                true
            }
            None => false,
        }
    }
}

/// Serves `app` on `listener` within `limits` until `shutdown` completes; then lets each
/// connection finish its request for up to two seconds.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ApiLimits,
    credentialed: Credentialed,
    shutdown: impl Future<Output = ()>,
) {
    let registry = Arc::new(Registry::default());
    let started = Instant::now();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, client) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // e.g. too many open files: back off briefly instead of spinning
                    tracing::warn!(error = %e, "API accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if !registry.make_room(limits.max_connections) {
            tracing::debug!(client = %client, "API connection closed: every connection is busy with a credential");
            continue;
        }
        // let an evicted connection's task close before the next accept
        tokio::task::yield_now().await;
        let id = registry.next_id.fetch_add(1, Relaxed);
        let conn = Arc::new(Conn::default());
        conn.last_active_ms.store(millis(started), Relaxed);
        registry.lock().insert(id, conn.clone());
        let (app, credentialed, registry, mut stop) = (
            app.clone(),
            credentialed.clone(),
            registry.clone(),
            stop_rx.clone(),
        );
        tokio::spawn(async move {
            let svc_conn = conn.clone();
            let svc =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let conn = svc_conn.clone();
                    conn.in_flight.fetch_add(1, Relaxed);
                    if credentialed(req.headers()) {
                        conn.credentialed.store(true, Relaxed);
                    }
                    let guard = Active { conn, started };
                    let answer = app.clone().oneshot(req.map(AxumBody::new));
                    async move {
                        let resp = answer.await?;
                        Ok::<_, std::convert::Infallible>(
                            resp.map(|body| AxumBody::new(Holding::new(body, guard))),
                        )
                    }
                });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.idle_timeout);
            let served = builder.serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(served);
            let stopping = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            tokio::select! {
                r = &mut served => {
                    if let Err(e) = r {
                        tracing::debug!(client = %client, error = %e, "API connection ended with an error");
                    }
                }
                () = conn.close.notified() => {
                    tracing::debug!(client = %client, "API connection evicted: at max_connections");
                }
                () = stopping => {
                    served.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(2), served).await;
                }
            }
            registry.lock().remove(&id);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
}

fn millis(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Holds a request in flight on its connection until its answer's body is dropped.
struct Active {
    conn: Arc<Conn>,
    started: Instant,
}

impl Drop for Active {
    fn drop(&mut self) {
        self.conn
            .last_active_ms
            .store(millis(self.started), Relaxed);
        self.conn.in_flight.fetch_sub(1, Relaxed);
    }
}

/// Middleware: reads a request's body whole within the limits before the handler sees it
/// (413 past the size, 408 past the time). Layer it inside the credential check, so that
/// nobody's body is read before their credential is.
pub async fn buffer_body(State(limits): State<ApiLimits>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    if body.is_end_stream() {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let limited = http_body_util::Limited::new(body, limits.max_body_bytes);
    let bytes = match tokio::time::timeout(limits.body_timeout, limited.collect()).await {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is larger than {} bytes", limits.max_body_bytes),
            );
        }
        Ok(Err(e)) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                format!("the body could not be read: {e}"),
            );
        }
        Err(_) => {
            return refuse(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the body did not arrive whole within {:?}",
                    limits.body_timeout
                ),
            );
        }
    };
    next.run(Request::from_parts(parts, AxumBody::from(bytes)))
        .await
}

fn refuse(status: StatusCode, message: String) -> Response {
    let mut resp = (status, axum::Json(serde_json::json!({"error": message}))).into_response();
    resp.headers_mut().insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("close"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: u64, in_flight: u32, credentialed: bool, last_active_ms: u64) -> ConnFacts {
        ConnFacts {
            id,
            in_flight,
            credentialed,
            last_active_ms,
        }
    }

    #[test]
    fn the_connection_idle_the_longest_goes_first() {
        let conns = [
            c(1, 1, false, 10),
            c(2, 0, true, 50),
            c(3, 0, false, 40),
            c(4, 2, true, 5),
        ];
        assert_eq!(victim(&conns), Some(3));
    }

    #[test]
    fn with_none_idle_the_oldest_anonymous_busy_one_goes() {
        let conns = [c(1, 1, true, 10), c(2, 1, false, 50), c(3, 3, false, 40)];
        assert_eq!(victim(&conns), Some(3));
    }

    #[test]
    fn busy_credentialed_connections_are_never_evicted() {
        let conns = [c(1, 1, true, 10), c(2, 1, true, 50)];
        assert_eq!(victim(&conns), None);
        assert_eq!(victim(&[]), None);
    }
}
