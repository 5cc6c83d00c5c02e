//! What verification compares: per table a row count and an order-independent checksum over the
//! canonicalised rows, money totals per user, and user counts. Computed the same way over staging
//! (before the move: the expectation, stored with the batch) and over the live tables (the batch's id
//! ranges: the actual).
//!
//! A row's canonical form is the typed value `ROW(id, user_id, columns…)` with the target types; its hash
//! is PostgreSQL's `hash_record_extended` (64 bits, from each column type's own hash function, so equal
//! values hash equally whatever their text: `1.5`/`1.50`, an instant in any zone, jsonb key order), and
//! a table's checksum is the sum of its rows' hashes (a sum, so no sort of millions of rows is needed, and
//! any changed, added or removed row changes it). These are the functions hash partitioning relies on,
//! which PostgreSQL keeps stable across versions and `pg_upgrade`, so a batch verifies after an upgrade.
//!
//! Batches recorded before 2026-12-04's speed-up hashed the MD5 of each row's text instead
//! ([`Checksum::RowTextMd5`]): rendering every value as text was most of the checksums' cost (4.6 s of a
//! 1,000-user import, against about a quarter of that for the typed hash). Their expectation says which
//! form it used (absent = the old one), and verification computes the same form.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};

use crate::ids;
use crate::spec::{
    CREATED_PROFILE_CODE, FINANCIAL_QUESTIONNAIRES, TABLES, Table, USER_PROFILES, USERS,
};

/// How a row's hash is computed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Checksum {
    /// First 60 bits of `md5(ROW(…)::text)` with `TimeZone = UTC` (batches recorded before this field).
    #[default]
    RowTextMd5,
    /// `hash_record_extended(ROW(…), 0)`: the typed values' hash, no text rendering.
    RecordHash,
}

impl Checksum {
    /// The SQL expression summing the hashes of `ROW({columns})`.
    fn sum_sql(self, columns: &str) -> String {
        match self {
            Checksum::RowTextMd5 => format!(
                "coalesce(sum(('x' || left(md5(ROW({columns})::text), 15))::bit(60)::bigint), 0)::text"
            ),
            // sum() of bigint is numeric: no overflow whatever the row count.
            Checksum::RecordHash => {
                format!("coalesce(sum(hash_record_extended(ROW({columns}), 0)), 0)::text")
            }
        }
    }
}

/// One side's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// How the checksums were computed (absent in batches recorded before there was a choice).
    #[serde(default)]
    pub checksum: Checksum,
    pub tables: BTreeMap<String, TableSum>,
    /// Per user id: the sum of every money column of profiles and questionnaires.
    pub money_per_user: BTreeMap<String, String>,
    /// Imported users, and how many of them have rows in the per-user tables.
    pub users: i64,
    pub users_with_rows: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TableSum {
    pub count: i64,
    pub checksum: String,
}

/// The name under which the created empty profiles are counted.
pub const CREATED_PROFILES: &str = "user_profiles (created for users without one)";

/// Where the rows are.
#[derive(Debug, Clone, Copy)]
pub enum Side<'a> {
    /// The staging schema of an import in progress.
    Staging(&'a str),
    /// The live tables, restricted to one batch's id ranges.
    Live(u64),
}

impl Side<'_> {
    fn rows(&self, table: &Table) -> String {
        match self {
            Side::Staging(s) => format!("{s}.{}", table.name),
            Side::Live(tag) => live(table.name, *tag, table.code),
        }
    }

    fn created_profiles(&self) -> String {
        match self {
            Side::Staging(s) => format!(
                "(SELECT profile_id AS id, id AS user_id FROM {s}.users u
                  WHERE NOT EXISTS (SELECT 1 FROM {s}.user_profiles p WHERE p.user_id = u.id)) created"
            ),
            Side::Live(tag) => live("user_profiles", *tag, CREATED_PROFILE_CODE),
        }
    }
}

/// A batch's rows of one live table.
pub fn live(table: &str, tag: u64, code: u8) -> String {
    let (lo, hi) = ids::range(tag, code);
    format!("(SELECT * FROM public.{table} WHERE id BETWEEN '{lo}' AND '{hi}') live")
}

async fn table_sum(
    conn: &mut PgConnection,
    checksum: Checksum,
    columns: &str,
    from: &str,
) -> sqlx::Result<TableSum> {
    let (count, checksum): (i64, String) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT count(*), {} FROM {from}",
        checksum.sum_sql(columns)
    )))
    .fetch_one(conn)
    .await?;
    Ok(TableSum { count, checksum })
}

fn money_sum(table: &Table) -> String {
    table
        .money
        .iter()
        .map(|c| format!("coalesce({c}, 0)"))
        .collect::<Vec<_>>()
        .join(" + ")
}

/// Computes the fingerprint of `side` in one repeatable-read snapshot, with checksums of kind `checksum`
/// (a new import: [`Checksum::RecordHash`]; verification: the kind its expectation recorded).
pub async fn compute(
    pool: &PgPool,
    side: Side<'_>,
    checksum: Checksum,
) -> anyhow::Result<Fingerprint> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .execute(&mut *tx)
        .await?;
    sqlx::query("SET LOCAL TimeZone = 'UTC'")
        .execute(&mut *tx)
        .await?;
    let mut print = Fingerprint {
        checksum,
        ..Fingerprint::default()
    };
    for table in TABLES {
        let sum = table_sum(
            &mut tx,
            checksum,
            &table.target_columns().join(", "),
            &side.rows(table),
        )
        .await?;
        print.tables.insert(table.name.to_owned(), sum);
    }
    let created = table_sum(&mut tx, checksum, "id, user_id", &side.created_profiles()).await?;
    print.tables.insert(CREATED_PROFILES.to_owned(), created);

    let rows: Vec<(String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT user_id::text, sum(total)::text FROM (
             SELECT user_id, {p} AS total FROM {pf}
             UNION ALL SELECT user_id, {q} AS total FROM {qf}) money
         GROUP BY user_id",
        p = money_sum(&USER_PROFILES),
        pf = side.rows(&USER_PROFILES),
        q = money_sum(&FINANCIAL_QUESTIONNAIRES),
        qf = side.rows(&FINANCIAL_QUESTIONNAIRES),
    )))
    .fetch_all(&mut *tx)
    .await?;
    print.money_per_user = rows.into_iter().collect();

    print.users = print.tables[USERS.name].count;
    let children: Vec<String> = TABLES
        .iter()
        .filter(|t| t.per_user)
        .map(|t| format!("SELECT user_id FROM {}", side.rows(t)))
        .collect();
    print.users_with_rows = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(DISTINCT user_id) FROM ({}) owners",
        children.join(" UNION ALL ")
    )))
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(print)
}
