//! `mingus-scheduler`: thin entry point; the logic lives in the library.

use std::process::ExitCode;
use std::sync::Arc;

use mingus_common::{Config, shutdown, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => Arc::new(config),
        Err(err) => {
            eprintln!("mingus-scheduler: configuration error: {err}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(config.log_format);
    match mingus_scheduler::run(config, shutdown::signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(
                error = format!("{err:#}"),
                "mingus-scheduler stopped with an error"
            );
            ExitCode::FAILURE
        }
    }
}
