//! The customer page's JSON (issue 25): `GET /ops/customers?q=` finds a customer by
//! e-mail (exact or prefix), user id, Stripe customer, subscription or invoice/charge id;
//! `GET /ops/customers/{id}` shows one: who they are and their tier, every subscription row, the
//! timeline of their subscriptions' changes (`subscription_changes`: Stripe events, sweeps, local
//! writes, with the guard's decision for Stripe ones), the Stripe events that concern them with the ordering guard's decision, invoices and refunds, each feature with
//! the reason it is refused, usage against the plan's limits, API keys (metadata), the team they own,
//! e-mails sent and suppressed, and reports.
//!
//! Also the jobs and dead letters that concern the customer ([`super::customer_jobs`]) and their
//! promotion/admin grants. Reads: any operator role. The page's actions (promotions, trial extensions,
//! usage resets, resends, replays, recompute) are in [`super::customer_actions`].

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{db_error, query};
use crate::error::ApiError;
use crate::state::AppState;

/// Matches one search answers at most (a prefix that matches more should be longer).
const SEARCH_LIMIT: i64 = 20;
/// Prefixes of the Stripe ids the search looks up exactly (customer, subscription, invoice, charge,
/// refund, payment intent).
const STRIPE_PREFIXES: [&str; 6] = ["cus", "sub", "in", "ch", "re", "pi"];
/// Rows of each history (events, invoices) one page shows, newest first.
const HISTORY_LIMIT: i64 = 200;

