//! The report job (`reports` queue): generate one `reports` row (see `worker/src/handlers/reports.rs`).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Backoff, Job, JobSpec};
use crate::queue::Queue;

/// Computes one report, stores it and marks it `ready` (or `failed`). Staged through the outbox by
/// `POST /v1/reports` with the report id as its job id, so "this report has a job" is one primary-key
/// look-up and the outbox sweep re-pushes a job Redis lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateReport {
    pub report_id: Uuid,
}

/// How long one computation may run; the job's timeout leaves room after it to record the outcome, so
/// a slow report ends `failed` (or retried) instead of being cut off while `running`.
pub const COMPUTE_TIMEOUT: Duration = Duration::from_secs(240);

impl Job for GenerateReport {
    /// A year of one user's data is read in well under a second; the timeout is for a database under
    /// load. Transient database errors retry after 5, 10, 20, 40 s (jittered to 50–100 %), then the
    /// report is `failed` ("gave up after 5 attempts") and its usage unit given back.
    const SPEC: JobSpec = JobSpec {
        kind: "report.generate",
        queue: Queue::Reports,
        timeout: Duration::from_secs(300),
        max_attempts: 5,
        backoff: Backoff::new(Duration::from_secs(5), Duration::from_secs(120)),
    };

    fn summary(&self) -> String {
        format!("report {}", self.report_id)
    }
}
