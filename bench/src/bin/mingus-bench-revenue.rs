//! `mingus-bench-revenue`: the revenue facts (`mingus_revenue_compute`) over a year of history, against a
//! database of its own (created, migrated and dropped again; loopback only).
//!
//! 1. generates `--subscriptions` subscriptions (about 0.9 per user) started over the year before
//!    yesterday or before it, with trials, conversions, upgrades, downgrades, cycle switches, past-due
//!    spells, cancellations and reactivations (through the `subscriptions` trigger for the first state,
//!    then as history rows), and their monthly payments with some failed attempts and refunds;
//! 2. times, `--runs` times each, alternating: the year's backfill (365 days), the nightly run (35 days)
//!    and one day — every one reads the whole history, so the year costs about what a night does.
//!
//! `cargo run --release -p mingus-bench --bin mingus-bench-revenue -- --subscriptions 100000`

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{Days, NaiveDate, Utc};
use clap::Parser;
use mingus_bench::BenchEnv;
use mingus_bench::stats::summary;
use mingus_common::revenue;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

/// The platform's allocator, as every binary's (why: `api/src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "mingus-bench-revenue",
    about = "Times the nightly revenue facts and their backfill over a year of subscription history",
    version
)]
struct Cli {
    #[arg(long, default_value_t = 100_000)]
    subscriptions: i64,
    /// Timed runs of each range.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Keep the benchmark database (its name is printed) instead of dropping it.
    #[arg(long)]
    keep: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("mingus-bench-revenue: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1_000..=1_000_000).contains(&cli.subscriptions),
        "--subscriptions must be 1,000 to 1,000,000"
    );
    anyhow::ensure!((1..=20).contains(&cli.runs), "--runs must be 1 to 20");
    let env = BenchEnv::create().await?;
    println!("benchmark database {}", env.db_name);
    let result = measure(&cli, &env.db_url).await;
    if cli.keep {
        println!("kept database {} ({})", env.db_name, env.db_url);
        env.pool.close().await;
    } else {
        env.destroy().await?;
    }
    result
}

