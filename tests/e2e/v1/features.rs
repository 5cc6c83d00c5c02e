//! `GET /v1/features` and `GET /v1/features/{feature}`: the caller's plan answered per feature with the
//! reason, tier, level, usage, limit and reset; unknown names 404; credentials required.

use mingus_tests::frontend::user_token;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::{grant_plan, send, user_on};

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
