//! Firing ticks exactly once across replicas, manual runs, and the status operators see.

use chrono::{DateTime, NaiveDateTime, SubsecRound, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::ticks::{self, Due};
use super::{CronTable, Schedule, Tick};
use crate::jobs::{Enqueuer, outbox};
use crate::queue::Queue;

/// One run of a schedule that this call created (its job is staged in the outbox and was pushed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CronRun {
    pub run_id: Uuid,
    pub schedule: String,
    pub tick_local: NaiveDateTime,
    pub tick_at: DateTime<Utc>,
    pub coalesced: u32,
    pub manual: bool,
    pub job_id: Uuid,
    pub job_kind: String,
    pub queue: Queue,
    pub scheduler: String,
    /// False when Redis refused the push after commit; the outbox sweep pushes the job later.
    pub pushed: bool,
}

/// A schedule whose ticks could not be handled this time (retried on the next call).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScheduleFailure {
    pub schedule: String,
    pub error: String,
}

/// What one [`fire_due`] call did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FireReport {
    /// Runs created by this call (another replica may have created the others).
    pub fired: Vec<CronRun>,
    /// Disabled schedules whose due ticks were skipped.
    pub skipped: Vec<String>,
    pub failed: Vec<ScheduleFailure>,
}

/// The persisted cursor of one schedule (`cron_schedules`).
struct State {
    since: DateTime<Utc>,
    last_tick_local: Option<NaiveDateTime>,
}

impl State {
    fn due(&self, schedule: &Schedule, now: DateTime<Utc>) -> Option<Due> {
        ticks::due(
            &schedule.expression,
            schedule.time_zone,
            self.last_tick_local,
            self.since,
            now,
        )
    }
}

async fn read_state(
    conn: &mut PgConnection,
    schedule: &str,
    lock: bool,
) -> Result<Option<State>, sqlx::Error> {
    let sql = if lock {
        "SELECT since, last_tick_local FROM cron_schedules WHERE schedule = $1 FOR UPDATE"
    } else {
        "SELECT since, last_tick_local FROM cron_schedules WHERE schedule = $1"
    };
    let row: Option<(DateTime<Utc>, Option<NaiveDateTime>)> = sqlx::query_as(sql)
        .bind(schedule)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(|(since, last_tick_local)| State {
        since,
        last_tick_local,
    }))
}

/// The cursor of a schedule; the first scheduler to see it records `now` as its start.
async fn state_or_start(
    pool: &PgPool,
    schedule: &str,
    now: DateTime<Utc>,
) -> Result<State, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    if let Some(state) = read_state(&mut conn, schedule, false).await? {
        return Ok(state);
    }
    sqlx::query(
        "INSERT INTO cron_schedules (schedule, since) VALUES ($1, $2) ON CONFLICT (schedule) DO NOTHING",
    )
    .bind(schedule)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    read_state(&mut conn, schedule, false)
        .await?
        .ok_or(sqlx::Error::RowNotFound)
}

/// Fires the due ticks of every schedule of `table` as of `now` (the caller's clock, injectable in
/// tests) and returns what this call created.
///
/// Per schedule: nothing is due → one read, no write. Something is due → in one transaction, lock the
/// schedule's `cron_schedules` row (replicas take turns), recompute what is due from the locked cursor,
/// insert **one** `cron_runs` row for the latest due tick with `coalesced` = the number of due ticks it
/// stands for (`ON CONFLICT DO NOTHING` on `(schedule, tick_local, manual)`), move the cursor, and stage
/// the job in `job_outbox`; after commit, push the job. A schedule seen for the first time starts at
/// `now`: ticks before its first sight are never run. A disabled schedule's due ticks are skipped (its
/// start moves to `now`, so re-enabling it does not replay them).
pub async fn fire_due(
    pool: &PgPool,
    enqueuer: &Enqueuer,
    table: &CronTable,
    now: DateTime<Utc>,
    scheduler: &str,
) -> FireReport {
    let mut report = FireReport::default();
    for schedule in table.schedules() {
        match fire_schedule(pool, enqueuer, schedule, now, scheduler).await {
            Ok(Outcome::Fired(run)) => report.fired.push(*run),
            Ok(Outcome::Skipped) => report.skipped.push(schedule.name.clone()),
            Ok(Outcome::Nothing) => {}
            Err(err) => {
                tracing::warn!(schedule = %schedule.name, error = format!("{err:#}"), "cron tick failed; retrying on the next pass");
                report.failed.push(ScheduleFailure {
                    schedule: schedule.name.clone(),
                    error: format!("{err:#}"),
                });
            }
        }
    }
    report
}

enum Outcome {
    Nothing,
    Skipped,
    Fired(Box<CronRun>),
}

