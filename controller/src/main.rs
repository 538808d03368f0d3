//! `sluice`: the command-line interface. Exit codes: 0 success, 1 the checked thing is invalid
//! (or unhealthy), 2 bad usage or an unreadable file.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sluice_controller::lint;

/// Canary releases and blue/green deployments with their own traffic-splitting proxy.
#[derive(Debug, Parser)]
#[command(name = "sluice", version)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check Rollout and AnalysisTemplate documents (either apiVersion); exit 1 if any is invalid.
    Lint {
        /// Files to check (multi-document YAML).
        #[arg(short = 'f', long = "file", required = true)]
        files: Vec<PathBuf>,
        /// Print only problems.
        #[arg(short, long)]
        quiet: bool,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    match args.command {
        Command::Lint { files, quiet } => {
            let mut ok = true;
            for f in &files {
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
    }
}
