//! The downstream side: accepts connections and serves HTTP/1.1 and HTTP/2 (h2c, by prior
//! knowledge) on each: HTTP/1.1 with the own server ([`h1`]) for the requests it takes, and
//! with hyper-util's auto builder from the first it leaves (HTTP/2, upgrades). Limits the head size
//! and the header count, closes connections that take too long to send a head (which is also
//! the idle keep-alive time; the deadline is kept by [`Conns`]), caps open connections
//! (evicting the connection idle the longest, waiting, or refusing), and on shutdown stops
//! accepting and drains in-flight requests.

use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};

use crate::config::{DownstreamConfig, OnMaxConnections};
use crate::downstream::balance;
use crate::downstream::client_body::RequestBody;
pub use crate::downstream::conns::Conns;
use crate::downstream::conns::{Conn, Signal};
use crate::downstream::framing;
use crate::downstream::h1;
use crate::forward::{self, ProxyBody};
use crate::state::Shared;
use crate::telemetry::metrics as telemetry;

/// The two ways hyper serves a connection: from its first byte (HTTP/1 or HTTP/2, by what
/// the client sends), or after the own server has served requests on it (HTTP/1 only).
struct Builders {
    auto: auto::Builder<TokioExecutor>,
    http1: auto::Builder<TokioExecutor>,
}

/// How a connection is served, the same for every connection of a listener.
struct Serving {
    builders: Builders,
    /// The own server reads HTTP/1.1 heads first.
    own_http1: bool,
    limits: h1::head::Limits,
}

/// Serves one connection until it ends or is evicted: with the own HTTP/1.1 server first
/// (when on), then with hyper from the first request the own server leaves to it.
async fn run_conn<IO>(
    io: IO,
    proto: &'static str,
    client: std::net::SocketAddr,
    shared: Arc<Shared>,
    serving: Arc<Serving>,
    conn_state: Arc<Conn>,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let downstream = Arc::new(crate::downstream::headers::Downstream::new(client, proto));
    let (io, read, served) = if serving.own_http1 {
        let ended = h1::conn::serve(io, &conn_state, serving.limits, |req| {
            shared.workers.request(crate::worker::index());
            let (shared, downstream) = (shared.clone(), downstream.clone());
            async move {
                match forward::handle(shared, downstream, req).await {
                    Ok(r) => r,
                    Err(never) => match never {},
                }
            }
        })
        .await;
        match ended {
            h1::conn::Ended::Closed => return,
            h1::conn::Ended::Elsewhere { io, read, served } => (io, read, served),
        }
    } else {
        (io, bytes::Bytes::new(), false)
    };
    // boxed: hyper's connection state is not carried by every connection the own server
    // serves to the end
    let hyper = with_hyper(
        io, read, served, client, shared, downstream, serving, conn_state,
    );
    Box::pin(hyper).await;
}

