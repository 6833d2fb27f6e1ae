//! The `b2b` binary: configuration, telemetry and one subcommand per process role.
#![forbid(unsafe_code)]

mod audit;
mod cli;
mod config;
mod http;
mod projections_cli;
mod startup;
mod telemetry;

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init();
    let cli = cli::Cli::parse();
    cli::run(cli.action).await
}
