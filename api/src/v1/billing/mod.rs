//! Plans through Stripe (issue 21, part C): `POST /v1/billing/portal` (a Billing Portal session),
//! `POST /v1/billing/cancel` (at period end) and `POST /v1/billing/resume` here; `POST
//! /v1/billing/checkout` ([`checkout`]), `POST /v1/billing/change` ([`change`]) and `GET /v1/billing`
//! with the requests Stripe accepted whose webhook has not been applied yet ([`pending`]).
//!
//! - **Who**: the account owner, with a user token — not an API key (403 `user_session_required`), not
//!   a team member acting for the owner (403 `account_owner_required`).
//! - **Local state changes only through the webhooks.** These routes ask Stripe and answer 202 with
//!   `pending: true`; the `customer.subscription.updated` event that follows changes `subscriptions` (and
//!   so the entitlements) through the usual guarded processing.
//! - **Outside any transaction**: the subscription or customer is read first, the connection released,
//!   then Stripe is called ([`mingus_common::stripe_api::billing`]: timeout, retries only where Stripe
//!   says it is safe, always with the same idempotency key).
//! - **Idempotency**: the Stripe key is derived from the action, the account and our request's
//!   `Idempotency-Key` (a fresh one per request without it), so a client's retry never acts twice.
//! - **Stripe's errors** become ours: a declined card → 402 `card_declined` (with `decline_code`);
//!   another refusal → 422 `billing_request_refused` (with Stripe's message); rate limited, a 5xx, a
//!   timeout or no connection → 503 `billing_unavailable` with `Retry-After`; no `STRIPE_API_KEY` → the
//!   same 503.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mingus_common::stripe_api::billing::{BillingApi, CallError};
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{Principal, db_error};

pub mod change;
pub mod checkout;
pub mod pending;
mod plan;
use crate::error::{ApiError, RETRY_AFTER_SECS};
use crate::state::AppState;

/// A billing route's error: one of ours, or Stripe (or its configuration) unavailable — 503
/// `billing_unavailable` with `Retry-After`.
#[derive(Debug)]
pub enum BillingError {
    Api(ApiError),
    Unavailable(&'static str),
}

impl From<ApiError> for BillingError {
    fn from(err: ApiError) -> Self {
        BillingError::Api(err)
    }
}

impl IntoResponse for BillingError {
    fn into_response(self) -> Response {
        match self {
            BillingError::Api(err) => err.into_response(),
            BillingError::Unavailable(message) => {
                let body = json!({"error": {"code": "billing_unavailable", "message": message}});
                let mut response = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
                response
            }
        }
    }
}

/// Where the portal (and Checkout) sends the user back to, under `MINGUS_APP_URL`.
const RETURN_PATH: &str = "/settings/billing";

/// `MINGUS_APP_URL` + `path_and_query`.
fn app_url(state: &AppState, path_and_query: &str) -> String {
    format!(
        "{}{path_and_query}",
        state.config.email.app_url.trim_end_matches('/')
    )
}

/// `POST /v1/billing/portal` → 200 `{url}`: a Billing Portal session of the owner's Stripe customer.
pub async fn portal(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
) -> Result<Response, BillingError> {
    let owner = owner_only(&principal)?;
    let key = stripe_key("portal", owner, &headers)?;
    let customer: Option<Option<String>> =
        sqlx::query_scalar("SELECT stripe_customer_id FROM users WHERE id = $1")
            .bind(owner)
            .fetch_optional(&state.db)
            .await
            .map_err(db_error)?;
    let Some(customer) = customer.flatten() else {
        return Err(ApiError::conflict(
            "no_billing_account",
            "this account has no Stripe customer yet; start a plan first",
        )
        .into());
    };
    let return_url = app_url(&state, RETURN_PATH);
    let session = client(&state)?
        .portal_session(&customer, &return_url, &key)
        .await
        .map_err(call_error)?;
    let url = session["url"].as_str().unwrap_or_default();
    Ok(Json(json!({ "url": url })).into_response())
}

/// `POST /v1/billing/cancel` → 202: the subscription ends at the end of its period.
pub async fn cancel(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
) -> Result<Response, BillingError> {
    set_cancel(state, principal, headers, true).await
}

/// `POST /v1/billing/resume` → 202: a subscription set to cancel at period end goes on.
pub async fn resume(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
) -> Result<Response, BillingError> {
    set_cancel(state, principal, headers, false).await
}

async fn set_cancel(
    state: AppState,
    principal: Principal,
    headers: HeaderMap,
    cancel: bool,
) -> Result<Response, BillingError> {
    let owner = owner_only(&principal)?;
    let action = if cancel { "cancel" } else { "resume" };
    let key = stripe_key(action, owner, &headers)?;
    // The subscription that grants access now (the one the user sees), if it is Stripe's.
    let subscription: Option<String> = sqlx::query_scalar(
        "SELECT s.stripe_subscription_id FROM mingus_effective_subscription($1, now()) e
         JOIN subscriptions s ON s.id = e.id
         WHERE e.has_access AND s.stripe_subscription_id IS NOT NULL",
    )
    .bind(owner)
    .fetch_optional(&state.db)
    .await
    .map_err(db_error)?;
    let Some(subscription) = subscription else {
        return Err(ApiError::conflict(
            "no_active_subscription",
            "this account has no active Stripe subscription",
        )
        .into());
    };
    let updated = client(&state)?
        .set_cancel_at_period_end(&subscription, cancel, &key)
        .await
        .map_err(call_error)?;
    tracing::info!(user_id = %owner, %subscription, action, "plan change sent to Stripe");
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "subscription_id": subscription,
            "cancel_at_period_end": updated["cancel_at_period_end"].as_bool().unwrap_or(cancel),
            "pending": true,
        })),
    )
        .into_response())
}

