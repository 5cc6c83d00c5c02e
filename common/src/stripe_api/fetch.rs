//! `fetch-undelivered`: after an outage, store the events Stripe could not deliver.

use std::time::Duration;

use chrono::Utc;
use sqlx::PgPool;

use super::store::is_event;
use super::{MAX_PAGE_SIZE, StripeApi, store_event};
use crate::config::stripe::StripeMode;
use crate::jobs::{Enqueuer, outbox};

/// Stripe keeps events for 30 days.
pub const MAX_SINCE: Duration = Duration::from_secs(30 * 24 * 3600);
/// Stripe retries a failed delivery for 3 days.
pub const DEFAULT_SINCE: Duration = Duration::from_secs(3 * 24 * 3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchOptions {
    /// How far back to look (at most [`MAX_SINCE`]).
    pub since: Duration,
    pub page_size: u8,
    /// Stop after this many pages (the report says so).
    pub max_pages: usize,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            since: DEFAULT_SINCE,
            page_size: MAX_PAGE_SIZE,
            max_pages: 500,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchReport {
    /// Events Stripe listed.
    pub fetched: usize,
    /// Of which were not stored yet (now stored).
    pub new: usize,
    /// Of the new ones, stored as `quarantined` (other mode).
    pub quarantined: usize,
    /// Listed objects that are not events (skipped).
    pub invalid: usize,
    pub pages: usize,
    /// `max_pages` was reached while Stripe had more.
    pub truncated: bool,
}

/// Parses `30m`, `12h`, `3d`, `3600s` (or plain seconds); at most 30 days.
pub fn parse_since(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (number, unit) = raw.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("expected a duration such as 3d, 12h or 90m, got {raw:?}"))?;
    let seconds = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => return Err(format!("unknown unit {other:?}: use s, m, h or d")),
    };
    let since = Duration::from_secs(number.saturating_mul(seconds));
    if since.is_zero() {
        return Err("the duration must be positive".into());
    }
    if since > MAX_SINCE {
        return Err("at most 30d: Stripe keeps events for 30 days".into());
    }
    Ok(since)
}

/// Pages through `GET /v1/events?delivery_success=false&created[gte]=now-since` and stores each event
/// exactly as the webhook ingest does (insert if absent; `quarantined` when its mode differs; otherwise
/// its processing job is staged and pushed after commit). Running it twice stores nothing twice.
pub async fn fetch_undelivered(
    pool: &PgPool,
    enqueuer: &Enqueuer,
    api: &StripeApi,
    mode: StripeMode,
    options: FetchOptions,
) -> anyhow::Result<FetchReport> {
    if options.since > MAX_SINCE {
        anyhow::bail!("--since is at most 30 days (Stripe keeps events for 30 days)");
    }
    let since = chrono::Duration::from_std(options.since)?;
    let created_gte = (Utc::now() - since).timestamp();
    let mut report = FetchReport::default();
    let mut cursor: Option<String> = None;
    loop {
        if report.pages >= options.max_pages {
            report.truncated = true;
            break;
        }
        let page = api
            .list_undelivered_events(created_gte, cursor.as_deref(), options.page_size)
            .await?;
        report.pages += 1;
        report.fetched += page.data.len();
        let mut tx = pool.begin().await?;
        let mut envelopes = Vec::new();
        for event in &page.data {
            if !is_event(event) {
                tracing::warn!("skipped a listed object that is not an event");
                report.invalid += 1;
                continue;
            }
            let stored = store_event(&mut tx, event, mode).await?;
            if stored.inserted {
                report.new += 1;
                report.quarantined += usize::from(stored.status == "quarantined");
            }
            envelopes.extend(stored.envelope);
        }
        tx.commit().await?;
        outbox::push_after_commit(pool, enqueuer, &envelopes).await;
        match page.next_cursor() {
            Some(next) if cursor.as_deref() != Some(next) => cursor = Some(next.to_owned()),
            _ => break,
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_a_thirty_day_cap() {
        assert_eq!(parse_since("3d"), Ok(Duration::from_secs(3 * 86_400)));
        assert_eq!(parse_since("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert_eq!(parse_since("90m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_since("3600"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_since("30d"), Ok(MAX_SINCE));
        assert!(parse_since("31d").unwrap_err().contains("30"));
        assert!(parse_since("0h").is_err());
        assert!(parse_since("3w").is_err());
        assert!(parse_since("d").is_err());
        assert!(parse_since("99999999999999999999d").is_err());
    }
}
