//! Read-only views of Stripe objects that work with both API shapes (pre-`2025-03-31.basil` and basil
//! on), so the appliers never look at raw JSON paths. Expandable references (`customer`, `charge`,
//! `subscription`, …) are accepted as an id string or as the expanded object.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{BillingError, StripeStatus};

fn time(value: &Value) -> Option<DateTime<Utc>> {
    value.as_i64().and_then(|t| DateTime::from_timestamp(t, 0))
}

/// The id of an expandable reference.
pub fn id_of(value: &Value) -> Option<&str> {
    value
        .as_str()
        .or_else(|| value["id"].as_str())
        .filter(|id| !id.is_empty())
}

fn text(value: &Value) -> Option<&str> {
    value.as_str().filter(|s| !s.is_empty())
}

/// A stored event (`stripe_events.payload`).
#[derive(Debug, Clone)]
pub struct Event {
    pub id: String,
    pub kind: String,
    pub api_version: Option<String>,
    pub created: DateTime<Utc>,
    pub livemode: bool,
    pub object: Value,
}

impl Event {
    pub fn parse(payload: &Value) -> Result<Self, BillingError> {
        let field = |name: &str| {
            payload[name]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| BillingError::Invalid(format!("the event has no {name}")))
        };
        let object = &payload["data"]["object"];
        if !object.is_object() {
            return Err(BillingError::Invalid("the event has no data.object".into()));
        }
        Ok(Event {
            id: field("id")?,
            kind: field("type")?,
            api_version: payload["api_version"].as_str().map(str::to_owned),
            created: time(&payload["created"])
                .ok_or_else(|| BillingError::Invalid("the event has no created time".into()))?,
            livemode: payload["livemode"].as_bool().unwrap_or(false),
            object: object.clone(),
        })
    }
}

/// Metadata key under which our user id travels on Stripe objects.
pub const USER_ID_METADATA: &str = "user_id";

#[derive(Debug, Clone, Copy)]
pub struct SubscriptionView<'a>(pub &'a Value);

impl<'a> SubscriptionView<'a> {
    pub fn id(&self) -> Result<&'a str, BillingError> {
        text(&self.0["id"])
            .ok_or_else(|| BillingError::Invalid("the subscription has no id".into()))
    }

    pub fn customer(&self) -> Result<&'a str, BillingError> {
        id_of(&self.0["customer"])
            .ok_or_else(|| BillingError::Invalid("the subscription has no customer".into()))
    }

    pub fn status(&self) -> Result<StripeStatus, BillingError> {
        self.0["status"].as_str().unwrap_or_default().parse()
    }

    fn first_item(&self) -> &'a Value {
        &self.0["items"]["data"][0]
    }

    /// The price of the first item (basil and pre-basil alike); very old payloads only have `plan`.
    pub fn price(&self) -> Result<&'a Value, BillingError> {
        let item = self.first_item();
        [&item["price"], &item["plan"], &self.0["plan"]]
            .into_iter()
            .find(|p| p.is_object())
            .ok_or_else(|| BillingError::Invalid("the subscription has no item price".into()))
    }

    /// The current period: on the subscription before basil, on `items.data[0]` from basil on.
    pub fn period(&self) -> Result<(DateTime<Utc>, DateTime<Utc>), BillingError> {
        let item = self.first_item();
        let start =
            time(&self.0["current_period_start"]).or_else(|| time(&item["current_period_start"]));
        let end = time(&self.0["current_period_end"]).or_else(|| time(&item["current_period_end"]));
        match (start, end) {
            (Some(start), Some(end)) if end >= start => Ok((start, end)),
            (Some(_), Some(_)) => Err(BillingError::Invalid(
                "the subscription's period ends before it starts".into(),
            )),
            _ => Err(BillingError::Invalid(
                "the subscription has no current period".into(),
            )),
        }
    }

    pub fn trial(&self) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
        (time(&self.0["trial_start"]), time(&self.0["trial_end"]))
    }

    pub fn cancel_at_period_end(&self) -> bool {
        self.0["cancel_at_period_end"].as_bool().unwrap_or(false)
    }

    /// When the customer asked to cancel.
    pub fn canceled_at(&self) -> Option<DateTime<Utc>> {
        time(&self.0["canceled_at"])
    }

    /// When the subscription ended (access ended).
    pub fn ended_at(&self) -> Option<DateTime<Utc>> {
        time(&self.0["ended_at"])
    }

    /// When it started (`start_date`, else its `created`): which subscription a charge was made under.
    pub fn started_at(&self) -> Option<DateTime<Utc>> {
        time(&self.0["start_date"]).or_else(|| time(&self.0["created"]))
    }
}

