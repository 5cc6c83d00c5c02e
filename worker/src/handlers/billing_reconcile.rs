//! `billing.stripe_reconcile`: the nightly drift report and Stripe ↔ local subscription reconciliation.

use mingus_common::billing::drift::{self, DriftItem};
use mingus_common::jobs::stripe_jobs::StripeReconcile;
use mingus_common::stripe_api::{self, ReconcileOptions, StripeApi, StripeApiError};

use super::Handler;
use crate::context::{JobContext, JobError};
use mingus_common::jobs::Envelope;

/// Stores the local drift report (`billing::drift`, every deployment), then runs
/// `stripe_api::reconcile` and stores its report too; without `STRIPE_API_KEY` that second part does
/// nothing. Stripe or database trouble is retried.
impl Handler for StripeReconcile {
    async fn run(ctx: &JobContext, _: &Envelope, job: Self) -> Result<(), JobError> {
        let local = drift::local(&ctx.db).await?;
        for item in &local.items {
            tracing::warn!(kind = item.kind, id = %item.id, detail = %item.detail, "stripe drift");
        }
        drift::store(&ctx.db, "local", local.checked, &local.items).await?;
        tracing::info!(
            checked = local.checked,
            drift = local.count(),
            "stripe local drift report stored"
        );
        let api = match StripeApi::from_config(&ctx.config) {
            Ok(api) => api,
            Err(StripeApiError::MissingKey) => {
                tracing::info!(
                    "stripe reconcile against the API skipped: STRIPE_API_KEY is not set"
                );
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
        let items: Vec<DriftItem> = report
            .drift
            .iter()
            .map(|d| DriftItem {
                kind: "stripe_subscription",
                id: d.subscription.clone(),
                detail: d.to_string(),
            })
            .collect();
        let checked = i64::try_from(report.checked).unwrap_or(i64::MAX);
        drift::store(&ctx.db, "stripe", checked, &items).await?;
        tracing::info!(
            checked = report.checked,
            drift = report.drift.len(),
            fixes_staged = report.fixes_staged,
            truncated = report.truncated,
            "stripe reconcile done"
        );
        Ok(())
    }
}
