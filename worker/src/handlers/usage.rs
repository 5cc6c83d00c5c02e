//! The usage reset sweep (`usage.reset_sweep`, hourly): see `mingus_common::entitlements::reset`.

use chrono::Utc;
use mingus_common::entitlements::reset;

use crate::context::{JobContext, JobError};

pub async fn reset_sweep(ctx: &JobContext) -> Result<(), JobError> {
    let report = reset::open_due_periods(&ctx.db, Utc::now()).await?;
    tracing::info!(?report, "usage reset sweep done");
    Ok(())
}
