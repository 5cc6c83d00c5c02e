//! Synthetic users and activity at a given scale, generated inside PostgreSQL (`generate_series` in
//! chunks of users, a few statements per chunk), for tests, benchmarks and demos.
//!
//! Deterministic: every random choice is a hash of (seed, user number, day, …) (`hashint8extended`), not
//! `random()`, so a seed always produces the same data whatever the chunking or parallelism. A seed can be
//! generated once per database (user ids and e-mails derive from it); use another seed to add more users.
//! Nothing a user does is dated before their account: activity starts the second day after joining (so
//! no zone's local morning precedes it), questionnaires and goals a day after.
//!
//! What a user looks like: an account created up to two years before the window (5 % join during it), a
//! profile (97 %) in a US-heavy mix of time zones, a financial questionnaire before the window (85 %) and a
//! second one during it (25 %), 0–3 goals (some completed or abandoned), and each day — in their own zone,
//! after they joined — a chance (their engagement, 5–60 %) of one or two sessions with a login, 0–3
//! features used and 1–6 pages viewed between 07:00 and 23:30, and a chance (5–40 %) of a check-in.

use std::time::{Duration, Instant};

use chrono::{Days, NaiveDate};
use futures::stream::{self, StreamExt, TryStreamExt};
use serde::Serialize;
use sqlx::PgPool;

use super::partitions;

#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub users: u64,
    pub days: u32,
    pub seed: i64,
    /// The last day with activity (UTC calendar day); the window is the `days` days ending on it.
    pub end: NaiveDate,
    pub chunk_users: u64,
    /// Statements in flight at once.
    pub parallel: usize,
}

impl Options {
    pub fn start(&self) -> NaiveDate {
        self.end - Days::new(u64::from(self.days.max(1)) - 1)
    }
}

/// Where the generator is, for a progress bar.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub phase: &'static str,
    pub done: u64,
    pub total: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub users: u64,
    pub profiles: u64,
    pub questionnaires: u64,
    pub goals: u64,
    pub checkins: u64,
    pub events: u64,
    #[serde(skip)]
    pub elapsed: Duration,
}

/// A uniform number in [0, 1) from a key expression and a salt (the seed is `$1`).
fn r(key: &str, salt: u32) -> String {
    format!("((hashint8extended(({key}) * 64 + {salt}, $1) & 2147483647)::float8 / 2147483648.0)")
}

const USER_ID: &str = "md5('mingus-gen:' || $1 || ':' || i)::uuid";

const ZONES: &str = "ARRAY['America/New_York','America/New_York','America/New_York','America/New_York',\
    'America/Chicago','America/Chicago','America/Chicago','America/Denver','America/Phoenix',\
    'America/Los_Angeles','America/Los_Angeles','America/Los_Angeles','America/Anchorage',\
    'Pacific/Honolulu','UTC','Europe/London','Asia/Kolkata','Australia/Sydney']";
const ZONE_COUNT: u32 = 18;

const FEATURES: &str = "ARRAY['budget_planner','cash_flow_forecast','debt_payoff_planner','expense_tracker',\
    'goal_tracker','health_checkin','investment_overview','job_security_score','net_worth',\
    'reports','savings_calculator','wellness_insights']";
const FEATURE_COUNT: u32 = 12;

const PAGES: &str = "ARRAY['/dashboard','/budget','/cash-flow','/goals','/goals/new','/wellness',\
    '/wellness/checkin','/reports','/settings','/profile','/debts','/investments','/insights',\
    '/billing','/help']";
const PAGE_COUNT: u32 = 15;

/// Day offset (relative to the window's first day) on which user `i` joined: 5 % during the window,
/// the others up to two years before it. $5 = days.
fn join_day() -> String {
    format!(
        "(CASE WHEN {} < 0.05 THEN floor({} * $5)::int ELSE -1 - floor({} * 730)::int END)",
        r("i", 1),
        r("i", 2),
        r("i", 3)
    )
}

fn zone() -> String {
    format!("({ZONES})[1 + floor({} * {ZONE_COUNT})::int]", r("i", 5))
}

/// $1 seed, $2/$3 first/last user number, $4 window start, $5 days.
fn users_sql() -> String {
    format!(
        "INSERT INTO users (id, email, full_name, created_at, updated_at)
         SELECT {USER_ID}, 'gen' || $1 || '-' || i || '@example.com', 'Generated User ' || i, t, t
         FROM generate_series($2::bigint, $3::bigint) i
         CROSS JOIN LATERAL (SELECT ($4::date + {join})::timestamp AT TIME ZONE 'UTC'
                                    + {frac} * interval '86399 seconds' AS t) c",
        join = join_day(),
        frac = r("i", 4),
    )
}

