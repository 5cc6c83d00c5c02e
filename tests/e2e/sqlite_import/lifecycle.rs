//! A batch's life: dry run, import, re-run, --force, verification catching hand edits, rollback, the
//! rejects threshold and the staged analytics backfill.

use mingus_import::Outcome;
use mingus_tests::TestDb;
use uuid::Uuid;

use super::{Scratch, id_of, import_ok, options, small_fixture, written};

#[tokio::test]
async fn a_dry_run_reports_everything_and_writes_nothing() {
    let db = TestDb::new().await;
    let scratch = Scratch::new();
    let path = small_fixture(&scratch);
    let before = written(&db.pool).await;
    let dry = mingus_import::import(
        &db.pool,
        &mingus_import::ImportOptions {
            dry_run: true,
            ..options(&path, &scratch)
        },
    )
    .await
    .unwrap();
    assert_eq!(dry.outcome, Outcome::DryRun);
    assert_eq!(written(&db.pool).await, before);
    assert!(dry.rejected_rows > 0 && dry.repaired_values > 0);
    let (csv, _) = dry.report.clone().unwrap();
    assert!(csv.exists());
    // The real import then reports the same.
    let real = import_ok(&db.pool, &options(&path, &scratch)).await;
    assert_eq!(real.findings, dry.findings);
    assert_eq!(
        real.tables.iter().map(|t| t.imported).collect::<Vec<_>>(),
        dry.tables.iter().map(|t| t.imported).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn the_same_file_imports_once_and_force_replaces_its_batch() {
    let db = TestDb::new().await;
    let scratch = Scratch::new();
    let path = small_fixture(&scratch);
    let first = import_ok(&db.pool, &options(&path, &scratch)).await;
    let after_first = written(&db.pool).await;
    let again = mingus_import::import(&db.pool, &options(&path, &scratch))
        .await
        .unwrap();
    assert_eq!(again.outcome, Outcome::AlreadyImported(first.batch));
    assert_eq!(written(&db.pool).await, after_first);

    let forced = import_ok(
        &db.pool,
        &mingus_import::ImportOptions {
            force: true,
            ..options(&path, &scratch)
        },
    )
    .await;
    assert_eq!(
        forced.outcome,
        Outcome::Imported {
            replaced: Some(first.batch)
        }
    );
    assert_eq!(
        written(&db.pool).await.0,
        after_first.0,
        "same users, not twice"
    );
    let statuses: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT id, status FROM import_batches ORDER BY imported_at")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        statuses,
        [
            (first.batch, "rolled_back".to_owned()),
            (forced.batch, "completed".to_owned())
        ]
    );
    assert!(mingus_import::verify(&db.pool, first.batch).await.is_err());
}

#[tokio::test]
async fn verification_catches_a_row_changed_or_deleted_by_hand() {
    let db = TestDb::new().await;
    let scratch = Scratch::new();
    let summary = import_ok(&db.pool, &options(&small_fixture(&scratch), &scratch)).await;
    let batch = summary.batch;
    assert!(mingus_import::verify(&db.pool, batch).await.unwrap().ok());

    // One cent more on one questionnaire.
    let changed = sqlx::query(
        "UPDATE financial_questionnaire_submissions SET monthly_income = monthly_income + 0.01 WHERE id = $1",
    )
    .bind(id_of(batch, 4, 2))
    .execute(&db.pool)
    .await
    .unwrap();
    assert_eq!(changed.rows_affected(), 1);
    let report = mingus_import::verify(&db.pool, batch).await.unwrap();
    assert!(!report.ok());
    let text = report.differences.join("\n");
    assert!(
        text.contains("financial_questionnaire_submissions: the checksum"),
        "{text}"
    );
    assert!(
        text.contains("money per user differs for 1 users"),
        "{text}"
    );
    assert!(text.contains(&id_of(batch, 1, 1).to_string()), "{text}");

    // A deleted check-in is a count difference.
    sqlx::query("DELETE FROM user_health_checkins WHERE id = $1")
        .bind(id_of(batch, 3, 1))
        .execute(&db.pool)
        .await
        .unwrap();
    let report = mingus_import::verify(&db.pool, batch).await.unwrap();
    let text = report.differences.join("\n");
    assert!(
        text.contains("user_health_checkins:") && text.contains("live"),
        "{text}"
    );
}

#[tokio::test]
async fn rollback_removes_exactly_the_batch_and_refuses_to_take_later_rows_silently() {
    let db = TestDb::new().await;
    let scratch = Scratch::new();
    // A user who signed up on the new system before the import.
    let existing: Uuid =
        sqlx::query_scalar("INSERT INTO users (email) VALUES ('someone@new.example') RETURNING id")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    let before = written(&db.pool).await;
    let path = small_fixture(&scratch);
    let summary = import_ok(&db.pool, &options(&path, &scratch)).await;
    // After the import, the application adds a check-in for an imported user.
    let later: Uuid = sqlx::query_scalar(
        "INSERT INTO user_health_checkins (user_id, checkin_date, stress_level, energy_level, mood_rating)
         VALUES ($1, '2026-11-30', 4, 5, 6) RETURNING id",
    )
    .bind(id_of(summary.batch, 1, 1))
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let refused = mingus_import::rollback(&db.pool, summary.batch, false)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("user_health_checkins.user_id: 1") && refused.contains("--force"),
        "{refused}"
    );
    assert_eq!(
        written(&db.pool).await.0,
        before.0 + summary.tables[0].imported as i64
    );

    sqlx::query("DELETE FROM user_health_checkins WHERE id = $1")
        .bind(later)
        .execute(&db.pool)
        .await
        .unwrap();
    let done = mingus_import::rollback(&db.pool, summary.batch, false)
        .await
        .unwrap();
    let users_deleted = done.deleted.iter().find(|(t, _)| t == "users").unwrap().1;
    assert_eq!(users_deleted, summary.tables[0].imported);
    let (users, rows, batches, staging) = written(&db.pool).await;
    assert_eq!((users, rows, staging), (before.0, before.1, 0));
    assert_eq!(batches, 1, "the batch row stays, marked rolled back");
    let still: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)")
        .bind(existing)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!(still);
    let again = mingus_import::rollback(&db.pool, summary.batch, false)
        .await
        .unwrap_err();
    assert!(again.to_string().contains("already rolled back"));
    // The file can be imported again after its rollback.
    import_ok(&db.pool, &options(&path, &scratch)).await;
}

