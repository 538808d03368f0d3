//! The `sluice` command line: two-stage parsing (clap, then resolved settings), one function
//! per command, documented exit codes.
//!
//! Exit codes: 0 success; 1 invalid documents (`lint`) or a Degraded rollout (`status`);
//! 2 bad usage, or `status` timed out; 3 unknown rollout; 4 controller unreachable;
//! 5 token refused; 6 command refused in the rollout's state.

pub mod render;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::control::client::ControlClient;
use crate::error::Error;
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
    /// Control API of the controller.
    #[arg(
        long,
        global = true,
        env = "SLUICE_SERVER",
        default_value = crate::spec::defaults::CONTROL_URL
    )]
    pub server: String,
    /// File holding the bearer token (or set SLUICE_TOKEN).
    #[arg(long, global = true, env = "SLUICE_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
}

impl ClientArgs {
    /// The client, or why the token cannot be read.
    pub fn client(&self) -> Result<ControlClient, Error> {
        let token = sluice_io::token::file_or_env(self.token_file.as_deref())
            .map_err(|e| Error::Start(e.to_string()))?;
        Ok(ControlClient::new(&self.server, token))
    }
}

fn fail(e: &Error) -> ExitCode {
    eprintln!("sluice: {e}");
    ExitCode::from(exit_code(e))
}

/// `get rollout NAME [--watch]`.
pub async fn get(client: &ControlClient, name: &str, watch: bool) -> ExitCode {
    if !watch {
        return match client.get(name).await {
            Ok(v) => {
                print!("{}", render::rollout(&v));
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        };
    }
    use std::io::IsTerminal as _;
    let tty = std::io::stdout().is_terminal();
    let result = client
        .watch(name, |v| {
            if tty {
                print!("\x1b[2J\x1b[H");
            } else {
                println!("----");
            }
            print!("{}", render::rollout(&v));
            use std::io::Write as _;
            let _ = std::io::stdout().flush();
            true
        })
        .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// `list rollouts`.
pub async fn list(client: &ControlClient) -> ExitCode {
    match client.list().await {
        Ok(items) => {
            print!("{}", render::list(&items));
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

/// A command on a rollout.
pub async fn command(
    client: &ControlClient,
    name: &str,
    command: &str,
    to_revision: Option<u32>,
) -> ExitCode {
    match client.command(name, command, to_revision).await {
        Ok(msg) => {
            println!("rollout {name}: {msg}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

/// `set image NAME CONTAINER=IMAGE`.
pub async fn set_image(client: &ControlClient, name: &str, assignment: &str) -> ExitCode {
    let Some((container, image)) = assignment.split_once('=') else {
        eprintln!("sluice: {assignment:?} is not CONTAINER=IMAGE");
        return ExitCode::from(2);
    };
    match client.set_image(name, container, image).await {
        Ok(msg) => {
            println!("rollout {name}: {msg}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

/// `status NAME [--timeout D]`: waits for Healthy (0) or Degraded (1); 2 when time runs out.
pub async fn status(client: &ControlClient, name: &str, timeout: Option<Duration>) -> ExitCode {
    let start = Instant::now();
    let mut last = String::new();
    loop {
        match client.get(name).await {
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
