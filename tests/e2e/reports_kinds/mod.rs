//! The content of each report kind (`mingus_common::reports::kinds`), computed through the application
//! role under row-level security, checked number by number against data the tests insert: another
//! user's rows and rows just outside the period must not count.

mod csv;
mod custom;
mod financial;
mod goals;
mod health;

use chrono::NaiveDate;
use mingus_common::db::begin_as_user;
use mingus_common::reports::{Period, ReportFormat, ReportKind, ReportSpec, kinds};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

pub(crate) fn day(text: &str) -> NaiveDate {
    text.parse().expect("a YYYY-MM-DD date")
}

pub(crate) fn spec(kind: ReportKind, start: &str, end: &str) -> ReportSpec {
    ReportSpec {
        kind,
        period: Period {
            start: day(start),
            end: day(end),
        },
        format: ReportFormat::Json,
        sections: Vec::new(),
    }
}

/// A user; with a profile in `timezone` when given (none: no profile, read as UTC).
pub(crate) async fn user(pool: &PgPool, timezone: Option<&str>) -> Uuid {
    let id = Uuid::new_v4();
    sqlx::query("INSERT INTO users (id, email) VALUES ($1, $2)")
        .bind(id)
        .bind(format!("{id}@example.com"))
        .execute(pool)
        .await
        .unwrap();
    if let Some(zone) = timezone {
        sqlx::query("INSERT INTO user_profiles (user_id, timezone) VALUES ($1, $2)")
            .bind(id)
            .bind(zone)
            .execute(pool)
            .await
            .unwrap();
    }
    id
}

/// The report as the job computes it: inside a transaction scoped to `user` by row-level security.
pub(crate) async fn report(pool: &PgPool, user: Uuid, spec: &ReportSpec) -> anyhow::Result<Value> {
    let mut tx = begin_as_user(pool, user).await?;
    let content = kinds::compute(&mut tx, user, spec).await;
    tx.rollback().await?;
    content
}

/// A questionnaire submission: `[income, expenses, savings, debt, emergency fund]` as decimal text.
pub(crate) async fn submission(
    pool: &PgPool,
    user: Uuid,
    submitted_at: &str,
    amounts: [&str; 5],
    score: Option<i16>,
) {
    let level = score.map(|s| if s >= 60 { "good" } else { "fair" });
    sqlx::query(
        "INSERT INTO financial_questionnaire_submissions
             (user_id, submitted_at, monthly_income, monthly_expenses, current_savings, total_debt,
              emergency_fund, financial_health_score, financial_health_level)
         VALUES ($1, $2::timestamptz, $3::numeric, $4::numeric, $5::numeric, $6::numeric, $7::numeric, $8, $9)",
    )
    .bind(user)
    .bind(submitted_at)
    .bind(amounts[0])
    .bind(amounts[1])
    .bind(amounts[2])
    .bind(amounts[3])
    .bind(amounts[4])
    .bind(score)
    .bind(level)
    .execute(pool)
    .await
    .unwrap();
}

/// A check-in: stress, energy, mood, then sleep hours, activity and mindfulness minutes (optional).
pub(crate) async fn checkin(
    pool: &PgPool,
    user: Uuid,
    date: &str,
    [stress, energy, mood]: [i16; 3],
    sleep: Option<&str>,
    activity: Option<i32>,
    mindfulness: Option<i32>,
) {
    sqlx::query(
        "INSERT INTO user_health_checkins
             (user_id, checkin_date, stress_level, energy_level, mood_rating, sleep_hours,
              physical_activity_minutes, mindfulness_minutes)
         VALUES ($1, $2, $3, $4, $5, $6::numeric, $7, $8)",
    )
    .bind(user)
    .bind(day(date))
    .bind(stress)
    .bind(energy)
    .bind(mood)
    .bind(sleep)
    .bind(activity)
    .bind(mindfulness)
    .execute(pool)
    .await
    .unwrap();
}

/// A goal as inserted; timestamps and amounts as text, `None` for NULL.
#[derive(Clone, Copy)]
pub(crate) struct NewGoal<'a> {
    pub title: &'a str,
    pub category: &'a str,
    pub target_amount: Option<&'a str>,
    pub current_amount: &'a str,
    pub progress: &'a str,
    pub target_date: Option<&'a str>,
    pub created_at: &'a str,
    pub completed_at: Option<&'a str>,
    pub abandoned_at: Option<&'a str>,
}

pub(crate) const GOAL: NewGoal<'static> = NewGoal {
    title: "A goal",
    category: "other",
    target_amount: None,
    current_amount: "0",
    progress: "0",
    target_date: None,
    created_at: "2024-01-01T00:00:00Z",
    completed_at: None,
    abandoned_at: None,
};

pub(crate) async fn goal(pool: &PgPool, user: Uuid, g: NewGoal<'_>) -> Uuid {
    let status = match (g.completed_at, g.abandoned_at) {
        (Some(_), _) => "completed",
        (_, Some(_)) => "abandoned",
        _ => "active",
    };
    sqlx::query_scalar(
        "INSERT INTO goals (user_id, title, category, target_amount, current_amount, progress_percentage,
                            target_date, status, created_at, completed_at, abandoned_at)
         VALUES ($1, $2, $3, $4::numeric, $5::numeric, $6::numeric, $7, $8,
                 $9::timestamptz, $10::timestamptz, $11::timestamptz)
         RETURNING id",
    )
    .bind(user)
    .bind(g.title)
    .bind(g.category)
    .bind(g.target_amount)
    .bind(g.current_amount)
    .bind(g.progress)
    .bind(g.target_date.map(day))
    .bind(status)
    .bind(g.created_at)
    .bind(g.completed_at)
    .bind(g.abandoned_at)
    .fetch_one(pool)
    .await
    .unwrap()
}
