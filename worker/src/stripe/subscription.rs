//! `customer.subscription.*`: the subscription upsert behind the ordering guard, the trial-ending
//! reminder and the cancellation e-mail.

use chrono::{DateTime, Utc};
use mingus_common::billing::email::{BillingEmail, keys, templates};
use mingus_common::billing::objects::SubscriptionView;
use mingus_common::billing::{StripeStatus, resolve_plan};
use serde_json::json;
use uuid::Uuid;

use super::{Apply, not_yet};
use crate::context::JobError;

/// Events whose object is the subscription's new state.
pub(super) const STATE_EVENTS: [&str; 7] = [
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.paused",
    "customer.subscription.resumed",
    "customer.subscription.pending_update_applied",
    "customer.subscription.pending_update_expired",
];

/// A state that was applied.
pub(super) struct Applied {
    pub user_id: Uuid,
    pub status: StripeStatus,
    pub tier: &'static str,
    pub ended_at: Option<DateTime<Utc>>,
}

pub(super) async fn state_changed(a: &mut Apply<'_>) -> Result<(), JobError> {
    let event = a.event;
    let sub = SubscriptionView(&event.object);
    let Some(applied) = apply_state(a, sub).await? else {
        return Ok(());
    };
    if applied.status == StripeStatus::Canceled {
        let sub_id = sub.id()?;
        let data =
            json!({"subscription": sub_id, "tier": applied.tier, "ended_at": applied.ended_at});
        let mail = BillingEmail {
            user_id: applied.user_id,
            template: templates::SUBSCRIPTION_CANCELLED,
            data,
            dedupe_key: keys::subscription_cancelled(sub_id),
            scheduled_for: a.now,
        };
        a.queue_email(&mail).await?;
    }
    Ok(())
}

