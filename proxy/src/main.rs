//! `sluice-proxy`: the proxy as its own binary (see [`sluice_proxy::cli`]).

use std::process::ExitCode;

use clap::Parser;

/// A traffic-splitting reverse proxy for canary and blue/green releases.
#[derive(Debug, Parser)]
#[command(name = "sluice-proxy", version)]
struct Cli {
    #[command(flatten)]
    args: sluice_proxy::cli::ProxyArgs,
}

fn main() -> ExitCode {
    sluice_proxy::cli::main_with(Cli::parse().args)
}
