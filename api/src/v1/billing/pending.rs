//! Plan requests Stripe accepted and whose webhook has not been applied yet (`billing_pending_actions`,
//! migration `…50`), for display: `GET /v1/billing` → `{pending: [...]}`.
//!
//! - Written **after** Stripe answered, in one short statement (no transaction spans the call). A newer
//!   request of the account supersedes the older open ones; the same request again (a client's retry,
//!   which Stripe answers with the first result) is not recorded twice.
//! - **Settled in the database** by the trigger on `subscriptions` when the subscription row has the
//!   plan asked for (in practice the `customer.subscription.*` webhook's upsert) or has ended. Until
//!   then the frontend shows e.g. "upgrade to Executive pending" or "Essentials from 1 March".
//! - A checkout the user abandons is shown until its session expires (Stripe's `expires_at`).
//! - If the record cannot be written, the request still succeeded at Stripe: the answer says so and the
//!   failure is logged (the display is a convenience, the webhook remains the truth).

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use super::plan::Wanted;
use super::{BillingError, db_error, owner_only};
use crate::state::AppState;
use crate::v1::Principal;

/// What Stripe accepted.
#[derive(Debug, Clone)]
pub(super) struct Pending<'a> {
    pub owner: Uuid,
    /// `checkout`, `upgrade` or `downgrade`.
    pub action: &'static str,
    pub plan: &'a Wanted,
    pub stripe_object_id: &'a str,
    pub stripe_subscription_id: Option<&'a str>,
    pub effective_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Records `pending`; a failure is logged, not returned (see the module documentation).
pub(super) async fn record(db: &PgPool, pending: &Pending<'_>) {
    let written = sqlx::query(
        "WITH superseded AS (
             UPDATE billing_pending_actions SET settled_at = now(), outcome = 'superseded'
             WHERE user_id = $1 AND settled_at IS NULL
               AND (action, tier, cycle, stripe_object_id) IS DISTINCT FROM ($2, $3, $4, $5))
         INSERT INTO billing_pending_actions
             (user_id, action, tier, cycle, stripe_object_id, stripe_subscription_id, effective_at, expires_at)
         SELECT $1, $2, $3, $4, $5, $6, $7, $8
         WHERE NOT EXISTS (
             SELECT 1 FROM billing_pending_actions
             WHERE user_id = $1 AND settled_at IS NULL
               AND (action, tier, cycle, stripe_object_id) = ($2, $3, $4, $5))",
    )
    .bind(pending.owner)
    .bind(pending.action)
    .bind(pending.plan.tier.as_str())
    .bind(pending.plan.cycle.as_str())
    .bind(pending.stripe_object_id)
    .bind(pending.stripe_subscription_id)
    .bind(pending.effective_at)
    .bind(pending.expires_at)
    .execute(db)
    .await;
    if let Err(err) = written {
        tracing::error!(user_id = %pending.owner, action = pending.action, error = %err,
            "Stripe accepted the plan request but it could not be recorded as pending");
    }
}

/// The open records of a Stripe object that no longer stands (a released schedule); logged on failure
/// like [`record`].
pub(super) async fn supersede(db: &PgPool, owner: Uuid, stripe_object_id: &str) {
    let written = sqlx::query(
        "UPDATE billing_pending_actions SET settled_at = now(), outcome = 'superseded'
         WHERE user_id = $1 AND stripe_object_id = $2 AND settled_at IS NULL",
    )
    .bind(owner)
    .bind(stripe_object_id)
    .execute(db)
    .await;
    if let Err(err) = written {
        tracing::error!(user_id = %owner, stripe_object_id, error = %err,
            "a released schedule's pending downgrade could not be marked superseded");
    }
}

/// `GET /v1/billing` → 200 `{pending: [{action, tier, cycle, requested_at, effective_at}]}`, oldest
/// first: what the owner asked for and Stripe has not confirmed through a webhook yet.
pub async fn show(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Response, BillingError> {
    let owner = owner_only(&principal)?;
    type Row = (
        String,
        String,
        String,
        String,
        DateTime<Utc>,
        Option<DateTime<Utc>>,
    );
    let rows: Vec<Row> =
        sqlx::query_as(
            "SELECT action, tier, cycle, stripe_object_id, requested_at, effective_at
             FROM billing_pending_actions
             WHERE user_id = $1 AND settled_at IS NULL AND (expires_at IS NULL OR expires_at > now())
             ORDER BY requested_at, id",
        )
        .bind(owner)
        .fetch_all(&state.db)
        .await
        .map_err(db_error)?;
    let pending: Vec<_> = rows
        .into_iter()
        .map(
            |(action, tier, cycle, object, requested_at, effective_at)| {
                json!({"action": action, "tier": tier, "cycle": cycle, "stripe_object_id": object,
                   "requested_at": requested_at, "effective_at": effective_at})
            },
        )
        .collect();
    Ok(Json(json!({ "pending": pending })).into_response())
}
