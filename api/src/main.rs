//! `mingus-api`: loads the configuration, initialises tracing and serves until SIGINT/SIGTERM.

use std::process::ExitCode;
use std::sync::Arc;

use mingus_common::{Config, shutdown, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => Arc::new(config),
        Err(err) => {
            eprintln!("mingus-api: configuration error: {err}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(config.log_format);
    match mingus_api::run(config, shutdown::signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(
                error = format!("{err:#}"),
                "mingus-api stopped with an error"
            );
            ExitCode::FAILURE
        }
    }
}
