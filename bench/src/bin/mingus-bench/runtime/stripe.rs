//! `mingus-bench stripe`: subscription events applied per second by one worker process serving
//! `stripe-events`, beside a no-op drain of the same number of jobs by the same kind of worker in the same
//! run (the runtime's own ceiling on this machine).
//!
//! Each run stores `events` Stripe events (half `customer.subscription.created`, half
//! `customer.subscription.updated` a minute later, one pair per subscription, for customers linked to
//! seeded users) with their outbox rows, pushes their processing jobs, then starts one worker process
//! and times it until Redis shows every job acknowledged. It then checks the outcome: every event
//! `processed`, one `subscriptions` row per subscription carrying the *updated* state whatever order the
//! pair ran in, and the tier's `feature_access` rows for each user.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use chrono::{DateTime, Utc};
use mingus_common::config::stripe::StripeMode;
use mingus_common::jobs::Envelope;
use mingus_common::queue::Queue;
use mingus_common::stripe_api::store_event;
use serde_json::{Value, json};

use super::phases;
use super::worker::WorkerProcess;
use super::{Options, stats};
use mingus_bench::BenchEnv;

#[derive(Debug, Clone, clap::Args)]
pub struct StripeOptions {
    /// Events per run (an even number: a created and an updated event per subscription).
    #[arg(long, default_value_t = 20_000)]
    pub events: usize,
    /// Repetitions; medians are reported.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Serve with this worker binary instead of this binary's own `serve-worker` command.
    #[arg(long)]
    pub worker_bin: Option<std::path::PathBuf>,
}

/// Subscription events are stored and pushed in chunks of this many.
const CHUNK: usize = 1_000;
const STOP_LIMIT: Duration = Duration::from_secs(40);
const PERIOD: i64 = 30 * 24 * 3600;

pub async fn run(options: StripeOptions) -> anyhow::Result<()> {
    ensure!(
        (2..=400_000).contains(&options.events) && options.events.is_multiple_of(2),
        "--events must be an even number from 2 to 400,000"
    );
    ensure!(
        (1..=20).contains(&options.runs),
        "--runs must be between 1 and 20"
    );
    let env = BenchEnv::create().await?;
    let logs = std::env::temp_dir().join(format!("mingus-bench-{}", env.prefix));
    std::fs::create_dir_all(&logs).context("create the log directory")?;
    let result = tokio::select! {
        result = measure(&env, &options, &logs) => result,
        () = mingus_common::shutdown::signal() => Err(anyhow::anyhow!("interrupted")),
    };
    let cleanup = env.destroy().await;
    if result.is_ok() {
        let _ = std::fs::remove_dir_all(&logs);
    } else {
        eprintln!("worker logs kept in {}", logs.display());
    }
    result?;
    cleanup.context("cleanup")
}

async fn measure(env: &BenchEnv, options: &StripeOptions, logs: &Path) -> anyhow::Result<()> {
    let subscriptions = options.events / 2;
    seed_users(env, subscriptions).await?;
    println!(
        "mingus-bench stripe: {} events ({subscriptions} subscriptions × created + updated) per run, \
         one worker process serving `stripe-events` (production configuration); baseline: a no-op drain \
         of as many jobs by one worker serving `bench`",
        options.events
    );
    let baseline_options = Options {
        jobs: vec![options.events],
        runs: 1,
        enqueue_jobs: 4,
        enqueue_tasks: 1,
        chunk: CHUNK,
        rate: 1,
        latency_secs: 1,
        worker_bin: options.worker_bin.clone(),
        skip_redis_benchmark: true,
        skip_drain: false,
        keep: false,
    };
    let (mut rates, mut baselines, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for run in 1..=options.runs {
        let baseline = phases::drain(
            env,
            &baseline_options,
            options.events,
            &logs.join(format!("noop-{run}.log")),
        )
        .await?
        .rate;
        let applied = events_run(env, options, run, subscriptions, logs).await?;
        println!(
            "run {run}: subscription events {applied:>8.0}/s | no-op drain {baseline:>8.0} jobs/s | ratio {:.3}",
            applied / baseline
        );
        rates.push(applied);
        baselines.push(baseline);
        ratios.push(applied / baseline);
    }
    let (rate, rate_min, rate_max) = stats::summary(&rates);
    let (base, base_min, base_max) = stats::summary(&baselines);
    println!();
    println!(
        "| one worker process, {} events per run (median of {} runs) | value |",
        options.events, options.runs
    );
    println!("|---|---|");
    println!("| subscription events applied | {rate:.0}/s ({rate_min:.0}–{rate_max:.0}) |");
    println!("| no-op drain, same run | {base:.0} jobs/s ({base_min:.0}–{base_max:.0}) |");
    println!("| events / no-op | {:.3} |", stats::summary(&ratios).0);
    Ok(())
}

/// One user per subscription, linked to the Stripe customer `cus_bench_<n>`.
async fn seed_users(env: &BenchEnv, users: usize) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO users (email, stripe_customer_id)
         SELECT 'bench' || n || '@example.com', 'cus_bench_' || n FROM generate_series(0, $1 - 1) n",
    )
    .bind(users as i64)
    .execute(&env.pool)
    .await?;
    Ok(())
}

/// A basil-shaped subscription object with a Professional monthly price (mapped by its lookup key).
fn subscription(n: usize, status: &str, start: i64) -> Value {
    json!({
        "id": format!("sub_bench_{n}"),
        "object": "subscription",
        "customer": format!("cus_bench_{n}"),
        "status": status,
        "cancel_at_period_end": false,
        "canceled_at": null,
        "ended_at": null,
        "trial_start": null,
        "trial_end": null,
        "metadata": {},
        "items": {"object": "list", "data": [{
            "id": format!("si_bench_{n}"),
            "object": "subscription_item",
            "subscription": format!("sub_bench_{n}"),
            "current_period_start": start,
            "current_period_end": start + PERIOD,
            "price": {
                "id": "price_bench_professional_monthly",
                "object": "price",
                "lookup_key": "professional_monthly",
                "currency": "usd",
                "unit_amount": 2900,
                "recurring": {"interval": "month", "interval_count": 1}
            }
        }]}
    })
}

