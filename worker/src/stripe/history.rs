//! `billing_history` rows: one per real payment outcome, keyed by `transaction_id` so a replayed event
//! never adds a second row.

use chrono::{DateTime, Utc};
use mingus_common::billing::Decimal;
use sqlx::PgConnection;
use uuid::Uuid;

/// The subscription a payment belongs to.
#[derive(Debug, Clone, Copy)]
pub(super) struct Owner {
    pub subscription_id: Uuid,
    pub user_id: Uuid,
}

pub(super) struct Outcome<'a> {
    pub owner: Owner,
    pub status: &'static str,
    pub amount: Decimal,
    pub currency: String,
    pub transaction_id: String,
    pub invoice_id: Option<&'a str>,
    /// The charge a refund returns money of, and when it was made (`None` for payments).
    pub charge_id: Option<&'a str>,
    pub charge_at: Option<DateTime<Utc>>,
    pub invoice_url: Option<&'a str>,
    pub description: Option<String>,
    /// When the outcome happened (paid_at, the failure or the refund), not when we learnt of it.
    pub at: DateTime<Utc>,
}

fn clip(text: Option<&str>, max: usize) -> Option<String> {
    text.map(|t| mingus_common::text::clip(t, max))
}

/// Inserts the row unless its transaction id exists; true when inserted.
pub(super) async fn record(conn: &mut PgConnection, row: Outcome<'_>) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO billing_history (subscription_id, user_id, amount, currency, status, payment_method,
             transaction_id, stripe_invoice_id, invoice_url, description, created_at, stripe_charge_id,
             stripe_charge_at)
         VALUES ($1, $2, $3, $4, $5, 'stripe', $6, $7, $8, $9, $10, $11, $12)
         ON CONFLICT (transaction_id) WHERE transaction_id IS NOT NULL DO NOTHING",
    )
    .bind(row.owner.subscription_id)
    .bind(row.owner.user_id)
    .bind(row.amount)
    .bind(&row.currency)
    .bind(row.status)
    .bind(clip(Some(&row.transaction_id), 255))
    .bind(clip(row.invoice_id, 255))
    .bind(clip(row.invoice_url, 500))
    .bind(clip(row.description.as_deref(), 255))
    .bind(row.at)
    .bind(clip(row.charge_id, 255))
    .bind(row.charge_at)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}
