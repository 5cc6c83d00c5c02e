//! The metered-usage API (issue 21): `POST /v1/usage/{metric}` counts once per Idempotency-Key and
//! refuses with the reason and `resets_at`; concurrent consumes grant exactly the limit; `GET /v1/usage`
//! and `GET /v1/features` report every metric; bad input counts nothing.

use mingus_tests::TestApp;
use mingus_tests::frontend::user_token;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Answer, answer, executive, key_with, send, user_on};

/// `POST /v1/usage/{metric}` with `body` and, when given, `Idempotency-Key: key`.
async fn consume(
    app: &TestApp,
    credential: &str,
    metric: &str,
    key: Option<&str>,
    body: Value,
) -> Answer {
    let path = format!("/v1/usage/{metric}");
    let mut request = app
        .client
        .post(app.url(&path))
        .bearer_auth(credential)
        .json(&body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    answer(&Method::POST, &path, request).await
}

async fn counted(app: &TestApp, user: Uuid, metric: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT coalesce(sum(used), 0)::bigint FROM usage_counters WHERE user_id = $1 AND metric = $2",
    )
    .bind(user)
    .bind(metric)
    .fetch_one(&app.db.pool)
    .await
    .unwrap()
}

async fn events(app: &TestApp, user: Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM usage_events WHERE user_id = $1")
        .bind(user)
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_same_key_never_counts_twice() {
    let app = TestApp::spawn().await;
    let user = user_on(&app, Some("professional")).await;
    let token = user_token(&app, user);
    let metric = "ai_insights_per_month";

    let first = consume(
        &app,
        &token,
        metric,
        Some("insight-1"),
        json!({"amount": 2}),
    )
    .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(first.body["usage"], 2);
    assert_eq!(
        first.body["limit"], 50,
        "ai_insights_per_month of Professional"
    );
    assert_eq!(first.body["remaining"], 48);
    assert_eq!(first.body["replayed"], false);
    assert!(first.body["resets_at"].is_string());

    let again = consume(
        &app,
        &token,
        metric,
        Some("insight-1"),
        json!({"amount": 2}),
    )
    .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.body["replayed"], true);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body["usage"], 2, "nothing new counted");
    assert_eq!(again.body["resets_at"], first.body["resets_at"]);

    let reused = consume(
        &app,
        &token,
        metric,
        Some("insight-1"),
        json!({"amount": 3}),
    )
    .await;
    assert_eq!(reused.status, StatusCode::CONFLICT);
    assert_eq!(reused.code(), "idempotency_key_reused");
    let other_metric = consume(
        &app,
        &token,
        "financial_reports_per_month",
        Some("insight-1"),
        json!({}),
    )
    .await;
    assert_eq!(other_metric.code(), "idempotency_key_reused");

    // The same key sent ten times at once still counts once.
    let burst = (0..10).map(|_| consume(&app, &token, metric, Some("insight-2"), json!({})));
    let answers = futures::future::join_all(burst).await;
    assert!(answers.iter().all(|a| a.status == StatusCode::OK));
    assert_eq!(
        answers
            .iter()
            .filter(|a| a.body["replayed"] == false)
            .count(),
        1,
        "exactly one of the duplicates counted"
    );
    assert_eq!(counted(&app, user, metric).await, 3);
    assert_eq!(events(&app, user).await, 2);

    let read = send(
        &app,
        Method::GET,
        &format!("/v1/usage/{metric}"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert_eq!(read.body["usage"], 3);
    assert_eq!(read.body["remaining"], 47);
    assert_eq!(read.body["access"], true);
    assert_eq!(read.body["kind"], "per_period");
    assert_eq!(read.body["feature"], "advanced_ai_insights");
}

#[tokio::test]
async fn refusals_say_why_and_when_the_allowance_resets() {
    let app = TestApp::spawn().await;
    let essentials = user_on(&app, Some("essentials")).await;
    let token = user_token(&app, essentials);

    let not_included = consume(&app, &token, "ai_insights_per_month", Some("a"), json!({})).await;
    assert_eq!(not_included.status, StatusCode::FORBIDDEN);
    assert_eq!(not_included.code(), "feature_not_included");
    assert_eq!(not_included.body["error"]["reason"], "feature_not_included");
    assert_eq!(
        not_included.body["error"]["feature"],
        "advanced_ai_insights"
    );
    assert_eq!(not_included.body["error"]["tier"], "essentials");

    let checkins = "health_checkins_per_month";
    let four = consume(&app, &token, checkins, Some("c-1"), json!({"amount": 4})).await;
    assert_eq!(four.status, StatusCode::OK, "{}", four.body);
    assert_eq!(four.body["limit"], 4, "Essentials: 4 check-ins a month");
    assert_eq!(four.body["remaining"], 0);
    let fifth = consume(&app, &token, checkins, Some("c-2"), json!({})).await;
    assert_eq!(
        fifth.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        fifth.body
    );
    assert_eq!(fifth.code(), "usage_limit_exceeded");
    let error = &fifth.body["error"];
    assert_eq!(error["reason"], "usage_limit_exceeded");
    assert_eq!(error["metric"], checkins);
    assert_eq!(
        (error["limit"].as_i64(), error["usage"].as_i64()),
        (Some(4), Some(4))
    );
    assert_eq!(error["resets_at"], four.body["resets_at"]);
    let wait: i64 = fifth.header("retry-after").unwrap().parse().unwrap();
    assert!(wait > 0 && wait <= 31 * 86_400, "Retry-After {wait}");
    assert_eq!(counted(&app, essentials, checkins).await, 4);
    assert_eq!(events(&app, essentials).await, 1, "a refusal stores no key");

    // All or nothing: 3 more of an allowance with none left counts none.
    let reports = "financial_reports_per_month";
    let too_many = consume(&app, &token, reports, Some("r-1"), json!({"amount": 3})).await;
    assert_eq!(too_many.code(), "usage_limit_exceeded");
    assert_eq!(counted(&app, essentials, reports).await, 0);

    let nobody = user_on(&app, None).await;
    let refused = consume(
        &app,
        &user_token(&app, nobody),
        checkins,
        Some("n"),
        json!({}),
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.code(), "no_active_subscription");
    assert_eq!(refused.body["error"]["feature"], Value::Null);
    assert_eq!(counted(&app, nobody, checkins).await, 0);
}

#[tokio::test]
async fn concurrent_consumes_are_granted_exactly_the_limit() {
    let app = TestApp::spawn().await;
    let user = user_on(&app, Some("professional")).await;
    let token = user_token(&app, user);
    // custom_reports_per_month of Professional: 5. Twenty distinct uses race for them.
    let calls = (0..20).map(|n| {
        let key = format!("race-{n}");
        let token = token.clone();
        let app = &app;
        async move {
            consume(
                app,
                &token,
                "custom_reports_per_month",
                Some(&key),
                json!({}),
            )
            .await
        }
    });
    let answers = futures::future::join_all(calls).await;
    let granted = answers
        .iter()
        .filter(|a| a.status == StatusCode::OK)
        .count();
    let refused = answers
        .iter()
        .filter(|a| a.code() == "usage_limit_exceeded")
        .count();
    assert_eq!((granted, refused), (5, 15));
    assert_eq!(counted(&app, user, "custom_reports_per_month").await, 5);
    assert_eq!(events(&app, user).await, 5);
}

#[tokio::test]
async fn bad_input_counts_nothing_and_is_a_typed_4xx() {
    let app = TestApp::spawn().await;
    let owner = executive(&app).await;
    let token = user_token(&app, owner);
    let metric = "ai_insights_per_month";
    let cases: Vec<(Answer, StatusCode, &str)> = vec![
        (
            consume(&app, &token, "teleports_per_month", Some("k"), json!({})).await,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            consume(&app, &token, "goal_tracking", Some("k"), json!({})).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "metric_not_consumable",
        ),
        (
            consume(&app, &token, metric, Some("k"), json!({"amount": 0})).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_amount",
        ),
        (
            consume(&app, &token, metric, Some("k"), json!({"amount": 1001})).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_amount",
        ),
        (
            consume(&app, &token, metric, Some("k"), json!({"amount": "two"})).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            consume(&app, &token, metric, Some("k"), json!({"units": 1})).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            consume(&app, &token, metric, None, json!({})).await,
            StatusCode::BAD_REQUEST,
            "idempotency_key_required",
        ),
    ];
    for (answer, status, code) in &cases {
        assert_eq!(
            (answer.status, answer.code()),
            (*status, *code),
            "{}",
            answer.body
        );
    }
    let path = format!("/v1/usage/{metric}");
    let long_key = "k".repeat(256);
    let bad_key = app
        .client
        .post(app.url(&path))
        .bearer_auth(&token)
        .header("Idempotency-Key", long_key)
        .json(&json!({}));
    let bad_key = answer(&Method::POST, &path, bad_key).await;
    assert_eq!(bad_key.code(), "invalid_idempotency_key");
    let not_json = app
        .client
        .post(app.url(&path))
        .bearer_auth(&token)
        .header("Idempotency-Key", "k")
        .header("content-type", "application/json")
        .body("{amount");
    assert_eq!(
        answer(&Method::POST, &path, not_json).await.code(),
        "invalid_json"
    );

    // A key without usage:write, and a viewer acting for the owner, may read but not consume.
    let key = key_with(&app, owner, &["usage:read"], 1000).await;
    let scoped = consume(&app, &key, metric, Some("k"), json!({})).await;
    assert_eq!(scoped.code(), "insufficient_scope");
    let read = send(&app, Method::GET, "/v1/usage", Some(&key), None).await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    let (viewer, _) = super::team::join(&app, owner, "viewer").await;
    let path_viewer = app
        .client
        .post(app.url(&path))
        .bearer_auth(user_token(&app, viewer))
        .header("Mingus-Account", owner.to_string())
        .header("Idempotency-Key", "k")
        .json(&json!({}));
    let as_viewer = answer(&Method::POST, &path, path_viewer).await;
    assert_eq!(as_viewer.code(), "team_role_insufficient");
    let unknown = send(&app, Method::GET, "/v1/usage/nothing", Some(&token), None).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);

    assert_eq!(counted(&app, owner, metric).await, 0);
    assert_eq!(events(&app, owner).await, 0);
}

