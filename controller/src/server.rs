//! `sluice controller --config FILE`: the local runtime with its control API.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use sluice_io::listener::ApiLimits;
use sluice_io::token;

use sluice_api::FieldError;

use crate::Error;
use crate::spec::defaults;

use crate::control::api::{self, ApiState};
use crate::control::auth::{self, Credentials};
use crate::control::hub::{FileStore, Hub, HubConfig};
use crate::local::Runtime;
use crate::local::config::LocalConfig;
use crate::local::health;
use crate::local::port::LocalPort;
use crate::time::Time;

/// A running controller.
pub struct RunningController {
    /// Control API address.
    pub addr: SocketAddr,
    /// The dashboard's address, when it has one.
    pub dashboard: Option<SocketAddr>,
    /// The runtime.
    pub runtime: Arc<Runtime>,
    stop: watch::Sender<bool>,
    done: tokio::task::JoinHandle<()>,
}

impl RunningController {
    /// Stops everything.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.done.await;
    }
}

/// Samples the hub's counters once a second and expires proxies whose lease lapsed.
pub async fn sample(hub: Arc<Hub>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let now = Time::now();
        hub.sample(now);
        hub.expire(now);
    }
}

/// Serves the control API on `listener` until `stop` says so.
pub async fn serve_api(
    listener: tokio::net::TcpListener,
    state: Arc<ApiState>,
    stop: watch::Receiver<bool>,
) {
    serve(listener, state, false, stop).await;
}

/// Serves the dashboard's page beside the control API on `listener` until `stop` says so.
pub async fn serve_dashboard(
    listener: tokio::net::TcpListener,
    state: Arc<ApiState>,
    stop: watch::Receiver<bool>,
) {
    serve(listener, state, true, stop).await;
}

/// Binds the dashboard's listener. Its page acts with the operator token it is given, and
/// is read-only without it: a controller with no operator token would let anyone who can
/// reach the page act, so it is refused.
pub async fn dashboard_listener(
    addr: &str,
    credentials: &Credentials,
) -> Result<tokio::net::TcpListener, Error> {
    if credentials.is_open() {
        return Err(Error::Start(
            "--dashboard needs an operator token (--token-file or SLUICE_TOKEN), so that the page is read-only for whoever does not hold it".into(),
        ));
    }
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Start(format!("cannot listen on {addr} for the dashboard: {e}")))
}

async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<ApiState>,
    page: bool,
    mut stop: watch::Receiver<bool>,
) {
    let limits = ApiLimits {
        max_connections: 1024,
        max_body_bytes: 4 * 1024 * 1024,
        ..ApiLimits::default()
    }
    .within_descriptors();
    let mut app = api::router(state.clone(), limits);
    if page {
        app = crate::dashboard::router().merge(app);
    }
    let credentialed = api::credentialed(&state);
    sluice_io::listener::serve(listener, app, limits, credentialed, async move {
        let _ = stop.wait_for(|s| *s).await;
    })
    .await;
}

/// The operator token and the proxies' tokens, from their files or variables.
pub fn credentials(
    token_file: Option<&std::path::Path>,
    token_env: Option<&str>,
    proxy_tokens_file: Option<&std::path::Path>,
) -> Result<Credentials, Error> {
    let source = token::Source::configured(token_file, token_env);
    let token = token::read(source).map_err(|e| Error::Start(e.to_string()))?;
    let proxy_tokens = match proxy_tokens_file {
        None => Vec::new(),
        Some(f) => {
            let at = format!("spec.proxyTokensFile {}", f.display());
            let text = std::fs::read_to_string(f).map_err(|e| Error::field(&at, e.to_string()))?;
            auth::parse_proxy_tokens(&text).map_err(|errors| {
                Error::Invalid(
                    errors
                        .into_iter()
                        .map(|e| FieldError::new(format!("{at}: {}", e.path), e.reason))
                        .collect(),
                )
            })?
        }
    };
    Ok(Credentials::new(token, proxy_tokens))
}

/// Starts a controller on a loaded config.
pub async fn start(
    config: LocalConfig,
    listen: Option<String>,
    token_file: Option<PathBuf>,
    dashboard: Option<String>,
) -> Result<RunningController, Error> {
    let state_dir = config.state_dir();
    std::fs::create_dir_all(&state_dir)
        .map_err(|e| Error::Start(format!("cannot create {}: {e}", state_dir.display())))?;
    let token_file = token_file
        .as_deref()
        .or(config.runtime.token_file.as_deref());
    let credentials = credentials(
        token_file,
        config.runtime.token_env.as_deref(),
        config.runtime.proxy_tokens_file.as_deref(),
    )?;
    let hub = Arc::new(Hub::open(HubConfig {
        lease: Duration::from_secs(u64::from(
            config
                .runtime
                .lease_seconds
                .unwrap_or(defaults::LEASE_SECONDS),
        )),
        required: config.runtime.required_proxies.iter().cloned().collect(),
        store: Some(Arc::new(FileStore(state_dir.join("routes.json")))),
    })?);
    let listen = listen
        .or_else(|| config.runtime.listen.clone())
        .unwrap_or_else(|| defaults::CONTROL_LISTEN.to_owned());
    let hc = config.runtime.health_check.clone();
    let runtime = Runtime::open(LocalPort::new(config), hub.clone())?;
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| Error::Start(format!("cannot listen on {listen}: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::Start(e.to_string()))?;
    let page = match &dashboard {
        Some(at) => Some(dashboard_listener(at, &credentials).await?),
        None => None,
    };
    let page_addr = page.as_ref().and_then(|l| l.local_addr().ok());
    let (stop, stop_rx) = watch::channel(false);

    // health checks first, so that the first decisions see healthy endpoints
    let health = runtime.port().health();
    let interval = Duration::from_millis(
        hc.interval_millis
            .unwrap_or(defaults::HEALTH_INTERVAL_MILLIS),
    );
    let timeout =
        Duration::from_millis(hc.timeout_millis.unwrap_or(defaults::HEALTH_TIMEOUT_MILLIS));
    health.check_all(hc.path.as_deref(), timeout).await;
    let rt = runtime.clone();
    let health_task = tokio::spawn(health::run(
        health,
        hc.path.clone(),
        interval,
        timeout,
        move || rt.wake(),
    ));

    let sampler = tokio::spawn(sample(hub.clone()));
    let state = Arc::new(ApiState {
        hub,
        rollouts: runtime.clone(),
        credentials,
    });
    let page_task = page.map(|l| tokio::spawn(serve_dashboard(l, state.clone(), stop_rx.clone())));
    let server = tokio::spawn(serve_api(listener, state, stop_rx.clone()));
    let loop_task = tokio::spawn(runtime.clone().serve(stop_rx));
    let done = tokio::spawn(async move {
        let _ = loop_task.await;
        health_task.abort();
        sampler.abort();
        let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
        if let Some(p) = page_task {
            let _ = tokio::time::timeout(Duration::from_secs(2), p).await;
        }
    });
    tracing::info!(listen = %addr, "sluice controller started");
    Ok(RunningController {
        addr,
        dashboard: page_addr,
        runtime,
        stop,
        done,
    })
}