fn income() -> String {
    format!("(1500 + power({}, 2) * 18000)", r("i", 7))
}

fn profiles_sql() -> String {
    format!(
        "INSERT INTO user_profiles (user_id, first_name, last_name, monthly_income, household_size,
                                    employment_status, timezone, is_complete)
         SELECT {USER_ID},
                (ARRAY['Alex','Sam','Jordan','Taylor','Morgan','Casey','Jamie','Riley'])[1 + floor({a} * 8)::int],
                'Example', round(({income})::numeric, 2), 1 + floor({b} * 5)::int,
                (ARRAY['employed','self_employed','part_time','student','unemployed'])[1 + floor({c} * 5)::int],
                {zone}, true
         FROM generate_series($2::bigint, $3::bigint) i
         WHERE {has_profile} >= 0.03",
        a = r("i", 23),
        b = r("i", 24),
        c = r("i", 25),
        income = income(),
        zone = zone(),
        has_profile = r("i", 6),
    )
}

fn questionnaires_sql() -> String {
    let expenses = format!("({} * (0.55 + {} * 0.6))", income(), r("i", 8));
    format!(
        "INSERT INTO financial_questionnaire_submissions
             (user_id, monthly_income, monthly_expenses, current_savings, total_debt, emergency_fund,
              risk_tolerance, submitted_at)
         SELECT {USER_ID}, round(inc::numeric, 2), round(least(exp * drift, 1000000)::numeric, 2),
                round((fund * 1.5)::numeric, 2), round(debt::numeric, 2), round(fund::numeric, 2),
                1 + floor({risk} * 10)::int,
                greatest(at, ($4::date + {join})::timestamp AT TIME ZONE 'UTC' + interval '1 day')
         FROM generate_series($2::bigint, $3::bigint) i
         CROSS JOIN LATERAL generate_series(1, 2) q
         CROSS JOIN LATERAL (SELECT {income} AS inc, {expenses} AS exp,
                 CASE WHEN {no_debt} < 0.3 THEN 0 ELSE power({debt}, 2) * 120000 END AS debt,
                 {expenses} * power({fund}, 2) * 8 * CASE WHEN q = 2 THEN 1.1 ELSE 1 END AS fund,
                 CASE WHEN q = 2 THEN 0.9 + {drift} * 0.2 ELSE 1 END AS drift,
                 CASE WHEN q = 1
                      THEN ($4::date)::timestamp AT TIME ZONE 'UTC' - (1 + {before} * 180) * interval '1 day'
                      ELSE ($4::date)::timestamp AT TIME ZONE 'UTC' + {during} * $5 * interval '1 day' END AS at) v
         WHERE (q = 1 AND {first} < 0.85) OR (q = 2 AND {second} < 0.25)",
        income = income(),
        no_debt = r("i", 9),
        debt = r("i", 10),
        fund = r("i", 11),
        drift = r("i", 12),
        first = r("i", 13),
        second = r("i", 14),
        before = r("i", 26),
        during = r("i", 27),
        risk = r("i", 28),
        join = join_day(),
    )
}

fn goals_sql() -> String {
    let k = "(i * 4 + g)";
    format!(
        "INSERT INTO goals (user_id, title, category, target_amount, current_amount, progress_percentage,
                           status, created_at, completed_at, abandoned_at, updated_at)
         SELECT uid, initcap(replace(category, '_', ' ')) || ' goal', category, target,
                round(target * progress / 100, 2), progress, status, created, done, dropped,
                coalesce(done, dropped, created)
         FROM (
             SELECT {USER_ID} AS uid, i, g,
                    (ARRAY['savings','debt_payoff','emergency_fund','investment','retirement','wellness','other'])
                        [1 + floor({cat} * 7)::int] AS category,
                    round((500 + {target} * 20000)::numeric, 2) AS target,
                    greatest(($4::date)::timestamp AT TIME ZONE 'UTC' + ({created} * ($5 + 60) - 60) * interval '1 day',
                             ($4::date + {join})::timestamp AT TIME ZONE 'UTC' + interval '1 day') AS created,
                    {fate} AS fate, {after} AS after
             FROM generate_series($2::bigint, $3::bigint) i
             CROSS JOIN LATERAL generate_series(1, floor({count} * 4)::int) g
         ) base
         CROSS JOIN LATERAL (
             SELECT CASE WHEN fate < 0.25 THEN created + after * 60 * interval '1 day' END AS done_at,
                    CASE WHEN fate >= 0.25 AND fate < 0.30 THEN created + after * 30 * interval '1 day' END AS dropped_at,
                    ($4::date + $5)::timestamp AT TIME ZONE 'UTC' AS window_end
         ) t
         CROSS JOIN LATERAL (
             SELECT CASE WHEN done_at < window_end THEN done_at END AS done,
                    CASE WHEN dropped_at < window_end THEN dropped_at END AS dropped
         ) d
         CROSS JOIN LATERAL (
             SELECT CASE WHEN done IS NOT NULL THEN 'completed' WHEN dropped IS NOT NULL THEN 'abandoned'
                         ELSE 'active' END AS status,
                    CASE WHEN done IS NOT NULL THEN 100
                         WHEN dropped IS NOT NULL THEN round((after * 50)::numeric, 2)
                         ELSE round((after * 95)::numeric, 2) END AS progress
         ) s",
        count = r("i", 15),
        cat = r(k, 16),
        target = r(k, 17),
        created = r(k, 18),
        fate = r(k, 19),
        after = r(k, 20),
        join = join_day(),
    )
}

