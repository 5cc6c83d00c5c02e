//! kill -9 in the middle of an import: nothing becomes visible, and a rerun completes (dropping the
//! dead run's staging schema).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mingus_import::fixture::{self, FixtureOptions};
use mingus_tests::{TestDb, binary};

use super::{Scratch, import_ok, options, written};

#[tokio::test]
async fn a_kill_9_mid_import_leaves_nothing_visible_and_a_rerun_completes() {
    let db = TestDb::new().await;
    let scratch = Scratch::new();
    let path = scratch.path("medium.sqlite");
    // Big enough that the load takes a while after the users table is staged.
    let medium = FixtureOptions {
        checkins_per_user: 240,
        ..FixtureOptions::new(300)
    };
    fixture::generate(&path, &medium).unwrap();
    let before = written(&db.pool).await;

    let mut child = Command::new(binary("mingus-admin"))
        .arg("import-sqlite")
        .arg(&path)
        .arg("--report-dir")
        .arg(scratch.path("reports"))
        .env_clear()
        .env("DATABASE_URL", &db.url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill once the staging users are loaded (the check-ins are still streaming).
    let started = Instant::now();
    let staged = loop {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the import finished before it could be killed"
        );
        let users: Option<i64> = sqlx::query_scalar(
            "SELECT (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.users', nspname),
                     false, true, '')))[1]::text::bigint
             FROM pg_namespace WHERE nspname LIKE 'import\\_stage\\_%'",
        )
        .fetch_optional(&db.pool)
        .await
        .unwrap_or(None);
        if users.unwrap_or(0) > 0 {
            break users.unwrap_or(0);
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "staging never filled"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(!status.success());
    assert!(staged > 0);

    let (users, rows, batches, staging) = written(&db.pool).await;
    assert_eq!(
        (users, rows, batches),
        (before.0, before.1, before.2),
        "nothing visible"
    );
    assert_eq!(staging, 1, "only the dead run's scratch schema is left");

    let summary = import_ok(&db.pool, &options(&path, &scratch)).await;
    assert!(
        summary
            .tables
            .iter()
            .all(|t| t.read == t.rejected + t.imported)
    );
    assert_eq!(
        written(&db.pool).await.3,
        0,
        "the rerun dropped the leftover staging"
    );
}
