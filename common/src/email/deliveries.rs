//! `email_deliveries`: one row per logical e-mail, unique by its dedupe key, and the state machine the
//! sender drives.
//!
//! ```text
//!  queued ──claim (lease)──▶ sending ──server accepted──▶ sent
//!    ▲                        │  │
//!    └── transient failure ───┘  └── permanent failure / retries used up ──▶ failed
//!  (suppressed: the recipient unsubscribed from the category; never sent)
//! ```
//!
//! A delivery is a row first and a job second: [`queue`] inserts the row and, when it is due, its
//! `email.send` job's outbox row in the same statement, so it is atomic in any transaction (or none).
//! The delivery id is derived from the dedupe key ([`delivery_id`]) and the first job of a delivery has
//! the delivery id as its job id. Deliveries scheduled for later get their job from the minute sweep
//! once due ([`stage_due`]).
//!
//! The claim is one autocommit `UPDATE` that takes a lease: `queued` rows, `sending` rows whose lease
//! expired (the sender crashed), and `failed` rows only for a newer job generation (an operator retried
//! the dead job from `/ops`). No transaction is open while the SMTP conversation runs; the marks after
//! it are single statements guarded by the claim's attempt number, so a sender whose lease was taken
//! over cannot overwrite the newer outcome.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::Template;
use crate::jobs::email_jobs::SendEmail;
use crate::jobs::{Enqueuer, Envelope, Job, outbox};

/// Namespace of delivery ids (UUIDv5 of the dedupe key).
const DELIVERY_NAMESPACE: Uuid = Uuid::from_u128(0x6d696e67_7573_4d61_8e6c_64656c697672);

/// The id of the delivery with this dedupe key: derived, not random, so a logical e-mail has one id —
/// and one Message-ID — however often it is re-created (e.g. a row lost with an asynchronous commit in
/// a database crash and queued again when the event is re-processed).
pub fn delivery_id(dedupe_key: &str) -> Uuid {
    Uuid::new_v5(&DELIVERY_NAMESPACE, dedupe_key.as_bytes())
}

/// One e-mail to queue.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    /// The user it is for (`None` for someone without an account, e.g. an invitee).
    pub user_id: Option<Uuid>,
    /// The address; `None`: the user's own (`users.email`).
    pub recipient: Option<String>,
    pub template: Template,
    /// The template's data (see `templates` for what each template reads).
    pub data: Value,
    /// One delivery per key, e.g. `dunning:in_123:2` or `reminder:<id>:<occurrence>`.
    pub dedupe_key: String,
    /// Not sent before this instant.
    pub scheduled_for: DateTime<Utc>,
}

/// What [`queue`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Queued {
    /// Inserted and due: its job is staged; push the envelope after commit (or let the sweep do it).
    Staged(Envelope),
    /// Inserted for later: the minute sweep stages its job once `scheduled_for` has passed.
    Scheduled,
    /// Inserted as `suppressed`: the user unsubscribed from the template's category.
    Suppressed,
    /// A delivery with this dedupe key exists: nothing written.
    Duplicate,
    /// No such user (or neither a user nor a recipient): nothing written.
    NoRecipient,
}

impl Queued {
    /// True when this call inserted a delivery row.
    pub fn inserted(&self) -> bool {
        matches!(
            self,
            Queued::Staged(_) | Queued::Scheduled | Queued::Suppressed
        )
    }

    pub fn envelope(self) -> Option<Envelope> {
        match self {
            Queued::Staged(envelope) => Some(envelope),
            _ => None,
        }
    }
}

