//! `mingus-bench-analytics`: the analytics benchmark, against a database of its own (created, migrated
//! and dropped again; loopback only).
//!
//! 1. generates `--users` × `--days` with the generator (timed);
//! 2. rolls up the last day with the set-based statement, `--shards` shard statements `--parallel` at a
//!    time (what `--parallel` workers of the `analytics` queue do with the shard jobs), then again (the
//!    idempotent re-run);
//! 3. runs the naive per-user loop (load, compute in Rust, upsert: `mingus_bench::analytics_reference`) over a
//!    `--sample` of users, checks it wrote the same rows, and extrapolates it to all users;
//! 4. times partition maintenance with nothing to do.
//!
//! `cargo run --release -p mingus-bench --bin mingus-bench-analytics -- --users 1000000 --days 30`

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{Days, Utc};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use mingus_bench::analytics_reference as reference;
use mingus_common::analytics::{generate, partitions, rollup};
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

#[allow(dead_code)]
use mingus_bench::BenchEnv;

/// The platform's allocator, as every binary's (why: `api/src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "mingus-bench-analytics",
    about = "Times the daily user_analytics rollup against a naive per-user loop, and partition maintenance",
    version
)]
struct Cli {
    #[arg(long, default_value_t = 100_000)]
    users: u64,
    #[arg(long, default_value_t = 30)]
    days: u32,
    #[arg(long, default_value_t = 4)]
    shards: u32,
    /// Shard statements in flight at once (the analytics workers' concurrency).
    #[arg(long, default_value_t = 2)]
    parallel: usize,
    /// Users of the naive loop's sample.
    #[arg(long, default_value_t = 10_000)]
    sample: i64,
    #[arg(long, default_value_t = 1)]
    seed: i64,
    /// Keep the benchmark database (its name is printed) instead of dropping it.
    #[arg(long)]
    keep: bool,
}

fn seconds(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("mingus-bench-analytics: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
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

async fn measure(cli: &Cli, url: &str) -> anyhow::Result<()> {
    let pool = PgPoolOptions::new()
        .max_connections((cli.parallel as u32).max(2) + 1)
        .acquire_timeout(Duration::from_secs(60))
        .connect(url)
        .await
        .context("connect")?;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let end = Utc::now().date_naive() - Days::new(1);
    let options = generate::Options {
        users: cli.users,
        days: cli.days,
        seed: cli.seed,
        end,
        chunk_users: 20_000,
        parallel: cli.parallel,
    };
    let progress = ProgressBar::new(0);
    progress.set_style(
        ProgressStyle::with_template(
            "generate [{bar:40}] {pos}/{len} {msg} ({elapsed_precise}, eta {eta})",
        )
        .expect("valid template"),
    );
    let generated = generate::generate(&pool, options, |p| {
        progress.set_length(p.total);
        progress.set_position(p.done);
        progress.set_message(p.phase);
    })
    .await?;
    progress.finish_and_clear();
    let database_bytes: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
        .fetch_one(&pool)
        .await?;
    println!(
        "generated {} users, {} events, {} check-ins, {} questionnaires, {} goals for {}..={} in {} ({:.1} GB)",
        generated.users,
        generated.events,
        generated.checkins,
        generated.questionnaires,
        generated.goals,
        options.start(),
        end,
        seconds(generated.elapsed),
        database_bytes as f64 / 1e9
    );

    // Warm the cache the way a nightly run finds it: the previous day was just written.
    let started = Instant::now();
    let reports = rollup::roll_up_day(&pool, end, cli.shards, cli.parallel).await?;
    let rollup_time = started.elapsed();
    let written: u64 = reports.iter().map(|r| r.rows_written).sum();
    let slowest = reports.iter().map(|r| r.elapsed).max().unwrap_or_default();
    let started = Instant::now();
    let again = rollup::roll_up_day(&pool, end, cli.shards, cli.parallel).await?;
    let rerun_time = started.elapsed();
    let rewritten: u64 = again.iter().map(|r| r.rows_written).sum();

    let sample: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM users ORDER BY md5(id::text) LIMIT $1")
            .bind(cli.sample)
            .fetch_all(&pool)
            .await?;
    let before = rows_of(&pool, end, &sample).await?;
    sqlx::query("DELETE FROM user_analytics WHERE date = $1 AND user_id = ANY($2)")
        .bind(end)
        .bind(&sample)
        .execute(&pool)
        .await?;
    let started = Instant::now();
    let naive_written = reference::naive_roll_up(&pool, end, &sample).await?;
    let naive_time = started.elapsed();
    let after = rows_of(&pool, end, &sample).await?;
    anyhow::ensure!(
        before == after,
        "the naive loop and the set-based rollup disagree on the sample"
    );
    let users = generated.users.max(1) as f64;
    let naive_all = naive_time.as_secs_f64() * users / sample.len().max(1) as f64;

    let today = Utc::now().date_naive();
    partitions::maintain(&pool, partitions::Options::new(today)).await?;
    let mut idle = Vec::new();
    for _ in 0..5 {
        let report = partitions::maintain(&pool, partitions::Options::new(today)).await?;
        anyhow::ensure!(
            report.actions.is_empty() && report.failures.is_empty(),
            "maintenance had work: {report:?}"
        );
        idle.push(report.elapsed);
    }
    idle.sort();

    println!();
    println!(
        "| measurement ({} users × {} days, {cores} cores) | result |",
        generated.users, cli.days
    );
    println!("|---|---|");
    println!(
        "| generation ({} events) | {} |",
        generated.events,
        seconds(generated.elapsed)
    );
    println!(
        "| set-based rollup of {end}: {} shards, {} at a time ({written} rows) | **{}** (slowest shard {}) |",
        cli.shards,
        cli.parallel,
        seconds(rollup_time),
        seconds(slowest)
    );
    println!(
        "| same day again (idempotent re-run, {rewritten} rows rewritten) | {} |",
        seconds(rerun_time)
    );
    println!(
        "| naive per-user loop, {} users ({naive_written} rows, identical) | {} = {:.2} ms/user |",
        sample.len(),
        seconds(naive_time),
        naive_time.as_secs_f64() * 1000.0 / sample.len().max(1) as f64
    );
    println!(
        "| naive loop extrapolated to {} users | {:.0} s |",
        generated.users, naive_all
    );
    println!(
        "| ratio naive / set-based | **{:.0}×** |",
        naive_all / rollup_time.as_secs_f64()
    );
    println!(
        "| partition maintenance, nothing to do (median / max of 5) | {:.1} ms / {:.1} ms |",
        idle[2].as_secs_f64() * 1000.0,
        idle[4].as_secs_f64() * 1000.0
    );
    Ok(())
}

async fn rows_of(
    pool: &sqlx::PgPool,
    date: chrono::NaiveDate,
    users: &[Uuid],
) -> anyhow::Result<Vec<(Uuid, reference::DayMetrics)>> {
    Ok(reference::stored_for(pool, date, Some(users)).await?)
}
