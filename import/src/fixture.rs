//! `mingus-admin sqlite-fixture --users N`: writes a development database as the Flask app left it,
//! with the dirt years of loose typing leave behind. Deterministic for a seed.
//!
//! Every kind of dirt appears in any file of 30 users or more (each is keyed to the user's index modulo
//! 30 or less, or to row counters), so small test files cover all of them:
//!
//! | dirt | where |
//! |---|---|
//! | e-mails differing only in case | user i ≡ 7 (mod 30) has user i−1's address in capitals |
//! | not an e-mail | user i ≡ 13 (mod 30) |
//! | rows pointing at missing users | 3 check-ins and 2 verification events of users 999001… |
//! | ZIP codes `1234`, `12345-`, `12345-6789`, `ABCDE` | by i mod 10 |
//! | incomes `52000.000000001`, `-5`, `1e9` | profiles i ≡ 5 (mod 10), 6, 16 (mod 30); questionnaires of users ≡ 8, 9 (mod 30) |
//! | `$4,500.00` as text money | profiles i ≡ 11 (mod 30) |
//! | dates `2025-01-05`, `01/05/2025`, `…T10:00:00+02:00`, unix seconds, SQLAlchemy's `… 10:00:00.000000` | rotating over rows |
//! | NULL where PostgreSQL says NOT NULL | every 97th check-in's stress level, every 23rd questionnaire's expenses, users' `is_active` (i ≡ 4 mod 9), reminders' `enabled` |
//! | invalid JSON | every 17th questionnaire's goals, every 19th verification event's data |
//! | emoji and NUL bytes in text | check-in notes (every 13th / 101st) |
//! | values outside the CHECK lists | gender `M` / `Female` / `Non-Binary`, relationship `It's complicated`, education `PhD`, event type `verify_succes` |
//! | no profile | user i ≡ 20 (mod 30) |

use std::path::Path;

use anyhow::{Context, bail};
use chrono::{Duration, NaiveDate, NaiveDateTime};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rusqlite::types::Value;
use rusqlite::{Connection, params};

use crate::source_schema::{BASE_DDL, DEMOGRAPHICS_DDL, REVISION_BASE, REVISION_DEMOGRAPHICS};

#[derive(Debug, Clone)]
pub struct FixtureOptions {
    pub users: u32,
    pub seed: u64,
    /// Daily check-ins per user (default a year of them: about 90 KB of SQLite per user in all, the
    /// seed's projection of 100 MB per 1,000 users).
    pub checkins_per_user: u32,
    /// The alembic revision to write (the first schema lacks the demographic fields).
    pub revision: &'static str,
}

