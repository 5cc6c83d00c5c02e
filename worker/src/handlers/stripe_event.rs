//! `stripe.process_event`: applies one stored Stripe event (the work is in [`crate::stripe`]).

use mingus_common::jobs::Envelope;
use mingus_common::jobs::catalog::ProcessStripeEvent;

use super::Handler;
use crate::context::{JobContext, JobError};
use crate::stripe::{self, Attempt};

impl Handler for ProcessStripeEvent {
    /// The outbox row is completed in the event's own transaction: the applied state, the event's
    /// status and the job's completion are durable together.
    const SETTLES_OWN_OUTBOX: bool = true;

    async fn run(ctx: &JobContext, envelope: &Envelope, job: Self) -> Result<(), JobError> {
        let attempt = Attempt {
            number: envelope.attempt,
            max_attempts: envelope.max_attempts,
        };
        let outbox_job = envelope.outbox.then_some(envelope.job_id);
        let outcome = stripe::process_event(ctx, &job.event_id, outbox_job, attempt).await?;
        tracing::debug!(event_id = %job.event_id, ?outcome, "stripe event done");
        Ok(())
    }

    /// An event still `received` becomes `failed` with the job's last error.
    async fn on_dead(ctx: &JobContext, job: Self, error: &str) -> Result<(), sqlx::Error> {
        stripe::give_up(&ctx.db, &job.event_id, error).await
    }
}
