//! One import, start to finish: check the file, check PostgreSQL, stage, reconcile, report, move,
//! verify. Every refusal happens before anything is written; the only thing a failed or killed run
//! leaves is its staging schema, which the next run of the same file drops.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use chrono::{NaiveDate, SecondsFormat, Utc};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use mingus_common::analytics::partitions;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::apply::{self, Applied, BatchRecord};
use crate::fingerprint::{self, CREATED_PROFILES, Checksum, Side};
use crate::row::{Action, Finding};
use crate::spec::TABLES;
use crate::verify::{self, Verification};
use crate::{ids, load, reconcile, report, source, stage};

/// How many report lines an [`ImportSummary`] carries in memory: enough for every test fixture and a
/// screenful of any real file, bounded for a 10,000-user file's 390,000 lines (the files have all).
pub const FINDINGS_KEPT: usize = 10_000;

/// What to do.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub path: PathBuf,
    /// Abort (import nothing) when more rows than this are rejected.
    pub max_rejects: Option<u64>,
    /// Everything but the move: staging, rules, report; nothing visible changes.
    pub dry_run: bool,
    /// Import a file that is already imported: its live batch is rolled back in the same transaction.
    pub force: bool,
    /// Every check-in through the partitioned parent (no new month built and attached whole, so no
    /// ACCESS EXCLUSIVE lock on the default partition during the move): for a database in use.
    pub online: bool,
    /// Where `rejects.csv` and `rejects.json` go (a folder per batch inside it).
    pub report_dir: PathBuf,
    /// Progress bars on stderr (hidden anyway when stderr is not a terminal).
    pub progress: bool,
    /// Rollup shard jobs per backfilled day (`MINGUS_ANALYTICS_SHARDS`).
    pub analytics_shards: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct TableCounts {
    pub table: String,
    pub read: u64,
    pub rejected: u64,
    pub imported: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Outcome {
    Imported { replaced: Option<Uuid> },
    DryRun,
    AlreadyImported(Uuid),
}

#[derive(Debug, Clone, Serialize)]
pub struct ImportSummary {
    pub batch: Uuid,
    pub outcome: Outcome,
    pub sha256: String,
    pub revision: String,
    pub tables: Vec<TableCounts>,
    pub created_profiles: u64,
    pub rejected_rows: u64,
    pub repaired_values: u64,
    /// The report's first [`FINDINGS_KEPT`] lines (all of them for any but a very dirty file; the
    /// files have every line).
    pub findings: Vec<Finding>,
    /// How many lines the report has.
    pub report_lines: u64,
    pub report: Option<(PathBuf, PathBuf)>,
    pub backfill_days: usize,
    pub verification: Option<Verification>,
    /// Seconds per phase (load, reconcile, fingerprint, move, verify), for the benchmark.
    pub phases: Vec<(&'static str, f64)>,
}

/// Refuses a database whose migrations (this importer's `import_batches` among them) are not all applied.
pub async fn ensure_migrated(pool: &PgPool) -> anyhow::Result<()> {
    let exists: bool =
        sqlx::query_scalar("SELECT to_regclass('public._sqlx_migrations') IS NOT NULL")
            .fetch_one(pool)
            .await
            .context("cannot query PostgreSQL")?;
    let applied: Vec<i64> = if exists {
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await?
    } else {
        Vec::new()
    };
    let pending: Vec<String> = mingus_common::db::MIGRATOR
        .iter()
        .filter(|m| m.migration_type.is_up_migration() && !applied.contains(&m.version))
        .map(|m| format!("{} {}", m.version, m.description))
        .collect();
    if !pending.is_empty() {
        bail!(
            "PostgreSQL is not migrated ({} migration(s) pending, first {}): run `mingus-admin migrate` first; nothing was written",
            pending.len(),
            pending[0]
        );
    }
    Ok(())
}

fn bars(progress: bool, counts: &[u64]) -> (MultiProgress, Vec<ProgressBar>) {
    let multi = MultiProgress::with_draw_target(if progress {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let style = ProgressStyle::with_template(
        "{prefix:>38} [{bar:30}] {pos:>9}/{len:9} {per_sec:>12} {elapsed}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    let bars = TABLES
        .iter()
        .zip(counts)
        .map(|(table, count)| {
            let bar = multi.add(ProgressBar::new(*count));
            bar.set_style(style.clone());
            bar.set_prefix(table.name);
            bar
        })
        .collect();
    (multi, bars)
}

/// Runs one import.
pub async fn import(pool: &PgPool, options: &ImportOptions) -> anyhow::Result<ImportSummary> {
    let path = options.path.clone();
    let source = tokio::task::spawn_blocking(move || source::open(&path)).await??;
    ensure_migrated(pool).await?;
    let batch = Uuid::new_v4();
    let mut summary = ImportSummary {
        batch,
        outcome: Outcome::DryRun,
        sha256: source.sha256.clone(),
        revision: source.revision.clone(),
        tables: Vec::new(),
        created_profiles: 0,
        rejected_rows: 0,
        repaired_values: 0,
        findings: Vec::new(),
        report_lines: 0,
        report: None,
        backfill_days: 0,
        verification: None,
        phases: Vec::new(),
    };
    let live = apply::live_batch(&mut *pool.acquire().await?, &source.sha256).await?;
    // A dry run answers what the real run would: nothing to do.
    if let Some((existing, _)) = live
        && !options.force
    {
        summary.outcome = Outcome::AlreadyImported(existing);
        return Ok(summary);
    }
    // With --force the live batch is replaced: its users are not "already in PostgreSQL".
    let replacing = live.filter(|_| options.force).map(|(_, tag)| tag as u64);
    let schema = stage::schema_name(&source.sha256);
    stage::create(pool, &schema).await?;
    let result = staged(pool, options, source, &schema, replacing, &mut summary).await;
    // Scratch space either way (a killed run's is dropped by the next run's `stage::create`).
    let dropped = stage::drop_schema(pool, &schema).await;
    result?;
    dropped?;
    Ok(summary)
}

async fn staged(
    pool: &PgPool,
    options: &ImportOptions,
    source: source::Source,
    schema: &str,
    replacing: Option<u64>,
    summary: &mut ImportSummary,
) -> anyhow::Result<()> {
    let tag = ids::tag_of(summary.batch);
    let (_multi, bars) = bars(options.progress, &source.counts);
    let import_time = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
    let mut clock = std::time::Instant::now();
    let mut lap = |summary: &mut ImportSummary, phase| {
        summary.phases.push((phase, clock.elapsed().as_secs_f64()));
        clock = std::time::Instant::now();
    };
    let (source, loaded) = load::load(pool, schema, source, tag, import_time, bars).await?;
    lap(summary, "load (read, transform, COPY)");
    let path = source.path.display().to_string();
    let revision = source.revision.clone();
    // The read transaction (and the file's SHARED lock) ends here.
    drop(source);

    let later_by_table =
        reconcile::reconcile(pool, schema, &loaded.rejected_users, replacing).await?;
    lap(summary, "reconcile");
    // Every row the transforms rejected has at least one `rejected` line, and a row the whole-file
    // rules reject was staged, so never rejected by a transform: the two counts add up.
    summary.rejected_rows =
        loaded.rejected.iter().sum::<u64>() + later_by_table.values().sum::<u64>();
    summary.repaired_values = loaded
        .findings
        .iter()
        .filter(|f| f.action == Action::Repaired)
        .count() as u64;

    let expected = fingerprint::compute(pool, Side::Staging(schema), Checksum::RecordHash).await?;
    lap(summary, "fingerprint staging");
    let mut counts = BTreeMap::new();
    for (index, table) in TABLES.iter().enumerate() {
        let rejected =
            loaded.rejected[index] + later_by_table.get(table.name).copied().unwrap_or(0);
        let imported = expected.tables[table.name].count as u64;
        anyhow::ensure!(
            loaded.read[index] == rejected + imported,
            "{}: {} rows read but {rejected} rejected and {imported} staged (an importer bug; nothing was imported)",
            table.name,
            loaded.read[index]
        );
        counts.insert(
            table.name,
            serde_json::json!({"read": loaded.read[index], "rejected": rejected, "imported": imported}),
        );
        summary.tables.push(TableCounts {
            table: table.name.to_owned(),
            read: loaded.read[index],
            rejected,
            imported,
        });
    }
    summary.created_profiles = expected.tables[CREATED_PROFILES].count as u64;
    summary.report = Some(
        write_report(
            pool,
            schema,
            &options.report_dir.join(summary.batch.to_string()),
            loaded.findings,
            summary,
        )
        .await?,
    );
    if let Some(max) = options.max_rejects
        && summary.rejected_rows > max
    {
        bail!(
            "{} rows rejected, more than --max-rejects {max}: nothing was imported (see {})",
            summary.rejected_rows,
            summary
                .report
                .as_ref()
                .map(|(csv, _)| csv.display().to_string())
                .unwrap_or_default()
        );
    }
    if options.dry_run {
        summary.outcome = Outcome::DryRun;
        return Ok(());
    }
    let backfill = backfill_days(pool, schema).await?;
    summary.backfill_days = backfill.len();
    let record = BatchRecord {
        id: summary.batch,
        tag,
        sha256: summary.sha256.clone(),
        path,
        revision,
        counts: serde_json::to_value(&counts)?,
        expected,
        rejected_rows: summary.rejected_rows as i64,
        repaired_values: summary.repaired_values as i64,
    };
    let shards = options.analytics_shards;
    let checkins = if options.online {
        months_for_history(pool, schema).await?;
        apply::CheckinPath::Rows
    } else {
        apply::CheckinPath::NewMonthsWhole
    };
    match apply::apply(
        pool,
        schema,
        &record,
        options.force,
        checkins,
        &backfill,
        shards,
    )
    .await?
    {
        Applied::AlreadyImported(existing) => {
            summary.outcome = Outcome::AlreadyImported(existing);
        }
        Applied::Imported { replaced } => {
            lap(summary, "move (one transaction)");
            summary.outcome = Outcome::Imported { replaced };
            summary.verification = Some(verify::verify(pool, summary.batch).await?);
            lap(summary, "verify");
        }
    }
    Ok(())
}

/// Writes the report: the transforms' lines (in memory, in reading order), then the whole-file rules'
/// lines streamed from staging. `summary.findings` keeps the first [`FINDINGS_KEPT`] of them.
async fn write_report(
    pool: &PgPool,
    schema: &str,
    dir: &std::path::Path,
    transforms: Vec<Finding>,
    summary: &mut ImportSummary,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    let mut report = report::Report::create(dir)?;
    let mut kept = Vec::new();
    let mut each = |finding: Finding| -> anyhow::Result<()> {
        report.push(&finding)?;
        if kept.len() < FINDINGS_KEPT {
            kept.push(finding);
        }
        Ok(())
    };
    for finding in transforms {
        each(finding)?;
    }
    reconcile::for_each_reject(pool, schema, &mut each).await?;
    let (csv, json, lines) = report.finish()?;
    summary.findings = kept;
    summary.report_lines = lines;
    Ok((csv, json))
}

/// For `--online`: gives every month of the staged check-ins its partition before the move, through
/// partition maintenance's own short transactions (rows of those months already in the default partition
/// move out), so history lands in its months and not in the default partition. An import that then
/// fails leaves only empty partitions, the months maintenance would make anyway.
async fn months_for_history(pool: &PgPool, schema: &str) -> anyhow::Result<()> {
    let range: (Option<NaiveDate>, Option<NaiveDate>) = sqlx::query_as(sqlx::AssertSqlSafe(
        format!("SELECT min(checkin_date), max(checkin_date) FROM {schema}.user_health_checkins"),
    ))
    .fetch_one(pool)
    .await?;
    if let (Some(first), Some(last)) = range {
        let options = partitions::Options::new(Utc::now().date_naive());
        partitions::ensure_months(pool, "user_health_checkins", first, last, options)
            .await
            .context("creating the check-ins' monthly partitions")?;
    }
    Ok(())
}

/// The days whose `user_analytics` rollup the imported rows change: those of the check-ins and
/// questionnaires, up to yesterday, at most the last 366.
async fn backfill_days(pool: &PgPool, schema: &str) -> anyhow::Result<Vec<NaiveDate>> {
    let first: Option<NaiveDate> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT least((SELECT min(checkin_date) FROM {schema}.user_health_checkins),
                      (SELECT min(submitted_at AT TIME ZONE 'UTC')::date FROM {schema}.financial_questionnaire_submissions))"
    )))
    .fetch_one(pool)
    .await?;
    let yesterday = Utc::now().date_naive() - chrono::Days::new(1);
    let Some(first) = first else {
        return Ok(Vec::new());
    };
    let first = first.max(yesterday - chrono::Days::new(365));
    Ok(first
        .iter_days()
        .take_while(|d| *d <= yesterday)
        .take(366)
        .collect())
}
