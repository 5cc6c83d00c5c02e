//! The daily `user_analytics` rollup, its jobs, the data generator and `/ops/db`, end to end; and the
//! random data sets (users in many zones, activity around a day) the property test compares with the
//! plain Rust computation of `mingus_bench::analytics_reference`.

mod generate;
mod jobs;
mod ops_db;
mod rollup;

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use mingus_bench::analytics_reference::{
    self as reference, Checkin, Event, Goal, Questionnaire, UserData,
};
use rand::Rng;
use rand::rngs::StdRng;
use rust_decimal::Decimal;
use sqlx::PgPool;
use uuid::Uuid;

/// Zones of the random users: both ends of the offset range, half-hour offsets, DST zones, and names
/// that are not zones (treated as UTC). `None` = no profile at all; `Some(None)` = a profile without zone.
const ZONES: &[Option<Option<&str>>] = &[
    None,
    Some(None),
    Some(Some("UTC")),
    Some(Some("America/New_York")),
    Some(Some("America/Los_Angeles")),
    Some(Some("Asia/Tokyo")),
    Some(Some("Asia/Kolkata")),
    Some(Some("Australia/Adelaide")),
    Some(Some("Pacific/Kiritimati")),
    Some(Some("Etc/GMT+12")),
    Some(Some("Europe/London")),
    Some(Some("Mars/Olympus_Mons")),
    Some(Some("")),
];

const FEATURES: &[&str] = &["budget_planner", "budgets", "Goals", "net_worth", "reports"];
const PAGES: &[&str] = &["/dashboard", "/goals", "/goals/new", "/wellness", "/Budget"];

/// A user as inserted: the reference's view plus whether a profile row exists.
pub(crate) struct RandomUser {
    pub data: UserData,
    pub has_profile: bool,
}

fn at(date: NaiveDate) -> DateTime<Utc> {
    date.and_time(NaiveTime::MIN).and_utc()
}

fn money(rng: &mut StdRng, max_cents: i64) -> Decimal {
    if rng.random_bool(0.15) {
        return Decimal::ZERO;
    }
    Decimal::new(rng.random_range(0..=max_cents), 2)
}

fn around(rng: &mut StdRng, date: NaiveDate, before_h: i64, after_h: i64) -> DateTime<Utc> {
    at(date) + Duration::seconds(rng.random_range(-before_h * 3600..after_h * 3600))
}

/// A random user with activity around `date` (a few days either side, so each zone's day is exercised).
pub(crate) fn random_user(rng: &mut StdRng, date: NaiveDate) -> RandomUser {
    let zone = ZONES[rng.random_range(0..ZONES.len())];
    let created_at = around(rng, date, 24 * 30, 48);
    let events = (0..rng.random_range(0..25))
        .map(|_| {
            let kind =
                ["login", "session_end", "feature_used", "page_view"][rng.random_range(0..4)];
            Event {
                occurred_at: around(rng, date, 20, 44),
                kind: kind.to_owned(),
                session_minutes: (kind == "session_end").then(|| rng.random_range(0..300)),
                feature: (kind == "feature_used")
                    .then(|| FEATURES[rng.random_range(0..FEATURES.len())].to_owned()),
                page: (kind == "page_view")
                    .then(|| PAGES[rng.random_range(0..PAGES.len())].to_owned()),
            }
        })
        .collect();
    let mut checkins = Vec::new();
    for offset in [-1i64, 0, 1] {
        if rng.random_bool(0.5) {
            checkins.push(Checkin {
                date: date + Duration::days(offset),
                stress: rng.random_range(1..=10),
                energy: rng.random_range(1..=10),
                mood: rng.random_range(1..=10),
            });
        }
    }
    let questionnaires = (0..rng.random_range(0..4))
        .map(|_| Questionnaire {
            id: Uuid::new_v4(),
            submitted_at: around(rng, date, 72, 72),
            income: money(rng, 2_000_000),
            expenses: money(rng, 2_000_000),
            debt: money(rng, 50_000_000),
            emergency_fund: money(rng, 10_000_000),
        })
        .collect();
    let goals = (0..rng.random_range(0..5))
        .map(|_| {
            let created_at = around(rng, date, 72, 48);
            let end = created_at + Duration::seconds(rng.random_range(0..4 * 86_400));
            let fate = rng.random_range(0..3);
            Goal {
                created_at,
                completed_at: (fate == 1).then_some(end),
                abandoned_at: (fate == 2).then_some(end),
                progress: Decimal::new(rng.random_range(0..=10_000), 2),
            }
        })
        .collect();
    RandomUser {
        data: UserData {
            user_id: Uuid::from_u128(rng.random()),
            created_at,
            timezone: zone.flatten().map(str::to_owned),
            events,
            checkins,
            questionnaires,
            goals,
        },
        has_profile: zone.is_some(),
    }
}

