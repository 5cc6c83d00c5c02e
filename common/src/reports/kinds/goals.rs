//! Goals progress: every goal that existed at some moment of the period — created before its end, and
//! not completed or abandoned before its start.
//!
//! A goal's `status` is its state **at the period's end** (completed or abandoned before it ends, else
//! active), so a report on a past period does not change when a goal is finished later. The table keeps
//! no history of amounts, so `current_amount` and the progress of goals still active are today's values;
//! a goal completed by the period's end counts as 100 % (as in the analytics rollup).
//!
//! `on_track`: for a completed goal with a target date, whether it was completed (local day) on or
//! before that date; for an active goal with a target date, whether its progress is at least the
//! `expected_progress_percentage` — the share of the days from its creation (local day) to its target
//! date that have passed by the period's last day (100 once the target date is reached: an active goal
//! past its target date is off track). `null` for abandoned goals and goals without a target date.
//!
//! Summary: counts by status and by category (every category, zeros included), goals created, completed
//! and abandoned during the period, the average progress of the goals not abandoned, on/off-track counts,
//! and the target and current amounts summed over the goals not abandoned that have a target amount.

use anyhow::Context;
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};
use sqlx::PgConnection;
use uuid::Uuid;

use super::Window;
use super::number::{MONEY_DP, decimal, fixed, mean, money};

/// The categories of `goals.valid_goal_category`.
const CATEGORIES: [&str; 7] = [
    "savings",
    "debt_payoff",
    "emergency_fund",
    "investment",
    "retirement",
    "wellness",
    "other",
];

#[derive(Debug, sqlx::FromRow)]
struct Goal {
    id: Uuid,
    title: String,
    category: String,
    target_amount: Option<Decimal>,
    current_amount: Decimal,
    progress_percentage: Decimal,
    target_date: Option<NaiveDate>,
    created_at: DateTime<Utc>,
    completed_at: Option<DateTime<Utc>>,
    abandoned_at: Option<DateTime<Utc>>,
    created_on: NaiveDate,
    completed_on: Option<NaiveDate>,
}

/// What the report says about one goal.
struct Assessed<'a> {
    goal: &'a Goal,
    status: &'static str,
    progress: Decimal,
    expected: Option<Decimal>,
    on_track: Option<bool>,
}

fn before(instant: Option<DateTime<Utc>>, end: DateTime<Utc>) -> Option<DateTime<Utc>> {
    instant.filter(|t| *t < end)
}

fn assess<'a>(w: &Window, goal: &'a Goal) -> Assessed<'a> {
    let hundred = Decimal::ONE_HUNDRED;
    let completed = before(goal.completed_at, w.end).is_some();
    let abandoned = before(goal.abandoned_at, w.end).is_some();
    let (status, progress) = match (completed, abandoned) {
        (true, _) => ("completed", hundred),
        (_, true) => ("abandoned", goal.progress_percentage.min(hundred)),
        _ => ("active", goal.progress_percentage.min(hundred)),
    };
    let (expected, on_track) = match (status, goal.target_date) {
        ("completed", Some(target)) => (None, goal.completed_on.map(|day| day <= target)),
        ("active", Some(target)) => {
            let total = (target - goal.created_on).num_days();
            let elapsed = (w.period.end - goal.created_on).num_days();
            let expected = if w.period.end >= target || total <= 0 {
                hundred
            } else {
                (Decimal::from(elapsed) * hundred / Decimal::from(total))
                    .clamp(Decimal::ZERO, hundred)
            };
            // Compared as shown, so the reader can check it from the two printed numbers.
            let expected = expected.round_dp_with_strategy(
                MONEY_DP,
                rust_decimal::RoundingStrategy::MidpointAwayFromZero,
            );
            (Some(expected), Some(progress >= expected))
        }
        _ => (None, None),
    };
    Assessed {
        goal,
        status,
        progress,
        expected,
        on_track,
    }
}

fn timestamp(instant: Option<DateTime<Utc>>) -> Value {
    json!(instant.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)))
}

