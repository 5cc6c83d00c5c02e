//! Group reads of usage counters: the metered feature checks that arrive together are answered by one
//! query. A check sends its key and waits; a few flush tasks take whatever is waiting (up to
//! [`MAX_BATCH`]) and read it all in one statement, so a lone check is read at once (no timer) and a
//! burst costs a handful of queries instead of one each. Every read still starts after its request
//! arrived and reads the committed counters, so nothing is served stale; a batch that fails (or a
//! batcher that stopped) falls back to reading alone.

use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::{Mutex, mpsc, oneshot};
use uuid::Uuid;

use super::store::{self, Period};

/// Keys per statement.
const MAX_BATCH: usize = 256;
/// Statements in flight at once (each holds one pool connection).
const FLUSHERS: usize = 4;
/// Reads waiting for a flusher before new ones read alone.
const QUEUE: usize = 4_096;

struct Pending {
    user_id: Uuid,
    metric: String,
    period_start: DateTime<Utc>,
    reply: oneshot::Sender<Option<i64>>,
}

/// The batcher, started on first use (building it needs no runtime).
#[derive(Clone)]
pub(super) struct UsageReads {
    pool: PgPool,
    sender: Arc<OnceLock<mpsc::Sender<Pending>>>,
}

impl UsageReads {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            sender: Arc::new(OnceLock::new()),
        }
    }

    fn sender(&self) -> &mpsc::Sender<Pending> {
        self.sender.get_or_init(|| {
            let (sender, receiver) = mpsc::channel(QUEUE);
            let receiver = Arc::new(Mutex::new(receiver));
            for _ in 0..FLUSHERS {
                tokio::spawn(flush_loop(receiver.clone(), self.pool.clone()));
            }
            sender
        })
    }

    /// Units of `metric` used by the user in `period`.
    pub async fn read(
        &self,
        user_id: Uuid,
        metric: &str,
        period: Period,
    ) -> Result<i64, sqlx::Error> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            user_id,
            metric: metric.to_owned(),
            period_start: period.start,
            reply,
        };
        if self.sender().try_send(pending).is_ok()
            && let Ok(Some(used)) = answer.await
        {
            return Ok(used);
        }
        store::usage(&self.pool, user_id, metric, period).await
    }
}

async fn flush_loop(receiver: Arc<Mutex<mpsc::Receiver<Pending>>>, pool: PgPool) {
    while let Some(batch) = crate::batching::next_batch(&receiver, MAX_BATCH).await {
        flush(&pool, batch).await;
    }
}

/// Reads the batch in one statement and answers each; on failure each answer is `None` (its caller
/// reads alone and reports its own error).
async fn flush(pool: &PgPool, batch: Vec<Pending>) {
    let users: Vec<Uuid> = batch.iter().map(|p| p.user_id).collect();
    let metrics: Vec<&str> = batch.iter().map(|p| p.metric.as_str()).collect();
    let starts: Vec<DateTime<Utc>> = batch.iter().map(|p| p.period_start).collect();
    let rows: Result<Vec<(i64, i64)>, sqlx::Error> = sqlx::query_as(
        "SELECT i.n, coalesce(c.used, 0)
         FROM unnest($1::uuid[], $2::text[], $3::timestamptz[]) WITH ORDINALITY AS i(user_id, metric, period_start, n)
         LEFT JOIN usage_counters c
           ON c.user_id = i.user_id AND c.metric = i.metric AND c.period_start = i.period_start",
    )
    .bind(&users)
    .bind(&metrics)
    .bind(&starts)
    .fetch_all(pool)
    .await;
    let mut used = vec![None; batch.len()];
    match rows {
        Ok(rows) => {
            for (n, count) in rows {
                if let Some(slot) = usize::try_from(n - 1).ok().and_then(|i| used.get_mut(i)) {
                    *slot = Some(count);
                }
            }
        }
        Err(err) => tracing::warn!(keys = batch.len(), error = %err, "grouped usage read failed"),
    }
    for (pending, used) in batch.into_iter().zip(used) {
        let _ = pending.reply.send(used);
    }
}
