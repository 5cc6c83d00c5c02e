//! The user's analytics (issue 21): `GET /v1/analytics` serves the account's `user_analytics` days by
//! plan (Essentials the last 30, Professional and Executive all), and `GET /v1/team/analytics` serves an
//! Executive owner the members who share; every refusal is a typed 4xx.

use chrono::{Days, NaiveDate, Utc};
use mingus_tests::TestApp;
use mingus_tests::frontend::user_token;
use reqwest::{Method, StatusCode};
use serde_json::json;
use uuid::Uuid;

use super::team::{call, join};
use super::{executive, key_with, send, user_on};

fn ago(days: u64) -> NaiveDate {
    Utc::now().date_naive() - Days::new(days)
}

/// A rollup row for `user` on `date` with `logins` logins and a stress level of 4.
async fn day(app: &TestApp, user: Uuid, date: NaiveDate, logins: i32) {
    sqlx::query(
        "INSERT INTO user_analytics (user_id, date, login_count, average_stress_level, savings_rate,
                                     health_checkins_completed)
         VALUES ($1, $2, $3, 4, 12.50, 1)",
    )
    .bind(user)
    .bind(date)
    .bind(logins)
    .execute(&app.db.pool)
    .await
    .unwrap();
}

async fn analytics(app: &TestApp, credential: &str, query: &str) -> super::Answer {
    send(
        app,
        Method::GET,
        &format!("/v1/analytics{query}"),
        Some(credential),
        None,
    )
    .await
}

fn dates(body: &serde_json::Value) -> Vec<String> {
    body["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["date"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn essentials_sees_the_last_30_days_and_professional_the_whole_history() {
    let app = TestApp::spawn().await;
    let essentials = user_on(&app, Some("essentials")).await;
    let professional = user_on(&app, Some("professional")).await;
    for user in [essentials, professional] {
        for (n, back) in [400, 40, 29, 1].into_iter().enumerate() {
            day(&app, user, ago(back), n as i32 + 1).await;
        }
    }
    let stranger = user_on(&app, Some("professional")).await;
    day(&app, stranger, ago(2), 9).await;
    let query = format!("?from={}&to={}", ago(60), ago(0));

    let basic = analytics(&app, &user_token(&app, essentials), &query).await;
    assert_eq!(basic.status, StatusCode::OK, "{}", basic.body);
    assert_eq!(
        dates(&basic.body),
        [ago(29).to_string(), ago(1).to_string()]
    );
    assert_eq!(basic.body["available_from"], ago(29).to_string());
    assert_eq!(basic.body["from"], ago(29).to_string());
    assert_eq!(basic.body["limited_by_plan"], true);
    let last = &basic.body["days"][1];
    assert_eq!(last["login_count"], 4);
    assert_eq!(last["savings_rate"], "12.50");
    assert_eq!(last["average_stress_level"], 4);
    // A window wholly before the plan's history answers no days.
    let old = format!("?from={}&to={}", ago(50), ago(40));
    let before = analytics(&app, &user_token(&app, essentials), &old).await;
    assert_eq!(before.status, StatusCode::OK);
    assert_eq!(dates(&before.body), Vec::<String>::new());

    let token = user_token(&app, professional);
    let full = analytics(&app, &token, &format!("?from={}&to={}", ago(365), ago(0))).await;
    assert_eq!(
        dates(&full.body),
        [ago(40), ago(29), ago(1)].map(|d| d.to_string())
    );
    assert_eq!(full.body["available_from"], serde_json::Value::Null);
    assert_eq!(full.body["limited_by_plan"], false);
    let older = analytics(&app, &token, &format!("?from={}&to={}", ago(410), ago(300))).await;
    assert_eq!(
        dates(&older.body),
        [ago(400).to_string()],
        "the whole history"
    );
    // Without a window: the last 30 days.
    let default = analytics(&app, &token, "").await;
    assert_eq!(
        dates(&default.body),
        [ago(29), ago(1)].map(|d| d.to_string())
    );
    assert_eq!(default.body["to"], ago(0).to_string());
}

#[tokio::test]
async fn analytics_refusals_are_typed_and_read_nothing_else() {
    let app = TestApp::spawn().await;
    let nobody = user_on(&app, None).await;
    let refused = analytics(&app, &user_token(&app, nobody), "").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.code(), "no_active_subscription");
    assert_eq!(refused.body["error"]["feature"], "basic_analytics");

    let user = user_on(&app, Some("professional")).await;
    let token = user_token(&app, user);
    let cases = [
        ("?from=2026-02-30", StatusCode::BAD_REQUEST, "invalid_query"),
        ("?from=yesterday", StatusCode::BAD_REQUEST, "invalid_query"),
        ("?from=2026-1-01", StatusCode::BAD_REQUEST, "invalid_query"),
        (
            "?since=2026-01-01",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "?from=2026-03-02&to=2026-03-01",
            StatusCode::UNPROCESSABLE_ENTITY,
            "period_inverted",
        ),
        (
            "?from=2025-01-01&to=2026-01-02",
            StatusCode::UNPROCESSABLE_ENTITY,
            "period_too_long",
        ),
    ];
    for (query, status, code) in cases {
        let answer = analytics(&app, &token, query).await;
        assert_eq!((answer.status, answer.code()), (status, code), "{query}");
    }
    let owner = executive(&app).await;
    let key = key_with(&app, owner, &["features:read"], 1000).await;
    assert_eq!(analytics(&app, &key, "").await.code(), "insufficient_scope");
    let allowed = key_with(&app, owner, &["analytics:read"], 1000).await;
    assert_eq!(analytics(&app, &allowed, "").await.status, StatusCode::OK);
}