/// Inserts the delivery (unless its dedupe key exists) and, when it is due, stages its job, in one
/// statement on the caller's connection (inside the caller's transaction when there is one). "Due" is
/// read on the database's wall clock (`clock_timestamp()`, not the transaction's start), with 5 s of
/// tolerance for the caller's clock: "now" computed by the caller is due.
pub async fn queue(conn: &mut PgConnection, delivery: &NewDelivery) -> Result<Queued, sqlx::Error> {
    if delivery.user_id.is_none() && delivery.recipient.is_none() {
        return Ok(Queued::NoRecipient);
    }
    let id = delivery_id(&delivery.dedupe_key);
    let envelope = outbox::prepare(&SendEmail { delivery_id: id }, id)
        .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let category = delivery.template.category();
    let row: Option<(String, bool)> = sqlx::query_as(
        "WITH candidate AS (
             SELECT u.id AS user_id, coalesce($3, u.email) AS recipient,
                    $8 AND EXISTS (SELECT 1 FROM email_suppressions s
                                   WHERE s.user_id = u.id AND s.category = $9) AS suppressed
             FROM users u WHERE u.id = $2
             UNION ALL
             SELECT NULL::uuid, $3, false WHERE $2::uuid IS NULL
         ), delivery AS (
             INSERT INTO email_deliveries (id, user_id, template, recipient, data, dedupe_key, scheduled_for, status)
             SELECT $1, user_id, $4, recipient, $5, $6, $7,
                    CASE WHEN suppressed THEN 'suppressed' ELSE 'queued' END
             FROM candidate
             ON CONFLICT (dedupe_key) DO NOTHING
             RETURNING id, status, scheduled_for
         ), job AS (
             INSERT INTO job_outbox (job_id, queue, kind, args, max_attempts, created_at)
             SELECT id, $10, $11, $12, $13, $14 FROM delivery
             WHERE status = 'queued' AND scheduled_for <= clock_timestamp() + interval '5 seconds'
             RETURNING job_id
         )
         SELECT d.status, EXISTS (SELECT 1 FROM job) FROM delivery d",
    )
    .bind(id)
    .bind(delivery.user_id)
    .bind(delivery.recipient.as_deref())
    .bind(delivery.template.name())
    .bind(sqlx::types::Json(&delivery.data))
    .bind(&delivery.dedupe_key)
    .bind(delivery.scheduled_for)
    .bind(category.is_optional())
    .bind(category.name())
    .bind(envelope.queue.name())
    .bind(&envelope.kind)
    .bind(sqlx::types::Json(&envelope))
    .bind(envelope.max_attempts as i32)
    .bind(envelope.enqueued_at)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(match row {
        Some((_, true)) => Queued::Staged(envelope),
        Some((status, false)) if status == "suppressed" => Queued::Suppressed,
        Some(_) => Queued::Scheduled,
        // Either the key exists or the user does not; one look-up by the unique key tells them apart.
        None => {
            let exists: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM email_deliveries WHERE dedupe_key = $1)",
            )
            .bind(&delivery.dedupe_key)
            .fetch_one(&mut *conn)
            .await?;
            if exists {
                Queued::Duplicate
            } else {
                Queued::NoRecipient
            }
        }
    })
}

/// A delivery claimed for sending, with what rendering needs.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claimed {
    pub id: Uuid,
    pub user_id: Option<Uuid>,
    pub template: String,
    pub recipient: String,
    pub data: sqlx::types::Json<Value>,
    /// The attempt number this claim holds (guards the marks).
    pub attempts: i32,
    pub first_name: Option<String>,
    pub timezone: Option<String>,
    /// Categories the user unsubscribed from.
    pub suppressed: Vec<String>,
}

/// Why a claim got nothing.
#[derive(Debug, Clone, PartialEq)]
pub enum NotClaimed {
    /// Already sent: a duplicate job has nothing to do.
    Sent,
    Suppressed,
    /// Failed, and this job is not of a newer generation.
    Failed,
    /// Another job holds a live lease (it is sending now).
    Leased {
        until: DateTime<Utc>,
    },
    Missing,
}

