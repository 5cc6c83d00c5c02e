//! A local stand-in for the Stripe API on 127.0.0.1:0, serving Stripe-shaped JSON built from Stripe's
//! published fixtures (`shared/stripe-fixtures`): `GET /v1/subscriptions` (list, `status`, pagination),
//! `GET /v1/subscriptions/{id}` and `GET /v1/events` (`delivery_success`, `created[gte|gt|lte|lt]`,
//! `type`, `starting_after`, `limit`), and the plan routes' writes (`writes.rs`, `plans.rs`). Every
//! request is recorded, so tests can assert what the client sent (key, query, form). Errors have
//! Stripe's `{"error": {…}}` shape.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::sync::oneshot;

mod plans;
pub mod scenarios;
mod writes;

pub use writes::Scripted;

/// The secret key tests configure (`STRIPE_API_KEY`).
pub const TEST_KEY: &str = "sk_test_mingus_fixture_server_key";

fn load(file: &str) -> Value {
    let path = format!(
        "{}/../../shared/stripe-fixtures/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).expect("fixtures are JSON")
}

/// A resource of `fixtures3-subset.json` (the current, basil-and-later shape).
pub fn fixture(resource: &str) -> Value {
    static CURRENT: OnceLock<Value> = OnceLock::new();
    CURRENT.get_or_init(|| load("fixtures3-subset.json"))["resources"][resource].clone()
}

/// A resource of `fixtures3-2024-subset.json` (the pre-basil shape).
pub fn fixture_2024(resource: &str) -> Value {
    static OLD: OnceLock<Value> = OnceLock::new();
    OLD.get_or_init(|| load("fixtures3-2024-subset.json"))["resources"][resource].clone()
}

/// The price id of the fixtures' subscription item.
pub const FIXTURE_PRICE: &str = "price_1PgafmB7WZ01zgkW6dKueIc5";

/// A subscription built from the fixture, with the fields reconciliation compares.
#[derive(Debug, Clone)]
pub struct Sub {
    pub id: &'static str,
    pub customer: &'static str,
    pub status: &'static str,
    pub period: (i64, i64),
    pub cancel_at_period_end: bool,
}

impl Sub {
    fn common(&self, mut sub: Value) -> Value {
        sub["id"] = json!(self.id);
        sub["customer"] = json!(self.customer);
        sub["status"] = json!(self.status);
        sub["cancel_at_period_end"] = json!(self.cancel_at_period_end);
        sub["created"] = json!(self.period.0);
        sub["livemode"] = json!(false);
        let live = !matches!(self.status, "canceled" | "incomplete_expired");
        for field in ["canceled_at", "ended_at", "cancel_at"] {
            if live || field == "cancel_at" {
                sub[field] = Value::Null;
            }
        }
        sub["items"]["data"][0]["subscription"] = json!(self.id);
        sub["items"]["url"] = json!(format!("/v1/subscription_items?subscription={}", self.id));
        sub
    }

    /// Basil on: the period lives on `items.data[0]`.
    pub fn basil(&self) -> Value {
        let mut sub = self.common(fixture("subscription"));
        let item = &mut sub["items"]["data"][0];
        item["current_period_start"] = json!(self.period.0);
        item["current_period_end"] = json!(self.period.1);
        sub
    }

    /// Before basil: the period lives on the subscription.
    pub fn pre_basil(&self) -> Value {
        let mut sub = self.common(fixture_2024("subscription"));
        sub["current_period_start"] = json!(self.period.0);
        sub["current_period_end"] = json!(self.period.1);
        sub
    }
}

/// An event envelope (the fixture's) around `object`.
pub fn event(id: &str, kind: &str, created: i64, livemode: bool, object: Value) -> Value {
    let mut event = fixture("event");
    event["id"] = json!(id);
    event["type"] = json!(kind);
    event["created"] = json!(created);
    event["livemode"] = json!(livemode);
    event["api_version"] = json!("2025-03-31.basil");
    event["data"] = json!({"object": object, "previous_attributes": {}});
    event
}

/// One request the server received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub authorization: Option<String>,
    pub stripe_version: Option<String>,
    /// POSTs: the `Idempotency-Key` header and the form body.
    pub idempotency_key: Option<String>,
    pub form: Vec<(String, String)>,
}

