//! The downstream side: accepts connections and serves HTTP/1.1 and HTTP/2 (h2c, by prior
//! knowledge) on each with hyper-util's auto builder, upgrades included. Limits the head size,
//! the header count and the time to send a head (which is also the idle keep-alive time),
//! caps open connections (evicting the connection idle the longest, waiting, or refusing),
//! and on shutdown stops accepting and drains in-flight requests.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::config::{DownstreamConfig, OnMaxConnections};
use crate::forward;
use crate::framing;
use crate::state::Shared;
use crate::telemetry;

/// One open connection, as the cap and shutdown see it.
struct Conn {
    evicted: std::sync::atomic::AtomicBool,
    in_flight: AtomicU32,
    last_active_ms: AtomicU64,
    /// What the connection is asked to do: go on, finish gracefully, or close now.
    signal: Signal,
}

/// Open connections, for the cap and idle eviction, shared by every worker's listener so that
/// the cap counts them all. Touched on connect, close and eviction only; requests update their
/// connection's atomics.
#[derive(Default)]
pub struct Conns {
    open: Mutex<HashMap<u64, Arc<Conn>>>,
    count: AtomicUsize,
    next_id: AtomicU64,
    closed: Notify,
}

impl Conns {
    fn add(&self, now_ms: u64) -> (u64, Arc<Conn>) {
        let id = self.next_id.fetch_add(1, Relaxed);
        let c = Arc::new(Conn {
            evicted: std::sync::atomic::AtomicBool::new(false),
            in_flight: AtomicU32::new(0),
            last_active_ms: AtomicU64::new(now_ms),
            signal: Signal::default(),
        });
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, c.clone());
        self.count.fetch_add(1, Relaxed);
        (id, c)
    }

    fn remove(&self, id: u64) {
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        self.count.fetch_sub(1, Relaxed);
        self.closed.notify_waiters();
    }

    /// Asks the connection idle the longest to close; false when none is idle.
    fn evict_idle(&self) -> bool {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let victim = open
            .values()
            .filter(|c| c.in_flight.load(Relaxed) == 0 && !c.evicted.load(Relaxed))
            .min_by_key(|c| c.last_active_ms.load(Relaxed));
        match victim {
            Some(c) => {
                c.evicted.store(true, Relaxed);
                c.signal.raise(Signal::CLOSE);
                true
            }
            None => false,
        }
    }

    /// Asks every open connection to finish its in-flight requests and close.
    fn finish_all(&self) {
        for c in self.open.lock().unwrap_or_else(|p| p.into_inner()).values() {
            c.signal.raise(Signal::FINISH);
        }
    }

    async fn wait_below(&self, max: usize) {
        loop {
            let closed = self.closed.notified();
            if self.count.load(Relaxed) < max {
                return;
            }
            closed.await;
        }
    }
}

/// Serves one connection until it ends or is evicted.
#[allow(clippy::too_many_arguments)]
async fn run_conn<IO>(
    io: IO,
    max_head_bytes: usize,
    proto: &'static str,
    client: std::net::SocketAddr,
    shared: Arc<Shared>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    conn_state: Arc<Conn>,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (io, verdicts) = framing::Watched::new(io, max_head_bytes);
    let io = TokioIo::new(io);
    let downstream = Arc::new(forward::Downstream::new(client, proto));
    let svc_conn = conn_state.clone();
    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let shared = shared.clone();
        let downstream = downstream.clone();
        let c = svc_conn.clone();
        c.in_flight.fetch_add(1, Relaxed);
        let both_lengths =
            req.version() < http::Version::HTTP_2 && verdicts.next_has_both_lengths();
        async move {
            let resp = if both_lengths {
                Ok(forward::refuse_framing(
                    client,
                    "both Content-Length and Transfer-Encoding",
                ))
            } else {
                forward::handle(shared.clone(), downstream, req).await
            };
            c.last_active_ms.store(shared.now_ms(), Relaxed);
            c.in_flight.fetch_sub(1, Relaxed);
            resp
        }
    });
    let mut conn = std::pin::pin!(builder.serve_connection_with_upgrades(io, svc));
    let signal = &conn_state.signal;
    let mut known: Option<std::task::Waker> = None;
    let mut finishing = false;
    let ended = std::future::poll_fn(|cx| {
        signal.listen(&mut known, cx.waker());
        match signal.raised.load(std::sync::atomic::Ordering::Acquire) {
            Signal::CLOSE => return std::task::Poll::Ready(None),
            Signal::FINISH if !finishing => {
                finishing = true;
                conn.as_mut().graceful_shutdown();
            }
            _ => {}
        }
        conn.as_mut().poll(cx).map(Some)
    })
    .await;
    match ended {
        Some(Err(e)) => {
            tracing::debug!(client = %client, error = %e, "connection ended with an error");
        }
        Some(Ok(())) => {}
        None => tracing::debug!(client = %client, "idle connection evicted: at max_connections"),
    }
}

