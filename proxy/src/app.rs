//! A whole proxy process as a library: listeners, admin API, metrics upkeep, the optional
//! controller subscription, and a graceful stop. `sluice-proxy` and `sluice proxy` run it.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::ProxyConfig;
use crate::control::subscriber::{self, SubscribeOptions};
use crate::error::{Error, Result};
use crate::state::Shared;
use crate::{admin, server};

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
            .filter_map(|c| crate::headers::Cidr::parse(c))
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
    let tls = match &config.tls {
        Some(t) => Some((Arc::new(crate::tls::Tls::load(t)?), bind(&t.listen).await?)),
        None => None,
    };
    let listener = bind(&config.listen).await?;
    let admin_listener = bind(&config.admin.listen).await?;
    let listen = listener.local_addr().map_err(|source| Error::Bind {
        addr: config.listen.clone(),
        source,
    })?;
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
    let subscription =
        control.map(|opts| tokio::spawn(subscriber::run(shared.clone(), opts, stop_rx.clone())));
    let admin_app = admin::router(shared.clone());
    let mut admin_stop = stop_rx.clone();
    let admin_task = tokio::spawn(async move {
        let _ = axum::serve(admin_listener, admin_app)
            .with_graceful_shutdown(async move {
                let _ = admin_stop.wait_for(|s| *s).await;
            })
            .await;
    });
    tokio::spawn(probe_loop(shared.clone(), stop_rx.clone()));
    let tls_addr = match &tls {
        Some((_, l)) => Some(l.local_addr().map_err(|source| Error::Bind {
            addr: "tls".into(),
            source,
        })?),
        None => None,
    };
    let tls_task = tls.map(|(t, l)| {
        let watch = tokio::spawn(t.clone().watch());
        let shared = shared.clone();
        let mut stop = stop_rx.clone();
        let ds = config.downstream.clone();
        let drain = config.drain_timeout;
        tokio::spawn(async move {
            let drained = server::serve(
                l,
                Some(t.acceptor.clone()),
                shared,
                async move {
                    let _ = stop.wait_for(|s| *s).await;
                },
                drain,
                ds,
            )
            .await;
            watch.abort();
            drained
        })
    });
    let drain = config.drain_timeout;
    let downstream = config.downstream.clone();
    let serve_shared = shared.clone();
    let mut traffic_stop = stop_rx;
    let done = tokio::spawn(async move {
        let drained = server::serve(
            listener,
            None,
            serve_shared,
            async move {
                let _ = traffic_stop.wait_for(|s| *s).await;
            },
            drain,
            downstream,
        )
        .await;
        let tls_drained = match tls_task {
            Some(t) => t.await.unwrap_or(false),
            None => true,
        };
        let _ = admin_task.await;
        if let Some(s) = subscription {
            let _ = tokio::time::timeout(Duration::from_secs(3), s).await;
        }
        drained && tls_drained
    });
    tracing::info!(listen = %listen, admin = %admin_addr, "sluice-proxy started");
    Ok(RunningProxy {
        listen,
        admin: admin_addr,
        tls: tls_addr,
        shared,
        stop,
        done,
    })
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
                    let ok =
                        crate::health::probe(e.authority.as_str(), hc.path.as_deref(), hc.timeout)
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

/// Writes `text` to `path` through a temporary file and a rename.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(tmp, path)
}
