use mingus_common::analytics::partitions;
use mingus_common::email::deliveries;
use mingus_common::jobs::analytics_jobs::PartitionMaintenance;
use mingus_common::jobs::outbox;

use super::Handler;
use crate::context::{JobContext, JobError};
use crate::retention;
use mingus_common::jobs::Envelope;
use mingus_common::jobs::catalog::{OutboxSweep, Retention};

/// How long after its job ended an unfinished row is failed: the runtime settles a dead report job at
/// once, so this only covers what nothing settled.
const ORPHAN_GRACE: std::time::Duration = std::time::Duration::from_secs(60);

/// Re-pushes outbox rows whose job Redis lost, a bounded number of batches per run, then fails the reports
/// and e-mail deliveries whose job ended without recording an outcome, which would otherwise wait for
/// ever.
impl Handler for OutboxSweep {
    async fn run(ctx: &JobContext, _: &Envelope, _: Self) -> Result<(), JobError> {
        sweep_outbox(ctx).await?;
        let reports = super::reports::fail_orphans(&ctx.db, ORPHAN_GRACE, 1_000).await?;
        let deliveries = deliveries::fail_orphans(&ctx.db, ORPHAN_GRACE, 1_000).await?;
        if reports + deliveries as usize > 0 {
            tracing::warn!(
                reports,
                deliveries,
                "failed rows whose job ended without an outcome"
            );
        }
        Ok(())
    }
}

async fn sweep_outbox(ctx: &JobContext) -> Result<(), JobError> {
    for _ in 0..20 {
        let report = outbox::sweep(
            &ctx.db,
            &ctx.enqueuer,
            ctx.config.jobs.outbox_stale_after,
            1_000,
        )
        .await?;
        if report.examined < 1_000 {
            break;
        }
    }
    Ok(())
}

/// Trims Redis job data (by age and count, incrementally) and the old job history in PostgreSQL (ledger,
/// completed outbox rows, scheduler runs).
impl Handler for Retention {
    async fn run(ctx: &JobContext, _: &Envelope, _: Self) -> Result<(), JobError> {
        let jobs = &ctx.config.jobs;
        let report = retention::trim_redis(
            &ctx.enqueuer,
            &ctx.redis,
            jobs.finished_max_count,
            jobs.finished_max_age,
        )
        .await?;
        let history = retention::trim_history(&ctx.db, jobs.ledger_retention).await?;
        tracing::info!(
            redis_removed = report,
            ledger_removed = history.ledger,
            outbox_removed = history.outbox,
            cron_runs_removed = history.cron_runs,
            "retention done"
        );
        Ok(())
    }
}

/// Premakes the next months' partitions (rescuing rows from default partitions) and applies retention,
/// for every table in `partitioned_tables`. Steps that failed (a lock not granted in time) fail the job,
/// so it is retried with backoff; the steps that succeeded are not redone (they are idempotent).
impl Handler for PartitionMaintenance {
    async fn run(ctx: &JobContext, _: &Envelope, job: Self) -> Result<(), JobError> {
        let mut options = partitions::Options::new(chrono::Utc::now().date_naive());
        options.dry_run = job.dry_run;
        let report = partitions::maintain(&ctx.db, options).await?;
        tracing::info!(
            actions = ?report.actions,
            elapsed_ms = report.elapsed.as_millis() as u64,
            dry_run = report.dry_run,
            "partition maintenance done"
        );
        if !report.failures.is_empty() {
            return Err(JobError::Retryable(anyhow::anyhow!(
                "partition maintenance: {}",
                report
                    .failures
                    .iter()
                    .map(|(what, why)| format!("{what}: {why}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            )));
        }
        Ok(())
    }
}
