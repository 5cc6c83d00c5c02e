//! `api_keys.last_used_at`, written off the request path: a request only notes the time in memory; a
//! background task writes every noted key in one statement every [`FLUSH_EVERY`]. So a busy key costs one
//! UPDATE per interval and instance, not one per call, and a slow database never slows a request down.
//! A process that stops loses at most the last interval's times (the column is informational).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

pub const FLUSH_EVERY: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct LastUsed {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    pending: Mutex<HashMap<Uuid, DateTime<Utc>>>,
    /// The flusher starts with the first use, inside the server's runtime.
    started: std::sync::Once,
}

impl LastUsed {
    pub fn new(pool: PgPool) -> Self {
        Self {
            inner: Arc::new(Inner {
                pool,
                pending: Mutex::new(HashMap::new()),
                started: std::sync::Once::new(),
            }),
        }
    }

    /// Notes that `key_id` was used at `at`. Never waits on the database.
    pub fn touch(&self, key_id: Uuid, at: DateTime<Utc>) {
        self.inner.note([(key_id, at)]);
        self.inner.started.call_once(|| {
            let weak = Arc::downgrade(&self.inner);
            tokio::spawn(flush_loop(weak));
        });
    }
}

impl Inner {
    fn note(&self, entries: impl IntoIterator<Item = (Uuid, DateTime<Utc>)>) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        for (id, at) in entries {
            let slot = pending.entry(id).or_insert(at);
            *slot = (*slot).max(at);
        }
    }

    async fn flush(&self) {
        let batch: Vec<(Uuid, DateTime<Utc>)> = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending.drain().collect()
        };
        if batch.is_empty() {
            return;
        }
        let (ids, times): (Vec<Uuid>, Vec<DateTime<Utc>>) = batch.iter().copied().unzip();
        let written = sqlx::query(
            "UPDATE api_keys AS k SET last_used_at = GREATEST(k.last_used_at, u.at)
             FROM unnest($1::uuid[], $2::timestamptz[]) AS u(id, at) WHERE k.id = u.id",
        )
        .bind(&ids)
        .bind(&times)
        .execute(&self.pool)
        .await;
        if let Err(err) = written {
            tracing::warn!(error = %err, keys = batch.len(), "could not record API key use; retrying");
            self.note(batch);
        }
    }
}

/// Runs while the API state lives (the last handle dropped ends it).
async fn flush_loop(inner: Weak<Inner>) {
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        inner.flush().await;
    }
}