/// Serves a connection with hyper, from the bytes `read` (a request the own server left to
/// it, or the connection's first bytes); `served` says whether the own server served requests
/// on it before.
#[allow(clippy::too_many_arguments)]
async fn with_hyper<IO>(
    io: IO,
    read: bytes::Bytes,
    served: bool,
    client: std::net::SocketAddr,
    shared: Arc<Shared>,
    downstream: Arc<crate::downstream::headers::Downstream>,
    serving: Arc<Serving>,
    conn_state: Arc<Conn>,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let builder = if served {
        &serving.builders.http1
    } else {
        &serving.builders.auto
    };
    let io = h1::rewind::Rewind::new(io, read);
    let io = framing::Watched::new(io, serving.limits.max_bytes, conn_state.verdicts.clone());
    let io = TokioIo::new(io);
    let svc_conn = conn_state.clone();
    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let shared = shared.clone();
        let downstream = downstream.clone();
        let conn = svc_conn.clone();
        conn.request_started();
        shared.workers.request(crate::worker::index());
        let refused = if req.version() < http::Version::HTTP_2 {
            conn.verdicts.next_refused()
        } else {
            None
        };
        async move {
            // the answer tells the connection when it has been sent whole (or dropped)
            let guard = Answering(conn);
            let resp = if let Some(why) = refused {
                forward::refuse_framing(client, why)
            } else {
                let req = req.map(RequestBody::Hyper);
                match forward::handle(shared, downstream, req).await {
                    Ok(r) => r,
                    Err(never) => match never {},
                }
            };
            Ok::<_, std::convert::Infallible>(resp.map(|body| Answer::new(body, guard)))
        }
    });
    let mut conn = std::pin::pin!(builder.serve_connection_with_upgrades(io, svc));
    let signal = &conn_state.signal;
    let mut known: Option<std::task::Waker> = None;
    let mut finishing = false;
    let ended = std::future::poll_fn(|cx| {
        signal.listen(&mut known, cx.waker());
        match signal.raised() {
            Signal::NONE => {}
            Signal::FINISH => {
                if !finishing {
                    finishing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
            closed => return Poll::Ready(Err(closed)),
        }
        conn.as_mut().poll(cx).map(Ok)
    })
    .await;
    match ended {
        Ok(Err(e)) => {
            tracing::debug!(client = %client, error = %e, "connection ended with an error");
        }
        Ok(Ok(())) => {}
        Err(Signal::EVICT) => {
            tracing::debug!(client = %client, "idle connection evicted: at max_connections");
            // its last answer may still be in hyper's write buffer (a request ends when its
            // body has been handed over): closed gracefully, which is at once for an idle
            // connection, and never longer than a second for a client that does not read
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(EVICTED_FLUSH, conn.as_mut()).await;
        }
        Err(_) => {
            tracing::debug!(client = %client, "closed: no request head within header_read_timeout");
        }
    }
}

/// Makes room under `max` for a connection just accepted: evicts the connection idle the
/// longest, or waits until one closes or has been idle long enough to be evicted.
async fn make_room(conns: &Conns, max: usize, now_ms: impl Fn() -> u64) {
    /// How often a wait for room looks again for a connection to evict.
    const LOOK_AGAIN: Duration =
        Duration::from_millis(crate::downstream::conns::EVICT_AFTER_MS / 5);
    while conns.staying() >= max {
        if conns.evict_idle(now_ms()) {
            // let the evicted connection's task (often one of this worker's) run and close
            // before accepting more
            tokio::task::yield_now().await;
            return;
        }
        let _ = tokio::time::timeout(LOOK_AGAIN, conns.wait_below(max)).await;
    }
}

/// How long an evicted connection may take to finish writing its last answer.
const EVICTED_FLUSH: Duration = Duration::from_secs(1);

/// Ends its request on the connection when dropped: with the answer's body, once hyper has
/// sent it whole or given it up; with the handler's future, if the connection ends first.
struct Answering(Arc<Conn>);

impl Drop for Answering {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

/// An answer's body, holding its request open on the connection until it is dropped.
type Answer = crate::forward::body::Holding<ProxyBody, Answering>;

/// Closes the HTTP/1 connections that have had no request in flight for `limit` (idle, or
/// sending a head too slowly), a few times per `limit`, until `stop` completes. `now_ms` is
/// the clock.
pub async fn expire_idle(
    conns: Arc<Conns>,
    limit: Duration,
    now_ms: impl Fn() -> u64,
    stop: impl Future<Output = ()>,
) {
    let limit_ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
    let mut tick = tokio::time::interval(crate::downstream::conns::sweep_interval(limit));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let expired = conns.expire_idle(now_ms(), limit_ms);
                if expired > 0 {
                    tracing::debug!(expired, "connections closed: no request head within header_read_timeout");
                }
            }
            () = &mut stop => return,
        }
    }
}

/// hyper's own limit on request header fields.
const HYPER_MAX_HEADERS: usize = 100;

fn builder(ds: &DownstreamConfig) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    // the head deadline is the connection sweep's (`expire_idle`), not a timer per request
    b.http1()
        .header_read_timeout(None)
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

/// What starting a connection needs, the same for every connection of a listener.
struct Starting {
    shared: Arc<Shared>,
    serving: Arc<Serving>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    conns: Arc<Conns>,
    open: metrics::Gauge,
    handshake_timeout: Duration,
}

