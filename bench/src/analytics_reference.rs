//! The rollup's metrics for one user and day, written plainly in Rust (no SQL cleverness). It is the
//! yardstick the property test compares the set-based statement with, and, with [`load_user`] and
//! [`write`], the "naive per-user loop" the benchmark measures the statement against.

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, NaiveTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use sqlx::types::Json;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub occurred_at: DateTime<Utc>,
    /// `login`, `session_end`, `feature_used` or `page_view`.
    pub kind: String,
    pub session_minutes: Option<i32>,
    pub feature: Option<String>,
    pub page: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkin {
    pub date: NaiveDate,
    pub stress: i16,
    pub energy: i16,
    pub mood: i16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Questionnaire {
    pub id: Uuid,
    pub submitted_at: DateTime<Utc>,
    pub income: Decimal,
    pub expenses: Decimal,
    pub debt: Decimal,
    pub emergency_fund: Decimal,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Goal {
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub abandoned_at: Option<DateTime<Utc>>,
    pub progress: Decimal,
}

/// Everything the rollup reads about one user.
#[derive(Debug, Clone, Default)]
pub struct UserData {
    pub user_id: Uuid,
    pub created_at: DateTime<Utc>,
    /// `user_profiles.timezone` (None: no profile or no zone).
    pub timezone: Option<String>,
    pub events: Vec<Event>,
    pub checkins: Vec<Checkin>,
    pub questionnaires: Vec<Questionnaire>,
    pub goals: Vec<Goal>,
}

/// One `user_analytics` row's metrics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct DayMetrics {
    pub login_count: i32,
    pub session_duration_minutes: i32,
    pub features_used: Json<Vec<String>>,
    pub pages_visited: Json<Vec<String>>,
    pub financial_health_score: Option<i32>,
    pub savings_rate: Option<Decimal>,
    pub debt_to_income_ratio: Option<Decimal>,
    pub emergency_fund_coverage: Option<Decimal>,
    pub average_stress_level: Option<i32>,
    pub average_energy_level: Option<i32>,
    pub average_mood_rating: Option<i32>,
    pub health_checkins_completed: i32,
    pub goals_created: i32,
    pub goals_completed: i32,
    pub goals_progress_percentage: Option<Decimal>,
}

/// The user's zone: a known IANA name, else UTC (as the statement does with names PostgreSQL lacks).
pub fn zone(name: Option<&str>) -> Tz {
    name.and_then(|n| n.parse::<Tz>().ok()).unwrap_or(Tz::UTC)
}

/// `[start, end)` of `date` in `tz`, as PostgreSQL's `date::timestamp AT TIME ZONE tz` computes it.
pub fn day_window(date: NaiveDate, tz: Tz) -> (DateTime<Utc>, DateTime<Utc>) {
    let at = |day: NaiveDate| {
        let local = day.and_time(NaiveTime::MIN);
        match tz.from_local_datetime(&local).earliest() {
            Some(t) => t.with_timezone(&Utc),
            // Midnight inside a spring-forward gap: read it with the offset in force before the gap.
            None => {
                let before = tz.from_utc_datetime(&(local - chrono::Duration::hours(12)));
                let fixed = before.offset().fix().from_local_datetime(&local).unwrap();
                fixed.with_timezone(&Utc)
            }
        }
    };
    (
        at(date),
        at(date.succ_opt().expect("a date before the end of time")),
    )
}

fn round2(value: Decimal) -> Decimal {
    value.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

fn round0(value: Decimal) -> i32 {
    value
        .round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero)
        .try_into()
        .expect("a small integer")
}

/// The metrics of `user` for `date`, or None when the account did not exist before the day ended.
pub fn compute(user: &UserData, date: NaiveDate) -> Option<DayMetrics> {
    use rust_decimal::prelude::*;
    let (start, end) = day_window(date, zone(user.timezone.as_deref()));
    if user.created_at >= end {
        return None;
    }
    let in_day = |t: &DateTime<Utc>| *t >= start && *t < end;
    let today: Vec<&Event> = user
        .events
        .iter()
        .filter(|e| in_day(&e.occurred_at))
        .collect();
    let login_count = today.iter().filter(|e| e.kind == "login").count() as i32;
    let session_duration_minutes = today
        .iter()
        .filter(|e| e.kind == "session_end")
        .filter_map(|e| e.session_minutes)
        .sum();
    let distinct = |kind: &str, pick: fn(&Event) -> Option<&String>| -> Vec<String> {
        let set: BTreeSet<&String> = today
            .iter()
            .filter(|e| e.kind == kind)
            .filter_map(|e| pick(e))
            .collect();
        set.into_iter().cloned().collect()
    };
    let features_used = distinct("feature_used", |e| e.feature.as_ref());
    let pages_visited = distinct("page_view", |e| e.page.as_ref());

    let checkins: Vec<&Checkin> = user.checkins.iter().filter(|c| c.date == date).collect();
    let average = |pick: fn(&Checkin) -> i16| -> Option<i32> {
        if checkins.is_empty() {
            return None;
        }
        let sum: i64 = checkins.iter().map(|c| i64::from(pick(c))).sum();
        Some(round0(
            Decimal::from(sum) / Decimal::from(checkins.len() as i64),
        ))
    };

    let latest = user
        .questionnaires
        .iter()
        .filter(|q| q.submitted_at < end)
        .max_by_key(|q| (q.submitted_at, q.id));
    let hundred = Decimal::ONE_HUNDRED;
    let cap = Decimal::new(99999, 2);
    let (savings_rate, debt_to_income, coverage, score) = match latest {
        None => (None, None, None, None),
        Some(q) => {
            let positive_income = q.income > Decimal::ZERO;
            let savings_rate = positive_income.then(|| {
                round2(
                    ((q.income - q.expenses) / q.income * hundred)
                        .max(Decimal::ZERO)
                        .min(hundred),
                )
            });
            let debt_to_income =
                positive_income.then(|| round2((q.debt / (q.income * Decimal::from(12))).min(cap)));
            let coverage = (q.expenses > Decimal::ZERO)
                .then(|| round2((q.emergency_fund / q.expenses).min(cap)));
            let savings_part = Decimal::from(35)
                * savings_rate.map_or(Decimal::ZERO, |r| r.min(Decimal::from(20)))
                / Decimal::from(20);
            let debt_part = Decimal::from(30)
                * match debt_to_income {
                    Some(ratio) => Decimal::ONE - ratio.min(Decimal::ONE),
                    None if q.debt.is_zero() => Decimal::ONE,
                    None => Decimal::ZERO,
                };
            let emergency_part = match coverage {
                Some(months) => Decimal::from(35) * months.min(Decimal::from(6)) / Decimal::from(6),
                None => Decimal::from(35),
            };
            let score = round0(savings_part + debt_part + emergency_part);
            (savings_rate, debt_to_income, coverage, Some(score))
        }
    };

    let goals: Vec<&Goal> = user.goals.iter().filter(|g| g.created_at < end).collect();
    let goals_created = goals.iter().filter(|g| g.created_at >= start).count() as i32;
    let goals_completed = goals
        .iter()
        .filter(|g| g.completed_at.is_some_and(|t| in_day(&t)))
        .count() as i32;
    let open: Vec<Decimal> = goals
        .iter()
        .filter(|g| g.abandoned_at.is_none_or(|t| t >= end))
        .map(|g| {
            if g.completed_at.is_some_and(|t| t < end) {
                hundred
            } else {
                g.progress.min(hundred)
            }
        })
        .collect();
    let goals_progress_percentage = (!open.is_empty())
        .then(|| round2(open.iter().sum::<Decimal>() / Decimal::from(open.len() as i64)));

    Some(DayMetrics {
        login_count,
        session_duration_minutes,
        features_used: Json(features_used),
        pages_visited: Json(pages_visited),
        financial_health_score: score,
        savings_rate,
        debt_to_income_ratio: debt_to_income,
        emergency_fund_coverage: coverage,
        average_stress_level: average(|c| c.stress),
        average_energy_level: average(|c| c.energy),
        average_mood_rating: average(|c| c.mood),
        health_checkins_completed: checkins.len() as i32,
        goals_created,
        goals_completed,
        goals_progress_percentage,
    })
}

/// The rollup's rows for `date`, by user.
pub async fn stored(
    pool: &PgPool,
    date: NaiveDate,
) -> Result<Vec<(Uuid, DayMetrics)>, sqlx::Error> {
    stored_for(pool, date, None).await
}

/// The rollup's rows for `date` of some users (all with None), by user.
pub async fn stored_for(
    pool: &PgPool,
    date: NaiveDate,
    users: Option<&[Uuid]>,
) -> Result<Vec<(Uuid, DayMetrics)>, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Row {
        user_id: Uuid,
        #[sqlx(flatten)]
        metrics: DayMetrics,
    }
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT user_id, login_count, session_duration_minutes, features_used, pages_visited,
                financial_health_score, savings_rate, debt_to_income_ratio, emergency_fund_coverage,
                average_stress_level, average_energy_level, average_mood_rating,
                health_checkins_completed, goals_created, goals_completed, goals_progress_percentage
         FROM user_analytics WHERE date = $1 AND ($2::uuid[] IS NULL OR user_id = ANY($2))
         ORDER BY user_id",
    )
    .bind(date)
    .bind(users)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| (r.user_id, r.metrics)).collect())
}