impl RecordedRequest {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Data {
    subscriptions: Vec<Value>,
    /// Events with whether their delivery succeeded.
    events: Vec<(Value, bool)>,
    requests: Vec<RecordedRequest>,
    delay: Duration,
    /// POSTs: answers scripted for the next calls, and the answers given per idempotency key.
    writes: writes::Writes,
    /// Customers, Checkout Sessions and subscription schedules created.
    plans: plans::Plans,
}

type Shared = Arc<Mutex<Data>>;

/// The running server; it stops when dropped.
pub struct StripeServer {
    /// `http://127.0.0.1:<port>`: the `STRIPE_API_BASE` to configure.
    pub base: String,
    data: Shared,
    stop: Option<oneshot::Sender<()>>,
}

impl StripeServer {
    pub async fn start() -> Self {
        let data: Shared = Arc::default();
        let app = Router::new()
            .route("/v1/subscriptions", get(list_subscriptions))
            .route("/v1/subscriptions/{id}", get(retrieve_subscription))
            .route("/v1/events", get(list_events))
            .route(
                "/v1/billing_portal/sessions",
                axum::routing::post(writes::portal_session),
            )
            .route(
                "/v1/subscriptions/{id}",
                axum::routing::post(writes::update_subscription),
            )
            .route("/v1/customers", axum::routing::post(plans::create_customer))
            .route(
                "/v1/checkout/sessions",
                axum::routing::post(plans::create_checkout_session),
            )
            .route(
                "/v1/subscription_schedules",
                axum::routing::post(plans::create_schedule),
            )
            .route(
                "/v1/subscription_schedules/{id}",
                axum::routing::post(plans::update_schedule),
            )
            .route(
                "/v1/subscription_schedules/{id}/release",
                axum::routing::post(plans::release_schedule),
            )
            .with_state(data.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        StripeServer {
            base,
            data,
            stop: Some(stop),
        }
    }

    pub fn add_subscription(&self, subscription: Value) {
        self.data.lock().unwrap().subscriptions.push(subscription);
    }

    pub fn add_event(&self, event: Value, delivered: bool) {
        self.data.lock().unwrap().events.push((event, delivered));
    }

    /// Every answer waits this long first.
    pub fn set_delay(&self, delay: Duration) {
        self.data.lock().unwrap().delay = delay;
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.data.lock().unwrap().requests.clone()
    }
}

impl Drop for StripeServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

type Params = Query<Vec<(String, String)>>;

fn stripe_error(status: StatusCode, message: &str, code: Option<&str>) -> Response {
    let body =
        json!({"error": {"type": "invalid_request_error", "message": message, "code": code}});
    (status, Json(body)).into_response()
}

/// Records the request, waits the configured delay and checks the key.
async fn accept(
    data: &Shared,
    path: String,
    headers: &HeaderMap,
    query: &[(String, String)],
) -> Result<(), Response> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let authorization = header("authorization");
    let delay = {
        let mut data = data.lock().unwrap();
        data.requests.push(RecordedRequest {
            method: Method::GET.to_string(),
            path,
            query: query.to_vec(),
            authorization: authorization.clone(),
            stripe_version: header("stripe-version"),
            idempotency_key: None,
            form: Vec::new(),
        });
        data.delay
    };
    tokio::time::sleep(delay).await;
    match authorization
        .as_deref()
        .and_then(|a| a.strip_prefix("Bearer "))
    {
        Some(key) if key.starts_with("sk_") => Ok(()),
        _ => Err(stripe_error(
            StatusCode::UNAUTHORIZED,
            "You did not provide an API key.",
            None,
        )),
    }
}

fn param<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A page of `items` after `starting_after`, `limit` long (default 10, 1–100), as a Stripe list.
fn page(url: &str, items: Vec<Value>, query: &[(String, String)]) -> Response {
    let limit = match param(query, "limit").map(str::parse::<usize>) {
        None => 10,
        Some(Ok(limit)) if (1..=100).contains(&limit) => limit,
        Some(_) => return stripe_error(StatusCode::BAD_REQUEST, "Invalid limit", None),
    };
    let start = match param(query, "starting_after") {
        None => 0,
        Some(id) => match items.iter().position(|item| item["id"] == id) {
            Some(index) => index + 1,
            None => {
                let message = format!("No such object: '{id}'");
                return stripe_error(StatusCode::BAD_REQUEST, &message, Some("resource_missing"));
            }
        },
    };
    let data: Vec<Value> = items.iter().skip(start).take(limit).cloned().collect();
    let has_more = start + data.len() < items.len();
    Json(json!({"object": "list", "url": url, "has_more": has_more, "data": data})).into_response()
}

async fn list_subscriptions(
    State(data): State<Shared>,
    headers: HeaderMap,
    Query(query): Params,
) -> Response {
    if let Err(refused) = accept(&data, "/v1/subscriptions".into(), &headers, &query).await {
        return refused;
    }
    let status = param(&query, "status");
    let items: Vec<Value> = data
        .lock()
        .unwrap()
        .subscriptions
        .iter()
        .filter(|sub| {
            let own = sub["status"].as_str().unwrap_or_default();
            match status {
                // Stripe's default leaves out canceled subscriptions.
                None => !matches!(own, "canceled" | "incomplete_expired"),
                Some("all") => true,
                Some(wanted) => own == wanted,
            }
        })
        .cloned()
        .collect();
    page("/v1/subscriptions", items, &query)
}

async fn retrieve_subscription(
    State(data): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(query): Params,
) -> Response {
    let path = format!("/v1/subscriptions/{id}");
    if let Err(refused) = accept(&data, path, &headers, &query).await {
        return refused;
    }
    let found = data
        .lock()
        .unwrap()
        .subscriptions
        .iter()
        .find(|sub| sub["id"] == id.as_str())
        .cloned();
    match found {
        Some(sub) => Json(sub).into_response(),
        None => stripe_error(
            StatusCode::NOT_FOUND,
            &format!("No such subscription: '{id}'"),
            Some("resource_missing"),
        ),
    }
}

async fn list_events(
    State(data): State<Shared>,
    headers: HeaderMap,
    Query(query): Params,
) -> Response {
    if let Err(refused) = accept(&data, "/v1/events".into(), &headers, &query).await {
        return refused;
    }
    let bound = |name: &str| param(&query, name).and_then(|v| v.parse::<i64>().ok());
    let delivered = param(&query, "delivery_success").map(|v| v == "true");
    let kind = param(&query, "type");
    let mut items: Vec<Value> = data
        .lock()
        .unwrap()
        .events
        .iter()
        .filter(|(event, ok)| {
            let created = event["created"].as_i64().unwrap_or_default();
            delivered.is_none_or(|wanted| wanted == *ok)
                && kind.is_none_or(|k| event["type"] == k)
                && bound("created").is_none_or(|t| created == t)
                && bound("created[gte]").is_none_or(|t| created >= t)
                && bound("created[gt]").is_none_or(|t| created > t)
                && bound("created[lte]").is_none_or(|t| created <= t)
                && bound("created[lt]").is_none_or(|t| created < t)
        })
        .map(|(event, _)| event.clone())
        .collect();
    // Newest first, like Stripe.
    items.sort_by_key(|event| std::cmp::Reverse(event["created"].as_i64().unwrap_or_default()));
    page("/v1/events", items, &query)
}
