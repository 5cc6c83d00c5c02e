//! `POST /v1/billing/checkout` against the local Stripe server: the customer created once (also when
//! two first checkouts race) and reused, the Checkout Session as Stripe receives it (plan price,
//! `client_reference_id`, URLs under `MINGUS_APP_URL`, the tier's trial only for a first subscription),
//! the pending record shown by `GET /v1/billing` and settled by the webhook, and every refusal.

use std::time::Duration;

use chrono::Utc;
use mingus_tests::TestApp;
use mingus_tests::frontend::user_token;
use mingus_tests::stripe::{self as fx, ApiShape, SubscriptionState, deliver, envelope};
use mingus_tests::stripe_server::{RecordedRequest, Scripted, StripeServer};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use super::billing::{Billing, app_with_stripe, billing};
use super::{Answer, answer, key_with, user_on};

const CHECKOUT: &str = "/v1/billing/checkout";

pub(super) async fn post_plan(
    app: &TestApp,
    path: &str,
    credential: &str,
    tier: &str,
    cycle: &str,
) -> Answer {
    let request = app
        .client
        .post(app.url(path))
        .bearer_auth(credential)
        .json(&json!({"tier": tier, "cycle": cycle}));
    answer(&Method::POST, path, request).await
}

pub(super) async fn pending(app: &TestApp, token: &str) -> Vec<Value> {
    let request = app.client.get(app.url("/v1/billing")).bearer_auth(token);
    let shown = answer(&Method::GET, "/v1/billing", request).await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
    shown.body["pending"].as_array().unwrap().clone()
}

pub(super) fn form<'a>(request: &'a RecordedRequest, name: &str) -> Option<&'a str> {
    request
        .form
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn posts_to(stripe: &StripeServer, path: &str) -> Vec<RecordedRequest> {
    stripe
        .writes()
        .into_iter()
        .filter(|w| w.path == path)
        .collect()
}