/// Inserts the users and everything they did, in one transaction.
pub(crate) async fn insert(pool: &PgPool, users: &[RandomUser]) {
    let mut tx = pool.begin().await.unwrap();
    for RandomUser {
        data: u,
        has_profile,
    } in users
    {
        sqlx::query("INSERT INTO users (id, email, created_at) VALUES ($1, $2, $3)")
            .bind(u.user_id)
            .bind(format!("{}@example.com", u.user_id))
            .bind(u.created_at)
            .execute(&mut *tx)
            .await
            .unwrap();
        if *has_profile {
            sqlx::query("INSERT INTO user_profiles (user_id, timezone) VALUES ($1, $2)")
                .bind(u.user_id)
                .bind(&u.timezone)
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        for e in &u.events {
            sqlx::query(
                "INSERT INTO activity_events (user_id, occurred_at, kind, session_minutes, feature, page)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(u.user_id)
            .bind(e.occurred_at)
            .bind(&e.kind)
            .bind(e.session_minutes)
            .bind(&e.feature)
            .bind(&e.page)
            .execute(&mut *tx)
            .await
            .unwrap();
        }
        for c in &u.checkins {
            sqlx::query(
                "INSERT INTO user_health_checkins (user_id, checkin_date, stress_level, energy_level, mood_rating)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(u.user_id)
            .bind(c.date)
            .bind(c.stress)
            .bind(c.energy)
            .bind(c.mood)
            .execute(&mut *tx)
            .await
            .unwrap();
        }
        for q in &u.questionnaires {
            sqlx::query(
                "INSERT INTO financial_questionnaire_submissions
                     (id, user_id, monthly_income, monthly_expenses, total_debt, emergency_fund, submitted_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(q.id)
            .bind(u.user_id)
            .bind(q.income)
            .bind(q.expenses)
            .bind(q.debt)
            .bind(q.emergency_fund)
            .bind(q.submitted_at)
            .execute(&mut *tx)
            .await
            .unwrap();
        }
        for g in &u.goals {
            let status = match (g.completed_at, g.abandoned_at) {
                (Some(_), _) => "completed",
                (_, Some(_)) => "abandoned",
                _ => "active",
            };
            sqlx::query(
                "INSERT INTO goals (user_id, title, progress_percentage, status, created_at, completed_at, abandoned_at)
                 VALUES ($1, 'A goal', $2, $3, $4, $5, $6)",
            )
            .bind(u.user_id)
            .bind(g.progress)
            .bind(status)
            .bind(g.created_at)
            .bind(g.completed_at)
            .bind(g.abandoned_at)
            .execute(&mut *tx)
            .await
            .unwrap();
        }
    }
    tx.commit().await.unwrap();
}

/// Asserts that the stored rows of `date` are exactly the reference's, user by user.
pub(crate) async fn assert_matches_reference(pool: &PgPool, users: &[RandomUser], date: NaiveDate) {
    let stored = reference::stored(pool, date).await.unwrap();
    let mut expected: Vec<(Uuid, reference::DayMetrics)> = users
        .iter()
        .filter_map(|u| reference::compute(&u.data, date).map(|m| (u.data.user_id, m)))
        .collect();
    expected.sort_by_key(|(id, _)| *id);
    for (id, metrics) in &expected {
        let Some((_, row)) = stored.iter().find(|(stored_id, _)| stored_id == id) else {
            let user = users.iter().find(|u| u.data.user_id == *id).unwrap();
            panic!("no row for {id} on {date}: {:?}", user.data);
        };
        if row != metrics {
            let user = users.iter().find(|u| u.data.user_id == *id).unwrap();
            panic!(
                "{date}, user {id} (zone {:?}):\n stored   {row:?}\n expected {metrics:?}\n data {:?}",
                user.data.timezone, user.data
            );
        }
    }
    assert_eq!(
        stored.len(),
        expected.len(),
        "one row per user who existed by the end of {date}, and no other"
    );
}
