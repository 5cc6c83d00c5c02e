//! One apalis worker per served queue, hardened against the apalis-redis 1.0 defects of NOTES-apalis:
//! a short poll interval (defect 1), our own push/promotion (2) and retry policy (3), unique worker names
//! (4), a ≤ 60 s orphan window (5), results persisted (6), no `task-tracking` (7), `lock_tasks(false)`
//! (8), our own retention (9), multi-second Redis timeouts and restarts of failed workers (10).

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use apalis::prelude::*;
use apalis_redis::RedisStorage;
use mingus_common::jobs::ledger::Ledger;
use mingus_common::jobs::{Enqueuer, Envelope, QueueKeys};
use mingus_common::queue::Queue;
use mingus_common::{Config, cache, db};
use tokio_util::sync::CancellationToken;

use crate::context::JobContext;
use crate::execute::QueueRunner;

/// A unique worker name: the queue, the host, the process and a random suffix, so a restarted process
/// never collides with its own stale registration (defect 4).
pub fn worker_name(queue: Queue) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    let suffix: u32 = rand::random();
    format!(
        "{}@{}:{}:{:08x}",
        queue.name(),
        if host.is_empty() { "host" } else { &host },
        std::process::id(),
        suffix
    )
}

pub struct WorkerRuntime {
    pub ctx: JobContext,
}

pub struct QueueDepth {
    pub waiting: u64,
    pub delayed: u64,
    pub oldest_pushed_ms: Option<i64>,
}

/// Waiting and delayed counts, and when the oldest waiting job was pushed.
pub async fn queue_depth(enqueuer: &Enqueuer, queue: Queue) -> redis::RedisResult<QueueDepth> {
    let keys = enqueuer.keys(queue);
    let mut conn = enqueuer_conn(enqueuer);
    let (waiting, delayed, head): (u64, u64, Option<String>) = redis::pipe()
        .llen(keys.active())
        .zcard(keys.delayed())
        .lindex(keys.active(), 0)
        .query_async(&mut conn)
        .await?;
    let oldest_pushed_ms = match head {
        Some(id) => {
            redis::cmd("HGET")
                .arg(keys.meta(&id))
                .arg("pushed_at")
                .query_async(&mut conn)
                .await?
        }
        None => None,
    };
    Ok(QueueDepth {
        waiting,
        delayed,
        oldest_pushed_ms,
    })
}

fn enqueuer_conn(enqueuer: &Enqueuer) -> redis::aio::ConnectionManager {
    enqueuer.connection()
}

impl WorkerRuntime {
    pub async fn connect(config: Arc<Config>) -> anyhow::Result<Self> {
        let db = db::connect(&config.database)
            .await
            .context("cannot connect to DATABASE_URL")?;
        let redis = cache::connect(&config.redis)
            .await
            .context("cannot connect to REDIS_URL")?;
        let enqueuer = Enqueuer::new(redis.clone(), config.redis.key_prefix.clone());
        Ok(WorkerRuntime {
            ctx: JobContext {
                config,
                db,
                redis,
                enqueuer,
            },
        })
    }

    fn storage(&self, keys: &QueueKeys) -> RedisStorage<Envelope> {
        let jobs = &self.ctx.config.jobs;
        let config = apalis_redis::Config::default()
            .queue(&keys.name)
            .batch_size(jobs.fetch_batch)
            .heartbeat_interval(jobs.heartbeat)
            .missed_heartbeats(jobs.missed_heartbeats)
            .lock_tasks(false)
            .persist_results(true)
            .emit_events(false);
        RedisStorage::new(self.ctx.redis.clone()).with_config(config)
    }

    /// Runs workers for `queues` until `shutdown`, then drains within the shutdown timeout.
    pub async fn run(
        &self,
        queues: &[Queue],
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let config = self.ctx.config.clone();
        let (ledger, ledger_task) = Ledger::start(self.ctx.db.clone(), self.ctx.redis.clone());
        let stop_promoter = CancellationToken::new();
        let promoter = tokio::spawn(crate::promoter::run(
            self.ctx.enqueuer.clone(),
            queues.to_vec(),
            config.jobs.poll_interval,
            stop_promoter.clone(),
        ));

        let mut monitor = Monitor::new()
            .shutdown_timeout(config.shutdown_timeout)
            // A worker whose storage failed (Redis restarted, a timeout) is restarted, not left dead (defect 10).
            .should_restart(|ctx, err| {
                tracing::warn!(worker = ctx.name(), error = %err, "worker failed; restarting");
                true
            });
        for &queue in queues {
            let keys = Arc::new(self.ctx.enqueuer.keys(queue));
            let concurrency = config
                .jobs
                .concurrency
                .get(queue.name())
                .copied()
                .unwrap_or(config.jobs.default_concurrency);
            let timeout = config.jobs.timeouts.get(queue.name()).copied();
            let ledger = ledger.clone();
            let ctx = self.ctx.clone();
            let storage = self.storage(&keys);
            let poll = config.jobs.poll_interval;
            monitor = monitor.register(move |_restarts| {
                let name = worker_name(queue);
                let runner = Arc::new(QueueRunner {
                    ctx: ctx.clone(),
                    keys: keys.clone(),
                    ledger: ledger.clone(),
                    worker: Arc::from(name.as_str()),
                    timeout,
                });
                WorkerBuilder::new(name)
                    .backend(storage.clone().poll_with_interval(poll))
                    .concurrency(concurrency)
                    .data(runner)
                    .build(handle)
            });
            tracing::info!(queue = queue.name(), concurrency, "serving queue");
        }
        drop(ledger);
        let signal = async move {
            shutdown.await;
            Ok(())
        };
        let result = monitor.run_with_signal(signal).await;
        stop_promoter.cancel();
        let _ = promoter.await;
        // Every Ledger clone lives in the workers, which are gone now: the writer flushes and ends.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), ledger_task).await;
        result.context("worker monitor failed")?;
        tracing::info!("mingus-worker stopped");
        Ok(())
    }
}

async fn handle(envelope: Envelope, runner: Data<Arc<QueueRunner>>) -> Result<(), BoxDynError> {
    runner
        .run(envelope)
        .await
        .map_err(|err| -> BoxDynError { err.into() })
}
