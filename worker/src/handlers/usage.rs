//! The usage reset sweep (`usage.reset_sweep`, hourly): see `mingus_common::entitlements::reset`.

use chrono::Utc;
use mingus_common::entitlements::reset;

use super::Handler;
use crate::context::{JobContext, JobError};
use mingus_common::jobs::Envelope;
use mingus_common::jobs::catalog::UsageResetSweep;

impl Handler for UsageResetSweep {
    async fn run(ctx: &JobContext, _: &Envelope, _: Self) -> Result<(), JobError> {
        let report = reset::open_due_periods(&ctx.db, Utc::now()).await?;
        tracing::info!(?report, "usage reset sweep done");
        Ok(())
    }
}
