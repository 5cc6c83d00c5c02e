//! Refunds: `charge.refunded` (the refunds embedded in the charge) and `refund.created`,
//! `refund.updated`, `charge.refund.updated` (one refund each). Only `succeeded` refunds moved money:
//! one `refunded` row per refund id, whichever of these events carries it first.
//!
//! A refund names its charge, not our subscription. The subscription is found through the charge's
//! invoice (pre-basil charges carry `invoice`) — its `billing_history` row or its stored invoice event —
//! else through the customer (the refund's, or the charge's) → that customer's latest subscription. The
//! charge is the event's own object, the refund's expanded `charge`, or the latest stored event about
//! that charge. Nothing found yet → retryable.

use mingus_common::billing::money;
use mingus_common::billing::objects::{ChargeView, InvoiceView, RefundView};
use serde_json::Value;
use uuid::Uuid;

use super::history::{self, Owner};
use super::{Apply, not_yet};
use crate::context::JobError;

pub(super) async fn charge_refunded(a: &mut Apply<'_>) -> Result<(), JobError> {
    let event = a.event;
    let charge = ChargeView(&event.object);
    let refunds = charge.refunds();
    if refunds.is_empty() {
        tracing::debug!(charge = ?charge.id().ok(), "no embedded refunds; the refund.* events carry them");
    }
    for refund in refunds.into_iter().filter(|r| r.succeeded()) {
        record(a, refund, Some(charge)).await?;
    }
    Ok(())
}

pub(super) async fn refund_changed(a: &mut Apply<'_>) -> Result<(), JobError> {
    let event = a.event;
    let refund = RefundView(&event.object);
    if !refund.succeeded() {
        return Ok(());
    }
    if let Some(charge) = refund.expanded_charge() {
        return record(a, refund, Some(charge)).await;
    }
    let stored = match refund.charge() {
        Some(charge_id) => stored_object(a, charge_id, "charge").await?,
        None => None,
    };
    record(a, refund, stored.as_ref().map(ChargeView)).await
}

/// `data.object` of the latest stored event about a Stripe object.
async fn stored_object(
    a: &mut Apply<'_>,
    object_id: &str,
    object_type: &str,
) -> Result<Option<Value>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT payload -> 'data' -> 'object' FROM stripe_events
         WHERE object_id = $1 AND object_type = $2 AND payload IS NOT NULL
         ORDER BY created DESC NULLS LAST LIMIT 1",
    )
    .bind(object_id)
    .bind(object_type)
    .fetch_optional(&mut *a.conn)
    .await
}

async fn owner_by_invoice(
    a: &mut Apply<'_>,
    invoice_id: &str,
) -> Result<Option<Owner>, sqlx::Error> {
    let recorded: Option<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT subscription_id, user_id FROM billing_history WHERE stripe_invoice_id = $1 LIMIT 1",
    )
    .bind(invoice_id)
    .fetch_optional(&mut *a.conn)
    .await?;
    if let Some((subscription_id, user_id)) = recorded {
        return Ok(Some(Owner {
            subscription_id,
            user_id,
        }));
    }
    let Some(invoice) = stored_object(a, invoice_id, "invoice").await? else {
        return Ok(None);
    };
    let Some(sub_id) = InvoiceView(&invoice).subscription() else {
        return Ok(None);
    };
    owner_by_subscription(a, sub_id).await
}

async fn owner_by_subscription(
    a: &mut Apply<'_>,
    sub_id: &str,
) -> Result<Option<Owner>, sqlx::Error> {
    let row: Option<(Uuid, Uuid)> =
        sqlx::query_as("SELECT id, user_id FROM subscriptions WHERE stripe_subscription_id = $1")
            .bind(sub_id)
            .fetch_optional(&mut *a.conn)
            .await?;
    Ok(row.map(|(subscription_id, user_id)| Owner {
        subscription_id,
        user_id,
    }))
}

/// The customer's latest subscription (by the subscription's customer, or the customer's user).
async fn owner_by_customer(
    a: &mut Apply<'_>,
    customer: &str,
) -> Result<Option<Owner>, sqlx::Error> {
    let row: Option<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT id, user_id FROM subscriptions
         WHERE stripe_customer_id = $1 OR user_id = (SELECT id FROM users WHERE stripe_customer_id = $1)
         ORDER BY current_period_end DESC, created_at DESC LIMIT 1",
    )
    .bind(customer)
    .fetch_optional(&mut *a.conn)
    .await?;
    Ok(row.map(|(subscription_id, user_id)| Owner {
        subscription_id,
        user_id,
    }))
}

async fn record(
    a: &mut Apply<'_>,
    refund: RefundView<'_>,
    charge: Option<ChargeView<'_>>,
) -> Result<(), JobError> {
    let refund_id = refund.id()?;
    let invoice_id = charge.and_then(|c| c.invoice());
    let mut owner = None;
    if let Some(invoice_id) = invoice_id {
        owner = owner_by_invoice(a, invoice_id).await?;
    }
    if owner.is_none()
        && let Some(customer) = refund
            .customer()
            .or_else(|| charge.and_then(|c| c.customer()))
    {
        owner = owner_by_customer(a, customer).await?;
    }
    let owner = owner.ok_or_else(|| {
        // Its invoice's payment names the owner; without an invoice, its customer's subscription.
        let customer = refund
            .customer()
            .or_else(|| charge.and_then(|c| c.customer()));
        let key = match (invoice_id, customer) {
            (Some(invoice), _) => super::waits::invoice(invoice),
            (None, Some(customer)) => super::waits::customer(customer),
            (None, None) => None,
        };
        not_yet(
            key,
            format!("the subscription refund {refund_id} belongs to is not known yet"),
        )
    })?;
    let currency = refund.currency()?;
    history::record(
        a.conn,
        history::Outcome {
            owner,
            status: "refunded",
            amount: money::from_minor(refund.amount(), &currency),
            currency,
            transaction_id: refund_id.to_owned(),
            invoice_id,
            invoice_url: None,
            description: charge
                .and_then(|c| c.id().ok())
                .map(|c| format!("Refund of {c}")),
            at: refund.created().unwrap_or(a.event.created),
        },
    )
    .await?;
    Ok(())
}
