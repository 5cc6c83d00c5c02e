#![doc = include_str!("../README.md")]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use mingus_common::cron::{self, CronTable, FireReport};
use mingus_common::jobs::Enqueuer;
use mingus_common::{Config, cache, db, probe};
use sqlx::PgPool;
use tokio::time::MissedTickBehavior;

/// Where the scheduler reads the time; tests inject their own.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// A unique scheduler name: host, process and a random suffix, recorded in `cron_runs.scheduler`.
pub fn scheduler_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    let suffix: u32 = rand::random();
    format!(
        "scheduler@{}:{}:{:08x}",
        if host.is_empty() { "host" } else { &host },
        std::process::id(),
        suffix
    )
}

/// One scheduler replica: the table it drives, where it writes, and its clock.
pub struct Scheduler {
    pool: PgPool,
    enqueuer: Enqueuer,
    table: CronTable,
    name: String,
    interval: Duration,
    clock: Clock,
}

impl Scheduler {
    /// A replica with a unique name, the system clock and a one-second pass.
    pub fn new(pool: PgPool, enqueuer: Enqueuer, table: CronTable) -> Self {
        Scheduler {
            pool,
            enqueuer,
            table,
            name: scheduler_name(),
            interval: Duration::from_secs(1),
            clock: Arc::new(Utc::now),
        }
    }

    pub fn with_interval(self, interval: Duration) -> Self {
        Scheduler { interval, ..self }
    }

    pub fn with_clock(self, clock: Clock) -> Self {
        Scheduler { clock, ..self }
    }

    pub fn with_name(self, name: impl Into<String>) -> Self {
        Scheduler {
            name: name.into(),
            ..self
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn table(&self) -> &CronTable {
        &self.table
    }

    /// One pass: fires whatever is due now.
    pub async fn pass(&self) -> FireReport {
        let now = (self.clock)();
        cron::fire_due(&self.pool, &self.enqueuer, &self.table, now, &self.name).await
    }

    /// Runs a pass every `interval` until `shutdown` resolves. A pass in progress when it does is given
    /// `grace` to finish (its transactions are short; a job committed but not yet pushed is pushed by
    /// the outbox sweep anyway).
    pub async fn run(&self, shutdown: impl Future<Output = ()>, grace: Duration) {
        let now = (self.clock)();
        for schedule in self.table.schedules() {
            let next = cron::next_tick(&schedule.expression, schedule.time_zone, now)
                .map(|(local, _)| local.to_string())
                .unwrap_or_default();
            tracing::info!(
                schedule = %schedule.name,
                expression = %schedule.expression,
                time_zone = schedule.time_zone.name(),
                enabled = schedule.enabled,
                job = schedule.job_kind(),
                next = %next,
                "cron schedule"
            );
        }
        tracing::info!(scheduler = %self.name, interval_ms = self.interval.as_millis() as u64, "mingus-scheduler started");
        tokio::pin!(shutdown);
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                _ = ticker.tick() => {}
            }
            let pass = self.pass();
            tokio::pin!(pass);
            tokio::select! {
                biased;
                report = &mut pass => log_report(&report),
                () = &mut shutdown => {
                    match tokio::time::timeout(grace, &mut pass).await {
                        Ok(report) => log_report(&report),
                        Err(_) => tracing::warn!("cron pass still running after the shutdown timeout; abandoned"),
                    }
                    break;
                }
            }
        }
        tracing::info!(scheduler = %self.name, "mingus-scheduler stopped");
    }
}

fn log_report(report: &FireReport) {
    metrics::counter!("mingus_scheduler_passes_total").increment(1);
    metrics::counter!("mingus_scheduler_fired_total").increment(report.fired.len() as u64);
    metrics::counter!("mingus_scheduler_failed_total").increment(report.failed.len() as u64);
    metrics::gauge!("mingus_scheduler_last_pass_timestamp_seconds")
        .set(Utc::now().timestamp_millis() as f64 / 1000.0);
    // Each fired, skipped or failed schedule is logged where it happens; this is the pass summary.
    if !report.fired.is_empty() || !report.failed.is_empty() {
        tracing::debug!(
            fired = report.fired.len(),
            skipped = report.skipped.len(),
            failed = report.failed.len(),
            "cron pass"
        );
    }
}

/// Connects to PostgreSQL and Redis and drives the cron table until `shutdown` resolves.
pub async fn run(config: Arc<Config>, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let pool = db::connect(&config.database)
        .await
        .context("cannot connect to DATABASE_URL")?;
    sqlx::query("SELECT 1 FROM cron_schedules LIMIT 0")
        .execute(&pool)
        .await
        .context("the scheduler's tables are missing: run `mingus-admin migrate`")?;
    let redis = cache::connect(&config.redis)
        .await
        .context("cannot connect to REDIS_URL")?;
    if let Some(listen) = config.listen.scheduler_probe {
        let listener = probe::bind(listen, "MINGUS_SCHEDULER_METRICS_ADDR").await?;
        let handle = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?;
        describe_metrics();
        probe::spawn(
            listener,
            probe::Probe {
                service: "mingus-scheduler",
                db: pool.clone(),
                redis: redis.clone(),
                metrics: Arc::new(move || handle.render()),
            },
        )?;
    }
    let enqueuer = Enqueuer::new(redis, config.redis.key_prefix.clone());
    let scheduler = Scheduler::new(
        pool.clone(),
        enqueuer,
        CronTable::from_config(&config.scheduler),
    )
    .with_interval(config.scheduler.interval);
    scheduler.run(shutdown, config.shutdown_timeout).await;
    pool.close().await;
    Ok(())
}

/// HELP text of the scheduler's metrics.
fn describe_metrics() {
    metrics::describe_counter!("mingus_scheduler_passes_total", "Scheduler passes run");
    metrics::describe_counter!(
        "mingus_scheduler_fired_total",
        "Cron ticks enqueued (each tick once across replicas)"
    );
    metrics::describe_counter!(
        "mingus_scheduler_failed_total",
        "Cron ticks that could not be enqueued (retried at the next pass)"
    );
    metrics::describe_gauge!(
        "mingus_scheduler_last_pass_timestamp_seconds",
        metrics::Unit::Seconds,
        "When this scheduler last finished a pass (unix time)"
    );
}
