//! The billing lifecycle sweeps (`billing.trial_expiry_sweep`, `billing.renewal_sweep`, every 5
//! minutes). Both take the clock as a parameter (`run_*(…, now)`) and are idempotent.
//!
//! Each transition re-checks its condition in an `UPDATE … WHERE id = $1 AND <condition>` under the
//! same per-subscription advisory lock the event processor takes, then recomputes the user's access in
//! that transaction. They never touch the Stripe guard columns, so any newer Stripe event still
//! applies on top. Reminder e-mails are keyed, so a sweep that runs twice queues each once.

use chrono::{DateTime, Utc};
use mingus_common::billing::access;
use mingus_common::billing::email::{self, BillingEmail, keys, templates};
use mingus_common::config::stripe::StripeConfig;
use mingus_common::entitlements::evict::Evictor;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use super::Handler;
use crate::context::{JobContext, JobError};
use mingus_common::jobs::Envelope;
use mingus_common::jobs::billing_jobs::{RenewalSweep, TrialExpirySweep};

/// Rows handled per page; pages per run are bounded too.
const PAGE: i64 = 500;
const MAX_PAGES: usize = 100;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TrialSweepReport {
    pub reminders: usize,
    pub expired: usize,
    /// Users whose promotion or admin grants expired and whose access was recomputed (the tier's grant
    /// takes the feature back).
    pub grants_ended: usize,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RenewalSweepReport {
    pub reminders: usize,
    pub ended_at_period_end: usize,
    pub past_due: usize,
    pub grace_expired: usize,
}

impl Handler for TrialExpirySweep {
    async fn run(ctx: &JobContext, _: &Envelope, _: Self) -> Result<(), JobError> {
        let report = trial_expiry(&ctx.db, Utc::now(), Some(&ctx.evictor)).await?;
        tracing::info!(?report, "trial expiry sweep done");
        Ok(())
    }
}

impl Handler for RenewalSweep {
    async fn run(ctx: &JobContext, _: &Envelope, _: Self) -> Result<(), JobError> {
        let report = renewals(&ctx.db, &ctx.config.stripe, Utc::now(), Some(&ctx.evictor)).await?;
        tracing::info!(?report, "renewal sweep done");
        Ok(())
    }
}

/// A state change of the sweeps: candidates by keyset (`id > $1`), applied one by one.
struct Transition {
    /// Recorded as `sweep:<name>` in `subscription_changes.source`.
    name: &'static str,
    select: &'static str,
    update: &'static str,
    /// The update binds the grace period in seconds as `$3`.
    uses_grace: bool,
    /// The e-mail this transition queues (in its transaction), if any.
    email: Option<&'static str>,
}

macro_rules! transition {
    ($name:literal, $condition:literal, $set:literal, $uses_grace:literal, $email:expr) => {
        Transition {
            name: concat!("sweep:", $name),
            select: concat!(
                "SELECT id FROM subscriptions WHERE id > $1 AND ",
                $condition,
                " ORDER BY id LIMIT $3"
            ),
            update: concat!(
                "UPDATE subscriptions SET ",
                $set,
                ", updated_at = now() WHERE id = $1 AND ",
                $condition,
                " RETURNING user_id, coalesce(stripe_subscription_id, id::text), plan_tier, trial_end, ended_at"
            ),
            uses_grace: $uses_grace,
            email: $email,
        }
    };
}

/// A trial that no Stripe subscription backs ends at `trial_end`.
const TRIAL_ENDED: Transition = transition!(
    "trial_ended",
    "status = 'trial' AND trial_end <= $2 AND stripe_subscription_id IS NULL",
    "status = 'cancelled', ended_at = coalesce(ended_at, trial_end), grace_until = NULL",
    false,
    Some(templates::TRIAL_ENDED)
);

/// A subscription set to cancel at period end ends with its period.
const CANCELLED_AT_PERIOD_END: Transition = transition!(
    "cancelled_at_period_end",
    "status IN ('active', 'trial', 'past_due') AND cancel_at_period_end AND current_period_end <= $2",
    "status = 'cancelled', ended_at = coalesce(ended_at, current_period_end), grace_until = NULL",
    false,
    Some(templates::SUBSCRIPTION_CANCELLED)
);

/// A period that ended with no renewal: no Stripe state since it ended and no payment recorded since.
const OVERDUE: Transition = transition!(
    "overdue",
    "status = 'active' AND NOT cancel_at_period_end AND current_period_end <= $2
     AND (stripe_event_at IS NULL OR stripe_event_at < current_period_end)
     AND NOT EXISTS (SELECT 1 FROM billing_history b WHERE b.subscription_id = subscriptions.id
                     AND b.status = 'paid' AND b.created_at >= subscriptions.current_period_end)",
    "status = 'past_due', grace_until = current_period_end + make_interval(secs => $3)",
    true,
    None
);

/// A local subscription whose grace period is over ends (a Stripe one stays `past_due` until Stripe
/// says otherwise; its access already ended at `grace_until`).
const GRACE_OVER: Transition = transition!(
    "grace_over",
    "status = 'past_due' AND grace_until <= $2 AND stripe_subscription_id IS NULL",
    "status = 'cancelled', ended_at = coalesce(ended_at, grace_until)",
    false,
    Some(templates::SUBSCRIPTION_CANCELLED)
);

/// What a transition's update returns: user, subscription key (Stripe id or ours), tier, trial end,
/// end.
type Changed = (
    Uuid,
    String,
    String,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
);

/// The e-mail of a lifecycle transition: the trial ended, or the subscription was cancelled (the same
/// dedupe key as the one `customer.subscription.deleted` queues, so a subscription gets one).
fn lifecycle_email(
    template: &'static str,
    user_id: Uuid,
    key: &str,
    tier: &str,
    trial_end: Option<DateTime<Utc>>,
    ended_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> BillingEmail {
    let (data, dedupe_key) = if template == templates::TRIAL_ENDED {
        (
            json!({"subscription": key, "tier": tier, "trial_end": trial_end}),
            keys::trial_ended(key),
        )
    } else {
        (
            json!({"subscription": key, "tier": tier, "ended_at": ended_at}),
            keys::subscription_cancelled(key),
        )
    };
    BillingEmail {
        user_id,
        template,
        data,
        dedupe_key,
        scheduled_for: now,
    }
}

/// Applies `transition` to every subscription it matches at `now`; returns how many changed. Each
/// changed user's cached entitlements are evicted after their commit when an evictor is given.
async fn run(
    db: &PgPool,
    transition: &Transition,
    now: DateTime<Utc>,
    grace_secs: f64,
    evictor: Option<&Evictor>,
) -> Result<usize, sqlx::Error> {
    let mut changed = 0;
    let mut after = Uuid::nil();
    for _ in 0..MAX_PAGES {
        let ids: Vec<Uuid> = sqlx::query_scalar(transition.select)
            .bind(after)
            .bind(now)
            .bind(PAGE)
            .fetch_all(db)
            .await?;
        for id in &ids {
            let mut tx = db.begin().await?;
            // Also tells the subscription history (migration …90) who makes the change, at which clock.
            sqlx::query(
                "SELECT pg_advisory_xact_lock(hashtextextended(coalesce(stripe_subscription_id, id::text), 0)),
                        set_config('mingus.change_source', $2, true), set_config('mingus.change_at', $3, true)
                 FROM subscriptions WHERE id = $1",
            )
            .bind(id)
            .bind(transition.name)
            .bind(now.to_rfc3339())
            .execute(&mut *tx)
            .await?;
            let mut update = sqlx::query_as(transition.update).bind(id).bind(now);
            if transition.uses_grace {
                update = update.bind(grace_secs);
            }
            let row: Option<Changed> = update.fetch_optional(&mut *tx).await?;
            if let Some((user_id, key, tier, trial_end, ended_at)) = row {
                if let Some(template) = transition.email {
                    email::queue(
                        &mut tx,
                        &lifecycle_email(template, user_id, &key, &tier, trial_end, ended_at, now),
                    )
                    .await?;
                }
                access::recompute(&mut tx, user_id, now).await?;
                tx.commit().await?;
                if let Some(evictor) = evictor {
                    evictor.after_commit(&[user_id]);
                }
                changed += 1;
            }
        }
        match ids.last() {
            Some(last) if ids.len() as i64 == PAGE => after = *last,
            _ => break,
        }
    }
    Ok(changed)
}

/// Candidates for a reminder: (subscription key, user, date the reminder is about, tier).
type Reminder = (String, Uuid, DateTime<Utc>, String);

async fn remind(
    db: &PgPool,
    select: &'static str,
    now: DateTime<Utc>,
    email_for: impl Fn(Reminder) -> BillingEmail,
) -> Result<usize, sqlx::Error> {
    let mut queued = 0;
    let mut after = Uuid::nil();
    for _ in 0..MAX_PAGES {
        let rows: Vec<(Uuid, String, Uuid, DateTime<Utc>, String)> = sqlx::query_as(select)
            .bind(after)
            .bind(now)
            .bind(PAGE)
            .fetch_all(db)
            .await?;
        let mut conn = db.acquire().await?;
        for (_, key, user_id, at, tier) in &rows {
            if email::queue(
                &mut conn,
                &email_for((key.clone(), *user_id, *at, tier.clone())),
            )
            .await?
            {
                queued += 1;
            }
        }
        match rows.last() {
            Some((last, ..)) if rows.len() as i64 == PAGE => after = *last,
            _ => break,
        }
    }
    Ok(queued)
}

/// Trials: a reminder three days before `trial_end` (the key Stripe's `trial_will_end` uses too, so
/// Stripe-backed trials get one), and trials without a Stripe subscription end at `trial_end`. Trials
/// Stripe backs are Stripe's to convert, cancel or pause; their access ends at `trial_end` until it says.
/// Promotions and admin grants that expired give their features back to the tier (their users' access
/// is recomputed). Evicts no cached entitlements (tools and tests; the sweep job evicts with its worker's Redis).
pub async fn run_trial_expiry(
    db: &PgPool,
    now: DateTime<Utc>,
) -> Result<TrialSweepReport, sqlx::Error> {
    trial_expiry(db, now, None).await
}

async fn trial_expiry(
    db: &PgPool,
    now: DateTime<Utc>,
    evictor: Option<&Evictor>,
) -> Result<TrialSweepReport, sqlx::Error> {
    let reminders = remind(
        db,
        "SELECT id, coalesce(stripe_subscription_id, id::text), user_id, trial_end, plan_tier FROM subscriptions
         WHERE id > $1 AND status = 'trial' AND trial_end > $2 AND trial_end <= $2 + interval '3 days'
         ORDER BY id LIMIT $3",
        now,
        |(key, user_id, trial_end, tier)| BillingEmail {
            user_id,
            template: templates::TRIAL_ENDING,
            data: json!({"subscription": key, "tier": tier, "trial_end": trial_end}),
            dedupe_key: keys::trial_ending(&key, trial_end),
            scheduled_for: now,
        },
    )
    .await?;
    let expired = run(db, &TRIAL_ENDED, now, 0.0, evictor).await?;
    let grants_ended = grants_ended(db, now, evictor).await?;
    Ok(TrialSweepReport {
        reminders,
        expired,
        grants_ended,
    })
}

/// Promotions and admin grants end like trials: each user with one that expired gets their access
/// recomputed, which deletes the expired grant and gives the feature back to their tier (migration …120).
async fn grants_ended(
    db: &PgPool,
    now: DateTime<Utc>,
    evictor: Option<&Evictor>,
) -> Result<usize, sqlx::Error> {
    let mut ended = 0;
    for _ in 0..MAX_PAGES {
        // Each recompute deletes the user's expired grants, so the next page starts afresh.
        let users: Vec<Uuid> = sqlx::query_scalar(
            "SELECT DISTINCT user_id FROM feature_access
             WHERE granted_by <> 'subscription' AND expires_at <= $1 LIMIT $2",
        )
        .bind(now)
        .bind(PAGE)
        .fetch_all(db)
        .await?;
        for user_id in &users {
            let mut tx = db.begin().await?;
            access::recompute(&mut tx, *user_id, now).await?;
            tx.commit().await?;
            if let Some(evictor) = evictor {
                evictor.after_commit(&[*user_id]);
            }
            ended += 1;
        }
        if (users.len() as i64) < PAGE {
            break;
        }
    }
    Ok(ended)
}

/// Renewals, in this order: annual renewal reminders 7 days ahead; `cancel_at_period_end`
/// subscriptions end with their period; an ended period not renewed goes `past_due` with
/// `grace_until = period end + STRIPE_GRACE_PERIOD_SECS`; a local subscription past `grace_until` ends.
/// Evicts no cached entitlements (tools and tests; the sweep job evicts with its worker's Redis).
pub async fn run_renewals(
    db: &PgPool,
    stripe: &StripeConfig,
    now: DateTime<Utc>,
) -> Result<RenewalSweepReport, sqlx::Error> {
    renewals(db, stripe, now, None).await
}

async fn renewals(
    db: &PgPool,
    stripe: &StripeConfig,
    now: DateTime<Utc>,
    evictor: Option<&Evictor>,
) -> Result<RenewalSweepReport, sqlx::Error> {
    let reminders = remind(
        db,
        "SELECT id, coalesce(stripe_subscription_id, id::text), user_id, current_period_end, plan_tier FROM subscriptions
         WHERE id > $1 AND status = 'active' AND billing_cycle = 'annual' AND NOT cancel_at_period_end
           AND current_period_end > $2 AND current_period_end <= $2 + interval '7 days'
         ORDER BY id LIMIT $3",
        now,
        |(key, user_id, period_end, tier)| BillingEmail {
            user_id,
            template: templates::RENEWAL_REMINDER,
            data: json!({"subscription": key, "tier": tier, "renews_at": period_end}),
            dedupe_key: keys::renewal_reminder(&key, period_end),
            scheduled_for: now,
        },
    )
    .await?;
    let grace = stripe.grace_period.as_secs_f64();
    Ok(RenewalSweepReport {
        reminders,
        ended_at_period_end: run(db, &CANCELLED_AT_PERIOD_END, now, grace, evictor).await?,
        past_due: run(db, &OVERDUE, now, grace, evictor).await?,
        grace_expired: run(db, &GRACE_OVER, now, grace, evictor).await?,
    })
}
