//! Partition maintenance for the monthly range-partitioned tables registered in `partitioned_tables`.
//!
//! For each table: the current month and the next `premake_months` get a partition `<table>_pYYYY_MM`
//! (bounds at UTC midnights), and with `retention_months` set, partitions that end before the first day
//! of the month `retention_months` before the current one are detached and dropped or archived (moved to
//! the `archive` schema).
//!
//! **The registry, not discovery.** Tables are listed in `partitioned_tables` (premake/retention are per
//! table); a partitioned table that is not registered is left alone.
//!
//! **Locks.** Planning reads only the catalogs, so a run with nothing to do takes no lock on any table and
//! finishes in milliseconds. Creating a month does not use `CREATE TABLE … PARTITION OF` (which locks the
//! parent ACCESS EXCLUSIVE): it creates a plain table like the parent, then, in the same transaction,
//! locks the parent SHARE UPDATE EXCLUSIVE (writers to other partitions go on) and the default partition
//! ACCESS EXCLUSIVE, moves the default partition's rows of that month into the new table, and attaches it
//! (`ATTACH PARTITION`, which builds the parent's indexes on it and clones its foreign keys). So a row
//! that landed in the default partition before its month existed never makes creation fail — it moves.
//! Every step runs under a `lock_timeout`: a lock that is not granted quickly is given up (and retried by
//! the next attempt) rather than queueing writers behind it.

use std::time::{Duration, Instant};

use chrono::{Datelike, Months, NaiveDate};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};

/// What to do with partitions past retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RetentionAction {
    Drop,
    Archive,
}

/// One row of `partitioned_tables`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TablePolicy {
    pub table: String,
    pub premake_months: u32,
    pub retention_months: Option<u32>,
    pub retention_action: RetentionAction,
}

#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// "Today" (UTC) for the month arithmetic; injected so tests can move the clock.
    pub today: NaiveDate,
    pub dry_run: bool,
    /// Longest wait for a lock before a step gives up.
    pub lock_timeout: Duration,
}

impl Options {
    pub fn new(today: NaiveDate) -> Self {
        Options {
            today,
            dry_run: false,
            lock_timeout: Duration::from_secs(2),
        }
    }
}

/// One change, done (or, in a dry run, planned).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    Create {
        table: String,
        partition: String,
        from: NaiveDate,
        to: NaiveDate,
        /// Rows moved (or to move) out of the default partition.
        rescued_rows: u64,
    },
    Retire {
        table: String,
        partition: String,
        to: NaiveDate,
        how: RetentionAction,
    },
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub dry_run: bool,
    pub actions: Vec<Action>,
    /// Steps that failed (lock not granted, a month covered only in part, …): `(what, why)`.
    pub failures: Vec<(String, String)>,
    #[serde(skip)]
    pub elapsed: Duration,
}

/// The shape of a range-partitioned table, read from the catalogs.
#[derive(Debug, Clone)]
pub struct Shape {
    parent: String,
    column: String,
    column_type: String,
    default_partition: Option<String>,
    /// Non-default partitions with their bounds as dates (None = MINVALUE / MAXVALUE).
    ranges: Vec<(String, Option<NaiveDate>, Option<NaiveDate>)>,
}

pub fn first_of_month(day: NaiveDate) -> NaiveDate {
    day.with_day(1).expect("day 1 exists")
}

fn month_after(month: NaiveDate) -> NaiveDate {
    month + Months::new(1)
}

/// `<table>_pYYYY_MM`, as `mingus_ensure_monthly_partitions` names them.
pub fn partition_name(table: &str, month: NaiveDate) -> String {
    format!("{table}_p{}", month.format("%Y_%m"))
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The bound literal of a month start for the key column's type; timestamptz bounds carry `+00`, so they
/// never depend on the session's time zone.
fn bound_literal(column_type: &str, day: NaiveDate) -> String {
    match column_type {
        "date" => format!("'{day}'"),
        "timestamp with time zone" => format!("'{day} 00:00:00+00'"),
        _ => format!("'{day} 00:00:00'"),
    }
}

async fn execute(conn: &mut PgConnection, sql: String) -> Result<u64, sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(conn)
        .await
        .map(|r| r.rows_affected())
}

/// The registered tables and their settings.
pub async fn policies(pool: &PgPool) -> Result<Vec<TablePolicy>, sqlx::Error> {
    let rows: Vec<(String, i32, Option<i32>, String)> = sqlx::query_as(
        "SELECT table_name, premake_months, retention_months, retention_action
         FROM partitioned_tables ORDER BY table_name",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(table, premake, retention, action)| TablePolicy {
            table,
            premake_months: premake.max(0) as u32,
            retention_months: retention.map(|m| m.max(1) as u32),
            retention_action: if action == "archive" {
                RetentionAction::Archive
            } else {
                RetentionAction::Drop
            },
        })
        .collect())
}

