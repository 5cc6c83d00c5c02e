//! Text PostgreSQL cannot store (NUL) or that is not text (invalid UTF-8) answers 400 `invalid_text` on
//! every route, in the path, the query or a JSON or form body, before anything is read or written.

use mingus_tests::TestApp;
use mingus_tests::frontend::user_token;
use reqwest::{RequestBuilder, StatusCode};
use secrecy::ExposeSecret;
use serde_json::Value;

async fn refused(request: RequestBuilder, what: &str) {
    let response = request.send().await.unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {body}");
    assert_eq!(body["error"]["code"], "invalid_text", "{what}: {body}");
}

#[tokio::test]
async fn nul_and_broken_utf8_are_a_400_on_every_kind_of_input() {
    let app = TestApp::spawn().await;
    let user = crate::fixtures::user(&app.db.pool).await;
    let token = user_token(&app, user);
    let admin = app
        .config
        .admin_token
        .as_ref()
        .unwrap()
        .expose_secret()
        .to_owned();
    let client = &app.client;

    // /ops: the query the probe found answering 500, and the login form.
    for query in ["q=%00", "q=a%00b", "q=%ff%fe", "queue=%C3"] {
        let request = client
            .get(app.url(&format!("/ops/jobs?{query}")))
            .bearer_auth(&admin);
        refused(request, query).await;
    }
    let login = client
        .post(app.url("/ops/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("token=abc%00def");
    refused(login, "login form").await;

    // /v1: query, path and JSON body.
    let request = client
        .get(app.url("/v1/reports?status=%00"))
        .bearer_auth(&token);
    refused(request, "v1 query").await;
    let request = client
        .get(app.url("/v1/features/basic%00analytics"))
        .bearer_auth(&token);
    refused(request, "v1 path").await;
    for body in [
        r#"{"name":"ci\u0000key"}"#,
        r#"{"name":"ci","scopes":["\u0000"]}"#,
    ] {
        let request = client
            .post(app.url("/v1/api-keys"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body);
        refused(request, body).await;
    }
    let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM api_keys")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(keys, 0, "nothing was written");

    // An escaped backslash followed by the text u0000 is ordinary text, and so is non-ASCII.
    let created = client
        .post(app.url("/v1/api-keys"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(r#"{"name":"ci \\u0000 clé 🔑"}"#)
        .send()
        .await
        .unwrap();
    // 201 or 403 (the plan decides whether keys may be made); never the text check.
    let status = created.status();
    let body: Value = created.json().await.unwrap();
    assert_ne!(body["error"]["code"], "invalid_text", "{status}: {body}");
    let search = client
        .get(app.url("/ops/jobs?q=caf%C3%A9"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(search.status(), StatusCode::OK);
}
