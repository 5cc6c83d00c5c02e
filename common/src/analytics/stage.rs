//! Staging rollup shard jobs in the outbox (the fan-out job and backfills).

use chrono::NaiveDate;
use sqlx::PgConnection;
use uuid::Uuid;

use super::Shard;
use crate::jobs::analytics_jobs::AnalyticsRollupShard;
use crate::jobs::{Envelope, Job, outbox};

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
    let envelopes: Vec<Envelope> = jobs
        .iter()
        .map(|(id, job)| outbox::prepare(job, *id))
        .collect::<Result<_, _>>()?;
    let ids: Vec<Uuid> = envelopes.iter().map(|e| e.job_id).collect();
    let args: Vec<sqlx::types::Json<&Envelope>> = envelopes.iter().map(sqlx::types::Json).collect();
    let staged: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO job_outbox (job_id, queue, kind, args, max_attempts, created_at)
         SELECT id, $2, $3, a, $4, now() FROM UNNEST($1::uuid[], $5::jsonb[]) AS t(id, a)
         ON CONFLICT (job_id) DO NOTHING
         RETURNING job_id",
    )
    .bind(&ids)
    .bind(AnalyticsRollupShard::SPEC.queue.name())
    .bind(AnalyticsRollupShard::SPEC.kind)
    .bind(AnalyticsRollupShard::SPEC.max_attempts as i32)
    .bind(&args)
    .fetch_all(conn)
    .await?;
    Ok(envelopes
        .into_iter()
        .filter(|e| staged.contains(&e.job_id))
        .collect())
}
