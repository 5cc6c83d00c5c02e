//! Bad input to the report routes: a typed 4xx JSON error every time, never a 500, and nothing written —
//! no report, no outbox row, no usage.

use chrono::Utc;
use mingus_tests::TestApp;
use mingus_tests::frontend::user_token;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{body, count, get, last_month, post, request, usage, user_on};

/// Nothing of a refused request may exist.
async fn nothing_written(app: &TestApp, user: Uuid, what: &str) {
    assert_eq!(
        count(&app.db.pool, "SELECT count(*) FROM reports").await,
        0,
        "{what}: no report"
    );
    assert_eq!(
        count(&app.db.pool, "SELECT count(*) FROM job_outbox").await,
        0,
        "{what}: no job"
    );
    for metric in ["financial_reports_per_month", "custom_reports_per_month"] {
        assert_eq!(
            usage(&app.db.pool, user, metric).await,
            0,
            "{what}: no usage"
        );
    }
}

#[tokio::test]
async fn bad_values_are_422_with_their_code_and_write_nothing() {
    let app = TestApp::spawn().await;
    let user = user_on(&app, Some("executive")).await;
    let (start, end) = last_month();
    let today = Utc::now().date_naive();
    let tomorrow = (today + chrono::Days::new(1)).to_string();
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"kind": "weekly", "period_start": start, "period_end": end}),
            "invalid_kind",
        ),
        (
            json!({"kind": "", "period_start": start, "period_end": end}),
            "invalid_kind",
        ),
        (
            json!({"kind": "financial", "period_start": start, "period_end": end, "format": "pdf"}),
            "invalid_format",
        ),
        (
            json!({"kind": "financial", "period_start": "2026-2-01", "period_end": end}),
            "invalid_date",
        ),
        (
            json!({"kind": "financial", "period_start": start, "period_end": "2025-02-30"}),
            "invalid_date",
        ),
        (
            json!({"kind": "financial", "period_start": "yesterday", "period_end": end}),
            "invalid_date",
        ),
        (
            json!({"kind": "financial", "period_start": format!("{start}T00:00:00Z"), "period_end": end}),
            "invalid_date",
        ),
        (
            json!({"kind": "financial", "period_start": end, "period_end": start}),
            "period_inverted",
        ),
        (
            json!({"kind": "financial", "period_start": start, "period_end": tomorrow}),
            "period_in_future",
        ),
        (
            json!({"kind": "financial", "period_start": "2024-01-01", "period_end": "2025-01-01"}),
            "period_too_long",
        ),
        (
            json!({"kind": "custom", "period_start": start, "period_end": end, "sections": []}),
            "invalid_sections",
        ),
        (
            json!({"kind": "custom", "period_start": start, "period_end": end, "sections": ["custom"]}),
            "invalid_sections",
        ),
        (
            json!({"kind": "custom", "period_start": start, "period_end": end, "sections": ["budget"]}),
            "invalid_sections",
        ),
        (
            json!({"kind": "health", "period_start": start, "period_end": end, "sections": ["health"]}),
            "invalid_sections",
        ),
    ];
    for (request_body, code) in &cases {
        let reply = post(&app, user, request_body, None).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{request_body}: {}",
            reply.text
        );
        assert_eq!(reply.code(), *code, "{request_body}");
        assert!(
            !reply.json()["error"]["message"]
                .as_str()
                .unwrap()
                .is_empty()
        );
    }
    nothing_written(&app, user, "bad values").await;
    // A year of 366 days is allowed; one day more is not (checked above).
    let leap = post(
        &app,
        user,
        &json!({"kind": "financial", "period_start": "2024-01-01", "period_end": "2024-12-31"}),
        None,
    )
    .await;
    assert_eq!(leap.status, StatusCode::ACCEPTED, "{}", leap.text);
}

#[tokio::test]
async fn malformed_bodies_are_4xx_and_write_nothing() {
    let app = TestApp::spawn().await;
    let user = user_on(&app, Some("executive")).await;
    let token = user_token(&app, user);
    let (start, end) = last_month();
    let send_raw = |text: String, content_type: &'static str| {
        let request = app
            .client
            .post(app.url("/v1/reports"))
            .bearer_auth(&token)
            .header("content-type", content_type)
            .body(text);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            let body: Value = response.json().await.expect("a JSON error");
            (
                status,
                body["error"]["code"].as_str().unwrap_or("").to_owned(),
            )
        }
    };
    let cases: Vec<(String, &'static str, StatusCode, &str)> = vec![
        ("{not json".into(), "application/json", StatusCode::BAD_REQUEST, "invalid_json"),
        ("".into(), "application/json", StatusCode::BAD_REQUEST, "invalid_json"),
        (body("financial").to_string(), "text/plain", StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
        (json!({"kind": "financial", "period_start": start, "period_end": end, "owner": "x"}).to_string(),
         "application/json", StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        (json!({"kind": 3, "period_start": start, "period_end": end}).to_string(),
         "application/json", StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        (json!({"kind": "financial", "period_start": start}).to_string(),
         "application/json", StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        (json!(["financial"]).to_string(), "application/json", StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        (json!({"kind": "financial", "period_start": start, "period_end": end, "padding": "x".repeat(70_000)}).to_string(),
         "application/json", StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
    ];
    for (text, content_type, status, code) in cases {
        let shown: String = text.chars().take(80).collect();
        let (got, got_code) = send_raw(text, content_type).await;
        assert_eq!((got, got_code.as_str()), (status, code), "{shown}");
    }
    nothing_written(&app, user, "malformed bodies").await;
}

#[tokio::test]
async fn bad_idempotency_keys_are_400_and_write_nothing() {
    let app = TestApp::spawn().await;
    let user = user_on(&app, Some("executive")).await;
    let too_long = "k".repeat(256);
    for key in ["", too_long.as_str(), "tab\there"] {
        let reply = post(&app, user, &body("financial"), Some(key)).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{key:?}: {}",
            reply.text
        );
        assert_eq!(reply.code(), "invalid_idempotency_key");
    }
    nothing_written(&app, user, "bad keys").await;
    let longest = "k".repeat(255);
    let fine = post(&app, user, &body("financial"), Some(&longest)).await;
    assert_eq!(fine.status, StatusCode::ACCEPTED, "{}", fine.text);
}

#[tokio::test]
async fn bad_paths_queries_and_missing_credentials_are_4xx() {
    let app = TestApp::spawn().await;
    let user = user_on(&app, Some("executive")).await;
    for path in ["/v1/reports/not-a-uuid", "/v1/reports/123/download"] {
        let reply = get(&app, user, path).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{path}: {}",
            reply.text
        );
        assert_eq!(reply.code(), "invalid_path");
    }
    for query in ["limit=0", "limit=101", "limit=ten", "cursor=nope"] {
        let reply = get(&app, user, &format!("/v1/reports?{query}")).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{query}: {}",
            reply.text
        );
        assert_eq!(reply.code(), "invalid_query");
    }
    let anonymous = app
        .client
        .post(app.url("/v1/reports"))
        .json(&body("financial"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let wrong_method = request(
        &app,
        Method::DELETE,
        "/v1/reports",
        &user_token(&app, user),
        None,
        &[],
    )
    .await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    nothing_written(&app, user, "bad paths").await;
}
