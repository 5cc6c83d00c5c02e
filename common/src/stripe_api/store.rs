//! Writing events into `stripe_events` the way the webhook ingest does, and replaying stored ones.

use chrono::DateTime;
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::config::stripe::StripeMode;
use crate::jobs::catalog::ProcessStripeEvent;
use crate::jobs::{Enqueuer, Envelope, outbox};
use crate::text::clip;

/// Namespace of the job ids derived from Stripe event ids: the webhook ingest uses the same one, so an
/// event fetched here and delivered later maps to the same processing job.
pub const EVENT_JOB_NAMESPACE: Uuid = Uuid::from_u128(0x6d69_6e67_7573_2d73_7472_6970_652d_6576);

/// Every `stripe_events.status`.
pub const STATUSES: [&str; 6] = [
    "received",
    "processed",
    "ignored",
    "failed",
    "unparseable",
    "quarantined",
];
/// Statuses a replay leaves alone unless forced: processing would refuse them again (no payload, or an
/// event of the other mode, which must not be applied).
pub const PROTECTED: [&str; 2] = ["unparseable", "quarantined"];
/// Upper bound of one replay.
pub const MAX_REPLAY: i64 = 10_000;
const CHUNK: usize = 500;

/// What [`store_event`] did.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// False when an event with this id was already stored (nothing changed).
    pub inserted: bool,
    /// `received`, or `quarantined` when its `livemode` is not the configured mode.
    pub status: &'static str,
    /// The staged processing job, to push after commit.
    pub envelope: Option<Envelope>,
}

/// JSONB cannot hold `\u0000` in strings: replace it so a hostile-but-signed payload still stores.
pub fn strip_nul(value: Value) -> Value {
    match value {
        Value::String(s) if s.contains('\0') => Value::String(s.replace('\0', "\u{fffd}")),
        Value::Array(items) => Value::Array(items.into_iter().map(strip_nul).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k.replace('\0', "\u{fffd}"), strip_nul(v)))
                .collect(),
        ),
        other => other,
    }
}

/// Whether a JSON value has what a stored event needs: a non-empty `id` and a `type`.
pub fn is_event(event: &Value) -> bool {
    event["id"].as_str().is_some_and(|id| !id.is_empty()) && event["type"].is_string()
}

/// Inserts an event object if its id is not stored yet and, when it is new and of the configured mode,
/// stages its `ProcessStripeEvent` job in the caller's transaction (push the envelope after commit).
pub async fn store_event(
    conn: &mut PgConnection,
    event: &Value,
    mode: StripeMode,
) -> anyhow::Result<StoredEvent> {
    if !is_event(event) {
        anyhow::bail!("not a Stripe event: no id or type");
    }
    let (id, kind) = (
        event["id"].as_str().unwrap_or_default(),
        event["type"].as_str().unwrap_or_default(),
    );
    let id = clip(id, 255);
    let livemode = event["livemode"].as_bool().unwrap_or(false);
    let status = if livemode == (mode == StripeMode::Live) {
        "received"
    } else {
        "quarantined"
    };
    let job_id = (status == "received").then(|| Uuid::new_v5(&EVENT_JOB_NAMESPACE, id.as_bytes()));
    let object = &event["data"]["object"];
    let inserted = sqlx::query(
        "INSERT INTO stripe_events (id, type, api_version, livemode, created, object_id, object_type, payload, status, job_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(&id)
    .bind(clip(kind, 100))
    .bind(event["api_version"].as_str().map(|v| clip(v, 50)))
    .bind(livemode)
    .bind(event["created"].as_i64().and_then(|t| DateTime::from_timestamp(t, 0)))
    .bind(object["id"].as_str().map(|v| clip(v, 255)))
    .bind(object["object"].as_str().map(|v| clip(v, 100)))
    .bind(sqlx::types::Json(strip_nul(event.clone())))
    .bind(status)
    .bind(job_id)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    let envelope = match (inserted, job_id) {
        (true, Some(job_id)) => {
            let job = ProcessStripeEvent { event_id: id };
            Some(outbox::stage(conn, &job, job_id).await?)
        }
        _ => None,
    };
    Ok(StoredEvent {
        inserted,
        status,
        envelope,
    })
}

/// Which stored events to replay; the given criteria are combined (AND), at least one is required.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayFilter {
    pub id: Option<String>,
    pub status: Option<String>,
    pub kind: Option<String>,
    /// Also replay `unparseable` and `quarantined` events.
    pub force: bool,
    /// At most this many events (capped at [`MAX_REPLAY`]); 0 means the cap.
    pub limit: i64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Events reset to `received` with a new processing job staged.
    pub replayed: usize,
    /// Matching `unparseable`/`quarantined` events left alone (no `force`).
    pub skipped_protected: usize,
    /// More events matched than the limit allowed.
    pub truncated: bool,
}

