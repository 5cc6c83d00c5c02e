#![doc = include_str!("README.md")]

use std::time::{Duration, Instant};

use chrono::{Days, NaiveDate};
use sqlx::PgPool;

/// The longest range one computation covers (the SQL function refuses longer ones too).
pub const MAX_DAYS: u64 = 3661;

/// How far back the nightly run recomputes: a Stripe event processed late carries the time it happened,
/// so the days since then change; a month and a bit covers a delivery Stripe retried for three days and
/// an outage of a few weeks. Older corrections need `mingus-admin revenue backfill`.
pub const NIGHTLY_DAYS: u64 = 35;

#[derive(Debug, thiserror::Error)]
pub enum RevenueError {
    #[error("revenue range {from} ..= {to} is empty or longer than {MAX_DAYS} days")]
    Range { from: NaiveDate, to: NaiveDate },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// What one computation wrote.
#[derive(Debug, Clone, Copy)]
pub struct Computed {
    pub days: i32,
    pub elapsed: Duration,
}

/// The days the nightly run of `today` recomputes: the [`NIGHTLY_DAYS`] before it (today is not over).
pub fn nightly_range(today: NaiveDate) -> (NaiveDate, NaiveDate) {
    let to = today - Days::new(1);
    (to - Days::new(NIGHTLY_DAYS - 1), to)
}

/// Checks a range before it is computed or enqueued.
pub fn check_range(from: NaiveDate, to: NaiveDate) -> Result<(), RevenueError> {
    let days = (to - from).num_days() + 1;
    if days < 1 || days as u64 > MAX_DAYS {
        return Err(RevenueError::Range { from, to });
    }
    Ok(())
}

/// Recomputes the facts of `from..=to` in one transaction (`mingus_revenue_compute`, migration …90):
/// the old rows of those days vanish and the new ones appear together.
pub async fn compute(
    pool: &PgPool,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Computed, RevenueError> {
    check_range(from, to)?;
    let started = Instant::now();
    let mut tx = pool.begin().await?;
    let days: i32 = sqlx::query_scalar("SELECT mingus_revenue_compute($1, $2)")
        .bind(from)
        .bind(to)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Computed {
        days,
        elapsed: started.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn the_nightly_range_ends_yesterday_and_spans_the_window() {
        let (from, to) = nightly_range(day("2026-03-01"));
        assert_eq!(to, day("2026-02-28"));
        assert_eq!((to - from).num_days() + 1, NIGHTLY_DAYS as i64);
    }

    #[test]
    fn ranges_must_be_ordered_and_bounded() {
        assert!(check_range(day("2026-01-02"), day("2026-01-01")).is_err());
        assert!(check_range(day("2026-01-01"), day("2026-01-01")).is_ok());
        assert!(check_range(day("2016-01-01"), day("2026-01-08")).is_ok());
        assert!(check_range(day("2016-01-01"), day("2026-01-09")).is_err());
    }
}