impl FixtureOptions {
    pub fn new(users: u32) -> Self {
        FixtureOptions {
            users,
            seed: 1,
            checkins_per_user: 365,
            revision: REVISION_DEMOGRAPHICS,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct FixtureStats {
    pub users: u64,
    pub rows: u64,
    pub bytes: u64,
}

const FIRST: &[&str] = &[
    "ana", "ben", "carla", "dmitri", "eve", "farah", "gus", "hana", "ivan", "jo",
];
const LAST: &[&str] = &[
    "smith", "okafor", "nguyen", "garcia", "kowalski", "haddad", "lee", "silva",
];
const PHRASES: &[&str] = &[
    "Slept badly after a late shift",
    "long walk with the dog before work",
    "budget meeting went better than expected",
    "felt anxious about the credit card bill",
    "meditated for ten minutes in the morning",
    "kids had a school event, tired but happy",
    "skipped lunch, too many calls",
    "paid off the last of the car loan",
];
const RECOMMENDATIONS: &[&str] = &[
    "Build an emergency fund covering three to six months of essential expenses before investing more",
    "Consolidate high-interest credit card balances and pay the highest rate first (avalanche method)",
    "Automate a transfer to savings on payday so saving happens before spending",
    "Review subscriptions and recurring charges every quarter and cancel the ones you no longer use",
    "Increase your retirement contribution by one percent each year until you reach the employer match",
    "Keep your credit utilisation below thirty percent of your limits to protect your score",
];

fn when(base: NaiveDateTime, format_index: usize) -> Value {
    match format_index % 5 {
        0 => Value::Text(base.format("%Y-%m-%d %H:%M:%S%.6f").to_string()),
        1 => Value::Text(base.format("%m/%d/%Y").to_string()),
        2 => Value::Text(
            (base + Duration::hours(2))
                .format("%Y-%m-%dT%H:%M:%S+02:00")
                .to_string(),
        ),
        3 => Value::Integer(base.and_utc().timestamp()),
        _ => Value::Text(base.format("%Y-%m-%d").to_string()),
    }
}

fn start() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2024, 1, 1)
        .and_then(|d| d.and_hms_opt(9, 0, 0))
        .unwrap_or_default()
}

fn email(i: u32) -> String {
    let first = FIRST[i as usize % FIRST.len()];
    let last = LAST[i as usize % LAST.len()];
    format!("{first}.{last}{i}@example.com")
}

/// Writes a new file at `path` (refusing to overwrite one).
pub fn generate(path: &Path, options: &FixtureOptions) -> anyhow::Result<FixtureStats> {
    if path.exists() {
        bail!(
            "{} exists; the generator writes new files only",
            path.display()
        );
    }
    if options.users == 0 || options.users > 1_000_000 {
        bail!("--users must be between 1 and 1,000,000");
    }
    let mut conn =
        Connection::open(path).with_context(|| format!("cannot create {}", path.display()))?;
    // Python's sqlite3 leaves foreign keys unenforced; the bundled SQLite enforces them by default, and
    // the orphan rows are part of the dirt.
    conn.execute_batch(
        "PRAGMA foreign_keys = OFF; PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;",
    )?;
    conn.execute_batch(BASE_DDL)?;
    if options.revision == REVISION_DEMOGRAPHICS {
        conn.execute_batch(DEMOGRAPHICS_DDL)?;
    } else if options.revision != REVISION_BASE {
        bail!("unknown revision {}", options.revision);
    }
    conn.execute(
        "INSERT INTO alembic_version VALUES (?1)",
        [options.revision],
    )?;
    let mut rng = StdRng::seed_from_u64(options.seed);
    let mut stats = FixtureStats::default();
    let tx = conn.transaction()?;
    let mut counters = Counters::default();
    for i in 1..=options.users {
        write_user(&tx, &mut rng, options, i, &mut counters)?;
        stats.users += 1;
    }
    write_orphans(&tx, &mut counters)?;
    tx.commit()?;
    conn.execute_batch("PRAGMA journal_mode = DELETE;")?;
    drop(conn);
    stats.rows = counters.rows;
    stats.bytes = std::fs::metadata(path)?.len();
    Ok(stats)
}

#[derive(Default)]
struct Counters {
    checkin: u64,
    questionnaire: u64,
    event: u64,
    reminder: u64,
    rows: u64,
}

fn write_user(
    tx: &rusqlite::Transaction<'_>,
    rng: &mut StdRng,
    options: &FixtureOptions,
    i: u32,
    counters: &mut Counters,
) -> anyhow::Result<()> {
    let created = start() + Duration::minutes(i64::from(i) * 7);
    let address = match i % 30 {
        7 if i > 1 => email(i - 1).to_uppercase(),
        13 => format!("{}{i} at example.com", FIRST[i as usize % FIRST.len()]),
        _ => email(i),
    };
    let is_active = match i % 9 {
        4 => Value::Null,
        5 => Value::Text("yes".into()),
        _ => Value::Integer(1),
    };
    let name = format!(
        "{} {}",
        FIRST[i as usize % FIRST.len()],
        LAST[i as usize % LAST.len()]
    );
    tx.prepare_cached(
        "INSERT INTO users (id, email, password_hash, full_name, phone_number, is_active, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        i,
        address,
        format!("pbkdf2:sha256:600000${i:08x}$0123456789abcdef0123456789abcdef0123456789abcdef"),
        name,
        format!("+1555{:07}", i),
        is_active,
        when(created, i as usize),
        when(created + Duration::days(3), i as usize + 1),
    ])?;
    counters.rows += 1;
    if i % 30 != 20 {
        write_profile(tx, options, i, created)?;
        counters.rows += 1;
    }
    write_checkins(tx, rng, options, i, counters)?;
    write_questionnaires(tx, rng, i, counters)?;
    write_events(tx, rng, i, counters)?;
    write_reminders(tx, i, counters)?;
    Ok(())
}