#[tokio::test]
async fn every_metric_is_reported_including_checkins() {
    let app = TestApp::spawn().await;
    let user = user_on(&app, Some("essentials")).await;
    let token = user_token(&app, user);
    let used = consume(
        &app,
        &token,
        "health_checkins_per_month",
        Some("1"),
        json!({}),
    )
    .await;
    assert_eq!(used.status, StatusCode::OK, "{}", used.body);

    let listed = send(&app, Method::GET, "/v1/features", Some(&token), None).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let metrics = listed.body["metrics"].as_array().unwrap();
    let names: Vec<&str> = metrics
        .iter()
        .map(|m| m["metric"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "health_checkins_per_month",
            "financial_reports_per_month",
            "ai_insights_per_month",
            "custom_reports_per_month",
            "goal_tracking",
            "team_members",
            "api_calls_per_hour"
        ]
    );
    let checkins = &metrics[0];
    assert_eq!(checkins["usage"], 1);
    assert_eq!(checkins["limit"], 4);
    assert_eq!(checkins["remaining"], 3);
    assert_eq!(checkins["access"], true);
    let goals = &metrics[4];
    assert_eq!(
        (goals["kind"].as_str(), goals["limit"].as_i64()),
        (Some("cap"), Some(3))
    );
    assert_eq!(goals["usage"], 0);
    let ai = &metrics[2];
    assert_eq!(ai["access"], false);
    assert_eq!(ai["reason"], "feature_not_included");

    let usage = send(&app, Method::GET, "/v1/usage", Some(&token), None).await;
    assert_eq!(
        usage.body["metrics"], listed.body["metrics"],
        "the same view"
    );
}
