//! The proxy's command line, shared by `sluice-proxy` and `sluice proxy`: parses arguments and
//! config, starts logging and metrics, runs until SIGTERM or SIGINT. Exit codes: 0 stopped
//! cleanly, 1 a runtime failure (e.g. a port in use), 2 an invalid config or arguments.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::app;
use crate::config::ProxyConfig;
use crate::control::subscriber::SubscribeOptions;
use crate::telemetry::metrics as telemetry;

/// A traffic-splitting reverse proxy for canary and blue/green releases.
#[derive(Debug, clap::Args)]
pub struct ProxyArgs {
    /// The YAML config file (listeners, admin API, upstream settings, backends and routes).
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
    /// Traffic listener, overriding the file's `listen`.
    #[arg(long)]
    pub listen: Option<String>,
    /// Admin listener, overriding the file's `admin.listen`.
    #[arg(long)]
    pub admin_listen: Option<String>,
    /// Subscribe to this controller (its control API URL) for the route table.
    #[arg(long, requires = "proxy_id")]
    pub control_plane: Option<String>,
    /// This proxy's id among the controller's proxies.
    #[arg(long)]
    pub proxy_id: Option<String>,
    /// File holding the controller's bearer token.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Directory where the last table from the controller is cached.
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Time between reports to the controller.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
    pub report_interval: Duration,
    /// Time between reports while a canary takes traffic (it has a weight, and the counters
    /// moved within --report-interval; the controller weighs each report as it comes; never
    /// longer than --report-interval).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "100ms")]
    pub canary_report_interval: Duration,
    /// Write the bound addresses as JSON to this file once listening (useful with port 0).
    #[arg(long)]
    pub addr_file: Option<PathBuf>,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log filter, e.g. `info` or `sluice_proxy=debug` (RUST_LOG also works).
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub log: String,
}

/// Log output format.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

use crate::state::LogControl;

fn init_logs(args: &ProxyArgs) -> Option<LogControl> {
    use tracing_subscriber::prelude::*;
    use tracing_subscriber::{EnvFilter, fmt, reload};
    let filter = EnvFilter::try_new(&args.log).unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let registry = tracing_subscriber::registry().with(filter);
    use std::io::IsTerminal as _;
    let ansi = std::io::stderr().is_terminal();
    let installed = match args.log_format {
        LogFormat::Text => registry
            .with(fmt::layer().with_ansi(ansi).with_writer(std::io::stderr))
            .try_init(),
        LogFormat::Json => registry
            .with(fmt::layer().json().with_writer(std::io::stderr))
            .try_init(),
    };
    installed.ok()?;
    Some(Box::new(move |f: &str| {
        let filter =
            EnvFilter::try_new(f).map_err(|e| format!("{f:?} is not a log filter: {e}"))?;
        handle.reload(filter).map_err(|e| e.to_string())
    }))
}

fn invalid(what: &str, e: impl std::fmt::Display) -> ExitCode {
    eprintln!("sluice-proxy: invalid config {what}: {e}");
    ExitCode::from(2)
}

/// Runs a proxy process to completion.
pub fn main_with(args: ProxyArgs) -> ExitCode {
    let log_control = init_logs(&args);
    let what = args
        .config
        .as_ref()
        .map_or("(defaults)".to_owned(), |p| p.display().to_string());
    let mut config = match &args.config {
        Some(path) => match ProxyConfig::load(path) {
            Ok(c) => c,
            Err(e) => return invalid(&what, e),
        },
        None => match crate::config::parse_yaml::<ProxyConfig>("{}") {
            Ok(c) => c,
            Err(e) => return invalid(&what, e),
        },
    };
    if let Some(l) = &args.listen {
        config.listen = l.clone();
    }
    if let Some(l) = &args.admin_listen {
        config.admin.listen = l.clone();
    }
    if let Err(e) = config.check() {
        return invalid(&what, e);
    }
    let admin_token = match config.admin_token() {
        Ok(t) => t,
        Err(e) => return invalid(&what, e),
    };
    let control = match (&args.control_plane, &args.proxy_id) {
        (Some(url), Some(id)) => {
            if !sluice_api::limits::valid_name(id) {
                return invalid(
                    &what,
                    format!("--proxy-id: {}", sluice_api::limits::NAME_RULE),
                );
            }
            let token = match sluice_io::token::file_or_env(args.token_file.as_deref()) {
                Ok(t) => t,
                Err(e) => return invalid(&what, format!("--token-file: {e}")),
            };
            Some(SubscribeOptions {
                url: url.clone(),
                proxy_id: id.clone(),
                token,
                cache_dir: args.cache_dir.clone(),
                report_interval: args.report_interval,
                canary_report_interval: args.canary_report_interval,
                poll_wait: Duration::from_secs(25),
            })
        }
        _ => None,
    };
    // clients are served by the worker threads (see `downstream.workers`) and the controller
    // subscription by a thread of its own; this runtime has the admin API, health checks and
    // signals, on two threads so that none of them waits on another
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sluice-proxy: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async move {
        let prometheus = match telemetry::install_prometheus() {
            Ok(h) => h,
            Err(e) => {
                eprintln!("sluice-proxy: cannot install the metrics recorder: {e}");
                return ExitCode::from(1);
            }
        };
        telemetry::describe();
        let running = match app::start(&config, control, Some(prometheus), admin_token).await {
            Ok(r) => r,
            Err(e @ crate::Error::Invalid(_)) => return invalid(&what, e),
            Err(e) => {
                eprintln!("sluice-proxy: {e}");
                return ExitCode::from(1);
            }
        };
        if let Some(path) = &args.addr_file {
            let json = serde_json::json!({"listen": running.listen, "admin": running.admin, "tls": running.tls});
            if let Err(e) = sluice_io::files::write_atomically(path, json.to_string().as_bytes()) {
                eprintln!("sluice-proxy: writing {}: {e}", path.display());
                return ExitCode::from(1);
            }
        }
        if let Some(control) = log_control {
            let _ = running.shared.log_control.set(control);
        }
        if let Some(path) = args.config.clone() {
            tokio::spawn(reload_on_sighup(running.shared.clone(), path));
        }
        wait_for_stop_signal().await;
        tracing::info!("stop signal received: draining");
        running.stop();
        let drained = running.wait().await;
        if !drained {
            tracing::warn!(deadline = ?config.drain_timeout, "drain deadline passed with requests in flight");
        }
        tracing::info!("sluice-proxy stopped");
        ExitCode::SUCCESS
    })
}

/// Re-reads the config file on SIGHUP and applies its route table; a bad file is logged with
/// its reason and the running table stays.
async fn reload_on_sighup(shared: std::sync::Arc<crate::Shared>, path: PathBuf) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        return;
    };
    while hup.recv().await.is_some() {
        let result = match ProxyConfig::load(&path) {
            Ok(_) if shared.is_controlled() => {
                Err("the route table belongs to the controller".to_owned())
            }
            Ok(cfg) => shared
                .apply(cfg.table())
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match result {
            Ok(()) => {
                metrics::counter!(telemetry::CONFIG_RELOADS_TOTAL, "result" => "ok").increment(1);
                tracing::info!(file = %path.display(), "config reloaded on SIGHUP");
            }
            Err(e) => {
                metrics::counter!(telemetry::CONFIG_RELOADS_TOTAL, "result" => "invalid")
                    .increment(1);
                tracing::error!(file = %path.display(), error = %e, "config reload refused; the running table stays");
            }
        }
    }
}

pub use sluice_io::signal::wait_for_stop_signal;