#[tokio::test]
async fn more_rejects_than_allowed_aborts_with_nothing_imported() {
    let db = TestDb::new().await;
    let scratch = Scratch::new();
    let path = small_fixture(&scratch);
    let before = written(&db.pool).await;
    let err = mingus_import::import(
        &db.pool,
        &mingus_import::ImportOptions {
            max_rejects: Some(3),
            ..options(&path, &scratch)
        },
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("more than --max-rejects 3: nothing was imported"),
        "{err}"
    );
    assert_eq!(written(&db.pool).await, before);
}

#[tokio::test]
async fn the_import_stages_the_analytics_rollup_of_the_days_it_covers() {
    let db = TestDb::new().await;
    let scratch = Scratch::new();
    let summary = import_ok(&db.pool, &options(&small_fixture(&scratch), &scratch)).await;
    assert!(summary.backfill_days > 0);
    let staged: i64 =
        sqlx::query_scalar("SELECT count(*) FROM job_outbox WHERE kind = 'analytics.rollup_shard'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(staged, summary.backfill_days as i64 * 2);
}

#[tokio::test]
async fn historical_checkins_land_in_their_months_partitions_not_the_default() {
    historical_checkins_in_their_months(false).await;
}

#[tokio::test]
async fn online_imports_put_historical_checkins_in_their_months_too() {
    historical_checkins_in_their_months(true).await;
}

async fn historical_checkins_in_their_months(online: bool) {
    let db = TestDb::new().await;
    let scratch = Scratch::new();
    let options = mingus_import::ImportOptions {
        online,
        ..options(&small_fixture(&scratch), &scratch)
    };
    let summary = import_ok(&db.pool, &options).await;
    let checkins = summary
        .tables
        .iter()
        .find(|t| t.table == "user_health_checkins")
        .unwrap()
        .imported as i64;
    assert!(checkins > 0);
    let (in_default, historical, in_months): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM user_health_checkins_default),
                (SELECT count(*) FROM user_health_checkins WHERE checkin_date < date_trunc('month', current_date)),
                (SELECT count(*) FROM user_health_checkins c
                  WHERE c.tableoid::regclass::text = 'user_health_checkins_p' || to_char(c.checkin_date, 'YYYY_MM'))",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        in_default, 0,
        "no imported check-in is in the default partition"
    );
    assert_eq!(
        historical, checkins,
        "the fixture's check-ins are all before the premade months"
    );
    assert_eq!(
        in_months, checkins,
        "every check-in is in its month's partition"
    );
}

