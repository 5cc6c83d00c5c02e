//! The job kinds this platform runs, each with its policy next to it, and [`every_job!`], the list of
//! them all. The other kinds live beside their capability (`billing_jobs`, `email_jobs`, …); the
//! worker's handler of each kind lives in `worker/src/handlers/`, in the file named after the kind.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Backoff, Job, JobSpec};
use crate::queue::Queue;

const SECOND: Duration = Duration::from_secs(1);

/// The no-op job of the throughput benchmark, also the platform's diagnostic job: it can sleep, fail a
/// number of times, fail permanently, or leave an idempotent mark in `bench_marks`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BenchNoop {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sleep_ms: u64,
    /// Fail attempts up to and including this number (`u32::MAX`: always fail).
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub fail_until_attempt: u32,
    /// Fail every attempt of the first `fail_generations` lives of the job (an operator's retry starts
    /// the next generation), e.g. 1: dies once, succeeds when retried from `/ops`.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub fail_generations: u32,
    /// Fail with a permanent error (no retries).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fail_permanently: bool,
    /// Insert this mark into `bench_marks` (once, however often the job runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark: Option<String>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

impl Job for BenchNoop {
    const SPEC: JobSpec = JobSpec {
        kind: "bench.noop",
        queue: Queue::Bench,
        timeout: Duration::from_secs(30),
        max_attempts: 3,
        backoff: Backoff::new(Duration::from_millis(200), Duration::from_secs(5)),
    };
}

/// Re-pushes outbox rows whose job is missing or stale (every minute).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxSweep {}

impl Job for OutboxSweep {
    const SPEC: JobSpec = JobSpec {
        kind: "maintenance.outbox_sweep",
        queue: Queue::Maintenance,
        timeout: Duration::from_secs(120),
        max_attempts: 3,
        backoff: Backoff::new(SECOND, Duration::from_secs(30)),
    };
}

/// Trims finished and dead job data from Redis and old rows from the ledger (daily).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {}

impl Job for Retention {
    const SPEC: JobSpec = JobSpec {
        kind: "maintenance.retention",
        queue: Queue::Maintenance,
        timeout: Duration::from_secs(1800),
        max_attempts: 3,
        backoff: Backoff::new(Duration::from_secs(30), Duration::from_secs(600)),
    };
}

/// Applies one stored Stripe event (`stripe_events.id`) to subscriptions, billing history and access.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessStripeEvent {
    pub event_id: String,
}

impl Job for ProcessStripeEvent {
    const SPEC: JobSpec = JobSpec {
        kind: "stripe.process_event",
        queue: Queue::StripeEvents,
        timeout: Duration::from_secs(30),
        // Out-of-order deliveries (an invoice before its subscription) wait for their dependency.
        max_attempts: 12,
        backoff: Backoff::new(SECOND, Duration::from_secs(600)),
    };
}

/// Opens the new usage period of users whose period rolled over (hourly, `usage` queue); see
/// [`crate::entitlements::reset`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageResetSweep {}

impl Job for UsageResetSweep {
    const SPEC: JobSpec = JobSpec {
        kind: "usage.reset_sweep",
        queue: Queue::Usage,
        timeout: Duration::from_secs(600),
        max_attempts: 3,
        backoff: Backoff::new(Duration::from_secs(5), Duration::from_secs(120)),
    };
}

/// Calls the macro `$then!` with every job type the workers run, as a comma-separated list of paths:
/// the one list of job kinds. [`SPECS`] is built from it here, and the worker's registry from it there
/// (`mingus_worker`'s `handlers`), so a job type without a handler does not compile, and a new job is
/// one entry here plus its `Handler` impl.
#[macro_export]
macro_rules! every_job {
    ($then:ident) => {
        $then! {
            $crate::jobs::catalog::BenchNoop,
            $crate::jobs::catalog::OutboxSweep,
            $crate::jobs::catalog::Retention,
            $crate::jobs::catalog::ProcessStripeEvent,
            $crate::jobs::billing_jobs::TrialExpirySweep,
            $crate::jobs::billing_jobs::RenewalSweep,
            $crate::jobs::stripe_jobs::StripeReconcile,
            $crate::jobs::email_jobs::SendEmail,
            $crate::jobs::email_jobs::ReminderSweep,
            $crate::jobs::analytics_jobs::AnalyticsRollup,
            $crate::jobs::analytics_jobs::AnalyticsRollupShard,
            $crate::jobs::revenue_jobs::RevenueRollup,
            $crate::jobs::analytics_jobs::PartitionMaintenance,
            $crate::jobs::catalog::UsageResetSweep,
            $crate::jobs::report_jobs::GenerateReport,
        }
    };
}

/// Every job kind the workers know, for validation at the edges (ops retry, cron table).
pub const SPECS: &[JobSpec] = {
    macro_rules! specs_of {
        ($($job:path),* $(,)?) => {
            &[$(<$job as Job>::SPEC),*]
        };
    }
    crate::every_job!(specs_of)
};

pub fn spec(kind: &str) -> Option<&'static JobSpec> {
    SPECS.iter().find(|s| s.kind == kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_listed_once() {
        let mut kinds: Vec<&str> = SPECS.iter().map(|s| s.kind).collect();
        let listed = kinds.len();
        kinds.sort_unstable();
        kinds.dedup();
        assert_eq!(kinds.len(), listed, "a kind listed twice in every_job!");
        assert_eq!(
            spec("stripe.process_event").map(|s| s.queue),
            Some(Queue::StripeEvents)
        );
        assert!(spec("no.such_kind").is_none());
    }
}
