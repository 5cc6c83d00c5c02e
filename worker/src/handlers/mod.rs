//! One handler per job kind; [`dispatch`] routes an envelope to it.

mod analytics;
mod bench;
mod email;
mod maintenance;
mod reconcile;
mod reports;
mod usage;

use mingus_common::jobs::analytics_jobs::{
    AnalyticsRollup, AnalyticsRollupShard, PartitionMaintenance,
};
use mingus_common::jobs::billing_jobs::{RenewalSweep, TrialExpirySweep};
use mingus_common::jobs::catalog::ProcessStripeEvent;
use mingus_common::jobs::catalog::{BenchNoop, OutboxSweep, Retention, UsageResetSweep};
use mingus_common::jobs::email_jobs::{ReminderSweep, SendEmail};
use mingus_common::jobs::report_jobs::GenerateReport;
use mingus_common::jobs::stripe_jobs::StripeReconcile;
use mingus_common::jobs::{Envelope, Job};
use serde::de::DeserializeOwned;

use crate::context::{JobContext, JobError};

fn args<J: Job + DeserializeOwned>(envelope: &Envelope) -> Result<J, JobError> {
    serde_json::from_value(envelope.args.clone()).map_err(|err| {
        JobError::Permanent(anyhow::anyhow!(
            "arguments of {} do not parse: {err}",
            envelope.kind
        ))
    })
}

pub async fn dispatch(ctx: &JobContext, envelope: &Envelope) -> Result<(), JobError> {
    match envelope.kind.as_str() {
        k if k == BenchNoop::SPEC.kind => bench::noop(ctx, envelope, args(envelope)?).await,
        k if k == OutboxSweep::SPEC.kind => maintenance::outbox_sweep(ctx).await,
        k if k == Retention::SPEC.kind => maintenance::retention(ctx).await,
        k if k == ProcessStripeEvent::SPEC.kind => {
            crate::stripe::handle(ctx, envelope, args(envelope)?).await
        }
        k if k == TrialExpirySweep::SPEC.kind => {
            crate::stripe::lifecycle::trial_expiry_sweep(ctx).await
        }
        k if k == RenewalSweep::SPEC.kind => crate::stripe::lifecycle::renewal_sweep(ctx).await,
        k if k == StripeReconcile::SPEC.kind => {
            reconcile::stripe_reconcile(ctx, args(envelope)?).await
        }
        k if k == SendEmail::SPEC.kind => email::send(ctx, envelope, args(envelope)?).await,
        k if k == ReminderSweep::SPEC.kind => email::reminder_sweep(ctx).await,
        k if k == AnalyticsRollup::SPEC.kind => {
            analytics::rollup(ctx, envelope, args(envelope)?).await
        }
        k if k == AnalyticsRollupShard::SPEC.kind => {
            analytics::rollup_shard(ctx, args(envelope)?).await
        }
        k if k == PartitionMaintenance::SPEC.kind => {
            maintenance::partitions(ctx, args(envelope)?).await
        }
        k if k == UsageResetSweep::SPEC.kind => usage::reset_sweep(ctx).await,
        k if k == GenerateReport::SPEC.kind => {
            reports::generate(ctx, envelope, args(envelope)?).await
        }
        other => Err(JobError::Permanent(anyhow::anyhow!(
            "no handler for job kind {other:?}"
        ))),
    }
}

/// Settles the business row of a job that just died, where its kind has one that would otherwise wait
/// for ever (Sidekiq's `sidekiq_retries_exhausted`, BullMQ's `failed` event): a report still
/// `queued`/`running` fails with the job's last error; a Stripe event still `received` becomes `failed`.
/// Runs before the outbox row is completed, so a failure here leaves the job to run again rather than
/// the row stuck. Arguments that do not parse name no row: nothing to settle.
pub async fn on_dead(
    ctx: &JobContext,
    envelope: &Envelope,
    error: &str,
) -> Result<(), sqlx::Error> {
    let kind = envelope.kind.as_str();
    if kind == GenerateReport::SPEC.kind
        && let Ok(job) = args::<GenerateReport>(envelope)
    {
        reports::give_up(&ctx.db, job.report_id, error).await?;
    } else if kind == ProcessStripeEvent::SPEC.kind
        && let Ok(job) = args::<ProcessStripeEvent>(envelope)
    {
        crate::stripe::give_up(&ctx.db, &job.event_id, error).await?;
    }
    Ok(())
}

/// Job kinds whose handler completes the job's outbox row itself, in the transaction of its work (one
/// commit instead of two); the runtime completes it for every other kind, and for dead letters.
pub fn settles_own_outbox(kind: &str) -> bool {
    kind == ProcessStripeEvent::SPEC.kind
}