/// A request to a connection from outside its task: one atomic word and the task's waker.
/// Looked at on every wake of the connection, so the check is one load and a waker compare;
/// the lock is taken only when the waker changes or a signal is raised. (A `Notify` and
/// hyper-util's graceful watcher each took a lock on every wake.)
#[derive(Default)]
struct Signal {
    raised: std::sync::atomic::AtomicU8,
    waker: Mutex<Option<std::task::Waker>>,
}

impl Signal {
    /// Finish the in-flight requests, then close (graceful shutdown).
    const FINISH: u8 = 1;
    /// Close now (eviction).
    const CLOSE: u8 = 2;

    /// Leaves the connection task's waker with the signal when it is not the one left
    /// last (`known`); then a raised signal wakes the task.
    fn listen(&self, known: &mut Option<std::task::Waker>, waker: &std::task::Waker) {
        if !known.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *self.waker.lock().unwrap_or_else(|p| p.into_inner()) = Some(waker.clone());
            *known = Some(waker.clone());
        }
    }

    fn raise(&self, what: u8) {
        self.raised
            .fetch_max(what, std::sync::atomic::Ordering::AcqRel);
        if let Some(w) = self
            .waker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            w.wake_by_ref();
        }
    }
}

/// hyper's own limit on request header fields.
const HYPER_MAX_HEADERS: usize = 100;

fn builder(ds: &DownstreamConfig) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(ds.header_read_timeout)
        .max_buf_size(ds.max_header_bytes.max(8192));
    if ds.max_headers != HYPER_MAX_HEADERS {
        // hyper parses into a stack array at its default limit; set, the limit costs a
        // vector made (and filled) for every request head
        b.http1().max_headers(ds.max_headers);
    }
    b.http2()
        .enable_connect_protocol()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(ds.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(ds.header_read_timeout);
    b
}

/// Serves `listener` until `shutdown` completes, then lets open connections (of every listener
/// sharing `conns`) finish their in-flight requests for up to `drain` (HTTP/1 connections close after their current
/// response, HTTP/2 connections get GOAWAY). Returns whether everything drained in time.
pub async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
    ds: DownstreamConfig,
    conns: Arc<Conns>,
) -> bool {
    let builder = Arc::new(builder(&ds));
    let open = metrics::gauge!(telemetry::OPEN_CONNECTIONS);
    tokio::pin!(shutdown);
    loop {
        if ds.on_max_connections == OnMaxConnections::Wait
            && conns.count.load(Relaxed) >= ds.max_connections
        {
            tokio::select! {
                () = conns.wait_below(ds.max_connections) => {}
                () = &mut shutdown => break,
            }
        }
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, client) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // e.g. too many open files: back off briefly instead of spinning
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let evicting = conns
                    .open
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .values()
                    .filter(|c| c.evicted.load(Relaxed))
                    .count();
                if conns.count.load(Relaxed).saturating_sub(evicting) >= ds.max_connections {
                    match ds.on_max_connections {
                        OnMaxConnections::Refuse => {
                            tracing::debug!(client = %client, "connection refused: at max_connections");
                            drop(stream);
                            continue;
                        }
                        OnMaxConnections::EvictIdle => {
                            if conns.evict_idle() {
                                // let the evicted connection's task (often one of this
                                // worker's) run and close before accepting more
                                tokio::task::yield_now().await;
                            } else {
                                conns.wait_below(ds.max_connections).await;
                            }
                        }
                        OnMaxConnections::Wait => {}
                    }
                }
                let _ = stream.set_nodelay(true);
                let (id, conn_state) = conns.add(shared.now_ms());
                let (shared, builder, tls, conns) = (shared.clone(), builder.clone(), tls.clone(), conns.clone());
                let open = open.clone();
                let handshake_timeout = ds.header_read_timeout;
                let max_head_bytes = ds.max_header_bytes;
                open.increment(1.0);
                tokio::spawn(async move {
                    match tls {
                        None => run_conn(stream, max_head_bytes, "http", client, shared, builder, conn_state).await,
                        Some(acceptor) => {
                            let mut stream = stream;
                            if crate::tls::refuse_outdated(&mut stream).await {
                                tracing::debug!(client = %client, "refused a client older than TLS 1.2");
                                conns.remove(id);
                                open.decrement(1.0);
                                return;
                            }
                            match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                                Ok(Ok(s)) => run_conn(s, max_head_bytes, "https", client, shared, builder, conn_state).await,
                                Ok(Err(e)) => tracing::debug!(client = %client, error = %e, "TLS handshake failed"),
                                Err(_) => tracing::debug!(client = %client, "TLS handshake timed out"),
                            }
                        }
                    }
                    conns.remove(id);
                    open.decrement(1.0);
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    conns.finish_all();
    tokio::select! {
        () = conns.wait_below(1) => true,
        () = tokio::time::sleep(drain) => false,
    }
}
