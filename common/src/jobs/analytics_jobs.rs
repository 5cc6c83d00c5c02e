//! The analytics rollup jobs (`analytics` queue) and partition maintenance (`maintenance` queue).
//!
//! The nightly schedule enqueues one [`AnalyticsRollup`] for its dates; that job fans out one
//! [`AnalyticsRollupShard`] per (date, shard) through the outbox, with job ids derived from its own id,
//! so a retried fan-out never stages a shard twice. Backfills stage the shard jobs directly.

use std::time::Duration;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Backoff, Job, JobSpec};
use crate::queue::Queue;

/// Fans out the rollup of `dates` into shard jobs (`shards`, or `MINGUS_ANALYTICS_SHARDS`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalyticsRollup {
    pub dates: Vec<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shards: Option<u32>,
}

impl Job for AnalyticsRollup {
    const SPEC: JobSpec = JobSpec {
        kind: "analytics.rollup",
        queue: Queue::Analytics,
        timeout: Duration::from_secs(60),
        max_attempts: 5,
        backoff: Backoff::new(Duration::from_secs(5), Duration::from_secs(300)),
    };
}

/// Computes `user_analytics` of `date` for shard `shard` of `shards` (one set-based statement).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalyticsRollupShard {
    pub date: NaiveDate,
    pub shard: u32,
    pub shards: u32,
}

impl Job for AnalyticsRollupShard {
    /// A shard of a million-user day takes tens of seconds; the timeout leaves room for a slow night.
    const SPEC: JobSpec = JobSpec {
        kind: "analytics.rollup_shard",
        queue: Queue::Analytics,
        timeout: Duration::from_secs(1800),
        max_attempts: 5,
        backoff: Backoff::new(Duration::from_secs(30), Duration::from_secs(900)),
    };

    fn summary(&self) -> String {
        format!("{} shard {}/{}", self.date, self.shard + 1, self.shards)
    }
}

impl AnalyticsRollupShard {
    /// The job id of this shard when staged by the fan-out job `parent` (stable across its retries).
    pub fn job_id_under(&self, parent: Uuid) -> Uuid {
        let name = format!("{parent}:{}:{}/{}", self.date, self.shard, self.shards);
        Uuid::new_v5(&parent, name.as_bytes())
    }
}

/// Premakes, rescues and retires the monthly partitions of the tables in `partitioned_tables`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionMaintenance {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

impl Job for PartitionMaintenance {
    const SPEC: JobSpec = JobSpec {
        kind: "maintenance.partitions",
        queue: Queue::Maintenance,
        timeout: Duration::from_secs(900),
        // Steps that could not get their lock in time are retried a few minutes later.
        max_attempts: 5,
        backoff: Backoff::new(Duration::from_secs(60), Duration::from_secs(900)),
    };
}
