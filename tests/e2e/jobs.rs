//! The job runtime end to end: enqueue, run, ledger, our retry policy, dead letters, pickup latency.

use std::time::Duration;

use mingus_common::jobs::catalog::BenchNoop;
use mingus_common::jobs::{EnqueueOptions, Job};
use mingus_common::queue::Queue;
use mingus_tests::wait::{count, until};
use mingus_tests::{JobEnv, TestWorker};
use uuid::Uuid;

async fn runs_of(env: &JobEnv, job_id: Uuid) -> Vec<(i32, String)> {
    sqlx::query_as("SELECT attempt, status FROM job_runs WHERE job_id = $1 ORDER BY attempt")
        .bind(job_id)
        .fetch_all(&env.db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn jobs_run_once_each_and_land_in_the_ledger() {
    let env = JobEnv::new().await;
    let worker = TestWorker::spawn(env.config.clone(), &[Queue::Bench]).await;
    let jobs: Vec<BenchNoop> = (0..300)
        .map(|i| BenchNoop {
            mark: Some(format!("m{i}")),
            ..Default::default()
        })
        .collect();
    env.enqueuer.enqueue_many(&jobs).await.unwrap();
    until(Duration::from_secs(30), "300 succeeded runs", || async {
        (count(
            &env.db.pool,
            "SELECT count(*) FROM job_runs WHERE status = 'succeeded'",
        )
        .await
            == 300)
            .then_some(())
    })
    .await;
    assert_eq!(
        count(&env.db.pool, "SELECT count(*) FROM bench_marks").await,
        300
    );
    assert_eq!(
        count(&env.db.pool, "SELECT count(DISTINCT job_id) FROM job_runs").await,
        300,
        "each job ran once"
    );
    let (worker_name, summary): (String, String) =
        sqlx::query_as("SELECT worker, args_summary FROM job_runs LIMIT 1")
            .fetch_one(&env.db.pool)
            .await
            .unwrap();
    assert!(worker_name.starts_with("bench@"), "{worker_name}");
    assert!(summary.contains("\"mark\""), "{summary}");
    worker.stop().await.unwrap();
}

#[tokio::test]
async fn an_always_failing_job_runs_exactly_its_max_attempts_then_is_dead() {
    let env = JobEnv::new().await;
    let worker = TestWorker::spawn(env.config.clone(), &[Queue::Bench]).await;
    let job = BenchNoop {
        fail_until_attempt: u32::MAX,
        ..Default::default()
    };
    let job_id = env
        .enqueuer
        .enqueue(&job, EnqueueOptions::default())
        .await
        .unwrap();
    let max = BenchNoop::SPEC.max_attempts as usize;
    until(Duration::from_secs(30), "the dead letter", || async {
        (count(
            &env.db.pool,
            &format!("SELECT count(*) FROM job_dead_letters WHERE job_id = '{job_id}'"),
        )
        .await
            == 1)
            .then_some(())
    })
    .await;
    // Give a would-be extra attempt (apalis' own 25-retry loop) time to show up.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let runs = runs_of(&env, job_id).await;
    let expected: Vec<(i32, String)> = (1..=max as i32)
        .map(|a| {
            (
                a,
                if a == max as i32 { "dead" } else { "retrying" }.to_owned(),
            )
        })
        .collect();
    assert_eq!(runs, expected, "exactly max_attempts executions");
    let (attempts, error): (i32, String) =
        sqlx::query_as("SELECT attempts, last_error FROM job_dead_letters WHERE job_id = $1")
            .bind(job_id)
            .fetch_one(&env.db.pool)
            .await
            .unwrap();
    assert_eq!(attempts as usize, max);
    assert!(error.contains("asked to fail"), "{error}");
    // Backoff: the gaps between attempts grow (base 200 ms, doubling, with jitter in [50%, 100%]).
    let times: Vec<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT started_at FROM job_runs WHERE job_id = $1 ORDER BY attempt")
            .bind(job_id)
            .fetch_all(&env.db.pool)
            .await
            .unwrap();
    let first_gap = times[1] - times[0];
    assert!(
        first_gap >= chrono::Duration::milliseconds(90),
        "retry waited for its backoff: {first_gap}"
    );
    let scheduled: i64 = redis::cmd("ZCARD")
        .arg(env.enqueuer.keys(Queue::Bench).scheduled())
        .query_async(&mut env.enqueuer.connection())
        .await
        .unwrap();
    assert_eq!(scheduled, 0, "nothing ever enters apalis' own retry set");
    worker.stop().await.unwrap();
}

#[tokio::test]
async fn permanent_failures_die_at_once_and_transient_ones_recover() {
    let env = JobEnv::new().await;
    let worker = TestWorker::spawn(env.config.clone(), &[Queue::Bench]).await;
    let permanent = env
        .enqueuer
        .enqueue(
            &BenchNoop {
                fail_permanently: true,
                ..Default::default()
            },
            EnqueueOptions::default(),
        )
        .await
        .unwrap();
    let flaky = env
        .enqueuer
        .enqueue(
            &BenchNoop {
                fail_until_attempt: 2,
                mark: Some("flaky".into()),
                ..Default::default()
            },
            EnqueueOptions::default(),
        )
        .await
        .unwrap();
    until(Duration::from_secs(30), "both settled", || async {
        let runs = runs_of(&env, flaky).await;
        (runs.last().is_some_and(|r| r.1 == "succeeded")
            && !runs_of(&env, permanent).await.is_empty())
        .then_some(())
    })
    .await;
    assert_eq!(runs_of(&env, permanent).await, vec![(1, "dead".to_owned())]);
    assert_eq!(
        runs_of(&env, flaky).await,
        vec![
            (1, "retrying".to_owned()),
            (2, "retrying".to_owned()),
            (3, "succeeded".to_owned())
        ]
    );
    assert_eq!(
        count(
            &env.db.pool,
            "SELECT count(*) FROM bench_marks WHERE mark = 'flaky'"
        )
        .await,
        1
    );
    worker.stop().await.unwrap();
}

#[tokio::test]
async fn an_idle_worker_picks_up_a_new_job_within_250_ms_at_p99() {
    let env = JobEnv::new().await;
    let worker = TestWorker::spawn(env.config.clone(), &[Queue::Bench]).await;
    let mut latencies = Vec::new();
    for _ in 0..50 {
        // Idle between jobs, as a quiet night queue is.
        tokio::time::sleep(Duration::from_millis(120)).await;
        let job_id = env
            .enqueuer
            .enqueue(&BenchNoop::default(), EnqueueOptions::default())
            .await
            .unwrap();
        let latency: f64 = until(Duration::from_secs(10), "the run", || async {
            sqlx::query_scalar::<_, f64>(
                "SELECT extract(epoch FROM started_at - enqueued_at)::float8 * 1000 FROM job_runs WHERE job_id = $1",
            )
            .bind(job_id)
            .fetch_optional(&env.db.pool)
            .await
            .unwrap()
        })
        .await;
        latencies.push(latency);
    }
    latencies.sort_by(f64::total_cmp);
    let p99 = latencies[(latencies.len() * 99).div_ceil(100) - 1];
    assert!(
        p99 <= 250.0,
        "p99 pickup {p99:.1} ms over 50 pickups: {latencies:?}"
    );
    worker.stop().await.unwrap();
}
