//! The Stripe calls behind `POST /v1/billing/checkout` and `POST /v1/billing/change` (issue 21, part C),
//! over [`BillingApi`]'s transport (timeout, keyed retries only where Stripe says it is safe).
//!
//! - **Checkout**: a customer created once per user (`POST /v1/customers`, `metadata[user_id]` so the
//!   `customer.*` webhooks link it too), then a Checkout Session in `subscription` mode.
//! - **Upgrade now**: the subscription item's price replaced with `proration_behavior=always_invoice`
//!   (the difference is invoiced and charged at once) and `payment_behavior=error_if_incomplete` (a
//!   declined card fails the call with Stripe's 402 and changes nothing, instead of leaving the
//!   subscription `past_due` on the new price).
//! - **Downgrade at period end**: a subscription schedule (created from the subscription, or the one it
//!   already has) with two phases — the current price until the period ends, then the new price —
//!   released afterwards so the subscription goes on by itself. Nothing is prorated: the user keeps what
//!   they paid for until the renewal.

use serde_json::Value;

use super::billing::{BillingApi, CallError};

/// A Checkout Session for a new subscription.
#[derive(Debug, Clone)]
pub struct NewCheckout<'a> {
    pub customer: &'a str,
    /// Our user id: Stripe hands it back in `checkout.session.completed`.
    pub user_id: &'a str,
    pub price: &'a str,
    /// `None`: no trial (not configured for the tier, or the user had a subscription before).
    pub trial_days: Option<u32>,
    pub success_url: &'a str,
    pub cancel_url: &'a str,
}

/// A downgrade at the end of the current period.
#[derive(Debug, Clone)]
pub struct Downgrade<'a> {
    pub current_price: &'a str,
    pub new_price: &'a str,
    /// The current period (Unix seconds): the first phase, kept as it is.
    pub period_start: i64,
    pub period_end: i64,
    /// A trial still running: kept on the first phase (a phase without it would end the trial now).
    pub trial_end: Option<i64>,
}

/// What a plan change needs to know of Stripe's current subscription (either API shape).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSubscription {
    pub item: String,
    pub price: String,
    pub period_start: i64,
    pub period_end: i64,
    /// The schedule that manages it, if any (e.g. a downgrade asked before).
    pub schedule: Option<String>,
    /// The end of its trial, while trialing.
    pub trial_end: Option<i64>,
}

impl LiveSubscription {
    pub fn of(sub: &Value) -> Option<Self> {
        let item = &sub["items"]["data"][0];
        // Since the basil API version the period lives on the item.
        let period = |field: &str| item[field].as_i64().or_else(|| sub[field].as_i64());
        Some(LiveSubscription {
            item: item["id"].as_str()?.to_owned(),
            price: item["price"]["id"].as_str()?.to_owned(),
            period_start: period("current_period_start")?,
            period_end: period("current_period_end")?,
            schedule: match &sub["schedule"] {
                Value::String(id) => Some(id.clone()),
                Value::Object(schedule) => schedule["id"].as_str().map(str::to_owned),
                _ => None,
            },
            trial_end: (sub["status"] == "trialing")
                .then(|| sub["trial_end"].as_i64())
                .flatten(),
        })
    }
}

impl BillingApi {
    /// `POST /v1/customers` for our user. The caller's key is derived from the user id alone, so two
    /// concurrent first checkouts create one customer.
    pub async fn create_customer(
        &self,
        user_id: &str,
        email: Option<&str>,
        idempotency_key: &str,
    ) -> Result<Value, CallError> {
        let mut form = vec![("metadata[user_id]", user_id)];
        if let Some(email) = email {
            form.push(("email", email));
        }
        self.post("/v1/customers", &form, idempotency_key).await
    }

    /// `POST /v1/checkout/sessions` in `subscription` mode.
    pub async fn checkout_session(
        &self,
        checkout: &NewCheckout<'_>,
        idempotency_key: &str,
    ) -> Result<Value, CallError> {
        let trial = checkout.trial_days.map(|days| days.to_string());
        let mut form = vec![
            ("mode", "subscription"),
            ("customer", checkout.customer),
            ("client_reference_id", checkout.user_id),
            ("line_items[0][price]", checkout.price),
            ("line_items[0][quantity]", "1"),
            ("success_url", checkout.success_url),
            ("cancel_url", checkout.cancel_url),
            ("metadata[user_id]", checkout.user_id),
            ("subscription_data[metadata][user_id]", checkout.user_id),
        ];
        if let Some(days) = trial.as_deref() {
            form.push(("subscription_data[trial_period_days]", days));
        }
        self.post("/v1/checkout/sessions", &form, idempotency_key)
            .await
    }

