//! The minute sweep over `reminder_schedules`, with the clock injected: recurrence in the user's zone
//! across daylight-saving changes, one delivery per occurrence, catch-up, one-offs, suppression, and
//! deliveries scheduled for later getting their job when due.

use std::time::Duration;

use chrono::{DateTime, NaiveTime, Utc};
use mingus_common::email::deliveries::{self, NewDelivery, Queued};
use mingus_common::email::reminders::{SweepReport, sweep};
use mingus_common::email::{Category, Template, unsubscribe};
use mingus_common::jobs::email_jobs::ReminderSweep;
use mingus_common::jobs::{EnqueueOptions, Job};
use mingus_common::queue::Queue;
use mingus_tests::wait::until;
use mingus_tests::{JobEnv, SmtpServer, TestWorker};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use super::{address, env_with, user};

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

async fn reminder(
    pool: &PgPool,
    user_id: Uuid,
    kind: &str,
    frequency: &str,
    first: DateTime<Utc>,
    local_time: Option<&str>,
) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO reminder_schedules (user_id, reminder_type, scheduled_date, frequency, local_time, message)
         VALUES ($1, $2, $3, $4, $5::time, 'Two minutes, promise.') RETURNING id",
    )
    .bind(user_id)
    .bind(kind)
    .bind(first)
    .bind(frequency)
    .bind(local_time)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// (scheduled_date, enabled) of a reminder.
async fn schedule(pool: &PgPool, id: Uuid) -> (DateTime<Utc>, bool) {
    sqlx::query_as("SELECT scheduled_date, enabled FROM reminder_schedules WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn keys(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT dedupe_key FROM email_deliveries ORDER BY scheduled_for, dedupe_key")
        .fetch_all(pool)
        .await
        .unwrap()
}

async fn run(env: &JobEnv, now: &str) -> SweepReport {
    sweep(&env.db.pool, None, utc(now)).await.unwrap()
}

#[tokio::test]
async fn nine_oclock_in_new_york_stays_nine_across_both_daylight_saving_changes() {
    let env = JobEnv::new().await;
    let pool = &env.db.pool;
    let user_id = user(pool, "ny", "Ana", "America/New_York").await;
    // Saturday March 7, 2026, 09:00 EST (14:00 UTC); clocks go forward on Sunday March 8.
    let id = reminder(
        pool,
        user_id,
        "health_checkin",
        "daily",
        utc("2026-03-07T14:00:00Z"),
        Some("09:00"),
    )
    .await;
    assert_eq!(
        run(&env, "2026-03-07T13:59:59Z").await.reminders,
        0,
        "not yet"
    );
    let report = run(&env, "2026-03-07T14:00:20Z").await;
    assert_eq!(
        (report.reminders, report.queued, report.advanced),
        (1, 1, 1)
    );
    assert_eq!(
        schedule(pool, id).await.0,
        utc("2026-03-08T13:00:00Z"),
        "09:00 EDT"
    );
    assert_eq!(
        run(&env, "2026-03-07T14:00:40Z").await.reminders,
        0,
        "once per occurrence"
    );
    assert_eq!(
        run(&env, "2026-03-08T12:59:00Z").await.reminders,
        0,
        "not at 09:00 EST"
    );
    assert_eq!(run(&env, "2026-03-08T13:00:10Z").await.queued, 1);
    assert_eq!(schedule(pool, id).await.0, utc("2026-03-09T13:00:00Z"));

    // Autumn: Saturday October 31 09:00 EDT, then Sunday November 1 09:00 EST (14:00 UTC).
    sqlx::query("UPDATE reminder_schedules SET scheduled_date = $2 WHERE id = $1")
        .bind(id)
        .bind(utc("2026-10-31T13:00:00Z"))
        .execute(pool)
        .await
        .unwrap();
    assert_eq!(run(&env, "2026-10-31T13:00:05Z").await.queued, 1);
    assert_eq!(
        schedule(pool, id).await.0,
        utc("2026-11-01T14:00:00Z"),
        "09:00 EST"
    );
    assert_eq!(
        run(&env, "2026-11-01T13:00:00Z").await.reminders,
        0,
        "not at 08:00 EST"
    );
    assert_eq!(run(&env, "2026-11-01T14:00:00Z").await.queued, 1);
    assert_eq!(
        keys(pool).await,
        [
            format!("reminder:{id}:2026-03-07T14:00:00Z"),
            format!("reminder:{id}:2026-03-08T13:00:00Z"),
            format!("reminder:{id}:2026-10-31T13:00:00Z"),
            format!("reminder:{id}:2026-11-01T14:00:00Z"),
        ]
    );
    let data: serde_json::Value =
        sqlx::query_scalar("SELECT data FROM email_deliveries WHERE dedupe_key = $1")
            .bind(format!("reminder:{id}:2026-11-01T14:00:00Z"))
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(data["occurrence"], "2026-11-01T14:00:00Z");
    assert_eq!(data["message"], "Two minutes, promise.");
}

