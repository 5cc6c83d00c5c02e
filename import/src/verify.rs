//! `--verify <batch>` (and the check after every import): the batch's live rows against what was
//! recorded when it was imported.
//!
//! - per table: rows read from SQLite less rows rejected = rows recorded = rows live;
//! - per table: the checksum over the canonicalised rows (a value changed by hand changes it);
//! - foreign keys: every live row of the batch belongs to a live user of the batch;
//! - money: the total of every money column per user;
//! - users: how many, and how many have rows.

use std::collections::BTreeMap;

use anyhow::bail;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::fingerprint::{self, Fingerprint, Side};
use crate::ids;
use crate::spec::{TABLES, USERS};

#[derive(Debug, Clone, Default, Serialize)]
pub struct Verification {
    pub batch: Uuid,
    /// One line per check that held.
    pub passed: Vec<String>,
    /// One line per difference; empty when the batch is intact.
    pub differences: Vec<String>,
}

impl Verification {
    pub fn ok(&self) -> bool {
        self.differences.is_empty()
    }
}

#[derive(serde::Deserialize)]
struct Counts {
    read: i64,
    rejected: i64,
}

/// Verifies batch `batch`.
pub async fn verify(pool: &PgPool, batch: Uuid) -> anyhow::Result<Verification> {
    let row: Option<(String, i64, serde_json::Value, serde_json::Value)> =
        sqlx::query_as("SELECT status, id_tag, counts, expected FROM import_batches WHERE id = $1")
            .bind(batch)
            .fetch_optional(pool)
            .await?;
    let Some((status, tag, counts, expected)) = row else {
        bail!("no import batch {batch}");
    };
    if status != "completed" {
        bail!("import batch {batch} was rolled back: there is nothing to verify");
    }
    let counts: BTreeMap<String, Counts> = serde_json::from_value(counts)?;
    let expected: Fingerprint = serde_json::from_value(expected)?;
    let actual = fingerprint::compute(pool, Side::Live(tag as u64), expected.checksum).await?;
    let mut report = Verification {
        batch,
        ..Verification::default()
    };
    compare_tables(&counts, &expected, &actual, &mut report);
    compare_money(&expected, &actual, &mut report);
    for (what, want, have) in [
        ("users", expected.users, actual.users),
        (
            "users with rows",
            expected.users_with_rows,
            actual.users_with_rows,
        ),
    ] {
        if want == have {
            report.passed.push(format!("{what}: {have}"));
        } else {
            report
                .differences
                .push(format!("{what}: expected {want}, found {have}"));
        }
    }
    check_foreign_keys(pool, tag as u64, &mut report).await?;
    Ok(report)
}

fn compare_tables(
    counts: &BTreeMap<String, Counts>,
    expected: &Fingerprint,
    actual: &Fingerprint,
    report: &mut Verification,
) {
    for (name, want) in &expected.tables {
        let have = actual.tables.get(name).cloned().unwrap_or_default();
        if let Some(source) = counts.get(name) {
            let should = source.read - source.rejected;
            if should != have.count {
                report.differences.push(format!(
                    "{name}: {} read from SQLite less {} rejected is {should}, but {} rows are live",
                    source.read, source.rejected, have.count
                ));
            }
        }
        if want.count != have.count {
            report.differences.push(format!(
                "{name}: {} rows imported, {} live",
                want.count, have.count
            ));
        } else if want.checksum != have.checksum {
            report.differences.push(format!(
                "{name}: the checksum over the rows differs (a row was changed after the import)"
            ));
        } else {
            report
                .passed
                .push(format!("{name}: {} rows, checksum matches", have.count));
        }
    }
}

fn compare_money(expected: &Fingerprint, actual: &Fingerprint, report: &mut Verification) {
    let mut differing = Vec::new();
    for (user, want) in &expected.money_per_user {
        match actual.money_per_user.get(user) {
            Some(have) if have == want => {}
            Some(have) => differing.push(format!("{user}: expected {want}, found {have}")),
            None => differing.push(format!("{user}: expected {want}, found nothing")),
        }
    }
    for user in actual.money_per_user.keys() {
        if !expected.money_per_user.contains_key(user) {
            differing.push(format!("{user}: unexpected money rows"));
        }
    }
    if differing.is_empty() {
        report.passed.push(format!(
            "money per user: {} users match",
            expected.money_per_user.len()
        ));
    } else {
        let shown: Vec<_> = differing.iter().take(20).cloned().collect();
        report.differences.push(format!(
            "money per user differs for {} users: {}",
            differing.len(),
            shown.join("; ")
        ));
    }
}

async fn check_foreign_keys(
    pool: &PgPool,
    tag: u64,
    report: &mut Verification,
) -> anyhow::Result<()> {
    let (user_lo, user_hi) = ids::range(tag, USERS.code);
    let mut broken = Vec::new();
    for table in TABLES.iter().filter(|t| t.per_user) {
        let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {rows} WHERE NOT (user_id BETWEEN $1 AND $2)
                 OR NOT EXISTS (SELECT 1 FROM public.users u WHERE u.id = live.user_id)",
            rows = fingerprint::live(table.name, tag, table.code)
        )))
        .bind(user_lo)
        .bind(user_hi)
        .fetch_one(pool)
        .await?;
        if count > 0 {
            broken.push(format!("{}: {count}", table.name));
        }
    }
    if broken.is_empty() {
        report
            .passed
            .push("foreign keys: every row belongs to a user of the batch".into());
    } else {
        report.differences.push(format!(
            "rows not belonging to a user of the batch: {}",
            broken.join(", ")
        ));
    }
    Ok(())
}
