#![doc = include_str!("../README.md")]

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use mingus_common::{Config, cache, db};

/// Connects to PostgreSQL and Redis and drives the cron table until `shutdown` resolves.
pub async fn run(config: Arc<Config>, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let _db = db::connect(&config.database)
        .await
        .context("cannot connect to DATABASE_URL")?;
    let _redis = cache::connect(&config.redis)
        .await
        .context("cannot connect to REDIS_URL")?;
    tracing::info!("mingus-scheduler started");
    shutdown.await;
    tracing::info!("mingus-scheduler stopped");
    Ok(())
}
