//! The `sluice` command line: two-stage parsing (clap, then resolved settings), one function
//! per command, documented exit codes.
//!
//! Exit codes: 0 success; 1 invalid documents (`lint`) or a Degraded rollout (`status`);
//! 2 bad usage, or `status` timed out; 3 unknown rollout; 4 controller (or cluster)
//! unreachable; 5 token refused; 6 command refused in the rollout's state.
//!
//! The rollouts are a controller's (its control API) or a cluster's (its API server, with
//! the patches Argo Rollouts' plugin sends): `--kubernetes`, or a kubeconfig and no
//! controller named, or running as `kubectl-sluice`, chooses the cluster.

pub mod render;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::commands::Command;
use crate::control::client::ControlClient;
use crate::control::service::{RolloutSummary, RolloutView};
use crate::error::Error;
use crate::kube::ClusterRollouts;
use crate::status::Phase;

/// Exit code for an error from the control API.
pub fn exit_code(e: &Error) -> u8 {
    match e {
        Error::NotFound(_) => 3,
        Error::Unreachable(_) => 4,
        Error::Unauthorized(_) => 5,
        Error::Refused(_) | Error::Invalid(_) => 6,
        _ => 1,
    }
}

/// Settings every client command shares.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    /// Control API of the controller [default: http://127.0.0.1:9700].
    #[arg(long, global = true, env = "SLUICE_SERVER")]
    pub server: Option<String>,
    /// File holding the bearer token (or set SLUICE_TOKEN).
    #[arg(long, global = true, env = "SLUICE_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// The rollouts of a Kubernetes cluster (from the kubeconfig), not a controller's.
    #[arg(long, global = true, conflicts_with = "server")]
    pub kubernetes: bool,
    /// Namespace on the cluster [default: the kubeconfig's].
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
}

/// Where the CLI finds rollouts.
pub enum Rollouts {
    /// A controller's control API.
    Controller(ControlClient),
    /// A cluster's API server.
    Cluster(ClusterRollouts),
}

/// Whether a kubeconfig is there to be used.
fn has_kubeconfig() -> bool {
    std::env::var_os("KUBECONFIG").is_some_and(|v| !v.is_empty())
        || std::env::var_os("HOME")
            .is_some_and(|h| std::path::Path::new(&h).join(".kube/config").is_file())
}

impl ClientArgs {
    /// Whether the rollouts are a cluster's: asked for, or a kubeconfig and no controller
    /// named (always so for `kubectl sluice`, unless a controller is named).
    pub fn on_cluster(&self, as_kubectl_plugin: bool) -> bool {
        self.kubernetes || (self.server.is_none() && (as_kubectl_plugin || has_kubeconfig()))
    }

    /// The controller's client, or why the token cannot be read.
    pub fn client(&self) -> Result<ControlClient, Error> {
        let token = sluice_io::token::file_or_env(self.token_file.as_deref())
            .map_err(|e| Error::Start(e.to_string()))?;
        let server = self
            .server
            .as_deref()
            .unwrap_or(crate::spec::defaults::CONTROL_URL);
        Ok(ControlClient::new(server, token))
    }

    /// Where the rollouts are.
    pub async fn rollouts(&self, as_kubectl_plugin: bool) -> Result<Rollouts, Error> {
        if self.on_cluster(as_kubectl_plugin) {
            Ok(Rollouts::Cluster(
                ClusterRollouts::connect(self.namespace.as_deref()).await?,
            ))
        } else {
            self.client().map(Rollouts::Controller)
        }
    }
}

/// A command's name in the control API.
fn api_name(command: Command) -> (&'static str, Option<u32>) {
    match command {
        Command::Promote => ("promote", None),
        Command::PromoteFull => ("promote-full", None),
        Command::Abort => ("abort", None),
        Command::Retry => ("retry", None),
        Command::Pause => ("pause", None),
        Command::Resume => ("resume", None),
        Command::Undo { to_revision } => ("undo", to_revision),
    }
}

impl Rollouts {
    async fn list(&self) -> Result<Vec<RolloutSummary>, Error> {
        match self {
            Self::Controller(c) => c.list().await,
            Self::Cluster(c) => c.list().await,
        }
    }

