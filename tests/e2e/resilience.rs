//! Regression tests for the apalis-redis 1.0 defects of NOTES-apalis and for Redis failures.

use std::time::{Duration, Instant};

use mingus_common::jobs::catalog::BenchNoop;
use mingus_common::jobs::{EnqueueOptions, Envelope, outbox};
use mingus_common::queue::Queue;
use mingus_tests::wait::{count, until};
use mingus_tests::{JobEnv, RedisServer, TestWorker, WorkerProcess};
use uuid::Uuid;

async fn redis_count(env: &JobEnv, command: &str, key: String) -> i64 {
    redis::cmd(command)
        .arg(key)
        .query_async(&mut env.enqueuer.connection())
        .await
        .unwrap()
}

async fn registered_workers(env: &JobEnv) -> Vec<String> {
    redis::cmd("ZRANGE")
        .arg(env.enqueuer.keys(Queue::Bench).workers())
        .arg(0)
        .arg(-1)
        .query_async(&mut env.enqueuer.connection())
        .await
        .unwrap()
}

/// Defect 2: a backlog larger than Lua's unpack limit, built while no worker runs — 20,000 new jobs plus
/// 9,000 retries all due at once — is processed completely by one worker that never dies.
#[tokio::test]
async fn a_backlog_of_twenty_thousand_jobs_is_processed_and_no_worker_dies() {
    let env = JobEnv::new().await;
    let jobs = vec![BenchNoop::default(); 20_000];
    env.enqueuer.enqueue_many(&jobs).await.unwrap();
    let retries: Vec<Envelope> = (0..9_000)
        .map(|_| {
            Envelope::new(&BenchNoop::default(), Uuid::now_v7())
                .unwrap()
                .next_attempt()
        })
        .collect();
    let past = chrono::Utc::now() - chrono::Duration::seconds(5);
    env.enqueuer.push(&retries, Some(past), None).await.unwrap();
    assert_eq!(
        redis_count(&env, "ZCARD", env.enqueuer.keys(Queue::Bench).delayed()).await,
        0,
        "due at once"
    );

    let worker = TestWorker::spawn(env.config.clone(), &[Queue::Bench]).await;
    until(Duration::from_secs(240), "29,000 runs", || async {
        (count(&env.db.pool, "SELECT count(*) FROM job_runs").await >= 29_000).then_some(())
    })
    .await;
    assert_eq!(
        count(&env.db.pool, "SELECT count(*) FROM job_runs").await,
        29_000,
        "each job once"
    );
    assert_eq!(
        count(&env.db.pool, "SELECT count(DISTINCT worker) FROM job_runs").await,
        1,
        "no worker restarted"
    );
    assert_eq!(
        redis_count(&env, "ZCARD", env.enqueuer.keys(Queue::Bench).scheduled()).await,
        0
    );
    worker.stop().await.unwrap();
}

/// Defect 4 and graceful shutdown: SIGTERM lets the in-flight job finish, exits 0, returns buffered jobs;
/// a new process starts at once and finishes the rest, every job exactly once.
#[tokio::test]
async fn sigterm_drains_and_a_restarted_worker_continues_at_once() {
    let env = JobEnv::new().await;
    let mut first = WorkerProcess::start(&env, "bench", &[("MINGUS_QUEUE_CONCURRENCY", "bench=2")]);
    until(
        Duration::from_secs(30),
        "the worker to register",
        || async { (!registered_workers(&env).await.is_empty()).then_some(()) },
    )
    .await;
    let jobs: Vec<BenchNoop> = (0..40)
        .map(|i| BenchNoop {
            sleep_ms: 300,
            mark: Some(format!("g{i}")),
            ..Default::default()
        })
        .collect();
    env.enqueuer.enqueue_many(&jobs).await.unwrap();
    until(Duration::from_secs(20), "some runs", || async {
        (count(&env.db.pool, "SELECT count(*) FROM job_runs").await >= 2).then_some(())
    })
    .await;
    let stopping = Instant::now();
    first.signal("TERM");
    let status = first.wait(Duration::from_secs(35));
    assert_eq!(status.code(), Some(0), "clean exit after SIGTERM");
    assert!(
        stopping.elapsed() < Duration::from_secs(30),
        "within MINGUS_SHUTDOWN_TIMEOUT"
    );
    // Nothing is left held by the stopped worker: finished or back in the queue.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let finished = count(&env.db.pool, "SELECT count(*) FROM job_runs").await;
    let waiting = redis_count(&env, "LLEN", env.enqueuer.keys(Queue::Bench).active()).await;
    assert!(
        finished < 40,
        "the worker stopped early ({finished} finished)"
    );
    assert_eq!(
        finished + waiting,
        40,
        "in-flight jobs finished, buffered ones returned ({finished} + {waiting})"
    );

    let _second = WorkerProcess::start(&env, "bench", &[]);
    until(Duration::from_secs(60), "all 40 runs", || async {
        (count(&env.db.pool, "SELECT count(*) FROM job_runs").await >= 40).then_some(())
    })
    .await;
    assert_eq!(
        count(&env.db.pool, "SELECT count(DISTINCT job_id) FROM job_runs").await,
        40
    );
    assert_eq!(
        count(&env.db.pool, "SELECT count(*) FROM job_runs").await,
        40,
        "no job ran twice"
    );
    assert_eq!(
        count(&env.db.pool, "SELECT count(DISTINCT worker) FROM job_runs").await,
        2
    );
}