/// The account owner, acting for themself with a user token.
fn owner_only(principal: &Principal) -> Result<Uuid, ApiError> {
    principal.require_user_session()?;
    if principal.acting_for.is_some() {
        return Err(ApiError::forbidden(
            "account_owner_required",
            "only the account owner changes its plan",
        ));
    }
    Ok(principal.user_id)
}

/// Stripe's idempotency key for `action` on `owner`: from our request's `Idempotency-Key` when sent
/// (hashed with the account and action, so keys of different accounts or actions never meet at
/// Stripe), else a fresh one.
fn stripe_key(action: &str, owner: Uuid, headers: &HeaderMap) -> Result<String, ApiError> {
    Ok(RequestKey::from_headers(headers)?.stripe(action, owner, ""))
}

/// Our request's `Idempotency-Key` (a fresh one without it), from which the Stripe keys of every call
/// the request makes are derived.
struct RequestKey(String);

impl RequestKey {
    fn from_headers(headers: &HeaderMap) -> Result<Self, ApiError> {
        let ours = super::reports::create::idempotency_key(headers)?
            .unwrap_or_else(|| Uuid::new_v4().to_string());
        Ok(RequestKey(ours))
    }

    /// `mingus-<action>-<sha256(owner:action:our key[:detail])>`. `detail` (e.g. the plan asked for)
    /// keeps a key reused for another plan from meeting Stripe's "same key, other parameters" refusal.
    fn stripe(&self, action: &str, owner: Uuid, detail: &str) -> String {
        let ours = &self.0;
        let input = if detail.is_empty() {
            format!("{owner}:{action}:{ours}")
        } else {
            format!("{owner}:{action}:{ours}:{detail}")
        };
        let digest = Sha256::digest(input.as_bytes());
        format!("mingus-{action}-{}", hex::encode(digest))
    }
}

fn client(state: &AppState) -> Result<BillingApi, BillingError> {
    BillingApi::from_config(&state.config).map_err(|err| {
        tracing::warn!(error = %err, "billing routes need STRIPE_API_KEY");
        BillingError::Unavailable("billing is not configured on this server")
    })
}

/// Stripe's refusal as our typed error.
fn call_error(err: CallError) -> BillingError {
    match err {
        CallError::CardDeclined { decline_code, .. } => ApiError::client(
            StatusCode::PAYMENT_REQUIRED,
            "card_declined",
            format!(
                "the card was declined ({}); update the payment method in the billing portal",
                decline_code.as_deref().unwrap_or("no reason given")
            ),
        )
        .into(),
        CallError::Refused { message, .. } => ApiError::unprocessable(
            "billing_request_refused",
            format!("Stripe refused the request: {message}"),
        )
        .into(),
        CallError::Unavailable(reason) => {
            tracing::warn!(%reason, "Stripe unavailable");
            BillingError::Unavailable("the payment provider is unavailable; retry in a moment")
        }
    }
}
