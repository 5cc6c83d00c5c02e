//! The rollup through the real job path: the nightly schedule's tick → the fan-out job → one shard job per
//! (date, shard) on the `analytics` queue → rows; and partition maintenance as a job.

use std::time::Duration;

use chrono::{Datelike, Duration as Span, NaiveDate, Utc};
use mingus_common::analytics::stage;
use mingus_common::cron::{CronTable, fire_due};
use mingus_common::jobs::analytics_jobs::{
    AnalyticsRollup, AnalyticsRollupShard, PartitionMaintenance,
};
use mingus_common::jobs::{EnqueueOptions, Job};
use mingus_common::queue::Queue;
use mingus_tests::wait::{count, until};
use mingus_tests::{JobEnv, TestWorker};
use rand::SeedableRng;
use rand::rngs::StdRng;
use uuid::Uuid;

use super::{RandomUser, assert_matches_reference, insert, random_user};

const LIMIT: Duration = Duration::from_secs(60);

async fn succeeded(env: &JobEnv, kind: &str) -> i64 {
    count(
        &env.db.pool,
        &format!("SELECT count(*) FROM job_runs WHERE kind = '{kind}' AND status = 'succeeded'"),
    )
    .await
}

#[tokio::test]
async fn the_nightly_tick_rolls_up_yesterday_and_the_day_before_in_shard_jobs() {
    let env = JobEnv::with(&[("MINGUS_ANALYTICS_SHARDS", "3")]).await;
    let today = Utc::now().date_naive();
    let tick_day =
        NaiveDate::from_ymd_opt(today.year(), today.month(), 1).unwrap() + Span::days(12);
    let (day_before, yesterday) = (tick_day - Span::days(2), tick_day - Span::days(1));
    let mut rng = StdRng::seed_from_u64(99);
    let mut users: Vec<RandomUser> = (0..25).map(|_| random_user(&mut rng, yesterday)).collect();
    users.extend((0..25).map(|_| random_user(&mut rng, day_before)));
    insert(&env.db.pool, &users).await;

    let schedule = CronTable::defaults()
        .get("analytics_rollup")
        .unwrap()
        .clone();
    assert_eq!(schedule.expression.source(), "0 15 0 * * *");
    let table = CronTable::new(vec![schedule]).unwrap();
    // The first pass registers the schedule; the next 00:15 fires it.
    let first = (tick_day - Span::days(1))
        .and_hms_opt(12, 0, 0)
        .unwrap()
        .and_utc();
    fire_due(&env.db.pool, &env.enqueuer, &table, first, "test").await;
    let due = tick_day.and_hms_opt(0, 15, 5).unwrap().and_utc();
    let report = fire_due(&env.db.pool, &env.enqueuer, &table, due, "test").await;
    assert_eq!(report.fired.len(), 1, "{report:?}");

    let worker = TestWorker::spawn(env.config.clone(), &[Queue::Analytics]).await;
    until(LIMIT, "the fan-out and six shard jobs", || async {
        (succeeded(&env, AnalyticsRollup::SPEC.kind).await == 1
            && succeeded(&env, AnalyticsRollupShard::SPEC.kind).await == 6)
            .then_some(())
    })
    .await;
    worker.stop().await.unwrap();
    let summaries: Vec<String> = sqlx::query_scalar(
        "SELECT args_summary FROM job_runs WHERE kind = $1 ORDER BY args_summary",
    )
    .bind(AnalyticsRollupShard::SPEC.kind)
    .fetch_all(&env.db.pool)
    .await
    .unwrap();
    assert_eq!(summaries.len(), 6);
    assert!(summaries.contains(&format!("{day_before} shard 1/3")));
    assert!(summaries.contains(&format!("{yesterday} shard 3/3")));
    for date in [day_before, yesterday] {
        assert_matches_reference(&env.db.pool, &users, date).await;
    }
    let open: i64 = count(
        &env.db.pool,
        "SELECT count(*) FROM job_outbox WHERE completed_at IS NULL",
    )
    .await;
    assert_eq!(open, 0, "every staged shard job completed its outbox row");
}

/// A retried fan-out stages its shard jobs under the same ids: nothing twice.
#[tokio::test]
async fn a_retried_fan_out_stages_no_shard_twice() {
    let env = JobEnv::new().await;
    let parent = Uuid::now_v7();
    let dates = [NaiveDate::from_ymd_opt(2026, 5, 1).unwrap()];
    let jobs = stage::shard_jobs(&dates, 4, Some(parent)).unwrap();
    assert_eq!(jobs, stage::shard_jobs(&dates, 4, Some(parent)).unwrap());
    let mut tx = env.db.pool.begin().await.unwrap();
    assert_eq!(stage::stage_shards(&mut tx, &jobs).await.unwrap().len(), 4);
    assert!(
        stage::stage_shards(&mut tx, &jobs)
            .await
            .unwrap()
            .is_empty()
    );
    tx.commit().await.unwrap();
    // Another fan-out (a new backfill of the same day) is new work.
    let again = stage::shard_jobs(&dates, 4, Some(Uuid::now_v7())).unwrap();
    let mut tx = env.db.pool.begin().await.unwrap();
    assert_eq!(stage::stage_shards(&mut tx, &again).await.unwrap().len(), 4);
    tx.commit().await.unwrap();
    assert!(stage::shard_jobs(&dates, 0, None).is_err());
}

#[tokio::test]
async fn partition_maintenance_runs_as_a_job_and_premakes_next_months() {
    let env = JobEnv::new().await;
    sqlx::query(
        "UPDATE partitioned_tables SET premake_months = 5 WHERE table_name = 'activity_events'",
    )
    .execute(&env.db.pool)
    .await
    .unwrap();
    let job_id = env
        .enqueuer
        .enqueue(&PartitionMaintenance::default(), EnqueueOptions::default())
        .await
        .unwrap();
    let worker = TestWorker::spawn(env.config.clone(), &[Queue::Maintenance]).await;
    until(LIMIT, "the maintenance job", || async {
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM job_runs WHERE job_id = $1")
                .bind(job_id)
                .fetch_optional(&env.db.pool)
                .await
                .unwrap();
        status
    })
    .await;
    worker.stop().await.unwrap();
    let status: String = sqlx::query_scalar("SELECT status FROM job_runs WHERE job_id = $1")
        .bind(job_id)
        .fetch_one(&env.db.pool)
        .await
        .unwrap();
    assert_eq!(status, "succeeded");
    let today = Utc::now().date_naive();
    let fifth =
        NaiveDate::from_ymd_opt(today.year(), today.month(), 1).unwrap() + chrono::Months::new(5);
    let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(format!("activity_events{}", fifth.format("_p%Y_%m")))
        .fetch_one(&env.db.pool)
        .await
        .unwrap();
    assert!(exists, "five months ahead premade for activity_events");
}
