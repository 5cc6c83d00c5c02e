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
    let mut envelope = Envelope::new(job, job_id)?;
    envelope.outbox = true;
    sqlx::query(
        "INSERT INTO job_outbox (job_id, queue, kind, args, max_attempts, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(job_id)
    .bind(envelope.queue.name())
    .bind(&envelope.kind)
    .bind(sqlx::types::Json(&envelope))
    .bind(envelope.max_attempts as i32)
    .bind(envelope.enqueued_at)
    .execute(conn)
    .await?;
    Ok(envelope)
}

/// Pushes staged envelopes and records the push. A Redis failure is logged, not returned: the row is
/// durable and the sweep will push it.
pub async fn push_after_commit(pool: &PgPool, enqueuer: &Enqueuer, envelopes: &[Envelope]) -> bool {
    let mut all = true;
    for envelope in envelopes {
        match enqueuer
            .push(std::slice::from_ref(envelope), None, None)
            .await
        {
            Ok(_) => {
                let _ = mark_pushed(pool, &[envelope.job_id]).await;
            }
            Err(err) => {
                all = false;
                tracing::warn!(job_id = %envelope.job_id, error = %err, "push failed; the outbox sweep will retry");
            }
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
pub async fn complete(pool: &PgPool, job_id: Uuid, outcome: &str) -> Result<(), sqlx::Error> {
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
