//! `customer.subscription.*`: the subscription upsert behind the ordering guard, the trial-ending
//! reminder and the cancellation e-mail. Either write path also settles the owner's pending plan
//! requests (`billing_pending_actions`, shown by `GET /v1/billing`): a trigger on `subscriptions`
//! (migration `…50`) does it in the same transaction.

use chrono::{DateTime, Utc};
use mingus_common::billing::email::{BillingEmail, keys, templates};
use mingus_common::billing::objects::SubscriptionView;
use mingus_common::billing::{Event, Plan, StripeStatus, resolve_plan};
use mingus_common::config::stripe::StripeConfig;
use serde_json::json;
use sqlx::postgres::PgArguments;
use sqlx::query::QueryAs;
use sqlx::{PgConnection, Postgres};
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
    let Some(applied) = apply_state(a).await? else {
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

/// An event's subscription state, ready for `mingus_upsert_subscription_state` (migration
/// `…17_subscription_state_apply`), which decides the ordering guard and writes under the row lock.
pub(super) struct State<'a> {
    sub_id: &'a str,
    customer: &'a str,
    status: StripeStatus,
    plan: Plan,
    period: (DateTime<Utc>, DateTime<Utc>),
    trial: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
    canceled_at: Option<DateTime<Utc>>,
    cancel_at_period_end: bool,
    event_at: DateTime<Utc>,
    ended_at: Option<DateTime<Utc>>,
    grace_until: Option<DateTime<Utc>>,
    is_creation: bool,
    started_at: Option<DateTime<Utc>>,
    event_id: &'a str,
}

impl<'a> State<'a> {
    /// The state a `customer.subscription.*` event carries (`deleted` always ends the subscription).
    pub fn of(event: &'a Event, stripe: &StripeConfig) -> Result<Self, JobError> {
        let sub = SubscriptionView(&event.object);
        let mut status = sub.status()?;
        if event.kind == "customer.subscription.deleted" && !status.is_terminal() {
            status = StripeStatus::Canceled;
        }
        let period = sub.period()?;
        let grace =
            chrono::Duration::from_std(stripe.grace_period).unwrap_or(chrono::Duration::MAX);
        Ok(State {
            sub_id: sub.id()?,
            customer: sub.customer()?,
            status,
            plan: resolve_plan(sub.price()?, stripe)?,
            period,
            trial: sub.trial(),
            canceled_at: sub.canceled_at(),
            cancel_at_period_end: sub.cancel_at_period_end(),
            event_at: event.created,
            // The unpaid period began at the period start (Stripe advances the period at renewal).
            grace_until: (status == StripeStatus::PastDue)
                .then(|| period.0.checked_add_signed(grace))
                .flatten(),
            // Only a terminal state has ended; the payload's ended_at of a live subscription is not an end.
            ended_at: status
                .is_terminal()
                .then(|| sub.ended_at().unwrap_or(event.created)),
            is_creation: event.kind == "customer.subscription.created",
            started_at: sub.started_at(),
            event_id: &event.id,
        })
    }

    /// Binds the twenty arguments both functions share, in the order of `mingus_upsert_subscription_state`
    /// (each caller binds what follows them).
    fn bind<'q, O>(
        &'q self,
        query: QueryAs<'q, Postgres, O, PgArguments>,
    ) -> QueryAs<'q, Postgres, O, PgArguments> {
        query
            .bind(self.plan.tier.as_str())
            .bind(self.plan.amount)
            .bind(&self.plan.currency)
            .bind(self.plan.cycle.as_str())
            .bind(self.status.local().as_str())
            .bind(self.period.0)
            .bind(self.period.1)
            .bind(self.trial.0)
            .bind(self.trial.1)
            .bind(self.canceled_at)
            .bind(self.cancel_at_period_end)
            .bind(self.sub_id)
            .bind(&self.plan.price_id)
            .bind(self.status.as_str())
            .bind(self.customer)
            .bind(self.event_at)
            .bind(self.status.rank())
            .bind(self.ended_at)
            .bind(self.grace_until)
            .bind(self.is_creation)
    }

    /// Whether applying this state needs the worker's transaction: a cancellation queues an e-mail.
    /// Every other state is applied in one call ([`apply_in_one_call`]).
    pub fn needs_transaction(&self) -> bool {
        self.status == StripeStatus::Canceled
    }

    pub fn subscription_id(&self) -> &'a str {
        self.sub_id
    }
}

