//! Typed jobs, their envelope on the wire, and the policy (queue, timeout, attempts, backoff) next to each.
//!
//! Every job travels as an [`Envelope`] (JSON) in apalis-redis' key layout. Our code, not apalis, owns
//! retries: a handler's failure is turned into a delayed re-push of the same job with `attempt + 1`
//! (exponential backoff with jitter) or into a dead letter once `max_attempts` is used up, and apalis only
//! ever sees success. That sidesteps apalis-redis' hard-coded 25 retries (NOTES-apalis defect 3).

pub mod analytics_jobs;
pub mod billing_jobs;
pub mod catalog;
pub mod email_jobs;
pub mod enqueue;
pub mod keys;
pub mod ledger;
pub mod outbox;
pub mod report_jobs;
pub mod revenue_jobs;
pub mod stripe_jobs;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::queue::Queue;

pub use enqueue::{EnqueueOptions, Enqueuer};
pub use keys::QueueKeys;

/// Exponential backoff with equal jitter: attempt n waits a random time in [base·2^(n-1) / 2, base·2^(n-1)],
/// capped at `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    pub const fn new(base: Duration, max: Duration) -> Self {
        Self { base, max }
    }

    /// The delay before attempt `next_attempt` (2 is the first retry). `unit` in [0, 1) supplies the jitter.
    pub fn delay(&self, next_attempt: u32, unit: f64) -> Duration {
        let exponent = next_attempt.saturating_sub(2).min(30);
        let ceiling = self.base.saturating_mul(1u32 << exponent).min(self.max);
        let unit = unit.clamp(0.0, 1.0);
        ceiling.mul_f64(0.5 + 0.5 * unit)
    }
}

/// Queue, timeout and retry policy of a job kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobSpec {
    pub kind: &'static str,
    pub queue: Queue,
    pub timeout: Duration,
    pub max_attempts: u32,
    pub backoff: Backoff,
}

/// A typed job: its arguments are the struct, its policy is [`Job::SPEC`].
pub trait Job: Serialize + DeserializeOwned + Send + Sync {
    const SPEC: JobSpec;

    /// A short description of the arguments for the ledger and dashboard. Never include secrets.
    fn summary(&self) -> String {
        let text = serde_json::to_string(self).unwrap_or_default();
        crate::text::clip_marked(&text, 200)
    }
}

/// What is stored in Redis for each attempt of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub job_id: Uuid,
    pub kind: String,
    pub queue: Queue,
    pub attempt: u32,
    pub max_attempts: u32,
    /// Bumped when an operator retries a dead job, so its attempts get fresh task ids.
    #[serde(default)]
    pub generation: u32,
    pub enqueued_at: DateTime<Utc>,
    /// True when a `job_outbox` row backs this job (it is marked completed when the job ends).
    #[serde(default)]
    pub outbox: bool,
    pub summary: String,
    pub args: serde_json::Value,
    /// The HTTP request this job descends from (its `X-Request-Id`), for following a webhook or an API
    /// call to its effects in the logs; jobs a job enqueues inherit it. See [`REQUEST_ID`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

tokio::task_local! {
    /// The request id of the work running in this task: the API sets it around each request, the
    /// worker around each job that carries one. [`Envelope::new`] copies it into the envelope.
    pub static REQUEST_ID: String;
}

/// The id an envelope may carry from a request: at most 64 visible ASCII characters (a client may set
/// `X-Request-Id` itself); anything else is not copied.
pub fn carried_request_id(id: &str) -> Option<String> {
    let fits = !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_graphic());
    fits.then(|| id.to_owned())
}

impl Envelope {
    pub fn new<J: Job>(job: &J, job_id: Uuid) -> Result<Self, serde_json::Error> {
        Ok(Envelope {
            job_id,
            kind: J::SPEC.kind.to_owned(),
            queue: J::SPEC.queue,
            attempt: 1,
            max_attempts: J::SPEC.max_attempts,
            generation: 0,
            enqueued_at: Utc::now(),
            outbox: false,
            summary: job.summary(),
            args: serde_json::to_value(job)?,
            request_id: REQUEST_ID
                .try_with(|id| carried_request_id(id))
                .ok()
                .flatten(),
        })
    }

    /// The apalis task id of this attempt: a ULID derived from the job id, the attempt and the generation.
    /// Deterministic, so pushing the same attempt twice (a crash between push and ack, an outbox re-push)
    /// is dropped by Redis instead of running twice.
    pub fn task_id(&self) -> String {
        let salt = (u128::from(self.generation) << 96)
            | (u128::from(self.attempt.saturating_sub(1)) << 64);
        ulid::Ulid(self.job_id.as_u128() ^ salt).to_string()
    }

    /// The next attempt of this job.
    pub fn next_attempt(&self) -> Self {
        Envelope {
            attempt: self.attempt + 1,
            ..self.clone()
        }
    }
}

/// Queue names as they appear in Redis: `<prefix>:<queue>`.
pub fn redis_queue_name(prefix: &str, queue: Queue) -> String {
    format!("{prefix}:{}", queue.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_envelope_made_inside_a_request_carries_its_id_and_only_a_fit_one() {
        let job = catalog::BenchNoop::default();
        let outside = Envelope::new(&job, Uuid::new_v4()).unwrap();
        assert_eq!(outside.request_id, None);
        let inside = REQUEST_ID
            .scope("req-1".into(), async {
                Envelope::new(&job, Uuid::new_v4())
            })
            .await
            .unwrap();
        assert_eq!(inside.request_id.as_deref(), Some("req-1"));
        let wire = serde_json::to_value(&outside).unwrap();
        assert!(
            wire.get("request_id").is_none(),
            "absent, not null, on the wire"
        );
        for unfit in ["", "has space", "ünïcode", &"x".repeat(65)] {
            let made = REQUEST_ID
                .scope(unfit.to_owned(), async {
                    Envelope::new(&job, Uuid::new_v4())
                })
                .await
                .unwrap();
            assert_eq!(made.request_id, None, "{unfit:?}");
        }
    }

    #[test]
    fn backoff_grows_exponentially_with_jitter_and_a_cap() {
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        assert_eq!(backoff.delay(2, 1.0), Duration::from_secs(1));
        assert_eq!(backoff.delay(3, 1.0), Duration::from_secs(2));
        assert_eq!(backoff.delay(5, 1.0), Duration::from_secs(8));
        assert_eq!(backoff.delay(5, 0.0), Duration::from_secs(4));
        assert_eq!(backoff.delay(30, 1.0), Duration::from_secs(60));
        assert_eq!(backoff.delay(200, 0.0), Duration::from_secs(30));
    }

    #[test]
    fn task_ids_are_deterministic_and_distinct_per_attempt_and_generation() {
        let job = catalog::BenchNoop::default();
        let envelope = Envelope::new(&job, Uuid::new_v4()).unwrap();
        let again = Envelope {
            enqueued_at: Utc::now(),
            ..envelope.clone()
        };
        assert_eq!(envelope.task_id(), again.task_id());
        let second = envelope.next_attempt();
        assert_ne!(envelope.task_id(), second.task_id());
        let revived = Envelope {
            generation: 1,
            ..envelope.clone()
        };
        assert_ne!(envelope.task_id(), revived.task_id());
        assert_eq!(envelope.task_id().len(), 26);
    }
}