    async fn get(&self, name: &str) -> Result<RolloutView, Error> {
        match self {
            Self::Controller(c) => c.get(name).await,
            Self::Cluster(c) => c.get(name).await,
        }
    }

    async fn command(&self, name: &str, command: Command) -> Result<String, Error> {
        match self {
            Self::Controller(c) => {
                let (what, to_revision) = api_name(command);
                c.command(name, what, to_revision).await
            }
            Self::Cluster(c) => c.command(name, command).await,
        }
    }

    async fn set_image(&self, name: &str, container: &str, image: &str) -> Result<String, Error> {
        match self {
            Self::Controller(c) => c.set_image(name, container, image).await,
            Self::Cluster(c) => c.set_image(name, container, image).await,
        }
    }
}

fn fail(e: &Error) -> ExitCode {
    eprintln!("sluice: {e}");
    ExitCode::from(exit_code(e))
}

/// `get rollout NAME [--watch]`.
pub async fn get(rollouts: &Rollouts, name: &str, watch: bool) -> ExitCode {
    if !watch {
        return match rollouts.get(name).await {
            Ok(v) => {
                print!("{}", render::rollout(&v));
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        };
    }
    use std::io::IsTerminal as _;
    let tty = std::io::stdout().is_terminal();
    let show = |v: &RolloutView| {
        if tty {
            print!("\x1b[2J\x1b[H");
        } else {
            println!("----");
        }
        print!("{}", render::rollout(v));
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
    };
    let client = match rollouts {
        Rollouts::Controller(c) => c,
        Rollouts::Cluster(c) => {
            // the API server alone: look again every second, show what changed
            let mut last = None;
            loop {
                match c.get(name).await {
                    Ok(v) => {
                        if last.as_ref() != Some(&v) {
                            show(&v);
                            last = Some(v);
                        }
                    }
                    Err(e) => return fail(&e),
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    let result = client
        .watch(name, |v| {
            show(&v);
            true
        })
        .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// `list rollouts`.
pub async fn list(rollouts: &Rollouts) -> ExitCode {
    match rollouts.list().await {
        Ok(items) => {
            print!("{}", render::list(&items));
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

/// A command on a rollout.
pub async fn command(rollouts: &Rollouts, name: &str, command: Command) -> ExitCode {
    match rollouts.command(name, command).await {
        Ok(msg) => {
            println!("rollout {name}: {msg}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

/// `set image NAME CONTAINER=IMAGE`.
pub async fn set_image(rollouts: &Rollouts, name: &str, assignment: &str) -> ExitCode {
    let Some((container, image)) = assignment.split_once('=') else {
        eprintln!("sluice: {assignment:?} is not CONTAINER=IMAGE");
        return ExitCode::from(2);
    };
    match rollouts.set_image(name, container, image).await {
        Ok(msg) => {
            println!("rollout {name}: {msg}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

/// `status NAME [--timeout D]`: waits for Healthy (0) or Degraded (1); 2 when time runs out.
pub async fn status(rollouts: &Rollouts, name: &str, timeout: Option<Duration>) -> ExitCode {
    let start = Instant::now();
    let mut last = String::new();
    loop {
        match rollouts.get(name).await {
            Ok(v) => {
                let line = format!("{:?}: {}", v.status.phase, v.status.message);
                if line != last {
                    println!("{line}");
                    last = line;
                }
                let settled = v.status.current_pod_hash.is_some()
                    && v.status.canary.weights.as_ref().is_some_and(|w| w.verified);
                match v.status.phase {
                    Phase::Healthy if settled => return ExitCode::SUCCESS,
                    Phase::Degraded => return ExitCode::from(1),
                    _ => {}
                }
            }
            Err(e) => return fail(&e),
        }
        if timeout.is_some_and(|t| start.elapsed() >= t) {
            eprintln!(
                "sluice: rollout {name} is still not Healthy or Degraded after {:?}",
                timeout.unwrap_or_default()
            );
            return ExitCode::from(2);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
