//! Group commit for webhook ingest: concurrent deliveries are written by one multi-row statement and one
//! commit, and their jobs pushed by one Redis call, before any of them is answered.
//!
//! A delivery hands its row to the batcher and waits for the outcome; nothing is answered before its row
//! is committed, so durability is the same as one insert per request. A few flush tasks share the queue:
//! while one batch commits, the next one gathers whatever arrived meanwhile, so a lone delivery is written
//! at once (no timer) and a burst costs a handful of commits instead of one each. A failed batch is
//! retried row by row, so one bad row only fails its own delivery.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use mingus_common::jobs::catalog::ProcessStripeEvent;
use mingus_common::jobs::{Envelope, Job, outbox};
use sqlx::PgPool;
use sqlx::types::Json;
use tokio::sync::{Mutex, mpsc, oneshot};
use uuid::Uuid;

use mingus_common::jobs::Enqueuer;

/// Rows per statement; Stripe deliveries are small (a few KiB).
const MAX_BATCH: usize = 128;
/// Batches in flight at once (each holds one pool connection while it commits). Two keep one batch
/// gathering while the other commits; more only make concurrent inserts contend for the same index
/// pages and WAL (measured in session 6 on 64 connections: 1–2 flushers ~10,300 events/s, 3 ~8,600,
/// 8 ~7,400).
const FLUSHERS: usize = 2;
/// Deliveries waiting for a flusher before new ones are refused (back-pressure → 503).
const QUEUE: usize = 4_096;
/// How long we try to push a batch's jobs; past it the outbox sweep pushes them.
const PUSH_BUDGET: Duration = Duration::from_millis(1_000);

/// What we keep of one delivery.
#[derive(Debug, Clone)]
pub struct EventRow {
    pub id: String,
    pub kind: String,
    pub api_version: Option<String>,
    pub livemode: bool,
    pub created: Option<DateTime<Utc>>,
    pub object_id: Option<String>,
    pub object_type: Option<String>,
    /// The event as JSON text (stored as JSONB).
    pub payload: Option<String>,
    pub raw_body: Option<String>,
    pub status: &'static str,
    /// The processing job, for events to process (`received`).
    pub envelope: Option<Envelope>,
}

impl EventRow {
    /// The processing job of a `received` event: its id derives from the event id, so every delivery
    /// (and `mingus-admin stripe fetch-undelivered`) of one event maps to one job.
    pub fn with_job(mut self, namespace: &Uuid) -> anyhow::Result<Self> {
        if self.status == "received" {
            let job = ProcessStripeEvent {
                event_id: self.id.clone(),
            };
            let job_id = Uuid::new_v5(namespace, self.id.as_bytes());
            self.envelope = Some(outbox::prepare(&job, job_id)?);
        }
        Ok(self)
    }
}

/// The outcome of a stored delivery: whether it was new, and whether its job reached Redis.
#[derive(Debug, Clone, Copy)]
pub struct Stored {
    pub inserted: bool,
    pub pushed: bool,
}

type Reply = oneshot::Sender<Result<Stored, String>>;

struct Pending {
    row: EventRow,
    reply: Reply,
}

/// The batcher: started on first use (so building the state needs no runtime), stopped when the last
/// handle is dropped.
#[derive(Clone)]
pub struct IngestBatcher {
    sender: Arc<OnceLock<mpsc::Sender<Pending>>>,
    pool: PgPool,
    enqueuer: Enqueuer,
}

impl IngestBatcher {
    pub fn new(pool: PgPool, enqueuer: Enqueuer) -> Self {
        IngestBatcher {
            sender: Arc::new(OnceLock::new()),
            pool,
            enqueuer,
        }
    }

    fn sender(&self) -> &mpsc::Sender<Pending> {
        self.sender.get_or_init(|| {
            let (sender, receiver) = mpsc::channel(QUEUE);
            let receiver = Arc::new(Mutex::new(receiver));
            for _ in 0..FLUSHERS {
                let (receiver, pool, enqueuer) =
                    (receiver.clone(), self.pool.clone(), self.enqueuer.clone());
                tokio::spawn(flush_loop(receiver, pool, enqueuer));
            }
            sender
        })
    }

    /// Stores the delivery (insert-if-absent with its outbox row), then pushes its job; resolves once the
    /// row is committed and the push was tried. `Err` means nothing is known to be stored.
    pub async fn store(&self, row: EventRow) -> anyhow::Result<Stored> {
        let (reply, outcome) = oneshot::channel();
        self.sender()
            .try_send(Pending { row, reply })
            .map_err(|_| anyhow::anyhow!("too many deliveries waiting for the database"))?;
        outcome
            .await
            .map_err(|_| anyhow::anyhow!("the ingest batcher stopped"))?
            .map_err(|err| anyhow::anyhow!(err))
    }
}

async fn flush_loop(
    receiver: Arc<Mutex<mpsc::Receiver<Pending>>>,
    pool: PgPool,
    enqueuer: Enqueuer,
) {
    while let Some(batch) = mingus_common::batching::next_batch(&receiver, MAX_BATCH).await {
        flush(&pool, &enqueuer, batch).await;
    }
}

