//! A whole proxy process as a library: listeners, admin API, metrics upkeep, the optional
//! controller subscription, and a graceful stop. `sluice-proxy` and `sluice proxy` run it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::ProxyConfig;
use crate::control::admin;
use crate::control::subscriber::{self, SubscribeOptions};
use crate::downstream::server;
use crate::downstream::server::Balance;
use crate::error::{Error, Result};
use crate::state::Shared;

/// A running proxy.
pub struct RunningProxy {
    /// Traffic listener address.
    pub listen: SocketAddr,
    /// Admin listener address.
    pub admin: SocketAddr,
    /// TLS listener address, when TLS is configured.
    pub tls: Option<SocketAddr>,
    /// Its state.
    pub shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    done: tokio::task::JoinHandle<bool>,
}

impl RunningProxy {
    /// Starts stopping: not ready, no new connections, in-flight requests drain.
    pub fn stop(&self) {
        self.shared.start_draining();
        let _ = self.stop.send(true);
    }

    /// Waits until stopped; true when every in-flight request finished in time.
    pub async fn wait(self) -> bool {
        self.done.await.unwrap_or(false)
    }
}

/// Starts a proxy. With `control`, the table comes from the controller and the file's
/// routes must be empty.
pub async fn start(
    config: &ProxyConfig,
    control: Option<SubscribeOptions>,
    prometheus: Option<PrometheusHandle>,
    token: Option<String>,
) -> Result<RunningProxy> {
    let upstream: crate::upstream::UpstreamSettings = (&config.upstream).into();
    let mut state = Shared::new(&upstream, prometheus.clone(), token);
    state.settings = crate::state::RequestSettings {
        ejection: upstream.ejection,
        forwarded: config.downstream.forwarded,
        trusted: config
            .downstream
            .trusted_proxies
            .iter()
            .filter_map(|c| crate::downstream::headers::Cidr::parse(c))
            .collect(),
        access_log: config.access_log,
    };
    let shared = Arc::new(state);
    if control.is_some() {
        if !config.routes.is_empty() || !config.backends.is_empty() {
            return Err(Error::invalid(
                "routes",
                "a proxy subscribed to a controller gets its routes from it; remove backends and routes from the file",
            ));
        }
    } else {
        shared.apply(config.table()).await?;
        shared.set_ready(true);
    }
    let workers = config.downstream.worker_count();
    shared.workers.set_count(workers);
    let tls = match &config.tls {
        Some(t) => Some((
            Arc::new(crate::downstream::tls::Tls::load(t)?),
            bind_workers(&t.listen, workers).await?,
        )),
        None => None,
    };
    let listeners = bind_workers(&config.listen, workers).await?;
    let admin_listener = bind(&config.admin.listen).await?;
    let local = |l: &std::net::TcpListener, addr: &str| {
        l.local_addr().map_err(|source| Error::Bind {
            addr: addr.to_owned(),
            source,
        })
    };
    let listen = local(&listeners[0], &config.listen)?;
    let tls_addr = match (&tls, &config.tls) {
        (Some((_, l)), Some(t)) => Some(local(&l[0], &t.listen)?),
        _ => None,
    };
    let admin_addr = admin_listener.local_addr().map_err(|source| Error::Bind {
        addr: config.admin.listen.clone(),
        source,
    })?;

    let (stop, stop_rx) = watch::channel(false);
    if let Some(h) = prometheus {
        let mut stopped = stop_rx.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tokio::select! {
                    _ = tick.tick() => h.run_upkeep(),
                    _ = stopped.wait_for(|s| *s) => break,
                }
            }
        });
    }
    let subscription = control
        .map(|opts| subscriber::spawn(shared.clone(), opts, stop_rx.clone()))
        .transpose()
        .map_err(|source| Error::Bind {
            addr: "controller subscription thread".into(),
            source,
        })?;
    let admin_app = admin::router(shared.clone(), config.admin.limits());
    let mut admin_stop = stop_rx.clone();
    let credentialed = admin::credentialed(&shared);
    let admin_limits = config.admin.limits().within_descriptors();
    let admin_task = tokio::spawn(async move {
        sluice_io::listener::serve(
            admin_listener,
            admin_app,
            admin_limits,
            credentialed,
            async move {
                let _ = admin_stop.wait_for(|s| *s).await;
            },
        )
        .await;
    });
    tokio::spawn(probe_loop(shared.clone(), stop_rx.clone()));
    let conns = Arc::new(server::Conns::default());
    let (clock, mut stopped) = (shared.clone(), stop_rx.clone());
    tokio::spawn(server::expire_idle(
        conns.clone(),
        config.downstream.header_read_timeout,
        move || clock.now_ms(),
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        },
    ));
    let tls_watch = tls.as_ref().map(|(t, _)| tokio::spawn(t.clone().watch()));
    let serving = Serving {
        shared: shared.clone(),
        stop: stop_rx,
        drain: config.drain_timeout,
        downstream: config.downstream.clone(),
        conns,
        upstream_request_timeout: config.upstream.request_timeout,
    };
    let mut tls_listeners = tls.map(|(t, l)| (t.acceptor.clone(), l.into_iter()));
    // one balance between the workers per listening address
    let exact = config.downstream.connection_balance == crate::config::ConnectionBalance::Exact;
    let balances = || -> std::vec::IntoIter<Option<Balance>> {
        if exact && workers > 1 {
            Balance::between(workers)
                .into_iter()
                .map(Some)
                .collect::<Vec<_>>()
        } else {
            (0..workers).map(|_| None).collect()
        }
        .into_iter()
    };
    let (mut plain_balance, mut tls_balance) = (balances(), balances());
    let mut finished = Vec::with_capacity(workers);
    for (i, plain) in listeners.into_iter().enumerate() {
        let tls = tls_listeners.as_mut().and_then(|(a, l)| {
            Some(Listening {
                socket: l.next()?,
                acceptor: Some(a.clone()),
                balance: tls_balance.next().flatten(),
            })
        });
        let plain = Listening {
            socket: plain,
            acceptor: None,
            balance: plain_balance.next().flatten(),
        };
        finished.push(serving.clone().spawn_worker(i + 1, plain, tls)?);
    }
    let done = tokio::spawn(async move {
        let mut drained = true;
        for f in finished {
            drained &= f.await.unwrap_or(false);
        }
        if let Some(w) = tls_watch {
            w.abort();
        }
        let _ = admin_task.await;
        if let Some(s) = subscription {
            let _ = tokio::time::timeout(Duration::from_secs(3), s).await;
        }
        drained
    });
    tracing::info!(listen = %listen, admin = %admin_addr, workers, "sluice-proxy started");
    Ok(RunningProxy {
        listen,
        admin: admin_addr,
        tls: tls_addr,
        shared,
        stop,
        done,
    })
}

