//! `sluice-load`: `run` sends a bounded load and prints what answered; `serve` runs a tiny
//! versioned backend.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use http::{HeaderName, HeaderValue, Method, StatusCode};
use sluice_loadtest::backend::{self, BackendConfig};
use sluice_loadtest::{LoadConfig, run};

/// Load generator and test backend for sluice.
#[derive(Debug, Parser)]
#[command(name = "sluice-load", version)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Send requests over keep-alive connections and tally the answers by backend. Closed
    /// loop by default; open loop (constant rate, latency from each request's due time) with
    /// --rate.
    Run {
        /// Target URL (http://IP:PORT/PATH).
        url: http::Uri,
        /// Concurrent connections.
        #[arg(short, long, default_value_t = 8)]
        connections: usize,
        /// Total requests.
        #[arg(short = 'n', long)]
        requests: Option<u64>,
        /// Duration, e.g. 10s (default 10s when no request count is given).
        #[arg(short, long, value_parser = humantime::parse_duration)]
        duration: Option<Duration>,
        /// Extra header, `name: value` (repeatable).
        #[arg(short = 'H', long = "header")]
        headers: Vec<String>,
        /// Method.
        #[arg(short = 'X', long, default_value = "GET")]
        method: Method,
        /// Open loop: send this many requests per second over all connections, whatever the
        /// answers do; latency counts from when each request was due.
        #[arg(short, long)]
        rate: Option<f64>,
        /// Speak HTTP/2 (h2c, prior knowledge) with this many concurrent streams per
        /// connection.
        #[arg(long, value_name = "STREAMS")]
        h2: Option<usize>,
        /// No progress line on stderr.
        #[arg(short, long)]
        quiet: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run a backend that answers its name.
    Serve {
        /// Version name to answer.
        #[arg(long)]
        name: String,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9001")]
        listen: String,
        /// Delay before each answer, e.g. 20ms.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
        delay: Duration,
        /// Share of answers that are errors, 0.0 to 1.0.
        #[arg(long, default_value_t = 0.0)]
        error_rate: f64,
        /// Status code of error answers.
        #[arg(long, default_value_t = 500)]
        error_status: u16,
        /// Write the bound address as JSON to this file once listening.
        #[arg(long)]
        addr_file: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sluice-load: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(dispatch(args.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice-load: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run {
            url,
            connections,
            requests,
            duration,
            headers,
            method,
            rate,
            h2,
            quiet,
            json,
        } => {
            let mut cfg = LoadConfig::new(url, connections);
            cfg.requests = requests;
            cfg.rate = rate;
            cfg.h2_streams = h2;
            cfg.progress = !quiet;
            cfg.duration = duration.or(requests.is_none().then_some(Duration::from_secs(10)));
            cfg.method = method;
            for h in headers {
                let (k, v) = h
                    .split_once(':')
                    .with_context(|| format!("header {h:?} is not `name: value`"))?;
                cfg.headers.push((
                    HeaderName::from_bytes(k.trim().as_bytes())
                        .with_context(|| format!("invalid header name in {h:?}"))?,
                    HeaderValue::from_str(v.trim())
                        .with_context(|| format!("invalid header value in {h:?}"))?,
                ));
            }
            let report = run(cfg).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("{}", report.summary());
            }
            Ok(())
        }
        Command::Serve {
            name,
            listen,
            delay,
            error_rate,
            error_status,
            addr_file,
        } => {
            anyhow::ensure!(
                (0.0..=1.0).contains(&error_rate),
                "--error-rate must be between 0.0 and 1.0, not {error_rate}"
            );
            let error_status = StatusCode::from_u16(error_status)
                .context("--error-status is not a status code")?;
            let listener = tokio::net::TcpListener::bind(&listen)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?;
            let addr = listener.local_addr()?;
            if let Some(path) = addr_file {
                let tmp = path.with_extension("tmp");
                std::fs::write(&tmp, serde_json::json!({ "listen": addr }).to_string())?;
                std::fs::rename(&tmp, &path)?;
            }
            eprintln!("sluice-load: backend {name} listening on {addr}");
            let cfg = BackendConfig {
                name,
                delay,
                error_rate,
                error_status,
            };
            backend::serve(listener, cfg).await;
            Ok(())
        }
    }
}