#[tokio::test]
async fn a_time_in_the_spring_gap_fires_once_after_it_and_returns_the_next_day() {
    let env = JobEnv::new().await;
    let pool = &env.db.pool;
    let user_id = user(pool, "gap", "Gus", "America/New_York").await;
    // 02:30 does not exist on March 8, 2026 in New York.
    let id = reminder(
        pool,
        user_id,
        "goal_review",
        "daily",
        utc("2026-03-07T07:30:00Z"),
        Some("02:30"),
    )
    .await;
    run(&env, "2026-03-07T07:30:00Z").await;
    assert_eq!(
        schedule(pool, id).await.0,
        utc("2026-03-08T07:00:00Z"),
        "03:00 EDT"
    );
    run(&env, "2026-03-08T07:00:00Z").await;
    assert_eq!(
        schedule(pool, id).await.0,
        utc("2026-03-09T06:30:00Z"),
        "02:30 EDT"
    );
    let stored: NaiveTime =
        sqlx::query_scalar("SELECT local_time FROM reminder_schedules WHERE id = $1")
            .bind(id)
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(stored, NaiveTime::from_hms_opt(2, 30, 0).unwrap());
}

#[tokio::test]
async fn weekly_monthly_and_one_off_reminders_advance_or_stop_and_downtime_sends_one() {
    let env = JobEnv::new().await;
    let pool = &env.db.pool;
    let user_id = user(pool, "mix", "Max", "Europe/Berlin").await;
    // Monthly on the 31st at 08:00 Berlin (07:00 UTC in winter), set without local_time.
    let monthly = reminder(
        pool,
        user_id,
        "budget_review",
        "monthly",
        utc("2026-01-31T07:00:00Z"),
        None,
    )
    .await;
    let once = reminder(
        pool,
        user_id,
        "financial_questionnaire",
        "once",
        utc("2026-01-31T07:00:00Z"),
        None,
    )
    .await;
    let weekly = reminder(
        pool,
        user_id,
        "custom",
        "weekly",
        utc("2026-01-31T07:00:00Z"),
        Some("08:00"),
    )
    .await;
    let report = run(&env, "2026-01-31T07:00:30Z").await;
    assert_eq!(
        (
            report.reminders,
            report.queued,
            report.advanced,
            report.disabled
        ),
        (3, 3, 2, 1)
    );
    assert_eq!(
        schedule(pool, monthly).await,
        (utc("2026-02-28T07:00:00Z"), true)
    );
    assert!(!schedule(pool, once).await.1, "a one-off stops");
    assert_eq!(schedule(pool, weekly).await.0, utc("2026-02-07T07:00:00Z"));
    // Three weeks without a sweep for the weekly reminder (Feb 7, 14, 21 missed): it sends once, for
    // its latest due occurrence, and moves past now.
    let report = run(&env, "2026-02-28T07:00:30Z").await;
    assert_eq!(
        (report.reminders, report.queued),
        (2, 2),
        "monthly and weekly"
    );
    let weekly_keys: Vec<String> = keys(pool)
        .await
        .into_iter()
        .filter(|k| k.starts_with(&format!("reminder:{weekly}:")))
        .collect();
    assert_eq!(
        weekly_keys,
        [
            format!("reminder:{weekly}:2026-01-31T07:00:00Z"),
            format!("reminder:{weekly}:2026-02-28T07:00:00Z"),
        ]
    );
    assert_eq!(schedule(pool, weekly).await.0, utc("2026-03-07T07:00:00Z"));
    // The monthly one is back on the 31st, and 08:00 Berlin is 06:00 UTC in summer time.
    assert_eq!(schedule(pool, monthly).await.0, utc("2026-03-31T06:00:00Z"));
}

