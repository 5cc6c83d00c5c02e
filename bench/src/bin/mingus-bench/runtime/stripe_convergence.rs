//! `mingus-bench stripe-convergence`: how long after the last delivery every event of a stream is
//! applied, when Stripe delivers it newest first — each event before what it depends on — against the
//! same stream delivered oldest first, in the same run.
//!
//! The stream: per customer, `checkout.session.completed` (links the customer to a seeded user), then a
//! second later `customer.subscription.created`, `invoice.paid` and `customer.subscription.updated`,
//! one second apart: four events per customer. One worker process serves `stripe-events` while the
//! events are stored and their jobs pushed in chunks, as the webhook ingest would; newest first, every
//! invoice and subscription event of every customer arrives before any checkout, so nothing can apply
//! until the checkouts come last, and then everything parked on them must follow at once (re-drive),
//! not after the retry backoff. The figure is the time from the last push to the moment every event is
//! `processed`, with how many were applied by re-drive (more than one attempt).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use chrono::Utc;
use mingus_common::config::stripe::StripeMode;
use mingus_common::jobs::Envelope;
use mingus_common::queue::Queue;
use mingus_common::stripe_api::store_event;
use serde_json::{Value, json};
use uuid::Uuid;

use super::worker::WorkerProcess;
use mingus_bench::BenchEnv;
use mingus_bench::stats;

#[derive(Debug, Clone, clap::Args)]
pub struct ConvergenceOptions {
    /// Events per delivery (a multiple of 4: four per customer).
    #[arg(long, default_value_t = 20_000)]
    pub events: usize,
    /// Repetitions of each order; medians are reported.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Serve with this worker binary instead of this binary's own `serve-worker` command.
    #[arg(long)]
    pub worker_bin: Option<std::path::PathBuf>,
}

/// Events are stored and pushed in chunks of this many (an ingest batch).
const CHUNK: usize = 500;
const STOP_LIMIT: Duration = Duration::from_secs(40);
const PERIOD: i64 = 30 * 24 * 3600;

