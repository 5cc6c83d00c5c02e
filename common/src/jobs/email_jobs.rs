//! The e-mail jobs (`email` queue): sending one delivery, and the minute sweep that turns due reminders
//! into deliveries and makes sure every due delivery has a job.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Backoff, Job, JobSpec};
use crate::queue::Queue;

/// Sends one `email_deliveries` row (claim with a lease, send over SMTP, mark sent). The job id of the
/// first job of a delivery is the delivery id, so "this delivery has a job" is one primary-key lookup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendEmail {
    pub delivery_id: Uuid,
}

impl Job for SendEmail {
    /// Transient SMTP failures (4xx, connection errors, timeouts) retry after 15 s, 30 s, 1, 2, 4, 8 min,
    /// then every 10 min, each delay jittered to 50–100 %: the 8 retries span 18–36 minutes, so an SMTP
    /// outage of up to ~18 minutes always ends in delivery and one longer than ~36 minutes always ends
    /// in a dead letter (visible and retryable in `/ops`). Permanent rejections (5xx) die at once.
    const SPEC: JobSpec = JobSpec {
        kind: "email.send",
        queue: Queue::Email,
        timeout: Duration::from_secs(120),
        max_attempts: 9,
        backoff: Backoff::new(Duration::from_secs(15), Duration::from_secs(600)),
    };

    fn summary(&self) -> String {
        format!("delivery {}", self.delivery_id)
    }
}

/// Every minute: due `reminder_schedules` become deliveries (recurring ones advance in the user's time
/// zone); due `queued` deliveries without a job get one; e-mail jobs staged by callers that did not
/// push them are pushed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReminderSweep {}

impl Job for ReminderSweep {
    const SPEC: JobSpec = JobSpec {
        kind: "email.reminder_sweep",
        queue: Queue::Email,
        timeout: Duration::from_secs(120),
        max_attempts: 3,
        backoff: Backoff::new(Duration::from_secs(5), Duration::from_secs(30)),
    };
}
