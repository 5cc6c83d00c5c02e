//! Usage periods follow each user's billing anniversary; the hourly sweep opens new ones, idempotently.

use std::time::Duration;

use mingus_common::cron::{CronTable, Tz};
use mingus_common::entitlements::reset::{ResetReport, open_due_periods};
use mingus_common::jobs::catalog::{self, UsageResetSweep};
use mingus_common::jobs::{EnqueueOptions, Job};
use mingus_common::queue::Queue;
use mingus_tests::TestWorker;
use mingus_tests::wait::until;

use super::{Env, Sub, at, days};

#[tokio::test]
async fn periods_follow_the_billing_anniversary_with_month_end_clamping() {
    let env = Env::new().await;
    let metric = "health_checkins_per_month";
    // Billed on the 31st: January's period ends on Feb 28 (clamped), February's on Mar 31.
    let user = env
        .subscribed(
            Sub::active(
                "essentials",
                at("2026-01-31T10:00:00Z"),
                at("2026-02-28T10:00:00Z"),
            ),
            at("2026-01-31T10:00:00Z"),
        )
        .await;
    let before = at("2026-02-28T09:59:59Z");
    let consumed = env.ent.consume(user, metric, 4, before).await.unwrap();
    assert_eq!(
        (consumed.allowed, consumed.resets_at),
        (true, at("2026-02-28T10:00:00Z"))
    );
    assert!(
        !env.ent
            .consume(user, metric, 1, before)
            .await
            .unwrap()
            .allowed,
        "4 check-ins a month"
    );

    // The renewal moves the period to [Feb 28, Mar 31): the anchor day stays the 31st.
    sqlx::query(
        "UPDATE subscriptions SET current_period_start = $2, current_period_end = $3 WHERE user_id = $1",
    )
    .bind(user)
    .bind(at("2026-02-28T10:00:00Z"))
    .bind(at("2026-03-31T10:00:00Z"))
    .execute(env.pool())
    .await
    .unwrap();
    env.recompute(user, at("2026-02-28T10:00:00Z")).await;
    env.ent.invalidate(user).await.unwrap();
    let renewed = at("2026-02-28T10:00:00Z");
    let consumed = env.ent.consume(user, metric, 1, renewed).await.unwrap();
    assert_eq!(
        (consumed.allowed, consumed.used, consumed.resets_at),
        (true, 1, at("2026-03-31T10:00:00Z")),
        "a fresh allowance at the anniversary"
    );
    assert_eq!(
        env.counters(user, metric).await,
        vec![
            (at("2026-01-31T10:00:00Z"), at("2026-02-28T10:00:00Z"), 4),
            (at("2026-02-28T10:00:00Z"), at("2026-03-31T10:00:00Z"), 1),
        ],
        "history is kept"
    );

    // Without a subscription the account's creation is the anniversary, not the calendar month.
    let created = at("2026-03-15T08:00:00Z");
    let free = env.user(created).await;
    let snapshot = env
        .ent
        .snapshot(free, at("2026-04-20T00:00:00Z"))
        .await
        .unwrap();
    assert_eq!(
        (snapshot.period_start, snapshot.period_end),
        (
            Some(at("2026-04-15T08:00:00Z")),
            Some(at("2026-05-15T08:00:00Z"))
        )
    );
}

