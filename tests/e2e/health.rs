//! Health probes answer 200 when the dependencies are up and 503 within 2 s when they are not — whether
//! the port refuses connections or accepts them and never answers.

use std::time::{Duration, Instant};

use mingus_tests::TestApp;
use serde_json::Value;
use tokio::net::TcpListener;

const PROBES: [&str; 4] = [
    "/health/live",
    "/health/ready",
    "/health/database",
    "/health/cache",
];

/// A port nothing listens on.
async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

/// A port that accepts connections and never says a word (a hung server or a black-holed network).
async fn silent_port() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (port, task)
}

async fn probe(app: &TestApp, path: &str) -> (u16, Value, Duration) {
    let started = Instant::now();
    let response = app.get(path).await;
    let status = response.status().as_u16();
    let body = response.json::<Value>().await.unwrap();
    (status, body, started.elapsed())
}

#[tokio::test]
async fn all_probes_are_healthy_with_both_services_up() {
    let app = TestApp::spawn().await;
    for path in PROBES {
        let (status, body, _) = probe(&app, path).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(body["status"], "healthy", "{path}: {body}");
    }
    let response = app.get("/health/live").await;
    assert!(
        response.headers().contains_key("x-request-id"),
        "every response carries a request id"
    );
}

async fn assert_unhealthy_fast(app: &TestApp, failing: &[&str], healthy: &[&str]) {
    for path in failing {
        let (status, body, took) = probe(app, path).await;
        assert_eq!(status, 503, "{path}: {body}");
        assert_eq!(body["status"], "unhealthy", "{path}: {body}");
        assert!(took < Duration::from_secs(2), "{path} took {took:?}");
    }
    for path in healthy {
        let (status, body, _) = probe(app, path).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
}

#[tokio::test]
async fn database_down_answers_503_within_two_seconds() {
    let port = closed_port().await;
    let url = format!("postgres://postgres@127.0.0.1:{port}/nothing");
    let app = TestApp::spawn_with(&[("DATABASE_URL", &url)]).await;
    assert_unhealthy_fast(
        &app,
        &["/health/database", "/health/ready"],
        &["/health/live", "/health/cache"],
    )
    .await;

    let (port, _task) = silent_port().await;
    let url = format!("postgres://postgres@127.0.0.1:{port}/nothing");
    let app = TestApp::spawn_with(&[("DATABASE_URL", &url)]).await;
    assert_unhealthy_fast(
        &app,
        &["/health/database", "/health/ready"],
        &["/health/live"],
    )
    .await;
}

/// Redis down: the cache probe fails fast, and readiness stays 200 with `degraded` — the API keeps
/// taking webhooks (stored, pushed later by the outbox), so a load balancer must not pull it.
async fn assert_degraded(app: &TestApp) {
    let (status, body, took) = probe(app, "/health/ready").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(body["checks"]["cache"]["status"], "unhealthy", "{body}");
    assert_eq!(body["checks"]["database"]["status"], "healthy", "{body}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

#[tokio::test]
async fn redis_down_fails_the_cache_probe_fast_and_degrades_readiness() {
    let port = closed_port().await;
    let url = format!("redis://127.0.0.1:{port}");
    let app = TestApp::spawn_with(&[("REDIS_URL", &url)]).await;
    assert_unhealthy_fast(
        &app,
        &["/health/cache"],
        &["/health/live", "/health/database"],
    )
    .await;
    assert_degraded(&app).await;

    let (port, _task) = silent_port().await;
    let url = format!("redis://127.0.0.1:{port}");
    let app = TestApp::spawn_with(&[("REDIS_URL", &url)]).await;
    assert_unhealthy_fast(&app, &["/health/cache"], &["/health/live"]).await;
    assert_degraded(&app).await;
    // The process is still serving after the failed probes.
    let (status, _, _) = probe(&app, "/health/live").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn probe_bodies_carry_no_error_text() {
    let port = closed_port().await;
    let db_url = format!("postgres://postgres@127.0.0.1:{port}/nothing");
    let redis_url = format!("redis://127.0.0.1:{port}");
    let app = TestApp::spawn_with(&[("DATABASE_URL", &db_url), ("REDIS_URL", &redis_url)]).await;
    for path in PROBES {
        let (_, body, _) = probe(&app, path).await;
        let text = body.to_string();
        assert!(
            !text.contains("error") && !text.contains("refused"),
            "{path}: {text}"
        );
    }
}

#[tokio::test]
async fn unknown_routes_get_a_json_404() {
    let app = TestApp::spawn().await;
    let response = app.get("/nope").await;
    assert_eq!(response.status().as_u16(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    let response = app
        .client
        .post(app.url("/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 405);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed");
}

/// A request that needs the database while it is down or silent answers 503 with `Retry-After`
/// after the API's short checkout wait (DATABASE_API_ACQUIRE_TIMEOUT_MS), never a 500 and never the
/// workers' 30 s.
#[tokio::test]
async fn v1_requests_with_the_database_down_answer_503_with_retry_after_quickly() {
    let closed = closed_port().await;
    let (silent, _task) = silent_port().await;
    for port in [closed, silent] {
        let url = format!("postgres://postgres@127.0.0.1:{port}/nothing");
        let app = TestApp::spawn_with(&[
            ("DATABASE_URL", &url),
            ("DATABASE_API_ACQUIRE_TIMEOUT_MS", "1000"),
        ])
        .await;
        let token = mingus_tests::frontend::user_token(&app, uuid::Uuid::new_v4());
        for path in ["/v1/reports", "/v1/features", "/v1/api-keys"] {
            let started = Instant::now();
            let response = app
                .client
                .get(app.url(path))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            let took = started.elapsed();
            assert_eq!(response.status(), 503, "{path} (port {port})");
            assert_eq!(response.headers()["retry-after"], "2", "{path}");
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], "unavailable", "{path}");
            assert!(took < Duration::from_secs(4), "{path} took {took:?}");
        }
    }
}
