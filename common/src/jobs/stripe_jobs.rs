//! Stripe jobs that call the Stripe API (only when `STRIPE_API_KEY` is configured).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Backoff, Job, JobSpec};
use crate::queue::Queue;

/// Compares Stripe's subscriptions with ours (nightly, `billing` queue) and, with `fix`, stages a
/// synthetic processing of Stripe's state for each drift (`mingus_common::stripe_api::reconcile`).
/// Without `STRIPE_API_KEY` a run does nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StripeReconcile {
    #[serde(default = "fix_by_default")]
    pub fix: bool,
}

fn fix_by_default() -> bool {
    true
}

impl Default for StripeReconcile {
    fn default() -> Self {
        StripeReconcile { fix: true }
    }
}

impl Job for StripeReconcile {
    const SPEC: JobSpec = JobSpec {
        kind: "billing.stripe_reconcile",
        queue: Queue::Billing,
        // Thousands of subscriptions at 100 per page, each page one API call with a 20 s timeout.
        timeout: Duration::from_secs(1800),
        max_attempts: 3,
        backoff: Backoff::new(Duration::from_secs(60), Duration::from_secs(900)),
    };
}
