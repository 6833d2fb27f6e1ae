//! The `b2b` binary: configuration, telemetry and one subcommand per process role.
#![forbid(unsafe_code)]

mod audit;
mod cli;
mod config;
mod http;
mod projections_cli;
mod startup;
mod supervisor;
mod telemetry;

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = cli::Cli::parse();
    telemetry::init(&cli.settings.rust_log, &cli.settings.log_format);
    cli::run(cli.action, cli.settings).await
}
