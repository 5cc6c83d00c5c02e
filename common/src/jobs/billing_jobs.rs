//! The billing lifecycle sweeps (every 5 minutes, `billing` queue). Both take their clock from the
//! worker (`now`) and are idempotent: running one twice changes nothing the second time.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Backoff, Job, JobSpec};
use crate::queue::Queue;

/// Trials: reminders three days before `trial_end`; trials without a Stripe subscription end at
/// `trial_end` (`cancelled`, access recomputed); expired promotion and admin grants end too (access
/// recomputed: the tier's grant takes the feature back).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrialExpirySweep {}

impl Job for TrialExpirySweep {
    const SPEC: JobSpec = JobSpec {
        kind: "billing.trial_expiry_sweep",
        queue: Queue::Billing,
        timeout: Duration::from_secs(240),
        max_attempts: 3,
        backoff: Backoff::new(Duration::from_secs(5), Duration::from_secs(60)),
    };
}

/// Renewals: annual reminders seven days ahead; `cancel_at_period_end` subscriptions end with their
/// period; unpaid periods go `past_due` with a grace period, local ones end when it is over.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewalSweep {}

impl Job for RenewalSweep {
    const SPEC: JobSpec = JobSpec {
        kind: "billing.renewal_sweep",
        queue: Queue::Billing,
        timeout: Duration::from_secs(240),
        max_attempts: 3,
        backoff: Backoff::new(Duration::from_secs(5), Duration::from_secs(60)),
    };
}
