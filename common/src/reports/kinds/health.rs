//! The health summary: the check-ins of the period's days (`checkin_date` is the user's local day).
//!
//! - `checkins`, `days_in_period`, `checkin_rate = checkins / days_in_period` (one check-in a day at
//!   most), `first_checkin` / `last_checkin`.
//! - `average`: each metric's mean over the check-ins that recorded it (2 decimals).
//! - `total`: physical-activity and mindfulness minutes summed over the period.
//! - `trend_per_week`: each metric's least-squares slope against the day, times 7 — how much the metric
//!   moved per week over the period (4 decimals; positive = rising). `null` with fewer than two
//!   check-ins recording the metric. For stress, rising is worse; for the others, better.
//! - `weekly`: consecutive 7-day weeks from the period's first day (the last one may be shorter), each
//!   with its check-in count and metric means (`null` in a week without check-ins).

use anyhow::Context;
use chrono::{Duration, NaiveDate};
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};
use sqlx::PgConnection;

use super::Window;
use super::number::{MONEY_DP, RATIO_DP, decimal, mean, quotient};

#[derive(Debug, sqlx::FromRow)]
struct Checkin {
    checkin_date: NaiveDate,
    stress_level: i16,
    energy_level: i16,
    mood_rating: i16,
    sleep_hours: Option<Decimal>,
    physical_activity_minutes: Option<i32>,
    mindfulness_minutes: Option<i32>,
}

type Metric = (&'static str, fn(&Checkin) -> Option<Decimal>);

const METRICS: [Metric; 6] = [
    ("stress_level", |c| Some(c.stress_level.into())),
    ("energy_level", |c| Some(c.energy_level.into())),
    ("mood_rating", |c| Some(c.mood_rating.into())),
    ("sleep_hours", |c| c.sleep_hours),
    ("physical_activity_minutes", |c| {
        c.physical_activity_minutes.map(Decimal::from)
    }),
    ("mindfulness_minutes", |c| {
        c.mindfulness_minutes.map(Decimal::from)
    }),
];

/// Each metric's mean over `checkins`.
fn averages<'a>(checkins: impl Iterator<Item = &'a Checkin> + Clone) -> Map<String, Value> {
    METRICS
        .iter()
        .map(|(name, pick)| {
            let mean = mean(checkins.clone().filter_map(pick));
            ((*name).to_owned(), decimal(mean, MONEY_DP))
        })
        .collect()
}

/// The least-squares slope of `(x, y)` per unit of x: `(nΣxy − ΣxΣy) / (nΣx² − (Σx)²)`, exact.
fn slope(points: &[(Decimal, Decimal)]) -> Option<Decimal> {
    let n = Decimal::from(points.len());
    let (sx, sy, sxy, sxx) = points.iter().fold(
        (Decimal::ZERO, Decimal::ZERO, Decimal::ZERO, Decimal::ZERO),
        |(sx, sy, sxy, sxx), (x, y)| (sx + x, sy + y, sxy + x * y, sxx + x * x),
    );
    let denominator = n * sxx - sx * sx;
    (!denominator.is_zero()).then(|| (n * sxy - sx * sy) / denominator)
}

fn trends(w: &Window, checkins: &[Checkin]) -> Map<String, Value> {
    METRICS
        .iter()
        .map(|(name, pick)| {
            let points: Vec<(Decimal, Decimal)> = checkins
                .iter()
                .filter_map(|c| {
                    let day = (c.checkin_date - w.period.start).num_days();
                    pick(c).map(|y| (Decimal::from(day), y))
                })
                .collect();
            let per_week = slope(&points).map(|s| s * Decimal::from(7));
            ((*name).to_owned(), decimal(per_week, RATIO_DP))
        })
        .collect()
}

fn weekly(w: &Window, checkins: &[Checkin]) -> Vec<Value> {
    let weeks = (w.days() + 6) / 7;
    (0..weeks)
        .map(|index| {
            let start = w.period.start + Duration::days(7 * index);
            let end = (start + Duration::days(6)).min(w.period.end);
            let inside = checkins
                .iter()
                .filter(move |c| c.checkin_date >= start && c.checkin_date <= end);
            let mut week = averages(inside.clone());
            week.insert("week_start".into(), json!(start));
            week.insert("week_end".into(), json!(end));
            week.insert("checkins".into(), json!(inside.count()));
            Value::Object(week)
        })
        .collect()
}

fn total(checkins: &[Checkin], pick: fn(&Checkin) -> Option<i32>) -> i64 {
    checkins.iter().filter_map(pick).map(i64::from).sum()
}

pub(super) async fn body(
    conn: &mut PgConnection,
    w: &Window,
) -> anyhow::Result<Map<String, Value>> {
    let checkins: Vec<Checkin> = sqlx::query_as(
        "SELECT checkin_date, stress_level, energy_level, mood_rating, sleep_hours,
                physical_activity_minutes, mindfulness_minutes
         FROM user_health_checkins
         WHERE user_id = $1 AND checkin_date BETWEEN $2 AND $3
         ORDER BY checkin_date",
    )
    .bind(w.user_id)
    .bind(w.period.start)
    .bind(w.period.end)
    .fetch_all(conn)
    .await
    .context("read the period's check-ins")?;
    let count = checkins.len();
    let mut body = Map::new();
    body.insert("checkins".into(), json!(count));
    body.insert("days_in_period".into(), json!(w.days()));
    body.insert(
        "checkin_rate".into(),
        quotient(
            Some(Decimal::from(count)),
            Some(Decimal::from(w.days())),
            RATIO_DP,
        ),
    );
    body.insert(
        "first_checkin".into(),
        json!(checkins.first().map(|c| c.checkin_date)),
    );
    body.insert(
        "last_checkin".into(),
        json!(checkins.last().map(|c| c.checkin_date)),
    );
    body.insert("average".into(), Value::Object(averages(checkins.iter())));
    body.insert(
        "total".into(),
        json!({
            "physical_activity_minutes": total(&checkins, |c| c.physical_activity_minutes),
            "mindfulness_minutes": total(&checkins, |c| c.mindfulness_minutes),
        }),
    );
    body.insert("trend_per_week".into(), Value::Object(trends(w, &checkins)));
    body.insert("weekly".into(), Value::Array(weekly(w, &checkins)));
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(values: &[(i64, i64)]) -> Vec<(Decimal, Decimal)> {
        values
            .iter()
            .map(|&(x, y)| (Decimal::from(x), Decimal::from(y)))
            .collect()
    }

    #[test]
    fn the_slope_is_the_least_squares_one() {
        assert_eq!(
            slope(&points(&[(0, 2), (1, 4), (2, 6)])),
            Some(Decimal::from(2))
        );
        // y = 1, 3, 2 over x = 0, 1, 2: (3·7 − 3·6) / (3·5 − 3²) = 3 / 6.
        assert_eq!(
            slope(&points(&[(0, 1), (1, 3), (2, 2)])),
            Some(Decimal::new(5, 1))
        );
        assert_eq!(slope(&points(&[(3, 5)])), None);
        assert_eq!(slope(&[]), None);
    }
}
