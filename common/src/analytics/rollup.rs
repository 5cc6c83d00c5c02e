//! The daily `user_analytics` rollup: one set-based statement per (date, shard).
//!
//! **Which users.** Every user whose account existed before the end of the day gets a row for the day,
//! active or not: counts are 0, averages NULL, and the state metrics (financial ratios and score, goal
//! progress) are carried as of the end of the day. A dense table makes "no row" mean "not computed yet",
//! never "no activity", and averages over all users need no gap filling.
//!
//! **Which day.** `date` is a calendar day in **each user's own zone** (`user_profiles.timezone`; a missing
//! profile or a name PostgreSQL does not know counts as UTC): a New York user's 2026-03-01 is
//! [05:00 UTC, 05:00 UTC next day). Check-ins already carry the user's local date. So the day is complete
//! once it has ended everywhere (12:00 UTC the next day); the scheduler therefore rolls up yesterday
//! (provisional for zones west of UTC) and the day before (final) every night.
//!
//! **Sharding.** A shard is a contiguous range of user ids ([`Shard::bounds`]): user ids are random UUIDs,
//! so equal ranges hold about equal numbers of users, and every table is read by a range predicate on
//! `user_id` (an index range, not a hash of every row). Shards of one day run in parallel as separate jobs.
//!
//! **Idempotence.** The upsert only rewrites a row whose values differ (`IS DISTINCT FROM`), so running a
//! day twice gives the same rows and the second run writes nothing.

use std::time::{Duration, Instant};

use chrono::{NaiveDate, NaiveTime};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

/// A slice of the user id space: shard `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

/// Most shards one day may be split into.
pub const MAX_SHARDS: u32 = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    #[error("shard count must be 1–{MAX_SHARDS}, got {0}")]
    Count(u32),
    #[error("shard index {index} is not below the shard count {count}")]
    Index { index: u32, count: u32 },
}

impl Shard {
    /// All users in one shard.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    pub fn new(index: u32, count: u32) -> Result<Self, ShardError> {
        if count == 0 || count > MAX_SHARDS {
            return Err(ShardError::Count(count));
        }
        if index >= count {
            return Err(ShardError::Index { index, count });
        }
        Ok(Shard { index, count })
    }

    /// Every shard of a split into `count`.
    pub fn all(count: u32) -> Result<Vec<Shard>, ShardError> {
        Shard::new(0, count)?;
        (0..count).map(|index| Shard::new(index, count)).collect()
    }

    /// The first and last user id (both inclusive) of the shard. Boundaries are multiples of 2^64, which
    /// is exact enough for any shard count and keeps the arithmetic in `u128`.
    pub fn bounds(&self) -> (Uuid, Uuid) {
        let boundary =
            |k: u32| -> u128 { ((u128::from(k) << 64) / u128::from(self.count.max(1))) << 64 };
        let low = boundary(self.index);
        let high = if self.index + 1 >= self.count {
            u128::MAX
        } else {
            boundary(self.index + 1) - 1
        };
        (Uuid::from_u128(low), Uuid::from_u128(high))
    }

    pub fn contains(&self, user_id: Uuid) -> bool {
        let (low, high) = self.bounds();
        (low..=high).contains(&user_id)
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index + 1, self.count)
    }
}

/// What one rollup statement did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RollupReport {
    pub date: NaiveDate,
    pub shard: Shard,
    /// Rows inserted or changed (unchanged rows are not rewritten).
    pub rows_written: u64,
    #[serde(skip)]
    pub elapsed: Duration,
}

/// Events are read from this long before the UTC day (the earliest zone, UTC+14, with a margin)…
const SCAN_BEFORE_HOURS: i64 = 15;
/// …to this long after it (the latest zone, UTC−12, with a margin); each user's own window is exact.
const SCAN_AFTER_HOURS: i64 = 13;

