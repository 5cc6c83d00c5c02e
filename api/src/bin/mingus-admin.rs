//! `mingus-admin`: the ops CLI (migrations, database creation, demo data).

use std::process::ExitCode;

use clap::Parser;
use mingus_api::admin::Cli;
use mingus_common::{Config, telemetry};

/// The platform's allocator, as every binary's (why: `api/src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_env_for(cli.command.needs()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("mingus-admin: configuration error: {err}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(config.log_format);
    match mingus_api::admin::execute(cli, &config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("mingus-admin: {err:#}");
            ExitCode::FAILURE
        }
    }
}
