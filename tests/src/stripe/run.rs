//! Processing stored events as the worker does (with an explicit clock), draining what had to wait,
//! and a seeded shuffle for delivery orders.

use chrono::{DateTime, Utc};
use mingus_common::config::stripe::StripeConfig;
use mingus_worker::context::JobError;
use mingus_worker::stripe::{Attempt, Outcome, process_event_at};
use serde_json::Value;
use sqlx::PgPool;

use super::store;

/// The first of twelve attempts (tests that are about retries pass their own).
pub fn first_attempt() -> Attempt {
    Attempt {
        number: 1,
        max_attempts: 12,
    }
}

/// Processes one stored event as the worker would, with the clock at `now`.
pub async fn process(
    pool: &PgPool,
    stripe: &StripeConfig,
    event_id: &str,
    now: DateTime<Utc>,
) -> Result<Outcome, JobError> {
    process_event_at(pool, stripe, event_id, first_attempt(), now).await
}

/// Stores (like ingest) and processes an event.
pub async fn deliver(
    pool: &PgPool,
    stripe: &StripeConfig,
    event: &Value,
    now: DateTime<Utc>,
) -> Result<Outcome, JobError> {
    store(pool, event).await;
    process(pool, stripe, event["id"].as_str().expect("event id"), now).await
}

/// Runs every event still `received`, in the order `arrange` gives them, until none is left (at most
/// `max_rounds` rounds). Returns the ids still pending (empty when drained).
pub async fn drain(
    pool: &PgPool,
    stripe: &StripeConfig,
    now: DateTime<Utc>,
    max_rounds: usize,
    mut arrange: impl FnMut(&mut Vec<String>),
) -> Vec<String> {
    let mut pending = Vec::new();
    for _ in 0..max_rounds {
        pending = sqlx::query_scalar(
            "SELECT id FROM stripe_events WHERE status = 'received' ORDER BY id",
        )
        .fetch_all(pool)
        .await
        .expect("pending events");
        if pending.is_empty() {
            break;
        }
        arrange(&mut pending);
        for id in &pending {
            let _ = process(pool, stripe, id, now).await;
        }
    }
    pending
}

/// `stripe_events.status` of an event.
pub async fn status_of(pool: &PgPool, event_id: &str) -> String {
    sqlx::query_scalar("SELECT status FROM stripe_events WHERE id = $1")
        .bind(event_id)
        .fetch_one(pool)
        .await
        .expect("stored event")
}

/// A small seeded generator (SplitMix64) for reproducible shuffles.
pub struct SeededRng(u64);

impl SeededRng {
    pub fn new(seed: u64) -> Self {
        SeededRng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..bound`.
    pub fn below(&mut self, bound: usize) -> usize {
        (self.next_u64() % bound as u64) as usize
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}