/// Reads what the rollup needs about one user for `date`, one query per source (the naive way).
pub async fn load_user(
    pool: &PgPool,
    user_id: Uuid,
    date: NaiveDate,
) -> Result<UserData, sqlx::Error> {
    let (created_at, timezone): (DateTime<Utc>, Option<String>) = sqlx::query_as(
        "SELECT u.created_at, p.timezone FROM users u LEFT JOIN user_profiles p ON p.user_id = u.id
         WHERE u.id = $1",
    )
    .bind(user_id)
    .fetch_one(pool)
    .await?;
    let (start, end) = day_window(date, zone(timezone.as_deref()));
    let events = sqlx::query_as::<
        _,
        (
            DateTime<Utc>,
            String,
            Option<i32>,
            Option<String>,
            Option<String>,
        ),
    >(
        "SELECT occurred_at, kind, session_minutes, feature, page FROM activity_events
         WHERE user_id = $1 AND occurred_at >= $2 AND occurred_at < $3",
    )
    .bind(user_id)
    .bind(start)
    .bind(end)
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(
        |(occurred_at, kind, session_minutes, feature, page)| Event {
            occurred_at,
            kind,
            session_minutes,
            feature,
            page,
        },
    )
    .collect();
    let checkins = sqlx::query_as::<_, (NaiveDate, i16, i16, i16)>(
        "SELECT checkin_date, stress_level, energy_level, mood_rating FROM user_health_checkins
         WHERE user_id = $1 AND checkin_date = $2",
    )
    .bind(user_id)
    .bind(date)
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|(date, stress, energy, mood)| Checkin {
        date,
        stress,
        energy,
        mood,
    })
    .collect();
    let questionnaires =
        sqlx::query_as::<_, (Uuid, DateTime<Utc>, Decimal, Decimal, Decimal, Decimal)>(
            "SELECT id, submitted_at, monthly_income, monthly_expenses, total_debt, emergency_fund
         FROM financial_questionnaire_submissions WHERE user_id = $1 AND submitted_at < $2
         ORDER BY submitted_at DESC, id DESC LIMIT 1",
        )
        .bind(user_id)
        .bind(end)
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(
            |(id, submitted_at, income, expenses, debt, emergency_fund)| Questionnaire {
                id,
                submitted_at,
                income,
                expenses,
                debt,
                emergency_fund,
            },
        )
        .collect();
    let goals = sqlx::query_as::<
        _,
        (
            DateTime<Utc>,
            Option<DateTime<Utc>>,
            Option<DateTime<Utc>>,
            Decimal,
        ),
    >(
        "SELECT created_at, completed_at, abandoned_at, progress_percentage FROM goals
         WHERE user_id = $1 AND created_at < $2",
    )
    .bind(user_id)
    .bind(end)
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|(created_at, completed_at, abandoned_at, progress)| Goal {
        created_at,
        completed_at,
        abandoned_at,
        progress,
    })
    .collect();
    Ok(UserData {
        user_id,
        created_at,
        timezone,
        events,
        checkins,
        questionnaires,
        goals,
    })
}

