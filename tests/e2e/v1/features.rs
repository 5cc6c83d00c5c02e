//! `GET /v1/features` and `GET /v1/features/{feature}`: the caller's plan answered per feature with the
//! reason, tier, level, usage, limit and reset; unknown names 404; credentials required.

use mingus_tests::frontend::user_token;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::{grant_plan, invalidate, move_to_professional, send, user_on};

async fn feature(app: &mingus_tests::TestApp, token: &str, name: &str) -> Value {
    let answer = send(
        app,
        Method::GET,
        &format!("/v1/features/{name}"),
        Some(token),
        None,
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert!(
        answer.header("ratelimit-limit").is_some(),
        "rate-limit headers on /v1"
    );
    answer.body
}

#[tokio::test]
async fn each_feature_is_answered_for_the_callers_plan() {
    let app = mingus_tests::TestApp::spawn().await;
    let essentials = user_on(&app, Some("essentials")).await;
    grant_plan(&app, essentials).await;
    let token = user_token(&app, essentials);

    let reports = feature(&app, &token, "basic_analytics").await;
    assert_eq!(reports["access"], true);
    assert_eq!(reports["tier"], "essentials");
    assert_eq!(
        reports["limit"], 2,
        "financial_reports_per_month of Essentials"
    );
    assert_eq!(reports["usage"], 0);
    assert!(reports["resets_at"].is_string(), "{reports}");

    let custom = feature(&app, &token, "custom_reports").await;
    assert_eq!(custom["access"], false);
    assert_eq!(custom["reason"], "feature_not_included");

    let professional = user_on(&app, Some("professional")).await;
    grant_plan(&app, professional).await;
    let custom = feature(&app, &user_token(&app, professional), "custom_reports").await;
    assert_eq!(custom["access"], true);
    assert_eq!(custom["tier"], "professional");
    assert_eq!(
        custom["limit"], 5,
        "custom_reports_per_month of Professional"
    );

    let nobody = user_on(&app, None).await;
    let refused = feature(&app, &user_token(&app, nobody), "basic_analytics").await;
    assert_eq!(refused["access"], false);
    assert_eq!(refused["reason"], "no_active_subscription");
}

#[tokio::test]
async fn the_list_covers_every_tier_feature_and_unknown_names_are_404() {
    let app = mingus_tests::TestApp::spawn().await;
    let user = user_on(&app, Some("essentials")).await;
    grant_plan(&app, user).await;
    let token = user_token(&app, user);

    let listed = send(&app, Method::GET, "/v1/features", Some(&token), None).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let names: Vec<&str> = listed.body["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["feature"].as_str().unwrap())
        .collect();
    let catalogue: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT f FROM pricing_tiers, jsonb_object_keys(features) AS f ORDER BY f",
    )
    .fetch_all(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(names, catalogue, "every feature any tier offers, in order");
    let granted = listed.body["features"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["access"] == true)
        .count();
    assert_eq!(granted, 4, "Essentials has four features");
    // The list reads the plan once; each entry is what the feature's own route answers.
    for entry in listed.body["features"].as_array().unwrap() {
        let name = entry["feature"].as_str().unwrap();
        assert_eq!(&feature(&app, &token, name).await, entry, "{name}");
    }

    let unknown = send(
        &app,
        Method::GET,
        "/v1/features/teleportation",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.code(), "not_found");

    let anonymous = send(
        &app,
        Method::GET,
        "/v1/features/basic_analytics",
        None,
        None,
    )
    .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
}

/// The `/v1` guard reads the caller's cached plan beside its rate-limit call: a warm cache must still
/// give way to an invalidation at once, and usage must still be read live on every call.
#[tokio::test]
async fn the_plan_read_ahead_by_the_guard_gives_way_to_changes_at_once() {
    let app = mingus_tests::TestApp::spawn().await;
    let user = user_on(&app, Some("essentials")).await;
    grant_plan(&app, user).await;
    let token = user_token(&app, user);
    // Twice: the second answer comes from the warm cache.
    for _ in 0..2 {
        let custom = feature(&app, &token, "custom_reports").await;
        assert_eq!(custom["reason"], "feature_not_included");
    }
    let cached: Option<String> = {
        let mut redis = mingus_common::cache::connect(&app.config.redis)
            .await
            .unwrap();
        redis::cmd("GET")
            .arg(format!("{}_entitlements:{user}", app.redis_prefix))
            .query_async(&mut redis)
            .await
            .unwrap()
    };
    assert!(cached.is_some(), "the plan is cached after the first call");

    // Upgrade behind the cache, then invalidate as the Stripe processor does.
    move_to_professional(&app, user).await;
    let custom = feature(&app, &token, "custom_reports").await;
    assert_eq!(
        (&custom["access"], &custom["tier"], &custom["limit"]),
        (
            &Value::Bool(true),
            &Value::from("professional"),
            &Value::from(5)
        )
    );

    // Usage changes show on the next call, with the plan still cached.
    sqlx::query(
        "INSERT INTO usage_counters (user_id, metric, period_start, period_end, used)
         SELECT $1, 'custom_reports_per_month', p.period_start, p.period_end, 3
         FROM mingus_usage_period((SELECT current_period_start FROM subscriptions WHERE user_id = $1), now()) p",
    )
    .bind(user)
    .execute(&app.db.pool)
    .await
    .unwrap();
    let custom = feature(&app, &token, "custom_reports").await;
    assert_eq!(custom["usage"], 3, "{custom}");
}

/// The guard reads a metered count ahead for the period of the plan this process saw last; when the
/// fresh plan has another period (a renewal moved the anchor), that count must not be used.
#[tokio::test]
async fn a_count_read_ahead_for_an_old_period_is_not_used() {
    let app = mingus_tests::TestApp::spawn().await;
    let user = user_on(&app, Some("essentials")).await;
    let token = user_token(&app, user);
    let counter = |used: i64| {
        let pool = app.db.pool.clone();
        async move {
            sqlx::query(
                "INSERT INTO usage_counters (user_id, metric, period_start, period_end, used)
                 SELECT s.user_id, 'financial_reports_per_month', p.period_start, p.period_end, $2
                 FROM subscriptions s, mingus_usage_period(s.current_period_start, now()) p
                 WHERE s.user_id = $1",
            )
            .bind(user)
            .bind(used)
            .execute(&pool)
            .await
            .unwrap();
        }
    };
    counter(1).await;
    // Twice: the plan (and its period) is now remembered by the API process.
    for _ in 0..2 {
        assert_eq!(feature(&app, &token, "basic_analytics").await["usage"], 1);
    }
    // The anchor moves (the period now starts 3 hours ago), with a count of its own.
    sqlx::query(
        "UPDATE subscriptions SET current_period_start = now() - interval '3 hours',
                                  current_period_end = now() - interval '3 hours' + interval '1 month'
         WHERE user_id = $1",
    )
    .bind(user)
    .execute(&app.db.pool)
    .await
    .unwrap();
    counter(0).await;
    grant_plan(&app, user).await;
    invalidate(&app, user).await;
    let answer = feature(&app, &token, "basic_analytics").await;
    assert_eq!(answer["usage"], 0, "the new period's count: {answer}");
    assert_eq!(answer["access"], true);
}
