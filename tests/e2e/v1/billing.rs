//! Plans through Stripe (issue 21, part C), the built part: the Billing Portal session, cancel at period
//! end and resume, against the local Stripe-shaped server — the owner only, Stripe idempotency keys
//! derived from ours, retries only where safe, local state untouched until the webhook, and Stripe's
//! errors (card declined, rate limited, 500, no key configured) as typed 4xx/503.

use mingus_tests::TestApp;
use mingus_tests::frontend::user_token;
use mingus_tests::stripe_server::{Scripted, StripeServer, Sub, TEST_KEY};
use reqwest::{Method, StatusCode};
use uuid::Uuid;

use super::{Answer, answer, key_with, user_on};

pub(super) const SUBSCRIPTION: &str = "sub_plans_test_1";
pub(super) const CUSTOMER: &str = "cus_plans_test_1";

/// The plans on sale in these tests (Executive annual is deliberately not configured).
pub(super) const PRICES: &str = "essentials:monthly=price_ess_m,essentials:annual=price_ess_a,\
    professional:monthly=price_pro_m,professional:annual=price_pro_a,executive:monthly=price_exe_m";

pub(super) struct Billing {
    pub app: TestApp,
    pub stripe: StripeServer,
    pub owner: Uuid,
}

/// An app talking to the local Stripe server (plans priced by [`PRICES`], 14-day trials on Essentials
/// and Professional), without any user.
pub(super) async fn app_with_stripe() -> (TestApp, StripeServer) {
    let stripe = StripeServer::start().await;
    let app = TestApp::spawn_with(&[
        ("STRIPE_API_KEY", TEST_KEY),
        ("STRIPE_API_BASE", &stripe.base),
        ("MINGUS_APP_URL", "https://app.example.com"),
        ("STRIPE_PRICES", PRICES),
        ("STRIPE_TRIAL_DAYS", "essentials=14,professional=14"),
    ])
    .await;
    (app, stripe)
}

/// [`app_with_stripe`], and an Executive (monthly) owner whose subscription and customer are Stripe's.
pub(super) async fn billing() -> Billing {
    let (app, stripe) = app_with_stripe().await;
    let owner = user_on(&app, Some("executive")).await;
    sqlx::query("UPDATE users SET stripe_customer_id = $2 WHERE id = $1")
        .bind(owner)
        .bind(CUSTOMER)
        .execute(&app.db.pool)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE subscriptions SET stripe_subscription_id = $2, stripe_customer_id = $3 WHERE user_id = $1",
    )
    .bind(owner)
    .bind(SUBSCRIPTION)
    .bind(CUSTOMER)
    .execute(&app.db.pool)
    .await
    .unwrap();
    let now = chrono::Utc::now().timestamp();
    stripe.add_subscription(
        Sub {
            id: SUBSCRIPTION,
            customer: CUSTOMER,
            status: "active",
            period: (now - 86_400, now + 29 * 86_400),
            cancel_at_period_end: false,
        }
        .basil(),
    );
    Billing { app, stripe, owner }
}

pub(super) async fn post(app: &TestApp, path: &str, credential: &str, key: Option<&str>) -> Answer {
    let mut request = app.client.post(app.url(path)).bearer_auth(credential);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    answer(&Method::POST, path, request).await
}