    /// `GET /v1/subscriptions/{id}`: Stripe's current item, price, period and schedule.
    pub async fn subscription(&self, subscription: &str) -> Result<Value, CallError> {
        self.get(&format!("/v1/subscriptions/{subscription}")).await
    }

    /// `POST /v1/subscriptions/{id}`: the item's price replaced now, the difference invoiced and paid
    /// at once (see the module documentation).
    pub async fn upgrade(
        &self,
        subscription: &str,
        item: &str,
        price: &str,
        idempotency_key: &str,
    ) -> Result<Value, CallError> {
        let form = [
            ("items[0][id]", item),
            ("items[0][price]", price),
            ("proration_behavior", "always_invoice"),
            ("payment_behavior", "error_if_incomplete"),
        ];
        let path = format!("/v1/subscriptions/{subscription}");
        self.post(&path, &form, idempotency_key).await
    }

    /// `POST /v1/subscription_schedules` with `from_subscription`: a schedule whose one phase is the
    /// subscription as it is.
    pub async fn schedule_from(
        &self,
        subscription: &str,
        idempotency_key: &str,
    ) -> Result<Value, CallError> {
        let form = [("from_subscription", subscription)];
        self.post("/v1/subscription_schedules", &form, idempotency_key)
            .await
    }

    /// `POST /v1/subscription_schedules/{id}`: the current phase until the period ends, then one
    /// period of the new price, then released (the subscription continues on the new price).
    pub async fn schedule_downgrade(
        &self,
        schedule: &str,
        downgrade: &Downgrade<'_>,
        idempotency_key: &str,
    ) -> Result<Value, CallError> {
        let (start, end) = (
            downgrade.period_start.to_string(),
            downgrade.period_end.to_string(),
        );
        let trial_end = downgrade.trial_end.map(|t| t.to_string());
        let mut form = vec![
            ("end_behavior", "release"),
            ("proration_behavior", "none"),
            ("phases[0][items][0][price]", downgrade.current_price),
            ("phases[0][items][0][quantity]", "1"),
            ("phases[0][start_date]", start.as_str()),
            ("phases[0][end_date]", end.as_str()),
            ("phases[1][items][0][price]", downgrade.new_price),
            ("phases[1][items][0][quantity]", "1"),
            ("phases[1][iterations]", "1"),
        ];
        if let Some(trial_end) = trial_end.as_deref() {
            form.push(("phases[0][trial_end]", trial_end));
        }
        let path = format!("/v1/subscription_schedules/{schedule}");
        self.post(&path, &form, idempotency_key).await
    }

    /// `POST /v1/subscription_schedules/{id}/release`: the subscription leaves its schedule (before an
    /// upgrade, so a scheduled downgrade does not undo it at the renewal).
    pub async fn release_schedule(
        &self,
        schedule: &str,
        idempotency_key: &str,
    ) -> Result<Value, CallError> {
        let path = format!("/v1/subscription_schedules/{schedule}/release");
        self.post(&path, &[], idempotency_key).await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_live_subscription_is_read_in_both_shapes() {
        let basil = json!({"schedule": null, "items": {"data": [{"id": "si_1", "price": {"id": "price_a"},
                            "current_period_start": 10, "current_period_end": 20}]}});
        let live = LiveSubscription::of(&basil).unwrap();
        assert_eq!((live.period_start, live.period_end), (10, 20));
        assert_eq!((live.schedule, live.trial_end), (None, None));
        let mut trialing = basil.clone();
        trialing["status"] = json!("trialing");
        trialing["trial_end"] = json!(20);
        assert_eq!(LiveSubscription::of(&trialing).unwrap().trial_end, Some(20));
        let pre_basil = json!({"schedule": "sub_sched_1", "current_period_start": 1,
                               "current_period_end": 2,
                               "items": {"data": [{"id": "si_1", "price": {"id": "price_a"}}]}});
        let live = LiveSubscription::of(&pre_basil).unwrap();
        assert_eq!(
            (live.item.as_str(), live.price.as_str()),
            ("si_1", "price_a")
        );
        assert_eq!(live.schedule.as_deref(), Some("sub_sched_1"));
        assert_eq!(LiveSubscription::of(&json!({})), None);
    }
}
