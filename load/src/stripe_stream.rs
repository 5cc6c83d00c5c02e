//! The Stripe webhook stream: for one user after another, the sequence Stripe sends over a subscription's
//! life (customer created, subscription created, invoice paid, renewal, a failed payment, cancellation),
//! each event signed with the platform's webhook secret as Stripe signs it (`t=…,v1=…`).

use std::sync::Mutex;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::platform::Population;

/// One step of a subscription's life.
const LIFE: [&str; 7] = [
    "customer.created",
    "customer.subscription.created",
    "invoice.paid",
    "customer.subscription.updated",
    "invoice.paid",
    "invoice.payment_failed",
    "customer.subscription.deleted",
];

pub struct StripeStream {
    secret: String,
    users: Vec<(Uuid, &'static str)>,
    /// (user index, step) of the next event.
    cursor: Mutex<(usize, usize)>,
}

impl StripeStream {
    /// Professional and Executive users (those that change plans through Stripe), interleaved.
    pub fn new(population: &Population, secret: &str) -> Self {
        let users = population
            .professional
            .iter()
            .map(|u| (*u, "professional"))
            .chain(population.executive.iter().map(|u| (*u, "executive")))
            .collect();
        Self {
            secret: secret.to_owned(),
            users,
            cursor: Mutex::new((0, 0)),
        }
    }

    /// The next event's body and its `Stripe-Signature` header.
    pub fn next_event(&self) -> (String, String) {
        let (user, step) = {
            let mut cursor = self.cursor.lock().expect("not poisoned");
            let now = *cursor;
            *cursor = if now.1 + 1 == LIFE.len() {
                ((now.0 + 1) % self.users.len().max(1), 0)
            } else {
                (now.0, now.1 + 1)
            };
            now
        };
        let (user_id, tier) = self
            .users
            .get(user)
            .copied()
            .unwrap_or((Uuid::nil(), "professional"));
        let body = event(user_id, tier, LIFE[step], step).to_string();
        let timestamp = chrono::Utc::now().timestamp();
        let mac = mingus_api::webhooks::signature::sign(&self.secret, timestamp, body.as_bytes());
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        (body, format!("t={timestamp},v1={hex}"))
    }
}

fn event(user: Uuid, tier: &str, kind: &str, step: usize) -> Value {
    let short = &user.simple().to_string()[..14];
    let customer = format!("cus_load{short}");
    let subscription = format!("sub_load{short}");
    let now = chrono::Utc::now().timestamp();
    let period_end = now + 30 * 86_400;
    let status = match kind {
        "customer.subscription.deleted" => "canceled",
        _ if step >= 5 => "past_due",
        _ => "active",
    };
    let object = match kind {
        "customer.created" => {
            json!({"id": customer, "object": "customer", "email": format!("{user}@load.mingus.local"),
                                     "metadata": {"user_id": user.to_string()}, "created": now})
        }
        kind if kind.starts_with("customer.subscription") => json!({
            "id": subscription, "object": "subscription", "customer": customer, "status": status,
            "created": now - 86_400, "start_date": now - 86_400, "cancel_at_period_end": false,
            "canceled_at": if status == "canceled" { json!(now) } else { Value::Null },
            "metadata": {"user_id": user.to_string()},
            "items": {"object": "list", "data": [{"id": format!("si_load{short}"), "object": "subscription_item",
                "current_period_start": now, "current_period_end": period_end, "quantity": 1,
                "price": {"id": format!("price_{tier}_monthly"), "object": "price", "lookup_key": format!("{tier}_monthly"),
                          "unit_amount": if tier == "executive" { 9900 } else { 2900 }, "currency": "usd",
                          "recurring": {"interval": "month", "interval_count": 1}, "metadata": {"tier": tier}}}]}
        }),
        _ => json!({
            "id": format!("in_load{short}{step}"), "object": "invoice", "customer": customer,
            "status": if kind == "invoice.paid" { "paid" } else { "open" },
            "amount_paid": if kind == "invoice.paid" { 2900 } else { 0 }, "amount_due": 2900, "currency": "usd",
            "created": now, "period_start": now, "period_end": period_end,
            "parent": {"type": "subscription_details", "subscription_details": {"subscription": subscription}},
            "status_transitions": {"paid_at": if kind == "invoice.paid" { json!(now) } else { Value::Null }}
        }),
    };
    json!({
        "id": format!("evt_load{}", Uuid::new_v4().simple()),
        "object": "event", "type": kind, "api_version": "2025-03-31.basil", "created": now, "livemode": false,
        "pending_webhooks": 1, "data": {"object": object}
    })
}
