//! Stripe's published API fixtures (`../shared/stripe-fixtures/`, both API shapes), builders that turn
//! them into the objects a test needs, event envelopes, and storing events exactly like the webhook
//! ingest does (`stripe_events` row with status `received`); `run` processes them as the worker does.

mod run;

use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::{Value, json};
use sqlx::PgPool;

pub use run::{SeededRng, deliver, drain, first_attempt, process, status_of};

/// The two shapes of Stripe objects (NOTES-stripe "API versions").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiShape {
    /// `2025-03-31.basil` and later: periods on subscription items, `invoice.parent.subscription_details`.
    Basil,
    /// Before basil: periods on the subscription, `invoice.subscription`.
    PreBasil,
}

impl ApiShape {
    pub const ALL: [ApiShape; 2] = [ApiShape::Basil, ApiShape::PreBasil];

    pub fn api_version(self) -> &'static str {
        match self {
            ApiShape::Basil => "2025-03-31.basil",
            ApiShape::PreBasil => "2024-06-20",
        }
    }

    fn file(self) -> &'static str {
        match self {
            ApiShape::Basil => "fixtures3-subset.json",
            ApiShape::PreBasil => "fixtures3-2024-subset.json",
        }
    }
}

/// Where the shared fixtures live: `shared/` beside the checkout (also in CI).
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/stripe-fixtures")
}

fn resources(shape: ApiShape) -> &'static Value {
    static BASIL: OnceLock<Value> = OnceLock::new();
    static PRE_BASIL: OnceLock<Value> = OnceLock::new();
    let cell = match shape {
        ApiShape::Basil => &BASIL,
        ApiShape::PreBasil => &PRE_BASIL,
    };
    cell.get_or_init(|| {
        let path = fixtures_dir().join(shape.file());
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let parsed: Value = serde_json::from_str(&text).expect("fixtures are JSON");
        parsed["resources"].clone()
    })
}

/// A copy of a fixture resource (`subscription`, `invoice`, `charge`, `refund`, `customer`, …).
pub fn fixture(shape: ApiShape, resource: &str) -> Value {
    let value = resources(shape)[resource].clone();
    assert!(value.is_object(), "no {resource} fixture in {:?}", shape);
    value
}

/// Sets a dotted path (`items.data.0.price.lookup_key`), creating objects on the way.
pub fn set(target: &mut Value, path: &str, value: Value) {
    let mut node = target;
    for part in path.split('.') {
        node = match part.parse::<usize>() {
            Ok(index) if node.is_array() => &mut node[index],
            _ => {
                if !node.is_object() {
                    *node = json!({});
                }
                node.as_object_mut()
                    .unwrap()
                    .entry(part)
                    .or_insert(Value::Null)
            }
        };
    }
    *node = value;
}

/// An event envelope around `object`.
pub fn envelope(shape: ApiShape, id: &str, kind: &str, created: i64, object: Value) -> Value {
    json!({
        "id": id,
        "object": "event",
        "api_version": shape.api_version(),
        "created": created,
        "type": kind,
        "livemode": false,
        "pending_webhooks": 1,
        "data": {"object": object, "previous_attributes": {}},
    })
}

/// Stores the event as the webhook ingest does; false when its id was stored already (a redelivery).
pub async fn store(pool: &PgPool, event: &Value) -> bool {
    sqlx::query(
        "INSERT INTO stripe_events (id, type, api_version, livemode, created, object_id, object_type, payload, status)
         VALUES ($1, $2, $3, $4, to_timestamp($5), $6, $7, $8, 'received')
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(event["id"].as_str())
    .bind(event["type"].as_str())
    .bind(event["api_version"].as_str())
    .bind(event["livemode"].as_bool().unwrap_or(false))
    .bind(event["created"].as_i64().map(|t| t as f64))
    .bind(event["data"]["object"]["id"].as_str())
    .bind(event["data"]["object"]["object"].as_str())
    .bind(sqlx::types::Json(event))
    .execute(pool)
    .await
    .expect("store stripe event")
    .rows_affected()
        == 1
}

/// The state of a subscription to build from the fixture.
#[derive(Debug, Clone)]
pub struct SubscriptionState<'a> {
    pub id: &'a str,
    pub customer: &'a str,
    pub status: &'a str,
    pub period: (i64, i64),
    /// `<tier>_<cycle>` lookup keys map to tiers without configuration.
    pub lookup_key: &'a str,
    pub interval: &'a str,
    pub unit_amount: i64,
    pub trial: Option<(i64, i64)>,
    pub cancel_at_period_end: bool,
    pub canceled_at: Option<i64>,
    pub ended_at: Option<i64>,
    /// Stripe's `start_date` (`None`: the fixture's).
    pub start_date: Option<i64>,
}

