//! Demo users can use what their tier includes, and `mingus-admin doctor` finds and repairs access rows
//! that no longer match a user's subscription.

use mingus_api::admin_doctor;
use mingus_common::seed;
use mingus_tests::TestDb;
use uuid::Uuid;

const EXECUTIVE: &str = "00000000-0000-4000-8000-000000000003";

async fn granted(db: &TestDb, user: Uuid) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM feature_access WHERE user_id = $1 AND granted_by = 'subscription'
         AND (expires_at IS NULL OR expires_at > now())",
    )
    .bind(user)
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn demo_users_get_their_tiers_features_and_the_doctor_repairs_stale_access() {
    let db = TestDb::new().await;
    seed::demo(&db.pool).await.unwrap();
    let executive: Uuid = EXECUTIVE.parse().unwrap();
    let tier_features: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pricing_tiers t CROSS JOIN LATERAL jsonb_each(t.features) f
         WHERE t.tier_name = 'executive'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(tier_features > 0);
    assert_eq!(granted(&db, executive).await, tier_features);

    let healthy = admin_doctor::run(&db.pool, false).await.unwrap();
    assert_eq!(healthy.users_checked, 3);
    assert!(healthy.stale_access.is_empty(), "{healthy:?}");

    // A subscription changed outside event processing (by hand, say): the rows no longer match.
    sqlx::query("DELETE FROM feature_access WHERE user_id = $1")
        .bind(executive)
        .execute(&db.pool)
        .await
        .unwrap();
    let found = admin_doctor::run(&db.pool, false).await.unwrap();
    assert_eq!(found.stale_access, [executive]);
    assert!(!found.healthy());
    assert_eq!(
        granted(&db, executive).await,
        0,
        "without --repair nothing is written"
    );

    let repaired = admin_doctor::run(&db.pool, true).await.unwrap();
    assert_eq!(repaired.stale_access, [executive]);
    assert!(repaired.healthy());
    assert_eq!(granted(&db, executive).await, tier_features);
    let again = admin_doctor::run(&db.pool, false).await.unwrap();
    assert!(again.stale_access.is_empty(), "{again:?}");

    // Seeding again changes nothing and leaves access as it is.
    seed::demo(&db.pool).await.unwrap();
    assert_eq!(granted(&db, executive).await, tier_features);
}