#[derive(Debug, Deserialize)]
pub struct SearchQuery {
    q: Option<String>,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
struct Match {
    id: Uuid,
    email: String,
    full_name: Option<String>,
    is_active: bool,
    created_at: DateTime<Utc>,
    plan_tier: Option<String>,
    subscription_status: Option<String>,
}

/// What the search text is: an id (exact look-ups) or the start of an e-mail address.
fn search_terms(raw: &str) -> Result<(Option<Uuid>, String, Option<String>), ApiError> {
    let q = raw.trim();
    if q.chars().count() < 3 || q.chars().count() > 255 {
        return Err(ApiError::bad_request(
            "invalid_search",
            "q must be 3–255 characters: an e-mail (or its start), a user id, a Stripe customer (cus_…), \
             subscription (sub_…) or invoice/charge id",
        ));
    }
    let id = Uuid::parse_str(q).ok();
    let looks_like_stripe_id = q
        .split_once('_')
        .is_some_and(|(prefix, rest)| STRIPE_PREFIXES.contains(&prefix) && !rest.is_empty());
    // LIKE's wildcards in the text are matched literally.
    let prefix = (id.is_none() && !looks_like_stripe_id).then(|| {
        let escaped = q
            .to_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        format!("{escaped}%")
    });
    Ok((id, q.to_owned(), prefix))
}

/// `GET /ops/customers?q=`: at most 20 matches, by e-mail.
pub async fn search(
    State(state): State<AppState>,
    params: Result<Query<SearchQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let params = query(params)?;
    let (id, exact, prefix) = search_terms(params.q.as_deref().unwrap_or(""))?;
    let mut items: Vec<Match> = sqlx::query_as(
        "SELECT u.id, u.email::text AS email, u.full_name::text AS full_name, u.is_active, u.created_at,
                s.plan_tier::text AS plan_tier, s.status::text AS subscription_status
         FROM users u
         LEFT JOIN LATERAL (SELECT plan_tier, status FROM subscriptions
                            WHERE user_id = u.id ORDER BY created_at DESC LIMIT 1) s ON true
         WHERE u.id IN (
             SELECT id FROM users WHERE id = $1
             UNION SELECT id FROM users WHERE stripe_customer_id = $2
             UNION SELECT user_id FROM stripe_customers WHERE customer_id = $2
             UNION SELECT user_id FROM subscriptions WHERE stripe_subscription_id = $2
             UNION SELECT user_id FROM billing_history WHERE transaction_id = $2
             UNION SELECT id FROM users WHERE $3::text IS NOT NULL AND lower(email) LIKE $3)
         ORDER BY lower(u.email) LIMIT $4",
    )
    .bind(id)
    .bind(&exact)
    .bind(prefix)
    .bind(SEARCH_LIMIT + 1)
    .fetch_all(&state.db)
    .await
    .map_err(db_error)?;
    let truncated = items.len() as i64 > SEARCH_LIMIT;
    items.truncate(SEARCH_LIMIT as usize);
    Ok(Json(json!({ "items": items, "truncated": truncated })))
}

#[derive(Debug, Serialize, sqlx::FromRow)]
struct Customer {
    id: Uuid,
    email: String,
    full_name: Option<String>,
    is_active: bool,
    stripe_customer_id: Option<String>,
    created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
struct Subscription {
    id: Uuid,
    plan_tier: String,
    billing_cycle: String,
    status: String,
    stripe_status: Option<String>,
    /// Money as its exact decimal text.
    plan_price: String,
    currency: String,
    current_period_start: DateTime<Utc>,
    current_period_end: DateTime<Utc>,
    trial_start: Option<DateTime<Utc>>,
    trial_end: Option<DateTime<Utc>>,
    cancelled_at: Option<DateTime<Utc>>,
    cancel_at_period_end: bool,
    stripe_subscription_id: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
struct Event {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    status: String,
    created: Option<DateTime<Utc>>,
    received_at: DateTime<Utc>,
    processed_at: Option<DateTime<Utc>>,
    order_decision: Option<String>,
    last_error: Option<String>,
}

/// One row of the subscription timeline (`subscription_changes`): what changed, when, by whom
/// (`stripe:<event>`, `sweep:<transition>`, `local`, `reconstructed`), and for a Stripe change the
/// ordering guard's decision about its event.
#[derive(Debug, Serialize, sqlx::FromRow)]
struct Change {
    subscription_id: Uuid,
    changed_at: DateTime<Utc>,
    status: String,
    stripe_status: Option<String>,
    plan_tier: String,
    billing_cycle: String,
    plan_price: String,
    currency: String,
    cancel_at_period_end: bool,
    source: String,
    order_decision: Option<String>,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
struct Invoice {
    id: Uuid,
    subscription_id: Uuid,
    amount: String,
    currency: String,
    status: String,
    transaction_id: Option<String>,
    invoice_url: Option<String>,
    created_at: DateTime<Utc>,
}

/// A `WITH` clause naming `events_of_user`: the stored Stripe events about the user `$1`'s Stripe
/// customers or subscriptions, by the object they carry or the customer/subscription that object names.
/// The page lists them; the customer's replay replays the failed ones.
pub(super) const EVENTS_OF_USER: &str = "WITH ids AS (
         SELECT customer_id AS id FROM stripe_customers WHERE user_id = $1
         UNION SELECT stripe_customer_id FROM users WHERE id = $1 AND stripe_customer_id IS NOT NULL
         UNION SELECT stripe_subscription_id FROM subscriptions WHERE user_id = $1 AND stripe_subscription_id IS NOT NULL),
     events_of_user AS (
         SELECT e.* FROM stripe_events e
         WHERE e.object_id IN (SELECT id FROM ids)
            OR e.payload #>> '{data,object,customer}' IN (SELECT id FROM ids)
            OR e.payload #>> '{data,object,subscription}' IN (SELECT id FROM ids))";

pub(super) fn user_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw.trim()).map_err(|_| {
        ApiError::bad_request(
            "invalid_user_id",
            "a customer is named by their user id (a UUID); search with GET /ops/customers?q=",
        )
    })
}

pub(super) fn unknown_customer(id: Uuid) -> ApiError {
    ApiError::client(
        StatusCode::NOT_FOUND,
        "unknown_customer",
        format!("no user {id}"),
    )
}

/// `GET /ops/customers/{id}`.
pub async fn detail(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = user_id(&raw)?;
    let customer: Option<Customer> = sqlx::query_as(
        "SELECT id, email::text AS email, full_name::text AS full_name, is_active,
                stripe_customer_id::text AS stripe_customer_id, created_at
         FROM users WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&state.db)
    .await
    .map_err(db_error)?;
    let Some(customer) = customer else {
        return Err(unknown_customer(id));
    };
    let subscriptions: Vec<Subscription> = sqlx::query_as(
        "SELECT id, plan_tier::text AS plan_tier, billing_cycle::text AS billing_cycle, status::text AS status,
                stripe_status::text AS stripe_status, plan_price::text AS plan_price, currency::text AS currency,
                current_period_start, current_period_end, trial_start, trial_end, cancelled_at,
                cancel_at_period_end, stripe_subscription_id::text AS stripe_subscription_id, created_at, updated_at
         FROM subscriptions WHERE user_id = $1 ORDER BY created_at",
    )
    .bind(id)
    .fetch_all(&state.db)
    .await
    .map_err(db_error)?;
    let events: Vec<Event> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{EVENTS_OF_USER}
         SELECT e.id::text AS id, e.type::text AS kind, e.status::text AS status, e.created, e.received_at,
                e.processed_at, e.order_decision::text AS order_decision, e.last_error
         FROM events_of_user e
         ORDER BY coalesce(e.created, e.received_at) DESC, e.id LIMIT $2"
    )))
    .bind(id)
    .bind(HISTORY_LIMIT)
    .fetch_all(&state.db)
    .await
    .map_err(db_error)?;
    let timeline: Vec<Change> = sqlx::query_as(
        "SELECT c.subscription_id, c.changed_at, c.status::text AS status, c.stripe_status::text AS stripe_status,
                c.plan_tier::text AS plan_tier, c.billing_cycle::text AS billing_cycle,
                c.plan_price::text AS plan_price, c.currency::text AS currency, c.cancel_at_period_end,
                c.source::text AS source, e.order_decision::text AS order_decision
         FROM subscription_changes c
         LEFT JOIN stripe_events e ON c.source LIKE 'stripe:%' AND e.id = substr(c.source, 8)
         WHERE c.user_id = $1 ORDER BY c.changed_at DESC, c.id DESC LIMIT $2",
    )
    .bind(id)
    .bind(HISTORY_LIMIT)
    .fetch_all(&state.db)
    .await
    .map_err(db_error)?;
    let invoices: Vec<Invoice> = sqlx::query_as(
        "SELECT id, subscription_id, amount::text AS amount, currency::text AS currency, status::text AS status,
                transaction_id::text AS transaction_id, invoice_url::text AS invoice_url, created_at
         FROM billing_history WHERE user_id = $1 ORDER BY created_at DESC LIMIT $2",
    )
    .bind(id)
    .bind(HISTORY_LIMIT)
    .fetch_all(&state.db)
    .await
    .map_err(db_error)?;
    let (features, usage) = access(&state, id).await?;
    let more = related(&state, id).await?;
    let work = super::customer_jobs::of_customer(&state, id).await?;
    Ok(Json(json!({
        "customer": customer,
        "tier": features.first().map(|f| f["tier"].clone()).unwrap_or(Value::Null),
        "subscriptions": subscriptions,
        "timeline": timeline,
        "stripe_events": events,
        "invoices": invoices,
        "features": features,
        "usage": usage,
        "api_keys": more.api_keys,
        "team": more.team,
        "emails": more.emails,
        "email_suppressions": more.suppressions,
        "reports": more.reports,
        "grants": more.grants,
        "jobs": work["jobs"],
        "dead_letters": work["dead_letters"],
    })))
}

