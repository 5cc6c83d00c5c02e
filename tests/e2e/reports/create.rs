//! `POST /v1/reports`: 202 with the report queued and its job staged; each tier's feature and monthly
//! limit; exactly one success for two concurrent requests at `limit − 1`; idempotency keys.

use mingus_tests::TestApp;
use mingus_tests::frontend::user_token;
use reqwest::{Method, StatusCode};
use serde_json::json;
use uuid::Uuid;

use super::{body, count, post, reports_of, request, usage, user_on};

const STANDARD: &str = "financial_reports_per_month";
const CUSTOM: &str = "custom_reports_per_month";

#[tokio::test]
async fn a_request_is_accepted_queued_and_its_job_staged() {
    let app = TestApp::spawn().await;
    let user = user_on(&app, Some("professional")).await;
    let reply = post(&app, user, &body("health"), None).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    let answer = reply.json();
    let id = reply.id();
    assert_eq!(answer["status"], "queued");
    assert_eq!(answer["status_url"], format!("/v1/reports/{id}"));
    assert_eq!(
        reply.header("location"),
        Some(format!("/v1/reports/{id}").as_str())
    );
    assert!(reply.header("idempotent-replayed").is_none());
    assert_eq!(answer.as_object().unwrap().len(), 3, "{answer}");

    let row: (Uuid, Option<Uuid>, String, String, String, Vec<String>) = sqlx::query_as(
        "SELECT user_id, requested_by, kind, format, status, sections FROM reports WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(
        row,
        (
            user,
            Some(user),
            "health".into(),
            "json".into(),
            "queued".into(),
            vec![]
        )
    );
    let job: (String, String) = sqlx::query_as(
        "SELECT queue, kind FROM job_outbox WHERE job_id = $1 AND completed_at IS NULL",
    )
    .bind(id)
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(job, ("reports".into(), "report.generate".into()));
    assert_eq!(usage(&app.db.pool, user, STANDARD).await, 1);
    assert_eq!(usage(&app.db.pool, user, CUSTOM).await, 0);
}

#[tokio::test]
async fn essentials_gets_two_standard_reports_a_month_and_no_custom_ones() {
    let app = TestApp::spawn().await;
    let user = user_on(&app, Some("essentials")).await;
    for kind in ["financial", "goals"] {
        let reply = post(&app, user, &body(kind), None).await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{kind}: {}", reply.text);
    }
    let refused = post(&app, user, &body("health"), None).await;
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        refused.text
    );
    let error = &refused.json()["error"];
    assert_eq!(error["code"], "usage_limit_exceeded");
    assert_eq!(error["reason"], "usage_limit_exceeded");
    assert_eq!(error["tier"], "essentials");
    assert_eq!(error["metric"], STANDARD);
    assert_eq!(
        (error["limit"].as_i64(), error["usage"].as_i64()),
        (Some(2), Some(2))
    );
    let resets_at: chrono::DateTime<chrono::Utc> =
        error["resets_at"].as_str().unwrap().parse().unwrap();
    assert!(resets_at > chrono::Utc::now());
    let retry_after: i64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!(
        retry_after > 0 && retry_after <= 32 * 86_400,
        "{retry_after}"
    );

    let custom = post(&app, user, &body("custom"), None).await;
    assert_eq!(custom.status, StatusCode::FORBIDDEN, "{}", custom.text);
    assert_eq!(custom.code(), "feature_not_included");
    assert_eq!(custom.json()["error"]["reason"], "feature_not_included");
    assert_eq!(custom.json()["error"]["feature"], "custom_reports");

    assert_eq!(
        reports_of(&app.db.pool, user).await,
        2,
        "refusals write nothing"
    );
    assert_eq!(usage(&app.db.pool, user, STANDARD).await, 2);
    assert_eq!(usage(&app.db.pool, user, CUSTOM).await, 0);
    assert_eq!(
        count(&app.db.pool, "SELECT count(*) FROM job_outbox").await,
        2
    );
}

#[tokio::test]
async fn professional_gets_five_custom_reports_counted_apart_from_standard_ones() {
    let app = TestApp::spawn().await;
    let user = user_on(&app, Some("professional")).await;
    for n in 0..5 {
        let reply = post(&app, user, &body("custom"), None).await;
        assert_eq!(
            reply.status,
            StatusCode::ACCEPTED,
            "custom #{n}: {}",
            reply.text
        );
    }
    let sixth = post(&app, user, &body("custom"), None).await;
    assert_eq!(
        sixth.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        sixth.text
    );
    assert_eq!(sixth.json()["error"]["limit"], 5);
    let standard = post(&app, user, &body("financial"), None).await;
    assert_eq!(standard.status, StatusCode::ACCEPTED, "{}", standard.text);
    assert_eq!(usage(&app.db.pool, user, CUSTOM).await, 5);
    assert_eq!(usage(&app.db.pool, user, STANDARD).await, 1);
    let sections: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT unnest(sections) FROM reports WHERE kind = 'custom' ORDER BY 1",
    )
    .fetch_all(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(
        sections,
        ["financial", "goals", "health"],
        "custom defaults to all sections"
    );
}

#[tokio::test]
async fn executive_is_unlimited_and_users_without_a_plan_are_refused() {
    let app = TestApp::spawn().await;
    let user = user_on(&app, Some("executive")).await;
    for n in 0..12 {
        let kind = if n % 2 == 0 { "financial" } else { "custom" };
        let reply = post(&app, user, &body(kind), None).await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "#{n}: {}", reply.text);
    }
    assert_eq!(
        usage(&app.db.pool, user, STANDARD).await,
        6,
        "still counted"
    );

    let nobody = user_on(&app, None).await;
    let refused = post(&app, nobody, &body("financial"), None).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
    assert_eq!(refused.code(), "no_active_subscription");
    assert_eq!(refused.json()["error"]["tier"], serde_json::Value::Null);
    assert_eq!(reports_of(&app.db.pool, nobody).await, 0);
    assert_eq!(usage(&app.db.pool, nobody, STANDARD).await, 0);
}

