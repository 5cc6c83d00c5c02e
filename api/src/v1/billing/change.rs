//! `POST /v1/billing/change` `{tier, cycle}` → 202 `{subscription_id, action, tier, cycle,
//! effective_at, pending: true}`: the owner's Stripe subscription moves to another plan.
//!
//! - **Upgrade** (a higher tier, or annual instead of monthly within a tier): now, with proration — the
//!   difference is invoiced and charged at once (`proration_behavior=always_invoice`), and a declined
//!   card fails the change (`payment_behavior=error_if_incomplete`: Stripe's 402 → our 402
//!   `card_declined`, the plan unchanged). A downgrade scheduled before is released first, so it cannot
//!   undo the upgrade at the renewal.
//! - **Downgrade**: at the end of the period, through a subscription schedule (current price until the
//!   period ends, then the new one, then released). Chosen over an immediate `proration_behavior=none`
//!   swap, which would take the higher tier away at once from a user who paid for it until the renewal,
//!   and over a Stripe "pending update", which only exists for changes that charge now. A second
//!   downgrade before the renewal rewrites the same schedule.
//! - **Keeping the current plan** while a downgrade is scheduled cancels the downgrade: the schedule is
//!   released (the subscription renews on its plan, as Cashier's swap back to the current price does)
//!   → 200 `{action: "keep", effective_at: null, pending: false}`. With nothing scheduled there is
//!   nothing to change: 409 `same_plan`.
//! - **Refusals**: unknown plan → 422 `invalid_plan`; no configured price → 422 `plan_not_available`;
//!   no Stripe subscription granting access → 409 `no_active_subscription`.
//! - Stripe's current item, price and period are read from Stripe (`GET /v1/subscriptions/{id}`) just
//!   before the write; the local subscription changes only when the webhook arrives.

use std::cmp::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use mingus_common::stripe_api::billing::BillingApi;
use mingus_common::stripe_api::plan_calls::{Downgrade, LiveSubscription};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use super::pending::{self, Pending};
use super::plan::{self, Current, PlanRequest, Wanted};
use super::{BillingError, RequestKey, call_error, client, owner_only};
use crate::error::ApiError;
use crate::state::AppState;
use crate::v1::Principal;
use crate::v1::extract::JsonBody;

pub async fn change(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    JsonBody(body): JsonBody<PlanRequest>,
) -> Result<Response, BillingError> {
    let owner = owner_only(&principal)?;
    let request = RequestKey::from_headers(&headers)?;
    let wanted = plan::wanted(&state, &body)?;
    let Some(current) = plan::current(&state.db, owner).await? else {
        return Err(ApiError::conflict("no_active_subscription",
            "this account has no active Stripe subscription; start one with POST /v1/billing/checkout",
        )
        .into());
    };
    let from = Wanted::rank(current.tier, current.cycle);
    let to = Wanted::rank(wanted.tier, wanted.cycle);
    let api = client(&state)?;
    let live = live(&api, &current).await?;
    let change = Change {
        api: &api,
        db: &state.db,
        owner,
        request: &request,
        current: &current,
        live: &live,
        wanted: &wanted,
    };
    let (action, object, effective_at) = match to.cmp(&from) {
        Ordering::Greater => change.upgrade().await?,
        Ordering::Less => change.downgrade().await?,
        Ordering::Equal => return change.keep().await,
    };
    let record = Pending {
        owner,
        action,
        plan: &wanted,
        stripe_object_id: &object,
        stripe_subscription_id: Some(&current.subscription),
        effective_at,
        expires_at: None,
    };
    pending::record(&state.db, &record).await;
    tracing::info!(user_id = %owner, subscription = %current.subscription, action, plan = %wanted.name(),
        "plan change sent to Stripe");
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "subscription_id": current.subscription,
            "action": action,
            "tier": wanted.tier.as_str(),
            "cycle": wanted.cycle.as_str(),
            "effective_at": effective_at,
            "pending": true,
        })),
    )
        .into_response())
}