/// Defect 5: `kill -9` during a job; another worker re-runs it within the orphan window, the effect once.
#[tokio::test]
async fn a_job_of_a_killed_worker_is_rerun_within_the_orphan_window_with_one_effect() {
    let env = JobEnv::with(&[
        ("MINGUS_WORKER_HEARTBEAT_SECS", "1"),
        ("MINGUS_WORKER_MISSED_HEARTBEATS", "3"),
    ])
    .await;
    let fast_orphans = [
        ("MINGUS_WORKER_HEARTBEAT_SECS", "1"),
        ("MINGUS_WORKER_MISSED_HEARTBEATS", "3"),
    ];
    let mut victim = WorkerProcess::start(&env, "bench", &fast_orphans);
    let job = BenchNoop {
        sleep_ms: 4_000,
        mark: Some("kill-9".into()),
        ..Default::default()
    };
    let job_id = env
        .enqueuer
        .enqueue(&job, EnqueueOptions::default())
        .await
        .unwrap();
    let keys = env.enqueuer.keys(Queue::Bench);
    // Wait until the victim holds the job in flight.
    let victim_name = until(Duration::from_secs(30), "the job in flight", || async {
        for name in registered_workers(&env).await {
            if redis_count(&env, "SCARD", format!("{}:{name}", keys.inflight_prefix())).await > 0 {
                return Some(name);
            }
        }
        None
    })
    .await;
    victim.signal("KILL");
    victim.wait(Duration::from_secs(5));
    let killed_at = Instant::now();

    let rescuer = TestWorker::spawn(env.config.clone(), &[Queue::Bench]).await;
    let window = env.config.jobs.orphan_window();
    let started: chrono::DateTime<chrono::Utc> =
        until(window + Duration::from_secs(20), "the re-run", || async {
            sqlx::query_scalar(
                "SELECT started_at FROM job_runs WHERE job_id = $1 AND status = 'succeeded'",
            )
            .bind(job_id)
            .fetch_optional(&env.db.pool)
            .await
            .unwrap()
        })
        .await;
    let rerun_after = killed_at.elapsed() - Duration::from_millis(4_000);
    assert!(
        rerun_after <= window + Duration::from_secs(5),
        "re-run started {rerun_after:?} after the kill (window {window:?}), at {started}"
    );
    let runs: Vec<String> = sqlx::query_scalar("SELECT worker FROM job_runs WHERE job_id = $1")
        .bind(job_id)
        .fetch_all(&env.db.pool)
        .await
        .unwrap();
    assert_eq!(
        runs.len(),
        1,
        "the killed attempt left no ledger row, the re-run one"
    );
    assert_ne!(runs[0], victim_name, "another worker ran it");
    assert_eq!(
        count(
            &env.db.pool,
            "SELECT count(*) FROM bench_marks WHERE mark = 'kill-9'"
        )
        .await,
        1,
        "effect once"
    );
    rescuer.stop().await.unwrap();
}

/// `kill -9` re-runs at most the jobs that were running at that moment. apalis acknowledges completed
/// jobs only once its fetched batch is used up, so a worker holding more fetched jobs than it runs at a
/// time had completed-but-unacknowledged jobs for as long as the batch lasted, and a kill re-ran them
/// all (a probe saw 89–178 of 300 report jobs run twice over three kills). The worker fetches at most
/// as many jobs as it runs at once, which keeps every acknowledgement prompt.
#[tokio::test]
async fn a_killed_worker_reruns_at_most_the_jobs_it_was_running() {
    const JOBS: usize = 150;
    const CONCURRENCY: usize = 3;
    const KILLS: usize = 3;
    let vars = [
        ("MINGUS_WORKER_HEARTBEAT_SECS", "1"),
        ("MINGUS_WORKER_MISSED_HEARTBEATS", "3"),
        ("MINGUS_QUEUE_CONCURRENCY", "bench=3"),
    ];
    let env = JobEnv::with(&vars).await;
    let jobs = vec![
        BenchNoop {
            sleep_ms: 50,
            ..Default::default()
        };
        JOBS
    ];
    env.enqueuer.enqueue_many(&jobs).await.unwrap();
    let finished = || async {
        count(
            &env.db.pool,
            "SELECT count(DISTINCT job_id) FROM job_runs WHERE status = 'succeeded'",
        )
        .await
    };
    for kill in 0..KILLS {
        let mut victim = WorkerProcess::start(&env, "bench", &vars);
        let target = (kill as i64 + 1) * 25;
        until(
            Duration::from_secs(60),
            "jobs finished before the kill",
            || async { (finished().await >= target).then_some(()) },
        )
        .await;
        victim.signal("KILL");
        victim.wait(Duration::from_secs(5));
    }
    let survivor = WorkerProcess::start(&env, "bench", &vars);
    until(Duration::from_secs(90), "every job finished", || async {
        (finished().await >= JOBS as i64).then_some(())
    })
    .await;
    drop(survivor);
    let twice = count(
        &env.db.pool,
        "SELECT count(*) FROM (SELECT job_id FROM job_runs WHERE status = 'succeeded'
                               GROUP BY job_id HAVING count(*) > 1) AS t",
    )
    .await;
    assert!(
        twice <= (KILLS * CONCURRENCY) as i64,
        "{twice} jobs ran twice over {KILLS} kills of a worker running {CONCURRENCY} at a time"
    );
}