pub async fn run(options: ConvergenceOptions) -> anyhow::Result<()> {
    ensure!(
        (4..=200_000).contains(&options.events) && options.events.is_multiple_of(4),
        "--events must be a multiple of 4 from 4 to 200,000"
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

/// What one delivery measured.
struct Converged {
    /// From the first push to the last.
    delivery: Duration,
    /// From the last push until every event was processed.
    lag: Duration,
    /// Events applied on a later attempt than their first (parked, then re-driven or retried).
    redriven: i64,
}

async fn measure(env: &BenchEnv, options: &ConvergenceOptions, logs: &Path) -> anyhow::Result<()> {
    let customers = options.events / 4;
    println!(
        "mingus-bench stripe-convergence: {} events ({customers} customers × checkout, subscription created, \
         invoice paid, subscription updated) per delivery, stored and pushed in chunks of {CHUNK} while one \
         worker process serves `stripe-events`; newest first against oldest first, alternating",
        options.events
    );
    let mut results: [Vec<Converged>; 2] = [Vec::new(), Vec::new()];
    let mut delivery = 0;
    for run in 1..=options.runs {
        for (slot, newest_first) in [(0, false), (1, true)] {
            delivery += 1;
            let converged = deliver(env, options, delivery, customers, newest_first, logs).await?;
            println!(
                "run {run} {:<12}: delivered in {:>6.2} s, all applied {:>6.3} s after the last delivery, {} applied on a later attempt",
                if newest_first {
                    "newest first"
                } else {
                    "oldest first"
                },
                converged.delivery.as_secs_f64(),
                converged.lag.as_secs_f64(),
                converged.redriven
            );
            results[slot].push(converged);
        }
    }
    println!();
    println!(
        "| {} events, one worker process (median of {} runs) | oldest first | newest first |",
        options.events, options.runs
    );
    println!("|---|---|---|");
    let median = |slot: usize, f: &dyn Fn(&Converged) -> f64| {
        let values: Vec<f64> = results[slot].iter().map(f).collect();
        stats::summary(&values).0
    };
    let lag = |c: &Converged| c.lag.as_secs_f64();
    let took = |c: &Converged| c.delivery.as_secs_f64();
    let later = |c: &Converged| c.redriven as f64;
    println!(
        "| all applied after the last delivery | {:.3} s | {:.3} s |",
        median(0, &lag),
        median(1, &lag)
    );
    println!(
        "| delivery (store + push) | {:.2} s | {:.2} s |",
        median(0, &took),
        median(1, &took)
    );
    println!(
        "| events applied on a later attempt | {:.0} | {:.0} |",
        median(0, &later),
        median(1, &later)
    );
    Ok(())
}

/// Users for the delivery's customers (not linked: the checkouts link them).
async fn seed_users(
    env: &BenchEnv,
    delivery: usize,
    customers: usize,
) -> anyhow::Result<Vec<Uuid>> {
    Ok(sqlx::query_scalar(
        "INSERT INTO users (email)
         SELECT 'conv' || $1 || '_' || n || '@example.com' FROM generate_series(0, $2 - 1) n
         RETURNING id",
    )
    .bind(delivery as i64)
    .bind(customers as i64)
    .fetch_all(&env.pool)
    .await?)
}

fn event(id: String, kind: &str, created: i64, object: Value) -> Value {
    json!({
        "id": id, "object": "event", "type": kind, "api_version": "2025-03-31.basil",
        "created": created, "livemode": false, "pending_webhooks": 1,
        "request": {"id": null, "idempotency_key": null},
        "data": {"object": object, "previous_attributes": {}}
    })
}

fn subscription(id: &str, customer: &str, status: &str, start: i64) -> Value {
    json!({
        "id": id, "object": "subscription", "customer": customer, "status": status,
        "start_date": start, "cancel_at_period_end": false, "canceled_at": null, "ended_at": null,
        "trial_start": null, "trial_end": null, "metadata": {},
        "items": {"object": "list", "data": [{
            "id": format!("si_{id}"), "object": "subscription_item", "subscription": id,
            "current_period_start": start, "current_period_end": start + PERIOD,
            "price": {
                "id": "price_bench_professional_monthly", "object": "price",
                "lookup_key": "professional_monthly", "currency": "usd", "unit_amount": 2900,
                "recurring": {"interval": "month", "interval_count": 1}
            }
        }]}
    })
}

/// The delivery's events in Stripe's (creation) order.
fn stream(delivery: usize, users: &[Uuid], start: i64) -> Vec<Value> {
    let mut events = Vec::with_capacity(users.len() * 4);
    for (n, user) in users.iter().enumerate() {
        let tag = format!("{delivery}_{n}");
        let (customer, sub, invoice) = (
            format!("cus_conv_{tag}"),
            format!("sub_conv_{tag}"),
            format!("in_conv_{tag}"),
        );
        let e = |suffix: &str, kind: &str, at: i64, object: Value| {
            event(format!("evt_conv_{tag}_{suffix}"), kind, at, object)
        };
        events.push(e(
            "0",
            "checkout.session.completed",
            start,
            json!({"id": format!("cs_conv_{tag}"), "object": "checkout.session", "customer": customer,
                   "client_reference_id": user.to_string(), "mode": "subscription", "subscription": sub,
                   "metadata": {}}),
        ));
        events.push(e(
            "1",
            "customer.subscription.created",
            start + 1,
            subscription(&sub, &customer, "incomplete", start + 1),
        ));
        events.push(e(
            "2",
            "invoice.paid",
            start + 2,
            json!({"id": invoice, "object": "invoice", "customer": customer, "currency": "usd",
                   "amount_due": 2900, "amount_paid": 2900, "status": "paid", "attempt_count": 1,
                   "status_transitions": {"paid_at": start + 2}, "lines": {"data": []},
                   "parent": {"type": "subscription_details",
                              "subscription_details": {"subscription": sub, "metadata": {}}}}),
        ));
        events.push(e(
            "3",
            "customer.subscription.updated",
            start + 3,
            subscription(&sub, &customer, "active", start + 1),
        ));
    }
    // Stripe's order across customers: by creation time.
    events.sort_by_key(|e| e["created"].as_i64());
    events
}

async fn store_and_push(env: &BenchEnv, chunk: &[Value]) -> anyhow::Result<()> {
    let mut tx = env.pool.begin().await?;
    let mut envelopes: Vec<Envelope> = Vec::with_capacity(chunk.len());
    for event in chunk {
        let stored = store_event(&mut tx, event, StripeMode::Test).await?;
        envelopes.extend(stored.envelope);
    }
    tx.commit().await?;
    ensure!(envelopes.len() == chunk.len(), "an event was not new");
    env.enqueuer.push(&envelopes, None, None).await?;
    Ok(())
}

async fn deliver(
    env: &BenchEnv,
    options: &ConvergenceOptions,
    delivery: usize,
    customers: usize,
    newest_first: bool,
    logs: &Path,
) -> anyhow::Result<Converged> {
    let users = seed_users(env, delivery, customers).await?;
    let mut events = stream(delivery, &users, Utc::now().timestamp() - 3600);
    if newest_first {
        events.reverse();
    }
    let mut worker = WorkerProcess::spawn_for(
        env,
        options.worker_bin.as_ref(),
        logs.join(format!("convergence-{delivery}.log")),
        Queue::StripeEvents.name(),
    )?;
    // Deliveries start once the worker fetches, so its start-up is not counted as lag.
    let workers = env.enqueuer.keys(Queue::StripeEvents).workers();
    worker
        .wait_registered_in(env, &workers, Duration::from_secs(30))
        .await?;
    let pattern = format!("evt_conv_{delivery}_%");
    let started = Instant::now();
    for chunk in events.chunks(CHUNK) {
        store_and_push(env, chunk).await?;
    }
    let delivered = Instant::now();
    let total = events.len() as i64;
    let limit = Duration::from_secs(300);
    let converged = loop {
        let processed: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM stripe_events WHERE id LIKE $1 AND status = 'processed'",
        )
        .bind(&pattern)
        .fetch_one(&env.pool)
        .await?;
        if processed == total {
            break Instant::now();
        }
        worker.ensure_running()?;
        ensure!(
            delivered.elapsed() < limit,
            "{processed} of {total} events processed {limit:?} after the last delivery; see {}",
            worker.log.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    worker.stop(STOP_LIMIT).await?;
    verify(env, delivery, customers).await?;
    let redriven: i64 =
        sqlx::query_scalar("SELECT count(*) FROM stripe_events WHERE id LIKE $1 AND attempts > 1")
            .bind(&pattern)
            .fetch_one(&env.pool)
            .await?;
    Ok(Converged {
        delivery: delivered - started,
        lag: converged.saturating_duration_since(delivered),
        redriven,
    })
}

/// Every customer linked, every subscription active with its payment recorded.
async fn verify(env: &BenchEnv, delivery: usize, customers: usize) -> anyhow::Result<()> {
    let (active, paid, linked): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM subscriptions WHERE stripe_subscription_id LIKE $1 AND status = 'active'),
                (SELECT count(*) FROM billing_history WHERE transaction_id LIKE $2 AND status = 'paid'),
                (SELECT count(*) FROM users WHERE stripe_customer_id LIKE $3)",
    )
    .bind(format!("sub_conv_{delivery}_%"))
    .bind(format!("in_conv_{delivery}_%"))
    .bind(format!("cus_conv_{delivery}_%"))
    .fetch_one(&env.pool)
    .await?;
    let want = customers as i64;
    ensure!(
        (active, paid, linked) == (want, want, want),
        "{active} active subscriptions, {paid} payments, {linked} linked users; expected {want} each"
    );
    Ok(())
}
