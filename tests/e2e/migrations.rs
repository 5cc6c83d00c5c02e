use mingus_common::db::MIGRATOR;
use mingus_tests::TestDb;

async fn user_objects(db: &TestDb) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname IN ('public', 'auth') AND c.relname <> '_sqlx_migrations' AND c.relname NOT LIKE '_sqlx_migrations%'
         UNION ALL
         SELECT p.proname::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname IN ('public', 'auth')
         UNION ALL
         SELECT nspname::text FROM pg_namespace WHERE nspname = 'auth'
         ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn migrations_go_up_down_to_zero_and_up_again_cleanly() {
    let db = TestDb::empty().await;
    MIGRATOR.run(&db.pool).await.expect("up");
    let after_first_up = user_objects(&db).await;
    for table in [
        "users",
        "user_profiles",
        "subscriptions",
        "billing_history",
        "feature_access",
        "pricing_tiers",
        "user_analytics",
        "user_health_checkins",
        "financial_questionnaire_submissions",
        "reminder_schedules",
        "verification_analytics",
        "team_members",
        "api_keys",
    ] {
        assert!(
            after_first_up.iter().any(|o| o == table),
            "missing table {table}"
        );
    }

    MIGRATOR.undo(&db.pool, 0).await.expect("down to zero");
    let left = user_objects(&db).await;
    assert!(
        left.is_empty(),
        "down to zero left objects behind: {left:?}"
    );
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(applied, 0);

    MIGRATOR.run(&db.pool).await.expect("up again");
    assert_eq!(
        user_objects(&db).await,
        after_first_up,
        "second up builds the same schema"
    );
    let tiers: i64 = sqlx::query_scalar("SELECT count(*) FROM pricing_tiers")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(tiers, 3, "the seed rows come back exactly once");
}

#[tokio::test]
async fn every_migration_has_a_down() {
    let ups = MIGRATOR
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .count();
    let downs = MIGRATOR
        .iter()
        .filter(|m| m.migration_type.is_down_migration())
        .count();
    assert!(ups >= 6);
    assert_eq!(ups, downs, "each up migration has its down");
}
