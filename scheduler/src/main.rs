//! `mingus-scheduler`: thin entry point; the logic lives in the library.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use mingus_common::config::Needs;
use mingus_common::{Config, shutdown, telemetry};

/// The platform's allocator, as every binary's (why: `api/src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Every setting comes from the environment (docs/operating.md, "Configuration"); the flags only describe.
#[derive(Parser)]
#[command(
    name = "mingus-scheduler",
    version,
    about = "Fires the Mingus cron table (DESIGN §4) as jobs; any number of replicas may run",
    long_about = "Fires the Mingus cron table (DESIGN §4) as jobs; replicas agree through PostgreSQL, so \
                  any number may run. Configured by environment variables (DATABASE_URL, REDIS_URL, \
                  MINGUS_SCHEDULE_*); probes and metrics on MINGUS_SCHEDULER_METRICS_ADDR."
)]
struct Args {}

#[tokio::main]
async fn main() -> ExitCode {
    Args::parse();
    let config = match Config::from_env_for(Needs::SCHEDULER) {
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