async fn flush(pool: &PgPool, enqueuer: &Enqueuer, batch: Vec<Pending>) {
    // One event delivered twice in one batch: only the first occurrence can be the insert.
    let mut seen = HashSet::with_capacity(batch.len());
    let first: Vec<bool> = batch
        .iter()
        .map(|p| seen.insert(p.row.id.clone()))
        .collect();
    let unique: Vec<&EventRow> = batch
        .iter()
        .zip(&first)
        .filter(|(_, first)| **first)
        .map(|(p, _)| &p.row)
        .collect();
    let inserted = match insert(pool, &unique).await {
        Ok(ids) => Ok(ids),
        // Only an error about the data can be one row's fault; an unreachable database fails everyone.
        Err(err) if unique.len() == 1 || !matches!(err, sqlx::Error::Database(_)) => {
            Err(format!("{err:#}"))
        }
        Err(err) => {
            tracing::warn!(rows = unique.len(), error = %err, "batch insert failed; retrying row by row");
            row_by_row(pool, &unique).await
        }
    };
    let inserted = match inserted {
        Ok(ids) => ids,
        Err(err) => {
            for pending in batch {
                let _ = pending.reply.send(Err(err.clone()));
            }
            return;
        }
    };
    let new_jobs: Vec<Envelope> = batch
        .iter()
        .zip(&first)
        .filter(|(p, first)| **first && inserted.contains(&p.row.id))
        .filter_map(|(p, _)| p.row.envelope.clone())
        .collect();
    let pushed = new_jobs.is_empty()
        || matches!(
            tokio::time::timeout(
                PUSH_BUDGET,
                outbox::push_after_commit(pool, enqueuer, &new_jobs)
            )
            .await,
            Ok(true)
        );
    for (pending, first) in batch.into_iter().zip(first) {
        let stored = Stored {
            inserted: first && inserted.contains(&pending.row.id),
            pushed,
        };
        let _ = pending.reply.send(Ok(stored));
    }
}

/// Rows one at a time: the ids that were inserted, or the first error (its row's delivery fails, and so
/// do the rest of this batch's, which Stripe retries).
async fn row_by_row(pool: &PgPool, rows: &[&EventRow]) -> Result<HashSet<String>, String> {
    let mut inserted = HashSet::new();
    for row in rows {
        inserted.extend(insert(pool, &[row]).await.map_err(|e| format!("{e:#}"))?);
    }
    Ok(inserted)
}

/// Inserts the rows that are absent and, for new processable ones, their outbox rows — one statement,
/// atomic without an explicit transaction. Returns the ids that were inserted.
async fn insert(pool: &PgPool, rows: &[&EventRow]) -> Result<HashSet<String>, sqlx::Error> {
    let column = |f: fn(&EventRow) -> Option<String>| rows.iter().map(|r| f(r)).collect::<Vec<_>>();
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let kinds: Vec<String> = rows.iter().map(|r| r.kind.clone()).collect();
    let statuses: Vec<String> = rows.iter().map(|r| r.status.to_owned()).collect();
    let livemodes: Vec<bool> = rows.iter().map(|r| r.livemode).collect();
    let created: Vec<Option<DateTime<Utc>>> = rows.iter().map(|r| r.created).collect();
    let job_ids: Vec<Option<Uuid>> = rows
        .iter()
        .map(|r| r.envelope.as_ref().map(|e| e.job_id))
        .collect();
    let envelopes: Vec<Option<Json<&Envelope>>> =
        rows.iter().map(|r| r.envelope.as_ref().map(Json)).collect();
    let enqueued_at: Vec<Option<DateTime<Utc>>> = rows
        .iter()
        .map(|r| r.envelope.as_ref().map(|e| e.enqueued_at))
        .collect();
    let spec = ProcessStripeEvent::SPEC;
    let sql = format!(
        "WITH input AS (
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bool[], $5::timestamptz[],
                                  $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                                  $11::uuid[], $12::jsonb[], $13::timestamptz[])
               AS t(id, type, api_version, livemode, created, object_id, object_type, payload, raw_body,
                    status, job_id, envelope, enqueued_at)
         ), event AS (
             INSERT INTO stripe_events (id, type, api_version, livemode, created, object_id, object_type, payload, raw_body, status, job_id)
             SELECT id, type, api_version, livemode, created, object_id, object_type, payload::jsonb, raw_body, status, job_id
             FROM input
             ON CONFLICT (id) DO NOTHING
             RETURNING id, job_id
         ), staged AS (
             INSERT INTO job_outbox {}
             SELECT e.job_id, $14, $15, i.envelope, $16, i.enqueued_at
             FROM event e JOIN input i ON i.id = e.id
             WHERE e.job_id IS NOT NULL
         )
         SELECT id FROM event",
        outbox::OUTBOX_COLUMNS
    );
    let inserted: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(ids)
        .bind(kinds)
        .bind(column(|r| r.api_version.clone()))
        .bind(livemodes)
        .bind(created)
        .bind(column(|r| r.object_id.clone()))
        .bind(column(|r| r.object_type.clone()))
        .bind(column(|r| r.payload.clone()))
        .bind(column(|r| r.raw_body.clone()))
        .bind(statuses)
        .bind(job_ids)
        .bind(envelopes)
        .bind(enqueued_at)
        .bind(spec.queue.name())
        .bind(spec.kind)
        .bind(spec.max_attempts as i32)
        .fetch_all(pool)
        .await?;
    Ok(inserted.into_iter().collect())
}