#[tokio::test]
async fn unsubscribed_users_get_suppressed_reminders_and_their_billing_mail() {
    let smtp = SmtpServer::start();
    let env = env_with(&smtp, &[]).await;
    let pool = &env.db.pool;
    let user_id = user(pool, "quiet", "Quinn", "UTC").await;
    assert!(
        unsubscribe::suppress(pool, user_id, Category::Reminders, "link")
            .await
            .unwrap()
    );
    let now = Utc::now();
    reminder(pool, user_id, "goal_review", "daily", now, Some("09:00")).await;
    let report = sweep(pool, Some(&env.enqueuer), now).await.unwrap();
    assert_eq!((report.queued, report.suppressed), (1, 1));
    // A reminder queued before the unsubscription is suppressed by the sender.
    let other = user(pool, "late", "Lee", "UTC").await;
    let mut conn = pool.acquire().await.unwrap();
    let queued = deliveries::queue(
        &mut conn,
        &NewDelivery {
            user_id: Some(other),
            recipient: None,
            template: Template::ReminderBudgetReview,
            data: json!({"message": null}),
            dedupe_key: "late:1".into(),
            scheduled_for: now,
        },
    )
    .await
    .unwrap();
    drop(conn);
    unsubscribe::suppress(pool, other, Category::Reminders, "one_click")
        .await
        .unwrap();
    mingus_common::jobs::outbox::push_after_commit(
        pool,
        &env.enqueuer,
        &[queued.envelope().unwrap()],
    )
    .await;
    // Transactional mail still goes to the unsubscribed user.
    super::queue(
        &env,
        user_id,
        Template::ReportReady,
        json!({"report_id": "r1", "report_name": "Taxes"}),
        "quiet:report",
    )
    .await;
    let worker = TestWorker::spawn(env.config.clone(), &[Queue::Email]).await;
    until(
        Duration::from_secs(30),
        "the report sent and the late one suppressed",
        || async {
            let states: Vec<(String, String)> = sqlx::query_as(
                "SELECT dedupe_key, status FROM email_deliveries ORDER BY dedupe_key",
            )
            .fetch_all(pool)
            .await
            .unwrap();
            let done = states.iter().all(|(_, s)| s == "sent" || s == "suppressed");
            done.then_some(())
        },
    )
    .await;
    let statuses: Vec<String> =
        sqlx::query_scalar("SELECT status FROM email_deliveries ORDER BY template")
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(statuses, ["suppressed", "suppressed", "sent"]);
    assert_eq!(smtp.messages_to(&address("late")).len(), 0);
    let quiet = smtp.messages_to(&address("quiet"));
    assert_eq!(quiet.len(), 1);
    assert_eq!(quiet[0].header("X-Mingus-Template"), Some("report_ready"));
    worker.stop().await.unwrap();
}

#[tokio::test]
async fn deliveries_scheduled_for_later_get_their_job_from_the_sweep_once_due() {
    let smtp = SmtpServer::start();
    let env = env_with(&smtp, &[]).await;
    let pool = &env.db.pool;
    let user_id = user(pool, "later", "Lou", "UTC").await;
    let at = Utc::now() + chrono::Duration::hours(2);
    let mut conn = pool.acquire().await.unwrap();
    let queued = deliveries::queue(
        &mut conn,
        &NewDelivery {
            user_id: Some(user_id),
            recipient: None,
            template: Template::ReportReady,
            data: json!({"report_id": "r2", "report_name": "Later"}),
            dedupe_key: "later:1".into(),
            scheduled_for: at,
        },
    )
    .await
    .unwrap();
    drop(conn);
    assert_eq!(queued, Queued::Scheduled);
    let outbox = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM job_outbox")
            .fetch_one(pool)
            .await
            .unwrap()
    };
    assert_eq!(outbox().await, 0, "no job before it is due");
    assert_eq!(sweep(pool, None, Utc::now()).await.unwrap().staged, 0);
    let worker = TestWorker::spawn(env.config.clone(), &[Queue::Email]).await;
    // The sweep job itself, as the scheduler enqueues it, with a clock past `at`: the sweep sees the
    // real clock, so run the library sweep with the injected one and let the worker send.
    let report = sweep(pool, Some(&env.enqueuer), at).await.unwrap();
    assert_eq!(report.staged, 1);
    assert_eq!(outbox().await, 1);
    let id: Uuid = sqlx::query_scalar("SELECT id FROM email_deliveries")
        .fetch_one(pool)
        .await
        .unwrap();
    super::wait_for_status(pool, id, "sent", Duration::from_secs(30)).await;
    assert_eq!(smtp.messages_to(&address("later")).len(), 1);
    assert_eq!(
        sweep(pool, None, at).await.unwrap().staged,
        0,
        "staged once"
    );
    // And the scheduled job kind runs on a worker (a reminder due now, end to end).
    reminder(pool, user_id, "health_checkin", "once", Utc::now(), None).await;
    env.enqueuer
        .enqueue(&ReminderSweep {}, EnqueueOptions::default())
        .await
        .unwrap();
    until(Duration::from_secs(30), "the reminder e-mail", || async {
        smtp.messages_to(&address("later"))
            .iter()
            .any(|m| m.header("X-Mingus-Template") == Some("reminder_health_checkin"))
            .then_some(())
    })
    .await;
    assert_eq!(ReminderSweep::SPEC.queue, Queue::Email);
    worker.stop().await.unwrap();
}