#[tokio::test]
async fn new_months_are_attached_whole_existing_months_take_rows_and_default_rows_are_rescued() {
    let db = TestDb::new().await;
    let scratch = Scratch::new();
    // Check-ins from 2025-01-01 over 70 days: January, February and March 2025.
    let path = scratch.path("three-months.sqlite");
    let three_months = mingus_import::fixture::FixtureOptions {
        checkins_per_user: 70,
        ..mingus_import::fixture::FixtureOptions::new(20)
    };
    mingus_import::fixture::generate(&path, &three_months).unwrap();
    // February exists already (the row path); a live user's March check-in waits in the default
    // partition (March is created by the import and must take that row along).
    let today = chrono::Utc::now().date_naive();
    let february = chrono::NaiveDate::from_ymd_opt(2025, 2, 1).unwrap();
    mingus_common::analytics::partitions::ensure_months(
        &db.pool,
        "user_health_checkins",
        february,
        february,
        mingus_common::analytics::partitions::Options::new(today),
    )
    .await
    .unwrap();
    let live = Uuid::new_v4();
    sqlx::query("INSERT INTO users (id, email) VALUES ($1, 'live@example.com')")
        .bind(live)
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO user_health_checkins (user_id, checkin_date, stress_level, energy_level, mood_rating)
         VALUES ($1, '2025-03-10', 5, 5, 5)",
    )
    .bind(live)
    .execute(&db.pool)
    .await
    .unwrap();

    let summary = import_ok(&db.pool, &options(&path, &scratch)).await;
    let imported = summary
        .tables
        .iter()
        .find(|t| t.table == "user_health_checkins")
        .unwrap()
        .imported as i64;
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT tableoid::regclass::text, count(*) FROM user_health_checkins GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let names: Vec<&str> = rows.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        [
            "user_health_checkins_p2025_01",
            "user_health_checkins_p2025_02",
            "user_health_checkins_p2025_03"
        ],
        "every row in its month's partition, none in the default: {rows:?}"
    );
    assert_eq!(rows.iter().map(|(_, n)| n).sum::<i64>(), imported + 1);
    let live_in_march: String = sqlx::query_scalar(
        "SELECT tableoid::regclass::text FROM user_health_checkins WHERE user_id = $1",
    )
    .bind(live)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(live_in_march, "user_health_checkins_p2025_03");
    // The attached months carry the parent's indexes and foreign key like any other partition.
    let (indexes, foreign_keys): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM pg_indexes WHERE tablename = 'user_health_checkins_p2025_01'),
                (SELECT count(*) FROM pg_constraint
                  WHERE conrelid = 'user_health_checkins_p2025_01'::regclass AND contype = 'f')",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let (parent_indexes, parent_fks): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM pg_indexes WHERE tablename = 'user_health_checkins'),
                (SELECT count(*) FROM pg_constraint
                  WHERE conrelid = 'user_health_checkins'::regclass AND contype = 'f')",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!((indexes, foreign_keys), (parent_indexes, parent_fks));
    // Deleting an imported user cascades into an attached month.
    sqlx::query(
        "DELETE FROM users WHERE id = (SELECT user_id FROM user_health_checkins_p2025_01 LIMIT 1)",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let orphans: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM user_health_checkins c WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = c.user_id)",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(orphans, 0);
}

/// A text value changed by hand is caught by the typed-row checksums alone (no money involved), and a
/// batch recorded before them (md5 of each row's text, no `checksum` field in its expectation) still
/// verifies with that form and still catches the same edit.
#[tokio::test]
async fn checksums_catch_a_text_edit_in_both_the_current_and_the_old_form() {
    use mingus_import::fingerprint::{self, Checksum, Side};

    let db = TestDb::new().await;
    let scratch = Scratch::new();
    let batch = import_ok(&db.pool, &options(&small_fixture(&scratch), &scratch))
        .await
        .batch;
    let checkin = id_of(batch, 3, 1);
    let edit = |notes: &'static str| {
        sqlx::query("UPDATE user_health_checkins SET notes = $1 WHERE id = $2")
            .bind(notes)
            .bind(checkin)
    };
    let original: Option<String> =
        sqlx::query_scalar("SELECT notes FROM user_health_checkins WHERE id = $1")
            .bind(checkin)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    let checksum_differs = |report: mingus_import::Verification| {
        report
            .differences
            .iter()
            .any(|d| d.starts_with("user_health_checkins: the checksum"))
    };

    let changed = edit("changed by hand").execute(&db.pool).await.unwrap();
    assert_eq!(changed.rows_affected(), 1);
    assert!(checksum_differs(
        mingus_import::verify(&db.pool, batch).await.unwrap()
    ));
    sqlx::query("UPDATE user_health_checkins SET notes = $1 WHERE id = $2")
        .bind(&original)
        .bind(checkin)
        .execute(&db.pool)
        .await
        .unwrap();
    assert!(mingus_import::verify(&db.pool, batch).await.unwrap().ok());

    // The expectation as an old batch recorded it.
    let tag: i64 = sqlx::query_scalar("SELECT id_tag FROM import_batches WHERE id = $1")
        .bind(batch)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let old = fingerprint::compute(&db.pool, Side::Live(tag as u64), Checksum::RowTextMd5)
        .await
        .unwrap();
    let mut expected = serde_json::to_value(&old).unwrap();
    expected.as_object_mut().unwrap().remove("checksum");
    sqlx::query("UPDATE import_batches SET expected = $1 WHERE id = $2")
        .bind(&expected)
        .bind(batch)
        .execute(&db.pool)
        .await
        .unwrap();
    assert!(mingus_import::verify(&db.pool, batch).await.unwrap().ok());
    edit("changed by hand").execute(&db.pool).await.unwrap();
    assert!(checksum_differs(
        mingus_import::verify(&db.pool, batch).await.unwrap()
    ));
}
