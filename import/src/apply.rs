//! The move from staging into place: one transaction holding every imported row and the batch's
//! record, so either all of an import is visible or none of it (a crash or kill before COMMIT leaves
//! only the staging schema, which the next run drops).

use chrono::NaiveDate;
use mingus_common::analytics::{self, partitions};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::checkins;
use crate::fingerprint::Fingerprint;
use crate::rollback;
use crate::spec::{TABLES, USER_HEALTH_CHECKINS as CHECKINS};

/// Serialises imports and rollbacks (the batch checks and the moves must not interleave).
pub const IMPORT_LOCK: i64 = 0x6d69_6e67_7573_0016;

/// What is recorded in `import_batches`.
#[derive(Debug, Clone)]
pub struct BatchRecord {
    pub id: Uuid,
    pub tag: u64,
    pub sha256: String,
    pub path: String,
    pub revision: String,
    pub counts: serde_json::Value,
    pub expected: Fingerprint,
    pub rejected_rows: i64,
    pub repaired_values: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Applied {
    /// The rows are in place as this batch (replacing an earlier batch of the same file with --force).
    Imported { replaced: Option<Uuid> },
    /// The file is already imported as this batch; nothing was written.
    AlreadyImported(Uuid),
}

/// The live batch of a file, if any.
pub async fn live_batch(
    conn: &mut PgConnection,
    sha256: &str,
) -> sqlx::Result<Option<(Uuid, i64)>> {
    sqlx::query_as(
        "SELECT id, id_tag FROM import_batches WHERE source_sha256 = $1 AND status = 'completed'",
    )
    .bind(sha256)
    .fetch_optional(conn)
    .await
}

async fn execute(conn: &mut PgConnection, statement: String) -> sqlx::Result<u64> {
    Ok(sqlx::query(sqlx::AssertSqlSafe(statement))
        .execute(conn)
        .await?
        .rows_affected())
}

/// How the check-ins move (`checkins.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckinPath {
    /// Months without a partition are built as tables and attached whole; the rest row by row.
    NewMonthsWhole,
    /// Every row through the partitioned parent (`--online`).
    Rows,
}

/// Moves staging into place and records the batch, in one transaction.
pub async fn apply(
    pool: &PgPool,
    schema: &str,
    record: &BatchRecord,
    force: bool,
    checkin_path: CheckinPath,
    backfill: &[NaiveDate],
    shards: u32,
) -> anyhow::Result<Applied> {
    // The partitions as they are now; a month created meanwhile by partition maintenance makes the
    // move's CREATE TABLE fail (nothing visible), and a rerun takes the row path for that month.
    let checkins_shape = partitions::shape(pool, CHECKINS.name).await?;
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(IMPORT_LOCK)
        .execute(&mut *tx)
        .await?;
    let replaced = match live_batch(&mut tx, &record.sha256).await? {
        Some((existing, _)) if !force => return Ok(Applied::AlreadyImported(existing)),
        Some((existing, tag)) => {
            rollback::remove_rows(&mut tx, tag as u64).await?;
            rollback::mark_rolled_back(&mut tx, existing).await?;
            Some(existing)
        }
        None => None,
    };
    // A lock the move cannot get soon (a long transaction of the application's on the default
    // partition) fails the import with a clear error instead of stalling everyone queued behind it.
    sqlx::query("SET LOCAL lock_timeout = '10s'")
        .execute(&mut *tx)
        .await?;
    for table in TABLES {
        let columns = table.target_columns().join(", ");
        if table.name == CHECKINS.name {
            let shape = (checkin_path == CheckinPath::NewMonthsWhole).then_some(&checkins_shape);
            checkins::move_checkins(&mut tx, schema, &columns, shape).await?;
            continue;
        }
        execute(
            &mut tx,
            format!(
                "INSERT INTO public.{t} ({columns}) SELECT {columns} FROM {schema}.{t}",
                t = table.name
            ),
        )
        .await?;
    }
    // The new schema gives every user a profile: users who had none get an empty one.
    execute(
        &mut tx,
        format!(
            "INSERT INTO public.user_profiles (id, user_id)
             SELECT u.profile_id, u.id FROM {schema}.users u
             WHERE NOT EXISTS (SELECT 1 FROM {schema}.user_profiles p WHERE p.user_id = u.id)"
        ),
    )
    .await?;
    // The rollup of the days the rows cover, as outbox rows in this transaction: the outbox sweep
    // pushes them (no Redis needed here, and a rolled-back import stages nothing).
    let jobs = analytics::stage::shard_jobs(backfill, shards, Some(record.id))?;
    for chunk in jobs.chunks(500) {
        analytics::stage::stage_shards(&mut tx, chunk).await?;
    }
    sqlx::query(
        "INSERT INTO import_batches (id, source_sha256, source_path, source_revision, id_tag, status,
             counts, expected, rejected_rows, repaired_values, replaces)
         VALUES ($1, $2, $3, $4, $5, 'completed', $6, $7, $8, $9, $10)",
    )
    .bind(record.id)
    .bind(&record.sha256)
    .bind(&record.path)
    .bind(&record.revision)
    .bind(record.tag as i64)
    .bind(&record.counts)
    .bind(serde_json::to_value(&record.expected)?)
    .bind(record.rejected_rows as i32)
    .bind(record.repaired_values as i32)
    .bind(replaced)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Applied::Imported { replaced })
}
