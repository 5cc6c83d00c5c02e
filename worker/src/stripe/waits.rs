//! Dependency-driven re-drive. Stripe sends events out of order: an invoice before its subscription, a
//! subscription before the checkout that links its customer to a user. Such an event fails retryably
//! and, until now, waited for its exponential backoff even when its dependency arrived a second later:
//! a stream delivered in reverse took minutes to converge.
//!
//! Now the failure names what the event waits for (a key: `customer:cus_…`, `subscription:sub_…`,
//! `invoice:in_…`, `charge:ch_…`), stored in `stripe_events.waits_for`. Every applied event names the keys it may have
//! satisfied; the worker then claims the events parked on them (clearing the mark) and applies them at
//! once, oldest `created` first, and so on for what those satisfy in turn. An event re-driven too early
//! fails again and parks under its new key. Park and claim take the key's lock, and the park checks
//! the dependency again under it: a dependency applied between an attempt's read and its park is seen
//! there, and the event is tried again at once (no lost wake-up waiting for the backoff). The backoff retry stays as the fallback (a key never
//! satisfied, a worker that stops mid-way): it finds the event final and does nothing.

use mingus_common::billing::Event;
use serde_json::Value;
use sqlx::PgPool;

use crate::context::JobError;

/// At most this many parked events are re-driven after one applied event (chains included).
pub const MAX_REDRIVE: usize = 1_000;

/// A dependency that has not been applied yet; the key says which.
#[derive(Debug)]
pub struct Waiting {
    pub key: Option<String>,
    message: String,
}

impl std::fmt::Display for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Waiting {}

/// The retryable error of an event waiting for `key` (none: nothing to park on, backoff only).
pub(crate) fn not_yet(key: Option<String>, message: String) -> JobError {
    JobError::Retryable(anyhow::Error::new(Waiting { key, message }))
}

pub(crate) fn customer(id: &str) -> Option<String> {
    Some(format!("customer:{id}"))
}

pub(crate) fn subscription(id: &str) -> Option<String> {
    Some(format!("subscription:{id}"))
}

pub(crate) fn invoice(id: &str) -> Option<String> {
    Some(format!("invoice:{id}"))
}

pub(crate) fn charge(id: &str) -> Option<String> {
    Some(format!("charge:{id}"))
}

/// What `err` says the event waits for.
pub(crate) fn waits_for(err: &JobError) -> Option<&str> {
    match err {
        JobError::Retryable(err) => err.downcast_ref::<Waiting>()?.key.as_deref(),
        JobError::Permanent(_) => None,
    }
}

/// The keys an applied event may have satisfied: its object's own id by type, and the customer it
/// names. Broad on purpose: a key nobody waits for costs one index probe that finds nothing.
pub fn satisfied_by(event: &Event) -> Vec<String> {
    let object = &event.object;
    let text = |value: &Value| value.as_str().map(str::to_owned);
    let id = text(&object["id"]);
    let mut keys = Vec::new();
    match object["object"].as_str() {
        Some("customer") => keys.extend(id.as_deref().and_then(customer)),
        Some("subscription") => keys.extend(id.as_deref().and_then(subscription)),
        Some("invoice") => keys.extend(id.as_deref().and_then(invoice)),
        Some("charge") => keys.extend(id.as_deref().and_then(charge)),
        _ => {}
    }
    // A customer named by id or as an expanded object (checkout sessions, subscriptions, invoices).
    let named = text(&object["customer"]).or_else(|| text(&object["customer"]["id"]));
    keys.extend(named.as_deref().and_then(customer));
    keys.sort();
    keys.dedup();
    keys
}

/// Claims the events parked on `keys` that still need applying, oldest first, and clears their mark
/// (one that fails again parks anew). Under the keys' locks, so a park in progress is seen
/// (`mingus_claim_parked_stripe_events`, migration `…21`).
pub async fn claim(db: &PgPool, keys: &[String], limit: usize) -> Result<Vec<String>, sqlx::Error> {
    if keys.is_empty() || limit == 0 {
        return Ok(Vec::new());
    }
    sqlx::query_scalar("SELECT mingus_claim_parked_stripe_events($1, $2)")
        .bind(keys)
        .bind(i32::try_from(limit).unwrap_or(i32::MAX))
        .fetch_all(db)
        .await
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use serde_json::json;

    use super::*;

    fn event(object: Value) -> Event {
        Event {
            id: "evt_1".into(),
            kind: "x".into(),
            api_version: None,
            created: Utc::now(),
            livemode: false,
            object,
        }
    }

    #[test]
    fn an_applied_object_satisfies_its_own_key_and_its_customers() {
        let sub = event(json!({"object": "subscription", "id": "sub_1", "customer": "cus_1"}));
        assert_eq!(satisfied_by(&sub), ["customer:cus_1", "subscription:sub_1"]);
        let checkout =
            event(json!({"object": "checkout.session", "id": "cs_1", "customer": {"id": "cus_2"}}));
        assert_eq!(satisfied_by(&checkout), ["customer:cus_2"]);
        let customer = event(json!({"object": "customer", "id": "cus_3"}));
        assert_eq!(satisfied_by(&customer), ["customer:cus_3"]);
        let invoice = event(json!({"object": "invoice", "id": "in_1", "customer": "cus_1"}));
        assert_eq!(satisfied_by(&invoice), ["customer:cus_1", "invoice:in_1"]);
        let charge = event(json!({"object": "charge", "id": "ch_1", "customer": "cus_1"}));
        assert_eq!(satisfied_by(&charge), ["charge:ch_1", "customer:cus_1"]);
    }

    #[test]
    fn only_a_waiting_error_names_a_key() {
        let waiting = not_yet(customer("cus_1"), "not linked".into());
        assert_eq!(waits_for(&waiting), Some("customer:cus_1"));
        assert_eq!(waiting.to_string(), "not linked");
        let other = JobError::Retryable(anyhow::anyhow!("timeout"));
        assert_eq!(waits_for(&other), None);
    }
}
