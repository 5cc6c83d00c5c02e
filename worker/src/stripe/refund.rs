//! Refunds, for every API version Stripe may deliver:
//! - `refund.created`, `refund.updated`, `charge.refund.updated` carry one refund each;
//! - `charge.refunded` embeds the charge's refunds before API version 2022-11-15, and from then on only
//!   `amount_refunded` (and before 2024-10-28 no `refund.*` event follows a charge's refund), so an
//!   endpoint pinned to 2022-11-15 … 2024-10-27 learns of a refund from that amount alone.
//!
//! Only `succeeded` refunds moved money: one `refunded` row per refund id (`transaction_id`), whichever
//! event carries it first. What `amount_refunded` says beyond the refunds itemised so far is one more row
//! per charge, `<charge>:unitemised`, kept at `max(amount_refunded seen) − itemised refunds` (deleted at
//! zero): a refund object arriving later takes its amount out of that row instead of counting twice, so
//! the charge's refunded total is the same whatever order the events come in. Every refund row names its
//! charge (`stripe_charge_id`), and a charge's events serialise on a lock of the charge id.
//!
//! A refund names its charge, not our subscription. A charge that names its invoice (pre-basil) is filed
//! under that invoice's subscription and waits for the invoice (its `billing_history` row or stored
//! event) if it has not arrived: a fallback through the customer would pick the wrong subscription when
//! the customer has re-subscribed since. A charge of a one-off invoice is not ours to record (as its
//! payment is not). Without an invoice (basil), the refund goes to the customer's subscription that was
//! live when the charge was made: the latest one started (Stripe's `start_date`) at or before the charge;
//! none yet → it waits for the customer's subscriptions. When neither the charge nor its invoice is
//! known, a refund event waits for the charge's `charge.refunded`, which every API version sends.

use chrono::{DateTime, Utc};
use mingus_common::billing::objects::{ChargeView, InvoiceView, RefundView};
use mingus_common::billing::{Decimal, money};
use serde_json::Value;
use uuid::Uuid;

use super::history::{self, Owner};
use super::{Apply, not_yet, waits};
use crate::context::JobError;

pub(super) async fn charge_refunded(a: &mut Apply<'_>) -> Result<(), JobError> {
    let event = a.event;
    let charge = ChargeView(&event.object);
    let charge_id = charge.id()?;
    a.lock(charge_id).await?;
    for refund in charge.refunds().into_iter().filter(|r| r.succeeded()) {
        record(a, refund, Some(charge)).await?;
    }
    unitemised(a, charge).await
}

