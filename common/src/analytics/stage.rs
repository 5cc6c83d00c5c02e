//! Staging rollup shard jobs in the outbox (the fan-out job and backfills).

use chrono::NaiveDate;
use sqlx::PgConnection;
use uuid::Uuid;

use super::Shard;
use crate::jobs::analytics_jobs::AnalyticsRollupShard;
use crate::jobs::{Envelope, outbox};

/// The shard jobs of `dates` split into `shards`, each with its job id: derived from `parent` when a
/// fan-out job stages them (stable across its retries), new UUIDv7s otherwise.
pub fn shard_jobs(
    dates: &[NaiveDate],
    shards: u32,
    parent: Option<Uuid>,
) -> Result<Vec<(Uuid, AnalyticsRollupShard)>, super::ShardError> {
    let split = Shard::all(shards)?;
    Ok(dates
        .iter()
        .flat_map(|&date| {
            split.iter().map(move |shard| AnalyticsRollupShard {
                date,
                shard: shard.index,
                shards: shard.count,
            })
        })
        .map(|job| {
            let id = parent.map_or_else(Uuid::now_v7, |p| job.job_id_under(p));
            (id, job)
        })
        .collect())
}

/// Writes the outbox rows of `jobs` (skipping ids already staged) in the caller's transaction and returns
/// the envelopes of the rows it wrote, to push after commit.
pub async fn stage_shards(
    conn: &mut PgConnection,
    jobs: &[(Uuid, AnalyticsRollupShard)],
) -> anyhow::Result<Vec<Envelope>> {
    Ok(outbox::stage_many_absent(conn, jobs).await?)
}
