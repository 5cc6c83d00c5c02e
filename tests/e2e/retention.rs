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
