//! `reconcile`: Stripe's subscriptions against our `subscriptions` rows.

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::PgPool;

use super::{MAX_PAGE_SIZE, StripeApi, store_event};
use crate::billing::objects::SubscriptionView;
use crate::config::stripe::StripeMode;
use crate::jobs::{Enqueuer, outbox};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconcileOptions {
    /// Stage a synthetic processing of Stripe's state for each drifted subscription.
    pub fix: bool,
    pub page_size: u8,
    /// Stop after this many pages (the report says so).
    pub max_pages: usize,
}

impl Default for ReconcileOptions {
    fn default() -> Self {
        ReconcileOptions {
            fix: false,
            page_size: MAX_PAGE_SIZE,
            max_pages: 1_000,
        }
    }
}

/// One field that differs: Stripe's value and ours, as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDiff {
    pub field: &'static str,
    pub stripe: String,
    pub local: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriftKind {
    /// Live at Stripe, no local row with this `stripe_subscription_id`.
    MissingLocally,
    Fields(Vec<FieldDiff>),
    /// Stripe's object cannot be read (no status or period): reported, never fixed.
    Unreadable(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    pub subscription: String,
    pub kind: DriftKind,
    /// The synthetic event staged to correct it (`--fix`).
    pub fix_event: Option<String>,
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.subscription)?;
        match &self.kind {
            DriftKind::MissingLocally => f.write_str("missing locally")?,
            DriftKind::Unreadable(why) => write!(f, "unreadable at Stripe ({why})")?,
            DriftKind::Fields(diffs) => {
                for (i, d) in diffs.iter().enumerate() {
                    let sep = if i == 0 { "" } else { "; " };
                    write!(f, "{sep}{} stripe={} local={}", d.field, d.stripe, d.local)?;
                }
            }
        }
        if let Some(event) = &self.fix_event {
            write!(f, " → staged {event}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Subscriptions Stripe listed.
    pub checked: usize,
    pub in_sync: usize,
    /// Ended (canceled / incomplete_expired) at Stripe and unknown here: nothing to correct.
    pub ended_unknown: usize,
    pub drift: Vec<Drift>,
    pub fixes_staged: usize,
    pub pages: usize,
    pub truncated: bool,
}

/// Our row, as far as it is compared.
#[derive(Debug, sqlx::FromRow)]
struct Local {
    stripe_subscription_id: String,
    status: String,
    stripe_status: Option<String>,
    cancel_at_period_end: bool,
    current_period_end: DateTime<Utc>,
    stripe_price_id: Option<String>,
}

fn or_none(value: Option<&str>) -> String {
    value.unwrap_or("(none)").to_owned()
}

/// What differs between Stripe's subscription and our row; `None` when they agree.
fn compare(sub: &Value, local: Option<&Local>) -> Option<DriftKind> {
    let view = SubscriptionView(sub);
    let status = match view.status() {
        Ok(status) => status,
        Err(err) => return Some(DriftKind::Unreadable(err.to_string())),
    };
    let Some(local) = local else {
        return (!status.is_terminal()).then_some(DriftKind::MissingLocally);
    };
    let period_end = match view.period() {
        Ok((_, end)) => end,
        Err(err) => return Some(DriftKind::Unreadable(err.to_string())),
    };
    let price = view.price().ok().and_then(|p| p["id"].as_str());
    let mut diffs = Vec::new();
    let mut check = |field, stripe: String, ours: String| {
        if stripe != ours {
            diffs.push(FieldDiff {
                field,
                stripe,
                local: ours,
            });
        }
    };
    check(
        "status",
        status.local().as_str().into(),
        local.status.clone(),
    );
    check(
        "stripe_status",
        status.as_str().into(),
        or_none(local.stripe_status.as_deref()),
    );
    check(
        "cancel_at_period_end",
        view.cancel_at_period_end().to_string(),
        local.cancel_at_period_end.to_string(),
    );
    check(
        "current_period_end",
        period_end.to_rfc3339(),
        // Stripe has 1-second resolution.
        DateTime::from_timestamp(local.current_period_end.timestamp(), 0)
            .unwrap_or(local.current_period_end)
            .to_rfc3339(),
    );
    if price.is_some() {
        check(
            "price",
            or_none(price),
            or_none(local.stripe_price_id.as_deref()),
        );
    }
    (!diffs.is_empty()).then_some(DriftKind::Fields(diffs))
}

/// The synthetic event that makes processing apply Stripe's current state. Its `created` is when the
/// object was fetched, so a real event newer than the fetch still wins the ordering guard.
fn synthetic_event(sub: &Value, sub_id: &str, fetched_at: DateTime<Utc>) -> Value {
    json!({
        "id": format!("reconcile:{sub_id}:{}", fetched_at.timestamp()),
        "object": "event",
        "api_version": null,
        "created": fetched_at.timestamp(),
        "type": "customer.subscription.updated",
        "livemode": sub["livemode"].as_bool().unwrap_or(false),
        "pending_webhooks": 0,
        "request": {"id": null, "idempotency_key": null},
        "data": {"object": sub, "previous_attributes": {}},
    })
}

/// Lists every Stripe subscription (all statuses, all pages up to `max_pages`) and compares each with
/// our row of the same `stripe_subscription_id`: local status (NOTES mapping), raw Stripe status,
/// `cancel_at_period_end`, current period end (subscription or, from basil on, its item) and price.
/// With `fix`, each fixable drift gets a synthetic `customer.subscription.updated` event
/// (`reconcile:<sub id>:<unix time>`) wrapping the fetched object, and its processing job is staged.
pub async fn reconcile(
    pool: &PgPool,
    enqueuer: &Enqueuer,
    api: &StripeApi,
    mode: StripeMode,
    options: ReconcileOptions,
) -> anyhow::Result<ReconcileReport> {
    let mut report = ReconcileReport::default();
    let mut cursor: Option<String> = None;
    loop {
        if report.pages >= options.max_pages {
            report.truncated = true;
            break;
        }
        let page = api
            .list_subscriptions(cursor.as_deref(), options.page_size)
            .await?;
        let fetched_at = Utc::now();
        report.pages += 1;
        report.checked += page.data.len();
        let ids: Vec<&str> = page.data.iter().filter_map(|s| s["id"].as_str()).collect();
        let locals: HashMap<String, Local> = sqlx::query_as::<_, Local>(
            "SELECT stripe_subscription_id, status, stripe_status, cancel_at_period_end,
                    current_period_end, stripe_price_id
             FROM subscriptions WHERE stripe_subscription_id = ANY($1)",
        )
        .bind(&ids)
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(|row| (row.stripe_subscription_id.clone(), row))
        .collect();
        for sub in &page.data {
            let Some(sub_id) = sub["id"].as_str() else {
                continue;
            };
            let local = locals.get(sub_id);
            let Some(kind) = compare(sub, local) else {
                if local.is_some() {
                    report.in_sync += 1;
                } else {
                    report.ended_unknown += 1;
                }
                continue;
            };
            let mut drift = Drift {
                subscription: sub_id.to_owned(),
                kind,
                fix_event: None,
            };
            if options.fix && !matches!(drift.kind, DriftKind::Unreadable(_)) {
                let event = synthetic_event(sub, sub_id, fetched_at);
                let mut tx = pool.begin().await?;
                let stored = store_event(&mut tx, &event, mode).await?;
                tx.commit().await?;
                if let Some(envelope) = stored.envelope {
                    report.fixes_staged += 1;
                    drift.fix_event = event["id"].as_str().map(str::to_owned);
                    outbox::push_after_commit(pool, enqueuer, &[envelope]).await;
                }
            }
            report.drift.push(drift);
        }
        match page.next_cursor() {
            Some(next) if cursor.as_deref() != Some(next) => cursor = Some(next.to_owned()),
            _ => break,
        }
    }
    Ok(report)
}

/// Fetches one subscription from Stripe and stages its processing as a synthetic event, as a `fix` of
/// [`reconcile`] does: the worker calls it when two state events of the same second and rank could not
/// be ordered from their payloads (Pay's approach: Stripe's current object is the truth). Returns the
/// synthetic event's id, `None` when an identical one was staged already this second.
pub async fn refetch_subscription(
    pool: &PgPool,
    enqueuer: &Enqueuer,
    api: &StripeApi,
    mode: StripeMode,
    sub_id: &str,
) -> anyhow::Result<Option<String>> {
    let sub = api.retrieve_subscription(sub_id).await?;
    let event = synthetic_event(&sub, sub_id, Utc::now());
    let mut tx = pool.begin().await?;
    let stored = store_event(&mut tx, &event, mode).await?;
    tx.commit().await?;
    let Some(envelope) = stored.envelope else {
        return Ok(None);
    };
    outbox::push_after_commit(pool, enqueuer, &[envelope]).await;
    Ok(event["id"].as_str().map(str::to_owned))
}
