//! The `devgate` binary: parse the command line, set up logging on stderr, run the command.

mod cli;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let filter =
        EnvFilter::try_from_env("DEVGATE_LOG").unwrap_or_else(|_| EnvFilter::new("info,rmcp=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    match cli.log_format {
        cli::LogFormat::Json => builder.json().init(),
        cli::LogFormat::Text => builder.init(),
    }
    match cli::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("devgate: {e:#}");
            ExitCode::FAILURE
        }
    }
}