/// A connection handed from the worker that accepted it to the one that serves it, already
/// counted: against `max_connections`, and in that worker's open connections.
pub struct Handed {
    stream: std::net::TcpStream,
    client: std::net::SocketAddr,
    conn: Arc<Conn>,
    leaving: Leaving,
}

/// One worker's end of the balance of connections between the workers.
pub type Balance = balance::Balance<Handed>;

impl Starting {
    /// Counts a connection just accepted, to be served by worker `to`.
    fn register(&self, to: usize) -> (Arc<Conn>, Leaving) {
        let (id, conn) = self.conns.add(self.shared.now_ms());
        self.open.increment(1.0);
        self.shared.workers.assign(to);
        let leaving = Leaving {
            shared: self.shared.clone(),
            conns: self.conns.clone(),
            open: self.open.clone(),
            id,
            worker: to,
        };
        (conn, leaving)
    }

    /// Serves a counted connection on its own task of this worker.
    fn start(
        &self,
        stream: TcpStream,
        client: std::net::SocketAddr,
        conn_state: Arc<Conn>,
        leaving: Leaving,
    ) {
        let _ = stream.set_nodelay(true);
        let (shared, serving) = (self.shared.clone(), self.serving.clone());
        let handshake_timeout = self.handshake_timeout;
        // a task of its own type for each: a plain connection's task is not sized for a TLS
        // session it never has
        match self.tls.clone() {
            None => {
                tokio::spawn(async move {
                    run_conn(stream, "http", client, shared, serving, conn_state).await;
                    drop(leaving);
                });
            }
            Some(acceptor) => {
                tokio::spawn(async move {
                    let mut stream = stream;
                    if crate::downstream::tls::refuse_outdated(&mut stream).await {
                        tracing::debug!(client = %client, "refused a client older than TLS 1.2");
                    } else {
                        match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await
                        {
                            Ok(Ok(s)) => {
                                run_conn(s, "https", client, shared, serving, conn_state).await
                            }
                            Ok(Err(e)) => {
                                tracing::debug!(client = %client, error = %e, "TLS handshake failed")
                            }
                            Err(_) => tracing::debug!(client = %client, "TLS handshake timed out"),
                        }
                    }
                    drop(leaving);
                });
            }
        }
    }

    /// A connection this worker accepted: handed to the worker serving the fewest when that
    /// is another, else served here.
    fn accepted(&self, balance: Option<&Balance>, stream: TcpStream, client: std::net::SocketAddr) {
        let me = balance.map_or_else(crate::worker::index, |b| b.me);
        let to = balance.map_or(me, |_| balance::pick(me, self.shared.workers.open()));
        let (conn, leaving) = self.register(to);
        let Some(balance) = balance.filter(|_| to != me) else {
            return self.start(stream, client, conn, leaving);
        };
        let stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(client = %client, error = %e, "connection not handed over");
                return;
            }
        };
        let handed = Handed {
            stream,
            client,
            conn,
            leaving,
        };
        // that worker has stopped: served here after all
        if let Err(mut back) = balance.hand(to, handed) {
            self.shared.workers.release(to);
            self.shared.workers.assign(me);
            back.leaving.worker = me;
            self.handed(back);
        }
    }

    /// A connection another worker handed to this one.
    fn handed(&self, handed: Handed) {
        let Handed {
            stream,
            client,
            conn,
            leaving,
        } = handed;
        match TcpStream::from_std(stream) {
            Ok(stream) => self.start(stream, client, conn, leaving),
            Err(e) => {
                tracing::debug!(client = %client, error = %e, "connection handed over dropped")
            }
        }
    }
}

/// Takes a connection off the counts when it ends, however it ends (served, or dropped before
/// it could be).
struct Leaving {
    shared: Arc<Shared>,
    conns: Arc<Conns>,
    open: metrics::Gauge,
    id: u64,
    worker: usize,
}

impl Drop for Leaving {
    fn drop(&mut self) {
        self.conns.remove(self.id);
        self.open.decrement(1.0);
        self.shared.workers.release(self.worker);
    }
}