/// The customer's other rows, newest first, as the page shows them: API keys by metadata only (never
/// the hash), the team they own, e-mails sent or suppressed (without their data), reports (without
/// their content).
struct Related {
    api_keys: Vec<Value>,
    team: Vec<Value>,
    emails: Vec<Value>,
    suppressions: Vec<Value>,
    reports: Vec<Value>,
    /// Promotion and admin grants (what the page can revoke).
    grants: Vec<Value>,
}

async fn related(state: &AppState, id: Uuid) -> Result<Related, ApiError> {
    let rows = |sql: &'static str| {
        sqlx::query_scalar::<_, Value>(sql)
            .bind(id)
            .bind(HISTORY_LIMIT)
            .fetch_all(&state.db)
    };
    let (api_keys, team, emails, suppressions, reports, grants) = tokio::try_join!(
        rows(
            "SELECT jsonb_build_object('id', id, 'name', key_name, 'prefix', key_prefix, 'permissions', permissions,
                                       'active', is_active, 'created_at', created_at, 'last_used_at', last_used_at,
                                       'expires_at', expires_at)
             FROM api_keys WHERE user_id = $1 ORDER BY created_at DESC LIMIT $2"
        ),
        rows(
            "SELECT jsonb_build_object('id', id, 'email', member_email, 'name', member_name, 'role', role,
                                       'status', status, 'invited_at', invited_at, 'accepted_at', accepted_at)
             FROM team_members WHERE team_owner_id = $1 ORDER BY invited_at DESC LIMIT $2"
        ),
        rows(
            "SELECT jsonb_build_object('id', id, 'template', template, 'recipient', recipient, 'status', status,
                                       'attempts', attempts, 'last_error', last_error, 'scheduled_for', scheduled_for,
                                       'sent_at', sent_at, 'created_at', created_at, 'resent_from', resent_from)
             FROM email_deliveries WHERE user_id = $1 ORDER BY created_at DESC LIMIT $2"
        ),
        rows(
            "SELECT jsonb_build_object('category', category, 'source', source, 'created_at', created_at)
             FROM email_suppressions WHERE user_id = $1 ORDER BY created_at DESC LIMIT $2"
        ),
        rows(
            "SELECT jsonb_build_object('id', id, 'kind', kind, 'format', format, 'status', status,
                                       'failure_reason', failure_reason, 'period_start', period_start,
                                       'period_end', period_end, 'created_at', created_at, 'finished_at', finished_at)
             FROM reports WHERE user_id = $1 ORDER BY created_at DESC LIMIT $2"
        ),
        rows(
            "SELECT jsonb_build_object('feature', feature_name, 'access_level', access_level,
                                       'granted_by', granted_by, 'granted_at', granted_at, 'expires_at', expires_at)
             FROM feature_access WHERE user_id = $1 AND granted_by <> 'subscription'
             ORDER BY granted_at DESC LIMIT $2"
        ),
    )
    .map_err(db_error)?;
    Ok(Related {
        api_keys,
        team,
        emails,
        suppressions,
        reports,
        grants,
    })
}

