//! kill -9 in the middle of an import — while staging fills, and inside the move transaction itself:
//! nothing becomes visible, and a rerun completes (dropping the dead run's staging schema).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mingus_import::fixture::{self, FixtureOptions};
use mingus_tests::{TestDb, binary};

use super::{Scratch, import_ok, options, written};

/// True once the staging users are loaded (the check-ins are still streaming).
const STAGING_HAS_USERS: &str = "SELECT coalesce((
        SELECT (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.users', nspname),
                false, true, '')))[1]::text::bigint > 0
        FROM pg_namespace WHERE nspname LIKE 'import\\_stage\\_%'), false)";

/// True while the importer's move transaction is writing the check-ins (into a new month's table or
/// through the parent): they come after the users and profiles, so the transaction already holds rows.
const MOVING_CHECKINS: &str = "SELECT EXISTS (
        SELECT 1 FROM pg_stat_activity
        WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'active'
          AND backend_xid IS NOT NULL AND query LIKE 'INSERT INTO public.%user_health_checkins%')";

/// Starts `mingus-admin import-sqlite`, SIGKILLs it as soon as `probe` answers true, and checks that
/// nothing is visible and that a rerun completes.
async fn kill_when(probe: &str, what: &str) {
    let db = TestDb::new().await;
    let scratch = Scratch::new();
    let path = scratch.path("medium.sqlite");
    // Big enough that both the load and the move take a while.
    let medium = FixtureOptions {
        checkins_per_user: 240,
        ..FixtureOptions::new(300)
    };
    fixture::generate(&path, &medium).unwrap();
    let before = written(&db.pool).await;

    let mut child = spawn_import(&path, &db.url, &scratch.path("reports"));
    let started = Instant::now();
    loop {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the import finished before it could be killed {what}"
        );
        let seen: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(probe.to_owned()))
            .fetch_one(&db.pool)
            .await
            .unwrap_or(false);
        if seen {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "never saw the import {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(!status.success());

    let (users, rows, batches, staging) = written(&db.pool).await;
    assert_eq!(
        (users, rows, batches),
        (before.0, before.1, before.2),
        "nothing visible after a kill {what}"
    );
    assert_eq!(staging, 1, "only the dead run's scratch schema is left");

    // The rerun waits for the dead run's backend to notice its client is gone and roll back.
    let summary = import_ok(&db.pool, &options(&path, &scratch)).await;
    assert!(
        summary
            .tables
            .iter()
            .all(|t| t.read == t.rejected + t.imported)
    );
    let imported: u64 = summary.tables.iter().map(|t| t.imported).sum();
    let (users, rows, batches, staging) = written(&db.pool).await;
    assert!(users > before.0 && batches == before.2 + 1);
    assert_eq!(
        (rows - before.1) as u64,
        imported - (users - before.0) as u64 + summary.created_profiles,
        "every staged row is in place exactly once"
    );
    assert_eq!(staging, 0, "the rerun dropped the leftover staging");
}

fn spawn_import(path: &Path, url: &str, reports: &Path) -> std::process::Child {
    Command::new(binary("mingus-admin"))
        .arg("import-sqlite")
        .arg(path)
        .arg("--report-dir")
        .arg(reports)
        .env_clear()
        .env("DATABASE_URL", url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[tokio::test]
async fn a_kill_9_mid_load_leaves_nothing_visible_and_a_rerun_completes() {
    kill_when(STAGING_HAS_USERS, "while staging fills").await;
}

#[tokio::test]
async fn a_kill_9_inside_the_move_transaction_leaves_nothing_visible_and_a_rerun_completes() {
    kill_when(MOVING_CHECKINS, "inside the move transaction").await;
}