/// Claims the delivery for `lease` (one autocommit statement). `generation` is the job's generation.
pub async fn claim(
    pool: &PgPool,
    id: Uuid,
    lease: Duration,
    generation: u32,
) -> Result<Result<Claimed, NotClaimed>, sqlx::Error> {
    let claimed: Option<Claimed> = sqlx::query_as(
        "WITH claimed AS (
             UPDATE email_deliveries
             SET status = 'sending', lease_until = now() + make_interval(secs => $2),
                 attempts = attempts + 1, job_generation = $3, updated_at = now()
             WHERE id = $1 AND (status = 'queued'
                                OR (status = 'sending' AND lease_until < now())
                                OR (status = 'failed' AND job_generation < $3))
             RETURNING id, user_id, template, recipient, data, attempts
         )
         SELECT c.id, c.user_id, c.template, c.recipient, c.data, c.attempts,
                coalesce(nullif(p.first_name, ''), nullif(split_part(u.full_name, ' ', 1), '')) AS first_name,
                p.timezone,
                ARRAY(SELECT s.category::text FROM email_suppressions s WHERE s.user_id = c.user_id) AS suppressed
         FROM claimed c
         LEFT JOIN users u ON u.id = c.user_id
         LEFT JOIN user_profiles p ON p.user_id = c.user_id",
    )
    .bind(id)
    .bind(lease.as_secs_f64())
    .bind(generation as i32)
    .fetch_optional(pool)
    .await?;
    if let Some(claimed) = claimed {
        return Ok(Ok(claimed));
    }
    let state: Option<(String, Option<DateTime<Utc>>)> =
        sqlx::query_as("SELECT status, lease_until FROM email_deliveries WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await?;
    Ok(Err(match state {
        None => NotClaimed::Missing,
        Some((status, until)) => match status.as_str() {
            "sent" => NotClaimed::Sent,
            "suppressed" => NotClaimed::Suppressed,
            "failed" => NotClaimed::Failed,
            // `queued` again between the two statements (another sender gave up): retry later.
            _ => NotClaimed::Leased {
                until: until.unwrap_or_else(Utc::now),
            },
        },
    }))
}

/// The server accepted the message. Not guarded by the attempt: whoever got it accepted last wins.
pub async fn mark_sent(pool: &PgPool, id: Uuid, message_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE email_deliveries
         SET status = 'sent', sent_at = now(), message_id = $2, lease_until = NULL, last_error = NULL,
             updated_at = now()
         WHERE id = $1 AND status <> 'sent'",
    )
    .bind(id)
    .bind(message_id)
    .execute(pool)
    .await
    .map(|_| ())
}

/// Where a claimed delivery goes when it was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsent {
    /// Back to `queued`: the job retries.
    Retry,
    /// `failed`: a permanent rejection, or the retries are used up.
    Failed,
    /// `suppressed`: the recipient unsubscribed since it was queued.
    Suppressed,
}

/// Releases the claim with `error`, unless another claim took the delivery over meanwhile.
pub async fn mark_unsent(
    pool: &PgPool,
    claimed: &Claimed,
    outcome: Unsent,
    error: &str,
) -> Result<(), sqlx::Error> {
    let status = match outcome {
        Unsent::Retry => "queued",
        Unsent::Failed => "failed",
        Unsent::Suppressed => "suppressed",
    };
    let error: String = error.chars().take(2_000).collect();
    sqlx::query(
        "UPDATE email_deliveries SET status = $3, lease_until = NULL, last_error = $4, updated_at = now()
         WHERE id = $1 AND status = 'sending' AND attempts = $2",
    )
    .bind(claimed.id)
    .bind(claimed.attempts)
    .bind(status)
    .bind(error)
    .execute(pool)
    .await
    .map(|_| ())
}

