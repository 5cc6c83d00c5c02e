//! `mingus-admin import-sqlite` (crate `mingus-import`) against real PostgreSQL and real SQLite files
//! written by the fixture generator: every kind of dirt, idempotence, rollback, verification, bad input
//! and a kill -9 in the middle. Fixtures stay small (30 users × 20 check-ins); the big sizes are the
//! benchmark's (`bench/sqlite-import.sh`).

mod bad_input;
mod crash;
mod dirt;
mod lifecycle;

use std::path::{Path, PathBuf};

use mingus_import::fixture::{self, FixtureOptions};
use mingus_import::{ImportOptions, ImportSummary, Outcome, ids};
use sqlx::PgPool;
use uuid::Uuid;

/// A folder of this test's own under the system temp dir, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("mingus-import-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The small dirty file the tests share: 30 users, every kind of dirt.
pub fn small_fixture(scratch: &Scratch) -> PathBuf {
    let path = scratch.path("dev.sqlite");
    let options = FixtureOptions {
        checkins_per_user: 20,
        ..FixtureOptions::new(30)
    };
    fixture::generate(&path, &options).unwrap();
    path
}

pub fn options(path: &Path, scratch: &Scratch) -> ImportOptions {
    ImportOptions {
        path: path.to_owned(),
        max_rejects: None,
        dry_run: false,
        force: false,
        online: false,
        report_dir: scratch.path("reports"),
        progress: false,
        analytics_shards: 2,
    }
}

/// Imports and asserts the import happened and verified.
pub async fn import_ok(pool: &PgPool, options: &ImportOptions) -> ImportSummary {
    let summary = mingus_import::import(pool, options).await.unwrap();
    assert!(
        matches!(summary.outcome, Outcome::Imported { .. }),
        "{:?}",
        summary.outcome
    );
    let verification = summary
        .verification
        .as_ref()
        .expect("verified after the move");
    assert!(verification.ok(), "{:?}", verification.differences);
    summary
}

/// The PostgreSQL id of source row `rowid` of table `code` in `batch`.
pub fn id_of(batch: Uuid, code: u8, rowid: i64) -> Uuid {
    ids::row_id(ids::tag_of(batch), code, rowid)
}

/// Rows of the tables an import writes, and the batches and staging schemas: all zero when nothing
/// was written to a fresh database.
pub async fn written(pool: &PgPool) -> (i64, i64, i64, i64) {
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(pool)
        .await
        .unwrap();
    let rows: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM user_profiles) + (SELECT count(*) FROM user_health_checkins)
              + (SELECT count(*) FROM financial_questionnaire_submissions)
              + (SELECT count(*) FROM reminder_schedules) + (SELECT count(*) FROM verification_analytics)",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    let batches: i64 = sqlx::query_scalar(
        "SELECT CASE WHEN to_regclass('import_batches') IS NULL THEN 0
                ELSE (xpath('/row/c/text()', query_to_xml('SELECT count(*) AS c FROM import_batches', false, true, '')))[1]::text::bigint END",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    let staging: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'import\\_stage\\_%'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    (users, rows, batches, staging)
}
