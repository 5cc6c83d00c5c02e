//! The cron scheduler against the real PostgreSQL and Redis: exactly-once ticks across replicas, one
//! coalesced catch-up after downtime, daylight-saving days, manual runs, status, configuration overrides,
//! and the real loop stopping cleanly. Clocks are injected (`fire_due` takes `now`), so no test waits
//! for a real minute.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Duration as Span, NaiveDate, NaiveDateTime, SubsecRound, Utc};
use mingus_common::cron::{
    self, CronTable, RunOutcome, Schedule, TriggerError, Tz, fire_due, schedule_status, trigger_now,
};
use mingus_common::jobs::catalog::{OutboxSweep, Retention};
use mingus_common::jobs::{Envelope, Job, outbox};
use mingus_common::queue::Queue;
use mingus_tests::JobEnv;
use mingus_tests::wait::{count, until};
use uuid::Uuid;

const NEW_YORK: &str = "America/New_York";

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    local(y, mo, d, h, mi, s).and_utc()
}

fn local(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(y, mo, d)
        .unwrap()
        .and_hms_opt(h, mi, s)
        .unwrap()
}

fn table(rows: &[(&str, &str, &str)]) -> CronTable {
    let schedules = rows
        .iter()
        .map(|(name, expression, zone)| {
            Schedule::new(name, expression, zone.parse::<Tz>().unwrap(), |_| {
                OutboxSweep {}
            })
            .unwrap()
        })
        .collect();
    CronTable::new(schedules).unwrap()
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
struct RunRow {
    schedule: String,
    tick_local: NaiveDateTime,
    tick_at: DateTime<Utc>,
    coalesced: i32,
    manual: bool,
    job_id: Uuid,
    scheduler: String,
}

async fn runs(env: &JobEnv, schedule: &str) -> Vec<RunRow> {
    sqlx::query_as(
        "SELECT schedule, tick_local, tick_at, coalesced, manual, job_id, scheduler
         FROM cron_runs WHERE schedule = $1 ORDER BY tick_local, manual",
    )
    .bind(schedule)
    .fetch_all(&env.db.pool)
    .await
    .unwrap()
}

/// The envelopes of the jobs waiting in Redis on `queue`.
async fn queued(env: &JobEnv, queue: Queue) -> Vec<Envelope> {
    let mut conn = env.enqueuer.connection();
    let values: Vec<String> = redis::cmd("HVALS")
        .arg(env.enqueuer.keys(queue).data())
        .query_async(&mut conn)
        .await
        .unwrap();
    values
        .iter()
        .map(|v| serde_json::from_str(v).unwrap())
        .collect()
}

async fn fire(env: &JobEnv, table: &CronTable, now: DateTime<Utc>) -> cron::FireReport {
    let report = fire_due(&env.db.pool, &env.enqueuer, table, now, "test-scheduler").await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    report
}

#[tokio::test]
async fn scheduler_replicas_fire_each_tick_exactly_once() {
    let env = JobEnv::new().await;
    let table = table(&[("every_minute", "0 * * * * *", "UTC")]);
    const REPLICAS: usize = 4;
    let start = at(2030, 1, 1, 0, 0, 30);
    // Round 0: four replicas see the schedule for the first time together; rounds 1–5: a tick is due.
    for round in 0..=5u32 {
        let now = if round == 0 {
            start
        } else {
            at(2030, 1, 1, 0, round, 0)
        };
        let barrier = Arc::new(tokio::sync::Barrier::new(REPLICAS));
        let tasks: Vec<_> = (0..REPLICAS)
            .map(|replica| {
                let (pool, enqueuer, table, barrier) = (
                    env.db.pool.clone(),
                    env.enqueuer.clone(),
                    table.clone(),
                    barrier.clone(),
                );
                // Replicas' clocks differ by a few milliseconds.
                let now = now + Span::milliseconds(replica as i64 * 3);
                tokio::spawn(async move {
                    barrier.wait().await;
                    fire_due(&pool, &enqueuer, &table, now, &format!("replica-{replica}")).await
                })
            })
            .collect();
        let mut fired = Vec::new();
        for task in tasks {
            let report = task.await.unwrap();
            assert!(report.failed.is_empty(), "{:?}", report.failed);
            fired.extend(report.fired);
        }
        let expected = usize::from(round > 0);
        assert_eq!(fired.len(), expected, "round {round}: {fired:?}");
        let rows = runs(&env, "every_minute").await;
        assert_eq!(rows.len(), round as usize, "one row per tick");
        assert_eq!(
            queued(&env, Queue::Maintenance).await.len(),
            round as usize,
            "one job pushed per tick"
        );
        if let Some(run) = fired.first() {
            assert!(run.pushed);
            assert_eq!(run.coalesced, 1);
            assert_eq!(run.tick_local, local(2030, 1, 1, 0, round, 0));
            assert!(run.scheduler.starts_with("replica-"));
        }
    }
    assert_eq!(
        count(&env.db.pool, "SELECT count(*) FROM cron_schedules").await,
        1
    );
    assert_eq!(
        count(&env.db.pool, "SELECT count(*) FROM job_outbox").await,
        5,
        "each run's job is backed by an outbox row"
    );
    let mut job_ids: Vec<Uuid> = queued(&env, Queue::Maintenance)
        .await
        .iter()
        .map(|e| e.job_id)
        .collect();
    let mut run_job_ids: Vec<Uuid> = runs(&env, "every_minute")
        .await
        .iter()
        .map(|r| r.job_id)
        .collect();
    job_ids.sort();
    run_job_ids.sort();
    assert_eq!(job_ids, run_job_ids);
}

#[tokio::test]
async fn scheduler_catches_up_once_after_downtime_with_the_missed_count() {
    let env = JobEnv::new().await;
    let table = table(&[
        ("every_minute", "0 * * * * *", "UTC"),
        ("daily_3am", "0 0 3 * * *", "UTC"),
    ]);
    // First start: nothing from before it is caught up.
    let report = fire(&env, &table, at(2030, 1, 1, 0, 0, 30)).await;
    assert!(report.fired.is_empty());
    let report = fire(&env, &table, at(2030, 1, 1, 0, 1, 0)).await;
    assert_eq!(report.fired.len(), 1);
    // Down for three days and three hours.
    let back = at(2030, 1, 4, 3, 0, 5);
    let report = fire(&env, &table, back).await;
    assert_eq!(report.fired.len(), 2, "{report:?}");
    // Again a little later, and a replica with the same clock: nothing more.
    for now in [back, back + Span::seconds(20), back + Span::seconds(54)] {
        assert!(fire(&env, &table, now).await.fired.is_empty());
    }

    let minute = runs(&env, "every_minute").await;
    assert_eq!(minute.len(), 2, "{minute:?}");
    assert_eq!(minute[0].coalesced, 1);
    assert_eq!(minute[1].tick_local, local(2030, 1, 4, 3, 0, 0));
    let missed = (at(2030, 1, 4, 3, 0, 0) - at(2030, 1, 1, 0, 1, 0)).num_minutes();
    assert_eq!(
        i64::from(minute[1].coalesced),
        missed,
        "00:02 Jan 1 … 03:00 Jan 4"
    );
    assert_eq!(minute[1].tick_at, at(2030, 1, 4, 3, 0, 0));

    let daily = runs(&env, "daily_3am").await;
    assert_eq!(daily.len(), 1, "{daily:?}");
    assert_eq!(daily[0].tick_local, local(2030, 1, 4, 3, 0, 0));
    assert_eq!(
        daily[0].coalesced, 4,
        "03:00 on Jan 1, 2, 3 and 4, run once"
    );
    assert_eq!(queued(&env, Queue::Maintenance).await.len(), 3);
}

/// Steps an injected clock minute by minute over `[from, to]` and returns when each run was fired.
async fn step_minutes(
    env: &JobEnv,
    table: &CronTable,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<(DateTime<Utc>, cron::CronRun)> {
    let mut fired = Vec::new();
    let mut now = from;
    // Bounded: at most two days of minutes.
    for _ in 0..2 * 24 * 60 {
        if now > to {
            break;
        }
        for run in fire(env, table, now).await.fired {
            fired.push((now, run));
        }
        now += Span::minutes(1);
    }
    assert!(now > to, "the clock reached the end of the window");
    fired
}

#[tokio::test]
async fn scheduler_runs_a_repeated_local_time_once_on_the_fall_back_day() {
    let env = JobEnv::new().await;
    // 2026-11-01 in New York: 02:00 EDT falls back to 01:00 EST, so 01:30 happens at 05:30 and 06:30 UTC.
    let table = table(&[("nightly_0130", "0 30 1 * * *", NEW_YORK)]);
    let fired = step_minutes(
        &env,
        &table,
        at(2026, 11, 1, 2, 0, 0), // Oct 31, 22:00 EDT
        at(2026, 11, 2, 7, 0, 0), // Nov 2, 02:00 EST
    )
    .await;
    let summary: Vec<_> = fired
        .iter()
        .map(|(now, run)| (*now, run.tick_local, run.tick_at))
        .collect();
    assert_eq!(
        summary,
        [
            (
                at(2026, 11, 1, 5, 30, 0),
                local(2026, 11, 1, 1, 30, 0),
                at(2026, 11, 1, 5, 30, 0)
            ),
            (
                at(2026, 11, 2, 6, 30, 0),
                local(2026, 11, 2, 1, 30, 0),
                at(2026, 11, 2, 6, 30, 0)
            ),
        ],
        "once on Nov 1 at the earlier 01:30 (EDT), then Nov 2 at 01:30 EST"
    );
    assert_eq!(
        count(
            &env.db.pool,
            "SELECT count(*) FROM cron_runs WHERE tick_local::date = '2026-11-01'"
        )
        .await,
        1
    );
    assert!(fired.iter().all(|(_, run)| run.coalesced == 1));
}

#[tokio::test]
async fn scheduler_runs_a_skipped_local_time_once_at_the_end_of_the_spring_gap() {
    let env = JobEnv::new().await;
    // 2026-03-08 in New York: 02:00 EST springs forward to 03:00 EDT (07:00 UTC); 02:30 does not exist.
    let table = table(&[("nightly_0230", "0 30 2 * * *", NEW_YORK)]);
    let fired = step_minutes(
        &env,
        &table,
        at(2026, 3, 8, 3, 0, 0), // Mar 7, 22:00 EST
        at(2026, 3, 9, 7, 0, 0), // Mar 9, 03:00 EDT
    )
    .await;
    let summary: Vec<_> = fired
        .iter()
        .map(|(now, run)| (*now, run.tick_local, run.tick_at))
        .collect();
    assert_eq!(
        summary,
        [
            (
                at(2026, 3, 8, 7, 0, 0),
                local(2026, 3, 8, 2, 30, 0),
                at(2026, 3, 8, 7, 0, 0)
            ),
            (
                at(2026, 3, 9, 6, 30, 0),
                local(2026, 3, 9, 2, 30, 0),
                at(2026, 3, 9, 6, 30, 0)
            ),
        ],
        "once on Mar 8 at 03:00 EDT, then Mar 9 at 02:30 EDT"
    );
    assert_eq!(
        count(
            &env.db.pool,
            "SELECT count(*) FROM cron_runs WHERE tick_local::date = '2026-03-08'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn scheduler_trigger_now_creates_a_manual_run_and_reports_its_outcome() {
    let env = JobEnv::with(&[("MINGUS_SCHEDULE_RETENTION_ENABLED", "false")]).await;
    let table = CronTable::from_config(&env.config.scheduler);
    let pool = &env.db.pool;

    let before = schedule_status(pool, &table, Utc::now()).await.unwrap();
    let names: Vec<&str> = before.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, table.names(), "every schedule, in table order");
    assert!(names.contains(&"outbox_sweep") && names.contains(&"retention"));
    assert!(before.iter().all(|s| s.last_run.is_none()));

    // A disabled schedule can still be run by hand.
    let run = trigger_now(pool, &env.enqueuer, &table, "retention")
        .await
        .unwrap();
    assert!(run.manual && run.pushed);
    assert_eq!(run.job_kind, Retention::SPEC.kind);
    assert_eq!(run.queue, Queue::Maintenance);
    let rows = runs(&env, "retention").await;
    assert_eq!(rows.len(), 1);
    assert!(rows[0].manual);
    assert_eq!(rows[0].job_id, run.job_id);
    assert_eq!(rows[0].scheduler, cron::MANUAL_SCHEDULER);
    let jobs = queued(&env, Queue::Maintenance).await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].job_id, run.job_id);
    assert_eq!(jobs[0].kind, Retention::SPEC.kind);
    assert!(jobs[0].outbox);

    let now = Utc::now();
    let status = schedule_status(pool, &table, now).await.unwrap();
    let retention = status.iter().find(|s| s.name == "retention").unwrap();
    assert!(!retention.enabled);
    assert_eq!(retention.next_tick, None, "disabled: no next tick");
    let last = retention.last_run.as_ref().unwrap();
    assert_eq!(last.job_id, run.job_id);
    assert!(last.manual);
    assert_eq!(last.outcome, RunOutcome::Pending);
    let sweep = status.iter().find(|s| s.name == "outbox_sweep").unwrap();
    assert!(sweep.enabled && sweep.last_run.is_none());
    assert_eq!(sweep.job_kind, OutboxSweep::SPEC.kind);
    let next = sweep.next_tick.unwrap();
    assert!(next.at > now && next.at <= now + Span::minutes(1));
    assert_eq!(next.at, next.at.trunc_subsecs(0));
    assert_eq!(next.local, next.at.naive_utc());

    // The worker finishes the job: the status shows it. The API serialises the status as JSON.
    outbox::complete(pool, run.job_id, "succeeded")
        .await
        .unwrap();
    let status = schedule_status(pool, &table, Utc::now()).await.unwrap();
    let retention = status.iter().find(|s| s.name == "retention").unwrap();
    let last = retention.last_run.as_ref().unwrap();
    assert_eq!(last.outcome, RunOutcome::Succeeded);
    assert!(last.completed_at.is_some());
    let json = serde_json::to_value(retention).unwrap();
    assert_eq!(json["last_run"]["outcome"], "succeeded");
    assert_eq!(json["time_zone"], "UTC");
    assert_eq!(json["queue"], "maintenance");

    // Unknown names are a typed error; nothing was written.
    match trigger_now(pool, &env.enqueuer, &table, "nope").await {
        Err(TriggerError::UnknownSchedule(name)) => assert_eq!(name, "nope"),
        other => panic!("expected UnknownSchedule, got {other:?}"),
    }
    assert_eq!(count(pool, "SELECT count(*) FROM cron_runs").await, 1);
    // A manual run does not move the schedule's cursor.
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM cron_schedules WHERE last_tick_local IS NOT NULL"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn scheduler_applies_configuration_overrides_and_skips_disabled_schedules() {
    let env = JobEnv::with(&[
        ("MINGUS_SCHEDULE_RETENTION", "0 15 0 * * *"),
        ("MINGUS_SCHEDULE_RETENTION_TZ", "Europe/Paris"),
        ("MINGUS_SCHEDULE_OUTBOX_SWEEP_ENABLED", "false"),
    ])
    .await;
    let table = CronTable::from_config(&env.config.scheduler);
    let start = at(2030, 6, 1, 0, 0, 30);
    assert!(fire(&env, &table, start).await.fired.is_empty());
    // 00:15 in Paris on June 2 is 22:15 UTC on June 1 (CEST, UTC+2).
    let report = fire(&env, &table, at(2030, 6, 1, 22, 15, 0)).await;
    let retention: Vec<_> = report
        .fired
        .iter()
        .filter(|r| r.schedule == "retention")
        .collect();
    assert_eq!(retention.len(), 1, "{report:?}");
    assert_eq!(retention[0].tick_local, local(2030, 6, 2, 0, 15, 0));
    assert_eq!(retention[0].tick_at, at(2030, 6, 1, 22, 15, 0));
    assert_eq!(
        report.skipped,
        ["outbox_sweep"],
        "its ticks came due but it is off"
    );
    assert!(runs(&env, "outbox_sweep").await.is_empty());

    let status = schedule_status(&env.db.pool, &table, at(2030, 6, 1, 22, 16, 0))
        .await
        .unwrap();
    let retention = status.iter().find(|s| s.name == "retention").unwrap();
    assert_eq!(retention.expression, "0 15 0 * * *");
    assert_eq!(retention.time_zone, "Europe/Paris");
    assert_eq!(
        retention.next_tick.map(|t| t.at),
        Some(at(2030, 6, 2, 22, 15, 0))
    );

    // Re-enabled (a deploy without the variable): the ticks it skipped while off are not replayed.
    let enabled = CronTable::defaults();
    let report = fire(&env, &enabled, at(2030, 6, 1, 22, 17, 30)).await;
    let sweep: Vec<_> = report
        .fired
        .iter()
        .filter(|r| r.schedule == "outbox_sweep")
        .collect();
    assert_eq!(sweep.len(), 1, "{report:?}");
    assert_eq!(sweep[0].tick_local, local(2030, 6, 1, 22, 17, 0));
    assert_eq!(sweep[0].coalesced, 2, "22:16 and 22:17 only");
}

#[tokio::test]
async fn scheduler_loop_of_two_replicas_enqueues_each_tick_once_and_stops_cleanly() {
    let env = JobEnv::with(&[
        ("MINGUS_SCHEDULE_OUTBOX_SWEEP", "* * * * * *"),
        ("MINGUS_SCHEDULER_INTERVAL_MS", "200"),
    ])
    .await;
    let mut stops = Vec::new();
    let mut handles = Vec::new();
    for _ in 0..2 {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        stops.push(stop);
        let config = env.config.clone();
        handles.push(tokio::spawn(mingus_scheduler::run(config, async move {
            let _ = stopped.await;
        })));
    }
    until(
        Duration::from_secs(15),
        "three runs of the every-second sweep",
        || async {
            let sql = "SELECT count(*) FROM cron_runs WHERE schedule = 'outbox_sweep'";
            (count(&env.db.pool, sql).await >= 3).then_some(())
        },
    )
    .await;
    for stop in stops {
        let _ = stop.send(());
    }
    for handle in handles {
        tokio::time::timeout(Duration::from_secs(10), handle)
            .await
            .expect("the scheduler stops promptly")
            .unwrap()
            .expect("and cleanly");
    }

    let rows = runs(&env, "outbox_sweep").await;
    assert!(rows.len() >= 3);
    assert!(
        rows.iter()
            .all(|r| !r.manual && r.scheduler.starts_with("scheduler@"))
    );
    let sweep_kind = OutboxSweep::SPEC.kind;
    let jobs = queued(&env, Queue::Maintenance).await;
    let sweeps = jobs.iter().filter(|e| e.kind == sweep_kind).count();
    assert_eq!(sweeps, rows.len(), "one job per run, none twice");
    assert_eq!(
        count(
            &env.db.pool,
            &format!("SELECT count(*) FROM job_outbox WHERE kind = '{sweep_kind}'"),
        )
        .await,
        rows.len() as i64
    );
    // Every second since the first start is accounted for exactly once.
    let since: DateTime<Utc> =
        sqlx::query_scalar("SELECT since FROM cron_schedules WHERE schedule = 'outbox_sweep'")
            .fetch_one(&env.db.pool)
            .await
            .unwrap();
    let last = rows.last().unwrap().tick_at;
    let ticks = (last - since.trunc_subsecs(0)).num_seconds();
    let coalesced: i64 = rows.iter().map(|r| i64::from(r.coalesced)).sum();
    assert_eq!(coalesced, ticks, "{rows:?}");
    for pair in rows.windows(2) {
        assert!(pair[0].tick_local < pair[1].tick_local);
    }
}