fn write_profile(
    tx: &rusqlite::Transaction<'_>,
    options: &FixtureOptions,
    i: u32,
    created: NaiveDateTime,
) -> anyhow::Result<()> {
    let income = match (i % 10, i % 30) {
        (_, 6) => Value::Integer(-5),
        (_, 16) => Value::Real(1e9),
        (_, 11) => Value::Text("$4,500.00".into()),
        (5, _) => Value::Real(52000.000000001),
        _ => Value::Real(2500.0 + f64::from(i % 97) * 101.37),
    };
    tx.prepare_cached(
        "INSERT INTO user_profiles (id, user_id, monthly_income, income_frequency, primary_goal, goal_amount,
             goal_timeline_months, household_size, employment_status, current_savings, current_debt,
             is_complete, created_at, updated_at)
         VALUES (?1, ?2, ?3, 'monthly', 'emergency_fund', ?4, ?5, ?6, 'employed', ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        i,
        i,
        income,
        10000.0 + f64::from(i % 13) * 0.1,
        12 + i % 24,
        1 + i % 5,
        f64::from(i % 50) * 123.456,
        f64::from(i % 40) * 99.995,
        i % 2,
        when(created, i as usize + 2),
        when(created + Duration::days(1), i as usize + 3),
    ])?;
    if options.revision != REVISION_DEMOGRAPHICS {
        return Ok(());
    }
    let zip = match i % 10 {
        1 => Value::Text("1234".into()),
        2 => Value::Text("12345-".into()),
        3 => Value::Text("12345-6789".into()),
        4 => Value::Text("ABCDE".into()),
        6 => Value::Integer(2134),
        _ => Value::Text(format!("{:05}", 10000 + i % 89999)),
    };
    let gender = ["male", "female", "Female", "M", "Non-Binary", ""][i as usize % 6];
    let relationship = [
        "single",
        "married",
        "divorced",
        "It's complicated",
        "widowed",
        "domestic_partnership",
        "",
    ][i as usize % 7];
    let education = [
        "high_school",
        "some_college",
        "bachelors",
        "masters",
        "doctorate",
        "other",
        "PhD",
        "bachelors",
    ][i as usize % 8];
    tx.prepare_cached(
        "UPDATE user_profiles SET first_name = ?2, last_name = ?3, gender = ?4, zip_code = ?5, dependents = ?6,
             relationship_status = ?7, industry = 'healthcare', job_title = 'nurse', education_level = ?8,
             timezone = 'America/New_York' WHERE id = ?1",
    )?
    .execute(params![
        i,
        FIRST[i as usize % FIRST.len()],
        LAST[i as usize % LAST.len()],
        gender,
        zip,
        i % 4,
        relationship,
        education,
    ])?;
    Ok(())
}

fn write_checkins(
    tx: &rusqlite::Transaction<'_>,
    rng: &mut StdRng,
    options: &FixtureOptions,
    i: u32,
    counters: &mut Counters,
) -> anyhow::Result<()> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO user_health_checkins (user_id, checkin_date, stress_level, energy_level, mood_rating,
             sleep_hours, physical_activity_minutes, physical_activity_level, relationships_rating,
             relationships_notes, mindfulness_minutes, mindfulness_type, notes, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    )?;
    let first_day = NaiveDate::from_ymd_opt(2025, 1, 1).unwrap_or_default();
    for day in 0..options.checkins_per_user {
        counters.checkin += 1;
        let n = counters.checkin;
        let date = first_day + Duration::days(i64::from(day));
        let at = date.and_hms_opt(21, 0, 0).unwrap_or_default();
        let checkin_date = match n % 4 {
            0 => Value::Text(date.format("%Y-%m-%d").to_string()),
            1 => Value::Text(date.format("%m/%d/%Y").to_string()),
            2 => Value::Text(format!("{}T21:00:00-05:00", date.format("%Y-%m-%d"))),
            _ => Value::Integer(
                date.and_hms_opt(12, 0, 0)
                    .unwrap_or_default()
                    .and_utc()
                    .timestamp(),
            ),
        };
        let stress = if n % 97 == 3 {
            Value::Null
        } else {
            Value::Integer(rng.random_range(1..=10))
        };
        let mut notes = format!(
            "{}; {}",
            PHRASES[rng.random_range(0..PHRASES.len())],
            PHRASES[rng.random_range(0..PHRASES.len())]
        );
        if n.is_multiple_of(13) {
            notes.push_str(" 😀🙏");
        }
        if n % 101 == 5 {
            notes.push_str("\0(pasted)");
        }
        insert.execute(params![
            i,
            checkin_date,
            stress,
            rng.random_range(1..=10),
            rng.random_range(1..=10),
            f64::from(rng.random_range(300..=900u32)) / 60.0,
            rng.random_range(0..=120),
            ["sedentary", "light", "moderate", "vigorous"][rng.random_range(0..4)],
            rng.random_range(1..=10),
            "called mum, dinner with friends",
            rng.random_range(0..=30),
            "breathing",
            notes,
            when(at, n as usize),
            when(at, n as usize + 1),
        ])?;
        counters.rows += 1;
    }
    Ok(())
}

