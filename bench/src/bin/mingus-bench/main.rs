//! `mingus-bench`: the job-runtime benchmark (see `runtime/`). Thin entry point.
//!
//! `cargo run --release -p mingus-bench --bin mingus-bench -- --jobs 20000,100000 --runs 3`
//! `cargo run --release -p mingus-bench --bin mingus-bench -- stripe --events 20000 --runs 3`
//! `cargo run --release -p mingus-bench --bin mingus-bench -- stripe-convergence --events 20000 --runs 3`

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use mingus_common::{Config, shutdown, telemetry};

mod runtime;

/// The platform's allocator, as every binary's (why: `api/src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "mingus-bench",
    about = "Measures the job runtime: enqueue rates, drain rates, enqueue-to-start latency, worker memory",
    args_conflicts_with_subcommands = true,
    version
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    options: runtime::Options,
}

#[derive(Subcommand)]
enum Command {
    /// The worker under test (what `mingus-worker` runs), started by the benchmark itself.
    #[command(hide = true)]
    ServeWorker(mingus_worker::Args),
    /// Stripe subscription events applied per second by one worker, beside a no-op drain.
    Stripe(runtime::stripe::StripeOptions),
    /// How long after the last delivery a stream delivered newest first is fully applied.
    StripeConvergence(runtime::stripe_convergence::ConvergenceOptions),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::ServeWorker(args)) => serve_worker(args).await,
        Some(Command::Stripe(options)) => match runtime::stripe::run(options).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("mingus-bench stripe: {err:#}");
                ExitCode::FAILURE
            }
        },
        Some(Command::StripeConvergence(options)) => {
            match runtime::stripe_convergence::run(options).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("mingus-bench stripe-convergence: {err:#}");
                    ExitCode::FAILURE
                }
            }
        }
        None => match runtime::run(cli.options).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("mingus-bench: {err:#}");
                ExitCode::FAILURE
            }
        },
    }
}

/// Exactly what `mingus-worker` does.
async fn serve_worker(args: mingus_worker::Args) -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => Arc::new(config),
        Err(err) => {
            eprintln!("mingus-bench serve-worker: configuration error: {err}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(config.log_format);
    match mingus_worker::run(config, args, shutdown::signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "worker stopped with an error");
            ExitCode::FAILURE
        }
    }
}