/// Re-stages processing of the matching stored events: each is reset to `received` (`last_error` and
/// `processed_at` cleared, `attempts` kept as history) and gets a new `ProcessStripeEvent` job with a
/// fresh job id (a `job_outbox` row in the same transaction, pushed after commit).
pub async fn replay(
    pool: &PgPool,
    enqueuer: &Enqueuer,
    filter: &ReplayFilter,
) -> anyhow::Result<ReplayReport> {
    if filter.id.is_none() && filter.status.is_none() && filter.kind.is_none() {
        anyhow::bail!("name the events to replay: --id, --status and/or --type");
    }
    if let Some(status) = &filter.status {
        if !STATUSES.contains(&status.as_str()) {
            anyhow::bail!("unknown status {status:?} (one of {})", STATUSES.join(", "));
        }
        if PROTECTED.contains(&status.as_str()) && !filter.force {
            anyhow::bail!(
                "{status} events are not replayed without --force (processing refuses them again)"
            );
        }
    }
    let limit = if filter.limit <= 0 {
        MAX_REPLAY
    } else {
        filter.limit.min(MAX_REPLAY)
    };
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT id, status FROM stripe_events
         WHERE ($1::text IS NULL OR id = $1) AND ($2::text IS NULL OR status = $2)
           AND ($3::text IS NULL OR type = $3)
         ORDER BY received_at, id LIMIT $4",
    )
    .bind(&filter.id)
    .bind(&filter.status)
    .bind(&filter.kind)
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    let mut report = ReplayReport {
        truncated: rows.len() as i64 > limit,
        ..ReplayReport::default()
    };
    let mut ids = Vec::new();
    for (id, status) in rows.into_iter().take(limit as usize) {
        if PROTECTED.contains(&status.as_str()) && !filter.force {
            report.skipped_protected += 1;
        } else {
            ids.push(id);
        }
    }
    for chunk in ids.chunks(CHUNK) {
        let mut tx = pool.begin().await?;
        let mut envelopes = Vec::with_capacity(chunk.len());
        for id in chunk {
            let job_id = Uuid::now_v7();
            // Re-checked under the row lock: a concurrent change to a protected status is respected.
            // The previous job's open dead letter is closed as retried (its next life is this replay),
            // so "Dead jobs" does not keep listing an event that is being processed again.
            let updated: i64 = sqlx::query_scalar(
                "WITH previous AS (
                     SELECT job_id FROM stripe_events
                     WHERE id = $1 AND ($3 OR status NOT IN ('unparseable', 'quarantined'))
                 ), reset AS (
                     UPDATE stripe_events
                     SET status = 'received', last_error = NULL, processed_at = NULL, job_id = $2
                     WHERE id = $1 AND ($3 OR status NOT IN ('unparseable', 'quarantined'))
                     RETURNING 1
                 ), closed AS (
                     UPDATE job_dead_letters SET retried_at = now()
                     WHERE job_id IN (SELECT job_id FROM previous) AND retried_at IS NULL
                       AND EXISTS (SELECT 1 FROM reset)
                 )
                 SELECT count(*) FROM reset",
            )
            .bind(id)
            .bind(job_id)
            .bind(filter.force)
            .fetch_one(&mut *tx)
            .await?;
            if updated == 1 {
                let job = ProcessStripeEvent {
                    event_id: id.clone(),
                };
                envelopes.push(outbox::stage(&mut tx, &job, job_id).await?);
            }
        }
        tx.commit().await?;
        report.replayed += envelopes.len();
        outbox::push_after_commit(pool, enqueuer, &envelopes).await;
    }
    Ok(report)
}