#[derive(Debug, Clone, Copy)]
pub struct InvoiceView<'a>(pub &'a Value);

impl<'a> InvoiceView<'a> {
    pub fn id(&self) -> Result<&'a str, BillingError> {
        text(&self.0["id"]).ok_or_else(|| BillingError::Invalid("the invoice has no id".into()))
    }

    pub fn customer(&self) -> Option<&'a str> {
        id_of(&self.0["customer"])
    }

    /// `invoice.subscription` before basil, `invoice.parent.subscription_details.subscription` from basil
    /// on, else the first subscription line's subscription. `None` for a one-off invoice.
    pub fn subscription(&self) -> Option<&'a str> {
        id_of(&self.0["subscription"])
            .or_else(|| id_of(&self.0["parent"]["subscription_details"]["subscription"]))
            .or_else(|| {
                self.lines().find_map(|line| {
                    id_of(&line["parent"]["subscription_item_details"]["subscription"])
                        .or_else(|| id_of(&line["subscription"]))
                })
            })
    }

    fn lines(&self) -> impl Iterator<Item = &'a Value> {
        self.0["lines"]["data"]
            .as_array()
            .map(|a| a.iter())
            .into_iter()
            .flatten()
    }

    /// The latest period a subscription line of this invoice pays for.
    pub fn line_period(&self) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        self.lines()
            .filter_map(|line| {
                Some((
                    time(&line["period"]["start"])?,
                    time(&line["period"]["end"])?,
                ))
            })
            .filter(|(start, end)| end > start)
            .max_by_key(|(_, end)| *end)
    }

    pub fn currency(&self) -> Result<String, BillingError> {
        self.0["currency"]
            .as_str()
            .and_then(super::money::currency_code)
            .ok_or_else(|| BillingError::Invalid("the invoice has no valid currency".into()))
    }

    pub fn amount_paid(&self) -> i64 {
        self.0["amount_paid"].as_i64().unwrap_or(0)
    }

    pub fn amount_due(&self) -> i64 {
        self.0["amount_due"].as_i64().unwrap_or(0)
    }

    pub fn attempt_count(&self) -> i64 {
        self.0["attempt_count"].as_i64().unwrap_or(0)
    }

    pub fn next_payment_attempt(&self) -> Option<DateTime<Utc>> {
        time(&self.0["next_payment_attempt"])
    }

    pub fn hosted_invoice_url(&self) -> Option<&'a str> {
        text(&self.0["hosted_invoice_url"])
    }

    pub fn number(&self) -> Option<&'a str> {
        text(&self.0["number"])
    }

    /// When it was paid (`status_transitions.paid_at`).
    pub fn paid_at(&self) -> Option<DateTime<Utc>> {
        time(&self.0["status_transitions"]["paid_at"])
    }

    /// The payment intent and charge of a pre-basil invoice (basil moved them to invoice payments).
    pub fn payment_refs(&self) -> (Option<&'a str>, Option<&'a str>) {
        (id_of(&self.0["payment_intent"]), id_of(&self.0["charge"]))
    }
}

#[derive(Debug, Clone, Copy)]
pub struct RefundView<'a>(pub &'a Value);

impl<'a> RefundView<'a> {
    pub fn id(&self) -> Result<&'a str, BillingError> {
        text(&self.0["id"]).ok_or_else(|| BillingError::Invalid("the refund has no id".into()))
    }

    pub fn amount(&self) -> i64 {
        self.0["amount"].as_i64().unwrap_or(0)
    }

    pub fn currency(&self) -> Result<String, BillingError> {
        self.0["currency"]
            .as_str()
            .and_then(super::money::currency_code)
            .ok_or_else(|| BillingError::Invalid("the refund has no valid currency".into()))
    }

    /// `succeeded` is the only status that moved money back.
    pub fn succeeded(&self) -> bool {
        self.0["status"].as_str() == Some("succeeded")
    }

    pub fn created(&self) -> Option<DateTime<Utc>> {
        time(&self.0["created"])
    }

    pub fn charge(&self) -> Option<&'a str> {
        id_of(&self.0["charge"])
    }

    /// The charge when the event carries it expanded.
    pub fn expanded_charge(&self) -> Option<ChargeView<'a>> {
        self.0["charge"]
            .is_object()
            .then(|| ChargeView(&self.0["charge"]))
    }

    pub fn payment_intent(&self) -> Option<&'a str> {
        id_of(&self.0["payment_intent"])
    }

    pub fn customer(&self) -> Option<&'a str> {
        id_of(&self.0["customer"])
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ChargeView<'a>(pub &'a Value);

