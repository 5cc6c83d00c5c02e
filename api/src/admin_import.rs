//! `mingus-admin import-sqlite` and `sqlite-fixture`: argument parsing and printing only; the work is in
//! the `mingus-import` crate.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use mingus_common::{Config, db};
use mingus_import::fixture::{self, FixtureOptions};
use mingus_import::{ImportOptions, ImportSummary, Outcome, Verification};
use uuid::Uuid;

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The SQLite file (opened read-only).
    #[arg(required_unless_present_any = ["verify", "rollback"])]
    pub file: Option<PathBuf>,
    /// Abort, importing nothing, when more than N rows are rejected.
    #[arg(long, value_name = "N")]
    pub max_rejects: Option<u64>,
    /// Run everything except the final move and print the same report.
    #[arg(long)]
    pub dry_run: bool,
    /// Import a file already imported: its batch is rolled back and the file imported again, in one
    /// transaction. With --rollback: also delete rows created since for the batch's users.
    #[arg(long)]
    pub force: bool,
    /// Write every check-in through the partitioned parent instead of building each new month as a
    /// table and attaching it: slower, but the move never holds the default partition's ACCESS
    /// EXCLUSIVE lock, so an import into a database already serving the app blocks none of its reads.
    #[arg(long)]
    pub online: bool,
    /// Where the rejects report goes (a folder per batch inside).
    #[arg(long, value_name = "DIR", default_value = "import-reports")]
    pub report_dir: PathBuf,
    /// Only verify a batch imported earlier (exit 1 on any difference).
    #[arg(long, value_name = "BATCH", conflicts_with_all = ["file", "rollback", "dry_run"])]
    pub verify: Option<Uuid>,
    /// Remove exactly the rows a batch imported.
    #[arg(long, value_name = "BATCH", conflicts_with_all = ["file", "verify", "dry_run"])]
    pub rollback: Option<Uuid>,
}

#[derive(Debug, Args)]
pub struct FixtureArgs {
    /// Users to generate (about 90 KB of SQLite each with the default check-ins).
    #[arg(long)]
    pub users: u32,
    /// The file to write (must not exist).
    #[arg(long, value_name = "FILE", default_value = "mingus-dev.sqlite")]
    pub out: PathBuf,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Daily check-ins per user.
    #[arg(long, default_value_t = 365)]
    pub checkins_per_user: u32,
}

pub async fn import(args: ImportArgs, config: &Config) -> anyhow::Result<()> {
    let pool = db::connect(&config.database)
        .await
        .context("cannot connect to DATABASE_URL")?;
    if let Some(batch) = args.verify {
        mingus_import::ensure_migrated(&pool).await?;
        let report = mingus_import::verify(&pool, batch).await?;
        print_verification(&report);
        anyhow::ensure!(
            report.ok(),
            "verification of batch {batch} found differences"
        );
        return Ok(());
    }
    if let Some(batch) = args.rollback {
        mingus_import::ensure_migrated(&pool).await?;
        let done = mingus_import::rollback(&pool, batch, args.force).await?;
        for (table, n) in &done.deleted {
            println!("{table:>38}: {n} rows deleted");
        }
        for (reference, n) in &done.foreign {
            println!("{reference:>38}: {n} later rows deleted with their users (--force)");
        }
        println!("batch {batch} rolled back");
        return Ok(());
    }
    let options = ImportOptions {
        path: args.file.context("a SQLite file is required")?,
        max_rejects: args.max_rejects,
        dry_run: args.dry_run,
        force: args.force,
        online: args.online,
        report_dir: args.report_dir,
        progress: true,
        analytics_shards: config.jobs.analytics_shards,
    };
    let started = std::time::Instant::now();
    let summary = mingus_import::import(&pool, &options).await?;
    print_summary(&summary, started.elapsed());
    if let Some(report) = &summary.verification {
        anyhow::ensure!(
            report.ok(),
            "verification after the import found differences"
        );
    }
    Ok(())
}

fn print_summary(summary: &ImportSummary, elapsed: std::time::Duration) {
    if let Outcome::AlreadyImported(batch) = summary.outcome {
        println!(
            "this file (sha256 {}) is already imported as batch {batch}: nothing to do \
             (--force re-imports it, --rollback {batch} removes it)",
            summary.sha256
        );
        return;
    }
    println!(
        "{:>38} {:>10} {:>10} {:>10}",
        "table", "read", "rejected", "imported"
    );
    for t in &summary.tables {
        println!(
            "{:>38} {:>10} {:>10} {:>10}",
            t.table, t.read, t.rejected, t.imported
        );
    }
    println!(
        "empty profiles created for users without one: {}",
        summary.created_profiles
    );
    println!(
        "rejected rows: {}, repaired values: {}",
        summary.rejected_rows, summary.repaired_values
    );
    if let Some((csv, json)) = &summary.report {
        println!("report: {} and {}", csv.display(), json.display());
    }
    match &summary.outcome {
        Outcome::DryRun => println!("dry run: nothing was imported"),
        Outcome::Imported { replaced } => {
            println!("imported as batch {}", summary.batch);
            if let Some(old) = replaced {
                println!("(batch {old} of the same file was rolled back in the same transaction)");
            }
            println!(
                "analytics rollup staged for {} day(s) (the outbox sweep pushes the jobs)",
                summary.backfill_days
            );
        }
        Outcome::AlreadyImported(_) => {}
    }
    if let Some(report) = &summary.verification {
        print_verification(report);
    }
    for (phase, seconds) in &summary.phases {
        println!("{phase:>38}: {seconds:.1} s");
    }
    println!("took {:.1} s", elapsed.as_secs_f64());
}

fn print_verification(report: &Verification) {
    for line in &report.passed {
        println!("verify ok:   {line}");
    }
    for line in &report.differences {
        println!("verify FAIL: {line}");
    }
}

pub fn generate_fixture(args: FixtureArgs) -> anyhow::Result<()> {
    let options = FixtureOptions {
        seed: args.seed,
        checkins_per_user: args.checkins_per_user,
        ..FixtureOptions::new(args.users)
    };
    let stats = fixture::generate(&args.out, &options)?;
    println!(
        "{}: {} users, {} rows, {:.1} MB",
        args.out.display(),
        stats.users,
        stats.rows,
        stats.bytes as f64 / 1e6
    );
    Ok(())
}
