//! Bad input gets a clear message and writes nothing: no rows, no batch, no staging schema.

use mingus_tests::TestDb;

use super::{Scratch, options, small_fixture, written};

async fn refused(db: &TestDb, scratch: &Scratch, path: &std::path::Path) -> String {
    let before = written(&db.pool).await;
    let err = mingus_import::import(&db.pool, &options(path, scratch))
        .await
        .expect_err("the import must refuse");
    assert_eq!(written(&db.pool).await, before, "nothing written");
    format!("{err:#}")
}

#[tokio::test]
async fn a_missing_file_a_file_that_is_not_sqlite_and_a_corrupt_one_are_refused() {
    let db = TestDb::new().await;
    let scratch = Scratch::new();
    let missing = refused(&db, &scratch, &scratch.path("nope.sqlite")).await;
    assert!(missing.contains("no such file"), "{missing}");

    let text = scratch.path("notes.txt");
    std::fs::write(&text, "id,email\n1,a@b.c\n").unwrap();
    let not_sqlite = refused(&db, &scratch, &text).await;
    assert!(
        not_sqlite.contains("not an SQLite database"),
        "{not_sqlite}"
    );

    // Garbage over the middle pages (b-tree pages of the tables), header intact.
    let path = small_fixture(&scratch);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    for (i, byte) in bytes[middle - 16384..middle + 16384].iter_mut().enumerate() {
        *byte = (i * 31 % 251) as u8;
    }
    std::fs::write(&path, bytes).unwrap();
    let corrupt = refused(&db, &scratch, &path).await;
    assert!(corrupt.contains("corrupt"), "{corrupt}");
}

#[tokio::test]
async fn a_file_locked_by_a_writer_is_refused_within_seconds() {
    let db = TestDb::new().await;
    let scratch = Scratch::new();
    let path = small_fixture(&scratch);
    let writer = rusqlite::Connection::open(&path).unwrap();
    writer
        .execute_batch("BEGIN EXCLUSIVE; UPDATE users SET full_name = 'x' WHERE id = 1;")
        .unwrap();
    let started = std::time::Instant::now();
    let locked = refused(&db, &scratch, &path).await;
    assert!(locked.contains("locked by another process"), "{locked}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    writer.execute_batch("ROLLBACK").unwrap();
}

#[tokio::test]
async fn an_unknown_schema_version_is_refused() {
    let db = TestDb::new().await;
    let scratch = Scratch::new();
    let path = small_fixture(&scratch);
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute(
        "UPDATE alembic_version SET version_num = 'ffff00001111'",
        [],
    )
    .unwrap();
    drop(conn);
    let unknown = refused(&db, &scratch, &path).await;
    assert!(
        unknown.contains("unknown schema version") && unknown.contains("ffff00001111"),
        "{unknown}"
    );

    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("DROP TABLE alembic_version").unwrap();
    drop(conn);
    let none = refused(&db, &scratch, &path).await;
    assert!(none.contains("no alembic_version table"), "{none}");
}

#[tokio::test]
async fn an_unmigrated_postgresql_is_refused() {
    let db = TestDb::empty().await;
    let scratch = Scratch::new();
    let path = small_fixture(&scratch);
    let err = mingus_import::import(&db.pool, &options(&path, &scratch))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("PostgreSQL is not migrated"), "{err}");
    let schemas: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'import\\_stage\\_%'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let tables: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!((schemas, tables), (0, 0));
}

#[tokio::test]
async fn an_older_revision_without_demographics_imports_with_those_fields_null() {
    let db = TestDb::new().await;
    let scratch = Scratch::new();
    let path = scratch.path("old.sqlite");
    let options_old = mingus_import::fixture::FixtureOptions {
        checkins_per_user: 5,
        revision: mingus_import::source_schema::REVISION_BASE,
        ..mingus_import::fixture::FixtureOptions::new(10)
    };
    mingus_import::fixture::generate(&path, &options_old).unwrap();
    let summary = super::import_ok(&db.pool, &options(&path, &scratch)).await;
    assert_eq!(
        summary.revision,
        mingus_import::source_schema::REVISION_BASE
    );
    let zips: i64 = sqlx::query_scalar("SELECT count(zip_code) FROM user_profiles")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(zips, 0);
}
