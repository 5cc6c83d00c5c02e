//! Stored Stripe events in the operator API: list and filter, one event with its payload and error,
//! replay one (processed again by a real worker), replay every failed one, bad input, Redis down, auth.
//! Events arrive through the real signed webhook unless a test is about something else.

use mingus_api::webhooks::signature::sign;
use mingus_tests::TestApp;
use mingus_tests::stripe::{self as fx, ApiShape, status_of};
use mingus_tests::wait::until;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use uuid::Uuid;

use super::{LIMIT, call, get};

mod listing;
mod replay;

const SECRET: &str = "whsec_test_secret";

/// POSTs a body to the webhook with a valid signature; returns the status it was stored with.
pub(super) async fn deliver_raw(app: &TestApp, body: &[u8]) -> String {
    let now = chrono::Utc::now().timestamp();
    let signature: String = sign(SECRET, now, body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let response = app
        .client
        .post(app.url("/webhooks/stripe"))
        .header("content-type", "application/json")
        .header("stripe-signature", format!("t={now},v1={signature}"))
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let reply: Value = response.json().await.unwrap();
    reply["status"].as_str().unwrap().to_owned()
}

pub(super) async fn deliver(app: &TestApp, event: &Value) -> String {
    deliver_raw(app, &serde_json::to_vec(event).unwrap()).await
}

/// A `checkout.session.completed` linking `customer` to `user_id`: processing fails permanently while
/// no such user exists, and succeeds once the user is there.
pub(super) fn checkout(id: &str, user_id: Uuid, customer: &str) -> Value {
    let shape = ApiShape::Basil;
    let session = fx::checkout(shape, customer, &user_id.to_string(), "sub_ops");
    let now = chrono::Utc::now().timestamp();
    fx::envelope(shape, id, "checkout.session.completed", now, session)
}

pub(super) fn customer_created(id: &str, customer: &str) -> Value {
    let shape = ApiShape::Basil;
    let object = fx::customer(shape, customer, Some("nobody@example.com"), None);
    fx::envelope(
        shape,
        id,
        "customer.created",
        chrono::Utc::now().timestamp(),
        object,
    )
}

pub(super) async fn add_user(app: &TestApp, id: Uuid) {
    sqlx::query("INSERT INTO users (id, email, full_name) VALUES ($1, $2, 'Ops Test')")
        .bind(id)
        .bind(format!("{}@example.com", id.simple()))
        .execute(&app.db.pool)
        .await
        .unwrap();
}

pub(super) async fn linked_customer(app: &TestApp, user_id: Uuid) -> Option<String> {
    sqlx::query_scalar("SELECT stripe_customer_id FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
}

pub(super) async fn wait_status(app: &TestApp, id: &str, status: &str) {
    until(LIMIT, &format!("{id} {status}"), || async {
        (status_of(&app.db.pool, id).await == status).then_some(())
    })
    .await;
}

pub(super) async fn job_of(app: &TestApp, id: &str) -> Option<Uuid> {
    sqlx::query_scalar("SELECT job_id FROM stripe_events WHERE id = $1")
        .bind(id)
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
}

/// Everything a refused request must leave alone.
pub(super) async fn snapshot(app: &TestApp) -> Vec<(String, String, Option<Uuid>, i32, i64)> {
    sqlx::query_as(
        "SELECT id, status, job_id, attempts, (SELECT count(*) FROM job_outbox) FROM stripe_events ORDER BY id",
    )
    .fetch_all(&app.db.pool)
    .await
    .unwrap()
}

pub(super) fn ids(list: &Value) -> Vec<&str> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_str().unwrap())
        .collect()
}

pub(super) async fn error_of(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, String) {
    let (status, reply) = call(app, method, path, body).await;
    let code = reply["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (status.as_u16(), code)
}
