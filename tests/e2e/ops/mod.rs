//! The operator API `/ops` and `/metrics` end to end, and the helpers its tests share.

mod auth;
mod customer_actions;
mod customers;
mod dead;
mod operators;
mod queues;
mod stripe_events;

use std::time::Duration;

use mingus_common::jobs::Enqueuer;
use mingus_common::jobs::catalog::BenchNoop;
use mingus_common::queue::Queue;
use mingus_tests::TestApp;
use mingus_tests::wait::{count, until};
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde_json::Value;
use uuid::Uuid;

pub(super) const LIMIT: Duration = Duration::from_secs(30);

pub(super) fn token(app: &TestApp) -> String {
    app.config
        .admin_token
        .as_ref()
        .unwrap()
        .expose_secret()
        .to_owned()
}

pub(super) async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = app
        .client
        .request(method, app.url(path))
        .bearer_auth(token(app));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

pub(super) async fn get(app: &TestApp, path: &str) -> Value {
    let (status, body) = call(app, Method::GET, path, None).await;
    assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
    body
}

pub(super) async fn enqueuer(app: &TestApp) -> Enqueuer {
    let redis = mingus_common::cache::connect(&app.config.redis)
        .await
        .unwrap();
    Enqueuer::new(redis, app.redis_prefix.clone())
}

pub(super) async fn bench(app: &TestApp) -> Value {
    let queues = get(app, "/ops/queues").await;
    let all = queues["queues"].as_array().unwrap();
    assert_eq!(all.len(), Queue::ALL.len());
    all.iter().find(|q| q["queue"] == "bench").unwrap().clone()
}

/// A job that dies in its first life (three failed attempts) and succeeds when retried.
pub(super) fn dies_once() -> BenchNoop {
    BenchNoop {
        fail_generations: 1,
        ..Default::default()
    }
}

pub(super) async fn wait_dead(app: &TestApp, n: i64) {
    until(LIMIT, "dead letters", || async {
        let open = count(
            &app.db.pool,
            "SELECT count(*) FROM job_dead_letters WHERE retried_at IS NULL",
        )
        .await;
        (open == n).then_some(())
    })
    .await;
}

pub(super) async fn wait_state(app: &TestApp, job_id: Uuid, state: &str) -> Value {
    until(LIMIT, state, || async {
        let job = get(app, &format!("/ops/jobs/{job_id}")).await;
        (job["state"] == state).then_some(job)
    })
    .await
}