async fn local_cancel_flag(app: &TestApp, owner: Uuid) -> bool {
    sqlx::query_scalar("SELECT cancel_at_period_end FROM subscriptions WHERE user_id = $1")
        .bind(owner)
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_owner_opens_the_portal_cancels_and_resumes_through_stripe() {
    let Billing { app, stripe, owner } = billing().await;
    let token = user_token(&app, owner);

    let portal = post(&app, "/v1/billing/portal", &token, None).await;
    assert_eq!(portal.status, StatusCode::OK, "{}", portal.body);
    assert!(
        portal.body["url"]
            .as_str()
            .unwrap()
            .starts_with("https://billing.stripe.com/")
    );
    let sent = &stripe.writes()[0];
    assert_eq!(sent.path, "/v1/billing_portal/sessions");
    let field = |name: &str| {
        sent.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(field("customer").as_deref(), Some(CUSTOMER));
    assert_eq!(
        field("return_url").as_deref(),
        Some("https://app.example.com/settings/billing")
    );
    assert_eq!(
        sent.authorization.as_deref(),
        Some(&*format!("Bearer {TEST_KEY}"))
    );

    let cancelled = post(&app, "/v1/billing/cancel", &token, Some("cancel-1")).await;
    assert_eq!(cancelled.status, StatusCode::ACCEPTED, "{}", cancelled.body);
    assert_eq!(cancelled.body["pending"], true);
    assert_eq!(cancelled.body["cancel_at_period_end"], true);
    assert_eq!(cancelled.body["subscription_id"], SUBSCRIPTION);
    assert!(
        !local_cancel_flag(&app, owner).await,
        "local state waits for the webhook"
    );
    // The client's retry with the same key reaches Stripe with the same derived key: no second action.
    let again = post(&app, "/v1/billing/cancel", &token, Some("cancel-1")).await;
    assert_eq!(again.status, StatusCode::ACCEPTED);
    let writes = stripe.writes();
    let (first, second) = (&writes[1], &writes[2]);
    assert_eq!(first.idempotency_key, second.idempotency_key);
    let derived = first.idempotency_key.clone().unwrap();
    assert!(
        derived
            .strip_prefix("mingus-cancel-")
            .is_some_and(|hash| hash.len() == 64 && !hash.contains("cancel-1")),
        "{derived}"
    );
    assert_eq!(
        first.form,
        [("cancel_at_period_end".to_owned(), "true".to_owned())]
    );

    let resumed = post(&app, "/v1/billing/resume", &token, Some("cancel-1")).await;
    assert_eq!(resumed.status, StatusCode::ACCEPTED, "{}", resumed.body);
    assert_eq!(resumed.body["cancel_at_period_end"], false);
    let last = stripe.writes().pop().unwrap();
    assert_ne!(
        last.idempotency_key.as_deref(),
        Some(&*derived),
        "another action, another key"
    );
}

#[tokio::test]
async fn stripe_errors_become_typed_answers_and_only_safe_calls_are_retried() {
    let Billing { app, stripe, owner } = billing().await;
    let token = user_token(&app, owner);

    stripe.script(Scripted::card_declined());
    let declined = post(&app, "/v1/billing/cancel", &token, None).await;
    assert_eq!(
        declined.status,
        StatusCode::PAYMENT_REQUIRED,
        "{}",
        declined.body
    );
    assert_eq!(declined.code(), "card_declined");
    assert_eq!(
        stripe.writes().len(),
        1,
        "Stripe-Should-Retry: false is not retried"
    );

    for _ in 0..3 {
        stripe.script(Scripted::rate_limited());
    }
    let limited = post(&app, "/v1/billing/cancel", &token, Some("k")).await;
    assert_eq!(
        limited.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        limited.body
    );
    assert_eq!(limited.code(), "billing_unavailable");
    assert!(limited.header("retry-after").is_some());
    let writes = stripe.writes();
    assert_eq!(writes.len(), 4, "three attempts");
    assert!(
        writes[1..]
            .iter()
            .all(|w| w.idempotency_key == writes[1].idempotency_key)
    );

    for _ in 0..3 {
        stripe.script(Scripted::server_error());
    }
    let broken = post(&app, "/v1/billing/portal", &token, None).await;
    assert_eq!(broken.code(), "billing_unavailable");

    // One 500, then Stripe answers: the retry (same key) succeeds.
    stripe.script(Scripted::server_error());
    let recovered = post(&app, "/v1/billing/resume", &token, None).await;
    assert_eq!(recovered.status, StatusCode::ACCEPTED, "{}", recovered.body);
    let writes = stripe.writes();
    let (failed, retried) = (&writes[writes.len() - 2], &writes[writes.len() - 1]);
    assert_eq!(failed.idempotency_key, retried.idempotency_key);

    // A subscription Stripe does not know → 422 with Stripe's message, not a 500.
    sqlx::query("UPDATE subscriptions SET stripe_subscription_id = 'sub_gone' WHERE user_id = $1")
        .bind(owner)
        .execute(&app.db.pool)
        .await
        .unwrap();
    let gone = post(&app, "/v1/billing/cancel", &token, None).await;
    assert_eq!(gone.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(gone.code(), "billing_request_refused");
    assert!(!local_cancel_flag(&app, owner).await);
}

#[tokio::test]
async fn only_the_owner_with_a_user_token_may_change_the_plan() {
    let Billing { app, stripe, owner } = billing().await;
    let key = key_with(&app, owner, &["team:write", "usage:write"], 1000).await;
    let by_key = post(&app, "/v1/billing/cancel", &key, None).await;
    assert_eq!(by_key.code(), "user_session_required");

    let (admin, _) = super::team::join(&app, owner, "admin").await;
    let path = "/v1/billing/cancel";
    let acting = app
        .client
        .post(app.url(path))
        .bearer_auth(user_token(&app, admin))
        .header("Mingus-Account", owner.to_string());
    let acting = answer(&Method::POST, path, acting).await;
    assert_eq!(acting.status, StatusCode::FORBIDDEN);
    assert_eq!(acting.code(), "account_owner_required");

    // A user without a Stripe customer or subscription.
    let nobody = user_on(&app, None).await;
    let token = user_token(&app, nobody);
    assert_eq!(
        post(&app, "/v1/billing/portal", &token, None).await.code(),
        "no_billing_account"
    );
    assert_eq!(
        post(&app, "/v1/billing/cancel", &token, None).await.code(),
        "no_active_subscription"
    );
    let bad_key = app
        .client
        .post(app.url(path))
        .bearer_auth(&token)
        .header("Idempotency-Key", "k".repeat(300));
    assert_eq!(
        answer(&Method::POST, path, bad_key).await.code(),
        "invalid_idempotency_key"
    );
    assert!(stripe.writes().is_empty(), "nothing reached Stripe");

    // No STRIPE_API_KEY on this server: 503, not a 500.
    let plain = TestApp::spawn().await;
    let owner = user_on(&plain, Some("executive")).await;
    sqlx::query("UPDATE users SET stripe_customer_id = 'cus_x' WHERE id = $1")
        .bind(owner)
        .execute(&plain.db.pool)
        .await
        .unwrap();
    let unconfigured = post(
        &plain,
        "/v1/billing/portal",
        &user_token(&plain, owner),
        None,
    )
    .await;
    assert_eq!(unconfigured.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(unconfigured.code(), "billing_unavailable");
}
