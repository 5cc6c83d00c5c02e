//! The writes the plan routes make (issue 21, part C): `POST /v1/billing_portal/sessions` and
//! `POST /v1/subscriptions/{id}` (`cancel_at_period_end`, or an item's new price); customers, Checkout
//! Sessions and subscription schedules are in `plans.rs`. Like Stripe, an `Idempotency-Key` seen before
//! answers the first answer again without acting; answers can be scripted ahead (a declined card, a 429,
//! a 500), each used by one call, so tests can drive the client's error mapping and retries.

use std::collections::{HashMap, VecDeque};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use serde_json::{Value, json};

use super::{RecordedRequest, Shared, StripeServer, stripe_error};

/// A scripted answer: status, Stripe's error body, and the `Stripe-Should-Retry` header if any.
#[derive(Debug, Clone)]
pub struct Scripted {
    pub status: u16,
    pub body: Value,
    pub should_retry: Option<bool>,
}

impl Scripted {
    pub fn card_declined() -> Self {
        Scripted {
            status: 402,
            body: json!({"error": {"type": "card_error", "code": "card_declined",
                                   "decline_code": "insufficient_funds",
                                   "message": "Your card has insufficient funds."}}),
            should_retry: Some(false),
        }
    }

    pub fn rate_limited() -> Self {
        Scripted {
            status: 429,
            body: json!({"error": {"type": "invalid_request_error", "code": "rate_limit",
                                   "message": "Too many requests hit the API too quickly."}}),
            should_retry: None,
        }
    }

    pub fn server_error() -> Self {
        Scripted {
            status: 500,
            body: json!({"error": {"type": "api_error", "message": "Something went wrong on Stripe's end."}}),
            should_retry: Some(true),
        }
    }
}

#[derive(Default)]
pub(super) struct Writes {
    /// One entry per coming POST: a scripted answer, or `None` to act as usual.
    scripted: VecDeque<Option<Scripted>>,
    /// Idempotency key → the answer given (status, body).
    answered: HashMap<String, (u16, Value)>,
}

impl StripeServer {
    /// The next POST (whatever its path) gets `answer` instead of acting; one per call, in order.
    pub fn script(&self, answer: Scripted) {
        self.data
            .lock()
            .unwrap()
            .writes
            .scripted
            .push_back(Some(answer));
    }

    /// The next POST acts as usual: queued before [`StripeServer::script`], it makes the scripted answer
    /// reach the second of two calls (a release that succeeds, then an upgrade that is declined).
    pub fn script_acting(&self) {
        self.data.lock().unwrap().writes.scripted.push_back(None);
    }

    /// POSTs received (retries included).
    pub fn writes(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "POST")
            .collect()
    }
}

pub(super) fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Records the POST, checks the key; then a replayed key's first answer, or a scripted answer, or
/// `act` (whose answer is remembered under the key).
pub(super) fn write(
    data: &Shared,
    path: String,
    headers: &HeaderMap,
    form: Vec<(String, String)>,
    act: impl FnOnce(&mut super::Data, &[(String, String)]) -> (u16, Value),
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let key = header("idempotency-key");
    let mut data = data.lock().unwrap();
    data.requests.push(RecordedRequest {
        method: Method::POST.to_string(),
        path,
        query: Vec::new(),
        authorization: header("authorization"),
        stripe_version: header("stripe-version"),
        idempotency_key: key.clone(),
        form: form.clone(),
    });
    let authorized = header("authorization").is_some_and(|a| a.starts_with("Bearer sk_"));
    if !authorized {
        return stripe_error(
            StatusCode::UNAUTHORIZED,
            "You did not provide an API key.",
            None,
        );
    }
    if let Some((status, body)) = key.as_ref().and_then(|k| data.writes.answered.get(k)) {
        let mut response = answer(*status, body.clone());
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
        return response;
    }
    if let Some(Some(scripted)) = data.writes.scripted.pop_front() {
        let mut response = answer(scripted.status, scripted.body);
        if let Some(retry) = scripted.should_retry {
            let value = HeaderValue::from_static(if retry { "true" } else { "false" });
            response.headers_mut().insert("stripe-should-retry", value);
        }
        return response;
    }
    let (status, body) = act(&mut data, &form);
    if let Some(key) = key {
        data.writes.answered.insert(key, (status, body.clone()));
    }
    answer(status, body)
}

fn answer(status: u16, body: Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(body)).into_response()
}

pub(super) async fn portal_session(
    State(data): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let path = "/v1/billing_portal/sessions".to_owned();
    write(&data, path, &headers, form, |data, form| {
        let n = data.requests.len();
        let Some(customer) = field(form, "customer") else {
            return (
                400,
                json!({"error": {"type": "invalid_request_error",
                                          "message": "Missing required param: customer."}}),
            );
        };
        (
            200,
            json!({
                "id": format!("bps_test_{n}"),
                "object": "billing_portal.session",
                "customer": customer,
                "return_url": field(form, "return_url"),
                "url": format!("https://billing.stripe.com/p/session/test_{n}"),
                "livemode": false,
            }),
        )
    })
}

pub(super) async fn update_subscription(
    State(data): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let path = format!("/v1/subscriptions/{id}");
    write(&data, path, &headers, form, |data, form| {
        let Some(sub) = data
            .subscriptions
            .iter_mut()
            .find(|s| s["id"] == id.as_str())
        else {
            return (
                404,
                json!({"error": {"type": "invalid_request_error",
                                          "code": "resource_missing",
                                          "message": format!("No such subscription: '{id}'")}}),
            );
        };
        if let Some(cancel) = field(form, "cancel_at_period_end") {
            sub["cancel_at_period_end"] = json!(cancel == "true");
        }
        if let Some(price) = field(form, "items[0][price]") {
            // Like Stripe: the item is named by its id, else a new item would be added.
            let item = &mut sub["items"]["data"][0];
            if field(form, "items[0][id]") != item["id"].as_str() {
                return (
                    400,
                    json!({"error": {"type": "invalid_request_error",
                                     "message": "items[0][id] is not an item of this subscription"}}),
                );
            }
            item["price"]["id"] = json!(price);
            item["price"]["lookup_key"] = Value::Null;
        }
        (200, sub.clone())
    })
}
