//! The measurements: enqueue rates, drain rates, enqueue-to-start latency at a steady rate.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use chrono::{DateTime, Utc};
use mingus_common::jobs::EnqueueOptions;
use mingus_common::jobs::catalog::BenchNoop;
use tokio::task::JoinSet;

use super::Options;
use super::worker::WorkerProcess;
use mingus_bench::BenchEnv;
use mingus_bench::stats::percentile;

/// How long a stopping worker may take before it is killed.
const STOP_LIMIT: Duration = Duration::from_secs(40);

async fn waiting(env: &BenchEnv) -> anyhow::Result<u64> {
    let mut conn = env.redis();
    Ok(redis::cmd("LLEN")
        .arg(env.keys.active())
        .query_async(&mut conn)
        .await?)
}

fn rate(jobs: usize, elapsed: Duration) -> f64 {
    jobs as f64 / elapsed.as_secs_f64().max(1e-9)
}

/// `enqueue` one job at a time, awaiting each.
pub async fn enqueue_sequential(env: &BenchEnv, jobs: usize) -> anyhow::Result<f64> {
    env.reset().await?;
    let job = BenchNoop::default();
    let started = Instant::now();
    for _ in 0..jobs {
        env.enqueuer
            .enqueue(&job, EnqueueOptions::default())
            .await?;
    }
    let elapsed = started.elapsed();
    ensure!(
        waiting(env).await? == jobs as u64,
        "enqueued jobs are missing"
    );
    Ok(rate(jobs, elapsed))
}

