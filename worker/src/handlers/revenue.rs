//! The nightly revenue facts (`analytics.revenue_rollup`): see `mingus_common::revenue`.

use mingus_common::jobs::Envelope;
use mingus_common::jobs::revenue_jobs::RevenueRollup;
use mingus_common::revenue::{self, RevenueError};

use super::Handler;
use crate::context::{JobContext, JobError};

impl Handler for RevenueRollup {
    async fn run(ctx: &JobContext, _: &Envelope, job: Self) -> Result<(), JobError> {
        match revenue::compute(&ctx.db, job.from, job.to).await {
            Ok(done) => {
                tracing::info!(from = %job.from, to = %job.to, days = done.days,
                    elapsed_ms = done.elapsed.as_millis() as u64, "revenue facts computed");
                Ok(())
            }
            // A range no retry can fix.
            Err(err @ RevenueError::Range { .. }) => Err(JobError::Permanent(err.into())),
            Err(RevenueError::Database(err)) => Err(err.into()),
        }
    }
}