fn write_questionnaires(
    tx: &rusqlite::Transaction<'_>,
    rng: &mut StdRng,
    i: u32,
    counters: &mut Counters,
) -> anyhow::Result<()> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO financial_questionnaire_submissions (user_id, monthly_income, monthly_expenses,
             current_savings, total_debt, emergency_fund, risk_tolerance, financial_goals,
             financial_health_score, financial_health_level, recommendations, submitted_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?;
    for month in 0..12u32 {
        counters.questionnaire += 1;
        let n = counters.questionnaire;
        let income = match (month, i % 30) {
            (0, 8) => Value::Integer(-5),
            (0, 9) => Value::Real(1e9),
            _ => Value::Real(3000.0 + f64::from(rng.random_range(0..400_000u32)) / 100.0),
        };
        let expenses = if n % 23 == 4 {
            Value::Null
        } else {
            Value::Real(f64::from(rng.random_range(100_000..300_000u32)) / 100.0 + 0.001)
        };
        let goals = if n % 17 == 3 {
            "[\"save for a house\", oops".to_owned()
        } else {
            r#"["emergency_fund", "pay_off_debt", "retirement"]"#.to_owned()
        };
        let picked: Vec<&str> = (0..5)
            .map(|k| RECOMMENDATIONS[(n as usize + k) % RECOMMENDATIONS.len()])
            .collect();
        let submitted = NaiveDate::from_ymd_opt(2025, 1 + month, 1 + i % 28)
            .and_then(|d| d.and_hms_opt(18, 30, 0))
            .unwrap_or_default();
        insert.execute(params![
            i,
            income,
            expenses,
            f64::from(rng.random_range(0..5_000_000u32)) / 100.0,
            f64::from(rng.random_range(0..3_000_000u32)) / 100.0,
            f64::from(rng.random_range(0..1_000_000u32)) / 100.0,
            rng.random_range(1..=10),
            goals,
            rng.random_range(0..=100),
            ["critical", "poor", "fair", "good", "excellent"][rng.random_range(0..5)],
            serde_json::to_string(&picked)?,
            when(submitted, n as usize),
        ])?;
        counters.rows += 1;
    }
    Ok(())
}

fn write_events(
    tx: &rusqlite::Transaction<'_>,
    rng: &mut StdRng,
    i: u32,
    counters: &mut Counters,
) -> anyhow::Result<()> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO verification_analytics (user_id, event_type, event_data, created_at) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for k in 0..30u32 {
        counters.event += 1;
        let n = counters.event;
        let kind = if n % 53 == 1 {
            "verify_succes"
        } else {
            [
                "send_code",
                "verify_success",
                "verify_failed",
                "resend_request",
                "change_phone",
            ][k as usize % 5]
        };
        let data = if n % 19 == 2 {
            r#"{"channel": "sms", "attempt": "#.to_owned()
        } else {
            format!(
                r#"{{"channel": "sms", "attempt": {}, "carrier": "T-Mobile", "ip": "203.0.113.{}", "user_agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X)"}}"#,
                1 + k % 3,
                rng.random_range(1..=254)
            )
        };
        let at = start() + Duration::minutes(i64::from(i) * 7 + i64::from(k) * 1440);
        insert.execute(params![i, kind, data, when(at, n as usize)])?;
        counters.rows += 1;
    }
    Ok(())
}

fn write_reminders(
    tx: &rusqlite::Transaction<'_>,
    i: u32,
    counters: &mut Counters,
) -> anyhow::Result<()> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO reminder_schedules (user_id, reminder_type, scheduled_date, frequency, enabled, preferences,
             message, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    for (k, kind) in [
        "health_checkin",
        "financial_questionnaire",
        "goal_review",
        "budget_review",
    ]
    .iter()
    .enumerate()
    {
        counters.reminder += 1;
        let n = counters.reminder;
        let at = NaiveDate::from_ymd_opt(2026, 1, 1)
            .and_then(|d| d.and_hms_opt(14, 0, 0))
            .unwrap_or_default()
            + Duration::days(k as i64);
        let enabled = if i.is_multiple_of(5) && k == 0 {
            Value::Null
        } else {
            Value::Integer(1)
        };
        insert.execute(params![
            i,
            kind,
            when(at, n as usize),
            ["daily", "Weekly", "monthly", "once"][k],
            enabled,
            r#"{"channel": "email"}"#,
            "Time for your check-in ✨",
            when(at - Duration::days(30), n as usize),
            when(at - Duration::days(30), n as usize + 1),
        ])?;
        counters.rows += 1;
    }
    Ok(())
}

fn write_orphans(tx: &rusqlite::Transaction<'_>, counters: &mut Counters) -> anyhow::Result<()> {
    for k in 1..=3u32 {
        tx.execute(
            "INSERT INTO user_health_checkins (user_id, checkin_date, stress_level, energy_level, mood_rating)
             VALUES (?1, '2025-03-01', 5, 5, 5)",
            [999_000 + k],
        )?;
        counters.rows += 1;
    }
    for k in 1..=2u32 {
        tx.execute(
            "INSERT INTO verification_analytics (user_id, event_type, event_data, created_at)
             VALUES (?1, 'send_code', '{}', '2025-03-01 10:00:00')",
            [999_100 + k],
        )?;
        counters.rows += 1;
    }
    Ok(())
}