/// The statement. $1 date, $2/$3 first/last user id of the shard, $4/$5 the activity scan window.
///
/// Financial health score (0–100), from the latest questionnaire submitted before the end of the day:
/// `35 × min(savings_rate, 20) / 20 + 30 × (1 − min(debt_to_income, 1)) + 35 × min(coverage, 6) / 6`,
/// rounded; without income the savings part is 0 and the debt part is 30 only without debt; without
/// expenses the emergency part is 35. The ratios are rounded to 2 decimals before they enter the score.
pub const ROLLUP_SQL: &str = r#"
WITH zones AS MATERIALIZED (
    SELECT name FROM pg_timezone_names
),
people AS MATERIALIZED (
    SELECT u.id AS user_id,
           ($1::date)::timestamp AT TIME ZONE z.zone AS day_start,
           ($1::date + 1)::timestamp AT TIME ZONE z.zone AS day_end
    FROM users u
    LEFT JOIN user_profiles pr ON pr.user_id = u.id AND pr.user_id BETWEEN $2 AND $3
    CROSS JOIN LATERAL (
        SELECT CASE WHEN pr.timezone IN (SELECT name FROM zones) THEN pr.timezone ELSE 'UTC' END AS zone
    ) z
    WHERE u.id BETWEEN $2 AND $3
      AND u.created_at < ($1::date + 1)::timestamp AT TIME ZONE z.zone
),
activity AS (
    SELECT e.user_id,
           count(*) FILTER (WHERE e.kind = 'login') AS logins,
           coalesce(sum(e.session_minutes) FILTER (WHERE e.kind = 'session_end'), 0) AS minutes,
           coalesce(jsonb_agg(DISTINCT e.feature COLLATE "C" ORDER BY e.feature COLLATE "C") FILTER (WHERE e.kind = 'feature_used'), '[]'::jsonb) AS features,
           coalesce(jsonb_agg(DISTINCT e.page COLLATE "C" ORDER BY e.page COLLATE "C") FILTER (WHERE e.kind = 'page_view'), '[]'::jsonb) AS pages
    FROM activity_events e
    JOIN people p ON p.user_id = e.user_id AND e.occurred_at >= p.day_start AND e.occurred_at < p.day_end
    WHERE e.occurred_at >= $4 AND e.occurred_at < $5
      AND e.user_id BETWEEN $2 AND $3
    GROUP BY e.user_id
),
checkins AS (
    SELECT c.user_id,
           round(avg(c.stress_level))::int AS stress,
           round(avg(c.energy_level))::int AS energy,
           round(avg(c.mood_rating))::int AS mood,
           count(*) AS completed
    FROM user_health_checkins c
    WHERE c.checkin_date = $1 AND c.user_id BETWEEN $2 AND $3
    GROUP BY c.user_id
),
latest_questionnaire AS (
    SELECT DISTINCT ON (f.user_id)
           f.user_id, f.monthly_income AS income, f.monthly_expenses AS expenses,
           f.total_debt AS debt, f.emergency_fund AS fund
    FROM financial_questionnaire_submissions f
    JOIN people p ON p.user_id = f.user_id AND f.submitted_at < p.day_end
    WHERE f.user_id BETWEEN $2 AND $3
    ORDER BY f.user_id, f.submitted_at DESC, f.id DESC
),
ratios AS (
    SELECT q.user_id, q.debt,
           CASE WHEN q.income > 0 THEN round(least(greatest((q.income - q.expenses) / q.income * 100, 0), 100), 2) END AS savings_rate,
           CASE WHEN q.income > 0 THEN round(least(q.debt / (q.income * 12), 999.99), 2) END AS debt_to_income,
           CASE WHEN q.expenses > 0 THEN round(least(q.fund / q.expenses, 999.99), 2) END AS coverage
    FROM latest_questionnaire q
),
finance AS (
    SELECT r.user_id, r.savings_rate, r.debt_to_income, r.coverage,
           round(
               35 * CASE WHEN r.savings_rate IS NOT NULL THEN least(r.savings_rate, 20) ELSE 0 END / 20
             + 30 * CASE WHEN r.debt_to_income IS NOT NULL THEN 1 - least(r.debt_to_income, 1)
                         WHEN r.debt = 0 THEN 1 ELSE 0 END
             + 35 * CASE WHEN r.coverage IS NOT NULL THEN least(r.coverage, 6) / 6 ELSE 1 END
           )::int AS score
    FROM ratios r
),
goal_stats AS (
    SELECT g.user_id,
           count(*) FILTER (WHERE g.created_at >= p.day_start) AS created,
           count(*) FILTER (WHERE g.completed_at >= p.day_start AND g.completed_at < p.day_end) AS completed,
           round(avg(CASE WHEN g.completed_at < p.day_end THEN 100 ELSE least(g.progress_percentage, 100) END)
                 FILTER (WHERE g.abandoned_at IS NULL OR g.abandoned_at >= p.day_end), 2) AS progress
    FROM goals g
    JOIN people p ON p.user_id = g.user_id AND g.created_at < p.day_end
    WHERE g.user_id BETWEEN $2 AND $3
    GROUP BY g.user_id
)
INSERT INTO user_analytics AS ua (
    user_id, date, login_count, session_duration_minutes, features_used, pages_visited,
    financial_health_score, savings_rate, debt_to_income_ratio, emergency_fund_coverage,
    average_stress_level, average_energy_level, average_mood_rating, health_checkins_completed,
    goals_created, goals_completed, goals_progress_percentage
)
SELECT p.user_id, $1::date,
       coalesce(a.logins, 0), coalesce(a.minutes, 0), coalesce(a.features, '[]'::jsonb), coalesce(a.pages, '[]'::jsonb),
       f.score, f.savings_rate, f.debt_to_income, f.coverage,
       c.stress, c.energy, c.mood, coalesce(c.completed, 0),
       coalesce(g.created, 0), coalesce(g.completed, 0), g.progress
