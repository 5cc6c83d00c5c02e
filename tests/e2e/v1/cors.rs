//! Browsers on the configured frontend origins may call `/v1` (preflight answered before
//! authentication, the API's response headers readable); other origins get no CORS headers, and
//! without `MINGUS_CORS_ORIGINS` no origin does.

use mingus_tests::TestApp;
use mingus_tests::frontend::user_token;
use reqwest::{Method, StatusCode};

use super::user_on;

const FRONTEND: &str = "https://app.mingus.example";

async fn preflight(app: &TestApp, origin: &str) -> reqwest::Response {
    app.client
        .request(Method::OPTIONS, app.url("/v1/reports"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type, idempotency-key",
        )
        .send()
        .await
        .unwrap()
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn the_frontends_origin_may_call_the_api_from_a_browser_and_others_may_not() {
    let app = TestApp::spawn_with(&[(
        "MINGUS_CORS_ORIGINS",
        &format!("{FRONTEND}, http://localhost:5173"),
    )])
    .await;
    let allowed = preflight(&app, FRONTEND).await;
    assert!(allowed.status().is_success(), "{}", allowed.status());
    assert_eq!(
        header(&allowed, "access-control-allow-origin"),
        Some(FRONTEND)
    );
    let methods = header(&allowed, "access-control-allow-methods")
        .unwrap_or_default()
        .to_lowercase();
    assert!(
        methods.contains("post") && methods.contains("delete"),
        "{methods}"
    );
    let headers = header(&allowed, "access-control-allow-headers")
        .unwrap_or_default()
        .to_lowercase();
    for needed in [
        "authorization",
        "content-type",
        "idempotency-key",
        "mingus-account",
    ] {
        assert!(headers.contains(needed), "{needed} in {headers}");
    }
    assert!(header(&allowed, "access-control-allow-credentials").is_none());

    // The actual call: its rate-limit headers are readable by the page.
    let user = user_on(&app, None).await;
    let response = app
        .client
        .get(app.url("/v1/features"))
        .header("origin", "http://localhost:5173")
        .bearer_auth(user_token(&app, user))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        header(&response, "access-control-allow-origin"),
        Some("http://localhost:5173")
    );
    let exposed = header(&response, "access-control-expose-headers")
        .unwrap_or_default()
        .to_lowercase();
    assert!(
        exposed.contains("ratelimit-remaining") && exposed.contains("retry-after"),
        "{exposed}"
    );

    // Another site's page: no permission, whatever it asks.
    let other = preflight(&app, "https://evil.example").await;
    assert!(header(&other, "access-control-allow-origin").is_none());

    // Not configured: no CORS headers for anyone.
    let closed = TestApp::spawn().await;
    let refused = preflight(&closed, FRONTEND).await;
    assert!(header(&refused, "access-control-allow-origin").is_none());
}
