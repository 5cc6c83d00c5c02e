//! `POST /v1/billing/checkout` `{tier, cycle}` → 200 `{url, session_id}`: a Stripe Checkout Session
//! for a first subscription of the account owner (Cashier's `newSubscription(...)->checkout()`).
//!
//! - **Refusals first**, before Stripe is called: an unknown tier or cycle → 422 `invalid_plan`; a plan
//!   without a configured price (`STRIPE_PRICES`) → 422 `plan_not_available`; a Stripe subscription
//!   already granting access → 409 `subscription_exists` (a plan is changed with `/change`).
//! - **The customer**: `users.stripe_customer_id` when set, else created once: `POST /v1/customers`
//!   with an idempotency key derived from the user (and e-mail) alone, so two concurrent first
//!   checkouts get the same customer from Stripe; stored with a guarded `UPDATE … WHERE
//!   stripe_customer_id IS NULL`, and if another writer stored one first (the other request, or a
//!   `checkout.session.completed` webhook), that one is used.
//! - **Trial**: the tier's `STRIPE_TRIAL_DAYS`, only for a user who never had a Stripe subscription nor
//!   a trial (as Cashier and Pay leave it to the app: no second trial for a returning subscriber).
//! - `client_reference_id` (and `metadata.user_id` on the session and the subscription) name our user;
//!   success and cancel URLs lead back to `MINGUS_APP_URL/settings/billing`.
//! - Local state changes when the webhooks arrive; the session is recorded as pending for display.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use chrono::DateTime;
use mingus_common::stripe_api::billing::BillingApi;
use mingus_common::stripe_api::plan_calls::NewCheckout;
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::pending::{self, Pending};
use super::plan::{self, PlanRequest};
use super::{
    BillingError, RETURN_PATH, RequestKey, app_url, call_error, client, db_error, owner_only,
};
use crate::error::ApiError;
use crate::state::AppState;
use crate::v1::Principal;
use crate::v1::extract::JsonBody;

/// What the checkout needs to know of the owner.
struct Account {
    customer: Option<String>,
    email: String,
    subscribed: bool,
    /// A Stripe subscription (of any status) or a trial before: no trial again.
    had_subscription: bool,
}

pub async fn checkout(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    JsonBody(body): JsonBody<PlanRequest>,
) -> Result<Response, BillingError> {
    let owner = owner_only(&principal)?;
    let request = RequestKey::from_headers(&headers)?;
    let wanted = plan::wanted(&state, &body)?;
    let account = account(&state, owner).await?;
    if account.subscribed {
        return Err(ApiError::conflict("subscription_exists",
            "this account already has an active subscription; change it with POST /v1/billing/change",
        )
        .into());
    }
    let api = client(&state)?;
    let customer = customer(&state, &api, owner, &account).await?;
    let trial_days = (!account.had_subscription)
        .then(|| state.config.stripe.trial_days.get(&wanted.tier).copied())
        .flatten()
        .filter(|days| *days > 0);
    let user_id = owner.to_string();
    // Stripe puts the session id in place of `{CHECKOUT_SESSION_ID}`.
    let success_url = app_url(
        &state,
        &format!("{RETURN_PATH}?checkout=success&session_id={{CHECKOUT_SESSION_ID}}"),
    );
    let cancel_url = app_url(&state, &format!("{RETURN_PATH}?checkout=cancelled"));
    let new = NewCheckout {
        customer: &customer,
        user_id: &user_id,
        price: &wanted.price,
        trial_days,
        success_url: &success_url,
        cancel_url: &cancel_url,
    };
    let key = request.stripe("checkout", owner, &wanted.name());
    let session = api.checkout_session(&new, &key).await.map_err(call_error)?;
    let (Some(session_id), Some(url)) = (session["id"].as_str(), session["url"].as_str()) else {
        tracing::warn!(user_id = %owner, "Checkout Session answer without id or url");
        return Err(BillingError::Unavailable(
            "the payment provider gave an incomplete answer; retry in a moment",
        ));
    };
    let expires_at = session["expires_at"]
        .as_i64()
        .and_then(|t| DateTime::from_timestamp(t, 0));
    let record = Pending {
        owner,
        action: "checkout",
        plan: &wanted,
        stripe_object_id: session_id,
        stripe_subscription_id: None,
        effective_at: None,
        expires_at,
    };
    pending::record(&state.db, &record).await;
    tracing::info!(user_id = %owner, session_id, plan = %wanted.name(), ?trial_days, "checkout session created");
    Ok(Json(json!({ "url": url, "session_id": session_id })).into_response())
}

async fn account(state: &AppState, owner: Uuid) -> Result<Account, ApiError> {
    let (customer, email, subscribed, had_subscription): (Option<String>, String, bool, bool) =
        sqlx::query_as(
            "SELECT u.stripe_customer_id, u.email,
                    EXISTS (SELECT 1 FROM mingus_effective_subscription(u.id, now()) e
                            JOIN subscriptions s ON s.id = e.id
                            WHERE e.has_access AND s.stripe_subscription_id IS NOT NULL),
                    EXISTS (SELECT 1 FROM subscriptions s
                            WHERE s.user_id = u.id
                              AND (s.stripe_subscription_id IS NOT NULL OR s.trial_start IS NOT NULL))
             FROM users u WHERE u.id = $1",
        )
        .bind(owner)
        .fetch_one(&state.db)
        .await
        .map_err(db_error)?;
    Ok(Account {
        customer,
        email,
        subscribed,
        had_subscription,
    })
}

/// The owner's Stripe customer: the stored one, or one created now (see the module documentation).
async fn customer(
    state: &AppState,
    api: &BillingApi,
    owner: Uuid,
    account: &Account,
) -> Result<String, BillingError> {
    if let Some(customer) = &account.customer {
        return Ok(customer.clone());
    }
    // Not derived from the request's key: every first checkout of this user shares it. The e-mail is in
    // it because Stripe refuses a key replayed with other parameters.
    let digest = Sha256::digest(format!("{owner}:customer:{}", account.email).as_bytes());
    let key = format!("mingus-customer-{}", hex::encode(digest));
    let created = api
        .create_customer(&owner.to_string(), Some(&account.email), &key)
        .await
        .map_err(call_error)?;
    let Some(created) = created["id"].as_str() else {
        tracing::warn!(user_id = %owner, "customer answer without an id");
        return Err(BillingError::Unavailable(
            "the payment provider gave an incomplete answer; retry in a moment",
        ));
    };
    let stored: Option<String> = sqlx::query_scalar(
        "UPDATE users SET stripe_customer_id = $2, updated_at = now()
         WHERE id = $1 AND stripe_customer_id IS NULL RETURNING stripe_customer_id",
    )
    .bind(owner)
    .bind(created)
    .fetch_optional(&state.db)
    .await
    .map_err(db_error)?;
    if let Some(stored) = stored {
        return Ok(stored);
    }
    // Another writer stored a customer first (the concurrent request stored the same one).
    let winner: Option<String> =
        sqlx::query_scalar("SELECT stripe_customer_id FROM users WHERE id = $1")
            .bind(owner)
            .fetch_one(&state.db)
            .await
            .map_err(db_error)?;
    if winner.as_deref() != Some(created) {
        tracing::warn!(user_id = %owner, created, stored = ?winner,
            "another customer was linked meanwhile; using it (the one created now stays unused at Stripe)");
    }
    Ok(winner.unwrap_or_else(|| created.to_owned()))
}