FROM people p
LEFT JOIN activity a ON a.user_id = p.user_id
LEFT JOIN checkins c ON c.user_id = p.user_id
LEFT JOIN finance f ON f.user_id = p.user_id
LEFT JOIN goal_stats g ON g.user_id = p.user_id
ON CONFLICT (user_id, date) DO UPDATE SET
    login_count = EXCLUDED.login_count,
    session_duration_minutes = EXCLUDED.session_duration_minutes,
    features_used = EXCLUDED.features_used,
    pages_visited = EXCLUDED.pages_visited,
    financial_health_score = EXCLUDED.financial_health_score,
    savings_rate = EXCLUDED.savings_rate,
    debt_to_income_ratio = EXCLUDED.debt_to_income_ratio,
    emergency_fund_coverage = EXCLUDED.emergency_fund_coverage,
    average_stress_level = EXCLUDED.average_stress_level,
    average_energy_level = EXCLUDED.average_energy_level,
    average_mood_rating = EXCLUDED.average_mood_rating,
    health_checkins_completed = EXCLUDED.health_checkins_completed,
    goals_created = EXCLUDED.goals_created,
    goals_completed = EXCLUDED.goals_completed,
    goals_progress_percentage = EXCLUDED.goals_progress_percentage
WHERE (ua.login_count, ua.session_duration_minutes, ua.features_used, ua.pages_visited,
       ua.financial_health_score, ua.savings_rate, ua.debt_to_income_ratio, ua.emergency_fund_coverage,
       ua.average_stress_level, ua.average_energy_level, ua.average_mood_rating, ua.health_checkins_completed,
       ua.goals_created, ua.goals_completed, ua.goals_progress_percentage)
   IS DISTINCT FROM
      (EXCLUDED.login_count, EXCLUDED.session_duration_minutes, EXCLUDED.features_used, EXCLUDED.pages_visited,
       EXCLUDED.financial_health_score, EXCLUDED.savings_rate, EXCLUDED.debt_to_income_ratio, EXCLUDED.emergency_fund_coverage,
       EXCLUDED.average_stress_level, EXCLUDED.average_energy_level, EXCLUDED.average_mood_rating, EXCLUDED.health_checkins_completed,
       EXCLUDED.goals_created, EXCLUDED.goals_completed, EXCLUDED.goals_progress_percentage)