async fn fire_schedule(
    pool: &PgPool,
    enqueuer: &Enqueuer,
    schedule: &Schedule,
    now: DateTime<Utc>,
    scheduler: &str,
) -> anyhow::Result<Outcome> {
    // Cheap unlocked look first: most passes find nothing due.
    let state = state_or_start(pool, &schedule.name, now).await?;
    if state.due(schedule, now).is_none() {
        return Ok(Outcome::Nothing);
    }
    let mut tx = pool.begin().await?;
    let Some(state) = read_state(&mut tx, &schedule.name, true).await? else {
        return Ok(Outcome::Nothing);
    };
    // Another replica may have fired while we waited for the lock.
    let Some(due) = state.due(schedule, now) else {
        return Ok(Outcome::Nothing);
    };
    if !schedule.enabled {
        sqlx::query(
            "UPDATE cron_schedules SET since = GREATEST(since, $2), updated_at = now() WHERE schedule = $1",
        )
        .bind(&schedule.name)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::info!(schedule = %schedule.name, tick = %due.local, skipped = due.coalesced, "schedule disabled: tick skipped");
        return Ok(Outcome::Skipped);
    }
    let job_id = Uuid::now_v7();
    let inserted: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO cron_runs (schedule, tick_local, tick_at, coalesced, manual, job_id, scheduler)
         VALUES ($1, $2, $3, $4, FALSE, $5, $6)
         ON CONFLICT (schedule, tick_local, manual) DO NOTHING
         RETURNING id",
    )
    .bind(&schedule.name)
    .bind(due.local)
    .bind(due.at)
    .bind(i32::try_from(due.coalesced).unwrap_or(i32::MAX))
    .bind(job_id)
    .bind(scheduler)
    .fetch_optional(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE cron_schedules
         SET last_tick_local = $2, last_tick_at = $3, updated_at = now()
         WHERE schedule = $1 AND (last_tick_local IS NULL OR last_tick_local < $2)",
    )
    .bind(&schedule.name)
    .bind(due.local)
    .bind(due.at)
    .execute(&mut *tx)
    .await?;
    let Some(run_id) = inserted else {
        // The tick already has a run (the cursor was behind it): it never runs twice.
        tx.commit().await?;
        return Ok(Outcome::Nothing);
    };
    let tick = Tick {
        schedule: schedule.name.clone(),
        local: due.local,
        at: due.at,
        coalesced: due.coalesced,
        manual: false,
    };
    let envelope = schedule.job().stage(&mut tx, &tick, job_id).await?;
    tx.commit().await?;
    let pushed = outbox::push_after_commit(pool, enqueuer, std::slice::from_ref(&envelope)).await;
    let run = CronRun {
        run_id,
        schedule: schedule.name.clone(),
        tick_local: due.local,
        tick_at: due.at,
        coalesced: due.coalesced,
        manual: false,
        job_id,
        job_kind: envelope.kind.clone(),
        queue: envelope.queue,
        scheduler: scheduler.to_owned(),
        pushed,
    };
    if run.coalesced > 1 {
        tracing::warn!(schedule = %run.schedule, tick = %run.tick_local, coalesced = run.coalesced, %job_id, scheduler, "missed ticks caught up once");
    } else {
        tracing::info!(schedule = %run.schedule, tick = %run.tick_local, %job_id, scheduler, "cron tick fired");
    }
    Ok(Outcome::Fired(Box::new(run)))
}

/// Why a manual run could not be created.
#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    #[error("unknown schedule {0:?}")]
    UnknownSchedule(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("cannot stage the job: {0:#}")]
    Job(#[from] anyhow::Error),
}

/// The name recorded as `cron_runs.scheduler` for manual runs.
pub const MANUAL_SCHEDULER: &str = "manual";

/// Runs a schedule now, for operators: a `manual = true` run (tick = now in the schedule's zone) whose
/// job is staged and pushed like a scheduled one. Works for disabled schedules too, and does not move
/// the schedule's cursor (the next scheduled tick still runs).
pub async fn trigger_now(
    pool: &PgPool,
    enqueuer: &Enqueuer,
    table: &CronTable,
    name: &str,
) -> Result<CronRun, TriggerError> {
    let schedule = table
        .get(name)
        .ok_or_else(|| TriggerError::UnknownSchedule(name.to_owned()))?;
    // PostgreSQL keeps microseconds; so does the returned run.
    let now = Utc::now().trunc_subsecs(6);
    let tick = Tick {
        schedule: schedule.name.clone(),
        local: ticks::local_time(schedule.time_zone, now),
        at: now,
        coalesced: 1,
        manual: true,
    };
    let job_id = Uuid::now_v7();
    let mut tx = pool.begin().await?;
    let run_id: Uuid = sqlx::query_scalar(
        "INSERT INTO cron_runs (schedule, tick_local, tick_at, coalesced, manual, job_id, scheduler)
         VALUES ($1, $2, $3, 1, TRUE, $4, $5)
         RETURNING id",
    )
    .bind(&schedule.name)
    .bind(tick.local)
    .bind(tick.at)
    .bind(job_id)
    .bind(MANUAL_SCHEDULER)
    .fetch_one(&mut *tx)
    .await?;
    let envelope = schedule.job().stage(&mut tx, &tick, job_id).await?;
    tx.commit().await?;
    let pushed = outbox::push_after_commit(pool, enqueuer, std::slice::from_ref(&envelope)).await;
    tracing::info!(schedule = %schedule.name, %job_id, "schedule triggered manually");
    Ok(CronRun {
        run_id,
        schedule: schedule.name.clone(),
        tick_local: tick.local,
        tick_at: tick.at,
        coalesced: 1,
        manual: true,
        job_id,
        job_kind: envelope.kind,
        queue: envelope.queue,
        scheduler: MANUAL_SCHEDULER.to_owned(),
        pushed,
    })
}

