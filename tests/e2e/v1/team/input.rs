//! Bad input on every team route: a JSON 4xx with a stable code, never a 500, and nothing written.

use mingus_tests::TestApp;
use mingus_tests::frontend::user_token;
use reqwest::{Method, StatusCode};
use serde_json::json;

use super::super::executive;
use super::{call, count, invite};

#[tokio::test]
async fn bad_input_is_a_json_4xx_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let owner = executive(&app).await;
    let token = user_token(&app, owner);
    let member = invite(&app, &token, None, "kept@example.org", "viewer").await;
    assert_eq!(member.status, StatusCode::CREATED, "{}", member.body);
    let id = member.body["id"].as_str().unwrap().to_owned();
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    for (body, code) in [
        (
            json!({"email": "a@example.org", "role": "viewer", "admin": true}),
            "invalid_body",
        ),
        (json!({"email": "a@example.org"}), "invalid_body"),
        (json!({"email": 5, "role": "viewer"}), "invalid_body"),
        (json!(["a@example.org"]), "invalid_body"),
        (
            json!({"email": "a@example.org", "role": "owner"}),
            "invalid_role",
        ),
        (
            json!({"email": "a@example.org", "role": "Admin"}),
            "invalid_role",
        ),
        (
            json!({"email": "not-an-address", "role": "viewer"}),
            "invalid_email",
        ),
        (
            json!({"email": "a b@example.org", "role": "viewer"}),
            "invalid_email",
        ),
        (
            json!({"email": "a@localhost", "role": "viewer"}),
            "invalid_email",
        ),
        (
            json!({"email": "a@@example.org", "role": "viewer"}),
            "invalid_email",
        ),
        (
            json!({"email": format!("{}@example.org", "a".repeat(250)), "role": "viewer"}),
            "invalid_email",
        ),
        (
            json!({"email": "a@example.org", "role": "viewer", "name": "x".repeat(256)}),
            "invalid_name",
        ),
        (
            json!({"email": "a@example.org", "role": "viewer", "name": "a\u{7}b"}),
            "invalid_name",
        ),
        (
            // A bidirectional override would make the name display as something else.
            json!({"email": "a@example.org", "role": "viewer", "name": "Bob\u{202E}nimda"}),
            "invalid_name",
        ),
    ] {
        let answer = call(
            &app,
            Method::POST,
            "/v1/team/members",
            &token,
            None,
            Some(body.clone()),
        )
        .await;
        assert_eq!(
            (answer.status, answer.code()),
            (unprocessable, code),
            "{body}: {}",
            answer.body
        );
    }
    let raw = |method: Method, path: &str, body: Vec<u8>, content_type: Option<&'static str>| {
        let mut request = app
            .client
            .request(method, app.url(path))
            .bearer_auth(&token)
            .body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        request
    };
    let json_type = Some("application/json");
    let member_path = format!("/v1/team/members/{id}");
    for (request, status, code) in [
        (
            raw(
                Method::POST,
                "/v1/team/members",
                b"{\"email\": ".to_vec(),
                json_type,
            ),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            raw(
                Method::POST,
                "/v1/team/members",
                b"email=a@example.org".to_vec(),
                Some("application/x-www-form-urlencoded"),
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            raw(
                Method::POST,
                "/v1/team/members",
                b"{\"email\":\"a@example.org\",\"role\":\"viewer\"}".to_vec(),
                None,
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            raw(
                Method::POST,
                "/v1/team/members",
                format!(
                    "{{\"email\":\"a@example.org\",\"role\":\"viewer\",\"name\":\"{}\"}}",
                    "k".repeat(100_000)
                )
                .into_bytes(),
                json_type,
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            raw(
                Method::PATCH,
                &member_path,
                b"{\"role\":".to_vec(),
                json_type,
            ),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            raw(
                Method::PATCH,
                &member_path,
                b"{\"role\":\"root\"}".to_vec(),
                json_type,
            ),
            unprocessable,
            "invalid_role",
        ),
        (
            raw(
                Method::PATCH,
                &member_path,
                b"{\"role\":\"admin\",\"status\":\"active\"}".to_vec(),
                json_type,
            ),
            unprocessable,
            "invalid_body",
        ),
        (
            raw(
                Method::PATCH,
                "/v1/team/members/not-a-uuid",
                b"{\"role\":\"admin\"}".to_vec(),
                json_type,
            ),
            StatusCode::BAD_REQUEST,
            "invalid_path",
        ),
        (
            raw(
                Method::DELETE,
                "/v1/team/members/not-a-uuid",
                Vec::new(),
                None,
            ),
            StatusCode::BAD_REQUEST,
            "invalid_path",
        ),
        (
            raw(
                Method::POST,
                "/v1/team/members/12345/invitation",
                Vec::new(),
                None,
            ),
            StatusCode::BAD_REQUEST,
            "invalid_path",
        ),
        (
            raw(
                Method::DELETE,
                &format!("/v1/team/members/{}", uuid::Uuid::new_v4()),
                Vec::new(),
                None,
            ),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            raw(
                Method::POST,
                "/v1/team/invitations/short/accept",
                Vec::new(),
                None,
            ),
            StatusCode::NOT_FOUND,
            "invitation_not_found",
        ),
        (
            raw(
                Method::POST,
                &format!("/v1/team/invitations/{}/accept", "%00".repeat(43)),
                Vec::new(),
                None,
            ),
            StatusCode::BAD_REQUEST,
            "invalid_text",
        ),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), status, "{code}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], code);
    }
    // Only the first, valid invitation was written, and it is unchanged.
    assert_eq!(count(&app, "SELECT count(*) FROM team_members").await, 1);
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM team_members WHERE role = 'viewer' AND status = 'pending'"
        )
        .await,
        1
    );
    assert_eq!(
        count(&app, "SELECT count(*) FROM email_deliveries").await,
        1
    );
}
