//! `mingus-worker`: thin entry point; the logic lives in the library.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use mingus_common::{Config, shutdown, telemetry};
use mingus_worker::Args;

/// The platform's allocator, as every binary's (why: `api/src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let config = match Config::from_env_for(mingus_common::config::Needs::WORKER) {
        Ok(config) => Arc::new(config),
        Err(err) => {
            eprintln!("mingus-worker: configuration error: {err}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(config.log_format);
    match mingus_worker::run(config, args, shutdown::signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(
                error = format!("{err:#}"),
                "mingus-worker stopped with an error"
            );
            ExitCode::FAILURE
        }
    }
}
