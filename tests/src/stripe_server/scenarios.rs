//! Scenarios for the Stripe operator tests: Stripe-side data on the fixture server, matching local rows,
//! and readers of what was stored and queued.

use std::process::{Command, Output};
use std::time::Duration;

use chrono::Utc;
use mingus_common::jobs::Envelope;
use mingus_common::queue::Queue;
use mingus_common::stripe_api::StripeApi;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use uuid::Uuid;

use super::{FIXTURE_PRICE, StripeServer, Sub, TEST_KEY, event};
use crate::{JobEnv, binary};

pub const DAY: i64 = 86_400;

/// A client of the fixture server with the test key and a 5 s timeout.
pub fn api(server: &StripeServer) -> StripeApi {
    StripeApi::new(
        &server.base,
        &SecretString::from(TEST_KEY),
        Duration::from_secs(5),
    )
    .unwrap()
}

/// Runs `mingus-admin` off the runtime's thread (the fixture server answers on this runtime).
pub async fn admin(
    env: &JobEnv,
    server: &StripeServer,
    key: Option<&str>,
    args: &[&str],
) -> Output {
    let mut command = Command::new(binary("mingus-admin"));
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &env.db.url)
        .env("REDIS_URL", env.config.redis.url.expose_secret())
        .env("REDIS_KEY_PREFIX", &env.prefix)
        .env("DATABASE_MAX_CONNECTIONS", "4")
        .env("DATABASE_MIN_CONNECTIONS", "0")
        .env("STRIPE_API_BASE", &server.base)
        .env("LOG_FORMAT", "json");
    if let Some(key) = key {
        command.env("STRIPE_API_KEY", key);
    }
    tokio::task::spawn_blocking(move || command.output().expect("mingus-admin runs"))
        .await
        .unwrap()
}

/// The envelopes waiting in a queue's active list.
pub async fn queued(env: &JobEnv, queue: Queue) -> Vec<Envelope> {
    let keys = env.enqueuer.keys(queue);
    let ids: Vec<String> = redis::cmd("LRANGE")
        .arg(keys.active())
        .arg(0)
        .arg(-1)
        .query_async(&mut env.enqueuer.connection())
        .await
        .unwrap();
    let mut envelopes = Vec::new();
    for id in ids {
        let raw: String = redis::cmd("HGET")
            .arg(keys.data())
            .arg(&id)
            .query_async(&mut env.enqueuer.connection())
            .await
            .unwrap();
        envelopes.push(serde_json::from_str(&raw).unwrap());
    }
    envelopes
}

/// `(status, attempts, last_error, job_id)` of a stored event.
pub async fn event_row(env: &JobEnv, id: &str) -> (String, i32, Option<String>, Option<Uuid>) {
    sqlx::query_as("SELECT status, attempts, last_error, job_id FROM stripe_events WHERE id = $1")
        .bind(id)
        .fetch_one(&env.db.pool)
        .await
        .unwrap()
}

/// Three undelivered events of the last hours (one of live mode), one delivered, one five days old.
pub fn undelivered_events(server: &StripeServer, now: i64) {
    let sub = Sub {
        id: "sub_fetch",
        customer: "cus_fetch",
        status: "active",
        period: (now - DAY, now + 29 * DAY),
        cancel_at_period_end: false,
    }
    .basil();
    let kinds = ["customer.subscription.updated", "invoice.paid"];
    for (i, kind) in kinds.iter().enumerate() {
        let id = format!("evt_undelivered_{i}");
        server.add_event(
            event(&id, kind, now - 3600 * (i as i64 + 1), false, sub.clone()),
            false,
        );
    }
    // Of the other mode: stored quarantined.
    server.add_event(
        event("evt_live", "invoice.paid", now - 7200, true, sub.clone()),
        false,
    );
    // Delivered, and undelivered but older than --since: neither is fetched.
    server.add_event(
        event(
            "evt_delivered",
            "invoice.paid",
            now - 60,
            false,
            sub.clone(),
        ),
        true,
    );
    server.add_event(
        event("evt_old", "invoice.paid", now - 5 * DAY, false, sub),
        false,
    );
}

/// A user linked to `customer` and a local subscription (price [`FIXTURE_PRICE`], period ending at `end`).
pub async fn local_subscription(
    env: &JobEnv,
    sub_id: &str,
    customer: &str,
    status: &str,
    stripe_status: &str,
    end: i64,
) {
    let user: Uuid = sqlx::query_scalar(
        "INSERT INTO users (email, stripe_customer_id) VALUES ($1, $2) RETURNING id",
    )
    .bind(format!("{customer}@example.com"))
    .bind(customer)
    .fetch_one(&env.db.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO subscriptions (user_id, plan_tier, plan_price, billing_cycle, status, current_period_start,
             current_period_end, stripe_subscription_id, stripe_price_id, stripe_status, stripe_customer_id,
             stripe_event_at, stripe_status_rank)
         VALUES ($1, 'professional', 20, 'monthly', $2, to_timestamp($3), to_timestamp($4), $5, $6, $7, $8,
             now() - interval '1 day', 2)",
    )
    .bind(user)
    .bind(status)
    .bind((end - 30 * DAY) as f64)
    .bind(end as f64)
    .bind(sub_id)
    .bind(FIXTURE_PRICE)
    .bind(stripe_status)
    .bind(customer)
    .execute(&env.db.pool)
    .await
    .unwrap();
}

/// Five Stripe subscriptions (both API shapes) and four local rows: one drifted, one missing here, one
/// ended at Stripe and unknown here.
pub async fn reconcile_fixture(env: &JobEnv, server: &StripeServer) {
    let end = Utc::now().timestamp() + 20 * DAY;
    let sub = |id, customer, status| Sub {
        id,
        customer,
        status,
        period: (end - 30 * DAY, end),
        cancel_at_period_end: false,
    };
    server.add_subscription(sub("sub_in_sync", "cus_a", "active").basil());
    server.add_subscription(sub("sub_drift", "cus_b", "past_due").basil());
    server.add_subscription(sub("sub_legacy", "cus_c", "trialing").pre_basil());
    server.add_subscription(sub("sub_missing", "cus_d", "active").basil());
    server.add_subscription(sub("sub_ended", "cus_e", "canceled").basil());
    local_subscription(env, "sub_in_sync", "cus_a", "active", "active", end).await;
    local_subscription(env, "sub_drift", "cus_b", "active", "active", end).await;
    local_subscription(env, "sub_legacy", "cus_c", "trial", "trialing", end).await;
    sqlx::query("INSERT INTO users (email, stripe_customer_id) VALUES ('d@example.com', 'cus_d')")
        .execute(&env.db.pool)
        .await
        .unwrap();
}

/// A stored event row as the ingest leaves it (an `unparseable` one has only a raw body).
pub async fn stored_event(env: &JobEnv, id: &str, kind: &str, status: &str, attempts: i32) {
    sqlx::query(
        "INSERT INTO stripe_events (id, type, payload, raw_body, status, attempts, last_error)
         VALUES ($1, $2, CASE WHEN $4 = 'unparseable' THEN NULL ELSE $5 END, CASE WHEN $4 = 'unparseable' THEN 'x' END,
                 $4, $3, CASE WHEN $4 = 'failed' THEN 'boom' END)",
    )
    .bind(id)
    .bind(kind)
    .bind(attempts)
    .bind(status)
    .bind(json!({"id": id, "type": kind}))
    .execute(&env.db.pool)
    .await
    .unwrap();
}