"#;

/// Memory for the statement's hash tables and sorts (one day of a shard's users), per transaction.
const WORK_MEM: &str = "64MB";

/// Rolls up `date` for the users of `shard`, in one transaction.
pub async fn roll_up(
    pool: &PgPool,
    date: NaiveDate,
    shard: Shard,
) -> Result<RollupReport, sqlx::Error> {
    let started = Instant::now();
    let (first, last) = shard.bounds();
    let midnight = date.and_time(NaiveTime::MIN).and_utc();
    let scan_from = midnight - chrono::Duration::hours(SCAN_BEFORE_HOURS);
    let scan_to = midnight + chrono::Duration::days(1) + chrono::Duration::hours(SCAN_AFTER_HOURS);
    let mut tx = pool.begin().await?;
    // JIT compilation costs ~0.1 s per statement and buys nothing here (the work is joins and index
    // lookups, not expression evaluation).
    sqlx::query("SELECT set_config('work_mem', $1, true), set_config('jit', 'off', true)")
        .bind(WORK_MEM)
        .execute(&mut *tx)
        .await?;
    let result = sqlx::query(ROLLUP_SQL)
        .bind(date)
        .bind(first)
        .bind(last)
        .bind(scan_from)
        .bind(scan_to)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(RollupReport {
        date,
        shard,
        rows_written: result.rows_affected(),
        elapsed: started.elapsed(),
    })
}

/// Rolls up every shard of `date`, `parallel` statements at a time (the CLI's inline mode and the
/// benchmark; workers run one shard per job).
pub async fn roll_up_day(
    pool: &PgPool,
    date: NaiveDate,
    shards: u32,
    parallel: usize,
) -> anyhow::Result<Vec<RollupReport>> {
    use futures::stream::{self, StreamExt, TryStreamExt};
    let shards = Shard::all(shards)?;
    let reports = stream::iter(shards)
        .map(|shard| roll_up(pool, date, shard))
        .buffer_unordered(parallel.max(1))
        .try_collect::<Vec<_>>()
        .await?;
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_tile_the_id_space_without_gaps_or_overlaps() {
        for count in [1, 2, 3, 4, 7, 16, 1024] {
            let shards = Shard::all(count).unwrap();
            assert_eq!(shards[0].bounds().0, Uuid::nil());
            assert_eq!(shards.last().unwrap().bounds().1, Uuid::max());
            for pair in shards.windows(2) {
                let (_, high) = pair[0].bounds();
                let (low, _) = pair[1].bounds();
                assert_eq!(high.as_u128() + 1, low.as_u128(), "{count} shards");
            }
        }
        let quarter = Shard::new(1, 4).unwrap().bounds();
        assert_eq!(
            quarter.0,
            Uuid::parse_str("40000000-0000-0000-0000-000000000000").unwrap()
        );
        assert_eq!(
            quarter.1,
            Uuid::parse_str("7fffffff-ffff-ffff-ffff-ffffffffffff").unwrap()
        );
    }

    #[test]
    fn invalid_shards_are_refused() {
        assert_eq!(Shard::new(0, 0), Err(ShardError::Count(0)));
        assert_eq!(Shard::all(0), Err(ShardError::Count(0)));
        assert_eq!(Shard::new(0, 2000), Err(ShardError::Count(2000)));
        assert_eq!(
            Shard::new(4, 4),
            Err(ShardError::Index { index: 4, count: 4 })
        );
        assert_eq!(Shard::new(3, 4).unwrap().to_string(), "4/4");
    }
}
