//! Defect 9: Redis memory stays bounded — finished jobs are trimmed by count and age, incrementally.

use std::time::Duration;

use mingus_common::jobs::catalog::BenchNoop;
use mingus_common::queue::Queue;
use mingus_tests::wait::{count, until};
use mingus_tests::{JobEnv, TestWorker};
use mingus_worker::retention;

async fn sizes(env: &JobEnv) -> (i64, i64, i64, i64) {
    let keys = env.enqueuer.keys(Queue::Bench);
    let mut conn = env.enqueuer.connection();
    redis::pipe()
        .hlen(keys.data())
        .scard(keys.done())
        .zcard(keys.finished_index())
        .cmd("EVAL")
        .arg("return #redis.call('KEYS', ARGV[1])")
        .arg(0)
        .arg(format!("{}:*", keys.meta_prefix()))
        .query_async(&mut conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn finished_jobs_are_trimmed_by_count_then_by_age_and_the_ledger_by_age() {
    let env = JobEnv::new().await;
    let worker = TestWorker::spawn(env.config.clone(), &[Queue::Bench]).await;
    env.enqueuer
        .enqueue_many(&vec![BenchNoop::default(); 1_200])
        .await
        .unwrap();
    until(Duration::from_secs(60), "1,200 runs indexed", || async {
        let (_, done, indexed, _) = sizes(&env).await;
        (done == 1_200 && indexed == 1_200).then_some(())
    })
    .await;
    worker.stop().await.unwrap();
    assert_eq!(sizes(&env).await, (1_200, 1_200, 1_200, 1_200));

    let removed = retention::trim_redis(
        &env.enqueuer,
        &env.enqueuer.connection(),
        100,
        Duration::from_secs(3600),
    )
    .await
    .unwrap();
    assert_eq!(
        removed, 1_100,
        "the oldest beyond the count go, several batches of at most 500"
    );
    assert_eq!(sizes(&env).await, (100, 100, 100, 100));

    let removed = retention::trim_redis(
        &env.enqueuer,
        &env.enqueuer.connection(),
        100,
        Duration::ZERO,
    )
    .await
    .unwrap();
    assert_eq!(removed, 100, "everything older than the age limit goes");
    assert_eq!(sizes(&env).await, (0, 0, 0, 0));

    assert_eq!(
        count(&env.db.pool, "SELECT count(*) FROM job_runs").await,
        1_200
    );
    sqlx::query(
        "UPDATE job_runs SET finished_at = finished_at - interval '40 days' WHERE id % 2 = 0",
    )
    .execute(&env.db.pool)
    .await
    .unwrap();
    let gone = retention::trim_ledger(&env.db.pool, Duration::from_secs(30 * 24 * 3600))
        .await
        .unwrap();
    assert_eq!(gone, 600);
    assert_eq!(
        count(&env.db.pool, "SELECT count(*) FROM job_runs").await,
        600
    );
}

#[tokio::test]
async fn unindexed_finished_jobs_are_found_by_scanning_and_trimmed() {
    let env = JobEnv::new().await;
    let worker = TestWorker::spawn(env.config.clone(), &[Queue::Bench]).await;
    env.enqueuer
        .enqueue_many(&vec![BenchNoop::default(); 50])
        .await
        .unwrap();
    until(Duration::from_secs(30), "50 indexed", || async {
        (sizes(&env).await.2 == 50).then_some(())
    })
    .await;
    worker.stop().await.unwrap();
    // As if the ledger batch carrying the index entries had been lost.
    redis::cmd("DEL")
        .arg(env.enqueuer.keys(Queue::Bench).finished_index())
        .query_async::<()>(&mut env.enqueuer.connection())
        .await
        .unwrap();
    let removed = retention::trim_redis(
        &env.enqueuer,
        &env.enqueuer.connection(),
        1_000,
        Duration::ZERO,
    )
    .await
    .unwrap();
    assert_eq!(removed, 50);
    assert_eq!(sizes(&env).await, (0, 0, 0, 0));
}

/// The job history in PostgreSQL is trimmed by age too: completed outbox rows and scheduler runs older
/// than the retention go; a pending outbox row stays whatever its age (it is a job still to re-drive).
#[tokio::test]
async fn completed_outbox_rows_and_old_scheduler_runs_are_trimmed_pending_outbox_rows_never() {
    let env = JobEnv::new().await;
    let pool = &env.db.pool;
    // (completed, age in days) per outbox row.
    for (completed, age) in [
        (true, 40),
        (true, 40),
        (true, 40),
        (true, 1),
        (true, 1),
        (false, 40),
        (false, 40),
    ] {
        sqlx::query(
            "INSERT INTO job_outbox (job_id, queue, kind, args, max_attempts, created_at, completed_at, outcome)
             VALUES (gen_random_uuid(), 'bench', 'bench.noop', '{}', 3, now() - make_interval(days => $1),
                     CASE WHEN $2 THEN now() - make_interval(days => $1) END, CASE WHEN $2 THEN 'succeeded' END)",
        )
        .bind(age)
        .bind(completed)
        .execute(pool)
        .await
        .unwrap();
    }
    for (tick, age) in [(1, 40), (2, 40), (3, 40), (4, 1), (5, 1)] {
        sqlx::query(
            "INSERT INTO cron_runs (schedule, tick_local, tick_at, job_id, scheduler, created_at)
             VALUES ('retention', '2026-01-01'::timestamp + make_interval(days => $1),
                     now() - make_interval(days => $2), gen_random_uuid(), 'test', now() - make_interval(days => $2))",
        )
        .bind(tick)
        .bind(age)
        .execute(pool)
        .await
        .unwrap();
    }
    let keep = Duration::from_secs(30 * 24 * 3600);
    let trimmed = retention::trim_history(pool, keep).await.unwrap();
    assert_eq!(
        trimmed,
        retention::HistoryTrimmed {
            ledger: 0,
            outbox: 3,
            cron_runs: 3
        }
    );
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM job_outbox WHERE completed_at IS NULL"
        )
        .await,
        2,
        "pending rows stay"
    );
    assert_eq!(count(pool, "SELECT count(*) FROM job_outbox").await, 4);
    assert_eq!(count(pool, "SELECT count(*) FROM cron_runs").await, 2);
    let again = retention::trim_history(pool, keep).await.unwrap();
    assert_eq!(again, retention::HistoryTrimmed::default());
}
