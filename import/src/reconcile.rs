//! The rules that need the whole file, applied in staging with set-based SQL (no per-row state in
//! memory, whatever the file's size):
//!
//! 1. **E-mail duplicates after case-folding**: the user with the lowest rowid keeps the address; each
//!    other one is rejected and its rows are **merged into the kept user** (they are the same person
//!    who signed up twice with different capitals).
//! 2. **E-mail already in PostgreSQL** (a user who signed up on the new system): the SQLite user is
//!    rejected, and so are its rows — merging into a live account is a decision for a person.
//! 3. **Rows without their user** (`user_id` naming no row, or a rejected user): rejected.
//! 4. **One profile per user, one check-in per user and day**: the lowest rowid stays, the others are
//!    rejected (a merged duplicate's profile is the usual case).

use std::collections::HashMap;

use futures::TryStreamExt;
use sqlx::PgPool;

use crate::row::{Action, Finding};
use uuid::Uuid;

use crate::ids;
use crate::spec::{TABLES, USER_HEALTH_CHECKINS, USER_PROFILES, USERS};

async fn execute(pool: &PgPool, statement: String) -> sqlx::Result<u64> {
    Ok(sqlx::query(sqlx::AssertSqlSafe(statement))
        .execute(pool)
        .await?
        .rows_affected())
}

/// Applies the rules; returns how many rows they rejected per table (the lines are in `{schema}.rejects`).
pub async fn reconcile(
    pool: &PgPool,
    schema: &str,
    rejected_users: &[i64],
    replacing: Option<u64>,
) -> anyhow::Result<HashMap<String, u64>> {
    let s = schema;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {s}.user_gone SELECT DISTINCT unnest($1::bigint[]) ON CONFLICT DO NOTHING"
    )))
    .bind(rejected_users)
    .execute(pool)
    .await?;

    // 1. Duplicates after case-folding.
    execute(
        pool,
        format!(
            "CREATE UNLOGGED TABLE {s}.user_merge AS
             SELECT id AS dup_id, src_rowid AS dup_rowid, email, kept_id, kept_rowid FROM (
                 SELECT id, src_rowid, email,
                        first_value(id) OVER w AS kept_id, first_value(src_rowid) OVER w AS kept_rowid
                 FROM {s}.users WINDOW w AS (PARTITION BY email ORDER BY src_rowid)) ranked
             WHERE src_rowid <> kept_rowid"
        ),
    )
    .await?;
    execute(
        pool,
        format!(
            "INSERT INTO {s}.rejects SELECT 'users', dup_rowid, 'email', email,
                 format('duplicate of users rowid %s after case-folding; its rows are merged into that user', kept_rowid)
             FROM {s}.user_merge"
        ),
    )
    .await?;
    execute(
        pool,
        format!("DELETE FROM {s}.users u USING {s}.user_merge m WHERE u.id = m.dup_id"),
    )
    .await?;
    for table in TABLES.iter().filter(|t| t.per_user) {
        execute(
            pool,
            format!(
                "UPDATE {s}.{t} c SET user_id = m.kept_id FROM {s}.user_merge m WHERE c.user_id = m.dup_id",
                t = table.name
            ),
        )
        .await?;
    }

    // 2. Already a PostgreSQL user (not counting the users of the batch a --force run replaces: they go
    //    in the same transaction as these arrive).
    let (lo, hi) = replacing.map_or((Uuid::nil(), Uuid::nil()), |tag| {
        ids::range(tag, USERS.code)
    });
    execute(
        pool,
        format!(
            "WITH taken AS (
                 DELETE FROM {s}.users u WHERE EXISTS (SELECT 1 FROM public.users p WHERE lower(p.email) = u.email
                     AND NOT (p.id BETWEEN '{lo}' AND '{hi}'))
                 RETURNING src_rowid, email),
             noted AS (INSERT INTO {s}.user_gone SELECT src_rowid FROM taken ON CONFLICT DO NOTHING)
             INSERT INTO {s}.rejects SELECT 'users', src_rowid, 'email', email,
                 'e-mail already belongs to a user in PostgreSQL' FROM taken"
        ),
    )
    .await?;

    // 3. Rows without their user.
    for table in TABLES.iter().filter(|t| t.per_user) {
        execute(
            pool,
            format!(
                "WITH orphans AS (
                     DELETE FROM {s}.{t} c WHERE NOT EXISTS (SELECT 1 FROM {s}.users u WHERE u.id = c.user_id)
                     RETURNING src_rowid, src_user)
                 INSERT INTO {s}.rejects SELECT '{t}', o.src_rowid, 'user_id', o.src_user::text,
                     CASE WHEN g.src_rowid IS NULL THEN format('users rowid %s does not exist', o.src_user)
                          ELSE format('its user (users rowid %s) was rejected', o.src_user) END
                 FROM orphans o LEFT JOIN {s}.user_gone g ON g.src_rowid = o.src_user",
                t = table.name
            ),
        )
        .await?;
    }

    // 4. One profile per user, one check-in per user and day.
    for (table, key, what) in [
        (&USER_PROFILES, "user_id", "the user already has a profile"),
        (
            &USER_HEALTH_CHECKINS,
            "user_id, checkin_date",
            "the user already has a check-in for that day",
        ),
    ] {
        execute(
            pool,
            format!(
                "WITH ranked AS (
                     SELECT src_rowid, first_value(src_rowid) OVER (PARTITION BY {key} ORDER BY src_rowid) AS kept
                     FROM {s}.{t}),
                 gone AS (
                     DELETE FROM {s}.{t} c USING ranked r
                     WHERE c.src_rowid = r.src_rowid AND r.src_rowid <> r.kept
                     RETURNING c.src_rowid, r.kept, c.src_user)
                 INSERT INTO {s}.rejects SELECT '{t}', src_rowid, '{first}', src_user::text,
                     format('{what} ({t} rowid %s)', kept) FROM gone",
                t = table.name,
                first = key.split(", ").last().unwrap_or(key),
            ),
        )
        .await?;
    }

    // The rejected rows per table; their report lines stay in staging (`for_each_reject`).
    let counts: Vec<(String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT table_name, count(DISTINCT source_rowid) FROM {s}.rejects GROUP BY table_name"
    )))
    .fetch_all(pool)
    .await?;
    Ok(counts
        .into_iter()
        .map(|(table, count)| (table, count as u64))
        .collect())
}

/// Hands every line the rules above wrote to `each`, in report order (table, source rowid), streamed
/// from staging so that a few hundred thousand of them are never in memory together.
pub async fn for_each_reject(
    pool: &PgPool,
    schema: &str,
    mut each: impl FnMut(Finding) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut rows =
        sqlx::query_as::<_, (String, i64, String, String, String)>(sqlx::AssertSqlSafe(format!(
            "SELECT table_name, source_rowid, column_name, value, reason FROM {schema}.rejects
             ORDER BY table_name, source_rowid"
        )))
        .fetch(pool);
    while let Some((table, source_rowid, column, value, reason)) = rows.try_next().await? {
        each(Finding {
            table,
            source_rowid,
            column,
            value,
            reason,
            action: Action::Rejected,
        })?;
    }
    Ok(())
}