/// What became of a run's job, from its `job_outbox` row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// Not finished yet (waiting, running or retrying).
    Pending,
    Succeeded,
    /// Used up its attempts: see the dead letters.
    Dead,
    /// Deleted by an operator.
    Deleted,
    /// No outbox row any more (trimmed by retention).
    Unknown,
}

/// The latest run of a schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastRun {
    pub run_id: Uuid,
    pub tick_local: NaiveDateTime,
    pub tick_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub job_id: Uuid,
    pub manual: bool,
    pub coalesced: u32,
    pub scheduler: String,
    pub outcome: RunOutcome,
    pub completed_at: Option<DateTime<Utc>>,
}

/// A tick to come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct NextTick {
    /// Wall-clock time in the schedule's zone.
    pub local: NaiveDateTime,
    pub at: DateTime<Utc>,
}

/// One schedule as operators see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScheduleStatus {
    pub name: String,
    pub expression: String,
    pub time_zone: String,
    pub enabled: bool,
    pub job_kind: String,
    pub queue: Queue,
    /// The latest run, scheduled or manual.
    pub last_run: Option<LastRun>,
    /// The next tick after `now`; `None` when the schedule is disabled (or never fires again).
    pub next_tick: Option<NextTick>,
}

type LastRunRow = (
    String,
    Uuid,
    NaiveDateTime,
    DateTime<Utc>,
    DateTime<Utc>,
    Uuid,
    bool,
    i32,
    String,
    bool,
    Option<DateTime<Utc>>,
    Option<String>,
);

/// Every schedule of `table` with its latest run (and that job's outcome) and its next tick after `now`.
pub async fn schedule_status(
    pool: &PgPool,
    table: &CronTable,
    now: DateTime<Utc>,
) -> Result<Vec<ScheduleStatus>, sqlx::Error> {
    let names: Vec<String> = table.names().into_iter().map(str::to_owned).collect();
    let rows: Vec<LastRunRow> = sqlx::query_as(
        "SELECT s.name, r.id, r.tick_local, r.tick_at, r.created_at, r.job_id, r.manual, r.coalesced,
                r.scheduler, o.job_id IS NOT NULL, o.completed_at, o.outcome
         FROM unnest($1::text[]) AS s(name)
         JOIN LATERAL (
             SELECT * FROM cron_runs c WHERE c.schedule = s.name
             ORDER BY c.created_at DESC, c.tick_at DESC LIMIT 1
         ) r ON TRUE
         LEFT JOIN job_outbox o ON o.job_id = r.job_id",
    )
    .bind(&names)
    .fetch_all(pool)
    .await?;
    let statuses = table
        .schedules()
        .iter()
        .map(|schedule| {
            let last_run = rows
                .iter()
                .find(|row| row.0 == schedule.name)
                .map(|row| LastRun {
                    run_id: row.1,
                    tick_local: row.2,
                    tick_at: row.3,
                    created_at: row.4,
                    job_id: row.5,
                    manual: row.6,
                    coalesced: u32::try_from(row.7).unwrap_or(0),
                    scheduler: row.8.clone(),
                    outcome: outcome(row.9, row.10, row.11.as_deref()),
                    completed_at: row.10,
                });
            let next_tick = schedule
                .enabled
                .then(|| ticks::next_tick(&schedule.expression, schedule.time_zone, now))
                .flatten()
                .map(|(local, at)| NextTick { local, at });
            ScheduleStatus {
                name: schedule.name.clone(),
                expression: schedule.expression.source().to_owned(),
                time_zone: schedule.time_zone.name().to_owned(),
                enabled: schedule.enabled,
                job_kind: schedule.job_kind().to_owned(),
                queue: schedule.queue(),
                last_run,
                next_tick,
            }
        })
        .collect();
    Ok(statuses)
}

fn outcome(
    has_outbox: bool,
    completed_at: Option<DateTime<Utc>>,
    outcome: Option<&str>,
) -> RunOutcome {
    match (has_outbox, completed_at, outcome) {
        (false, _, _) => RunOutcome::Unknown,
        (true, None, _) => RunOutcome::Pending,
        (true, Some(_), Some("succeeded")) => RunOutcome::Succeeded,
        (true, Some(_), Some("dead")) => RunOutcome::Dead,
        (true, Some(_), Some("deleted")) => RunOutcome::Deleted,
        (true, Some(_), _) => RunOutcome::Unknown,
    }
}
