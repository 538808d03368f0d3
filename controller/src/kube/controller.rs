//! `sluice controller --kubernetes`: the reconcile loop on a cluster, for the rollouts of every
//! namespace (or of the one given). It keeps its lease, state and routes in its own namespace
//! (`POD_NAMESPACE`, else the client's). In order: the probes (`/healthz` always, `/readyz`
//! once its watches have listed everything, so that a Deployment of several candidates can
//! roll), the watches, the election. In a pod (`POD_NAME`) it labels itself
//! `sluice.dev/leader` — `"false"` at start, `"true"` once leading — and the control API's
//! Service selects the leader by that label, so proxies and the CLI reach the leader alone.
//! Once leading, the state and the routes are read from the API server, the loop runs, the
//! control API serves, and every watch event wakes the loop. A leader that cannot renew its
//! lease stops with an error, so that the Deployment restarts it as a candidate: two
//! controllers never act at once.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::Client;
use kube::api::Api;
use tokio::sync::watch;

use super::cache::{self, Cache};
use super::leader::{self, Elector};
use super::port::KubePort;
use super::stored::{RoutesStore, Stored};
use crate::Error;
use crate::control::api::ApiState;
use crate::control::hub::{Hub, HubConfig};
use crate::reconcile::Reconciler;
use crate::server;
use crate::spec::defaults;

/// The Lease the controllers of a namespace compete for.
pub const LEASE: &str = "sluice-controller";
/// The ConfigMap that holds the hub's routes and generations.
pub const ROUTES_CONFIGMAP: &str = "sluice-controller-routes";

/// How the Kubernetes controller runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The namespace whose rollouts it runs (default: every namespace).
    pub namespace: Option<String>,
    /// Control API listener.
    pub listen: String,
    /// Probe listener (`/healthz`, `/readyz`).
    pub probe_listen: String,
    /// The operator token's file (else `SLUICE_TOKEN`).
    pub token_file: Option<PathBuf>,
    /// The proxies' tokens file, if any.
    pub proxy_tokens_file: Option<PathBuf>,
    /// This candidate's identity (default: `POD_NAME`, else the host name and process id).
    pub identity: Option<String>,
    /// How long the lead is held without renewing.
    pub lease: Duration,
    /// Whether routes carry the debug response headers.
    pub debug_headers: bool,
    /// The dashboard's listener, if any.
    pub dashboard: Option<String>,
}

fn identity(given: Option<String>) -> String {
    given
        .or_else(|| std::env::var("POD_NAME").ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| format!("sluice-{}", std::process::id()))
}

async fn probes(
    listener: tokio::net::TcpListener,
    ready: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let listed = *ready.borrow();
                async move {
                    if listed {
                        (StatusCode::OK, "ready\n")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "listing the cluster\n")
                    }
                }
            }),
        );
    axum::serve(listener, app).await
}

async fn bind(addr: &str) -> Result<tokio::net::TcpListener, Error> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Start(format!("cannot listen on {addr}: {e}")))
}

/// Runs until `stop` resolves (`Ok`) or the lead is lost (`Err`).
pub async fn run(
    options: Options,
    stop: impl std::future::Future<Output = ()>,
    on_listening: impl FnOnce(SocketAddr),
) -> Result<(), Error> {
    let client = Client::try_default()
        .await
        .map_err(|e| Error::Start(format!("no Kubernetes API server: {e}")))?;
    let home = std::env::var("POD_NAMESPACE")
        .ok()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| client.default_namespace().to_owned());
    let scope = options.namespace.as_deref();
    let credentials = server::credentials(
        options.token_file.as_deref(),
        Some("SLUICE_TOKEN"),
        options.proxy_tokens_file.as_deref(),
    )?;
    let (ready_tx, ready_rx) = watch::channel(false);
    let probe_listener = bind(&options.probe_listen).await?;
    let probes_task = tokio::spawn(probes(probe_listener, ready_rx));

    let own_pod = std::env::var("POD_NAME").ok().filter(|n| !n.is_empty());
    let pods = Api::<Pod>::namespaced(client.clone(), &home);
    if let Some(pod) = &own_pod {
        leader::mark(&pods, pod, false).await?;
    }
    let (cache, writers) = Cache::new();
    let watches = cache::watch(&client, scope, &cache, writers);
    cache.ready().await;
    ready_tx.send_replace(true);
    let elector = Elector::new(
        Api::<Lease>::namespaced(client.clone(), &home),
        LEASE,
        &identity(options.identity.clone()),
        options.lease,
    );
    let watched = scope.unwrap_or("every namespace").to_owned();
    tracing::info!(namespace = %home, watched = %watched, identity = %elector.identity(), "waiting to lead");
    elector.acquire().await;
    if let Some(pod) = &own_pod {
        leader::mark(&pods, pod, true).await?;
    }

    let configmaps = Api::<ConfigMap>::namespaced(client.clone(), &home);
    let routes =
        RoutesStore::open(Stored::new(configmaps, ROUTES_CONFIGMAP, "routes.json")).await?;
    let hub = Arc::new(Hub::open(HubConfig {
        lease: Duration::from_secs(u64::from(defaults::LEASE_SECONDS)),
        store: Some(Arc::new(routes)),
        ..HubConfig::default()
    })?);
    let port = KubePort::open(client, &home, cache.clone(), options.debug_headers).await?;
    let runtime = Reconciler::open(port, hub.clone())?;
    let listener = bind(&options.listen).await?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::Start(e.to_string()))?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let sampler = tokio::spawn(server::sample(hub.clone()));
    let page = match &options.dashboard {
        Some(at) => Some(server::dashboard_listener(at, &credentials).await?),
        None => None,
    };
    let state = Arc::new(ApiState {
        hub,
        rollouts: runtime.clone(),
        credentials,
    });
    let page_task =
        page.map(|l| tokio::spawn(server::serve_dashboard(l, state.clone(), stop_rx.clone())));
    let api = tokio::spawn(server::serve_api(listener, state, stop_rx.clone()));
    let waker = {
        let runtime = runtime.clone();
        let changed = cache.changed.clone();
        tokio::spawn(async move {
            loop {
                changed.notified().await;
                runtime.wake();
            }
        })
    };
    let loop_task = tokio::spawn(runtime.clone().serve(stop_rx));
    tracing::info!(listen = %addr, watched = %watched, "sluice controller leading");
    on_listening(addr);

    let result = tokio::select! {
        () = elector.keep() => Err(Error::Start("lost the lead; stopping".into())),
        () = stop => Ok(()),
    };
    ready_tx.send_replace(false);
    let _ = stop_tx.send(true);
    let _ = loop_task.await;
    let _ = tokio::time::timeout(Duration::from_secs(2), api).await;
    if let Some(p) = page_task {
        let _ = tokio::time::timeout(Duration::from_secs(2), p).await;
    }
    for task in watches.into_iter().chain([waker, sampler]) {
        task.abort();
    }
    probes_task.abort();
    result
}
