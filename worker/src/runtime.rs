//! One apalis worker per served queue, hardened against the apalis-redis 1.0 defects of NOTES-apalis:
//! a wake-up on every push plus a short poll interval as the fallback (defect 1), our own push/promotion
//! (2) and retry policy (3), unique worker names (4), a ≤ 60 s orphan window (5), results persisted (6),
//! no `task-tracking` (7), `lock_tasks(false)` (8), our own retention (9), multi-second Redis timeouts and
//! restarts of failed workers (10).
//!
//! Wake-up on push: our push and promotion scripts leave a token in the queue's `signal` list. One
//! connection per process blocks on `BLPOP` over the signal lists of the queues it serves and wakes the
//! matching worker, which fetches at once instead of at its next poll tick (enqueue-to-start p99 of a
//! few ms instead of about one poll interval). The poll interval stays as the fallback (another process
//! on the same queue took the token, a lost connection); see [`PushOrTick`].

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{self, Poll};
use std::time::Duration;

use anyhow::Context;
use apalis::prelude::*;
use apalis_redis::RedisStorage;
use futures::task::AtomicWaker;
use mingus_common::config::RedisConfig;
use mingus_common::entitlements::evict::Evictor;
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

impl WorkerRuntime {
    pub async fn connect(config: Arc<Config>) -> anyhow::Result<Self> {
        let db = db::connect(&config.database)
            .await
            .context("cannot connect to DATABASE_URL")?;
        let redis = cache::connect(&config.redis)
            .await
            .context("cannot connect to REDIS_URL")?;
        let enqueuer = Enqueuer::new(redis.clone(), config.redis.key_prefix.clone());
        // Stripe processing and the billing sweeps evict cached entitlements after their commits.
        let evictor = Evictor::new(redis.clone(), &config.redis.key_prefix);
        let mailer = mingus_common::email::smtp::Mailer::new(&config.email)
            .context("invalid e-mail settings (SMTP_URL, SMTP_TLS_CA_FILE)")?;
        Ok(WorkerRuntime {
            ctx: JobContext {
                config,
                db,
                redis,
                enqueuer,
                mailer: Arc::new(mailer),
                evictor,
            },
        })
    }

