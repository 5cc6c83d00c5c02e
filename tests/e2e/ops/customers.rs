//! The customer page's JSON: search by e-mail, user id, Stripe customer, subscription or invoice id;
//! one customer's subscriptions, Stripe events, invoices, features with reasons and usage; bad input.

use mingus_api::ops::actor::OpsRole;
use mingus_api::ops::operators;
use mingus_common::stripe_api::store_event;
use mingus_tests::TestApp;
use mingus_tests::stripe::{self as fx, ApiShape};
use reqwest::StatusCode;
use serde_json::Value;
use uuid::Uuid;

/// An Essentials customer linked to `cus_page`, with a Stripe subscription, one paid invoice and one
/// stored Stripe event about the customer.
async fn essentials_customer(app: &TestApp) -> Uuid {
    let pool = &app.db.pool;
    let user: Uuid = sqlx::query_scalar(
        "INSERT INTO users (email, full_name, stripe_customer_id) VALUES ('Page.Person@example.com', 'Page Person', 'cus_page') RETURNING id",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    let subscription: Uuid = sqlx::query_scalar(
        "INSERT INTO subscriptions (user_id, plan_tier, plan_price, billing_cycle, status, current_period_start,
                                    current_period_end, stripe_subscription_id)
         VALUES ($1, 'essentials', 10.00, 'monthly', 'active', now(), now() + interval '1 month', 'sub_page') RETURNING id",
    )
    .bind(user)
    .fetch_one(pool)
    .await
    .unwrap();
    sqlx::query("SELECT mingus_recompute_access($1, now())")
        .bind(user)
        .execute(pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO billing_history (subscription_id, user_id, amount, status, payment_method, transaction_id)
         VALUES ($1, $2, 10.00, 'paid', 'stripe', 'in_page')",
    )
    .bind(subscription)
    .bind(user)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO api_keys (user_id, key_name, key_prefix, api_key_hash) VALUES ($1, 'ci', 'mk_live_abc123', 'secret-hash-page')",
    )
    .bind(user)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO email_deliveries (user_id, template, recipient, dedupe_key, status) VALUES ($1, 'welcome', 'page.person@example.com', 'page-welcome', 'sent')",
    )
    .bind(user)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("INSERT INTO email_suppressions (user_id, category, source) VALUES ($1, 'reminders', 'link')")
        .bind(user)
        .execute(pool)
        .await
        .unwrap();
    let shape = ApiShape::Basil;
    let object = fx::customer(shape, "cus_page", Some("page.person@example.com"), None);
    let event = fx::envelope(
        shape,
        "evt_page",
        "customer.updated",
        chrono::Utc::now().timestamp(),
        object,
    );
    let mut conn = pool.acquire().await.unwrap();
    store_event(&mut conn, &event, app.config.stripe.mode)
        .await
        .unwrap();
    user
}

async fn get_as(app: &TestApp, bearer: &str, path: &str) -> (StatusCode, Value) {
    let response = app
        .client
        .get(app.url(path))
        .bearer_auth(bearer)
        .send()
        .await
        .unwrap();
    (
        response.status(),
        response.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn a_viewer_finds_a_customer_by_any_id_and_reads_their_page() {
    let app = TestApp::spawn().await;
    let (_, viewer) = operators::create(&app.db.pool, "vic", OpsRole::Viewer)
        .await
        .unwrap();
    let user = essentials_customer(&app).await;
    let other = crate::fixtures::user(&app.db.pool).await;

    for q in [
        "page.person@example.com",
        "PAGE.per",
        &user.to_string(),
        "cus_page",
        "sub_page",
        "in_page",
    ] {
        let (status, body) =
            get_as(&app, &viewer, &format!("/ops/customers?q={}", urlencode(q))).await;
        assert_eq!(status, StatusCode::OK, "{q}: {body}");
        let items = body["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{q}: {body}");
        assert_eq!(items[0]["id"], user.to_string());
        assert_eq!(items[0]["plan_tier"], "essentials");
    }
    // A LIKE wildcard in the text matches itself only.
    let (_, body) = get_as(&app, &viewer, "/ops/customers?q=%25%25%25").await;
    assert_eq!(body["items"].as_array().unwrap().len(), 0, "{body}");

    let (status, page) = get_as(&app, &viewer, &format!("/ops/customers/{user}")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["customer"]["email"], "Page.Person@example.com");
    assert_eq!(page["tier"], "essentials");
    assert_eq!(
        page["subscriptions"][0]["stripe_subscription_id"],
        "sub_page"
    );
    assert_eq!(page["subscriptions"][0]["plan_price"], "10.00");
    assert_eq!(page["invoices"][0]["transaction_id"], "in_page");
    assert_eq!(page["invoices"][0]["amount"], "10.00");
    assert_eq!(page["stripe_events"][0]["id"], "evt_page");
    let feature = |name: &str| {
        page["features"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["feature"] == name)
            .unwrap_or_else(|| panic!("{name} in {page}"))
            .clone()
    };
    assert_eq!(feature("basic_analytics")["access"], true);
    let custom = feature("custom_reports");
    assert_eq!(custom["access"], false);
    assert_eq!(custom["reason"], "feature_not_included");
    assert!(
        page["usage"].as_array().is_some_and(|u| !u.is_empty()),
        "{page}"
    );

    // Another user's page has none of it.
    let (_, theirs) = get_as(&app, &viewer, &format!("/ops/customers/{other}")).await;
    assert_eq!(theirs["stripe_events"], serde_json::json!([]));
    assert_eq!(theirs["invoices"], serde_json::json!([]));
}

#[tokio::test]
async fn bad_searches_and_ids_are_typed_4xx() {
    let app = TestApp::spawn().await;
    let (_, viewer) = operators::create(&app.db.pool, "vic", OpsRole::Viewer)
        .await
        .unwrap();
    for (path, status, code) in [
        ("/ops/customers", StatusCode::BAD_REQUEST, "invalid_search"),
        (
            "/ops/customers?q=ab",
            StatusCode::BAD_REQUEST,
            "invalid_search",
        ),
        (
            "/ops/customers/not-a-uuid",
            StatusCode::BAD_REQUEST,
            "invalid_user_id",
        ),
        (
            "/ops/customers/0193a4b2-0000-7000-8000-000000000001",
            StatusCode::NOT_FOUND,
            "unknown_customer",
        ),
    ] {
        let (got, body) = get_as(&app, &viewer, path).await;
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{path}: {body}"
        );
    }
    let long = "x".repeat(256);
    let (got, _) = get_as(&app, &viewer, &format!("/ops/customers?q={long}")).await;
    assert_eq!(got, StatusCode::BAD_REQUEST);
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
