//! The customer page's actions (`POST /ops/customers/{id}/…`): every one changes the customer the first
//! time and nothing the second, leaves exactly one audit row per answer, evicts the cached entitlements
//! so `/v1/features` sees the change at once; a viewer is refused and nothing changes; bad input is a
//! typed 4xx that writes nothing. Effects in detail: [`effects`].

mod effects;

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use mingus_api::ops::actions;
use mingus_api::ops::actor::OpsRole;
use mingus_api::ops::operators;
use mingus_common::stripe_api::store_event;
use mingus_tests::TestApp;
use mingus_tests::frontend::user_token;
use mingus_tests::stripe::{self as fx, ApiShape};
use mingus_tests::wait::count;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

pub(super) async fn operator(app: &TestApp, name: &str, role: OpsRole) -> String {
    operators::create(&app.db.pool, name, role).await.unwrap().1
}

pub(super) async fn post(
    app: &TestApp,
    bearer: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = app.client.post(app.url(path)).bearer_auth(bearer);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

pub(super) async fn audit_rows(app: &TestApp) -> i64 {
    count(&app.db.pool, "SELECT count(*) FROM ops_audit_log").await
}

/// A successful action: 200, and exactly one new audit row naming its actor, action and customer.
pub(super) async fn acted(
    app: &TestApp,
    (bearer, name): (&str, &str),
    user: Uuid,
    path: &str,
    body: Option<Value>,
    action: &str,
) -> Value {
    let rows = audit_rows(app).await;
    let (status, reply) = post(app, bearer, path, body).await;
    assert_eq!(status, StatusCode::OK, "POST {path}: {reply}");
    assert_eq!(
        audit_rows(app).await,
        rows + 1,
        "POST {path}: one audit row"
    );
    let (actor, logged, target, after, outcome): (String, String, Option<String>, Value, String) =
        sqlx::query_as(
            "SELECT actor, action, target, after, outcome FROM ops_audit_log ORDER BY id DESC LIMIT 1",
        )
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(
        (actor.as_str(), logged.as_str(), outcome.as_str()),
        (name, action, "ok")
    );
    assert_eq!(target, Some(user.to_string()));
    assert_eq!(after["changed"], reply["changed"], "{after} vs {reply}");
    assert_eq!(reply["action"], action);
    assert_eq!(reply["cache_evicted"], true, "{reply}");
    reply
}

/// `GET /v1/features/{feature}` as the user.
pub(super) async fn feature(app: &TestApp, user: Uuid, name: &str) -> Value {
    let response = app
        .client
        .get(app.url(&format!("/v1/features/{name}")))
        .bearer_auth(user_token(app, user))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// A customer on `tier` with a subscription of `status` (a trial ends in three days), access granted.
pub(super) async fn customer(
    app: &TestApp,
    tier: &str,
    status: &str,
    stripe_sub: Option<&str>,
) -> Uuid {
    let pool = &app.db.pool;
    let user = crate::fixtures::user(pool).await;
    sqlx::query(
        "INSERT INTO subscriptions (user_id, plan_tier, plan_price, billing_cycle, status, current_period_start,
                                    current_period_end, trial_start, trial_end, stripe_subscription_id)
         VALUES ($1, $2, 10.00, 'monthly', $3, now(), now() + interval '1 month',
                 CASE WHEN $3 = 'trial' THEN now() END,
                 CASE WHEN $3 = 'trial' THEN date_trunc('second', now()) + interval '3 days' END, $4)",
    )
    .bind(user)
    .bind(tier)
    .bind(status)
    .bind(stripe_sub)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("SELECT mingus_recompute_access($1, now())")
        .bind(user)
        .execute(pool)
        .await
        .unwrap();
    user
}

pub(super) async fn trial_end(app: &TestApp, user: Uuid) -> DateTime<Utc> {
    sqlx::query_scalar("SELECT trial_end FROM subscriptions WHERE user_id = $1")
        .bind(user)
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
}

/// `used` units of `metric` in the user's current usage period.
pub(super) async fn used(app: &TestApp, user: Uuid, metric: &str, used: i64) {
    sqlx::query(
        "INSERT INTO usage_counters (user_id, metric, period_start, period_end, used)
         SELECT $1, $2, p.period_start, p.period_end, $3
         FROM mingus_usage_period(mingus_usage_anchor($1, now()), now()) p",
    )
    .bind(user)
    .bind(metric)
    .bind(used)
    .execute(&app.db.pool)
    .await
    .unwrap();
}

/// A finished delivery of `template` to the user.
pub(super) async fn delivery(app: &TestApp, user: Uuid, template: &str, status: &str) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO email_deliveries (user_id, template, recipient, data, dedupe_key, status)
         VALUES ($1, $2, 'person@example.com', '{\"amount\": \"10.00\"}', $3, $4) RETURNING id",
    )
    .bind(user)
    .bind(template)
    .bind(format!("test:{}", Uuid::new_v4()))
    .bind(status)
    .fetch_one(&app.db.pool)
    .await
    .unwrap()
}