/// Applies the subscription state unless the stored one is newer (see `billing::guard`); returns what
/// was applied, or `None` when the guard kept the stored state.
pub(super) async fn apply_state(
    a: &mut Apply<'_>,
    sub: SubscriptionView<'_>,
) -> Result<Option<Applied>, JobError> {
    let sub_id = sub.id()?;
    let customer = sub.customer()?;
    let mut status = sub.status()?;
    if a.event.kind == "customer.subscription.deleted" && !status.is_terminal() {
        status = StripeStatus::Canceled;
    }
    let plan = resolve_plan(sub.price()?, a.stripe)?;
    let (period_start, period_end) = sub.period()?;
    let (trial_start, trial_end) = sub.trial();
    let grace = chrono::Duration::from_std(a.stripe.grace_period).unwrap_or(chrono::Duration::MAX);
    // The unpaid period began at the period start (Stripe advances the period at renewal).
    let grace_until = (status == StripeStatus::PastDue)
        .then(|| period_start.checked_add_signed(grace))
        .flatten();
    // Only a terminal state has ended; the payload's ended_at of a live subscription is not an end.
    let ended_at = status
        .is_terminal()
        .then(|| sub.ended_at().unwrap_or(a.event.created));
    let is_creation = a.event.kind == "customer.subscription.created";
    // One statement decides and writes: ON CONFLICT takes the row lock and checks the ordering guard
    // against the latest committed state, so concurrent events of one subscription serialise on the row
    // (a race of two first events meets at the unique index). A new row belongs to the customer's user.
    let written: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO subscriptions AS s (user_id, plan_tier, plan_price, currency, billing_cycle, status,
             current_period_start, current_period_end, trial_start, trial_end, cancelled_at, cancel_at_period_end,
             stripe_subscription_id, stripe_price_id, stripe_status, stripe_customer_id, stripe_event_at,
             stripe_status_rank, ended_at, grace_until)
         SELECT owner.id, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19
         FROM (SELECT coalesce((SELECT user_id FROM subscriptions WHERE stripe_subscription_id = $12),
                               (SELECT id FROM users WHERE stripe_customer_id = $15)) AS id) owner
         WHERE owner.id IS NOT NULL
         ON CONFLICT (stripe_subscription_id) WHERE stripe_subscription_id IS NOT NULL DO UPDATE SET
             plan_tier = EXCLUDED.plan_tier, plan_price = EXCLUDED.plan_price, currency = EXCLUDED.currency,
             billing_cycle = EXCLUDED.billing_cycle, status = EXCLUDED.status,
             current_period_start = EXCLUDED.current_period_start, current_period_end = EXCLUDED.current_period_end,
             trial_start = EXCLUDED.trial_start, trial_end = EXCLUDED.trial_end,
             cancelled_at = EXCLUDED.cancelled_at, cancel_at_period_end = EXCLUDED.cancel_at_period_end,
             stripe_price_id = EXCLUDED.stripe_price_id, stripe_status = EXCLUDED.stripe_status,
             stripe_customer_id = EXCLUDED.stripe_customer_id, stripe_event_at = EXCLUDED.stripe_event_at,
             stripe_status_rank = EXCLUDED.stripe_status_rank, ended_at = EXCLUDED.ended_at,
             grace_until = EXCLUDED.grace_until, updated_at = now()
         WHERE mingus_guard_allows(s.stripe_event_at, s.stripe_status_rank,
                                   EXCLUDED.stripe_event_at, EXCLUDED.stripe_status_rank, $20)
         RETURNING s.user_id",
    )
    .bind(plan.tier.as_str())
    .bind(plan.amount)
    .bind(&plan.currency)
    .bind(plan.cycle.as_str())
    .bind(status.local().as_str())
    .bind(period_start)
    .bind(period_end)
    .bind(trial_start)
    .bind(trial_end)
    .bind(sub.canceled_at())
    .bind(sub.cancel_at_period_end())
    .bind(sub_id)
    .bind(&plan.price_id)
    .bind(status.as_str())
    .bind(customer)
    .bind(a.event.created)
    .bind(status.rank())
    .bind(ended_at)
    .bind(grace_until)
    .bind(is_creation)
    .fetch_optional(&mut *a.conn)
    .await?;
    let Some(user_id) = written else {
        let known: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM subscriptions WHERE stripe_subscription_id = $1)",
        )
        .bind(sub_id)
        .fetch_one(&mut *a.conn)
        .await?;
        if known {
            tracing::debug!(subscription = sub_id, event = %a.event.id, "older than the stored state; not applied");
            return Ok(None);
        }
        return Err(not_yet(format!(
            "customer {customer} of subscription {sub_id} is not linked to a user yet"
        )));
    };
    a.access_changed(user_id);
    Ok(Some(Applied {
        user_id,
        status,
        tier: plan.tier.as_str(),
        ended_at,
    }))
}

/// `trial_will_end` (3 days before, or at once when a trial is shortened): applies the state, then
/// re-checks that the stored subscription is still trialing with a future trial end before queueing
/// the reminder (its dedupe key is shared with the trial sweep's reminder).
pub(super) async fn trial_will_end(a: &mut Apply<'_>) -> Result<(), JobError> {
    let event = a.event;
    let sub = SubscriptionView(&event.object);
    apply_state(a, sub).await?;
    let sub_id = sub.id()?;
    let still_trialing: Option<(Uuid, DateTime<Utc>, String)> = sqlx::query_as(
        "SELECT user_id, trial_end, plan_tier FROM subscriptions
         WHERE stripe_subscription_id = $1 AND stripe_status = 'trialing' AND status = 'trial' AND trial_end > $2",
    )
    .bind(sub_id)
    .bind(a.now)
    .fetch_optional(&mut *a.conn)
    .await?;
    if let Some((user_id, trial_end, tier)) = still_trialing {
        let mail = BillingEmail {
            user_id,
            template: templates::TRIAL_ENDING,
            data: json!({"subscription": sub_id, "tier": tier, "trial_end": trial_end}),
            dedupe_key: keys::trial_ending(sub_id, trial_end),
            scheduled_for: a.now,
        };
        a.queue_email(&mail).await?;
    }
    Ok(())
}
