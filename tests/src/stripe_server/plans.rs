//! The writes behind checkout and plan changes (issue 21, part C): `POST /v1/customers`, `POST
//! /v1/checkout/sessions`, `POST /v1/subscription_schedules` (`from_subscription`), `POST
//! /v1/subscription_schedules/{id}` (phases) and `…/{id}/release`. Through `writes::write`, so keys
//! replay and scripted answers apply as for the other writes. Customer creation waits the server's
//! delay first (outside the lock), so tests can make two first checkouts meet at Stripe.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Value, json};

use super::writes::{field, write};
use super::{Shared, StripeServer};

#[derive(Default)]
pub(super) struct Plans {
    customers: Vec<Value>,
    sessions: Vec<Value>,
    schedules: Vec<Value>,
}

impl StripeServer {
    /// Customers created (replays not counted).
    pub fn customers(&self) -> Vec<Value> {
        self.data.lock().unwrap().plans.customers.clone()
    }

    /// Checkout Sessions created (replays not counted).
    pub fn checkout_sessions(&self) -> Vec<Value> {
        self.data.lock().unwrap().plans.sessions.clone()
    }

    /// Subscription schedules as they are now.
    pub fn schedules(&self) -> Vec<Value> {
        self.data.lock().unwrap().plans.schedules.clone()
    }

    /// A subscription as it is now.
    pub fn subscription(&self, id: &str) -> Option<Value> {
        let data = self.data.lock().unwrap();
        data.subscriptions.iter().find(|s| s["id"] == id).cloned()
    }

    /// Changes a stored subscription in place (a test's starting state, e.g. trialing); false if unknown.
    pub fn edit_subscription(&self, id: &str, edit: impl FnOnce(&mut Value)) -> bool {
        let mut data = self.data.lock().unwrap();
        let found = data.subscriptions.iter_mut().find(|s| s["id"] == id);
        found.map(edit).is_some()
    }
}

fn missing(param: &str) -> (u16, Value) {
    (
        400,
        json!({"error": {"type": "invalid_request_error", "param": param,
                         "message": format!("Missing required param: {param}.")}}),
    )
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

pub(super) async fn create_customer(
    State(data): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let delay = data.lock().unwrap().delay;
    tokio::time::sleep(delay).await;
    write(
        &data,
        "/v1/customers".into(),
        &headers,
        form,
        |data, form| {
            let customer = json!({
                "id": format!("cus_test_{}", data.plans.customers.len() + 1),
                "object": "customer",
                "email": field(form, "email"),
                "metadata": {"user_id": field(form, "metadata[user_id]")},
                "created": now(),
                "livemode": false,
            });
            data.plans.customers.push(customer.clone());
            (200, customer)
        },
    )
}

pub(super) async fn create_checkout_session(
    State(data): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let path = "/v1/checkout/sessions".to_owned();
    write(&data, path, &headers, form, |data, form| {
        for param in ["mode", "line_items[0][price]", "success_url"] {
            if field(form, param).is_none() {
                return missing(param);
            }
        }
        let id = format!("cs_test_{}", data.plans.sessions.len() + 1);
        let session = json!({
            "id": id,
            "object": "checkout.session",
            "mode": field(form, "mode"),
            "customer": field(form, "customer"),
            "client_reference_id": field(form, "client_reference_id"),
            "success_url": field(form, "success_url"),
            "cancel_url": field(form, "cancel_url"),
            "url": format!("https://checkout.stripe.com/c/pay/{id}"),
            "expires_at": now() + 24 * 3600,
            "status": "open",
            "livemode": false,
        });
        data.plans.sessions.push(session.clone());
        (200, session)
    })
}

pub(super) async fn create_schedule(
    State(data): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let path = "/v1/subscription_schedules".to_owned();
    write(&data, path, &headers, form, |data, form| {
        let Some(sub_id) = field(form, "from_subscription") else {
            return missing("from_subscription");
        };
        let id = format!("sub_sched_test_{}", data.plans.schedules.len() + 1);
        let Some(sub) = data.subscriptions.iter_mut().find(|s| s["id"] == sub_id) else {
            return (
                404,
                json!({"error": {"type": "invalid_request_error", "code": "resource_missing",
                                 "message": format!("No such subscription: '{sub_id}'")}}),
            );
        };
        if !sub["schedule"].is_null() {
            return (
                400,
                json!({"error": {"type": "invalid_request_error",
                                 "message": "The subscription is already attached to a schedule."}}),
            );
        }
        sub["schedule"] = json!(id);
        let item = &sub["items"]["data"][0];
        let schedule = json!({
            "id": id,
            "object": "subscription_schedule",
            "subscription": sub_id,
            "status": "active",
            "end_behavior": "release",
            "phases": [{"start_date": item["current_period_start"], "end_date": item["current_period_end"],
                        "items": [{"price": item["price"]["id"], "quantity": 1}]}],
        });
        data.plans.schedules.push(schedule.clone());
        (200, schedule)
    })
}

/// The `phases[i][…]` fields of the form, as Stripe reads them (only what the client sends).
fn phases(form: &[(String, String)]) -> Vec<Value> {
    (0..)
        .map_while(|i| {
            let at = |name: &str| field(form, &format!("phases[{i}][{name}]"));
            let price = at("items][0][price")?;
            let number = |name: &str| at(name).and_then(|v| v.parse::<i64>().ok());
            Some(
                json!({"start_date": number("start_date"), "end_date": number("end_date"),
                        "iterations": number("iterations"),
                        "items": [{"price": price, "quantity": number("items][0][quantity")}]}),
            )
        })
        .collect()
}

pub(super) async fn update_schedule(
    State(data): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let path = format!("/v1/subscription_schedules/{id}");
    write(&data, path, &headers, form, |data, form| {
        let Some(schedule) = data
            .plans
            .schedules
            .iter_mut()
            .find(|s| s["id"] == id.as_str())
        else {
            return no_such_schedule(&id);
        };
        let phases = phases(form);
        if phases.is_empty() {
            return missing("phases");
        }
        schedule["phases"] = json!(phases);
        if let Some(end) = field(form, "end_behavior") {
            schedule["end_behavior"] = json!(end);
        }
        (200, schedule.clone())
    })
}

pub(super) async fn release_schedule(
    State(data): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let path = format!("/v1/subscription_schedules/{id}/release");
    write(&data, path, &headers, form, |data, _| {
        let Some(schedule) = data
            .plans
            .schedules
            .iter_mut()
            .find(|s| s["id"] == id.as_str())
        else {
            return no_such_schedule(&id);
        };
        schedule["status"] = json!("released");
        let released = schedule.clone();
        if let Some(sub) = data
            .subscriptions
            .iter_mut()
            .find(|s| s["schedule"] == id.as_str())
        {
            sub["schedule"] = Value::Null;
        }
        (200, released)
    })
}

/// Stripe's 404 for an unknown subscription schedule.
fn no_such_schedule(id: &str) -> (u16, Value) {
    (
        404,
        json!({"error": {"type": "invalid_request_error", "code": "resource_missing",
                         "message": format!("No such subscription schedule: '{id}'")}}),
    )
}