/// A stored event about Stripe customer `cus`, marked failed (the replay is what is under test).
pub(super) async fn failed_event(app: &TestApp, id: &str, cus: &str) {
    let shape = ApiShape::Basil;
    let object = fx::customer(shape, cus, Some("nobody@example.com"), None);
    let event = fx::envelope(
        shape,
        id,
        "customer.updated",
        Utc::now().timestamp(),
        object,
    );
    let mut conn = app.db.pool.acquire().await.unwrap();
    store_event(&mut conn, &event, app.config.stripe.mode)
        .await
        .unwrap();
    sqlx::query("UPDATE stripe_events SET status = 'failed', last_error = 'boom' WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await
        .unwrap();
}

pub(super) async fn link_stripe_customer(app: &TestApp, user: Uuid, cus: &str) {
    sqlx::query("UPDATE users SET stripe_customer_id = $2 WHERE id = $1")
        .bind(user)
        .bind(cus)
        .execute(&app.db.pool)
        .await
        .unwrap();
}

/// Every customer action, twice each as support: the first call changes the customer, the repeat
/// changes nothing and says so; one audit row per answer.
#[tokio::test]
async fn every_customer_action_changes_once_answers_the_same_when_repeated_and_is_audited() {
    let app = TestApp::spawn().await;
    let support = operator(&app, "sam", OpsRole::Support).await;
    let user = customer(&app, "essentials", "trial", None).await;
    used(&app, user, "financial_reports_per_month", 2).await;
    let sent = delivery(&app, user, "payment_failed", "sent").await;
    link_stripe_customer(&app, user, "cus_tour").await;
    failed_event(&app, "evt_tour", "cus_tour").await;
    // Drift the recompute repairs: a subscription grant deleted by hand.
    sqlx::query("DELETE FROM feature_access WHERE user_id = $1 AND feature_name = 'goal_setting'")
        .bind(user)
        .execute(&app.db.pool)
        .await
        .unwrap();
    let expires = (Utc::now() + chrono::Duration::days(30)).to_rfc3339();
    let trial = trial_end(&app, user).await.to_rfc3339();
    let base = format!("/ops/customers/{user}");
    // The recompute first: the revoke and the trial extension recompute too, and would repair the drift.
    let tour: Vec<(String, Option<Value>, &str)> = vec![
        (
            format!("{base}/access/recompute"),
            None,
            "customer.access_recompute",
        ),
        (
            format!("{base}/promotions"),
            Some(
                json!({"feature": "custom_reports", "access_level": "premium", "expires_at": expires}),
            ),
            "customer.promotion_grant",
        ),
        (
            format!("{base}/promotions/custom_reports/revoke"),
            None,
            "customer.promotion_revoke",
        ),
        (
            format!("{base}/trial/extend"),
            Some(json!({"days": 7, "expected_trial_end": trial})),
            "customer.trial_extend",
        ),
        (
            format!("{base}/usage/financial_reports_per_month/reset"),
            None,
            "customer.usage_reset",
        ),
        (
            format!("{base}/emails/{sent}/resend"),
            None,
            "customer.email_resend",
        ),
        (
            format!("{base}/stripe-events/replay"),
            None,
            "customer.stripe_replay",
        ),
    ];
    let mut done = BTreeSet::new();
    for (path, body, action) in tour {
        let first = acted(&app, (&support, "sam"), user, &path, body.clone(), action).await;
        assert_eq!(first["changed"], true, "{path}: {first}");
        let again = acted(&app, (&support, "sam"), user, &path, body, action).await;
        assert_eq!(again["changed"], false, "{path} repeated: {again}");
        // A replay's answer lists what it replayed this time: nothing, the second time.
        if action != "customer.stripe_replay" {
            assert_eq!(again["after"], first["after"], "{path}: the same state");
        }
        done.insert(action);
    }
    let customer_actions: BTreeSet<&str> = actions::ALL
        .iter()
        .filter(|a| a.route.starts_with("/ops/customers/"))
        .map(|a| a.name)
        .collect();
    assert_eq!(done, customer_actions, "every customer action is covered");
    assert!(
        actions::ALL
            .iter()
            .filter(|a| a.route.starts_with("/ops/customers/"))
            .all(|a| a.role == OpsRole::Support)
    );
}

/// A viewer is refused every customer action with 403: nothing changes and nothing is recorded.
#[tokio::test]
async fn a_viewer_cannot_act_on_a_customer_and_nothing_changes() {
    let app = TestApp::spawn().await;
    let viewer = operator(&app, "vera", OpsRole::Viewer).await;
    let user = customer(&app, "essentials", "trial", None).await;
    used(&app, user, "financial_reports_per_month", 2).await;
    let sent = delivery(&app, user, "payment_failed", "sent").await;
    let state = || async {
        sqlx::query_scalar::<_, String>(
            "SELECT (SELECT coalesce(string_agg(feature_name || access_level || granted_by, ',' ORDER BY feature_name), '')
                     FROM feature_access WHERE user_id = $1)
                 || (SELECT trial_end::text FROM subscriptions WHERE user_id = $1)
                 || (SELECT sum(used)::text FROM usage_counters WHERE user_id = $1)
                 || (SELECT count(*)::text FROM email_deliveries WHERE user_id = $1)",
        )
        .bind(user)
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
    };
    let before = state().await;
    let expires = (Utc::now() + chrono::Duration::days(30)).to_rfc3339();
    let trial = trial_end(&app, user).await.to_rfc3339();
    let base = format!("/ops/customers/{user}");
    for (path, body) in [
        (
            format!("{base}/promotions"),
            Some(
                json!({"feature": "custom_reports", "access_level": "premium", "expires_at": expires}),
            ),
        ),
        (format!("{base}/promotions/basic_analytics/revoke"), None),
        (
            format!("{base}/trial/extend"),
            Some(json!({"days": 7, "expected_trial_end": trial})),
        ),
        (
            format!("{base}/usage/financial_reports_per_month/reset"),
            None,
        ),
        (format!("{base}/emails/{sent}/resend"), None),
        (format!("{base}/stripe-events/replay"), None),
        (format!("{base}/access/recompute"), None),
    ] {
        let (status, reply) = post(&app, &viewer, &path, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {reply}");
        assert_eq!(reply["error"]["code"], "forbidden_role", "{reply}");
    }
    assert_eq!(audit_rows(&app).await, 0);
    assert_eq!(state().await, before);
    assert_eq!(feature(&app, user, "custom_reports").await["access"], false);
}

/// Bad input and unknown targets: a typed 4xx with a code, no write, no audit row.
#[tokio::test]
async fn bad_input_is_a_typed_4xx_that_writes_nothing() {
    let app = TestApp::spawn().await;
    let support = operator(&app, "sam", OpsRole::Support).await;
    let user = customer(&app, "essentials", "active", None).await;
    let stripe_trial = customer(&app, "essentials", "trial", Some("sub_stripe_trial")).await;
    let queued = delivery(&app, user, "payment_failed", "queued").await;
    let nobody = Uuid::new_v4();
    let base = format!("/ops/customers/{user}");
    let soon = (Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    let grant = |feature: &str, level: &str, at: &str| {
        Some(json!({"feature": feature, "access_level": level, "expires_at": at}))
    };
    let too_far = (Utc::now() + chrono::Duration::days(400)).to_rfc3339();
    let past = (Utc::now() - chrono::Duration::days(1)).to_rfc3339();
    let stripe_end = trial_end(&app, stripe_trial).await.to_rfc3339();
    let cases: Vec<(String, Option<Value>, StatusCode, &str)> = vec![
        (
            format!("/ops/customers/{nobody}/access/recompute"),
            None,
            StatusCode::NOT_FOUND,
            "unknown_customer",
        ),
        (
            format!("/ops/customers/{nobody}/promotions"),
            grant("custom_reports", "basic", &soon),
            StatusCode::NOT_FOUND,
            "unknown_customer",
        ),
        (
            "/ops/customers/not-a-uuid/access/recompute".into(),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_user_id",
        ),
        (
            format!("{base}/promotions"),
            grant("teleportation", "basic", &soon),
            StatusCode::BAD_REQUEST,
            "unknown_feature",
        ),
        (
            format!("{base}/promotions"),
            grant("custom_reports", "none", &soon),
            StatusCode::BAD_REQUEST,
            "invalid_access_level",
        ),
        (
            format!("{base}/promotions"),
            grant("custom_reports", "basic", &past),
            StatusCode::BAD_REQUEST,
            "invalid_expires_at",
        ),
        (
            format!("{base}/promotions"),
            grant("custom_reports", "basic", &too_far),
            StatusCode::BAD_REQUEST,
            "invalid_expires_at",
        ),
        (
            format!("{base}/promotions"),
            grant("custom_reports", "basic", "next week"),
            StatusCode::BAD_REQUEST,
            "invalid_expires_at",
        ),
        (
            format!("{base}/promotions"),
            Some(json!({"feature": "custom_reports", "access_level": "basic"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_json",
        ),
        (
            format!("{base}/promotions/basic_analytics/revoke"),
            None,
            StatusCode::CONFLICT,
            "subscription_grant",
        ),
        (
            format!("{base}/trial/extend"),
            Some(json!({"days": 7, "expected_trial_end": soon})),
            StatusCode::CONFLICT,
            "no_trial",
        ),
        (
            format!("{base}/trial/extend"),
            Some(json!({"days": 0, "expected_trial_end": soon})),
            StatusCode::BAD_REQUEST,
            "invalid_days",
        ),
        (
            format!("{base}/trial/extend"),
            Some(json!({"days": 91, "expected_trial_end": soon})),
            StatusCode::BAD_REQUEST,
            "invalid_days",
        ),
        (
            format!("/ops/customers/{stripe_trial}/trial/extend"),
            Some(json!({"days": 7, "expected_trial_end": stripe_end})),
            StatusCode::CONFLICT,
            "stripe_managed_trial",
        ),
        (
            format!("{base}/usage/goal_tracking/reset"),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_metric",
        ),
        (
            format!("{base}/usage/nonsense/reset"),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_metric",
        ),
        (
            format!("{base}/emails/not-a-uuid/resend"),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_delivery_id",
        ),
        (
            format!("{base}/emails/{}/resend", Uuid::new_v4()),
            None,
            StatusCode::NOT_FOUND,
            "unknown_delivery",
        ),
        (
            format!("/ops/customers/{stripe_trial}/emails/{queued}/resend"),
            None,
            StatusCode::NOT_FOUND,
            "unknown_delivery",
        ),
        (
            format!("{base}/emails/{queued}/resend"),
            None,
            StatusCode::CONFLICT,
            "delivery_in_flight",
        ),
    ];
    let rows = || async {
        count(
            &app.db.pool,
            "SELECT (SELECT count(*) FROM feature_access WHERE granted_by <> 'subscription')
                  + (SELECT count(*) FROM email_deliveries) + (SELECT count(*) FROM job_outbox)",
        )
        .await
    };
    let before = rows().await;
    for (path, body, status, code) in cases {
        let (got, reply) = post(&app, &support, &path, body).await;
        assert_eq!(
            (got, reply["error"]["code"].as_str()),
            (status, Some(code)),
            "{path}: {reply}"
        );
    }
    assert_eq!(rows().await, before, "nothing written");
    assert_eq!(audit_rows(&app).await, 0, "nothing recorded");
    assert_eq!(
        trial_end(&app, stripe_trial).await.to_rfc3339(),
        stripe_end,
        "Stripe's trial untouched"
    );
}