/// Parses `FOR VALUES FROM ('2026-11-01 00:00:00+00') TO (MAXVALUE)` (rendered with TimeZone UTC).
fn parse_bound(expr: &str) -> Option<(Option<NaiveDate>, Option<NaiveDate>)> {
    let rest = expr.strip_prefix("FOR VALUES FROM (")?;
    let (from, rest) = rest.split_once(") TO (")?;
    let to = rest.strip_suffix(')')?;
    let date = |raw: &str| -> Option<Option<NaiveDate>> {
        if raw.eq_ignore_ascii_case("MINVALUE") || raw.eq_ignore_ascii_case("MAXVALUE") {
            return Some(None);
        }
        let text = raw.trim_matches('\'');
        NaiveDate::parse_from_str(text.get(..10)?, "%Y-%m-%d")
            .ok()
            .map(Some)
    };
    Some((date(from)?, date(to)?))
}

pub async fn shape(pool: &PgPool, table: &str) -> anyhow::Result<Shape> {
    let mut tx = pool.begin().await?;
    // Bounds of timestamptz partitions render in the session's zone: read them in UTC.
    sqlx::query("SET LOCAL TimeZone = 'UTC'")
        .execute(&mut *tx)
        .await?;
    let key: Option<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod),
                CASE WHEN p.partdefid <> 0 THEN p.partdefid::regclass::text END
         FROM pg_partitioned_table p
         JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0]
         WHERE p.partrelid = to_regclass($1) AND p.partstrat = 'r' AND p.partnatts = 1",
    )
    .bind(table)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((column, column_type, default_partition)) = key else {
        anyhow::bail!("{table} is not a table range-partitioned on one column");
    };
    let partitions: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.oid::regclass::text, pg_get_expr(c.relpartbound, c.oid)
         FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = to_regclass($1) AND NOT c.relpartbound IS NULL",
    )
    .bind(table)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let mut ranges = Vec::new();
    for (name, bound) in partitions {
        if bound == "DEFAULT" {
            continue;
        }
        let (from, to) = parse_bound(&bound)
            .ok_or_else(|| anyhow::anyhow!("cannot read the bounds of {name}: {bound}"))?;
        ranges.push((name, from, to));
    }
    Ok(Shape {
        parent: table.to_owned(),
        column,
        column_type,
        default_partition,
        ranges,
    })
}

/// How a month stands: covered by partitions (fully or in part) or free.
enum Coverage {
    Full,
    Partial(String),
    Free,
}

fn coverage(shape: &Shape, month: NaiveDate) -> Coverage {
    let end = month_after(month);
    let mut partial = None;
    for (name, from, to) in &shape.ranges {
        let starts_before_end = from.is_none_or(|f| f < end);
        let ends_after_start = to.is_none_or(|t| t > month);
        if starts_before_end && ends_after_start {
            if from.is_none_or(|f| f <= month) && to.is_none_or(|t| t >= end) {
                return Coverage::Full;
            }
            partial = Some(name.clone());
        }
    }
    partial.map_or(Coverage::Free, Coverage::Partial)
}

/// True when no partition covers any part of `month` (it can be created).
pub fn month_is_free(shape: &Shape, month: NaiveDate) -> bool {
    matches!(coverage(shape, month), Coverage::Free)
}

