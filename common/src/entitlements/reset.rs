//! The usage reset sweep (`usage.reset_sweep`, hourly): opens the current usage period of every
//! (user, metric) whose latest counter has ended, with `used = 0`. Rows of past periods stay as history.
//!
//! Counters are also opened lazily by the first consume of a period, so the sweep is what makes a reset
//! visible (a fresh row, `period_end` = the next reset) for users who have not used the metric yet. It
//! is idempotent: a period is opened once (`ON CONFLICT DO NOTHING` on `(user_id, metric,
//! period_start)`), and a (user, metric) with a current row is no longer a candidate.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

/// Users handled per statement; pages per run are bounded too.
const PAGE: i64 = 500;
const MAX_PAGES: usize = 1000;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ResetReport {
    /// Users with at least one metric whose period rolled over.
    pub users: u64,
    /// Counters opened.
    pub opened: u64,
}

/// Opens the periods that contain `now` for counters that ended at or before `now`.
pub async fn open_due_periods(
    pool: &PgPool,
    now: DateTime<Utc>,
) -> Result<ResetReport, sqlx::Error> {
    let mut report = ResetReport::default();
    let mut after = Uuid::nil();
    for _ in 0..MAX_PAGES {
        let users: Vec<Uuid> = sqlx::query_scalar(
            "SELECT DISTINCT c.user_id FROM usage_counters c
             WHERE c.period_end <= $1 AND c.user_id > $2
               AND NOT EXISTS (SELECT 1 FROM usage_counters n
                               WHERE n.user_id = c.user_id AND n.metric = c.metric AND n.period_end > $1)
             ORDER BY c.user_id LIMIT $3",
        )
        .bind(now)
        .bind(after)
        .bind(PAGE)
        .fetch_all(pool)
        .await?;
        if users.is_empty() {
            break;
        }
        let opened = sqlx::query(
            "INSERT INTO usage_counters (user_id, metric, period_start, period_end, used)
             SELECT l.user_id, l.metric, p.period_start, p.period_end, 0
             FROM (SELECT DISTINCT ON (user_id, metric) user_id, metric, period_end
                   FROM usage_counters WHERE user_id = ANY($1)
                   ORDER BY user_id, metric, period_start DESC) l
             CROSS JOIN LATERAL mingus_usage_period(mingus_usage_anchor(l.user_id, $2), $2) p
             WHERE l.period_end <= $2
             ON CONFLICT (user_id, metric, period_start) DO NOTHING",
        )
        .bind(&users)
        .bind(now)
        .execute(pool)
        .await?
        .rows_affected();
        report.users += users.len() as u64;
        report.opened += opened;
        match users.last() {
            Some(last) if users.len() as i64 == PAGE => after = *last,
            _ => break,
        }
    }
    Ok(report)
}
