//! `--rollback <batch>`: removes exactly the rows that batch created, found by their id ranges.
//!
//! Rows created later by the application for an imported user (a new check-in, a subscription) are not
//! the batch's, but deleting the user would take them along (`ON DELETE CASCADE`): rollback counts them
//! first and refuses unless `--force` says to delete them too. The whole rollback is one transaction.

use anyhow::bail;
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::apply::IMPORT_LOCK;
use crate::ids;
use crate::spec::{CREATED_PROFILE_CODE, TABLES, USERS};

#[derive(Debug, Clone, Default, Serialize)]
pub struct RolledBack {
    /// Rows deleted per table (the created empty profiles counted with `user_profiles`).
    pub deleted: Vec<(String, u64)>,
    /// Rows not created by the batch that referenced its users (deleted with them under --force).
    pub foreign: Vec<(String, i64)>,
}

/// Deletes the batch's rows, children first.
pub async fn remove_rows(conn: &mut PgConnection, tag: u64) -> sqlx::Result<Vec<(String, u64)>> {
    let mut deleted = Vec::new();
    for table in TABLES.iter().rev() {
        let mut codes = vec![table.code];
        if table.name == "user_profiles" {
            codes.push(CREATED_PROFILE_CODE);
        }
        let mut total = 0;
        for code in codes {
            let (lo, hi) = ids::range(tag, code);
            total += sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM public.{} WHERE id BETWEEN $1 AND $2",
                table.name
            )))
            .bind(lo)
            .bind(hi)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        }
        deleted.push((table.name.to_owned(), total));
    }
    Ok(deleted)
}

pub async fn mark_rolled_back(conn: &mut PgConnection, batch: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE import_batches SET status = 'rolled_back', rolled_back_at = now() WHERE id = $1",
    )
    .bind(batch)
    .execute(conn)
    .await
    .map(|_| ())
}

/// Rows outside the batch that reference the batch's users, per `table.column`.
async fn foreign_references(conn: &mut PgConnection, tag: u64) -> sqlx::Result<Vec<(String, i64)>> {
    let references: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.conrelid::regclass::text, a.attname::text
         FROM pg_constraint c
         JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
         WHERE c.contype = 'f' AND c.confrelid = 'public.users'::regclass
           AND c.conparentid = 0 AND cardinality(c.conkey) = 1
         ORDER BY 1, 2",
    )
    .fetch_all(&mut *conn)
    .await?;
    let (user_lo, user_hi) = ids::range(tag, USERS.code);
    let mut found = Vec::new();
    for (table, column) in references {
        let mut own = Vec::new();
        if let Some(spec) = TABLES.iter().find(|t| t.name == table) {
            own.push(spec.code);
            if spec.name == "user_profiles" {
                own.push(CREATED_PROFILE_CODE);
            }
        }
        let exclusions: String = own
            .iter()
            .map(|code| {
                let (lo, hi) = ids::range(tag, *code);
                format!(" AND NOT (id BETWEEN '{lo}' AND '{hi}')")
            })
            .collect();
        let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {table} WHERE \"{column}\" BETWEEN $1 AND $2{exclusions}"
        )))
        .bind(user_lo)
        .bind(user_hi)
        .fetch_one(&mut *conn)
        .await?;
        if count > 0 {
            found.push((format!("{table}.{column}"), count));
        }
    }
    Ok(found)
}

/// Rolls back batch `batch` in one transaction.
pub async fn rollback(pool: &PgPool, batch: Uuid, force: bool) -> anyhow::Result<RolledBack> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(IMPORT_LOCK)
        .execute(&mut *tx)
        .await?;
    let row: Option<(String, i64)> =
        sqlx::query_as("SELECT status, id_tag FROM import_batches WHERE id = $1 FOR UPDATE")
            .bind(batch)
            .fetch_optional(&mut *tx)
            .await?;
    let Some((status, tag)) = row else {
        bail!("no import batch {batch}");
    };
    if status != "completed" {
        bail!("import batch {batch} is already rolled back");
    }
    let foreign = foreign_references(&mut tx, tag as u64).await?;
    if !foreign.is_empty() && !force {
        let listed: Vec<String> = foreign.iter().map(|(t, n)| format!("{t}: {n}")).collect();
        bail!(
            "rows created after the import reference this batch's users and would be deleted with \
             them ({}); nothing was changed. Re-run with --force to delete them too.",
            listed.join(", ")
        );
    }
    let deleted = remove_rows(&mut tx, tag as u64).await?;
    mark_rolled_back(&mut tx, batch).await?;
    tx.commit().await?;
    Ok(RolledBack { deleted, foreign })
}
