#![doc = include_str!("../README.md")]

pub mod context;
mod execute;
mod handlers;
pub mod metrics;
mod promoter;
pub mod retention;
mod runtime;
pub mod stripe;

use std::future::Future;
use std::sync::Arc;

use clap::Parser;
use mingus_common::queue::Queue;
use mingus_common::{Config, probe};

pub use handlers::billing_sweeps;
pub use runtime::{WorkerRuntime, worker_name};

#[derive(Debug, Clone, Parser)]
#[command(name = "mingus-worker", about = "Runs the Mingus job workers", version)]
pub struct Args {
    /// Comma-separated queues to serve (default: all).
    #[arg(long, value_delimiter = ',')]
    pub queues: Vec<Queue>,
}

/// Serves the selected queues until `shutdown` resolves, then drains: stops fetching, finishes in-flight
/// jobs within `MINGUS_SHUTDOWN_TIMEOUT`, returns buffered ones to the queue, flushes the ledger.
pub async fn run(
    config: Arc<Config>,
    args: Args,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // Bound before connecting, so a taken explicit address stops the process at once.
    let probe_listener = match config.jobs.metrics_addr {
        Some(listen) => Some(probe::bind(listen, "MINGUS_WORKER_METRICS_ADDR").await?),
        None => None,
    };
    let queues = if args.queues.is_empty() {
        Queue::ALL.to_vec()
    } else {
        args.queues
    };
    let runtime = WorkerRuntime::connect(config).await?;
    if let Some(listener) = probe_listener {
        let handle = metrics::install()?;
        probe::spawn(
            listener,
            probe::Probe {
                service: "mingus-worker",
                db: runtime.ctx.db.clone(),
                redis: runtime.ctx.redis.clone(),
                metrics: Arc::new(move || handle.render()),
            },
        )?;
    }
    runtime.run(&queues, shutdown).await
}
