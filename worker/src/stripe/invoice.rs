//! `invoice.paid` / `invoice.payment_succeeded`, `invoice.payment_failed`,
//! `invoice.payment_action_required`.

use chrono::{DateTime, Utc};
use mingus_common::billing::email::{BillingEmail, keys, templates};
use mingus_common::billing::money;
use mingus_common::billing::objects::InvoiceView;
use serde_json::json;
use uuid::Uuid;

use super::history::{self, Owner};
use super::{Apply, not_yet};
use crate::context::JobError;

#[derive(sqlx::FromRow)]
struct Subscription {
    id: Uuid,
    user_id: Uuid,
    status: String,
    stripe_status: Option<String>,
    current_period_end: DateTime<Utc>,
}

impl Subscription {
    fn owner(&self) -> Owner {
        Owner {
            subscription_id: self.id,
            user_id: self.user_id,
        }
    }
}

/// The invoice's subscription; `None` for a one-off invoice (not ours to record). A subscription we do
/// not know yet (the invoice arrived first) is retryable.
async fn subscription_of(
    a: &mut Apply<'_>,
    invoice: InvoiceView<'_>,
) -> Result<Option<Subscription>, JobError> {
    let Some(sub_id) = invoice.subscription() else {
        tracing::debug!(invoice = ?invoice.id().ok(), "not a subscription invoice");
        return Ok(None);
    };
    a.lock(sub_id).await?;
    let row: Option<Subscription> = sqlx::query_as(
        "SELECT id, user_id, status, stripe_status, current_period_end FROM subscriptions
         WHERE stripe_subscription_id = $1 FOR UPDATE",
    )
    .bind(sub_id)
    .fetch_optional(&mut *a.conn)
    .await?;
    let row = row.ok_or_else(|| {
        not_yet(
            super::waits::subscription(sub_id),
            format!(
                "subscription {sub_id} of invoice {} is not known yet",
                invoice.id().unwrap_or("?")
            ),
        )
    })?;
    Ok(Some(row))
}

async fn is_paid(a: &mut Apply<'_>, invoice_id: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM billing_history WHERE transaction_id = $1 AND status = 'paid')")
        .bind(invoice_id)
        .fetch_one(&mut *a.conn)
        .await
}

/// A paid invoice: a `paid` row (zero-amount invoices, e.g. a trial's first one, move no money and add
/// none). A payment for a newer period than a subscription the renewal sweep made `past_due` (while
/// Stripe still says `active`) restores it: `active`, the paid period, no grace.
pub(super) async fn paid(a: &mut Apply<'_>) -> Result<(), JobError> {
    let event = a.event;
    let invoice = InvoiceView(&event.object);
    let invoice_id = invoice.id()?;
    let Some(sub) = subscription_of(a, invoice).await? else {
        return Ok(());
    };
    if invoice.amount_paid() > 0 {
        let currency = invoice.currency()?;
        history::record(
            a.conn,
            history::Outcome {
                owner: sub.owner(),
                status: "paid",
                amount: money::from_minor(invoice.amount_paid(), &currency),
                currency,
                transaction_id: invoice_id.to_owned(),
                invoice_id: Some(invoice_id),
                charge_id: None,
                charge_at: None,
                invoice_url: invoice.hosted_invoice_url(),
                description: invoice.number().map(|n| format!("Invoice {n}")),
                at: invoice.paid_at().unwrap_or(event.created),
            },
        )
        .await?;
    }
    let swept_past_due = sub.status == "past_due" && sub.stripe_status.as_deref() == Some("active");
    let newer_period = invoice
        .line_period()
        .filter(|(_, end)| *end > sub.current_period_end);
    if let (true, Some((start, end))) = (swept_past_due, newer_period) {
        sqlx::query(
            "UPDATE subscriptions SET status = 'active', grace_until = NULL, current_period_start = $2,
                 current_period_end = $3, updated_at = now()
             WHERE id = $1",
        )
        .bind(sub.id)
        .bind(start)
        .bind(end)
        .execute(&mut *a.conn)
        .await?;
        a.access_changed(sub.user_id);
    }
    Ok(())
}

/// A failed payment attempt: a `failed` row per (invoice, attempt) and the dunning e-mail of that
/// attempt, unless the invoice has been paid meanwhile.
pub(super) async fn payment_failed(a: &mut Apply<'_>) -> Result<(), JobError> {
    let event = a.event;
    let invoice = InvoiceView(&event.object);
    let invoice_id = invoice.id()?;
    let Some(sub) = subscription_of(a, invoice).await? else {
        return Ok(());
    };
    let attempt = invoice.attempt_count();
    let currency = invoice.currency()?;
    let amount = money::from_minor(invoice.amount_due(), &currency);
    history::record(
        a.conn,
        history::Outcome {
            owner: sub.owner(),
            status: "failed",
            amount,
            currency: currency.clone(),
            transaction_id: format!("{invoice_id}:attempt:{attempt}"),
            invoice_id: Some(invoice_id),
            charge_id: None,
            charge_at: None,
            invoice_url: invoice.hosted_invoice_url(),
            description: Some(format!("Payment attempt {attempt} failed")),
            at: event.created,
        },
    )
    .await?;
    if is_paid(a, invoice_id).await? {
        return Ok(());
    }
    let mail = BillingEmail {
        user_id: sub.user_id,
        template: templates::PAYMENT_FAILED,
        data: json!({
            "invoice": invoice_id, "amount": amount, "currency": currency, "attempt": attempt,
            "next_payment_attempt": invoice.next_payment_attempt(), "invoice_url": invoice.hosted_invoice_url(),
        }),
        dedupe_key: keys::dunning(invoice_id, attempt),
        scheduled_for: a.now,
    };
    a.queue_email(&mail).await?;
    Ok(())
}

/// The customer must authenticate the payment (3-D Secure): an e-mail with the hosted invoice link.
pub(super) async fn action_required(a: &mut Apply<'_>) -> Result<(), JobError> {
    let event = a.event;
    let invoice = InvoiceView(&event.object);
    let invoice_id = invoice.id()?;
    let user_id = match subscription_of(a, invoice).await? {
        Some(sub) => sub.user_id,
        None => {
            let customer = invoice.customer().ok_or_else(|| {
                JobError::Permanent(anyhow::anyhow!("invoice {invoice_id} has no customer"))
            })?;
            a.user_of_customer(customer).await?.ok_or_else(|| {
                not_yet(
                    super::waits::customer(customer),
                    format!("customer {customer} of invoice {invoice_id} is not linked yet"),
                )
            })?
        }
    };
    if is_paid(a, invoice_id).await? {
        return Ok(());
    }
    let currency = invoice.currency()?;
    let mail = BillingEmail {
        user_id,
        template: templates::PAYMENT_ACTION_REQUIRED,
        data: json!({
            "invoice": invoice_id, "amount": money::from_minor(invoice.amount_due(), &currency),
            "currency": currency, "invoice_url": invoice.hosted_invoice_url(),
        }),
        dedupe_key: keys::payment_action_required(invoice_id, invoice.attempt_count()),
        scheduled_for: a.now,
    };
    a.queue_email(&mail).await?;
    Ok(())
}