/// The generated history, in SQL: deterministic (`setseed`), set-based, a few statements.
async fn generate(pool: &PgPool, subscriptions: i64, end: NaiveDate) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    let users = (subscriptions * 9 / 10).max(1);
    sqlx::query("SELECT setseed(0.25)")
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO users (id, email, created_at)
         SELECT md5('u' || g)::uuid, 'u' || g || '@bench.test', $2::date - 420 FROM generate_series(1, $1) g",
    )
    .bind(users)
    .bind(end)
    .execute(&mut *tx)
    .await?;
    // A tenth started before the year; the rest over it. A third start with a 14-day trial.
    sqlx::query(
        "INSERT INTO subscriptions (id, user_id, plan_tier, plan_price, billing_cycle, status, current_period_start,
             current_period_end, trial_start, trial_end, created_at)
         SELECT md5('s' || g)::uuid, md5('u' || (1 + g % $2))::uuid, t.tier,
                CASE WHEN s.yearly THEN t.annual ELSE t.monthly END, CASE WHEN s.yearly THEN 'annual' ELSE 'monthly' END,
                CASE WHEN trial THEN 'trial' ELSE 'active' END, start, start + interval '1 month',
                CASE WHEN trial THEN start END, CASE WHEN trial THEN start + interval '14 days' END, start
         FROM (SELECT g, random() < 0.33 AS trial, random() < 0.2 AS yearly, 1 + floor(random() * 3)::int AS k,
                      ($3::date - 400)::timestamptz + random() * interval '400 days' AS start
               FROM generate_series(1, $1) g) s
         JOIN (VALUES (1, 'essentials', 10.00, 100.00), (2, 'professional', 29.00, 290.00),
                      (3, 'executive', 99.00, 990.00)) AS t(k, tier, monthly, annual) USING (k)",
    )
    .bind(subscriptions)
    .bind(users)
    .bind(end)
    .execute(&mut *tx)
    .await?;
    // Trials end after 14 days: seven in ten convert.
    sqlx::query(
        "INSERT INTO subscription_changes (subscription_id, user_id, changed_at, status, plan_tier, billing_cycle,
             plan_price, currency, cancel_at_period_end, source)
         SELECT id, user_id, trial_end, CASE WHEN random() < 0.7 THEN 'active' ELSE 'cancelled' END, plan_tier,
                billing_cycle, plan_price, currency, false, 'bench'
         FROM subscriptions WHERE trial_end IS NOT NULL AND trial_end < $1",
    )
    .bind(end)
    .execute(&mut *tx)
    .await?;
    // Then about three changes each over the rest of the year.
    sqlx::query(
        "INSERT INTO subscription_changes (subscription_id, user_id, changed_at, status, plan_tier, billing_cycle,
             plan_price, currency, cancel_at_period_end, source)
         SELECT s.id, s.user_id, c.at, c.status, t.tier, c.cycle,
                CASE WHEN c.cycle = 'annual' THEN t.annual ELSE t.monthly END, s.currency, false, 'bench'
         FROM subscriptions s
         CROSS JOIN LATERAL (
             SELECT coalesce(s.trial_end, s.created_at) + random() * ($1::date - coalesce(s.trial_end, s.created_at)::date)
                        * interval '1 day' AS at,
                    (ARRAY['active', 'active', 'active', 'past_due', 'cancelled', 'cancelled'])[1 + floor(random() * 6)::int]
                        AS status,
                    CASE WHEN random() < 0.15 THEN 'annual' ELSE 'monthly' END AS cycle,
                    1 + floor(random() * 3)::int AS k
             FROM generate_series(1, 1 + floor(random() * 5)::int) n
             WHERE n > 0 AND coalesce(s.trial_end, s.created_at) < $1
         ) c
         JOIN (VALUES (1, 'essentials', 10.00, 100.00), (2, 'professional', 29.00, 290.00),
                      (3, 'executive', 99.00, 990.00)) AS t(k, tier, monthly, annual) ON t.k = c.k",
    )
    .bind(end)
    .execute(&mut *tx)
    .await?;
    // Monthly payments from the start to the end of the year; one in twenty fails first, one in fifty
    // paid ones is refunded.
    sqlx::query(
        "INSERT INTO billing_history (subscription_id, user_id, amount, currency, status, payment_method,
             transaction_id, stripe_invoice_id, created_at)
         SELECT s.id, s.user_id, s.plan_price, s.currency, p.status, 'stripe', p.tx, p.invoice, p.at
         FROM subscriptions s
         CROSS JOIN LATERAL generate_series(coalesce(s.trial_end, s.created_at), $1::date, interval '1 month') AS m(at)
         CROSS JOIN LATERAL (
             SELECT 'in_' || s.id || '_' || extract(epoch FROM m.at)::bigint AS invoice, random() AS r
         ) i
         CROSS JOIN LATERAL (VALUES
             ('failed', i.invoice || ':attempt:1', i.invoice, m.at, i.r < 0.05),
             ('paid', i.invoice, i.invoice, m.at + interval '2 days', true),
             ('refunded', 're_' || i.invoice, NULL, m.at + interval '5 days', i.r > 0.98)
         ) AS p(status, tx, invoice, at, keep)
         WHERE p.keep AND p.at < $1::date",
    )
    .bind(end)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    sqlx::query("ANALYZE").execute(pool).await?;
    Ok(())
}

async fn time(pool: &PgPool, from: NaiveDate, to: NaiveDate) -> anyhow::Result<f64> {
    let started = Instant::now();
    revenue::compute(pool, from, to).await?;
    Ok(started.elapsed().as_secs_f64())
}

async fn measure(cli: &Cli, url: &str) -> anyhow::Result<()> {
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(60))
        .connect(url)
        .await
        .context("connect")?;
    let end = Utc::now().date_naive() - Days::new(1);
    let started = Instant::now();
    generate(&pool, cli.subscriptions, end).await?;
    let counts: (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM subscriptions),
                (SELECT count(*) FROM subscription_changes), (SELECT count(*) FROM billing_history)",
    )
    .fetch_one(&pool)
    .await?;
    println!(
        "generated {} users, {} subscriptions, {} history rows, {} payments in {:.1} s",
        counts.0,
        counts.1,
        counts.2,
        counts.3,
        started.elapsed().as_secs_f64()
    );
    let year = (end - Days::new(364), end);
    let nightly = revenue::nightly_range(end + Days::new(1));
    let ranges = [
        ("year (365 days)", year),
        ("nightly (35 days)", nightly),
        ("one day", (end, end)),
    ];
    // A first pass warms the cache as a nightly run finds it.
    time(&pool, end, end).await?;
    let mut samples = vec![Vec::new(); ranges.len()];
    for _ in 0..cli.runs {
        for (i, (_, (from, to))) in ranges.iter().enumerate() {
            samples[i].push(time(&pool, *from, *to).await?);
        }
    }
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM revenue_daily")
        .fetch_one(&pool)
        .await?;
    println!(
        "| range | median | min | max |  ({} runs each, {rows} revenue_daily rows)",
        cli.runs
    );
    println!("|---|---|---|---|");
    for ((name, _), values) in ranges.iter().zip(&samples) {
        let (median, min, max) = summary(values);
        println!("| {name} | {median:.2} s | {min:.2} s | {max:.2} s |");
    }
    Ok(())
}