pub(super) async fn refund_changed(a: &mut Apply<'_>) -> Result<(), JobError> {
    let event = a.event;
    let refund = RefundView(&event.object);
    if !refund.succeeded() {
        return Ok(());
    }
    if let Some(charge_id) = refund.charge() {
        a.lock(charge_id).await?;
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

/// `transaction_id` of the row holding what a charge's `amount_refunded` says beyond its itemised refunds.
fn unitemised_id(charge_id: &str) -> String {
    format!("{charge_id}:unitemised")
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

/// Whom a charge's invoice was paid by.
enum ByInvoice {
    Owner(Owner),
    /// A one-off invoice: not a subscription payment.
    NotOurs,
    /// Neither its payment nor the invoice has arrived yet.
    Unknown,
}

async fn owner_by_invoice(a: &mut Apply<'_>, invoice_id: &str) -> Result<ByInvoice, sqlx::Error> {
    let recorded: Option<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT subscription_id, user_id FROM billing_history WHERE stripe_invoice_id = $1 LIMIT 1",
    )
    .bind(invoice_id)
    .fetch_optional(&mut *a.conn)
    .await?;
    if let Some((subscription_id, user_id)) = recorded {
        return Ok(ByInvoice::Owner(Owner {
            subscription_id,
            user_id,
        }));
    }
    let Some(invoice) = stored_object(a, invoice_id, "invoice").await? else {
        return Ok(ByInvoice::Unknown);
    };
    let Some(sub_id) = InvoiceView(&invoice).subscription() else {
        return Ok(ByInvoice::NotOurs);
    };
    Ok(match owner_by_subscription(a, sub_id).await? {
        Some(owner) => ByInvoice::Owner(owner),
        None => ByInvoice::Unknown,
    })
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

/// The customer's subscription live when the charge was made: the latest started at or before `at`
/// (by the subscription's customer, or the customer's user as of then). A subscription of the customer
/// that is not known yet takes the refund over when it arrives (`mingus_upsert_subscription_state`),
/// under the customer's lock taken here.
async fn owner_at_charge_time(
    a: &mut Apply<'_>,
    customer: &str,
    at: DateTime<Utc>,
) -> Result<Option<Owner>, sqlx::Error> {
    a.lock(customer).await?;
    let row: Option<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT id, user_id FROM subscriptions
         WHERE (stripe_customer_id = $1 OR user_id = mingus_customer_user($1, $2))
           AND coalesce(stripe_started_at, trial_start, current_period_start) <= $2
         ORDER BY coalesce(stripe_started_at, trial_start, current_period_start) DESC, id LIMIT 1",
    )
    .bind(customer)
    .bind(at)
    .fetch_optional(&mut *a.conn)
    .await?;
    Ok(row.map(|(subscription_id, user_id)| Owner {
        subscription_id,
        user_id,
    }))
}

/// The subscription a refund of `charge` belongs to (see the module comment); `Ok(None)`: not ours.
async fn owner_of(
    a: &mut Apply<'_>,
    refund_id: &str,
    charge_id: Option<&str>,
    charge: Option<ChargeView<'_>>,
    customer: Option<&str>,
) -> Result<Option<Owner>, JobError> {
    let waiting = |key: Option<String>| {
        not_yet(
            key,
            format!("the subscription refund {refund_id} belongs to is not known yet"),
        )
    };
    let Some(charge) = charge else {
        // Neither the charge nor its invoice is known: its charge.refunded brings both.
        return Err(waiting(charge_id.and_then(waits::charge)));
    };
    if let Some(invoice_id) = charge.invoice() {
        return match owner_by_invoice(a, invoice_id).await? {
            ByInvoice::Owner(owner) => Ok(Some(owner)),
            ByInvoice::NotOurs => Ok(None),
            ByInvoice::Unknown => Err(waiting(waits::invoice(invoice_id))),
        };
    }
    let Some(customer) = customer.or_else(|| charge.customer()) else {
        return Ok(None);
    };
    let at = charge.created().unwrap_or(a.event.created);
    match owner_at_charge_time(a, customer, at).await? {
        Some(owner) => Ok(Some(owner)),
        None => Err(waiting(waits::customer(customer))),
    }
}

/// Records one succeeded refund; what it itemises leaves its charge's unitemised row.
async fn record(
    a: &mut Apply<'_>,
    refund: RefundView<'_>,
    charge: Option<ChargeView<'_>>,
) -> Result<(), JobError> {
    let refund_id = refund.id()?;
    let charge_id = refund.charge().or_else(|| charge.and_then(|c| c.id().ok()));
    let Some(owner) = owner_of(a, refund_id, charge_id, charge, refund.customer()).await? else {
        tracing::debug!(
            refund = refund_id,
            "refund of a one-off payment: not recorded"
        );
        return Ok(());
    };
    let currency = refund.currency()?;
    let amount = money::from_minor(refund.amount(), &currency);
    let inserted = history::record(
        a.conn,
        history::Outcome {
            owner,
            status: "refunded",
            amount,
            currency,
            transaction_id: refund_id.to_owned(),
            invoice_id: charge.and_then(|c| c.invoice()),
            charge_id,
            charge_at: charge.and_then(|c| c.created()),
            invoice_url: None,
            description: charge_id.map(|c| format!("Refund of {c}")),
            at: refund.created().unwrap_or(a.event.created),
        },
    )
    .await?;
    if let (true, Some(charge_id)) = (inserted, charge_id) {
        // Itemised now: no longer part of the charge's unitemised remainder.
        sqlx::query(
            "UPDATE billing_history SET amount = greatest(amount - $2, 0) WHERE transaction_id = $1",
        )
        .bind(unitemised_id(charge_id))
        .bind(amount)
        .execute(&mut *a.conn)
        .await?;
        sqlx::query("DELETE FROM billing_history WHERE transaction_id = $1 AND amount = 0")
            .bind(unitemised_id(charge_id))
            .execute(&mut *a.conn)
            .await?;
    }
    Ok(())
}

/// Raises the charge's unitemised row to `amount_refunded − itemised refunds` when that is more than it
/// holds (never lowers it: a smaller `amount_refunded` is an older view of the charge).
async fn unitemised(a: &mut Apply<'_>, charge: ChargeView<'_>) -> Result<(), JobError> {
    if charge.amount_refunded() <= 0 {
        return Ok(());
    }
    let charge_id = charge.id()?;
    let currency = charge.currency()?;
    let refunded = money::from_minor(charge.amount_refunded(), &currency);
    let row_id = unitemised_id(charge_id);
    let (itemised, held): (Decimal, Decimal) = sqlx::query_as(
        "SELECT coalesce(sum(amount) FILTER (WHERE transaction_id <> $2), 0),
                coalesce(sum(amount) FILTER (WHERE transaction_id = $2), 0)
         FROM billing_history WHERE stripe_charge_id = $1 AND status = 'refunded'",
    )
    .bind(charge_id)
    .bind(&row_id)
    .fetch_one(&mut *a.conn)
    .await?;
    let wanted = refunded - itemised;
    if wanted <= held {
        return Ok(());
    }
    let Some(owner) = owner_of(a, &row_id, Some(charge_id), Some(charge), None).await? else {
        return Ok(());
    };
    let at = a.event.created;
    sqlx::query(
        "INSERT INTO billing_history (subscription_id, user_id, amount, currency, status, payment_method,
             transaction_id, stripe_invoice_id, description, created_at, stripe_charge_id, stripe_charge_at)
         VALUES ($1, $2, $3, $4, 'refunded', 'stripe', $5, $6, $7, $8, $9, $10)
         ON CONFLICT (transaction_id) WHERE transaction_id IS NOT NULL
         DO UPDATE SET amount = EXCLUDED.amount, created_at = EXCLUDED.created_at",
    )
    .bind(owner.subscription_id)
    .bind(owner.user_id)
    .bind(wanted)
    .bind(&currency)
    .bind(&row_id)
    .bind(charge.invoice())
    .bind(format!("Refund of {charge_id} (not itemised by Stripe)"))
    .bind(at)
    .bind(charge_id)
    .bind(charge.created())
    .execute(&mut *a.conn)
    .await?;
    Ok(())
}