fn event(id: String, kind: &str, created: i64, object: Value) -> Value {
    json!({
        "id": id, "object": "event", "type": kind, "api_version": "2025-03-31.basil",
        "created": created, "livemode": false, "pending_webhooks": 1,
        "request": {"id": null, "idempotency_key": null},
        "data": {"object": object}
    })
}

/// The run's events in delivery order: each pair's `updated` is stored right after its `created`.
fn run_events(run: usize, subscriptions: usize, now: i64) -> Vec<Value> {
    let mut events = Vec::with_capacity(subscriptions * 2);
    for n in 0..subscriptions {
        // Each run moves every subscription a period further, so the guard applies every event.
        let start = now - PERIOD + (run as i64) * 120;
        events.push(event(
            format!("evt_bench_{run}_{n}_c"),
            "customer.subscription.created",
            start,
            subscription(n, "incomplete", start),
        ));
        events.push(event(
            format!("evt_bench_{run}_{n}_u"),
            "customer.subscription.updated",
            start + 60,
            subscription(n, "active", start + 60),
        ));
    }
    events
}

async fn store_and_push(env: &BenchEnv, events: &[Value]) -> anyhow::Result<()> {
    for chunk in events.chunks(CHUNK) {
        let mut tx = env.pool.begin().await?;
        let mut envelopes: Vec<Envelope> = Vec::with_capacity(chunk.len());
        for event in chunk {
            let stored = store_event(&mut tx, event, StripeMode::Test).await?;
            envelopes.extend(stored.envelope);
        }
        tx.commit().await?;
        ensure!(envelopes.len() == chunk.len(), "an event was not new");
        env.enqueuer.push(&envelopes, None, None).await?;
    }
    Ok(())
}

async fn events_run(
    env: &BenchEnv,
    options: &StripeOptions,
    run: usize,
    subscriptions: usize,
    logs: &Path,
) -> anyhow::Result<f64> {
    let now = Utc::now().timestamp();
    let events = run_events(run, subscriptions, now);
    store_and_push(env, &events).await?;
    let keys = env.enqueuer.keys(Queue::StripeEvents);
    let mut conn = env.redis();
    let _: () = redis::cmd("DEL")
        .arg(keys.done())
        .query_async(&mut conn)
        .await?;
    let mut worker = WorkerProcess::spawn_for(
        env,
        options.worker_bin.as_ref(),
        logs.join(format!("stripe-{run}.log")),
        Queue::StripeEvents.name(),
    )?;
    let total = events.len() as u64;
    let limit = Duration::from_secs(120 + total / 100);
    let deadline = Instant::now() + limit;
    let all_done = loop {
        let done: u64 = redis::cmd("SCARD")
            .arg(keys.done())
            .query_async(&mut conn)
            .await?;
        if done >= total {
            break Utc::now();
        }
        worker.ensure_running()?;
        if Instant::now() > deadline {
            bail!(
                "{done} of {total} events done after {limit:?}; see {}",
                worker.log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    worker.stop(STOP_LIMIT).await?;
    let first_start: DateTime<Utc> = sqlx::query_scalar(
        "SELECT min(r.started_at) FROM job_runs r JOIN stripe_events e ON e.job_id = r.job_id
         WHERE e.id LIKE $1",
    )
    .bind(format!("evt_bench_{run}_%"))
    .fetch_one(&env.pool)
    .await?;
    verify(env, run, subscriptions, now).await?;
    let seconds = ((all_done - first_start).num_microseconds().unwrap_or(0) as f64 / 1e6).max(1e-6);
    Ok(total as f64 / seconds)
}

/// Every event processed; every subscription holds its `updated` state; every user has the tier's
/// subscription-granted features.
async fn verify(env: &BenchEnv, run: usize, subscriptions: usize, now: i64) -> anyhow::Result<()> {
    let (processed, other): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'processed'), count(*) FILTER (WHERE status <> 'processed')
         FROM stripe_events WHERE id LIKE $1",
    )
    .bind(format!("evt_bench_{run}_%"))
    .fetch_one(&env.pool)
    .await?;
    ensure!(
        processed as usize == subscriptions * 2 && other == 0,
        "{processed} events processed, {other} not, of {}",
        subscriptions * 2
    );
    let start = now - PERIOD + (run as i64) * 120 + 60;
    let expected_end = DateTime::from_timestamp(start + PERIOD, 0).context("period end")?;
    let (rows, wrong): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE status <> 'active' OR plan_tier <> 'professional'
                                              OR current_period_end <> $1)
         FROM subscriptions WHERE stripe_subscription_id LIKE 'sub_bench_%'",
    )
    .bind(expected_end)
    .fetch_one(&env.pool)
    .await?;
    ensure!(
        rows as usize == subscriptions && wrong == 0,
        "{rows} subscriptions ({wrong} not in their updated state), expected {subscriptions}"
    );
    let without_features: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM users u WHERE u.stripe_customer_id LIKE 'cus_bench_%'
           AND NOT EXISTS (SELECT 1 FROM feature_access f WHERE f.user_id = u.id)",
    )
    .fetch_one(&env.pool)
    .await?;
    ensure!(
        without_features == 0,
        "{without_features} users have no feature_access rows"
    );
    Ok(())
}