/// Stripe's subscription as the change needs it (read just before the write).
async fn live(api: &BillingApi, current: &Current) -> Result<LiveSubscription, BillingError> {
    let live = api
        .subscription(&current.subscription)
        .await
        .map_err(call_error)?;
    LiveSubscription::of(&live).ok_or_else(|| {
        tracing::warn!(subscription = %current.subscription, "Stripe's subscription has no item, price or period");
        BillingError::Unavailable("the payment provider gave an incomplete answer; retry in a moment")
    })
}

/// One change being made: what it needs from the request and from Stripe.
struct Change<'a> {
    api: &'a BillingApi,
    db: &'a PgPool,
    owner: Uuid,
    request: &'a RequestKey,
    current: &'a Current,
    live: &'a LiveSubscription,
    wanted: &'a Wanted,
}

/// The action, the Stripe object it changed and when it takes effect (`None`: now).
type Done = (&'static str, String, Option<DateTime<Utc>>);

impl Change<'_> {
    fn key(&self, action: &str) -> String {
        self.request.stripe(action, self.owner, &self.wanted.name())
    }

    async fn upgrade(&self) -> Result<Done, BillingError> {
        if let Some(schedule) = &self.live.schedule {
            self.api
                .release_schedule(schedule, &self.key("release"))
                .await
                .map_err(call_error)?;
            // The scheduled downgrade is gone at Stripe even if the upgrade below is refused.
            pending::supersede(self.db, self.owner, schedule).await;
        }
        let subscription = &self.current.subscription;
        self.api
            .upgrade(
                subscription,
                &self.live.item,
                &self.wanted.price,
                &self.key("upgrade"),
            )
            .await
            .map_err(call_error)?;
        Ok(("upgrade", subscription.clone(), None))
    }

    /// The plan the subscription has: releases a scheduled downgrade, or refuses (`same_plan`).
    async fn keep(&self) -> Result<Response, BillingError> {
        let Some(schedule) = &self.live.schedule else {
            return Err(ApiError::conflict(
                "same_plan",
                format!(
                    "the subscription is already on the {} {} plan and no change is scheduled",
                    self.current.tier,
                    self.current.cycle.as_str()
                ),
            )
            .into());
        };
        self.api
            .release_schedule(schedule, &self.key("keep"))
            .await
            .map_err(call_error)?;
        pending::supersede(self.db, self.owner, schedule).await;
        tracing::info!(user_id = %self.owner, subscription = %self.current.subscription, %schedule,
            "scheduled plan change cancelled: the subscription keeps its plan");
        Ok((
            StatusCode::OK,
            Json(json!({
                "subscription_id": self.current.subscription,
                "action": "keep",
                "tier": self.wanted.tier.as_str(),
                "cycle": self.wanted.cycle.as_str(),
                "effective_at": null,
                "pending": false,
            })),
        )
            .into_response())
    }

    async fn downgrade(&self) -> Result<Done, BillingError> {
        let schedule = match &self.live.schedule {
            Some(schedule) => schedule.clone(),
            None => {
                let created = self
                    .api
                    .schedule_from(&self.current.subscription, &self.key("schedule"))
                    .await
                    .map_err(call_error)?;
                created["id"]
                    .as_str()
                    .map(str::to_owned)
                    .ok_or(BillingError::Unavailable(
                        "the payment provider gave an incomplete answer; retry in a moment",
                    ))?
            }
        };
        let downgrade = Downgrade {
            current_price: &self.live.price,
            new_price: &self.wanted.price,
            period_start: self.live.period_start,
            period_end: self.live.period_end,
            trial_end: self.live.trial_end,
        };
        self.api
            .schedule_downgrade(&schedule, &downgrade, &self.key("downgrade"))
            .await
            .map_err(call_error)?;
        let effective_at = DateTime::from_timestamp(self.live.period_end, 0);
        Ok(("downgrade", schedule, effective_at))
    }
}
