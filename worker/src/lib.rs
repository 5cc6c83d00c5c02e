#![doc = include_str!("../README.md")]

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use mingus_common::queue::Queue;
use mingus_common::{Config, cache, db};

#[derive(Debug, Clone, Parser)]
#[command(name = "mingus-worker", about = "Runs the Mingus job workers", version)]
pub struct Args {
    /// Comma-separated queues to serve (default: all).
    #[arg(long, value_delimiter = ',')]
    pub queues: Vec<Queue>,
}

/// Connects to PostgreSQL and Redis, serves the selected queues and returns once `shutdown` resolved and
/// in-flight work finished.
pub async fn run(
    config: Arc<Config>,
    args: Args,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let queues = if args.queues.is_empty() {
        Queue::ALL.to_vec()
    } else {
        args.queues
    };
    let _db = db::connect(&config.database)
        .await
        .context("cannot connect to DATABASE_URL")?;
    let _redis = cache::connect(&config.redis)
        .await
        .context("cannot connect to REDIS_URL")?;
    let names: Vec<&str> = queues.iter().map(|q| q.name()).collect();
    tracing::info!(queues = ?names, "mingus-worker started");
    shutdown.await;
    tracing::info!("mingus-worker stopped");
    Ok(())
}