/// One listening socket of a worker, with what serves its connections.
struct Listening {
    socket: std::net::TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    balance: Option<Balance>,
}

/// What every worker thread needs to serve clients.
#[derive(Clone)]
struct Serving {
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
    drain: Duration,
    downstream: crate::config::DownstreamConfig,
    conns: Arc<server::Conns>,
    /// The upstream's response-head timeout, which the worker's deadline ticker keeps.
    upstream_request_timeout: Duration,
}

impl Serving {
    /// Starts worker `n`: a thread with its own single-threaded event loop serving its own
    /// listening sockets, until the stop; the receiver says whether its connections drained
    /// in time.
    fn spawn_worker(
        self,
        n: usize,
        plain: Listening,
        tls: Option<Listening>,
    ) -> Result<tokio::sync::oneshot::Receiver<bool>> {
        let (done, finished) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name(format!("sluice-worker-{n}"))
            .spawn(move || {
                crate::worker::enter(n);
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!(worker = n, error = %e, "worker event loop not started");
                        let _ = done.send(false);
                        return;
                    }
                };
                let drained = runtime.block_on(self.serve(plain, tls));
                let _ = done.send(drained);
            })
            .map_err(|source| Error::Bind {
                addr: format!("worker thread {n}"),
                source,
            })?;
        Ok(finished)
    }

    async fn serve(self, plain: Listening, tls: Option<Listening>) -> bool {
        let one = |listening: Listening| {
            let s = self.clone();
            async move {
                let listener = match TcpListener::from_std(listening.socket) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!(error = %e, "listener not served");
                        return false;
                    }
                };
                let mut stop = s.stop.clone();
                server::serve(
                    listener,
                    listening.acceptor,
                    s.shared,
                    async move {
                        let _ = stop.wait_for(|s| *s).await;
                    },
                    s.drain,
                    s.downstream,
                    s.conns,
                    listening.balance,
                )
                .await
            }
        };
        // kept until the connections have drained: their requests' deadlines still count
        let (ticker_stop, ticker_stopped) = tokio::sync::oneshot::channel::<()>();
        let ticker = tokio::spawn(crate::upstream::deadline::run_ticker(
            crate::upstream::deadline::tick_for(self.upstream_request_timeout),
            async move {
                let _ = ticker_stopped.await;
            },
        ));
        let plain = one(plain);
        let drained = match tls {
            Some(l) => {
                let (a, b) = tokio::join!(plain, one(l));
                a && b
            }
            None => plain.await,
        };
        let _ = ticker_stop.send(());
        let _ = ticker.await;
        drained
    }
}

