//! Stripe events applied by the worker (`mingus_worker::stripe`) to users, subscriptions, billing
//! history, feature access and billing e-mails, with Stripe's own fixtures in both API shapes wrapped in
//! event envelopes and stored exactly as the webhook ingest stores them.

mod convergence;
mod dead;
mod event_types;
mod failures;
mod guard_sql;
mod newest_first;
mod payments;
mod permutations;
mod race;
mod stream;

use chrono::{DateTime, Utc};
use mingus_tests::JobEnv;
use mingus_tests::stripe::{self as fx, ApiShape, SubscriptionState, deliver, envelope};
use mingus_worker::context::JobError;
use mingus_worker::stripe::Outcome;
use uuid::Uuid;

/// A fixed base time for event streams (2026-09-21T12:26:40Z).
pub const T: i64 = 1_790_000_000;
pub const DAY: i64 = 86_400;

pub fn at(t: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(t, 0).unwrap()
}

pub async fn user(env: &JobEnv, id: Uuid, email: &str) {
    sqlx::query("INSERT INTO users (id, email, full_name) VALUES ($1, $2, 'Stripe Test')")
        .bind(id)
        .bind(email)
        .execute(&env.db.pool)
        .await
        .expect("insert user");
}

pub async fn linked_customer(env: &JobEnv, user_id: Uuid) -> Option<String> {
    sqlx::query_scalar("SELECT stripe_customer_id FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_one(&env.db.pool)
        .await
        .unwrap()
}

/// The user's feature access: (feature, level, expires_at, granted_by), by feature.
pub async fn access(
    env: &JobEnv,
    user_id: Uuid,
) -> Vec<(String, String, Option<DateTime<Utc>>, String)> {
    sqlx::query_as(
        "SELECT feature_name, access_level, expires_at, granted_by FROM feature_access WHERE user_id = $1
         ORDER BY feature_name",
    )
    .bind(user_id)
    .fetch_all(&env.db.pool)
    .await
    .unwrap()
}

/// The billing history: (transaction id, status, amount, currency, invoice id), by transaction id.
pub async fn history(env: &JobEnv) -> Vec<(String, String, String, String, Option<String>)> {
    sqlx::query_as(
        "SELECT transaction_id, status, amount::text, currency, stripe_invoice_id FROM billing_history
         ORDER BY transaction_id",
    )
    .fetch_all(&env.db.pool)
    .await
    .unwrap()
}

/// Queued e-mails: (template, dedupe key), by key.
pub async fn emails(env: &JobEnv) -> Vec<(String, String)> {
    sqlx::query_as("SELECT template, dedupe_key FROM email_deliveries ORDER BY dedupe_key")
        .fetch_all(&env.db.pool)
        .await
        .unwrap()
}

/// The columns of a subscription the assertions look at.
#[derive(Debug, sqlx::FromRow)]
pub struct Sub {
    pub user_id: Uuid,
    pub status: String,
    pub stripe_status: Option<String>,
    pub plan_tier: String,
    pub billing_cycle: String,
    pub plan_price: String,
    pub currency: String,
    pub current_period_start: DateTime<Utc>,
    pub current_period_end: DateTime<Utc>,
    pub trial_start: Option<DateTime<Utc>>,
    pub trial_end: Option<DateTime<Utc>>,
    pub cancel_at_period_end: bool,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub grace_until: Option<DateTime<Utc>>,
    pub stripe_customer_id: Option<String>,
    pub stripe_price_id: Option<String>,
}

pub async fn sub(env: &JobEnv, stripe_id: &str) -> Sub {
    sqlx::query_as(
        "SELECT user_id, status, stripe_status, plan_tier, billing_cycle, plan_price::text AS plan_price, currency,
                current_period_start, current_period_end, trial_start, trial_end, cancel_at_period_end,
                cancelled_at, ended_at, grace_until, stripe_customer_id, stripe_price_id
         FROM subscriptions WHERE stripe_subscription_id = $1",
    )
    .bind(stripe_id)
    .fetch_one(&env.db.pool)
    .await
    .expect("subscription row")
}

/// A user linked to `customer` by a completed checkout.
pub async fn customer_of_new_user(env: &JobEnv, shape: ApiShape, customer: &str) -> Uuid {
    let id = Uuid::new_v4();
    user(env, id, &format!("{id}@example.com")).await;
    let checkout = fx::checkout(shape, customer, &id.to_string(), "sub_any");
    let event = envelope(
        shape,
        &format!("evt_co_{customer}"),
        "checkout.session.completed",
        T,
        checkout,
    );
    deliver(&env.db.pool, &env.config.stripe, &event, at(T))
        .await
        .expect("checkout applies");
    id
}

/// Delivers a subscription state as `kind` at `created` (processed a minute later).
pub async fn send_sub(
    env: &JobEnv,
    shape: ApiShape,
    id: &str,
    kind: &str,
    created: i64,
    state: &SubscriptionState<'_>,
) -> Result<Outcome, JobError> {
    let event = envelope(shape, id, kind, created, fx::subscription(shape, state));
    deliver(&env.db.pool, &env.config.stripe, &event, at(created + 60)).await
}