#[tokio::test]
async fn the_reset_sweep_opens_rolled_over_periods_once_and_keeps_history() {
    let env = Env::new().await;
    let metric = "financial_reports_per_month";
    let start = at("2026-01-20T06:00:00Z");
    let user = env
        .subscribed(Sub::active("professional", start, start + days(365)), start)
        .await;
    let other = env
        .subscribed(
            Sub::active(
                "professional",
                at("2026-01-05T00:00:00Z"),
                start + days(365),
            ),
            start,
        )
        .await;
    let t1 = at("2026-01-25T00:00:00Z");
    assert!(env.ent.consume(user, metric, 7, t1).await.unwrap().allowed);
    assert!(env.ent.consume(other, metric, 1, t1).await.unwrap().allowed);

    // Before either anniversary nothing is due.
    assert_eq!(
        open_due_periods(env.pool(), at("2026-02-04T23:59:59Z"))
            .await
            .unwrap(),
        ResetReport::default()
    );

    // An hour after the first user's anniversary (the 20th): both periods rolled over (the other's on the 5th).
    let tick = at("2026-02-20T07:00:00Z");
    let report = open_due_periods(env.pool(), tick).await.unwrap();
    assert_eq!(
        report,
        ResetReport {
            users: 2,
            opened: 2
        }
    );
    assert_eq!(
        env.counters(user, metric).await,
        vec![
            (start, at("2026-02-20T06:00:00Z"), 7),
            (at("2026-02-20T06:00:00Z"), at("2026-03-20T06:00:00Z"), 0),
        ]
    );
    let check = env.ent.check(user, "basic_analytics", tick).await.unwrap();
    assert_eq!(
        (check.access, check.usage, check.resets_at),
        (true, Some(0), Some(at("2026-03-20T06:00:00Z")))
    );
    assert_eq!(
        env.counters(other, metric).await[1].0,
        at("2026-02-05T00:00:00Z")
    );

    // Running again (the same tick, or the next hour) changes nothing.
    let rows_before: Vec<(uuid::Uuid, i64, chrono::DateTime<chrono::Utc>)> =
        sqlx::query_as("SELECT id, used, updated_at FROM usage_counters ORDER BY id")
            .fetch_all(env.pool())
            .await
            .unwrap();
    assert_eq!(
        open_due_periods(env.pool(), tick).await.unwrap(),
        ResetReport::default()
    );
    assert_eq!(
        open_due_periods(env.pool(), tick + chrono::Duration::hours(1))
            .await
            .unwrap(),
        ResetReport::default()
    );
    let rows_after: Vec<(uuid::Uuid, i64, chrono::DateTime<chrono::Utc>)> =
        sqlx::query_as("SELECT id, used, updated_at FROM usage_counters ORDER BY id")
            .fetch_all(env.pool())
            .await
            .unwrap();
    assert_eq!(rows_before, rows_after);

    // A sweep that was down for two months opens the current period only.
    let late = at("2026-04-21T00:00:00Z");
    assert_eq!(open_due_periods(env.pool(), late).await.unwrap().opened, 2);
    assert_eq!(
        env.counters(user, metric).await.last().unwrap().0,
        at("2026-04-20T06:00:00Z")
    );
    assert_eq!(env.counters(user, metric).await.len(), 3);
}

#[tokio::test]
async fn the_reset_sweep_is_an_hourly_usage_job_the_worker_runs() {
    let table = CronTable::defaults();
    let schedule = table.get("usage_reset").expect("scheduled");
    assert_eq!(schedule.expression.source(), "0 0 * * * *");
    assert_eq!(
        (schedule.time_zone, schedule.queue(), schedule.job_kind()),
        (Tz::UTC, Queue::Usage, UsageResetSweep::SPEC.kind)
    );
    assert!(catalog::spec(UsageResetSweep::SPEC.kind).is_some());

    // Through the queue and a real worker: a counter that ended yesterday gets its current period.
    let env = Env::new().await;
    let now = chrono::Utc::now();
    let user = env.user(now - days(45)).await;
    sqlx::query(
        "INSERT INTO usage_counters (user_id, metric, period_start, period_end, used)
         VALUES ($1, 'health_checkins_per_month', $2, $3, 3)",
    )
    .bind(user)
    .bind(now - days(45))
    .bind(now - days(1))
    .execute(env.pool())
    .await
    .unwrap();
    let worker = TestWorker::spawn(env.env.config.clone(), &[Queue::Usage]).await;
    env.env
        .enqueuer
        .enqueue(&UsageResetSweep {}, EnqueueOptions::default())
        .await
        .unwrap();
    until(
        Duration::from_secs(30),
        "the sweep opens the current period",
        || async {
            let rows = env.counters(user, "health_checkins_per_month").await;
            (rows.len() == 2).then_some(rows)
        },
    )
    .await;
    worker.stop().await.unwrap();
    let rows = env.counters(user, "health_checkins_per_month").await;
    assert_eq!(rows[1].2, 0);
    assert!(rows[1].0 <= now && now < rows[1].1, "{rows:?}");
}