/// Defects 7 and 10: Redis restarts under running workers; they reconnect and continue, no process restart.
#[tokio::test]
async fn workers_continue_after_redis_restarts() {
    let mut redis = RedisServer::start();
    let env = JobEnv::with(&[("REDIS_URL", &redis.url())]).await;
    let worker = TestWorker::spawn(env.config.clone(), &[Queue::Bench]).await;
    let before = env
        .enqueuer
        .enqueue(&BenchNoop::default(), EnqueueOptions::default())
        .await
        .unwrap();
    until(Duration::from_secs(20), "the first job", || async {
        (count(
            &env.db.pool,
            &format!("SELECT count(*) FROM job_runs WHERE job_id = '{before}'"),
        )
        .await
            == 1)
            .then_some(())
    })
    .await;

    redis.kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    redis.restart();

    // The enqueuer's connection manager reconnects too; retry the push briefly while it does.
    let after = until(
        Duration::from_secs(20),
        "a push after the restart",
        || async {
            env.enqueuer
                .enqueue(&BenchNoop::default(), EnqueueOptions::default())
                .await
                .ok()
        },
    )
    .await;
    until(
        Duration::from_secs(60),
        "the job pushed after the restart",
        || async {
            (count(
                &env.db.pool,
                &format!("SELECT count(*) FROM job_runs WHERE job_id = '{after}'"),
            )
            .await
                == 1)
                .then_some(())
        },
    )
    .await;
    worker.stop().await.unwrap();
}

/// Defect-free durability (DESIGN §2): FLUSHALL loses no Postgres-backed work; the outbox sweep revives it.
#[tokio::test]
async fn after_flushall_the_outbox_sweep_completes_every_unit_of_work() {
    let redis = RedisServer::start();
    let env = JobEnv::with(&[("REDIS_URL", &redis.url())]).await;
    let mut envelopes = Vec::new();
    let mut tx = env.db.pool.begin().await.unwrap();
    for i in 0..25 {
        let job = BenchNoop {
            mark: Some(format!("outbox-{i}")),
            ..Default::default()
        };
        envelopes.push(outbox::stage(&mut tx, &job, Uuid::now_v7()).await.unwrap());
    }
    tx.commit().await.unwrap();
    assert!(outbox::push_after_commit(&env.db.pool, &env.enqueuer, &envelopes).await);

    redis::cmd("FLUSHALL")
        .query_async::<()>(&mut env.enqueuer.connection())
        .await
        .unwrap();
    let worker = TestWorker::spawn(env.config.clone(), &[Queue::Bench]).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        count(&env.db.pool, "SELECT count(*) FROM job_runs").await,
        0,
        "the flush lost every job"
    );

    // A re-push of jobs Redis still has is dropped; only lost ones come back.
    let report = outbox::sweep(&env.db.pool, &env.enqueuer, Duration::ZERO, 1_000)
        .await
        .unwrap();
    assert_eq!(report.revived, 25);
    until(
        Duration::from_secs(30),
        "every outbox row completed",
        || async {
            (count(
                &env.db.pool,
                "SELECT count(*) FROM job_outbox WHERE outcome = 'succeeded'",
            )
            .await
                == 25)
                .then_some(())
        },
    )
    .await;
    assert_eq!(
        count(&env.db.pool, "SELECT count(*) FROM bench_marks").await,
        25
    );
    let again = outbox::sweep(&env.db.pool, &env.enqueuer, Duration::ZERO, 1_000)
        .await
        .unwrap();
    assert_eq!(
        again,
        outbox::SweepReport {
            examined: 0,
            revived: 0
        },
        "completed work is not revived"
    );
    worker.stop().await.unwrap();
}