/// `n` listening sockets on one address, sharing it through `SO_REUSEPORT`: the kernel spreads
/// new connections over them, one per worker. A plain bind first checks that nobody holds the
/// address (a second proxy joining the group would take a share of the connections).
async fn bind_workers(addr: &str, n: usize) -> Result<Vec<std::net::TcpListener>> {
    let failed = |source: std::io::Error| Error::Bind {
        addr: addr.to_owned(),
        source,
    };
    let probe = bind(addr).await?;
    let mut at = probe.local_addr().map_err(failed)?;
    drop(probe);
    let mut out = Vec::with_capacity(n);
    for _ in 0..n.max(1) {
        let socket = if at.is_ipv4() {
            tokio::net::TcpSocket::new_v4()
        } else {
            tokio::net::TcpSocket::new_v6()
        }
        .map_err(failed)?;
        socket.set_reuseaddr(true).map_err(failed)?;
        socket.set_reuseport(true).map_err(failed)?;
        socket.bind(at).map_err(failed)?;
        let listener = socket.listen(1024).map_err(failed)?;
        at = listener.local_addr().map_err(failed)?;
        out.push(listener.into_std().map_err(failed)?);
    }
    Ok(out)
}

/// Active health checks: probes every endpoint of every backend that asks for them, when due.
async fn probe_loop(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let table = shared.table();
        let now = shared.now_ms();
        for b in table.backends() {
            let Some(hc) = b.spec.health_check.clone() else {
                continue;
            };
            for e in &b.endpoints {
                if !e.health.probe_due(now, hc.interval) {
                    continue;
                }
                let (e, hc, name) = (e.clone(), hc.clone(), b.name.clone());
                tokio::spawn(async move {
                    let ok = crate::upstream::health::probe(
                        e.authority.as_str(),
                        hc.path.as_deref(),
                        hc.timeout,
                    )
                    .await;
                    if e.health
                        .probe(ok, hc.healthy_threshold, hc.unhealthy_threshold)
                    {
                        tracing::warn!(backend = %name, endpoint = %e.authority, healthy = ok, "endpoint health changed");
                    }
                });
            }
        }
    }
}

async fn bind(addr: &str) -> Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|source| Error::Bind {
        addr: addr.to_owned(),
        source,
    })
}