/// Upserts one user's row (the naive loop's write).
pub async fn write(
    pool: &PgPool,
    user_id: Uuid,
    date: NaiveDate,
    m: &DayMetrics,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO user_analytics (user_id, date, login_count, session_duration_minutes, features_used,
             pages_visited, financial_health_score, savings_rate, debt_to_income_ratio, emergency_fund_coverage,
             average_stress_level, average_energy_level, average_mood_rating, health_checkins_completed,
             goals_created, goals_completed, goals_progress_percentage)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
         ON CONFLICT (user_id, date) DO UPDATE SET
             login_count = EXCLUDED.login_count, session_duration_minutes = EXCLUDED.session_duration_minutes,
             features_used = EXCLUDED.features_used, pages_visited = EXCLUDED.pages_visited,
             financial_health_score = EXCLUDED.financial_health_score, savings_rate = EXCLUDED.savings_rate,
             debt_to_income_ratio = EXCLUDED.debt_to_income_ratio,
             emergency_fund_coverage = EXCLUDED.emergency_fund_coverage,
             average_stress_level = EXCLUDED.average_stress_level,
             average_energy_level = EXCLUDED.average_energy_level,
             average_mood_rating = EXCLUDED.average_mood_rating,
             health_checkins_completed = EXCLUDED.health_checkins_completed,
             goals_created = EXCLUDED.goals_created, goals_completed = EXCLUDED.goals_completed,
             goals_progress_percentage = EXCLUDED.goals_progress_percentage",
    )
    .bind(user_id)
    .bind(date)
    .bind(m.login_count)
    .bind(m.session_duration_minutes)
    .bind(&m.features_used)
    .bind(&m.pages_visited)
    .bind(m.financial_health_score)
    .bind(m.savings_rate)
    .bind(m.debt_to_income_ratio)
    .bind(m.emergency_fund_coverage)
    .bind(m.average_stress_level)
    .bind(m.average_energy_level)
    .bind(m.average_mood_rating)
    .bind(m.health_checkins_completed)
    .bind(m.goals_created)
    .bind(m.goals_completed)
    .bind(m.goals_progress_percentage)
    .execute(pool)
    .await
    .map(|_| ())
}

