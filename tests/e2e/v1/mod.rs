//! The `/v1` API's authentication, API keys and rate limits end to end, and the helpers they share.

mod analytics;
mod api_keys;
mod auth;
mod billing;
mod billing_change;
mod billing_checkout;
mod cors;
mod features;
mod jwks;
mod limits;
mod provisioning;
mod rate_limit;
mod team;
mod usage;
mod usage_batch;

use std::time::Duration;

use mingus_tests::TestApp;
use mingus_tests::frontend::user_token;
use mingus_tests::openapi::contract;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

pub(super) const LIMIT: Duration = Duration::from_secs(20);

/// A user with an active subscription to `tier` (none when `None`).
pub(super) async fn user_on(app: &TestApp, tier: Option<&str>) -> Uuid {
    let user = crate::fixtures::user(&app.db.pool).await;
    if let Some(tier) = tier {
        sqlx::query(
            "INSERT INTO subscriptions (user_id, plan_tier, plan_price, billing_cycle, status,
                                        current_period_start, current_period_end)
             SELECT $1, tier_name, monthly_price, 'monthly', 'active', now() - interval '1 day',
                    now() + interval '29 days'
             FROM pricing_tiers WHERE tier_name = $2",
        )
        .bind(user)
        .bind(tier)
        .execute(&app.db.pool)
        .await
        .expect("insert subscription");
        grant_plan(app, user).await;
    }
    user
}

/// Moves the user's subscription to Professional behind the cache: the plan row, the feature rows
/// (as Stripe processing recomputes them) and the eviction, as the Stripe processor does.
pub(super) async fn move_to_professional(app: &TestApp, user: Uuid) {
    sqlx::query(
        "UPDATE subscriptions SET plan_tier = 'professional', plan_price = 29 WHERE user_id = $1",
    )
    .bind(user)
    .execute(&app.db.pool)
    .await
    .unwrap();
    grant_plan(app, user).await;
    invalidate(app, user).await;
}

/// Evicts the user's cached plan, as the Stripe processor does after a change of access.
pub(super) async fn invalidate(app: &TestApp, user: Uuid) {
    let redis = mingus_common::cache::connect(&app.config.redis)
        .await
        .unwrap();
    mingus_common::entitlements::Entitlements::new(app.db.pool.clone(), redis, &app.redis_prefix)
        .invalidate(user)
        .await
        .unwrap();
}

/// Recomputes the user's `feature_access` rows from their subscriptions, as Stripe processing does.
pub(super) async fn grant_plan(app: &TestApp, user: Uuid) {
    let mut tx = app.db.pool.begin().await.unwrap();
    mingus_common::billing::access::recompute(&mut tx, user, chrono::Utc::now())
        .await
        .expect("recompute feature access");
    tx.commit().await.unwrap();
}

pub(super) async fn executive(app: &TestApp) -> Uuid {
    user_on(app, Some("executive")).await
}

/// A response: status, headers, JSON body (`Null` when there is none).
pub(super) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    pub fn number(&self, name: &str) -> u64 {
        self.header(name)
            .unwrap_or_else(|| panic!("missing {name}"))
            .parse()
            .unwrap()
    }
}

/// Sends a request with `Authorization: Bearer <credential>` to `base` (the app or another instance).
pub(super) async fn send_to(
    app: &TestApp,
    url: String,
    method: Method,
    credential: Option<&str>,
    body: Option<Value>,
) -> Answer {
    let path = reqwest::Url::parse(&url).unwrap().path().to_owned();
    let mut request = app.client.request(method.clone(), url);
    if let Some(credential) = credential {
        request = request.bearer_auth(credential);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    answer(&method, &path, request).await
}

/// Sends `request` (a `method` call of the route at `path`), checks the response against
/// `/openapi.json` and reads its JSON body.
pub(super) async fn answer(
    method: &Method,
    path: &str,
    request: reqwest::RequestBuilder,
) -> Answer {
    let response = request.send().await.expect("request reaches the API");
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    check_contract(method, path, status, &headers, &text);
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
    };
    Answer {
        status,
        headers,
        body,
    }
}

/// Every `/v1` response the tests receive must match `/openapi.json` (status documented, body valid).
pub(super) fn check_contract(
    method: &Method,
    path: &str,
    status: StatusCode,
    headers: &HeaderMap,
    text: &str,
) {
    let content_type = headers.get("content-type").map(|v| v.to_str().unwrap());
    if let Err(mismatch) =
        contract().check(method.as_str(), path, status.as_u16(), content_type, text)
    {
        panic!("response does not match /openapi.json: {mismatch}");
    }
}

pub(super) async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    credential: Option<&str>,
    body: Option<Value>,
) -> Answer {
    send_to(app, app.url(path), method, credential, body).await
}

/// `GET /v1/api-keys`, the route every credential can reach (with `api_keys:read` for keys).
pub(super) async fn list_keys(app: &TestApp, credential: &str) -> Answer {
    send(app, Method::GET, "/v1/api-keys", Some(credential), None).await
}

/// Creates a key for `user` and returns the 201 body (with the secret in `key`).
pub(super) async fn create_key(app: &TestApp, user: Uuid, body: Value) -> Value {
    let token = user_token(app, user);
    let answer = send(app, Method::POST, "/v1/api-keys", Some(&token), Some(body)).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    answer.body
}

/// A key for `user` with `scopes` and an hourly limit; returns its secret.
pub(super) async fn key_with(app: &TestApp, user: Uuid, scopes: &[&str], limit: u32) -> String {
    let created = create_key(
        app,
        user,
        json!({"name": "test key", "scopes": scopes, "rate_limit_per_hour": limit}),
    )
    .await;
    created["key"].as_str().unwrap().to_owned()
}

pub(super) async fn count_keys(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM api_keys")
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
}
