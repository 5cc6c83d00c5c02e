//! The outbox rule: work that matters is a `job_outbox` row (written in the caller's transaction, beside
//! the business row) before it is a job in Redis. [`sweep`] re-pushes rows that are not completed and
//! were last pushed longer ago than the stale window. Pushes carry the deterministic task id of the
//! job's first attempt, so Redis drops a re-push of a job it still has; only jobs Redis lost come back.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{Enqueuer, Envelope, Job};
use crate::queue::Queue;

/// Writes the outbox row for `job` in the caller's transaction and returns the envelope to push after
/// commit (push with [`push_after_commit`]; if that push fails, the sweep pushes it later).
pub async fn stage<J: Job>(
    conn: &mut PgConnection,
    job: &J,
    job_id: Uuid,
) -> anyhow::Result<Envelope> {
    let envelope = prepare(job, job_id)?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO job_outbox {OUTBOX_COLUMNS} VALUES ($1, $2, $3, $4, $5, $6)"
    )))
    .bind(envelope.job_id)
    .bind(envelope.queue.name())
    .bind(&envelope.kind)
    .bind(sqlx::types::Json(&envelope))
    .bind(envelope.max_attempts as i32)
    .bind(envelope.enqueued_at)
    .execute(conn)
    .await?;
    Ok(envelope)
}

/// Writes the outbox rows of `jobs` (one statement), skipping ids that already have one, and returns the
/// envelopes of the rows it wrote, to push after commit. Runs on a connection inside the caller's
/// transaction or on a pool.
pub async fn stage_many_absent<'e, J: Job>(
    executor: impl sqlx::PgExecutor<'e>,
    jobs: &[(Uuid, J)],
) -> Result<Vec<Envelope>, sqlx::Error> {
    let envelopes: Vec<Envelope> = jobs
        .iter()
        .map(|(id, job)| prepare(job, *id))
        .collect::<Result<_, _>>()
        .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let ids: Vec<Uuid> = envelopes.iter().map(|e| e.job_id).collect();
    let args: Vec<sqlx::types::Json<&Envelope>> = envelopes.iter().map(sqlx::types::Json).collect();
    let staged: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO job_outbox (job_id, queue, kind, args, max_attempts, created_at)
         SELECT id, $2, $3, a, $4, now() FROM UNNEST($1::uuid[], $5::jsonb[]) AS t(id, a)
         ON CONFLICT (job_id) DO NOTHING
         RETURNING job_id",
    )
    .bind(&ids)
    .bind(J::SPEC.queue.name())
    .bind(J::SPEC.kind)
    .bind(J::SPEC.max_attempts as i32)
    .bind(&args)
    .fetch_all(executor)
    .await?;
    Ok(envelopes
        .into_iter()
        .filter(|e| staged.contains(&e.job_id))
        .collect())
}

/// The envelope of an outbox-backed job, for callers that write the outbox row in a statement of their
/// own (e.g. one `WITH … INSERT` together with the business row, with the columns of [`OUTBOX_COLUMNS`]).
pub fn prepare<J: Job>(job: &J, job_id: Uuid) -> Result<Envelope, serde_json::Error> {
    let mut envelope = Envelope::new(job, job_id)?;
    envelope.outbox = true;
    Ok(envelope)
}

/// The outbox row's columns: job id, queue name, kind, the envelope as JSON, max attempts, enqueued at.
pub const OUTBOX_COLUMNS: &str = "(job_id, queue, kind, args, max_attempts, created_at)";

/// Pushes staged envelopes. A Redis failure is logged, not returned: the row is durable and the sweep will
/// push it. The push is not recorded in PostgreSQL: that would cost a second commit on every hot path, and
/// the sweep only revisits rows older than the stale window, whose re-push Redis drops if it has the job.
pub async fn push_after_commit(
    _pool: &PgPool,
    enqueuer: &Enqueuer,
    envelopes: &[Envelope],
) -> bool {
    let mut all = true;
    for queue in Queue::ALL {
        let batch: Vec<Envelope> = envelopes
            .iter()
            .filter(|e| e.queue == queue)
            .cloned()
            .collect();
        if batch.is_empty() {
            continue;
        }
        if let Err(err) = enqueuer.push(&batch, None, None).await {
            tracing::warn!(%queue, jobs = batch.len(), error = %err, "push failed; the outbox sweep will retry");
            all = false;
        }
    }
    all
}

async fn mark_pushed(pool: &PgPool, ids: &[Uuid]) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE job_outbox SET last_pushed_at = now(), push_count = push_count + 1 WHERE job_id = ANY($1)")
        .bind(ids)
        .execute(pool)
        .await
        .map(|_| ())
}

/// Marks the outbox row of a finished job (success or dead letter).
pub async fn complete<'e>(
    pool: impl sqlx::PgExecutor<'e>,
    job_id: Uuid,
    outcome: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE job_outbox SET completed_at = now(), outcome = $2 WHERE job_id = $1 AND completed_at IS NULL")
        .bind(job_id)
        .bind(outcome)
        .execute(pool)
        .await
        .map(|_| ())
}

/// Re-opens a completed outbox row (an operator retried a dead job).
pub async fn reopen(pool: &PgPool, job_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE job_outbox SET completed_at = NULL, outcome = NULL, last_pushed_at = now() WHERE job_id = $1")
        .bind(job_id)
        .execute(pool)
        .await
        .map(|_| ())
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    pub examined: usize,
    pub revived: usize,
}

/// Re-pushes up to `limit` stale rows per call; returns what it saw and how many jobs Redis did not have.
pub async fn sweep(
    pool: &PgPool,
    enqueuer: &Enqueuer,
    stale_after: Duration,
    limit: i64,
) -> anyhow::Result<SweepReport> {
    let cutoff: DateTime<Utc> = Utc::now() - chrono::Duration::from_std(stale_after)?;
    let rows: Vec<(Uuid, sqlx::types::Json<Envelope>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT job_id, args, run_at FROM job_outbox
         WHERE completed_at IS NULL AND coalesce(last_pushed_at, created_at) < $1
         ORDER BY last_pushed_at NULLS FIRST LIMIT $2",
    )
    .bind(cutoff)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let mut report = SweepReport {
        examined: rows.len(),
        revived: 0,
    };
    for queue in Queue::ALL {
        let envelopes: Vec<Envelope> = rows
            .iter()
            .filter(|(_, e, _)| e.0.queue == queue)
            .map(|(_, e, _)| e.0.clone())
            .collect();
        if envelopes.is_empty() {
            continue;
        }
        report.revived += enqueuer.push(&envelopes, None, None).await?;
        let ids: Vec<Uuid> = envelopes.iter().map(|e| e.job_id).collect();
        mark_pushed(pool, &ids).await?;
    }
    if report.revived > 0 {
        tracing::info!(
            revived = report.revived,
            examined = report.examined,
            "outbox sweep re-pushed lost jobs"
        );
    }
    Ok(report)
}
