//! The `user_analytics` rollup: the fan-out job and the shard job (see `mingus_common::analytics`).

use mingus_common::analytics::{Shard, rollup, stage};
use mingus_common::jobs::analytics_jobs::{AnalyticsRollup, AnalyticsRollupShard};
use mingus_common::jobs::{Envelope, outbox};

use super::Handler;
use crate::context::{JobContext, JobError};

/// Stages one shard job per (date, shard) in the outbox and pushes the new ones. Job ids derive from
/// this job's id, so a retry stages nothing twice; shards staged by an attempt that crashed before its
/// push are pushed by the outbox sweep.
impl Handler for AnalyticsRollup {
    async fn run(ctx: &JobContext, envelope: &Envelope, job: Self) -> Result<(), JobError> {
        let shards = job.shards.unwrap_or(ctx.config.jobs.analytics_shards);
        let jobs = stage::shard_jobs(&job.dates, shards, Some(envelope.job_id))
            .map_err(|err| JobError::Permanent(err.into()))?;
        let mut tx = ctx.db.begin().await?;
        let staged = stage::stage_shards(&mut tx, &jobs).await?;
        tx.commit().await?;
        outbox::push_after_commit(&ctx.db, &ctx.enqueuer, &staged).await;
        tracing::info!(
            dates = ?job.dates,
            shards,
            staged = staged.len(),
            "rollup fanned out"
        );
        Ok(())
    }
}

/// One set-based statement for the shard's users.
impl Handler for AnalyticsRollupShard {
    async fn run(ctx: &JobContext, _: &Envelope, job: Self) -> Result<(), JobError> {
        let shard =
            Shard::new(job.shard, job.shards).map_err(|err| JobError::Permanent(err.into()))?;
        let report = rollup::roll_up(&ctx.db, job.date, shard).await?;
        tracing::info!(
            date = %job.date,
            shard = %shard,
            rows_written = report.rows_written,
            elapsed_ms = report.elapsed.as_millis() as u64,
            "rollup shard done"
        );
        Ok(())
    }
}
