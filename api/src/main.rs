//! `mingus-api`: loads the configuration, initialises tracing and serves until SIGINT/SIGTERM.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use mingus_common::config::Needs;
use mingus_common::{Config, shutdown, telemetry};

/// mimalloc instead of glibc's malloc: a `/v1` request makes a few hundred small allocations, and
/// glibc's `malloc`/`free` were ~12 % of the API's CPU in a profile of `GET /v1/features/{feature}`;
/// swapping the allocator raised that route's throughput by ~70 % in one benchmark run
/// (docs/performance.md). Every binary of the platform makes the same choice (the libraries make none).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Every setting comes from the environment (docs/operating.md, "Configuration"); the flags only describe.
#[derive(Parser)]
#[command(
    name = "mingus-api",
    version,
    about = "The Mingus HTTP API: Stripe webhooks, the /v1 frontend API, health, and /ops",
    long_about = "The Mingus HTTP API: Stripe webhooks, the /v1 frontend API and health on MINGUS_API_ADDR; \
                  /ops and /metrics on MINGUS_OPS_ADDR. Configured entirely by environment variables \
                  (secrets also as *_FILE); SIGTERM drains in-flight requests, then exits."
)]
struct Args {}

#[tokio::main]
async fn main() -> ExitCode {
    Args::parse();
    let config = match Config::from_env_for(Needs::API) {
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
