//! `billing.stripe_reconcile`: the nightly Stripe ↔ local subscription reconciliation.

use mingus_common::jobs::stripe_jobs::StripeReconcile;
use mingus_common::stripe_api::{self, ReconcileOptions, StripeApi, StripeApiError};

use crate::context::{JobContext, JobError};

/// Runs `stripe_api::reconcile`; without `STRIPE_API_KEY` it does nothing (the schedule exists in
/// every deployment, the work only where a key is configured). Stripe or database trouble is retried.
pub async fn stripe_reconcile(ctx: &JobContext, job: StripeReconcile) -> Result<(), JobError> {
    let api = match StripeApi::from_config(&ctx.config) {
        Ok(api) => api,
        Err(StripeApiError::MissingKey) => {
            tracing::info!("stripe reconcile skipped: STRIPE_API_KEY is not set");
            return Ok(());
        }
        Err(err) => return Err(JobError::Permanent(err.into())),
    };
    let options = ReconcileOptions {
        fix: job.fix,
        ..ReconcileOptions::default()
    };
    let report = stripe_api::reconcile(
        &ctx.db,
        &ctx.enqueuer,
        &api,
        ctx.config.stripe.mode,
        options,
    )
    .await?;
    for drift in &report.drift {
        tracing::warn!(%drift, "stripe subscription drift");
    }
    tracing::info!(
        checked = report.checked,
        drift = report.drift.len(),
        fixes_staged = report.fixes_staged,
        truncated = report.truncated,
        "stripe reconcile done"
    );
    Ok(())
}