/// The decision of a same-second pair the payloads could not order (see migration `…21`).
pub(super) const UNDECIDED: &str = "same_second_processing_order";

/// What [`apply_in_one_call`] did.
pub(super) enum OneCall {
    /// Applied (with the owner whose access was recomputed) or older than the stored state (`None`),
    /// and how it was ordered; the event is marked `processed` and the outbox row completed, committed.
    Processed(Option<Uuid>, Option<String>),
    /// No subscription row and no user for the customer yet: nothing written.
    Unlinked,
    /// The event reached a final status meanwhile: the call rolled back, theirs stands.
    AlreadyFinal,
}

/// Applies a state event that needs nothing else in one call of `mingus_apply_subscription_state`, its
/// own transaction: upsert, access recompute, outbox completion and event mark.
pub(super) async fn apply_in_one_call(
    conn: &mut PgConnection,
    state: &State<'_>,
    event_id: &str,
    outbox_job: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<OneCall, sqlx::Error> {
    let query = sqlx::query_as(
        "SELECT out_outcome, out_user_id, out_decision FROM mingus_apply_subscription_state($1, $2, $3,
             $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24)",
    )
    .bind(event_id)
    .bind(outbox_job)
    .bind(now);
    let result: Result<(String, Option<Uuid>, Option<String>), sqlx::Error> = state
        .bind(query)
        .bind(state.started_at)
        .fetch_one(conn)
        .await;
    match result {
        Ok((outcome, _, _)) if outcome == "unlinked" => Ok(OneCall::Unlinked),
        Ok((_, user_id, decision)) => Ok(OneCall::Processed(user_id, decision)),
        Err(sqlx::Error::Database(err)) if err.code().as_deref() == Some(ALREADY_FINAL) => {
            Ok(OneCall::AlreadyFinal)
        }
        Err(err) => Err(err),
    }
}

/// The SQLSTATE `mingus_apply_subscription_state` raises when the event is already final.
const ALREADY_FINAL: &str = "MGFIN";

/// The retryable error of a state whose customer is not linked to a user yet.
pub(super) fn unlinked(state: &State<'_>) -> JobError {
    not_yet(
        super::waits::customer(state.customer),
        format!(
            "customer {} of subscription {} is not linked to a user yet",
            state.customer, state.sub_id
        ),
    )
}

/// Applies the subscription state in the worker's transaction unless the stored one is newer (see
/// `billing::guard`); returns what was applied, or `None` when the guard kept the stored state.
pub(super) async fn apply_state(a: &mut Apply<'_>) -> Result<Option<Applied>, JobError> {
    let state = State::of(a.event, a.stripe)?;
    let query = sqlx::query_as(
        "SELECT out_user_id, out_decision FROM mingus_upsert_subscription_state($1, $2, $3, $4, $5, $6, $7,
             $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)",
    );
    let (written, decision): (Option<Uuid>, Option<String>) = state
        .bind(query)
        .bind(state.event_id)
        .bind(state.started_at)
        .fetch_one(&mut *a.conn)
        .await?;
    a.order_decision = decision;
    let Some(user_id) = written else {
        let known: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM subscriptions WHERE stripe_subscription_id = $1)",
        )
        .bind(state.sub_id)
        .fetch_one(&mut *a.conn)
        .await?;
        if known {
            tracing::debug!(subscription = state.sub_id, event = %a.event.id, "older than the stored state; not applied");
            return Ok(None);
        }
        return Err(unlinked(&state));
    };
    a.access_changed(user_id);
    Ok(Some(Applied {
        user_id,
        status: state.status,
        tier: state.plan.tier.as_str(),
        ended_at: state.ended_at,
    }))
}

/// `trial_will_end` (3 days before, or at once when a trial is shortened): applies the state, then
/// re-checks that the stored subscription is still trialing with a future trial end before queueing
/// the reminder (its dedupe key is shared with the trial sweep's reminder).
pub(super) async fn trial_will_end(a: &mut Apply<'_>) -> Result<(), JobError> {
    let event = a.event;
    let sub = SubscriptionView(&event.object);
    apply_state(a).await?;
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