/// The naive per-user loop: load, compute and write each user in turn. Returns the rows written.
pub async fn naive_roll_up(
    pool: &PgPool,
    date: NaiveDate,
    users: &[Uuid],
) -> Result<u64, sqlx::Error> {
    let mut written = 0;
    for &user_id in users {
        let data = load_user(pool, user_id, date).await?;
        if let Some(metrics) = compute(&data, date) {
            write(pool, user_id, date, &metrics).await?;
            written += 1;
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_day_is_the_users_local_day() {
        let date = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
        let (start, end) = day_window(date, zone(Some("America/New_York")));
        assert_eq!(start, utc("2026-03-01T05:00:00Z"));
        assert_eq!(end, utc("2026-03-02T05:00:00Z"));
        // The spring-forward day has 23 hours.
        let dst = NaiveDate::from_ymd_opt(2026, 3, 8).unwrap();
        let (start, end) = day_window(dst, zone(Some("America/New_York")));
        assert_eq!(end - start, chrono::Duration::hours(23));
        assert_eq!(zone(Some("Mars/Olympus_Mons")), Tz::UTC);
        assert_eq!(zone(None), Tz::UTC);
    }

    #[test]
    fn the_financial_health_score_follows_the_documented_formula() {
        let date = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
        let questionnaire = |income: &str, expenses: &str, debt: &str, fund: &str| UserData {
            created_at: utc("2025-01-01T00:00:00Z"),
            questionnaires: vec![Questionnaire {
                id: Uuid::nil(),
                submitted_at: utc("2026-02-01T00:00:00Z"),
                income: Decimal::from_str(income).unwrap(),
                expenses: Decimal::from_str(expenses).unwrap(),
                debt: Decimal::from_str(debt).unwrap(),
                emergency_fund: Decimal::from_str(fund).unwrap(),
            }],
            ..UserData::default()
        };
        // Saves 25 % (full 35), debt = 0.5 year of income (15 of 30), 3 months covered (17.5 of 35).
        let m = compute(&questionnaire("4000", "3000", "24000", "9000"), date).unwrap();
        assert_eq!(m.savings_rate, Some(Decimal::from(25)));
        assert_eq!(
            m.debt_to_income_ratio,
            Some(Decimal::from_str("0.5").unwrap())
        );
        assert_eq!(m.emergency_fund_coverage, Some(Decimal::from(3)));
        assert_eq!(m.financial_health_score, Some(68));
        // Spending more than earning clamps the savings rate at 0 (the CHECK allows 0–100).
        let m = compute(&questionnaire("1000", "1500", "0", "0"), date).unwrap();
        assert_eq!(m.savings_rate, Some(Decimal::ZERO));
        assert_eq!(m.financial_health_score, Some(30));
        // No income: ratios on income are undefined; no expenses: full emergency points.
        let m = compute(&questionnaire("0", "0", "100", "0"), date).unwrap();
        assert_eq!(
            (
                m.savings_rate,
                m.debt_to_income_ratio,
                m.emergency_fund_coverage
            ),
            (None, None, None)
        );
        assert_eq!(m.financial_health_score, Some(35));
        // Without a questionnaire there is no score.
        let none = UserData {
            created_at: utc("2025-01-01T00:00:00Z"),
            ..UserData::default()
        };
        assert_eq!(compute(&none, date).unwrap().financial_health_score, None);
    }
}
