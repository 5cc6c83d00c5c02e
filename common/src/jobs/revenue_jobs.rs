//! The nightly revenue facts (`analytics` queue, after the engagement rollup); see
//! [`crate::revenue`].

use std::time::Duration;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::{Backoff, Job, JobSpec};
use crate::queue::Queue;

/// Recomputes the revenue facts of the days `from..=to` (UTC). Idempotent: a retry, a second run or an
/// overlapping backfill writes the same rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevenueRollup {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl Job for RevenueRollup {
    /// A year of 100,000 subscriptions takes seconds; the timeout leaves room for a slow night.
    const SPEC: JobSpec = JobSpec {
        kind: "analytics.revenue_rollup",
        queue: Queue::Analytics,
        timeout: Duration::from_secs(900),
        max_attempts: 5,
        backoff: Backoff::new(Duration::from_secs(30), Duration::from_secs(900)),
    };

    fn summary(&self) -> String {
        format!("{}..={}", self.from, self.to)
    }
}
