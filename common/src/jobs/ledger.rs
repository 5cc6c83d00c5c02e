//! The job ledger: one `job_runs` row per execution, written in batches by a background task so the
//! job's own path only pays for a channel send. When the channel is full (the database is slow or down),
//! records are dropped and counted rather than slowing the workers: the ledger is for operators, the
//! business effects are already durable.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::QueueKeys;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Succeeded,
    Retrying,
    Dead,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Succeeded => "succeeded",
            RunStatus::Retrying => "retrying",
            RunStatus::Dead => "dead",
        }
    }
}

#[derive(Debug, Clone)]
pub struct RunRecord {
    pub keys: Arc<QueueKeys>,
    pub kind: String,
    pub job_id: Uuid,
    pub task_id: String,
    pub attempt: u32,
    pub max_attempts: u32,
    pub status: RunStatus,
    pub error: Option<String>,
    pub worker: Arc<str>,
    pub enqueued_at: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub args_summary: String,
}

/// The sending side, cheap to clone into every job.
#[derive(Clone)]
pub struct Ledger {
    sender: mpsc::Sender<RunRecord>,
    dropped: Arc<AtomicU64>,
}

const CHANNEL_CAPACITY: usize = 100_000;
const BATCH: usize = 2_000;
const FLUSH_EVERY: Duration = Duration::from_millis(200);

impl Ledger {
    /// Starts the writer; it stops (after a final flush) when every `Ledger` clone is dropped.
    pub fn start(
        pool: PgPool,
        redis: redis::aio::ConnectionManager,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (sender, receiver) = mpsc::channel(CHANNEL_CAPACITY);
        let dropped = Arc::new(AtomicU64::new(0));
        let handle = tokio::spawn(write_loop(pool, redis, receiver));
        (Ledger { sender, dropped }, handle)
    }

    pub fn record(&self, record: RunRecord) {
        if self.sender.try_send(record).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

async fn write_loop(
    pool: PgPool,
    redis: redis::aio::ConnectionManager,
    mut receiver: mpsc::Receiver<RunRecord>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let open = tokio::select! {
            received = receiver.recv_many(&mut batch, BATCH) => received > 0,
            () = tokio::time::sleep(FLUSH_EVERY) => true,
        };
        if !batch.is_empty() {
            // Give the channel a moment to fill a bigger batch under load.
            if batch.len() < BATCH && open {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let room = BATCH - batch.len();
                while batch.len() < BATCH
                    && let Ok(more) = receiver.try_recv()
                {
                    batch.push(more);
                    if batch.len() >= room + BATCH {
                        break;
                    }
                }
            }
            flush(&pool, &redis, &mut batch).await;
        }
        if !open {
            return;
        }
    }
}

async fn flush(pool: &PgPool, redis: &redis::aio::ConnectionManager, batch: &mut Vec<RunRecord>) {
    if let Err(err) = insert(pool, batch).await {
        tracing::warn!(error = %err, rows = batch.len(), "ledger batch not written");
    }
    if let Err(err) = index_finished(redis, batch).await {
        tracing::warn!(error = %err, "finished-job index not updated");
    }
    batch.clear();
}

async fn insert(pool: &PgPool, batch: &[RunRecord]) -> Result<(), sqlx::Error> {
    let mut queue = Vec::with_capacity(batch.len());
    let mut kind = Vec::with_capacity(batch.len());
    let mut job_id = Vec::with_capacity(batch.len());
    let mut task_id = Vec::with_capacity(batch.len());
    let mut attempt = Vec::with_capacity(batch.len());
    let mut max_attempts = Vec::with_capacity(batch.len());
    let mut status = Vec::with_capacity(batch.len());
    let mut error = Vec::with_capacity(batch.len());
    let mut worker = Vec::with_capacity(batch.len());
    let mut enqueued_at = Vec::with_capacity(batch.len());
    let mut started_at = Vec::with_capacity(batch.len());
    let mut finished_at = Vec::with_capacity(batch.len());
    let mut args = Vec::with_capacity(batch.len());
    for r in batch {
        queue.push(r.keys.queue.name());
        kind.push(r.kind.as_str());
        job_id.push(r.job_id);
        task_id.push(r.task_id.as_str());
        attempt.push(r.attempt as i32);
        max_attempts.push(r.max_attempts as i32);
        status.push(r.status.as_str());
        error.push(r.error.as_deref());
        worker.push(&*r.worker);
        enqueued_at.push(r.enqueued_at);
        started_at.push(r.started_at);
        finished_at.push(r.finished_at);
        args.push(r.args_summary.as_str());
    }
    sqlx::query(
        "INSERT INTO job_runs (queue, kind, job_id, task_id, attempt, max_attempts, status, error, worker,
                               enqueued_at, started_at, finished_at, duration_ms, args_summary)
         SELECT q, k, j, t, a, m, s, e, w, eq, st, fi, extract(epoch FROM fi - st) * 1000, ar
         FROM UNNEST($1::text[], $2::text[], $3::uuid[], $4::text[], $5::int[], $6::int[], $7::text[], $8::text[],
                     $9::text[], $10::timestamptz[], $11::timestamptz[], $12::timestamptz[], $13::text[])
              AS u(q, k, j, t, a, m, s, e, w, eq, st, fi, ar)",
    )
    .bind(queue)
    .bind(kind)
    .bind(job_id)
    .bind(task_id)
    .bind(attempt)
    .bind(max_attempts)
    .bind(status)
    .bind(error)
    .bind(worker)
    .bind(enqueued_at)
    .bind(started_at)
    .bind(finished_at)
    .bind(args)
    .execute(pool)
    .await?;
    Ok(())
}

/// Records when each task finished in the queue's `finished` index, which retention trims by age and count.
async fn index_finished(
    redis: &redis::aio::ConnectionManager,
    batch: &[RunRecord],
) -> redis::RedisResult<()> {
    let mut pipe = redis::pipe();
    for r in batch {
        pipe.zadd(
            r.keys.finished_index(),
            &r.task_id,
            r.finished_at.timestamp_millis(),
        )
        .ignore();
    }
    let mut conn = redis.clone();
    pipe.query_async::<()>(&mut conn).await
}
