//! Extending a local trial: a subscription with status `trial` and no Stripe subscription (those end by
//! the trial sweep at `trial_end`). A Stripe-managed trial is refused: Stripe owns its end, and a local
//! change would be overwritten by the next event.
//!
//! Idempotent by a natural key: the request names the trial end the operator saw
//! (`expected_trial_end`). The trial is extended only from that end; a repeat finds it already at
//! `expected + days` and changes nothing; any other end means someone else changed it (409
//! `trial_changed`: reload and decide again).

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::{Extension, Json};
use chrono::{DateTime, Duration, SubsecRound, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Change, begin, finish};
use crate::error::ApiError;
use crate::ops::actions::CUSTOMER_TRIAL_EXTEND;
use crate::ops::actor::Actor;
use crate::ops::{db_error, json as json_body};
use crate::state::AppState;

/// The most days one extension adds.
const MAX_DAYS: i64 = 90;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtendRequest {
    /// Which subscription; optional when the customer has one trial.
    subscription_id: Option<Uuid>,
    days: i64,
    /// The trial end the operator saw (RFC 3339), the request's idempotency key.
    expected_trial_end: String,
}

#[derive(Debug, sqlx::FromRow)]
struct Trial {
    id: Uuid,
    status: String,
    trial_end: Option<DateTime<Utc>>,
    current_period_end: DateTime<Utc>,
    stripe_subscription_id: Option<String>,
}

/// `POST /ops/customers/{id}/trial/extend` `{"days", "expected_trial_end", "subscription_id"?}`.
pub async fn extend(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(raw): Path<String>,
    body: Result<Json<ExtendRequest>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let request = json_body(body)?;
    if !(1..=MAX_DAYS).contains(&request.days) {
        return Err(ApiError::bad_request(
            "invalid_days",
            format!("days must be an integer from 1 to {MAX_DAYS}"),
        ));
    }
    let expected = DateTime::parse_from_rfc3339(request.expected_trial_end.trim())
        .map_err(|_| {
            ApiError::bad_request(
                "invalid_expected_trial_end",
                "expected_trial_end must be the trial's current end as an RFC 3339 time",
            )
        })?
        .with_timezone(&Utc)
        .trunc_subsecs(6);
    let (user, mut tx) = begin(&state, &raw).await?;
    // The named subscription, else the customer's trials (newest first); locked for the change.
    let trials: Vec<Trial> = sqlx::query_as(
        "SELECT id, status::text AS status, trial_end, current_period_end,
                stripe_subscription_id::text AS stripe_subscription_id
         FROM subscriptions
         WHERE user_id = $1 AND ($2::uuid IS NULL AND status = 'trial' OR id = $2)
         ORDER BY created_at DESC LIMIT 2 FOR UPDATE",
    )
    .bind(user)
    .bind(request.subscription_id)
    .fetch_all(&mut *tx)
    .await
    .map_err(db_error)?;
    let trial = match (request.subscription_id, trials.as_slice()) {
        (Some(id), []) => {
            return Err(ApiError::client(
                axum::http::StatusCode::NOT_FOUND,
                "unknown_subscription",
                format!("the customer has no subscription {id}"),
            ));
        }
        (None, []) => {
            return Err(ApiError::conflict(
                "no_trial",
                "the customer is not in a trial",
            ));
        }
        (None, [_, _, ..]) => {
            return Err(ApiError::bad_request(
                "ambiguous_trial",
                "the customer has several trials: name one with subscription_id",
            ));
        }
        (_, [trial, ..]) => trial,
    };
    if trial.status != "trial" {
        return Err(ApiError::conflict(
            "not_in_trial",
            format!(
                "subscription {} is {}, not in a trial",
                trial.id, trial.status
            ),
        ));
    }
    if let Some(stripe) = &trial.stripe_subscription_id {
        return Err(ApiError::conflict(
            "stripe_managed_trial",
            format!("the trial of {stripe} is managed by Stripe: extend it in Stripe"),
        ));
    }
    // A trial without its own end runs to the period's end (`mingus_effective_subscription`).
    let end = trial.trial_end.unwrap_or(trial.current_period_end);
    let extended = expected + Duration::days(request.days);
    let before = json!({ "subscription_id": trial.id, "trial_end": end });
    let changed = if end == expected {
        sqlx::query(
            "UPDATE subscriptions
             SET trial_end = $2, current_period_end = greatest(current_period_end, $2), updated_at = now()
             WHERE id = $1",
        )
        .bind(trial.id)
        .bind(extended)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        // The period is stretched to cover the trial, so the sweep that ends periods
        // (`cancel_at_period_end`) does not end it first; the subscription's grants expire with the trial.
        mingus_common::billing::access::recompute(&mut tx, user, Utc::now())
            .await
            .map_err(db_error)?;
        true
    } else if end == extended {
        false
    } else {
        return Err(ApiError::conflict(
            "trial_changed",
            format!(
                "the trial ends at {end}, not at the expected {expected}: reload and decide again"
            ),
        ));
    };
    let change = Change {
        changed,
        before,
        after: json!({ "subscription_id": trial.id, "trial_end": extended, "days": request.days }),
    };
    finish(&state, &actor, CUSTOMER_TRIAL_EXTEND, user, tx, change).await
}
