//! `sluice-proxy`: parses its arguments and config, starts logging and metrics, and runs the
//! traffic and admin listeners until SIGTERM or SIGINT. A bad config exits with code 2 and a
//! message naming the field.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use sluice_proxy::config::ProxyConfig;
use sluice_proxy::{Shared, admin, server, telemetry};
use tokio::net::TcpListener;

/// A traffic-splitting reverse proxy for canary and blue/green releases.
#[derive(Debug, Parser)]
#[command(name = "sluice-proxy", version)]
struct Args {
    /// The YAML config file (listeners, admin API, upstream settings, backends and routes).
    #[arg(long, short = 'c')]
    config: PathBuf,
    /// Write the bound addresses as JSON to this file once listening (useful with port 0).
    #[arg(long)]
    addr_file: Option<PathBuf>,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Log filter, e.g. `info` or `sluice_proxy=debug` (RUST_LOG also works).
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    log: String,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_logs(&args);
    let config = match ProxyConfig::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "sluice-proxy: invalid config {}: {e}",
                args.config.display()
            );
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sluice-proxy: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(args, config)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sluice-proxy: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn init_logs(args: &Args) {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn run(args: Args, config: ProxyConfig) -> anyhow::Result<ExitCode> {
    let token = match config.admin_token() {
        Ok(t) => t,
        Err(e) => {
            eprintln!(
                "sluice-proxy: invalid config {}: {e}",
                args.config.display()
            );
            return Ok(ExitCode::from(2));
        }
    };
    let prometheus = telemetry::install_prometheus()
        .map_err(anyhow::Error::msg)
        .context("installing the metrics recorder")?;
    telemetry::describe();
    let shared = Arc::new(Shared::new(
        &(&config.upstream).into(),
        Some(prometheus.clone()),
        token,
    ));
    if let Err(e) = shared.apply(config.table()).await {
        eprintln!(
            "sluice-proxy: invalid config {}: {e}",
            args.config.display()
        );
        return Ok(ExitCode::from(2));
    }

    let listener = TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let admin_listener = TcpListener::bind(&config.admin.listen)
        .await
        .with_context(|| format!("cannot listen on {} (admin)", config.admin.listen))?;
    let traffic_addr = listener.local_addr()?;
    let admin_addr = admin_listener.local_addr()?;
    if let Some(path) = &args.addr_file {
        let json = serde_json::json!({"listen": traffic_addr, "admin": admin_addr});
        write_atomically(path, &json.to_string())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    tracing::info!(listen = %traffic_addr, admin = %admin_addr, "sluice-proxy started");

    // Keep histograms from growing between scrapes.
    let upkeep = prometheus.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let admin_app = admin::router(shared.clone());
    let mut admin_stop = stop_rx.clone();
    let admin_task = tokio::spawn(async move {
        axum::serve(admin_listener, admin_app)
            .with_graceful_shutdown(async move {
                let _ = admin_stop.wait_for(|s| *s).await;
            })
            .await
    });

    let signal_shared = shared.clone();
    tokio::spawn(async move {
        wait_for_stop_signal().await;
        tracing::info!("stop signal received: draining");
        signal_shared.start_draining();
        let _ = stop_tx.send(true);
    });

    let mut traffic_stop = stop_rx;
    let drained = server::serve(
        listener,
        shared,
        async move {
            let _ = traffic_stop.wait_for(|s| *s).await;
        },
        config.drain_timeout,
    )
    .await;
    if !drained {
        tracing::warn!(deadline = ?config.drain_timeout, "drain deadline passed with requests in flight");
    }
    let _ = admin_task.await;
    tracing::info!("sluice-proxy stopped");
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn write_atomically(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(tmp, path)
}