/// $6 = the day's offset in the window.
fn checkins_sql() -> String {
    let k = "(i * 512 + $6)";
    format!(
        "INSERT INTO user_health_checkins (user_id, checkin_date, stress_level, energy_level, mood_rating,
                                           sleep_hours, physical_activity_minutes)
         SELECT {USER_ID}, $4::date + $6::int, 1 + floor({s} * 10)::int, 1 + floor({e} * 10)::int,
                1 + floor({m} * 10)::int, round((4 + {sleep} * 5)::numeric, 1), floor({act} * 90)::int
         FROM generate_series($2::bigint, $3::bigint) i
         WHERE $6::int >= {join} + 2 AND {chance} < 0.05 + 0.35 * {habit}",
        s = r(k, 30),
        e = r(k, 31),
        m = r(k, 32),
        sleep = r(k, 33),
        act = r(k, 34),
        chance = r(k, 35),
        habit = r("i", 21),
        join = join_day(),
    )
}

fn events_sql() -> String {
    let day_key = "(p.i * 512 + $6)";
    let k = "s.k";
    format!(
        "WITH people AS (
             SELECT i, {USER_ID} AS uid, {zone} AS zone
             FROM generate_series($2::bigint, $3::bigint) i
             WHERE $6::int >= {join} + 2 AND {active} < 0.05 + 0.55 * {engagement}
         ),
         sessions AS (
             SELECT p.uid, ({day_key} * 4 + n) AS k,
                    ((($4::date + $6::int)::timestamp
                        + (25200 + floor({start} * 54000)) * interval '1 second') AT TIME ZONE p.zone) AS login_at,
                    (1 + floor({length} * 60))::int AS minutes
             FROM people p
             CROSS JOIN LATERAL generate_series(1, 1 + ({second} < 0.3)::int) n
         )
         INSERT INTO activity_events (user_id, occurred_at, kind, session_minutes, feature, page)
         SELECT uid, login_at, 'login', NULL::int, NULL::text, NULL::text FROM sessions
         UNION ALL
         SELECT uid, login_at + minutes * interval '1 minute', 'session_end', minutes, NULL, NULL FROM sessions
         UNION ALL
         SELECT uid, login_at + {f_at} * minutes * interval '1 minute', 'feature_used', NULL,
                ({FEATURES})[1 + floor({f_pick} * {FEATURE_COUNT})::int], NULL
         FROM sessions s CROSS JOIN LATERAL generate_series(1, floor({f_count} * 4)::int) f
         UNION ALL
         SELECT uid, login_at + {p_at} * minutes * interval '1 minute', 'page_view', NULL, NULL,
                ({PAGES})[1 + floor({p_pick} * {PAGE_COUNT})::int]
         FROM sessions s CROSS JOIN LATERAL generate_series(1, 1 + floor({p_count} * 6)::int) g",
        zone = zone(),
        join = join_day(),
        active = r("(i * 512 + $6)", 40),
        engagement = r("i", 22),
        start = r(&format!("{day_key} * 4 + n"), 41),
        length = r(&format!("{day_key} * 4 + n"), 42),
        second = r(day_key, 43),
        f_at = r(&format!("{k} * 16 + f"), 44),
        f_pick = r(&format!("{k} * 16 + f"), 45),
        f_count = r(k, 46),
        p_at = r(&format!("{k} * 16 + g"), 47),
        p_pick = r(&format!("{k} * 16 + g"), 48),
        p_count = r(k, 49),
    )
}