fn row(w: &Window, a: &Assessed) -> Value {
    let g = a.goal;
    json!({
        "id": g.id,
        "title": g.title,
        "category": g.category,
        "status": a.status,
        "target_amount": money(g.target_amount),
        "current_amount": money(Some(g.current_amount)),
        "progress_percentage": fixed(a.progress, MONEY_DP),
        "target_date": g.target_date,
        "created_at": timestamp(Some(g.created_at)),
        "completed_at": timestamp(before(g.completed_at, w.end)),
        "abandoned_at": timestamp(before(g.abandoned_at, w.end)),
        "expected_progress_percentage": decimal(a.expected, MONEY_DP),
        "on_track": a.on_track,
    })
}

fn count_where(assessed: &[Assessed], keep: impl Fn(&Assessed) -> bool) -> usize {
    assessed.iter().filter(|a| keep(a)).count()
}

pub(super) async fn body(
    conn: &mut PgConnection,
    w: &Window,
) -> anyhow::Result<Map<String, Value>> {
    let goals: Vec<Goal> = sqlx::query_as(
        "SELECT id, title, category, target_amount, current_amount, progress_percentage, target_date,
                created_at, completed_at, abandoned_at,
                (created_at AT TIME ZONE $4)::date AS created_on,
                (completed_at AT TIME ZONE $4)::date AS completed_on
         FROM goals
         WHERE user_id = $1 AND created_at < $3
           AND (completed_at IS NULL OR completed_at >= $2)
           AND (abandoned_at IS NULL OR abandoned_at >= $2)
         ORDER BY created_at, id",
    )
    .bind(w.user_id)
    .bind(w.start)
    .bind(w.end)
    .bind(&w.timezone)
    .fetch_all(conn)
    .await
    .context("read the goals of the period")?;
    let assessed: Vec<Assessed> = goals.iter().map(|g| assess(w, g)).collect();
    let in_period = |t: Option<DateTime<Utc>>| t.is_some_and(|t| t >= w.start && t < w.end);
    let kept: Vec<&Assessed> = assessed
        .iter()
        .filter(|a| a.status != "abandoned")
        .collect();
    let with_target: Vec<&&Assessed> = kept
        .iter()
        .filter(|a| a.goal.target_amount.is_some())
        .collect();

    let by_status: Map<String, Value> = ["active", "completed", "abandoned"]
        .into_iter()
        .map(|s| {
            (
                s.to_owned(),
                json!(count_where(&assessed, |a| a.status == s)),
            )
        })
        .collect();
    let by_category: Map<String, Value> = CATEGORIES
        .into_iter()
        .map(|c| {
            (
                c.to_owned(),
                json!(count_where(&assessed, |a| a.goal.category == c)),
            )
        })
        .collect();
    let mut body = Map::new();
    body.insert("total_goals".into(), json!(assessed.len()));
    body.insert("by_status".into(), Value::Object(by_status));
    body.insert("by_category".into(), Value::Object(by_category));
    body.insert(
        "created_in_period".into(),
        json!(count_where(&assessed, |a| in_period(Some(
            a.goal.created_at
        )))),
    );
    body.insert(
        "completed_in_period".into(),
        json!(count_where(&assessed, |a| in_period(a.goal.completed_at))),
    );
    body.insert(
        "abandoned_in_period".into(),
        json!(count_where(&assessed, |a| in_period(a.goal.abandoned_at))),
    );
    body.insert(
        "average_progress_percentage".into(),
        decimal(mean(kept.iter().map(|a| a.progress)), MONEY_DP),
    );
    body.insert(
        "on_track".into(),
        json!(count_where(&assessed, |a| a.on_track == Some(true))),
    );
    body.insert(
        "off_track".into(),
        json!(count_where(&assessed, |a| a.on_track == Some(false))),
    );
    let sum =
        |pick: fn(&Goal) -> Decimal| with_target.iter().map(|a| pick(a.goal)).sum::<Decimal>();
    body.insert(
        "total_target_amount".into(),
        money(Some(sum(|g| g.target_amount.unwrap_or_default()))),
    );
    body.insert(
        "total_current_amount".into(),
        money(Some(sum(|g| g.current_amount))),
    );
    body.insert(
        "goals".into(),
        Value::Array(assessed.iter().map(|a| row(w, a)).collect()),
    );
    Ok(body)
}