impl<'a> ChargeView<'a> {
    pub fn id(&self) -> Result<&'a str, BillingError> {
        text(&self.0["id"]).ok_or_else(|| BillingError::Invalid("the charge has no id".into()))
    }

    pub fn customer(&self) -> Option<&'a str> {
        id_of(&self.0["customer"])
    }

    /// `charge.invoice` (pre-basil only).
    pub fn invoice(&self) -> Option<&'a str> {
        id_of(&self.0["invoice"])
    }

    pub fn payment_intent(&self) -> Option<&'a str> {
        id_of(&self.0["payment_intent"])
    }

    pub fn created(&self) -> Option<DateTime<Utc>> {
        time(&self.0["created"])
    }

    /// What has been refunded of the charge so far, in minor units (every API version carries it).
    pub fn amount_refunded(&self) -> i64 {
        self.0["amount_refunded"].as_i64().unwrap_or(0)
    }

    pub fn currency(&self) -> Result<String, BillingError> {
        self.0["currency"]
            .as_str()
            .and_then(super::money::currency_code)
            .ok_or_else(|| BillingError::Invalid("the charge has no valid currency".into()))
    }

    /// The refunds embedded in the charge (older API versions embed them; newer ones send `refund.*`).
    pub fn refunds(&self) -> Vec<RefundView<'a>> {
        self.0["refunds"]["data"]
            .as_array()
            .map(|refunds| {
                refunds
                    .iter()
                    .filter(|r| r.is_object())
                    .map(RefundView)
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone, Copy)]
pub struct CheckoutView<'a>(pub &'a Value);

impl<'a> CheckoutView<'a> {
    pub fn customer(&self) -> Option<&'a str> {
        id_of(&self.0["customer"])
    }

    /// Our user id: `client_reference_id`, else `metadata.user_id`.
    pub fn user_reference(&self) -> Option<&'a str> {
        text(&self.0["client_reference_id"]).or_else(|| text(&self.0["metadata"][USER_ID_METADATA]))
    }
}

#[derive(Debug, Clone, Copy)]
pub struct CustomerView<'a>(pub &'a Value);

impl<'a> CustomerView<'a> {
    pub fn id(&self) -> Result<&'a str, BillingError> {
        text(&self.0["id"]).ok_or_else(|| BillingError::Invalid("the customer has no id".into()))
    }

    pub fn email(&self) -> Option<&'a str> {
        text(&self.0["email"])
    }

    pub fn user_reference(&self) -> Option<&'a str> {
        text(&self.0["metadata"][USER_ID_METADATA])
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn periods_come_from_the_subscription_or_its_first_item() {
        let pre_basil = json!({"current_period_start": 100, "current_period_end": 200, "items": {"data": [{}]}});
        let basil =
            json!({"items": {"data": [{"current_period_start": 100, "current_period_end": 200}]}});
        for sub in [&pre_basil, &basil] {
            let (start, end) = SubscriptionView(sub).period().unwrap();
            assert_eq!((start.timestamp(), end.timestamp()), (100, 200));
        }
        let backwards =
            json!({"items": {"data": [{"current_period_start": 300, "current_period_end": 200}]}});
        assert!(SubscriptionView(&backwards).period().is_err());
    }

    #[test]
    fn an_invoice_finds_its_subscription_in_both_shapes() {
        let pre_basil = json!({"subscription": "sub_1"});
        let basil = json!({"subscription": null, "parent": {"subscription_details": {"subscription": "sub_1"}}});
        let expanded = json!({"subscription": {"id": "sub_1", "object": "subscription"}});
        let by_line = json!({"lines": {"data": [{"parent": {"subscription_item_details": {"subscription": "sub_1"}}}]}});
        for invoice in [&pre_basil, &basil, &expanded, &by_line] {
            assert_eq!(
                InvoiceView(invoice).subscription(),
                Some("sub_1"),
                "{invoice}"
            );
        }
        assert_eq!(
            InvoiceView(&json!({"subscription": null, "parent": null})).subscription(),
            None
        );
    }

    #[test]
    fn checkout_prefers_the_client_reference() {
        let both = json!({"client_reference_id": "a", "metadata": {"user_id": "b"}});
        assert_eq!(CheckoutView(&both).user_reference(), Some("a"));
        let meta = json!({"client_reference_id": null, "metadata": {"user_id": "b"}});
        assert_eq!(CheckoutView(&meta).user_reference(), Some("b"));
    }
}