impl<'a> SubscriptionState<'a> {
    /// A monthly Professional subscription ($20.00 as in the fixture price).
    pub fn new(id: &'a str, customer: &'a str, status: &'a str, period: (i64, i64)) -> Self {
        SubscriptionState {
            id,
            customer,
            status,
            period,
            lookup_key: "professional_monthly",
            interval: "month",
            unit_amount: 2000,
            trial: None,
            cancel_at_period_end: false,
            canceled_at: None,
            ended_at: None,
            start_date: None,
        }
    }
}

/// The fixture subscription turned into `state`, in the shape's layout.
pub fn subscription(shape: ApiShape, state: &SubscriptionState<'_>) -> Value {
    let mut sub = fixture(shape, "subscription");
    set(&mut sub, "id", json!(state.id));
    set(&mut sub, "customer", json!(state.customer));
    set(&mut sub, "status", json!(state.status));
    set(&mut sub, "items.data.0.subscription", json!(state.id));
    set(
        &mut sub,
        "items.data.0.price.lookup_key",
        json!(state.lookup_key),
    );
    set(
        &mut sub,
        "items.data.0.price.recurring.interval",
        json!(state.interval),
    );
    set(
        &mut sub,
        "items.data.0.price.unit_amount",
        json!(state.unit_amount),
    );
    set(
        &mut sub,
        "items.data.0.price.unit_amount_decimal",
        json!(state.unit_amount.to_string()),
    );
    let (start, end) = state.period;
    match shape {
        ApiShape::Basil => {
            set(&mut sub, "items.data.0.current_period_start", json!(start));
            set(&mut sub, "items.data.0.current_period_end", json!(end));
        }
        ApiShape::PreBasil => {
            set(&mut sub, "current_period_start", json!(start));
            set(&mut sub, "current_period_end", json!(end));
        }
    }
    set(&mut sub, "trial_start", json!(state.trial.map(|t| t.0)));
    set(&mut sub, "trial_end", json!(state.trial.map(|t| t.1)));
    set(
        &mut sub,
        "cancel_at_period_end",
        json!(state.cancel_at_period_end),
    );
    set(
        &mut sub,
        "cancel_at",
        json!(state.cancel_at_period_end.then_some(end)),
    );
    set(&mut sub, "canceled_at", json!(state.canceled_at));
    set(&mut sub, "ended_at", json!(state.ended_at));
    if let Some(start) = state.start_date {
        set(&mut sub, "start_date", json!(start));
    }
    sub
}

