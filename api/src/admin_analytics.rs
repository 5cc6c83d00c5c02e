//! `mingus-admin analytics …` and `mingus-admin partitions …`: the synthetic data generator, rollup
//! backfills, and partition maintenance on demand.

use std::time::Duration;

use anyhow::Context;
use chrono::{Days, NaiveDate, Utc};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use mingus_common::analytics::{generate, partitions, rollup, stage};
use mingus_common::jobs::{Enqueuer, outbox};
use mingus_common::{Config, cache, db};

#[derive(Debug, Subcommand)]
pub enum AnalyticsCommand {
    /// Fills the database with synthetic users and their activity (deterministic per seed).
    Generate {
        /// Users to create (1,000 to 1,000,000 is the intended range).
        #[arg(long)]
        users: u64,
        /// Days of activity, ending on --end.
        #[arg(long, default_value_t = 30)]
        days: u32,
        /// Seed of every random choice; one seed can be generated once per database.
        #[arg(long, default_value_t = 1)]
        seed: i64,
        /// Last day with activity (default: yesterday, UTC).
        #[arg(long, value_name = "YYYY-MM-DD")]
        end: Option<NaiveDate>,
        /// Users per statement.
        #[arg(long, default_value_t = 20_000)]
        chunk: u64,
        /// Statements in flight at once.
        #[arg(long, default_value_t = 2)]
        parallel: usize,
    },
    /// Rolls up every day of [--from, --to]: enqueues one job per day and shard (default), or runs the
    /// rollup here with --inline.
    Backfill {
        #[arg(long, value_name = "YYYY-MM-DD")]
        from: NaiveDate,
        #[arg(long, value_name = "YYYY-MM-DD")]
        to: NaiveDate,
        /// Shards per day (default: MINGUS_ANALYTICS_SHARDS).
        #[arg(long)]
        shards: Option<u32>,
        /// Run the statements in this process instead of enqueueing jobs.
        #[arg(long)]
        inline: bool,
        /// With --inline: shard statements in flight at once.
        #[arg(long, default_value_t = 2)]
        parallel: usize,
    },
}

#[derive(Debug, Subcommand)]
pub enum PartitionsCommand {
    /// Premakes the coming months' partitions, rescues rows from default partitions, applies retention
    /// (what the nightly `maintenance.partitions` job does).
    Maintain {
        /// Only print what would change.
        #[arg(long)]
        dry_run: bool,
        /// Act as if today were this day (UTC).
        #[arg(long, value_name = "YYYY-MM-DD", hide = true)]
        today: Option<NaiveDate>,
    },
}

