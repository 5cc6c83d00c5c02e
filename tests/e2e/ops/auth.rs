//! Who may use `/ops`: bearer token, the dashboard's cookie session, CSRF header; and bad input → JSON 4xx.

use mingus_tests::TestApp;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{bench, call, get, token};

#[tokio::test]
async fn ops_routes_refuse_missing_or_wrong_tokens() {
    let app = TestApp::spawn().await;
    for (method, path) in [
        (Method::GET, "/ops/queues"),
        (Method::GET, "/ops/jobs"),
        (Method::GET, "/ops/workers"),
        (Method::POST, "/ops/queues/bench/pause"),
        (Method::POST, "/ops/dead/retry"),
        (
            Method::DELETE,
            "/ops/jobs/0190f2a8-0000-7000-8000-000000000000",
        ),
    ] {
        for auth in [None, Some("Bearer wrong-token"), Some("Basic abc")] {
            let mut request = app.client.request(method.clone(), app.url(path));
            if let Some(value) = auth {
                request = request.header("authorization", value);
            }
            let response = request.send().await.unwrap();
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path} {auth:?}"
            );
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], "unauthorized");
        }
    }
    // The paused flag was never set by the refused calls.
    assert_eq!(bench(&app).await["paused"], false);
    // The dashboard answers with its login form instead, and never shows the token.
    let page = app.get("/ops").await;
    assert_eq!(page.status(), StatusCode::UNAUTHORIZED);
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"name="token""#) && !html.contains(&token(&app)));

    let disabled = TestApp::spawn_with(&[("MINGUS_ADMIN_TOKEN", "")]).await;
    let response = disabled
        .client
        .get(disabled.url("/ops/queues"))
        .bearer_auth("x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "ops_disabled");
}

#[tokio::test]
async fn the_login_form_sets_a_strict_http_only_cookie_that_is_not_the_token() {
    let app = TestApp::spawn().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let wrong = client
        .post(app.url("/ops/login"))
        .form(&[("token", "nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.headers().get("set-cookie").is_none());
    let ok = client
        .post(app.url("/ops/login"))
        .form(&[("token", token(&app))])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    let cookie = ok.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains(&token(&app)),
        "the cookie must not carry the token"
    );
    let pair = cookie.split(';').next().unwrap().to_owned();

    let page = client
        .get(app.url("/ops"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains(r#"id="queues""#));
    let json = client
        .get(app.url("/ops/queues"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), StatusCode::OK);
    // A change made with the cookie alone (what a cross-site form could send) is refused.
    let pause = app.url("/ops/queues/bench/pause");
    let forged = client
        .post(&pause)
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let made = client
        .post(&pause)
        .header("cookie", &pair)
        .header("x-mingus-ops", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), StatusCode::OK);
    assert_eq!(bench(&app).await["paused"], true);
    let tampered = pair.replace("v1.", "v1.1");
    let refused = client
        .get(app.url("/ops/queues"))
        .header("cookie", tampered)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bad_input_gets_a_json_4xx() {
    let app = TestApp::spawn().await;
    let cases: [(Method, &str, Option<Value>, StatusCode, &str); 10] = [
        (
            Method::GET,
            "/ops/jobs/not-a-uuid",
            None,
            StatusCode::BAD_REQUEST,
            "invalid_job_id",
        ),
        (
            Method::POST,
            "/ops/jobs/123/retry",
            None,
            StatusCode::BAD_REQUEST,
            "invalid_job_id",
        ),
        (
            Method::POST,
            "/ops/queues/nope/pause",
            None,
            StatusCode::NOT_FOUND,
            "unknown_queue",
        ),
        (
            Method::GET,
            "/ops/jobs?queue=nope",
            None,
            StatusCode::BAD_REQUEST,
            "invalid_queue",
        ),
        (
            Method::GET,
            "/ops/jobs?status=lost",
            None,
            StatusCode::BAD_REQUEST,
            "invalid_status",
        ),
        (
            Method::GET,
            "/ops/jobs?per_page=0",
            None,
            StatusCode::BAD_REQUEST,
            "invalid_pagination",
        ),
        (
            Method::GET,
            "/ops/jobs?page=abc",
            None,
            StatusCode::BAD_REQUEST,
            "invalid_pagination",
        ),
        (
            Method::GET,
            "/ops/dead?kind=%3Cscript%3E",
            None,
            StatusCode::BAD_REQUEST,
            "invalid_kind",
        ),
        (
            Method::POST,
            "/ops/dead/retry",
            Some(json!({ "queue": "nope" })),
            StatusCode::BAD_REQUEST,
            "invalid_queue",
        ),
        (
            Method::POST,
            "/ops/dead/retry",
            Some(json!({ "queues": "bench" })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_json",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let (got, answer) = call(&app, method.clone(), path, body).await;
        assert_eq!(
            (got, answer["error"]["code"].as_str()),
            (status, Some(code)),
            "{method} {path}: {answer}"
        );
    }
    let broken = app
        .client
        .post(app.url("/ops/dead/retry"))
        .bearer_auth(token(&app))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(broken.status(), StatusCode::BAD_REQUEST);
    let body: Value = broken.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_json");
    let search = get(&app, "/ops/jobs?q=100%25_off&page=2&per_page=10").await;
    assert_eq!(
        (search["items"].clone(), search["page"].clone()),
        (json!([]), json!(2))
    );
}

#[tokio::test]
async fn the_admin_token_compares_exactly() {
    let app = TestApp::spawn().await;
    let token = token(&app);
    // (Whitespace at the very end of a header value is not part of it in HTTP — RFC 9110 §5.5 — and
    // the server drops it before any code sees it; inside the value, or in the form, it is the token's.)
    for presented in [
        format!("Bearer  {token}"),
        format!("Bearer {token} x"),
        format!("Bearer {}", token.to_uppercase()),
    ] {
        let response = app
            .client
            .get(app.url("/ops/queues"))
            .header("authorization", &presented)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{presented:?}");
    }
    let login = app
        .client
        .post(app.url("/ops/login"))
        .form(&[("token", format!("{token} "))])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::UNAUTHORIZED);
    assert!(login.headers().get("set-cookie").is_none());
    let exact = app
        .client
        .get(app.url("/ops/queues"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(exact.status(), StatusCode::OK);
}

#[tokio::test]
async fn guessing_the_admin_token_is_cut_off_per_address() {
    let app = TestApp::spawn().await;
    let allowed = mingus_api::ops::guesses::ALLOWED;
    for guess in 0..allowed {
        let status = app
            .client
            .post(app.url("/ops/login"))
            .form(&[("token", format!("guess-{guess}"))])
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, StatusCode::UNAUTHORIZED, "guess {guess}");
    }
    // Past the allowance every attempt from this address is refused without looking at the token,
    // the right one included, through the form and the header alike.
    for (what, request) in [
        (
            "form, wrong",
            app.client
                .post(app.url("/ops/login"))
                .form(&[("token", "another")]),
        ),
        (
            "form, right",
            app.client
                .post(app.url("/ops/login"))
                .form(&[("token", token(&app))]),
        ),
        (
            "header, right",
            app.client
                .get(app.url("/ops/queues"))
                .bearer_auth(token(&app)),
        ),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS, "{what}");
        let wait: u64 = response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            wait > 0 && wait <= mingus_api::ops::guesses::WINDOW.as_secs(),
            "{what}: {wait}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "too_many_attempts", "{what}");
    }
    // Another API instance keeps its own count (per process, like the delay).
    let other = app.another_instance().await;
    let response = app
        .client
        .get(other.url("/ops/queues"))
        .bearer_auth(token(&app))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}