/// Serves `listener` until `shutdown` completes, then lets open connections (of every listener
/// sharing `conns`) finish their in-flight requests for up to `drain` (HTTP/1 connections close after their current
/// response, HTTP/2 connections get GOAWAY). Returns whether everything drained in time. With
/// `balance`, each connection accepted is served by the worker serving the fewest, and the
/// connections other workers hand to this one are served here too.
#[allow(clippy::too_many_arguments)]
pub async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
    ds: DownstreamConfig,
    conns: Arc<Conns>,
    mut balance: Option<Balance>,
) -> bool {
    let starting = Starting {
        shared: shared.clone(),
        serving: Arc::new(Serving {
            builders: Builders {
                auto: builder(&ds),
                http1: builder(&ds).http1_only(),
            },
            own_http1: ds.http1_server == crate::config::Http1Server::Sluice,
            limits: h1::head::Limits {
                max_bytes: ds.max_header_bytes.max(8192),
                max_headers: ds.max_headers,
            },
        }),
        tls,
        conns: conns.clone(),
        open: metrics::gauge!(telemetry::OPEN_CONNECTIONS),
        handshake_timeout: ds.header_read_timeout,
    };
    tokio::pin!(shutdown);
    loop {
        if ds.on_max_connections == OnMaxConnections::Wait && conns.count() >= ds.max_connections {
            tokio::select! {
                () = conns.wait_below(ds.max_connections) => {}
                () = &mut shutdown => break,
            }
        }
        tokio::select! {
            handed = handed_to(balance.as_mut()) => starting.handed(handed),
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
                if conns.staying() >= ds.max_connections {
                    match ds.on_max_connections {
                        OnMaxConnections::Refuse => {
                            tracing::debug!(client = %client, "connection refused: at max_connections");
                            drop(stream);
                            continue;
                        }
                        OnMaxConnections::EvictIdle => {
                            make_room(&conns, ds.max_connections, || shared.now_ms()).await;
                        }
                        OnMaxConnections::Wait => {}
                    }
                }
                shared.workers.accepted(crate::worker::index());
                starting.accepted(balance.as_ref(), stream, client);
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    // connections handed over but not yet started are closed, as the listener's backlog is
    drop(balance);
    conns.finish_all();
    tokio::select! {
        () = conns.wait_below(1) => true,
        () = tokio::time::sleep(drain) => false,
    }
}

/// The next connection another worker hands to this one; never, without a balance.
async fn handed_to(balance: Option<&mut Balance>) -> Handed {
    match balance {
        Some(b) => match b.inbox.recv().await {
            Some(h) => h,
            // every sender gone: nothing more will come
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// What a connection's task holds while it waits for a request is about the size of its
    /// future: the request path's state and hyper's are boxed, not held by every connection.
    #[test]
    fn a_connections_task_holds_neither_the_request_path_nor_hyper() {
        let shared = Arc::new(Shared::new(
            &crate::upstream::UpstreamSettings::default(),
            None,
            None,
        ));
        let conns = Conns::default();
        let (_, conn) = conns.add(0);
        let ds = DownstreamConfig::default();
        let serving = Arc::new(Serving {
            builders: Builders {
                auto: builder(&ds),
                http1: builder(&ds).http1_only(),
            },
            own_http1: true,
            limits: h1::head::Limits {
                max_bytes: 8192,
                max_headers: 100,
            },
        });
        let client = "127.0.0.1:1".parse().unwrap();
        let (io, _other) = tokio::io::duplex(16);
        let task = run_conn(io, "http", client, shared.clone(), serving, conn);
        let downstream = Arc::new(crate::downstream::headers::Downstream::new(client, "http"));
        let request = http::Request::new(RequestBody::Empty);
        let request_path = forward::handle(shared, downstream, request);
        let (task, request_path) = (size_of_val(&task), size_of_val(&request_path));
        assert!(task < 1024, "a connection's task: {task} bytes");
        assert!(
            task < request_path,
            "{task} bytes, the request path {request_path}"
        );
    }
}
