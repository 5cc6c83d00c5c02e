//! The one enqueue API (used by the API, the scheduler and jobs that spawn jobs).
//!
//! Pushes go straight to apalis-redis' `active` list (or to our `delayed` set when they should run later or
//! the queue is paused), with our own script: apalis' push always goes through its `scheduled` set, whose
//! promotion script fails above ~8,000 due jobs. A push whose task id Redis already has is dropped, which
//! makes re-pushes (outbox sweeps, crash recovery) harmless.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use redis::Script;
use redis::aio::ConnectionManager;
use uuid::Uuid;

use super::{Envelope, Job, QueueKeys};
use crate::queue::Queue;

/// Largest number of jobs one script call pushes or promotes; far below Lua's unpack limit (~8,000).
pub const CHUNK: usize = 500;

static PUSH: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/push.lua")));
static PROMOTE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/promote.lua")));
static HOLD_ACTIVE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/hold_active.lua")));

#[derive(Debug, Clone, Default)]
pub struct EnqueueOptions {
    /// The job id; a new UUIDv7 when absent.
    pub job_id: Option<Uuid>,
    /// Run no earlier than this.
    pub run_at: Option<DateTime<Utc>>,
    /// Drop the push when a job with this key was pushed within the queue's idempotency window.
    pub idempotency_key: Option<String>,
}

#[derive(Clone)]
pub struct Enqueuer {
    redis: ConnectionManager,
    prefix: String,
}

/// Seconds an idempotency key is remembered.
const IDEMPOTENCY_TTL_SECS: u64 = 24 * 3600;

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

impl Enqueuer {
    pub fn new(redis: ConnectionManager, prefix: impl Into<String>) -> Self {
        Self {
            redis,
            prefix: prefix.into(),
        }
    }

    /// The Redis connection (a cheap handle) for reads that go with this enqueuer's keys.
    pub fn connection(&self) -> ConnectionManager {
        self.redis.clone()
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn keys(&self, queue: Queue) -> QueueKeys {
        QueueKeys::new(&self.prefix, queue)
    }

    /// Enqueues one job and returns its id.
    pub async fn enqueue<J: Job>(&self, job: &J, options: EnqueueOptions) -> anyhow::Result<Uuid> {
        let job_id = options.job_id.unwrap_or_else(Uuid::now_v7);
        let envelope = Envelope::new(job, job_id)?;
        self.push(
            &[envelope],
            options.run_at,
            options.idempotency_key.as_deref(),
        )
        .await?;
        Ok(job_id)
    }

    /// Enqueues many jobs of one kind (chunked) and returns their ids.
    pub async fn enqueue_many<J: Job>(&self, jobs: &[J]) -> anyhow::Result<Vec<Uuid>> {
        let envelopes = jobs
            .iter()
            .map(|job| Envelope::new(job, Uuid::now_v7()))
            .collect::<Result<Vec<_>, _>>()?;
        let ids = envelopes.iter().map(|e| e.job_id).collect();
        self.push(&envelopes, None, None).await?;
        Ok(ids)
    }

    /// Pushes prepared envelopes (all of one queue), `CHUNK` at a time. Returns how many were new.
    pub async fn push(
        &self,
        envelopes: &[Envelope],
        run_at: Option<DateTime<Utc>>,
        idempotency_key: Option<&str>,
    ) -> anyhow::Result<usize> {
        let Some(first) = envelopes.first() else {
            return Ok(0);
        };
        anyhow::ensure!(
            envelopes.iter().all(|e| e.queue == first.queue),
            "one queue per push"
        );
        let keys = self.keys(first.queue);
        let run_at_ms = run_at.map(|t| t.timestamp_millis()).unwrap_or(0);
        let mut pushed = 0;
        for chunk in envelopes.chunks(CHUNK) {
            let mut invocation = PUSH.prepare_invoke();
            invocation
                .key(keys.data())
                .key(keys.active())
                .key(keys.signal())
                .key(keys.meta_prefix())
                .key(keys.delayed())
                .key(keys.idempotency_prefix())
                .key(keys.paused())
                .arg(now_ms())
                .arg(IDEMPOTENCY_TTL_SECS)
                .arg(idempotency_key.unwrap_or(""));
            for envelope in chunk {
                invocation
                    .arg(envelope.task_id())
                    .arg(serde_json::to_vec(envelope)?)
                    .arg(envelope.attempt)
                    .arg(envelope.max_attempts)
                    .arg(run_at_ms);
            }
            let mut conn = self.redis.clone();
            let added: usize = invocation.invoke_async(&mut conn).await?;
            pushed += added;
        }
        Ok(pushed)
    }

    /// Moves due delayed jobs to the active list, at most `CHUNK` per call; returns how many moved.
    /// Does nothing while the queue is paused.
    pub async fn promote_due(&self, queue: Queue) -> anyhow::Result<usize> {
        let keys = self.keys(queue);
        let mut conn = self.redis.clone();
        let moved: usize = PROMOTE
            .key(keys.delayed())
            .key(keys.active())
            .key(keys.signal())
            .key(keys.paused())
            .arg(now_ms())
            .arg(CHUNK)
            .invoke_async(&mut conn)
            .await?;
        Ok(moved)
    }

    /// Pauses a queue: workers finish what they hold, waiting jobs move to the delayed set (due now) and
    /// stay there, and new pushes go there too, until [`Enqueuer::resume`].
    pub async fn pause(&self, queue: Queue) -> anyhow::Result<()> {
        let keys = self.keys(queue);
        let mut conn = self.redis.clone();
        redis::cmd("SET")
            .arg(keys.paused())
            .arg(now_ms())
            .query_async::<()>(&mut conn)
            .await?;
        // Move the waiting backlog aside, a chunk per call, bounded.
        for _ in 0..100_000 {
            let moved: usize = HOLD_ACTIVE
                .key(keys.active())
                .key(keys.delayed())
                .arg(now_ms())
                .arg(CHUNK)
                .invoke_async(&mut conn)
                .await?;
            if moved < CHUNK {
                break;
            }
        }
        Ok(())
    }

    pub async fn resume(&self, queue: Queue) -> anyhow::Result<()> {
        let keys = self.keys(queue);
        let mut conn = self.redis.clone();
        redis::cmd("DEL")
            .arg(keys.paused())
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    pub async fn is_paused(&self, queue: Queue) -> anyhow::Result<bool> {
        let mut conn = self.redis.clone();
        Ok(redis::cmd("EXISTS")
            .arg(self.keys(queue).paused())
            .query_async::<bool>(&mut conn)
            .await?)
    }
}
