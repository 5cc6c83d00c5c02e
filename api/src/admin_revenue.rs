//! `mingus-admin revenue backfill --from --to`: the nightly revenue computation over any range, run in
//! this process (one statement; a year of 100,000 subscriptions takes seconds, so there is nothing to
//! fan out).

use anyhow::Context;
use chrono::NaiveDate;
use clap::Subcommand;
use mingus_common::{Config, db, revenue};

#[derive(Debug, Subcommand)]
pub enum RevenueCommand {
    /// Recomputes the revenue facts of every day of [--from, --to] (UTC) from the whole subscription
    /// history; idempotent, and the same computation as the nightly `analytics.revenue_rollup` job.
    Backfill {
        #[arg(long, value_name = "YYYY-MM-DD")]
        from: NaiveDate,
        #[arg(long, value_name = "YYYY-MM-DD")]
        to: NaiveDate,
    },
}

pub async fn execute(command: RevenueCommand, config: &Config) -> anyhow::Result<()> {
    match command {
        RevenueCommand::Backfill { from, to } => {
            revenue::check_range(from, to)?;
            let pool = db::connect(&config.database)
                .await
                .context("cannot connect to DATABASE_URL")?;
            let done = revenue::compute(&pool, from, to).await?;
            println!(
                "revenue facts of {} day(s) ({from} ..= {to}) computed in {:.2} s",
                done.days,
                done.elapsed.as_secs_f64()
            );
            Ok(())
        }
    }
}
