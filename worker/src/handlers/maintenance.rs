use mingus_common::jobs::outbox;

use crate::context::{JobContext, JobError};
use crate::retention;

/// Re-pushes outbox rows whose job Redis lost, a bounded number of batches per run.
pub async fn outbox_sweep(ctx: &JobContext) -> Result<(), JobError> {
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

/// Trims Redis job data (by age and count, incrementally) and old ledger rows.
pub async fn retention(ctx: &JobContext) -> Result<(), JobError> {
    let jobs = &ctx.config.jobs;
    let report = retention::trim_redis(
        &ctx.enqueuer,
        &ctx.redis,
        jobs.finished_max_count,
        jobs.finished_max_age,
    )
    .await?;
    let ledger = retention::trim_ledger(&ctx.db, jobs.ledger_retention).await?;
    tracing::info!(
        redis_removed = report,
        ledger_removed = ledger,
        "retention done"
    );
    Ok(())
}
