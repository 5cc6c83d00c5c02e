//! `GET /v1/reports/{id}`, `GET /v1/reports` and the download before a report is ready: the status
//! view, 404 for another account's report (never revealing it exists), newest-first pages.

use mingus_tests::TestApp;
use reqwest::StatusCode;
use serde_json::json;

use super::{body, day, get, last_month, post, user_on};

#[tokio::test]
async fn the_status_view_shows_the_request_and_its_progress() {
    let app = TestApp::spawn().await;
    let user = user_on(&app, Some("professional")).await;
    let (start, end) = last_month();
    let request_body = json!({"kind": "custom", "period_start": start, "period_end": end,
                              "format": "csv", "sections": ["goals", "health"]});
    let created = post(&app, user, &request_body, None).await;
    assert_eq!(created.status, StatusCode::ACCEPTED, "{}", created.text);
    let id = created.id();

    let reply = get(&app, user, &format!("/v1/reports/{id}")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let view = reply.json();
    assert_eq!(view["id"], id.to_string());
    assert_eq!(view["kind"], "custom");
    assert_eq!(view["format"], "csv");
    assert_eq!(view["period_start"], start);
    assert_eq!(view["period_end"], end);
    assert_eq!(
        view["sections"],
        json!(["health", "goals"]),
        "canonical order"
    );
    assert_eq!(view["status"], "queued");
    assert_eq!(view["failure_reason"], serde_json::Value::Null);
    assert_eq!(view["requested_by"], user.to_string());
    assert!(view["created_at"].is_string());
    assert_eq!(view["started_at"], serde_json::Value::Null);
    assert_eq!(view["finished_at"], serde_json::Value::Null);
    assert_eq!(view["status_url"], format!("/v1/reports/{id}"));
    assert_eq!(view["download_url"], serde_json::Value::Null, "not ready");
    assert!(
        reply.header("ratelimit-limit").is_some(),
        "behind the /v1 guard"
    );

    let download = get(&app, user, &format!("/v1/reports/{id}/download")).await;
    assert_eq!(download.status, StatusCode::CONFLICT, "{}", download.text);
    assert_eq!(download.code(), "report_not_ready");
    assert_eq!(download.json()["error"]["status"], "queued");
    assert_eq!(download.header("retry-after"), Some("2"));
}

#[tokio::test]
async fn another_accounts_report_is_not_found_like_a_missing_one() {
    let app = TestApp::spawn().await;
    let owner = user_on(&app, Some("executive")).await;
    let stranger = user_on(&app, Some("executive")).await;
    let id = post(&app, owner, &body("financial"), None).await.id();
    let missing = uuid::Uuid::now_v7();
    for path in [
        format!("/v1/reports/{id}"),
        format!("/v1/reports/{id}/download"),
        format!("/v1/reports/{missing}"),
        format!("/v1/reports/{missing}/download"),
    ] {
        let reply = get(&app, stranger, &path).await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "{path}: {}",
            reply.text
        );
        assert_eq!(reply.code(), "not_found");
        assert_eq!(
            reply.json()["error"]["message"],
            "no such report",
            "same answer either way"
        );
    }
    let listed = get(&app, stranger, "/v1/reports").await;
    assert_eq!(listed.json()["reports"], json!([]));
    assert_eq!(
        get(&app, owner, &format!("/v1/reports/{id}")).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_list_is_newest_first_in_pages() {
    let app = TestApp::spawn().await;
    let user = user_on(&app, Some("executive")).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let start = day("2025-01-01") + chrono::Days::new(n);
        let request_body = json!({"kind": "goals", "period_start": start.to_string(),
                                  "period_end": start.to_string()});
        ids.push(post(&app, user, &request_body, None).await.id());
    }
    ids.reverse();
    let first = get(&app, user, "/v1/reports?limit=2").await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let page = first.json();
    let listed: Vec<String> = page["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, [ids[0].to_string(), ids[1].to_string()]);
    assert_eq!(
        page["reports"][0]["status_url"],
        format!("/v1/reports/{}", ids[0])
    );
    let mut seen = listed;
    let mut cursor = page["next_cursor"].as_str().unwrap().to_owned();
    for _ in 0..5 {
        let next = get(&app, user, &format!("/v1/reports?limit=2&cursor={cursor}"))
            .await
            .json();
        seen.extend(
            next["reports"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_owned()),
        );
        match next["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    let all: Vec<String> = ids.iter().map(ToString::to_string).collect();
    assert_eq!(seen, all, "every report once, newest first");
    let default_page = get(&app, user, "/v1/reports").await.json();
    assert_eq!(default_page["reports"].as_array().unwrap().len(), 5);
    assert_eq!(default_page["next_cursor"], serde_json::Value::Null);
}
