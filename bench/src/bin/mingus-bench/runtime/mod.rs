//! `mingus-bench`: throughput, latency and memory of the job runtime, with the production worker
//! configuration (ledger on, metrics recorder on), against a database and a Redis key prefix of its own.
//!
//! One run = the raw `redis-benchmark` baseline, enqueue rates (single sequential, single from concurrent
//! tasks, bulk), one idle worker (start-up, idle RSS) then 1,000 jobs/s for 10 s (enqueue-to-start
//! latency, RSS under steady load), and for each `--jobs` size a drain: the jobs are enqueued with no
//! worker running, then one worker process is started and timed until Redis shows every job acknowledged.
//! Every drain checks exactly-once: the ledger holds one succeeded run per job and nothing is left.

mod phases;
mod redis_benchmark;
pub mod stripe;
pub mod stripe_convergence;
mod worker;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, ensure};

pub use mingus_bench::BenchEnv;
use mingus_bench::stats;

#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Drain sizes (comma-separated): jobs enqueued before one worker is started.
    #[arg(long, value_delimiter = ',', default_value = "20000,100000")]
    pub jobs: Vec<usize>,
    /// Repetitions; the table shows the median (and the range) over them.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Jobs of the single-enqueue measurement from concurrent tasks (the sequential one uses a quarter).
    #[arg(long, default_value_t = 20_000)]
    pub enqueue_jobs: usize,
    /// Concurrent tasks of the single-enqueue measurement.
    #[arg(long, default_value_t = 50)]
    pub enqueue_tasks: usize,
    /// Jobs per `enqueue_many` call in the bulk measurement.
    #[arg(long, default_value_t = 1_000)]
    pub chunk: usize,
    /// Steady enqueue rate of the latency measurement (jobs/s).
    #[arg(long, default_value_t = 1_000)]
    pub rate: u32,
    /// Duration of the latency measurement (seconds).
    #[arg(long, default_value_t = 10)]
    pub latency_secs: u64,
    /// Serve with this worker binary (e.g. target/release/mingus-worker) instead of this binary's own
    /// `serve-worker` command (the same `mingus_worker::run`).
    #[arg(long)]
    pub worker_bin: Option<PathBuf>,
    /// Skip the raw redis-benchmark baseline.
    #[arg(long)]
    pub skip_redis_benchmark: bool,
    /// Skip the drains (enqueue rates, latency and memory only).
    #[arg(long)]
    pub skip_drain: bool,
    /// Keep the database, the Redis keys and the worker logs of the last measurement for inspection.
    #[arg(long)]
    pub keep: bool,
}

impl Options {
    fn validate(&self) -> anyhow::Result<()> {
        ensure!(!self.jobs.is_empty(), "--jobs needs at least one size");
        ensure!(
            self.jobs.iter().all(|&j| (1..=2_000_000).contains(&j)),
            "--jobs sizes must be between 1 and 2,000,000"
        );
        ensure!(
            (1..=20).contains(&self.runs),
            "--runs must be between 1 and 20"
        );
        ensure!(
            (4..=1_000_000).contains(&self.enqueue_jobs),
            "--enqueue-jobs must be between 4 and 1,000,000"
        );
        ensure!(
            (1..=1_000).contains(&self.enqueue_tasks),
            "--enqueue-tasks must be between 1 and 1,000"
        );
        ensure!(
            (1..=10_000).contains(&self.chunk),
            "--chunk must be between 1 and 10,000"
        );
        ensure!(
            (1..=20_000).contains(&self.rate),
            "--rate must be between 1 and 20,000"
        );
        ensure!(
            (1..=120).contains(&self.latency_secs),
            "--latency-secs must be between 1 and 120"
        );
        Ok(())
    }
}

/// One measured quantity across runs.
struct Series {
    label: String,
    unit: &'static str,
    values: Vec<f64>,
    /// Per-run ratio to the same run's redis-benchmark LPUSH rate.
    ratios: Vec<f64>,
}

#[derive(Default)]
struct Table {
    series: Vec<Series>,
}

impl Table {
    fn add(&mut self, label: &str, unit: &'static str, value: f64, baseline: Option<f64>) {
        let index = match self.series.iter().position(|s| s.label == label) {
            Some(i) => i,
            None => {
                self.series.push(Series {
                    label: label.to_owned(),
                    unit,
                    values: Vec::new(),
                    ratios: Vec::new(),
                });
                self.series.len() - 1
            }
        };
        let series = &mut self.series[index];
        series.values.push(value);
        if let Some(base) = baseline.filter(|b| *b > 0.0) {
            series.ratios.push(value / base);
        }
    }