/// The id of generated user `i` (1-based) of `seed`.
pub async fn user_id(pool: &PgPool, seed: i64, i: i64) -> Result<uuid::Uuid, sqlx::Error> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT {USER_ID} FROM (SELECT $2::bigint AS i) x"
    )))
    .bind(seed)
    .bind(i)
    .fetch_one(pool)
    .await
}

struct Chunk {
    first: i64,
    last: i64,
}

async fn run_chunk(
    pool: &PgPool,
    statements: &[String],
    options: &Options,
    chunk: &Chunk,
    day: Option<i32>,
) -> anyhow::Result<Vec<u64>> {
    let mut tx = pool.begin().await?;
    // Generated data can be generated again: no need to wait for the WAL flush on every chunk.
    // generate_series' row estimates are wild (1,000 per call), which turns JIT compilation on at
    // -O3 for statements that run in milliseconds: off.
    sqlx::query(
        "SELECT set_config('synchronous_commit', 'off', true), set_config('jit', 'off', true)",
    )
    .execute(&mut *tx)
    .await?;
    let mut counts = Vec::with_capacity(statements.len());
    for sql in statements {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .bind(options.seed)
            .bind(chunk.first)
            .bind(chunk.last)
            .bind(options.start())
            .bind(options.days as i32);
        if let Some(day) = day {
            query = query.bind(day);
        }
        counts.push(query.execute(&mut *tx).await?.rows_affected());
    }
    tx.commit().await?;
    Ok(counts)
}

/// Generates `options.users` users with `options.days` days of activity ending on `options.end`.
pub async fn generate(
    pool: &PgPool,
    options: Options,
    on_progress: impl Fn(Progress),
) -> anyhow::Result<Report> {
    anyhow::ensure!(
        (1..=10_000_000).contains(&options.users),
        "users must be 1–10,000,000"
    );
    anyhow::ensure!((1..=400).contains(&options.days), "days must be 1–400");
    let started = Instant::now();
    let first_id = user_id(pool, options.seed, 1).await?;
    let taken: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)")
        .bind(first_id)
        .fetch_one(pool)
        .await?;
    anyhow::ensure!(
        !taken,
        "this database already holds the users of seed {}; pass another --seed",
        options.seed
    );
    let start = options.start();
    let months = partitions::Options::new(options.end);
    // History outside the premade months gets partitions of its own (events may fall a day either side
    // of the window in far zones).
    for table in ["activity_events", "user_health_checkins"] {
        partitions::ensure_months(
            pool,
            table,
            start - Days::new(1),
            options.end + Days::new(1),
            months,
        )
        .await?;
    }
    partitions::ensure_months(pool, "user_analytics", start, options.end, months).await?;

    let chunk_users = options.chunk_users.max(1);
    let chunks: Vec<Chunk> = (0..options.users.div_ceil(chunk_users))
        .map(|c| Chunk {
            first: (c * chunk_users + 1) as i64,
            last: ((c + 1) * chunk_users).min(options.users) as i64,
        })
        .collect();
    let total = chunks.len() as u64 * (1 + u64::from(options.days));
    let mut done = 0;
    let mut report = Report::default();
    let parallel = options.parallel.max(1);

    let people = [
        users_sql(),
        profiles_sql(),
        questionnaires_sql(),
        goals_sql(),
    ];
    let mut results = stream::iter(&chunks)
        .map(|chunk| run_chunk(pool, &people, &options, chunk, None))
        .buffer_unordered(parallel);
    while let Some(counts) = results.try_next().await? {
        report.users += counts[0];
        report.profiles += counts[1];
        report.questionnaires += counts[2];
        report.goals += counts[3];
        done += 1;
        on_progress(Progress {
            phase: "users",
            done,
            total,
        });
    }
    drop(results);

    // Day by day, so each day's events are stored together (the rollup reads one day).
    let daily = [events_sql(), checkins_sql()];
    for day in 0..options.days as i32 {
        let mut results = stream::iter(&chunks)
            .map(|chunk| run_chunk(pool, &daily, &options, chunk, Some(day)))
            .buffer_unordered(parallel);
        while let Some(counts) = results.try_next().await? {
            report.events += counts[0];
            report.checkins += counts[1];
            done += 1;
            on_progress(Progress {
                phase: "activity",
                done,
                total,
            });
        }
    }
    for table in [
        "users",
        "user_profiles",
        "financial_questionnaire_submissions",
        "goals",
        "user_health_checkins",
        "activity_events",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(format!("ANALYZE {table}")))
            .execute(pool)
            .await?;
    }
    report.elapsed = started.elapsed();
    Ok(report)
}