/// Premakes, rescues and retires partitions of every registered table. Failures of single steps are
/// collected in the report (the others still run); the job turns them into a retry.
pub async fn maintain(pool: &PgPool, options: Options) -> anyhow::Result<Report> {
    let started = Instant::now();
    let mut report = Report {
        dry_run: options.dry_run,
        ..Report::default()
    };
    let current = first_of_month(options.today);
    for policy in policies(pool).await? {
        let months: Vec<NaiveDate> = (0..=policy.premake_months)
            .map(|m| current + Months::new(m))
            .collect();
        let cutoff = policy
            .retention_months
            .map(|keep| current - Months::new(keep));
        let result = maintain_table(
            pool,
            &policy.table,
            &months,
            cutoff.map(|c| (c, policy.retention_action)),
            options,
            &mut report,
        )
        .await;
        if let Err(err) = result {
            report
                .failures
                .push((policy.table.clone(), format!("{err:#}")));
        }
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Makes sure every month overlapping `[from, to]` has its partition in `table` (rescuing default rows):
/// what the generator and backfills call before writing history outside the premade months.
pub async fn ensure_months(
    pool: &PgPool,
    table: &str,
    from: NaiveDate,
    to: NaiveDate,
    options: Options,
) -> anyhow::Result<Report> {
    let started = Instant::now();
    let mut report = Report {
        dry_run: options.dry_run,
        ..Report::default()
    };
    let mut months = Vec::new();
    let mut month = first_of_month(from);
    while month <= to {
        months.push(month);
        month = month_after(month);
    }
    maintain_table(pool, table, &months, None, options, &mut report).await?;
    report.elapsed = started.elapsed();
    if let Some((what, why)) = report.failures.first() {
        anyhow::bail!("{what}: {why}");
    }
    Ok(report)
}

async fn maintain_table(
    pool: &PgPool,
    table: &str,
    months: &[NaiveDate],
    retention: Option<(NaiveDate, RetentionAction)>,
    options: Options,
    report: &mut Report,
) -> anyhow::Result<()> {
    let shape = shape(pool, table).await?;
    for &month in months {
        match coverage(&shape, month) {
            Coverage::Full => {}
            Coverage::Partial(other) => report.failures.push((
                partition_name(table, month),
                format!("the month is covered in part by {other}; not created"),
            )),
            Coverage::Free => match create_month(pool, &shape, month, options).await {
                Ok(action) => report.actions.push(action),
                Err(err) => report
                    .failures
                    .push((partition_name(table, month), format!("{err:#}"))),
            },
        }
    }
    if let Some((cutoff, how)) = retention {
        for (name, _, to) in &shape.ranges {
            let Some(to) = *to else { continue };
            if to > cutoff {
                continue;
            }
            let action = Action::Retire {
                table: table.to_owned(),
                partition: name.clone(),
                to,
                how,
            };
            if !options.dry_run
                && let Err(err) = retire(pool, &shape, name, how, options).await
            {
                report.failures.push((name.clone(), format!("{err:#}")));
                continue;
            }
            report.actions.push(action);
        }
    }
    Ok(())
}

async fn lock_timeout(conn: &mut PgConnection, options: Options) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT set_config('lock_timeout', $1, true)")
        .bind(format!("{}ms", options.lock_timeout.as_millis().max(1)))
        .execute(conn)
        .await
        .map(|_| ())
}

async fn create_month(
    pool: &PgPool,
    shape: &Shape,
    month: NaiveDate,
    options: Options,
) -> anyhow::Result<Action> {
    let end = month_after(month);
    let name = partition_name(&shape.parent, month);
    if options.dry_run {
        let column = quote_ident(&shape.column);
        let (low, high) = (
            bound_literal(&shape.column_type, month),
            bound_literal(&shape.column_type, end),
        );
        let in_month = format!("{column} >= {low} AND {column} < {high}");
        let rescued_rows = match &shape.default_partition {
            Some(default) => {
                let sql = format!("SELECT count(*) FROM {default} WHERE {in_month}");
                let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .fetch_one(pool)
                    .await?;
                n as u64
            }
            None => 0,
        };
        return Ok(Action::Create {
            table: shape.parent.clone(),
            partition: name,
            from: month,
            to: end,
            rescued_rows,
        });
    }
    let mut tx = pool.begin().await?;
    lock_timeout(&mut tx, options).await?;
    let (rescued_rows, _) = create_and_attach(&mut tx, shape, month, None).await?;
    tx.commit().await?;
    if rescued_rows > 0 {
        tracing::info!(table = %shape.parent, partition = %name, rescued_rows, "moved rows out of the default partition");
    }
    Ok(Action::Create {
        table: shape.parent.clone(),
        partition: name,
        from: month,
        to: end,
        rescued_rows,
    })
}

/// Creates `month`'s partition inside the caller's transaction: a plain table like the parent, filled
/// first by `fill` (an `INSERT INTO <partition_name(…)> …` of the caller's, if any), then with the
/// default partition's rows of that month, and attached last. Attaching builds the parent's indexes on
/// the filled table in one pass and validates its foreign keys with one query, instead of row by row:
/// the bulk path the importer takes for months that do not exist yet. Locks as described at the top
/// (the default partition ACCESS EXCLUSIVE until the caller's transaction ends). Returns the rows
/// rescued from the default partition and the rows `fill` wrote.
pub async fn create_and_attach(
    tx: &mut PgConnection,
    shape: &Shape,
    month: NaiveDate,
    fill: Option<String>,
) -> anyhow::Result<(u64, u64)> {
    let end = month_after(month);
    let name = partition_name(&shape.parent, month);
    let parent = quote_ident(&shape.parent);
    let partition = quote_ident(&name);
    let column = quote_ident(&shape.column);
    let (low, high) = (
        bound_literal(&shape.column_type, month),
        bound_literal(&shape.column_type, end),
    );
    let in_month = format!("{column} >= {low} AND {column} < {high}");
    execute(
        tx,
        format!(
            "CREATE TABLE {partition} (LIKE {parent} INCLUDING DEFAULTS INCLUDING CONSTRAINTS \
             INCLUDING STORAGE INCLUDING COMMENTS)"
        ),
    )
    .await?;
    let filled = match fill {
        Some(statement) => execute(tx, statement).await?,
        None => 0,
    };
    let mut rescued_rows = 0;
    if let Some(default) = &shape.default_partition {
        // Parent first, then the default partition: the order writers take them in.
        execute(
            tx,
            format!("LOCK TABLE {parent} IN SHARE UPDATE EXCLUSIVE MODE"),
        )
        .await?;
        execute(tx, format!("LOCK TABLE {default} IN ACCESS EXCLUSIVE MODE")).await?;
        let columns: String = sqlx::query_scalar(
            "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute
             WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped AND attgenerated = ''",
        )
        .bind(&shape.parent)
        .fetch_one(&mut *tx)
        .await?;
        rescued_rows = execute(
            tx,
            format!(
                "INSERT INTO {partition} ({columns}) SELECT {columns} FROM {default} WHERE {in_month}"
            ),
        )
        .await?;
        if rescued_rows > 0 {
            execute(tx, format!("DELETE FROM {default} WHERE {in_month}")).await?;
        }
    }
    execute(
        tx,
        format!(
            "ALTER TABLE {parent} ATTACH PARTITION {partition} FOR VALUES FROM ({low}) TO ({high})"
        ),
    )
    .await?;
    Ok((rescued_rows, filled))
}

async fn retire(
    pool: &PgPool,
    shape: &Shape,
    name: &str,
    how: RetentionAction,
    options: Options,
) -> anyhow::Result<()> {
    let parent = quote_ident(&shape.parent);
    let mut tx = pool.begin().await?;
    lock_timeout(&mut tx, options).await?;
    // `name` is regclass text: already quoted where it needs to be.
    execute(
        &mut tx,
        format!("ALTER TABLE {parent} DETACH PARTITION {name}"),
    )
    .await?;
    match how {
        RetentionAction::Drop => execute(&mut tx, format!("DROP TABLE {name}")).await?,
        RetentionAction::Archive => {
            execute(&mut tx, format!("ALTER TABLE {name} SET SCHEMA archive")).await?
        }
    };
    tx.commit().await?;
    tracing::info!(table = %shape.parent, partition = %name, ?how, "retired a partition");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn bounds_of_date_and_timestamptz_partitions_parse() {
        assert_eq!(
            parse_bound("FOR VALUES FROM ('2026-11-01') TO ('2026-12-01')"),
            Some((Some(day("2026-11-01")), Some(day("2026-12-01"))))
        );
        assert_eq!(
            parse_bound("FOR VALUES FROM ('2026-11-01 00:00:00+00') TO (MAXVALUE)"),
            Some((Some(day("2026-11-01")), None))
        );
        assert_eq!(parse_bound("DEFAULT"), None);
    }

    #[test]
    fn months_are_free_covered_or_partly_covered() {
        let shape = Shape {
            parent: "t".into(),
            column: "d".into(),
            column_type: "date".into(),
            default_partition: None,
            ranges: vec![
                (
                    "t_p2026_11".into(),
                    Some(day("2026-11-01")),
                    Some(day("2026-12-01")),
                ),
                (
                    "odd".into(),
                    Some(day("2027-01-15")),
                    Some(day("2027-02-15")),
                ),
            ],
        };
        assert!(matches!(
            coverage(&shape, day("2026-11-01")),
            Coverage::Full
        ));
        assert!(matches!(
            coverage(&shape, day("2026-12-01")),
            Coverage::Free
        ));
        assert!(matches!(coverage(&shape, day("2027-01-01")), Coverage::Partial(n) if n == "odd"));
        assert_eq!(
            bound_literal("timestamp with time zone", day("2026-12-01")),
            "'2026-12-01 00:00:00+00'"
        );
        assert_eq!(
            partition_name("user_analytics", day("2027-03-01")),
            "user_analytics_p2027_03"
        );
    }
}