/// `enqueue` one job at a time from `tasks` concurrent tasks (as concurrent API requests would).
pub async fn enqueue_concurrent(env: &BenchEnv, jobs: usize, tasks: usize) -> anyhow::Result<f64> {
    env.reset().await?;
    let tasks = tasks.clamp(1, jobs.max(1));
    let started = Instant::now();
    let mut set = JoinSet::new();
    for t in 0..tasks {
        let enqueuer = env.enqueuer.clone();
        let share = jobs / tasks + usize::from(t < jobs % tasks);
        set.spawn(async move {
            let job = BenchNoop::default();
            for _ in 0..share {
                enqueuer.enqueue(&job, EnqueueOptions::default()).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = set.join_next().await {
        done??;
    }
    let elapsed = started.elapsed();
    ensure!(
        waiting(env).await? == jobs as u64,
        "enqueued jobs are missing"
    );
    Ok(rate(jobs, elapsed))
}

/// `enqueue_many` in chunks of `chunk` jobs.
pub async fn enqueue_bulk(env: &BenchEnv, jobs: usize, chunk: usize) -> anyhow::Result<f64> {
    let batch = vec![BenchNoop::default(); chunk.clamp(1, jobs.max(1))];
    let started = Instant::now();
    let mut sent = 0;
    while sent < jobs {
        let n = batch.len().min(jobs - sent);
        env.enqueuer.enqueue_many(&batch[..n]).await?;
        sent += n;
    }
    let elapsed = started.elapsed();
    ensure!(
        waiting(env).await? == jobs as u64,
        "enqueued jobs are missing"
    );
    Ok(rate(jobs, elapsed))
}

pub struct Drain {
    pub bulk_rate: f64,
    /// From the worker's spawn to its first job start.
    pub startup: Duration,
    /// Jobs over (all acknowledged − first job started).
    pub rate: f64,
    /// Jobs over (all acknowledged − spawn).
    pub wall_rate: f64,
    pub peak_rss_mib: f64,
    pub idle_after_rss_mib: f64,
    /// Worker process CPU (user + system) from spawn to all acknowledged, per job.
    pub worker_cpu_us_per_job: f64,
    /// Redis server CPU over the same time, per job (the whole server: other clients count too).
    pub redis_cpu_us_per_job: f64,
}

/// CPU seconds the Redis server has used (user + system, from `INFO cpu`).
async fn redis_cpu_seconds(env: &BenchEnv) -> anyhow::Result<f64> {
    let mut conn = env.redis();
    let info: String = redis::cmd("INFO").arg("cpu").query_async(&mut conn).await?;
    let field = |name: &str| -> f64 {
        info.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    Ok(field("used_cpu_user:") + field("used_cpu_sys:"))
}

#[derive(sqlx::FromRow)]
struct LedgerSummary {
    runs: i64,
    distinct_jobs: i64,
    not_succeeded: i64,
    first_start: Option<DateTime<Utc>>,
}

async fn ledger_summary(env: &BenchEnv) -> anyhow::Result<LedgerSummary> {
    Ok(sqlx::query_as(
        "SELECT count(*) AS runs, count(DISTINCT job_id) AS distinct_jobs,
                count(*) FILTER (WHERE status <> 'succeeded') AS not_succeeded,
                min(started_at) AS first_start
         FROM job_runs",
    )
    .fetch_one(&env.pool)
    .await?)
}

/// Waits (bounded) until the ledger holds `jobs` rows.
async fn wait_ledger(
    env: &BenchEnv,
    jobs: usize,
    limit: Duration,
) -> anyhow::Result<LedgerSummary> {
    let deadline = Instant::now() + limit;
    loop {
        let summary = ledger_summary(env).await?;
        if summary.runs >= jobs as i64 {
            return Ok(summary);
        }
        if Instant::now() > deadline {
            bail!(
                "the ledger holds {} of {jobs} runs after {limit:?}",
                summary.runs
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every job ran exactly once and succeeded, and nothing is left waiting or in flight.
async fn verify_exactly_once(env: &BenchEnv, jobs: usize) -> anyhow::Result<LedgerSummary> {
    let summary = wait_ledger(env, jobs, Duration::from_secs(60)).await?;
    // A late duplicate would show up within a ledger flush or two.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let summary = LedgerSummary {
        runs: ledger_summary(env).await?.runs,
        ..summary
    };
    ensure!(
        summary.runs == jobs as i64 && summary.distinct_jobs == jobs as i64,
        "lost or duplicated jobs: {} runs of {} distinct jobs, {jobs} enqueued",
        summary.runs,
        summary.distinct_jobs
    );
    ensure!(
        summary.not_succeeded == 0,
        "{} runs did not succeed",
        summary.not_succeeded
    );
    let mut conn = env.redis();
    let (active, delayed, done): (u64, u64, u64) = redis::pipe()
        .llen(env.keys.active())
        .zcard(env.keys.delayed())
        .scard(env.keys.done())
        .query_async(&mut conn)
        .await?;
    ensure!(
        active == 0 && delayed == 0 && done == jobs as u64,
        "Redis disagrees: {active} waiting, {delayed} delayed, {done} done of {jobs}"
    );
    Ok(summary)
}

/// Enqueues `jobs` no-op jobs with no worker running, then starts one worker and times it to empty the
/// queue (until Redis shows every job acknowledged).
pub async fn drain(
    env: &BenchEnv,
    options: &Options,
    jobs: usize,
    log: &Path,
) -> anyhow::Result<Drain> {
    env.reset().await?;
    let bulk_rate = enqueue_bulk(env, jobs, options.chunk).await?;
    let redis_cpu_before = redis_cpu_seconds(env).await?;
    let mut worker = WorkerProcess::spawn(env, options.worker_bin.as_ref(), log.to_path_buf())?;
    let limit = Duration::from_secs(60 + (jobs / 1_000) as u64);
    let deadline = Instant::now() + limit;
    let mut conn = env.redis();
    let done_key = env.keys.done();
    let mut peak_rss: f64 = 0.0;
    let mut polls = 0u64;
    let all_done = loop {
        let done: u64 = redis::cmd("SCARD")
            .arg(&done_key)
            .query_async(&mut conn)
            .await?;
        if done >= jobs as u64 {
            break Utc::now();
        }
        if polls.is_multiple_of(10) {
            worker.ensure_running()?;
            peak_rss = peak_rss.max(worker.rss_mib().unwrap_or(0.0));
        }
        polls += 1;
        if Instant::now() > deadline {
            bail!(
                "{done} of {jobs} jobs done after {limit:?}; see {}",
                worker.log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let worker_cpu = worker.cpu_seconds().unwrap_or(f64::NAN);
    let redis_cpu = redis_cpu_seconds(env).await? - redis_cpu_before;
    peak_rss = peak_rss.max(worker.rss_mib().unwrap_or(0.0));
    let summary = verify_exactly_once(env, jobs).await?;
    let first_start = summary.first_start.context("no run started")?;
    let processed = worker.processed_metric().await?;
    ensure!(
        processed as usize == jobs,
        "the worker's metrics count {processed} processed jobs, not {jobs}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_after = worker.rss_mib().unwrap_or(0.0);
    let spawned_at = worker.spawned_at;
    worker.stop(STOP_LIMIT).await?;
    let seconds = |from: DateTime<Utc>| {
        ((all_done - from).num_microseconds().unwrap_or(0) as f64 / 1e6).max(1e-6)
    };
    Ok(Drain {
        bulk_rate,
        startup: (first_start - spawned_at).to_std().unwrap_or_default(),
        rate: jobs as f64 / seconds(first_start),
        wall_rate: jobs as f64 / seconds(spawned_at),
        peak_rss_mib: peak_rss,
        idle_after_rss_mib: idle_after,
        worker_cpu_us_per_job: worker_cpu * 1e6 / jobs as f64,
        redis_cpu_us_per_job: redis_cpu * 1e6 / jobs as f64,
    })
}

pub struct Latency {
    pub sent: usize,
    pub offered_rate: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub startup: Duration,
    pub idle_rss_mib: f64,
    pub load_rss_mib: f64,
}

/// Starts one worker on the empty queue (its start-up time and idle memory), then enqueues single jobs at
/// a steady `rate` for `secs` and reads each job's enqueue-to-start latency from the ledger
/// (`started_at`, taken when the worker begins the attempt, minus `enqueued_at`, taken when the enqueuer
/// builds the envelope: both microsecond wall-clock timestamps on this machine).
pub async fn latency(env: &BenchEnv, options: &Options, log: &Path) -> anyhow::Result<Latency> {
    env.reset().await?;
    let mut worker = WorkerProcess::spawn(env, options.worker_bin.as_ref(), log.to_path_buf())?;
    let startup = worker.wait_registered(env, Duration::from_secs(30)).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle_rss = worker.rss_mib().unwrap_or(0.0);

    let total = (u64::from(options.rate) * options.latency_secs) as usize;
    let interval = Duration::from_secs_f64(1.0 / f64::from(options.rate));
    let job = Arc::new(BenchNoop::default());
    let mut set = JoinSet::new();
    let mut load_rss: f64 = 0.0;
    let started = tokio::time::Instant::now();
    for i in 0..total {
        tokio::time::sleep_until(started + interval.mul_f64(i as f64)).await;
        let enqueuer = env.enqueuer.clone();
        let job = job.clone();
        set.spawn(async move { enqueuer.enqueue(&*job, EnqueueOptions::default()).await });
        while let Some(done) = set.try_join_next() {
            done??;
        }
        if i % 500 == 0 {
            worker.ensure_running()?;
            load_rss = load_rss.max(worker.rss_mib().unwrap_or(0.0));
        }
    }
    let send_time = started.elapsed();
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(done) = set.join_next().await {
            done??;
        }
        anyhow::Ok(())
    })
    .await
    .context("enqueues did not finish")??;
    verify_exactly_once(env, total).await?;
    load_rss = load_rss.max(worker.rss_mib().unwrap_or(0.0));
    let mut latencies: Vec<f64> = sqlx::query_scalar(
        "SELECT (extract(epoch FROM started_at - enqueued_at) * 1000)::float8 FROM job_runs",
    )
    .fetch_all(&env.pool)
    .await?;
    worker.stop(STOP_LIMIT).await?;
    latencies.sort_by(f64::total_cmp);
    Ok(Latency {
        sent: total,
        offered_rate: rate(total, send_time),
        p50_ms: percentile(&latencies, 50.0),
        p90_ms: percentile(&latencies, 90.0),
        p99_ms: percentile(&latencies, 99.0),
        max_ms: latencies.last().copied().unwrap_or(0.0),
        startup,
        idle_rss_mib: idle_rss,
        load_rss_mib: load_rss,
    })
}
