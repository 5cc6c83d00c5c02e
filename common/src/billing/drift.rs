//! The drift report: what has not converged to Stripe's truth. Run nightly by `billing.stripe_reconcile`
//! and stored in `stripe_drift_reports` (migration `…21`) for `/ops`; 0 is the expected count.
//!
//! The local report needs no API key: it holds our state against the events we have stored.
//! - `event_stuck`: an event still `received` an hour after it arrived, or `failed` (within the window).
//! - `subscription_behind`: a subscription whose row holds an older state than a state event of it that
//!   was processed (the ordering guard should make that impossible).
//! - `refund_total`: a charge whose recorded refunds differ from the largest `amount_refunded` its
//!   processed `charge.refunded` events reported (a refund lost or counted twice). Charges with nothing
//!   recorded count only when their invoice's payment is recorded (refunds of one-off payments are not
//!   ours to record).
//!
//! With `STRIPE_API_KEY`, the reconciliation against Stripe's API (`stripe_api::reconcile`) is stored
//! beside it as source `stripe`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;

use super::{Decimal, money};

/// Events received within this many days are checked (the nightly run stays bounded as history grows).
pub const WINDOW_DAYS: i32 = 35;
/// Drifts kept in a stored report (the count is always complete).
pub const MAX_ITEMS: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DriftItem {
    pub kind: &'static str,
    pub id: String,
    pub detail: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DriftReport {
    /// Events, subscriptions and charges looked at.
    pub checked: i64,
    pub items: Vec<DriftItem>,
}

impl DriftReport {
    pub fn count(&self) -> usize {
        self.items.len()
    }
}

/// Computes the local report (see the module comment).
pub async fn local(pool: &PgPool) -> Result<DriftReport, sqlx::Error> {
    let mut report = DriftReport::default();
    let stuck: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT id, status, last_error FROM stripe_events
         WHERE received_at > now() - make_interval(days => $1)
           AND (status = 'failed' OR (status = 'received' AND received_at < now() - interval '1 hour'))
         ORDER BY received_at",
    )
    .bind(WINDOW_DAYS)
    .fetch_all(pool)
    .await?;
    report
        .items
        .extend(stuck.into_iter().map(|(id, status, error)| DriftItem {
            kind: "event_stuck",
            id,
            detail: format!("{status}: {}", error.unwrap_or_default()),
        }));

    let (subscriptions,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM subscriptions WHERE stripe_subscription_id IS NOT NULL",
    )
    .fetch_one(pool)
    .await?;
    let behind: Vec<(String, DateTime<Utc>, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT s.stripe_subscription_id, s.stripe_event_at, e.id, e.created
         FROM subscriptions s
         JOIN LATERAL (SELECT id, created FROM stripe_events
                       WHERE object_id = s.stripe_subscription_id AND status = 'processed'
                         AND type LIKE 'customer.subscription.%' AND created > s.stripe_event_at
                         AND received_at > now() - make_interval(days => $1)
                       ORDER BY created DESC LIMIT 1) e ON true
         WHERE s.stripe_event_at IS NOT NULL",
    )
    .bind(WINDOW_DAYS)
    .fetch_all(pool)
    .await?;
    report.items.extend(
        behind
            .into_iter()
            .map(|(sub, held, event, created)| DriftItem {
                kind: "subscription_behind",
                id: sub,
                detail: format!("holds the state of {held}, {event} of {created} was processed"),
            }),
    );

    let charges: Vec<(String, i64, String, Option<Decimal>, bool)> = sqlx::query_as(
        "WITH seen AS (
             SELECT object_id AS charge,
                    max((payload -> 'data' -> 'object' ->> 'amount_refunded')::bigint) AS refunded,
                    max(payload -> 'data' -> 'object' ->> 'currency') AS currency,
                    max(payload -> 'data' -> 'object' ->> 'invoice') AS invoice
             FROM stripe_events
             WHERE type = 'charge.refunded' AND status = 'processed' AND object_id IS NOT NULL
               AND jsonb_typeof(payload -> 'data' -> 'object' -> 'amount_refunded') = 'number'
               AND received_at > now() - make_interval(days => $1)
             GROUP BY object_id)
         SELECT seen.charge, seen.refunded, coalesce(seen.currency, ''),
                (SELECT sum(amount) FROM billing_history
                 WHERE stripe_charge_id = seen.charge AND status = 'refunded'),
                EXISTS (SELECT 1 FROM billing_history
                        WHERE stripe_invoice_id = seen.invoice AND status = 'paid')
         FROM seen",
    )
    .bind(WINDOW_DAYS)
    .fetch_all(pool)
    .await?;
    let charges_checked = charges.len() as i64;
    for (charge, refunded, currency, recorded, invoice_recorded) in charges {
        if recorded.is_none() && !invoice_recorded {
            continue;
        }
        let expected = money::from_minor(refunded, &currency);
        let recorded = recorded.unwrap_or_default();
        if recorded != expected {
            report.items.push(DriftItem {
                kind: "refund_total",
                id: charge,
                detail: format!(
                    "Stripe refunded {expected} {}, recorded {recorded}",
                    currency.to_uppercase()
                ),
            });
        }
    }
    let (events,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM stripe_events WHERE received_at > now() - make_interval(days => $1)",
    )
    .bind(WINDOW_DAYS)
    .fetch_one(pool)
    .await?;
    report.checked = events + subscriptions + charges_checked;
    Ok(report)
}

/// Stores a report (its first [`MAX_ITEMS`] drifts and the full count).
pub async fn store(
    pool: &PgPool,
    source: &str,
    checked: i64,
    items: &[DriftItem],
) -> Result<(), sqlx::Error> {
    let kept = serde_json::to_value(&items[..items.len().min(MAX_ITEMS)]).unwrap_or(Value::Null);
    sqlx::query(
        "INSERT INTO stripe_drift_reports (source, checked, drift_count, items) VALUES ($1, $2, $3, $4)",
    )
    .bind(source)
    .bind(i32::try_from(checked).unwrap_or(i32::MAX))
    .bind(i32::try_from(items.len()).unwrap_or(i32::MAX))
    .bind(sqlx::types::Json(kept))
    .execute(pool)
    .await?;
    Ok(())
}

/// The latest report of each source, newest first, for `/ops`.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct StoredReport {
    pub source: String,
    pub ran_at: DateTime<Utc>,
    pub checked: i32,
    pub drift_count: i32,
    pub items: sqlx::types::Json<Value>,
}

pub async fn latest(pool: &PgPool) -> Result<Vec<StoredReport>, sqlx::Error> {
    sqlx::query_as(
        "SELECT DISTINCT ON (source) source, ran_at, checked, drift_count, items
         FROM stripe_drift_reports ORDER BY source, ran_at DESC",
    )
    .fetch_all(pool)
    .await
}