    fn print(&self, runs: usize) {
        println!();
        println!(
            "{:<52} {:>7} {:>11} {:>11} {:>11} {:>9}",
            "metric", "unit", "median", "min", "max", "× LPUSH"
        );
        println!("{}", "-".repeat(106));
        for s in &self.series {
            let (median, min, max) = stats::summary(&s.values);
            let ratio = if s.ratios.is_empty() {
                String::new()
            } else {
                format!("{:.2}", stats::summary(&s.ratios).0)
            };
            println!(
                "{:<52} {:>7} {:>11} {:>11} {:>11} {:>9}",
                s.label,
                s.unit,
                format_value(median, s.unit),
                format_value(min, s.unit),
                format_value(max, s.unit),
                ratio
            );
        }
        println!(
            "\n{runs} run(s); medians over runs; × LPUSH = median of per-run ratios to the same run's raw \
             redis-benchmark LPUSH rate."
        );
    }
}

fn format_value(value: f64, unit: &str) -> String {
    if value.is_nan() {
        return "–".to_owned();
    }
    match unit {
        "jobs/s" | "ops/s" => thousands(value.round() as u64),
        "ms" if value < 10.0 => format!("{value:.2}"),
        _ => format!("{value:.1}"),
    }
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The machine, for the record.
async fn describe_machine(env: &BenchEnv) -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU", |(_, m)| m.trim())
        .to_owned();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let line = m.lines().find(|l| l.starts_with("MemTotal:"))?.to_owned();
            let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(format!("{:.0} GiB RAM", kib / 1024.0 / 1024.0))
        })
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut conn = env.redis();
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut conn)
        .await
        .unwrap_or_default();
    let redis_version = info
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .unwrap_or("?")
        .trim()
        .to_owned();
    let pg_version: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&env.pool)
        .await
        .unwrap_or_else(|_| "?".into());
    format!(
        "{model}, {cores} cores, {memory}, Linux {}, Redis {redis_version}, PostgreSQL {}",
        kernel.trim(),
        pg_version.split_whitespace().next().unwrap_or("?")
    )
}

/// Runs the benchmark and prints the table. The database and the Redis keys are removed whatever happens.
pub async fn run(options: Options) -> anyhow::Result<()> {
    options.validate()?;
    let env = BenchEnv::create().await?;
    let logs = std::env::temp_dir().join(format!("mingus-bench-{}", env.prefix));
    std::fs::create_dir_all(&logs).context("create the log directory")?;
    let result = tokio::select! {
        result = measure(&env, &options, &logs) => result,
        () = mingus_common::shutdown::signal() => Err(anyhow::anyhow!("interrupted")),
    };
    if options.keep {
        println!(
            "kept: database {} ({}), Redis prefix {}, logs {}",
            env.db_name,
            env.db_url,
            env.prefix,
            logs.display()
        );
        return result;
    }
    let cleanup = env.destroy().await;
    if result.is_ok() {
        let _ = std::fs::remove_dir_all(&logs);
    } else {
        eprintln!("worker logs kept in {}", logs.display());
    }
    result?;
    cleanup.context("cleanup")
}

