//! Runs one attempt of a job under our policy: timeout, panic capture, retry with backoff and jitter or a
//! dead letter, the outbox mark, the ledger record and metrics. apalis only ever sees success, so its
//! hard-coded 25 retries never apply (NOTES-apalis defect 3).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::FutureExt;
use mingus_common::jobs::catalog;
use mingus_common::jobs::ledger::{Ledger, RunRecord, RunStatus};
use mingus_common::jobs::{Envelope, QueueKeys, REQUEST_ID, outbox};
use mingus_common::text::clip;
use tracing::Instrument;

use crate::context::{JobContext, JobError};
use crate::handlers;

/// Per-queue state shared by every attempt the queue's worker runs.
pub struct QueueRunner {
    pub ctx: JobContext,
    pub keys: Arc<QueueKeys>,
    pub ledger: Ledger,
    pub worker: Arc<str>,
    /// Queue-level timeout override.
    pub timeout: Option<Duration>,
}

enum Outcome {
    Succeeded,
    Retry { error: String, delay: Duration },
    Dead { error: String },
}

impl QueueRunner {
    fn timeout_for(&self, envelope: &Envelope) -> Duration {
        self.timeout
            .or_else(|| catalog::spec(&envelope.kind).map(|s| s.timeout))
            .unwrap_or(Duration::from_secs(300))
    }

    /// Runs the attempt and settles it. Errors only when the outcome could not be recorded durably
    /// (Redis or PostgreSQL unreachable): apalis then keeps the task and it runs again.
    pub async fn run(&self, envelope: Envelope) -> anyhow::Result<()> {
        let request_id = envelope.request_id.clone();
        let span = tracing::info_span!("job", job_id = %envelope.job_id, kind = %envelope.kind, attempt = envelope.attempt,
            request_id = request_id.as_deref().unwrap_or(""));
        async {
            let started_at = Utc::now();
            let clock = Instant::now();
            let timeout = self.timeout_for(&envelope);
            let work = tokio::time::timeout(timeout, handlers::dispatch(&self.ctx, &envelope));
            // Jobs this one enqueues inherit its request id.
            let result = match request_id.clone() {
                Some(id) => AssertUnwindSafe(REQUEST_ID.scope(id, work)).catch_unwind().await,
                None => AssertUnwindSafe(work).catch_unwind().await,
            };
            let elapsed = clock.elapsed();
            let outcome = match result {
                Ok(Ok(Ok(()))) => Outcome::Succeeded,
                Ok(Ok(Err(JobError::Permanent(err)))) => Outcome::Dead { error: format!("{err:#}") },
                Ok(Ok(Err(JobError::Retryable(err)))) => self.retry_or_dead(&envelope, format!("{err:#}")),
                Ok(Err(_)) => self.retry_or_dead(&envelope, format!("timed out after {} s", timeout.as_secs_f64())),
                Err(panic) => self.retry_or_dead(&envelope, format!("panicked: {}", panic_message(&panic))),
            };
            self.settle(&envelope, &outcome).await?;
            let (status, error) = match outcome {
                Outcome::Succeeded => (RunStatus::Succeeded, None),
                Outcome::Retry { error, delay } => {
                    tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "job failed, will retry");
                    (RunStatus::Retrying, Some(error))
                }
                Outcome::Dead { error } => {
                    tracing::error!(%error, "job dead");
                    (RunStatus::Dead, Some(error))
                }
            };
            crate::metrics::job_finished(self.keys.queue.name(), &envelope.kind, status, elapsed);
            self.ledger.record(RunRecord {
                keys: self.keys.clone(),
                kind: envelope.kind.clone(),
                job_id: envelope.job_id,
                task_id: envelope.task_id(),
                attempt: envelope.attempt,
                max_attempts: envelope.max_attempts,
                status,
                error: error.map(|e| clip(&e, 4_000)),
                worker: self.worker.clone(),
                enqueued_at: envelope.enqueued_at,
                started_at,
                finished_at: Utc::now(),
                args_summary: envelope.summary.clone(),
            });
            Ok(())
        }
        .instrument(span)
        .await
    }

    fn retry_or_dead(&self, envelope: &Envelope, error: String) -> Outcome {
        if envelope.attempt >= envelope.max_attempts {
            return Outcome::Dead { error };
        }
        let backoff = catalog::spec(&envelope.kind).map(|s| s.backoff).unwrap_or(
            mingus_common::jobs::Backoff::new(Duration::from_secs(1), Duration::from_secs(600)),
        );
        let delay = backoff.delay(envelope.attempt + 1, rand::random::<f64>());
        Outcome::Retry { error, delay }
    }

    async fn settle(&self, envelope: &Envelope, outcome: &Outcome) -> anyhow::Result<()> {
        match outcome {
            Outcome::Succeeded => {
                if envelope.outbox && !handlers::settles_own_outbox(&envelope.kind) {
                    outbox::complete(&self.ctx.db, envelope.job_id, "succeeded").await?;
                }
            }
            Outcome::Retry { delay, .. } => {
                let next = envelope.next_attempt();
                let run_at = Utc::now() + chrono::Duration::from_std(*delay)?;
                self.ctx.enqueuer.push(&[next], Some(run_at), None).await?;
            }
            Outcome::Dead { error } => {
                dead_letter(&self.ctx, envelope, error).await?;
                handlers::on_dead(&self.ctx, envelope, error).await?;
                if envelope.outbox {
                    outbox::complete(&self.ctx.db, envelope.job_id, "dead").await?;
                }
            }
        }
        Ok(())
    }
}

/// Keeps the dead job in PostgreSQL, where operators see and retry it (Redis may lose it).
async fn dead_letter(
    ctx: &JobContext,
    envelope: &Envelope,
    error: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO job_dead_letters (job_id, queue, kind, args, attempts, max_attempts, generation, last_error, enqueued_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (job_id) DO UPDATE SET attempts = EXCLUDED.attempts, generation = EXCLUDED.generation,
             last_error = EXCLUDED.last_error, died_at = now(), retried_at = NULL, args = EXCLUDED.args",
    )
    .bind(envelope.job_id)
    .bind(envelope.queue.name())
    .bind(&envelope.kind)
    .bind(sqlx::types::Json(envelope))
    .bind(envelope.attempt as i32)
    .bind(envelope.max_attempts as i32)
    .bind(envelope.generation as i32)
    .bind(clip(error, 4_000))
    .bind(envelope.enqueued_at)
    .execute(&ctx.db)
    .await
    .map(|_| ())
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}