/// The fixture invoice for `subscription` (in the shape's layout): paid or open with `attempt_count`.
pub fn invoice(
    shape: ApiShape,
    id: &str,
    customer: &str,
    subscription: &str,
    amount: i64,
    paid_at: Option<i64>,
    attempt: i64,
) -> Value {
    let mut invoice = fixture(shape, "invoice");
    set(&mut invoice, "id", json!(id));
    set(&mut invoice, "customer", json!(customer));
    match shape {
        ApiShape::Basil => {
            set(&mut invoice, "subscription", Value::Null);
            set(
                &mut invoice,
                "parent",
                json!({"type": "subscription_details", "quote_details": null,
                "subscription_details": {"metadata": {}, "subscription": subscription}}),
            );
        }
        ApiShape::PreBasil => set(&mut invoice, "subscription", json!(subscription)),
    }
    set(&mut invoice, "lines.data", json!([]));
    set(&mut invoice, "amount_due", json!(amount));
    set(
        &mut invoice,
        "amount_paid",
        json!(if paid_at.is_some() { amount } else { 0 }),
    );
    set(
        &mut invoice,
        "amount_remaining",
        json!(if paid_at.is_some() { 0 } else { amount }),
    );
    set(
        &mut invoice,
        "status",
        json!(if paid_at.is_some() { "paid" } else { "open" }),
    );
    set(&mut invoice, "paid", json!(paid_at.is_some()));
    set(&mut invoice, "status_transitions.paid_at", json!(paid_at));
    set(&mut invoice, "attempt_count", json!(attempt));
    set(
        &mut invoice,
        "hosted_invoice_url",
        json!(format!("https://invoice.stripe.com/i/{id}")),
    );
    set(&mut invoice, "number", json!(format!("MNG-{id}")));
    invoice
}

/// The fixture checkout session completed by `customer` for our `user_id`.
pub fn checkout(shape: ApiShape, customer: &str, user_id: &str, subscription: &str) -> Value {
    let mut session = fixture(shape, "checkout.session");
    set(&mut session, "customer", json!(customer));
    set(&mut session, "client_reference_id", json!(user_id));
    set(&mut session, "mode", json!("subscription"));
    set(&mut session, "status", json!("complete"));
    set(&mut session, "payment_status", json!("paid"));
    set(&mut session, "subscription", json!(subscription));
    session
}

/// The fixture customer with an e-mail and an optional `metadata.user_id`.
pub fn customer(shape: ApiShape, id: &str, email: Option<&str>, user_id: Option<&str>) -> Value {
    let mut customer = fixture(shape, "customer");
    set(&mut customer, "id", json!(id));
    set(&mut customer, "email", json!(email));
    let metadata = user_id
        .map(|u| json!({"user_id": u}))
        .unwrap_or_else(|| json!({}));
    set(&mut customer, "metadata", metadata);
    customer
}

/// The object of `customer.deleted` (basil has a `deleted_customer` fixture; earlier ones send the
/// customer with `deleted: true`).
pub fn deleted_customer(shape: ApiShape, id: &str) -> Value {
    let mut customer = match shape {
        ApiShape::Basil => fixture(shape, "deleted_customer"),
        ApiShape::PreBasil => fixture(shape, "customer"),
    };
    set(&mut customer, "id", json!(id));
    set(&mut customer, "deleted", json!(true));
    customer
}

/// The fixture refund of `charge`.
pub fn refund(shape: ApiShape, id: &str, charge: &str, amount: i64, status: &str) -> Value {
    let mut refund = fixture(shape, "refund");
    set(&mut refund, "id", json!(id));
    set(&mut refund, "charge", json!(charge));
    set(&mut refund, "amount", json!(amount));
    set(&mut refund, "status", json!(status));
    refund
}

/// The fixture charge, refunded (embedding `refunds`), with its customer and (pre-basil) invoice.
pub fn refunded_charge(
    shape: ApiShape,
    id: &str,
    customer: &str,
    invoice: Option<&str>,
    refunds: Vec<Value>,
) -> Value {
    let mut charge = fixture(shape, "charge");
    set(&mut charge, "id", json!(id));
    set(&mut charge, "customer", json!(customer));
    if shape == ApiShape::PreBasil {
        set(&mut charge, "invoice", json!(invoice));
    }
    let refunded: i64 = refunds.iter().filter_map(|r| r["amount"].as_i64()).sum();
    set(&mut charge, "amount", json!(2000));
    set(&mut charge, "amount_captured", json!(2000));
    set(&mut charge, "amount_refunded", json!(refunded));
    set(&mut charge, "refunded", json!(refunded >= 2000));
    set(&mut charge, "refunds.data", json!(refunds));
    charge
}