    fn storage(&self, keys: &QueueKeys, concurrency: usize) -> RedisStorage<Envelope> {
        let jobs = &self.ctx.config.jobs;
        // apalis sends the acknowledgements of completed jobs only once the fetched batch is used up:
        // a worker that fetched more jobs than it runs at once kept completed jobs unacknowledged for as
        // long as the rest of the batch took, and a kill -9 re-ran them all. Fetching at most as many as
        // run at once hands out the whole batch at once, so each job is acknowledged as it completes
        // and a kill re-runs only the jobs that were running (tests/e2e/resilience.rs).
        let config = apalis_redis::Config::default()
            .queue(&keys.name)
            .batch_size(jobs.fetch_batch.min(concurrency).max(1))
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
        let wakes: HashMap<String, PushWake> = queues
            .iter()
            .map(|&q| (self.ctx.enqueuer.keys(q).signal(), PushWake::default()))
            .collect();
        let listener = tokio::spawn(listen_for_pushes(
            config.redis.clone(),
            wakes.clone(),
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
            let storage = self.storage(&keys, concurrency);
            let poll = config.jobs.poll_interval;
            let wake = wakes[&keys.signal()].clone();
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
                    .backend(
                        storage
                            .clone()
                            .poll_with_strategy(PushOrTick::new(wake.clone(), poll)),
                    )
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
        let _ = listener.await;
        // Every Ledger clone lives in the workers, which are gone now: the writer flushes and ends.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), ledger_task).await;
        // QUIT on the pooled SMTP connections (bounded by the command timeout each).
        self.ctx.mailer.shutdown().await;
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

/// Wakes one queue's worker when a push signals new work: a flag plus the worker's waker.
#[derive(Clone, Default)]
struct PushWake(Arc<WakeInner>);

#[derive(Default)]
struct WakeInner {
    waker: AtomicWaker,
    set: AtomicBool,
}

impl PushWake {
    fn wake(&self) {
        self.0.set.store(true, Ordering::Release);
        self.0.waker.wake();
    }

    /// Whether a push arrived since the last call. Always leaves `cx`'s waker registered, also when it
    /// returns true: a wake consumes the registered waker, and a strategy that answers "ready" without
    /// registering again is never woken by the next push (apalis-redis' own pub/sub poller has that bug).
    fn take(&self, cx: &task::Context<'_>) -> bool {
        self.0.waker.register(cx.waker());
        self.0.set.swap(false, Ordering::AcqRel)
    }
}

/// When a worker fetches: on a push (at once), and every poll interval (the fallback: another process
/// took the signal, the listener lost its connection, a delayed job was promoted elsewhere).
///
/// Both sources are polled on every call, and the timer is re-armed *and polled* when it fires, so the
/// worker's waker is always registered with both. apalis' own pieces do not guarantee that: its
/// `Strategy` combinator stops at the first ready source, `IntervalStrategy` re-arms its timer without
/// polling it, and apalis-redis' pub/sub stream answers "ready" without registering. Combined with a
/// push source (measured with `mingus-bench` at 1,000 jobs/s), the worker then missed wake-ups and slept
/// until its next heartbeat (5 s) with jobs waiting: p99 enqueue-to-start 4.4 s.
struct PushOrTick {
    wake: PushWake,
    interval: Duration,
    tick: Pin<Box<tokio::time::Sleep>>,
}

impl PushOrTick {
    fn new(wake: PushWake, interval: Duration) -> Self {
        Self {
            wake,
            interval,
            tick: Box::pin(tokio::time::sleep(interval)),
        }
    }
}

impl PollStrategy for PushOrTick {
    fn poll_drive(&mut self, cx: &mut task::Context<'_>, _: &PollSnapshot) -> Poll<Option<()>> {
        let pushed = self.wake.take(cx);
        let mut ticked = false;
        // Bounded: a fresh deadline is in the future, so the second poll is pending.
        for _ in 0..2 {
            if self.tick.as_mut().poll(cx).is_pending() {
                break;
            }
            ticked = true;
            let next = tokio::time::Instant::now() + self.interval;
            self.tick.as_mut().reset(next);
        }
        if pushed || ticked {
            Poll::Ready(Some(()))
        } else {
            Poll::Pending
        }
    }
}

/// Blocks on the signal lists of the served queues (one dedicated connection for the whole process) and
/// wakes the worker of each queue that got a push, until `stop`. Errors only cost latency (the poll
/// interval still applies), so they are logged and retried after a pause.
async fn listen_for_pushes(
    config: RedisConfig,
    wakes: HashMap<String, PushWake>,
    stop: CancellationToken,
) {
    // Each BLPOP returns within `block`, well inside the connection's response timeout.
    let block =
        (config.response_timeout / 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
    let keys: Vec<&String> = wakes.keys().collect();
    let mut conn: Option<redis::aio::ConnectionManager> = None;
    let mut failures = 0u32;
    while !stop.is_cancelled() {
        let attempt = async {
            let mut connection = match &conn {
                Some(connection) => connection.clone(),
                None => {
                    let connection = cache::connect(&config).await?;
                    conn = Some(connection.clone());
                    connection
                }
            };
            redis::cmd("BLPOP")
                .arg(&keys)
                .arg(block.as_secs_f64())
                .query_async::<Option<(String, String)>>(&mut connection)
                .await
        };
        let popped = tokio::select! {
            () = stop.cancelled() => break,
            popped = attempt => popped,
        };
        match popped {
            Ok(Some((key, _))) => {
                failures = 0;
                if let Some(wake) = wakes.get(&key) {
                    wake.wake();
                }
            }
            Ok(None) => failures = 0,
            Err(err) => {
                failures += 1;
                if failures == 1 || failures.is_multiple_of(60) {
                    tracing::warn!(error = %err, "push listener failed; workers poll until it recovers");
                }
                conn = None;
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    struct Counter(AtomicUsize);

    impl futures::task::ArcWake for Counter {
        fn wake_by_ref(arc_self: &Arc<Self>) {
            arc_self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting_waker() -> (task::Waker, Arc<Counter>) {
        let counter = Arc::new(Counter(AtomicUsize::new(0)));
        (futures::task::waker(counter.clone()), counter)
    }

    #[tokio::test]
    async fn a_push_after_a_ready_answer_still_wakes_the_worker() {
        let wake = PushWake::default();
        let mut strategy = PushOrTick::new(wake.clone(), Duration::from_secs(60));
        let (waker, woken) = counting_waker();
        let mut cx = task::Context::from_waker(&waker);
        let snapshot = PollSnapshot::default();
        assert!(strategy.poll_drive(&mut cx, &snapshot).is_pending());
        wake.wake();
        assert_eq!(woken.0.load(Ordering::SeqCst), 1);
        assert!(strategy.poll_drive(&mut cx, &snapshot).is_ready());
        // The ready answer re-registered the waker: the next push wakes the worker again.
        wake.wake();
        assert_eq!(woken.0.load(Ordering::SeqCst), 2);
        assert!(strategy.poll_drive(&mut cx, &snapshot).is_ready());
        assert!(strategy.poll_drive(&mut cx, &snapshot).is_pending());
    }

    #[tokio::test]
    async fn the_interval_keeps_waking_the_worker_after_it_fired() {
        let mut strategy = PushOrTick::new(PushWake::default(), Duration::from_millis(20));
        let (waker, woken) = counting_waker();
        let mut cx = task::Context::from_waker(&waker);
        let snapshot = PollSnapshot::default();
        assert!(strategy.poll_drive(&mut cx, &snapshot).is_pending());
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(woken.0.load(Ordering::SeqCst) >= 1);
        assert!(strategy.poll_drive(&mut cx, &snapshot).is_ready());
        // Not polled again: the re-armed timer alone must wake the worker once more.
        let before = woken.0.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(woken.0.load(Ordering::SeqCst) > before);
    }
}