fn bar(len: u64, prefix: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:>10} [{bar:40.cyan/blue}] {pos}/{len} {msg} ({elapsed_precise}, eta {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_prefix(prefix.to_owned());
    bar.enable_steady_tick(Duration::from_millis(250));
    bar
}

pub async fn analytics(command: AnalyticsCommand, config: &Config) -> anyhow::Result<()> {
    let pool = db::connect(&config.database)
        .await
        .context("cannot connect to DATABASE_URL")?;
    match command {
        AnalyticsCommand::Generate {
            users,
            days,
            seed,
            end,
            chunk,
            parallel,
        } => {
            let options = generate::Options {
                users,
                days,
                seed,
                end: end.unwrap_or_else(|| Utc::now().date_naive() - Days::new(1)),
                chunk_users: chunk,
                parallel,
            };
            let progress = bar(0, "generate");
            let report = generate::generate(&pool, options, |p| {
                progress.set_length(p.total);
                progress.set_position(p.done);
                progress.set_message(p.phase);
            })
            .await?;
            progress.finish_and_clear();
            println!(
                "generated {} users ({} profiles, {} questionnaires, {} goals), {} check-ins and {} activity events \
                 for {}..={} in {:.1} s",
                report.users,
                report.profiles,
                report.questionnaires,
                report.goals,
                report.checkins,
                report.events,
                options.start(),
                options.end,
                report.elapsed.as_secs_f64()
            );
            Ok(())
        }
        AnalyticsCommand::Backfill {
            from,
            to,
            shards,
            inline,
            parallel,
        } => {
            anyhow::ensure!(from <= to, "--from must not be after --to");
            let dates: Vec<NaiveDate> = from.iter_days().take_while(|d| *d <= to).collect();
            anyhow::ensure!(dates.len() <= 3660, "at most 3,660 days per backfill");
            let shards = shards.unwrap_or(config.jobs.analytics_shards);
            rollup::Shard::all(shards)?;
            // Old days get their own partitions instead of filling the default one.
            partitions::ensure_months(
                &pool,
                "user_analytics",
                from,
                to,
                partitions::Options::new(Utc::now().date_naive()),
            )
            .await?;
            if inline {
                backfill_inline(&pool, &dates, shards, parallel).await
            } else {
                backfill_enqueue(&pool, config, &dates, shards).await
            }
        }
    }
}

async fn backfill_inline(
    pool: &sqlx::PgPool,
    dates: &[NaiveDate],
    shards: u32,
    parallel: usize,
) -> anyhow::Result<()> {
    use futures::stream::{self, StreamExt};
    let progress = bar(dates.len() as u64 * u64::from(shards), "rollup");
    let mut written = 0;
    for &date in dates {
        progress.set_message(date.to_string());
        let mut results = stream::iter(rollup::Shard::all(shards)?)
            .map(|shard| rollup::roll_up(pool, date, shard))
            .buffer_unordered(parallel.max(1));
        while let Some(report) = results.next().await {
            written += report?.rows_written;
            progress.inc(1);
        }
    }
    progress.finish_and_clear();
    println!(
        "rolled up {} day(s) in {} shard(s) each: {written} row(s) written",
        dates.len(),
        shards
    );
    Ok(())
}

async fn backfill_enqueue(
    pool: &sqlx::PgPool,
    config: &Config,
    dates: &[NaiveDate],
    shards: u32,
) -> anyhow::Result<()> {
    let redis = cache::connect(&config.redis)
        .await
        .context("cannot connect to REDIS_URL")?;
    let enqueuer = Enqueuer::new(redis, config.redis.key_prefix.clone());
    let jobs = stage::shard_jobs(dates, shards, None)?;
    let progress = bar(jobs.len() as u64, "enqueue");
    let mut all_pushed = true;
    for batch in jobs.chunks(500) {
        let mut tx = pool.begin().await?;
        let staged = stage::stage_shards(&mut tx, batch).await?;
        tx.commit().await?;
        all_pushed &= outbox::push_after_commit(pool, &enqueuer, &staged).await;
        progress.inc(batch.len() as u64);
    }
    progress.finish_and_clear();
    println!(
        "enqueued {} rollup job(s): {} day(s) × {shards} shard(s) on the analytics queue{}",
        jobs.len(),
        dates.len(),
        if all_pushed {
            ""
        } else {
            " (Redis did not take some pushes: the outbox sweep will push them)"
        }
    );
    Ok(())
}

pub async fn partitions(command: PartitionsCommand, config: &Config) -> anyhow::Result<()> {
    let pool = db::connect(&config.database)
        .await
        .context("cannot connect to DATABASE_URL")?;
    let PartitionsCommand::Maintain { dry_run, today } = command;
    let mut options = partitions::Options::new(today.unwrap_or_else(|| Utc::now().date_naive()));
    options.dry_run = dry_run;
    let report = partitions::maintain(&pool, options).await?;
    let verb = if dry_run { "would" } else { "did" };
    for action in &report.actions {
        match action {
            partitions::Action::Create {
                partition,
                from,
                to,
                rescued_rows,
                ..
            } => println!(
                "{verb} create {partition} [{from}, {to}), moving {rescued_rows} row(s) out of the default partition"
            ),
            partitions::Action::Retire { partition, how, .. } => {
                println!("{verb} retire {partition} ({how:?})")
            }
        }
    }
    for (what, why) in &report.failures {
        eprintln!("failed: {what}: {why}");
    }
    println!(
        "{} change(s), {} failure(s) in {} ms",
        report.actions.len(),
        report.failures.len(),
        report.elapsed.as_millis()
    );
    anyhow::ensure!(
        report.failures.is_empty(),
        "some steps failed; run again later"
    );
    Ok(())
}