async fn stored_customer(app: &TestApp, user: Uuid) -> Option<String> {
    sqlx::query_scalar("SELECT stripe_customer_id FROM users WHERE id = $1")
        .bind(user)
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_first_checkout_creates_the_customer_once_and_the_webhook_settles_it() {
    let (app, stripe) = app_with_stripe().await;
    let owner = user_on(&app, None).await;
    let token = user_token(&app, owner);

    let first = post_plan(&app, CHECKOUT, &token, "professional", "monthly").await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(first.body["session_id"], "cs_test_1");
    assert_eq!(
        first.body["url"],
        "https://checkout.stripe.com/c/pay/cs_test_1"
    );
    let customers = stripe.customers();
    assert_eq!(customers.len(), 1);
    assert_eq!(customers[0]["metadata"]["user_id"], owner.to_string());
    assert_eq!(
        stored_customer(&app, owner).await.as_deref(),
        Some("cus_test_1")
    );
    let session = &posts_to(&stripe, "/v1/checkout/sessions")[0];
    for (name, value) in [
        ("mode", "subscription"),
        ("customer", "cus_test_1"),
        ("client_reference_id", &*owner.to_string()),
        ("line_items[0][price]", "price_pro_m"),
        ("line_items[0][quantity]", "1"),
        (
            "success_url",
            "https://app.example.com/settings/billing?checkout=success&session_id={CHECKOUT_SESSION_ID}",
        ),
        (
            "cancel_url",
            "https://app.example.com/settings/billing?checkout=cancelled",
        ),
        ("subscription_data[trial_period_days]", "14"),
    ] {
        assert_eq!(form(session, name), Some(value), "{name}");
    }
    assert!(
        session
            .idempotency_key
            .as_deref()
            .is_some_and(|k| k.starts_with("mingus-checkout-"))
    );
    let shown = pending(&app, &token).await;
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert_eq!(
        (&shown[0]["action"], &shown[0]["tier"], &shown[0]["cycle"]),
        (
            &json!("checkout"),
            &json!("professional"),
            &json!("monthly")
        )
    );

    // Back on the billing page, the user picks another plan: the customer is reused, and the newer
    // checkout replaces the older one on display.
    let second = post_plan(&app, CHECKOUT, &token, "essentials", "annual").await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    assert_eq!(stripe.customers().len(), 1);
    assert_eq!(posts_to(&stripe, "/v1/customers").len(), 1);
    let session = &posts_to(&stripe, "/v1/checkout/sessions")[1];
    assert_eq!(form(session, "customer"), Some("cus_test_1"));
    assert_eq!(form(session, "line_items[0][price]"), Some("price_ess_a"));
    let shown = pending(&app, &token).await;
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert_eq!(shown[0]["tier"], "essentials");

    // Stripe completes the checkout: the webhooks create the subscription and settle the record.
    let now = Utc::now().timestamp();
    let user_id = owner.to_string();
    let completed = fx::checkout(ApiShape::Basil, "cus_test_1", &user_id, "sub_new_1");
    let completed = envelope(
        ApiShape::Basil,
        "evt_co_1",
        "checkout.session.completed",
        now - 2,
        completed,
    );
    let state = SubscriptionState {
        lookup_key: "essentials_annual",
        interval: "year",
        unit_amount: 10_000,
        ..SubscriptionState::new(
            "sub_new_1",
            "cus_test_1",
            "trialing",
            (now - 1, now + 365 * 86_400),
        )
    };
    let created = fx::subscription(ApiShape::Basil, &state);
    let created = envelope(
        ApiShape::Basil,
        "evt_sub_1",
        "customer.subscription.created",
        now - 1,
        created,
    );
    for event in [completed, created] {
        deliver(&app.db.pool, &app.config.stripe, &event, Utc::now())
            .await
            .unwrap();
    }
    assert!(pending(&app, &token).await.is_empty());
    let outcomes: Vec<(String, String)> = sqlx::query_as(
        "SELECT tier, outcome FROM billing_pending_actions WHERE user_id = $1 ORDER BY requested_at",
    )
    .bind(owner)
    .fetch_all(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(
        outcomes,
        [
            ("professional".to_owned(), "superseded".to_owned()),
            ("essentials".to_owned(), "applied".to_owned())
        ]
    );
    // Subscribed now: another checkout is refused before Stripe is called.
    let writes = stripe.writes().len();
    let again = post_plan(&app, CHECKOUT, &token, "executive", "monthly").await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    assert_eq!(again.code(), "subscription_exists");
    assert_eq!(stripe.writes().len(), writes);
}

#[tokio::test]
async fn two_first_checkouts_at_once_create_one_customer() {
    let (app, stripe) = app_with_stripe().await;
    let owner = user_on(&app, None).await;
    let token = user_token(&app, owner);
    // Both requests read "no customer" and reach Stripe before either stores one.
    stripe.set_delay(Duration::from_millis(300));
    let (a, b) = tokio::join!(
        post_plan(&app, CHECKOUT, &token, "essentials", "monthly"),
        post_plan(&app, CHECKOUT, &token, "professional", "annual"),
    );
    assert_eq!(
        (a.status, b.status),
        (StatusCode::OK, StatusCode::OK),
        "{} {}",
        a.body,
        b.body
    );
    let creations = posts_to(&stripe, "/v1/customers");
    assert_eq!(creations.len(), 2, "both asked Stripe");
    assert_eq!(creations[0].idempotency_key, creations[1].idempotency_key);
    assert_eq!(stripe.customers().len(), 1, "Stripe created one");
    let customer = stored_customer(&app, owner).await.unwrap();
    for session in posts_to(&stripe, "/v1/checkout/sessions") {
        assert_eq!(form(&session, "customer"), Some(&*customer));
    }
}

#[tokio::test]
async fn no_trial_for_a_returning_subscriber_nor_for_a_tier_without_one() {
    let (app, stripe) = app_with_stripe().await;
    let returning = user_on(&app, None).await;
    sqlx::query(
        "INSERT INTO subscriptions (user_id, plan_tier, plan_price, billing_cycle, status, current_period_start,
                                    current_period_end, stripe_subscription_id, stripe_status)
         VALUES ($1, 'essentials', 10, 'monthly', 'cancelled', now() - interval '60 days',
                 now() - interval '30 days', 'sub_old_1', 'canceled')",
    )
    .bind(returning)
    .execute(&app.db.pool)
    .await
    .unwrap();
    let answer = post_plan(
        &app,
        CHECKOUT,
        &user_token(&app, returning),
        "essentials",
        "monthly",
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let executive = user_on(&app, None).await;
    let answer = post_plan(
        &app,
        CHECKOUT,
        &user_token(&app, executive),
        "executive",
        "monthly",
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let sessions = posts_to(&stripe, "/v1/checkout/sessions");
    assert_eq!(sessions.len(), 2);
    for session in &sessions {
        assert_eq!(form(session, "subscription_data[trial_period_days]"), None);
    }
    assert_eq!(
        form(&sessions[1], "line_items[0][price]"),
        Some("price_exe_m")
    );
}

#[tokio::test]
async fn checkout_refusals_are_typed_and_reach_stripe_only_when_they_must() {
    let Billing { app, stripe, owner } = billing().await;
    let fresh = user_on(&app, None).await;
    let token = user_token(&app, fresh);
    let refusals = [
        (
            "gold",
            "monthly",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_plan",
        ),
        (
            "essentials",
            "weekly",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_plan",
        ),
        (
            "executive",
            "annual",
            StatusCode::UNPROCESSABLE_ENTITY,
            "plan_not_available",
        ),
    ];
    for (tier, cycle, status, code) in refusals {
        let refused = post_plan(&app, CHECKOUT, &token, tier, cycle).await;
        assert_eq!(
            (refused.status, refused.code()),
            (status, code),
            "{tier} {cycle}"
        );
    }
    let subscribed = post_plan(
        &app,
        CHECKOUT,
        &user_token(&app, owner),
        "essentials",
        "monthly",
    )
    .await;
    assert_eq!(subscribed.status, StatusCode::CONFLICT);
    assert_eq!(subscribed.code(), "subscription_exists");

    // API keys exist only on plans with API access (the Executive owner's).
    let key = key_with(&app, owner, &["usage:write"], 1000).await;
    let by_key = post_plan(&app, CHECKOUT, &key, "essentials", "monthly").await;
    assert_eq!(
        (by_key.status, by_key.code()),
        (StatusCode::FORBIDDEN, "user_session_required")
    );
    let (admin, _) = super::team::join(&app, owner, "admin").await;
    let acting = app
        .client
        .post(app.url(CHECKOUT))
        .bearer_auth(user_token(&app, admin))
        .header("Mingus-Account", owner.to_string())
        .json(&json!({"tier": "essentials", "cycle": "monthly"}));
    let acting = answer(&Method::POST, CHECKOUT, acting).await;
    assert_eq!(
        (acting.status, acting.code()),
        (StatusCode::FORBIDDEN, "account_owner_required")
    );
    assert!(stripe.writes().is_empty(), "nothing reached Stripe");

    // Stripe rate limiting (three attempts) or failing: 503, nothing stored, nothing pending.
    for scripted in [Scripted::rate_limited(), Scripted::server_error()] {
        for _ in 0..3 {
            stripe.script(scripted.clone());
        }
        let unavailable = post_plan(&app, CHECKOUT, &token, "essentials", "monthly").await;
        assert_eq!(
            unavailable.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            unavailable.body
        );
        assert_eq!(unavailable.code(), "billing_unavailable");
        assert!(unavailable.header("retry-after").is_some());
    }
    assert_eq!(stripe.writes().len(), 6);
    assert_eq!(stored_customer(&app, fresh).await, None);
    assert!(pending(&app, &token).await.is_empty());
}
