//! `sluice`: the command-line interface (see [`sluice_controller::cli`] for exit codes).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use sluice_controller::cli::{self, ClientArgs};
use sluice_controller::commands::Command as Rollout;
use sluice_controller::lint;
use sluice_controller::local::config::LocalConfig;

/// Canary releases and blue/green deployments with their own traffic-splitting proxy.
#[derive(Debug, Parser)]
#[command(name = "sluice", version)]
struct Args {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check Rollout, AnalysisTemplate and LocalRuntime documents; exit 1 if any is invalid.
    Lint {
        /// Files to check (multi-document YAML).
        #[arg(short = 'f', long = "file", required = true)]
        files: Vec<PathBuf>,
        /// Print only problems.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Print the CustomResourceDefinitions sluice installs on Kubernetes (YAML).
    Crd {
        /// Write one file per CRD into this folder instead.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Run the controller: with the local runtime (`--config`), or on a Kubernetes cluster
    /// (`--kubernetes`, for the rollouts of one namespace).
    Controller {
        /// Local config: Rollouts, AnalysisTemplates and one LocalRuntime document.
        #[arg(short = 'c', long, required_unless_present = "kubernetes")]
        config: Option<PathBuf>,
        /// On Kubernetes: the probes' listener (`/healthz`; `/readyz` answers 200 once
        /// leading).
        #[arg(long, default_value = "0.0.0.0:9701")]
        probe_listen: String,
        /// On Kubernetes: this candidate's identity in the leader election [default:
        /// $POD_NAME].
        #[arg(long)]
        identity: Option<String>,
        /// On Kubernetes: how long the lead is held without renewing.
        #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
        lease: Duration,
        /// On Kubernetes: the proxies' tokens file (one `proxy-id token` per line).
        #[arg(long)]
        proxy_tokens_file: Option<PathBuf>,
        /// On Kubernetes: routes carry the debug response headers.
        #[arg(long)]
        debug_headers: bool,
        /// Control API listener, overriding the config's.
        #[arg(long)]
        listen: Option<String>,
        /// Log filter.
        #[arg(long, env = "RUST_LOG", default_value = "info")]
        log: String,
        /// Write the control API address as JSON to this file once listening.
        #[arg(long)]
        addr_file: Option<PathBuf>,
        /// Serve the dashboard (with the control API beside it) on this address, e.g.
        /// 127.0.0.1:8090; needs an operator token.
        #[arg(long, value_name = "ADDR")]
        dashboard: Option<String>,
    },
    /// Serve the dashboard on this machine, its API calls forwarded to the controller at
    /// --server.
    Dashboard {
        /// Where the page is served.
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: String,
        /// Log filter.
        #[arg(long, env = "RUST_LOG", default_value = "info")]
        log: String,
    },
    /// The whole story on loopback: a canary that succeeds, then one that analysis aborts.
    Demo {
        /// Short pauses (about 30 s in all).
        #[arg(long)]
        fast: bool,
        /// Leave everything running after the summary.
        #[arg(long)]
        keep: bool,
        /// Proxies to start.
        #[arg(long, default_value_t = 2)]
        proxies: usize,
        /// Requests per second of the request loop.
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
    },
    /// Run a proxy (the same as sluice-proxy).
    Proxy(Box<sluice_proxy::cli::ProxyArgs>),
    /// Show a rollout.
    Get {
        #[command(subcommand)]
        what: GetWhat,
    },
    /// List things.
    List {
        #[command(subcommand)]
        what: ListWhat,
    },
    /// Clear a pause (or skip the current step); --full skips every remaining step.
    Promote {
        /// Rollout name.
        name: String,
        /// Skip every remaining step and analysis.
        #[arg(long)]
        full: bool,
    },
    /// Send all traffic back to stable.
    Abort {
        /// Rollout name.
        name: String,
    },
    /// Start an aborted rollout again.
    Retry {
        /// Rollout name.
        name: String,
    },
    /// Roll back to the previous revision (or --to-revision N).
    Undo {
        /// Rollout name.
        name: String,
        /// Revision number.
        #[arg(long)]
        to_revision: Option<u32>,
    },
    /// Pause a rollout.
    Pause {
        /// Rollout name.
        name: String,
    },
    /// Resume a paused rollout.
    Resume {
        /// Rollout name.
        name: String,
    },
    /// Wait until a rollout is Healthy (exit 0) or Degraded (exit 1); exit 2 on --timeout.
    Status {
        /// Rollout name.
        name: String,
        /// Give up after this long, e.g. 5m.
        #[arg(long, value_parser = humantime::parse_duration)]
        timeout: Option<Duration>,
    },
    /// Change something of a rollout.
    Set {
        #[command(subcommand)]
        what: SetWhat,
    },
}

#[derive(Debug, Subcommand)]
enum GetWhat {
    /// A rollout as a tree.
    Rollout {
        /// Rollout name.
        name: String,
        /// Follow changes live.
        #[arg(short, long)]
        watch: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ListWhat {
    /// Every rollout.
    Rollouts,
}

#[derive(Debug, Subcommand)]
enum SetWhat {
    /// `set image NAME CONTAINER=IMAGE`: starts a rollout to the new image.
    Image {
        /// Rollout name.
        name: String,
        /// CONTAINER=IMAGE.
        assignment: String,
    },
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime starts")
}

fn main() -> ExitCode {
    let args = Args::parse();
    match args.command {
        Command::Lint { files, quiet } => lint_files(&files, quiet),
        Command::Crd { dir: None } => {
            print!("{}", sluice_controller::crd::yaml());
            ExitCode::SUCCESS
        }
        Command::Crd { dir: Some(dir) } => {
            for (file, text) in sluice_controller::crd::files() {
                let path = dir.join(file);
                if let Err(e) = std::fs::write(&path, text) {
                    eprintln!("sluice crd: {}: {e}", path.display());
                    return ExitCode::from(1);
                }
            }
            ExitCode::SUCCESS
        }
        Command::Proxy(p) => sluice_proxy::cli::main_with(*p),
        Command::Demo {
            fast,
            keep,
            proxies,
            rate,
        } => {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
                )
                .with_writer(std::io::stderr)
                .try_init();
            let opts = sluice_controller::demo::DemoOptions {
                fast,
                keep,
                proxies,
                rate,
            };
            match runtime().block_on(sluice_controller::demo::run(opts)) {
                Ok(s) if s.aborted_by_analysis => ExitCode::SUCCESS,
                Ok(_) => {
                    eprintln!("sluice demo: the bad version was not aborted by the analysis");
                    ExitCode::from(1)
                }
                Err(e) => {
                    eprintln!("sluice demo: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Controller {
            config,
            listen,
            log,
            addr_file,
            probe_listen,
            identity,
            lease,
            proxy_tokens_file,
            debug_headers,
            dashboard,
        } => match config {
            Some(config) if !args.client.kubernetes => run_controller(
                &config,
                listen,
                &log,
                args.client.token_file,
                addr_file,
                dashboard,
            ),
            _ => run_cluster_controller(
                sluice_controller::kube::controller::Options {
                    namespace: args.client.namespace,
                    listen: listen.unwrap_or_else(|| "0.0.0.0:9700".to_owned()),
                    probe_listen,
                    token_file: args.client.token_file,
                    proxy_tokens_file,
                    identity,
                    lease,
                    debug_headers,
                    dashboard,
                },
                &log,
                addr_file,
            ),
        },
        Command::Dashboard { listen, log } => run_dashboard(args.client.server, &listen, &log),
        other => {
            let as_kubectl_plugin = invoked_as_kubectl_plugin();
            runtime().block_on(async move {
                let client = match args.client.rollouts(as_kubectl_plugin).await {
                    Ok(c) => c,
                    Err(e) => {
                        eprintln!("sluice: {e}");
                        return ExitCode::from(cli::exit_code(&e).max(2));
                    }
                };
                match other {
                    Command::Get {
                        what: GetWhat::Rollout { name, watch },
                    } => cli::get(&client, &name, watch).await,
                    Command::List {
                        what: ListWhat::Rollouts,
                    } => cli::list(&client).await,
                    Command::Promote { name, full } => {
                        let c = if full {
                            Rollout::PromoteFull
                        } else {
                            Rollout::Promote
                        };
                        cli::command(&client, &name, c).await
                    }
                    Command::Abort { name } => cli::command(&client, &name, Rollout::Abort).await,
                    Command::Retry { name } => cli::command(&client, &name, Rollout::Retry).await,
                    Command::Undo { name, to_revision } => {
                        cli::command(&client, &name, Rollout::Undo { to_revision }).await
                    }
                    Command::Pause { name } => cli::command(&client, &name, Rollout::Pause).await,
                    Command::Resume { name } => cli::command(&client, &name, Rollout::Resume).await,
                    Command::Status { name, timeout } => cli::status(&client, &name, timeout).await,
                    Command::Set {
                        what: SetWhat::Image { name, assignment },
                    } => cli::set_image(&client, &name, &assignment).await,
                    Command::Lint { .. }
                    | Command::Crd { .. }
                    | Command::Proxy(_)
                    | Command::Controller { .. }
                    | Command::Dashboard { .. }
                    | Command::Demo { .. } => ExitCode::from(2),
                }
            })
        }
    }
}

/// Whether this binary runs as `kubectl sluice …` (installed as `kubectl-sluice`).
fn invoked_as_kubectl_plugin() -> bool {
    std::env::args_os()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
        })
        .is_some_and(|f| f.starts_with("kubectl-sluice"))
}

fn lint_files(files: &[PathBuf], quiet: bool) -> ExitCode {
    let mut ok = true;
    for f in files {
        match lint::lint_file(f) {
            Ok(report) => {
                ok &= report.ok();
                if quiet {
                    for p in &report.problems {
                        println!("{p}");
                    }
                } else {
                    print!("{}", report.render());
                }
            }
            Err(e) => {
                eprintln!("sluice lint: cannot read {}: {e}", f.display());
                return ExitCode::from(2);
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn init_logs(log: &str) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(log)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .try_init();
}

fn run_cluster_controller(
    options: sluice_controller::kube::controller::Options,
    log: &str,
    addr_file: Option<PathBuf>,
) -> ExitCode {
    init_logs(log);
    runtime().block_on(async move {
        let listening = move |addr: std::net::SocketAddr| {
            eprintln!("sluice controller: control API on http://{addr}");
            if let Some(f) = addr_file {
                let json = serde_json::json!({"listen": addr}).to_string();
                if let Err(e) = sluice_io::files::write_atomically(&f, json.as_bytes()) {
                    eprintln!("sluice controller: cannot write {}: {e}", f.display());
                }
            }
        };
        let stop = sluice_io::signal::wait_for_stop_signal();
        match sluice_controller::kube::controller::run(options, stop, listening).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("sluice controller: {e}");
                ExitCode::from(1)
            }
        }
    })
}

fn run_dashboard(server: Option<String>, listen: &str, log: &str) -> ExitCode {
    init_logs(log);
    let server = server.unwrap_or_else(|| {
        format!(
            "http://{}",
            sluice_controller::spec::defaults::CONTROL_LISTEN
        )
    });
    let upstream = match sluice_controller::dashboard::forward::Upstream::new(&server) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("sluice dashboard: {e}");
            return ExitCode::from(2);
        }
    };
    runtime().block_on(async move {
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("sluice dashboard: cannot listen on {listen}: {e}");
                return ExitCode::from(1);
            }
        };
        let addr = listener
            .local_addr()
            .map_or_else(|_| listen.to_owned(), |a| a.to_string());
        eprintln!("sluice dashboard: http://{addr} (the controller at {server})");
        let app = sluice_controller::dashboard::forward::router(upstream);
        let limits = sluice_io::listener::ApiLimits::default().within_descriptors();
        sluice_io::listener::serve(
            listener,
            app,
            limits,
            std::sync::Arc::new(|_| false),
            async {
                sluice_io::signal::wait_for_stop_signal().await;
            },
        )
        .await;
        ExitCode::SUCCESS
    })
}

fn run_controller(
    config: &std::path::Path,
    listen: Option<String>,
    log: &str,
    token_file: Option<PathBuf>,
    addr_file: Option<PathBuf>,
    dashboard: Option<String>,
) -> ExitCode {
    init_logs(log);
    let cfg = match LocalConfig::load(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sluice controller: invalid config {}:", config.display());
            match e {
                sluice_controller::Error::Invalid(fields) => {
                    for f in fields {
                        eprintln!("  {f}");
                    }
                }
                other => eprintln!("  {other}"),
            }
            return ExitCode::from(2);
        }
    };
    runtime().block_on(async move {
        let running =
            match sluice_controller::server::start(cfg, listen, token_file, dashboard).await {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("sluice controller: {e}");
                    return ExitCode::from(1);
                }
            };
        eprintln!("sluice controller: control API on http://{}", running.addr);
        if let Some(d) = running.dashboard {
            eprintln!("sluice controller: dashboard on http://{d}");
        }
        if let Some(f) = addr_file {
            let json = serde_json::json!({"listen": running.addr}).to_string();
            if let Err(e) = sluice_io::files::write_atomically(&f, json.as_bytes()) {
                eprintln!("sluice controller: writing {}: {e}", f.display());
                return ExitCode::from(1);
            }
        }
        sluice_io::signal::wait_for_stop_signal().await;
        running.stop().await;
        ExitCode::SUCCESS
    })
}