/// Every feature any tier offers, checked for the customer as `/v1/features` would answer them, and
/// their usage of each metric — through the same entitlement code, so the page shows what the app
/// does, reasons included.
async fn access(state: &AppState, id: Uuid) -> Result<(Vec<Value>, Value), ApiError> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT f FROM pricing_tiers, jsonb_object_keys(features) AS f ORDER BY f",
    )
    .fetch_all(&state.db)
    .await
    .map_err(db_error)?;
    let now = Utc::now();
    let (checks, metrics) = tokio::join!(
        state
            .entitlements
            .check_all(id, names.iter().map(String::as_str), now),
        state.entitlements.metrics(id, now),
    );
    let checks = checks.map_err(ApiError::Internal)?;
    let metrics = metrics.map_err(ApiError::Internal)?;
    Ok((checks.iter().map(|c| json!(c)).collect(), json!(metrics)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_text_is_an_id_or_an_escaped_email_prefix() {
        let (id, _, prefix) = search_terms("0193a4b2-0000-7000-8000-000000000001").unwrap();
        assert!(id.is_some() && prefix.is_none());
        let (id, exact, prefix) = search_terms(" cus_ABC ").unwrap();
        assert_eq!((id, exact.as_str(), prefix), (None, "cus_ABC", None));
        let (_, _, prefix) = search_terms("Al_i%ce@").unwrap();
        assert_eq!(prefix.as_deref(), Some("al\\_i\\%ce@%"));
        let (_, _, prefix) = search_terms("alice_smith").unwrap();
        assert!(prefix.is_some(), "not a Stripe prefix: an e-mail start");
        assert!(search_terms("ab").is_err());
    }
}
