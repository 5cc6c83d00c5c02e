//! E-mail: templates, delivery over a real SMTP server (aiosmtpd on loopback, one per test), leases and
//! duplicates, retries and dead letters, unsubscribe, reminders across daylight-saving changes.

mod crash;
mod orphans;
mod reminders;
mod sending;
mod templates;
mod tls;
mod unsubscribe;

use std::time::Duration;

use chrono::{DateTime, Utc};
use mingus_common::email::Template;
use mingus_common::email::deliveries::{self, NewDelivery, Queued};
use mingus_common::jobs::outbox;
use mingus_tests::wait::until;
use mingus_tests::{JobEnv, SmtpServer};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

pub const APP_URL: &str = "https://app.mingus.test";
pub const PUBLIC_URL: &str = "https://api.mingus.test";
pub const FROM_DOMAIN: &str = "mingus.test";

/// The configuration that points a process at `smtp`, with the test's links and sender.
pub fn email_vars(smtp: &SmtpServer) -> Vec<(String, String)> {
    vec![
        ("SMTP_URL".into(), smtp.url()),
        (
            "MAIL_FROM".into(),
            format!("Mingus <no-reply@{FROM_DOMAIN}>"),
        ),
        ("MINGUS_PUBLIC_URL".into(), PUBLIC_URL.into()),
        ("MINGUS_APP_URL".into(), APP_URL.into()),
        ("SMTP_CONNECT_TIMEOUT_SECS".into(), "3".into()),
        ("SMTP_COMMAND_TIMEOUT_SECS".into(), "5".into()),
        ("MINGUS_EMAIL_LEASE_SECS".into(), "10".into()),
    ]
}

/// A job environment whose configuration sends through `smtp`.
pub async fn env_with(smtp: &SmtpServer, extra: &[(&str, &str)]) -> JobEnv {
    let vars = email_vars(smtp);
    let mut all: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    all.extend_from_slice(extra);
    JobEnv::with(&all).await
}

/// A user with a profile (first name, time zone); returns the id. The address is `<local>@example.com`.
pub async fn user(pool: &PgPool, local: &str, first_name: &str, timezone: &str) -> Uuid {
    let id = Uuid::new_v4();
    sqlx::query("INSERT INTO users (id, email, full_name) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(address(local))
        .bind(format!("{first_name} Example"))
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO user_profiles (user_id, first_name, timezone) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(first_name)
        .bind(timezone)
        .execute(pool)
        .await
        .unwrap();
    id
}

pub fn address(local: &str) -> String {
    format!("{local}@example.com")
}

/// Queues a delivery (row + staged job, one statement) and pushes its job after "commit".
pub async fn queue(
    env: &JobEnv,
    user_id: Uuid,
    template: Template,
    data: Value,
    key: &str,
) -> Queued {
    let mut conn = env.db.pool.acquire().await.unwrap();
    let queued = deliveries::queue(
        &mut conn,
        &NewDelivery {
            user_id: Some(user_id),
            recipient: None,
            template,
            data,
            dedupe_key: key.into(),
            scheduled_for: Utc::now(),
        },
    )
    .await
    .unwrap();
    if let Queued::Staged(envelope) = &queued {
        assert!(
            outbox::push_after_commit(&env.db.pool, &env.enqueuer, std::slice::from_ref(envelope))
                .await
        );
    }
    queued
}

/// (status, attempts, last error, message id, sent at) of a delivery.
pub type DeliveryState = (
    String,
    i32,
    Option<String>,
    Option<String>,
    Option<DateTime<Utc>>,
);

pub async fn delivery(pool: &PgPool, id: Uuid) -> DeliveryState {
    sqlx::query_as(
        "SELECT status, attempts, last_error, message_id, sent_at FROM email_deliveries WHERE id = $1",
    )
    .bind(id)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Waits (bounded) until the delivery has `status`.
pub async fn wait_for_status(
    pool: &PgPool,
    id: Uuid,
    status: &str,
    limit: Duration,
) -> DeliveryState {
    until(limit, &format!("delivery {id} {status}"), || async {
        let state = delivery(pool, id).await;
        (state.0 == status).then_some(state)
    })
    .await
}

pub fn staged_id(queued: &Queued) -> Uuid {
    match queued {
        Queued::Staged(envelope) => envelope.job_id,
        other => panic!("expected a staged delivery, got {other:?}"),
    }
}