async fn measure(env: &BenchEnv, options: &Options, logs: &std::path::Path) -> anyhow::Result<()> {
    let machine = describe_machine(env).await;
    println!("mingus-bench: {machine}");
    println!(
        "load average at the start: {} (other processes share these cores)",
        load_average()
    );
    println!(
        "database {} · Redis prefix {} · one worker process serving `bench` (production configuration: \
         ledger on, metrics recorder on 127.0.0.1:<free port>{})",
        env.db_name,
        env.prefix,
        tuning_overrides()
    );
    let mut table = Table::default();
    let started = Instant::now();
    for run in 1..=options.runs {
        eprintln!("run {run}/{} …", options.runs);
        let baseline = if options.skip_redis_benchmark {
            None
        } else {
            match tokio::task::spawn_blocking(|| redis_benchmark::run(&env_redis_url())).await? {
                Ok(b) => {
                    table.add(
                        "redis-benchmark LPUSH (-n 200000 -c 50)",
                        "ops/s",
                        b.lpush,
                        None,
                    );
                    table.add(
                        "redis-benchmark RPOP (-n 200000 -c 50)",
                        "ops/s",
                        b.rpop,
                        None,
                    );
                    Some(b.lpush)
                }
                Err(why) => {
                    eprintln!("  baseline skipped: {why}");
                    None
                }
            }
        };
        let sequential = (options.enqueue_jobs / 4).max(1);
        let rate = phases::enqueue_sequential(env, sequential).await?;
        table.add(
            "enqueue, one at a time (sequential)",
            "jobs/s",
            rate,
            baseline,
        );
        let rate =
            phases::enqueue_concurrent(env, options.enqueue_jobs, options.enqueue_tasks).await?;
        table.add(
            &format!("enqueue, one at a time ({} tasks)", options.enqueue_tasks),
            "jobs/s",
            rate,
            baseline,
        );

        let log = logs.join(format!("run{run}-latency.log"));
        let latency = phases::latency(env, options, &log).await?;
        table.add(
            "worker start-up (spawn → fetching)",
            "ms",
            latency.startup.as_secs_f64() * 1e3,
            None,
        );
        table.add("worker RSS, idle", "MiB", latency.idle_rss_mib, None);
        let label = format!("at {} jobs/s for {} s", options.rate, options.latency_secs);
        table.add(
            &format!("  offered rate ({} jobs)", latency.sent),
            "jobs/s",
            latency.offered_rate,
            None,
        );
        table.add(
            &format!("enqueue→start p50 {label}"),
            "ms",
            latency.p50_ms,
            None,
        );
        table.add(
            &format!("enqueue→start p90 {label}"),
            "ms",
            latency.p90_ms,
            None,
        );
        table.add(
            &format!("enqueue→start p99 {label}"),
            "ms",
            latency.p99_ms,
            None,
        );
        table.add(
            &format!("enqueue→start max {label}"),
            "ms",
            latency.max_ms,
            None,
        );
        table.add(
            &format!("worker RSS, peak {label}"),
            "MiB",
            latency.load_rss_mib,
            None,
        );

        let drains: &[usize] = if options.skip_drain {
            &[]
        } else {
            &options.jobs
        };
        for &jobs in drains {
            let log = logs.join(format!("run{run}-drain{jobs}.log"));
            let drain = phases::drain(env, options, jobs, &log).await?;
            let n = thousands(jobs as u64);
            table.add(
                &format!("enqueue_many, {} per call ({n} jobs)", options.chunk),
                "jobs/s",
                drain.bulk_rate,
                baseline,
            );
            table.add(
                &format!("drain {n} (first start → all acked)"),
                "jobs/s",
                drain.rate,
                baseline,
            );
            table.add(
                &format!("drain {n} (spawn → all acked)"),
                "jobs/s",
                drain.wall_rate,
                baseline,
            );
            table.add(
                &format!("  spawn → first job start ({n})"),
                "ms",
                drain.startup.as_secs_f64() * 1e3,
                None,
            );
            table.add(
                &format!("  worker CPU per job ({n})"),
                "µs",
                drain.worker_cpu_us_per_job,
                None,
            );
            table.add(
                &format!("  Redis server CPU per job ({n})"),
                "µs",
                drain.redis_cpu_us_per_job,
                None,
            );
            table.add(
                &format!("worker RSS, peak draining {n}"),
                "MiB",
                drain.peak_rss_mib,
                None,
            );
            table.add(
                &format!("worker RSS, idle after draining {n}"),
                "MiB",
                drain.idle_after_rss_mib,
                None,
            );
        }
        if !options.keep {
            env.reset().await?;
        }
    }
    table.print(options.runs);
    println!("load average at the end: {}", load_average());
    println!("total time {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The 1/5/15-minute load averages.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn env_redis_url() -> String {
    std::env::var("TEST_REDIS_URL")
        .or_else(|_| std::env::var("REDIS_URL"))
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Worker tuning variables inherited from the environment (none: the defaults of `JobsConfig`).
fn tuning_overrides() -> String {
    let mut set: Vec<String> = std::env::vars()
        .filter(|(k, _)| {
            (k.starts_with("MINGUS_WORKER_") && k != "MINGUS_WORKER_METRICS_ADDR")
                || k.starts_with("MINGUS_QUEUE_")
                || k.starts_with("DATABASE_")
        })
        .filter(|(k, _)| k != "DATABASE_URL")
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    set.sort();
    if set.is_empty() {
        "; JobsConfig defaults".to_owned()
    } else {
        format!("; overrides: {}", set.join(" "))
    }
}
