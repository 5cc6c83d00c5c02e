//! The plan a checkout or a change asks for (`{tier, cycle}`), checked against the configuration, and
//! the Stripe subscription that grants access now.

use mingus_common::billing::{BillingCycle, Tier};
use serde::Deserialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::db_error;
use crate::error::ApiError;
use crate::state::AppState;

/// The body of `POST /v1/billing/checkout` and `/change`. Strings, so an unknown value gets our typed
/// 422 `invalid_plan` naming the field rather than a generic body error.
#[derive(Debug, Deserialize)]
pub struct PlanRequest {
    pub tier: String,
    pub cycle: String,
}

/// A plan that can be bought: its tier, cycle and configured Stripe price.
#[derive(Debug, Clone)]
pub(super) struct Wanted {
    pub tier: Tier,
    pub cycle: BillingCycle,
    pub price: String,
}

impl Wanted {
    /// `tier:cycle`, e.g. to keep Stripe keys of different plans apart.
    pub fn name(&self) -> String {
        format!("{}:{}", self.tier, self.cycle.as_str())
    }

    /// Upgrades and downgrades are decided by what the plan gives: a higher tier is an upgrade whatever
    /// the cycle; within a tier, annual (paid a year ahead) is above monthly.
    pub fn rank(tier: Tier, cycle: BillingCycle) -> (Tier, u8) {
        (tier, matches!(cycle, BillingCycle::Annual) as u8)
    }
}

/// The requested plan, known and with a configured price (`STRIPE_PRICES`), or a 422.
pub(super) fn wanted(state: &AppState, request: &PlanRequest) -> Result<Wanted, ApiError> {
    let tier: Tier = request.tier.parse().map_err(|_| {
        invalid(format!(
            "tier must be essentials, professional or executive, got {:?}",
            request.tier
        ))
    })?;
    let cycle = BillingCycle::from_name(&request.cycle).ok_or_else(|| {
        invalid(format!(
            "cycle must be monthly or annual, got {:?}",
            request.cycle
        ))
    })?;
    let price = state
        .config
        .stripe
        .price_of(tier, cycle)
        .ok_or_else(|| {
            ApiError::unprocessable(
                "plan_not_available",
                format!(
                    "the {tier} {} plan is not offered on this server (no price configured)",
                    cycle.as_str()
                ),
            )
        })?
        .to_owned();
    Ok(Wanted { tier, cycle, price })
}

fn invalid(message: String) -> ApiError {
    ApiError::unprocessable("invalid_plan", message)
}

/// The Stripe subscription that grants access now (the one the user sees), and its plan.
#[derive(Debug, Clone)]
pub(super) struct Current {
    pub subscription: String,
    pub tier: Tier,
    pub cycle: BillingCycle,
}

pub(super) async fn current(db: &PgPool, owner: Uuid) -> Result<Option<Current>, ApiError> {
    let row: Option<(String, String, String)> = sqlx::query_as(
        "SELECT s.stripe_subscription_id, s.plan_tier, s.billing_cycle
         FROM mingus_effective_subscription($1, now()) e
         JOIN subscriptions s ON s.id = e.id
         WHERE e.has_access AND s.stripe_subscription_id IS NOT NULL",
    )
    .bind(owner)
    .fetch_optional(db)
    .await
    .map_err(db_error)?;
    let Some((subscription, tier, cycle)) = row else {
        return Ok(None);
    };
    // The table's constraints allow only these names.
    let tier = tier
        .parse()
        .map_err(|_| ApiError::Internal(anyhow::anyhow!("subscription tier {tier:?}")))?;
    let cycle = BillingCycle::from_name(&cycle)
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("subscription cycle {cycle:?}")))?;
    Ok(Some(Current {
        subscription,
        tier,
        cycle,
    }))
}
