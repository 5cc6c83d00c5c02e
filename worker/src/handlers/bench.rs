use std::time::Duration;

use mingus_common::jobs::Envelope;
use mingus_common::jobs::catalog::BenchNoop;

use super::Handler;
use crate::context::{JobContext, JobError};

/// Does nothing, or what its arguments ask for: sleep, fail, leave an idempotent mark.
impl Handler for BenchNoop {
    async fn run(ctx: &JobContext, envelope: &Envelope, job: Self) -> Result<(), JobError> {
        if job.sleep_ms > 0 {
            tokio::time::sleep(Duration::from_millis(job.sleep_ms)).await;
        }
        if job.fail_permanently {
            return Err(JobError::Permanent(anyhow::anyhow!(
                "asked to fail permanently"
            )));
        }
        if envelope.generation < job.fail_generations {
            return Err(JobError::Retryable(anyhow::anyhow!(
                "asked to fail generation {} (attempt {})",
                envelope.generation,
                envelope.attempt
            )));
        }
        if envelope.attempt <= job.fail_until_attempt {
            return Err(JobError::Retryable(anyhow::anyhow!(
                "asked to fail attempt {}",
                envelope.attempt
            )));
        }
        if let Some(mark) = &job.mark {
            sqlx::query(
            "INSERT INTO bench_marks (mark, job_id) VALUES ($1, $2) ON CONFLICT (mark) DO NOTHING",
        )
        .bind(mark)
        .bind(envelope.job_id)
        .execute(&ctx.db)
        .await?;
        }
        Ok(())
    }
}