/// Fails up to `limit` deliveries whose job has ended — its outbox row completed more than `grace` ago,
/// dead or not — while they are still `queued`, or `sending` with an expired lease: nothing would ever
/// send them again (the minute sweep re-drives only deliveries with no job at all). That happens when the
/// job's last attempt was killed by its timeout or a panic, found another attempt's lease, or could not
/// record that the server accepted the message. A live lease is left alone: its holder records the
/// outcome. Returns how many it failed; an operator's retry from `/ops` sends them again.
pub async fn fail_orphans(
    pool: &PgPool,
    grace: std::time::Duration,
    limit: i64,
) -> anyhow::Result<u64> {
    let cutoff = Utc::now() - chrono::Duration::from_std(grace)?;
    let failed = sqlx::query(
        "WITH orphans AS (
             SELECT d.id, d.status, o.outcome
             FROM email_deliveries d JOIN job_outbox o ON o.job_id = d.id
             WHERE (d.status = 'queued' OR (d.status = 'sending' AND d.lease_until < now()))
               -- Deliveries scheduled for later have no job yet; this bounds the index range.
               AND d.scheduled_for <= now()
               AND o.completed_at < $1
             LIMIT $2
             FOR UPDATE OF d SKIP LOCKED
         )
         UPDATE email_deliveries d
         SET status = 'failed', lease_until = NULL, updated_at = now(),
             last_error = 'its job ended (' || coalesce(orphans.outcome, 'unknown')
                          || ') without recording an outcome'
                          || CASE WHEN orphans.status = 'sending'
                                  THEN '; the SMTP server may have accepted it' ELSE '' END
         FROM orphans
         WHERE d.id = orphans.id",
    )
    .bind(cutoff)
    .bind(limit)
    .execute(pool)
    .await?;
    Ok(failed.rows_affected())
}

/// Stages a job for up to `limit` `queued` deliveries that are due and have none (scheduled ones that
/// came due; any that lost theirs), and pushes them when an enqueuer is given. Returns how many.
pub async fn stage_due(
    pool: &PgPool,
    enqueuer: Option<&Enqueuer>,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<usize, sqlx::Error> {
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT d.id FROM email_deliveries d
         WHERE d.status = 'queued' AND d.scheduled_for <= $1
           AND NOT EXISTS (SELECT 1 FROM job_outbox o WHERE o.job_id = d.id)
         ORDER BY d.scheduled_for LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    if ids.is_empty() {
        return Ok(0);
    }
    let jobs: Vec<(Uuid, SendEmail)> = ids
        .iter()
        .map(|id| (*id, SendEmail { delivery_id: *id }))
        .collect();
    let staged = outbox::stage_many_absent(pool, &jobs).await?;
    if let Some(enqueuer) = enqueuer {
        outbox::push_after_commit(pool, enqueuer, &staged).await;
    }
    Ok(staged.len())
}

/// Pushes e-mail jobs that were staged (e.g. inside a Stripe event's transaction) more than `min_age`
/// ago and that no sweep has pushed yet, marking them pushed. Callers that push after commit make this
/// a no-op in Redis (the task id exists); it bounds the latency of callers that cannot push (≤ 1 min)
/// instead of the generic outbox sweep's stale window.
pub async fn push_staged(
    pool: &PgPool,
    enqueuer: &Enqueuer,
    min_age: Duration,
    limit: i64,
) -> anyhow::Result<usize> {
    let rows: Vec<sqlx::types::Json<Envelope>> = sqlx::query_scalar(
        "UPDATE job_outbox SET last_pushed_at = now(), push_count = push_count + 1
         WHERE job_id IN (SELECT job_id FROM job_outbox
                          WHERE completed_at IS NULL AND last_pushed_at IS NULL AND kind = $1
                            AND created_at < now() - make_interval(secs => $2)
                          ORDER BY created_at LIMIT $3 FOR UPDATE SKIP LOCKED)
         RETURNING args",
    )
    .bind(SendEmail::SPEC.kind)
    .bind(min_age.as_secs_f64())
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let envelopes: Vec<Envelope> = rows.into_iter().map(|j| j.0).collect();
    if envelopes.is_empty() {
        return Ok(0);
    }
    enqueuer.push(&envelopes, None, None).await
}