#[tokio::test]
async fn two_concurrent_requests_at_the_limit_minus_one_give_exactly_one_report() {
    let app = TestApp::spawn().await;
    let user = user_on(&app, Some("essentials")).await;
    let first = post(&app, user, &body("financial"), None).await;
    assert_eq!(first.status, StatusCode::ACCEPTED);
    let (financial, health) = (body("financial"), body("health"));
    for round in 0..3 {
        let (a, b) = tokio::join!(
            post(&app, user, &financial, None),
            post(&app, user, &health, None)
        );
        let accepted = [&a, &b]
            .iter()
            .filter(|r| r.status == StatusCode::ACCEPTED)
            .count();
        if round == 0 {
            assert_eq!(accepted, 1, "{} / {}", a.text, b.text);
            let other = if a.status == StatusCode::ACCEPTED {
                &b
            } else {
                &a
            };
            assert_eq!(
                other.status,
                StatusCode::TOO_MANY_REQUESTS,
                "{}",
                other.text
            );
        } else {
            assert_eq!(accepted, 0, "the limit is reached");
        }
    }
    assert_eq!(reports_of(&app.db.pool, user).await, 2);
    assert_eq!(usage(&app.db.pool, user, STANDARD).await, 2);
}

#[tokio::test]
async fn the_same_idempotency_key_and_body_answer_the_same_report_once() {
    let app = TestApp::spawn().await;
    let user = user_on(&app, Some("essentials")).await;
    let request_body = body("goals");
    let first = post(&app, user, &request_body, Some("order-42")).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.text);
    // The same request again: the same report, no new usage.
    let again = post(&app, user, &request_body, Some("order-42")).await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "{}", again.text);
    assert_eq!(again.id(), first.id());
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(usage(&app.db.pool, user, STANDARD).await, 1);

    let different = json!({"kind": "goals", "period_start": request_body["period_start"],
                           "period_end": request_body["period_end"], "format": "csv"});
    let reused = post(&app, user, &different, Some("order-42")).await;
    assert_eq!(reused.status, StatusCode::CONFLICT, "{}", reused.text);
    assert_eq!(reused.code(), "idempotency_key_reused");
    assert_eq!(reused.json()["error"]["report_id"], first.id().to_string());

    // A replay is answered even after the allowance is used up.
    let second = post(&app, user, &body("financial"), Some("order-43")).await;
    assert_eq!(second.status, StatusCode::ACCEPTED);
    let replay = post(&app, user, &request_body, Some("order-42")).await;
    assert_eq!(
        (replay.status, replay.id()),
        (StatusCode::ACCEPTED, first.id())
    );
    // Keys belong to their account: another user's same key is a new report.
    let other = user_on(&app, Some("essentials")).await;
    let theirs = post(&app, other, &request_body, Some("order-42")).await;
    assert_eq!(theirs.status, StatusCode::ACCEPTED);
    assert_ne!(theirs.id(), first.id());
    assert_eq!(reports_of(&app.db.pool, user).await, 2);
    assert_eq!(usage(&app.db.pool, user, STANDARD).await, 2);
}

#[tokio::test]
async fn concurrent_requests_with_one_key_create_one_report_and_consume_once() {
    let app = TestApp::spawn().await;
    let user = user_on(&app, Some("professional")).await;
    let request_body = body("financial");
    let key = Some("double-click");
    let (a, b, c, d) = tokio::join!(
        post(&app, user, &request_body, key),
        post(&app, user, &request_body, key),
        post(&app, user, &request_body, key),
        post(&app, user, &request_body, key)
    );
    let replies = [a, b, c, d];
    let ids: std::collections::BTreeSet<Uuid> = replies
        .iter()
        .map(|r| {
            assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
            r.id()
        })
        .collect();
    assert_eq!(ids.len(), 1, "one report for one key");
    assert_eq!(reports_of(&app.db.pool, user).await, 1);
    assert_eq!(usage(&app.db.pool, user, STANDARD).await, 1);
    assert_eq!(
        count(&app.db.pool, "SELECT count(*) FROM job_outbox").await,
        1
    );
}

#[tokio::test]
async fn api_keys_need_the_reports_write_scope_to_create() {
    let app = TestApp::spawn().await;
    let user = user_on(&app, Some("executive")).await;
    let token = user_token(&app, user);
    let create_key = |scopes: serde_json::Value| {
        let token = token.clone();
        let app = &app;
        async move {
            let reply = request(
                app,
                Method::POST,
                "/v1/api-keys",
                &token,
                Some(&json!({"name": "reports", "scopes": scopes})),
                &[],
            )
            .await;
            assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
            reply.json()["key"].as_str().unwrap().to_owned()
        }
    };
    let reader = create_key(json!(["reports:read"])).await;
    let writer = create_key(json!(["reports:write", "reports:read"])).await;
    let refused = request(
        &app,
        Method::POST,
        "/v1/reports",
        &reader,
        Some(&body("financial")),
        &[],
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.code(), "insufficient_scope");
    let created = request(
        &app,
        Method::POST,
        "/v1/reports",
        &writer,
        Some(&body("financial")),
        &[],
    )
    .await;
    assert_eq!(created.status, StatusCode::ACCEPTED, "{}", created.text);
    let read = request(
        &app,
        Method::GET,
        &format!("/v1/reports/{}", created.id()),
        &reader,
        None,
        &[],
    )
    .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.text);
    assert_eq!(reports_of(&app.db.pool, user).await, 1);
}
