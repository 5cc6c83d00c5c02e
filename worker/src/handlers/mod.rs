//! The worker's job registry. Every job type of `mingus_common::every_job!` implements [`Handler`] in
//! the file of this module named after its kind (`billing.*` in `billing_sweeps.rs` and
//! `billing_reconcile.rs`, `email.*` in `email.rs`, …): what it runs, what it settles when it dies, and
//! whether it completes its own outbox row. The runtime reaches them only through [`dispatch`],
//! [`on_dead`] and [`settles_own_outbox`], generated from the catalog's list, so a job type without a
//! handler does not compile (crates.io's `register_job_type::<J>()`, Oban's `use Oban.Worker`).
//!
//! The job types themselves live in `mingus_common::jobs` because the API and the scheduler enqueue
//! them; the handlers need the worker's context, so they are implemented here, on those types.

mod analytics;
mod bench;
mod billing_reconcile;
pub mod billing_sweeps;
mod email;
mod maintenance;
mod reports;
mod revenue;
mod stripe_event;
mod usage;

use std::future::Future;

use mingus_common::jobs::{Envelope, Job};

use crate::context::{JobContext, JobError};

/// How the worker runs one job type.
pub trait Handler: Job {
    /// The handler completes the job's outbox row itself, in the transaction of its work (one commit
    /// instead of two); for every other kind, and for dead letters, the runtime completes it.
    const SETTLES_OWN_OUTBOX: bool = false;

    /// Runs one attempt. A retryable error is retried with the kind's backoff until `max_attempts`.
    fn run(
        ctx: &JobContext,
        envelope: &Envelope,
        job: Self,
    ) -> impl Future<Output = Result<(), JobError>> + Send;

    /// Settles the business row of a job that just died, where its kind has one that would otherwise
    /// wait for ever (Sidekiq's `sidekiq_retries_exhausted`, BullMQ's `failed` event). Runs before the
    /// outbox row is completed, so a failure here leaves the job to run again rather than the row stuck.
    fn on_dead(
        _ctx: &JobContext,
        _job: Self,
        _error: &str,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send {
        async { Ok(()) }
    }
}

/// The job's arguments; ones that do not parse fail it for good.
fn args<J: Job>(envelope: &Envelope) -> Result<J, JobError> {
    serde_json::from_value(envelope.args.clone()).map_err(|err| {
        JobError::Permanent(anyhow::anyhow!(
            "arguments of {} do not parse: {err}",
            envelope.kind
        ))
    })
}

/// Generates the three entry points from the catalog's list of job types.
macro_rules! registry {
    ($($job:path),* $(,)?) => {
        /// Runs the envelope's job with its kind's handler.
        pub async fn dispatch(ctx: &JobContext, envelope: &Envelope) -> Result<(), JobError> {
            let kind = envelope.kind.as_str();
            $(
                if kind == <$job as Job>::SPEC.kind {
                    return <$job as Handler>::run(ctx, envelope, args::<$job>(envelope)?).await;
                }
            )*
            Err(JobError::Permanent(anyhow::anyhow!("no handler for job kind {kind:?}")))
        }

        /// [`Handler::on_dead`] of the envelope's kind. Arguments that do not parse name no row:
        /// nothing to settle.
        pub async fn on_dead(
            ctx: &JobContext,
            envelope: &Envelope,
            error: &str,
        ) -> Result<(), sqlx::Error> {
            let kind = envelope.kind.as_str();
            $(
                if kind == <$job as Job>::SPEC.kind {
                    return match args::<$job>(envelope) {
                        Ok(job) => <$job as Handler>::on_dead(ctx, job, error).await,
                        Err(_) => Ok(()),
                    };
                }
            )*
            Ok(())
        }

        /// [`Handler::SETTLES_OWN_OUTBOX`] of `kind` (an unknown kind: no).
        pub fn settles_own_outbox(kind: &str) -> bool {
            $(
                if kind == <$job as Job>::SPEC.kind {
                    return <$job as Handler>::SETTLES_OWN_OUTBOX;
                }
            )*
            false
        }
    };
}

mingus_common::every_job!(registry);

#[cfg(test)]
mod tests {
    use mingus_common::jobs::catalog::{BenchNoop, ProcessStripeEvent, SPECS};

    use super::*;

    #[test]
    fn only_the_stripe_event_settles_its_own_outbox_row() {
        let own: Vec<&str> = SPECS
            .iter()
            .map(|s| s.kind)
            .filter(|kind| settles_own_outbox(kind))
            .collect();
        assert_eq!(own, [ProcessStripeEvent::SPEC.kind]);
        assert!(!settles_own_outbox(BenchNoop::SPEC.kind));
        assert!(!settles_own_outbox("no.such_kind"));
    }
}