#[tokio::test]
async fn the_owner_sees_only_the_members_who_share() {
    let app = TestApp::spawn().await;
    let owner = executive(&app).await;
    let (sharing, _) = join(&app, owner, "viewer").await;
    let (private, _) = join(&app, owner, "admin").await;
    day(&app, sharing, ago(3), 2).await;
    day(&app, sharing, ago(2), 5).await;
    day(&app, private, ago(2), 7).await;
    let path = format!("/v1/team/memberships/{owner}/analytics-sharing");
    let member_token = user_token(&app, sharing);

    let before = call(&app, Method::GET, &path, &member_token, None, None).await;
    assert_eq!(before.status, StatusCode::OK, "{}", before.body);
    assert_eq!(before.body["shared"], false);
    let on = json!({"shared": true});
    let shared = call(
        &app,
        Method::PUT,
        &path,
        &member_token,
        None,
        Some(on.clone()),
    )
    .await;
    assert_eq!(shared.status, StatusCode::OK, "{}", shared.body);
    assert_eq!(shared.body["shared"], true);
    let again = call(&app, Method::PUT, &path, &member_token, None, Some(on)).await;
    assert_eq!(
        again.body["shared_since"], shared.body["shared_since"],
        "kept"
    );

    let owner_token = user_token(&app, owner);
    let team = call(
        &app,
        Method::GET,
        "/v1/team/analytics",
        &owner_token,
        None,
        None,
    )
    .await;
    assert_eq!(team.status, StatusCode::OK, "{}", team.body);
    let members = team.body["members"].as_array().unwrap();
    assert_eq!(members.len(), 1, "only the member who shares: {members:?}");
    assert_eq!(members[0]["user_id"], sharing.to_string());
    let summary = &members[0]["summary"];
    assert_eq!(summary["days_with_data"], 2);
    assert_eq!(summary["login_count"], 7);
    assert_eq!(summary["average_stress_level"], "4.00");

    // Refusals: a member acting for the owner, an API key, a stranger's or a bad sharing switch, a
    // non-Executive owner.
    let acting = call(
        &app,
        Method::GET,
        "/v1/team/analytics",
        &user_token(&app, private),
        Some(owner),
        None,
    )
    .await;
    assert_eq!(acting.code(), "team_owner_required");
    let key = key_with(&app, owner, &["team:read"], 1000).await;
    let by_key = call(&app, Method::GET, "/v1/team/analytics", &key, None, None).await;
    assert_eq!(by_key.code(), "user_session_required");
    let stranger = user_on(&app, Some("essentials")).await;
    let not_member = call(
        &app,
        Method::PUT,
        &path,
        &user_token(&app, stranger),
        None,
        Some(json!({"shared": true})),
    )
    .await;
    assert_eq!(not_member.status, StatusCode::NOT_FOUND);
    let bad = call(
        &app,
        Method::PUT,
        &path,
        &member_token,
        None,
        Some(json!({"shared": "yes"})),
    )
    .await;
    assert_eq!(bad.code(), "invalid_body");
    let bad_path = call(
        &app,
        Method::GET,
        "/v1/team/memberships/not-a-uuid/analytics-sharing",
        &member_token,
        None,
        None,
    )
    .await;
    assert_eq!(bad_path.code(), "invalid_path");
    let not_executive = call(
        &app,
        Method::GET,
        "/v1/team/analytics",
        &user_token(&app, stranger),
        None,
        None,
    )
    .await;
    assert_eq!(not_executive.code(), "team_management_required");
    let inverted = send(
        &app,
        Method::GET,
        "/v1/team/analytics?from=2026-03-02&to=2026-03-01",
        Some(&owner_token),
        None,
    )
    .await;
    assert_eq!(inverted.code(), "period_inverted");

    // Turning it off hides the member again.
    let off = call(
        &app,
        Method::PUT,
        &path,
        &member_token,
        None,
        Some(json!({"shared": false})),
    )
    .await;
    assert_eq!(off.body["shared"], false);
    let team = call(
        &app,
        Method::GET,
        "/v1/team/analytics",
        &owner_token,
        None,
        None,
    )
    .await;
    assert_eq!(team.body["members"], json!([]));
}
