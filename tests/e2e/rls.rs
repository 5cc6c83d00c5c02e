//! Row-level security through the application role.

use mingus_common::db::{APP_ROLE, begin_as_user};
use mingus_tests::TestDb;
use sqlx::PgPool;
use uuid::Uuid;

use crate::fixtures;

async fn user_with_data(pool: &PgPool) -> Uuid {
    let user = fixtures::user(pool).await;
    fixtures::profile(pool, user).await;
    fixtures::subscription(pool, user).await;
    fixtures::checkin(pool, user, chrono::Utc::now().date_naive()).await;
    user
}

const USER_TABLES: [&str; 3] = ["user_profiles", "user_health_checkins", "subscriptions"];

#[tokio::test]
async fn a_user_sees_and_changes_only_their_own_rows() {
    let db = TestDb::new().await;
    let a = user_with_data(&db.pool).await;
    let b = user_with_data(&db.pool).await;

    let mut tx = begin_as_user(&db.pool, a).await.unwrap();
    let role: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(role, APP_ROLE);
    for table in USER_TABLES {
        let owners: Vec<Uuid> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT user_id FROM {table}")))
                .fetch_all(&mut *tx)
                .await
                .unwrap();
        assert_eq!(owners, vec![a], "{table}: A sees exactly A's rows");
    }
    let changed = sqlx::query("UPDATE user_profiles SET first_name = 'Mallory' WHERE user_id = $1")
        .bind(b)
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(changed, 0, "B's profile cannot be updated by A");
    let changed = sqlx::query("UPDATE user_health_checkins SET mood_rating = 1 WHERE user_id = $1")
        .bind(b)
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(changed, 0, "B's check-ins cannot be updated by A");
    let own = sqlx::query("UPDATE user_profiles SET first_name = 'Alice' WHERE user_id = $1")
        .bind(a)
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(own, 1, "A may update A's own profile");
    tx.commit().await.unwrap();

    // Writing a row for somebody else is refused by the policy's WITH CHECK.
    let mut tx = begin_as_user(&db.pool, a).await.unwrap();
    let err = sqlx::query("INSERT INTO user_health_checkins (user_id, checkin_date, stress_level, energy_level, mood_rating) VALUES ($1, current_date - 1, 3, 3, 3)")
        .bind(b)
        .execute(&mut *tx)
        .await
        .expect_err("inserting for B is refused");
    assert_eq!(
        err.as_database_error().unwrap().code().as_deref(),
        Some("42501")
    );
    tx.rollback().await.unwrap();

    // Subscriptions are read-only for the application role, even one's own.
    let mut tx = begin_as_user(&db.pool, a).await.unwrap();
    let err = sqlx::query("UPDATE subscriptions SET plan_tier = 'executive' WHERE user_id = $1")
        .bind(a)
        .execute(&mut *tx)
        .await
        .expect_err("users cannot upgrade themselves");
    assert_eq!(
        err.as_database_error().unwrap().code().as_deref(),
        Some("42501")
    );
    tx.rollback().await.unwrap();

    let name: String =
        sqlx::query_scalar("SELECT first_name FROM user_profiles WHERE user_id = $1")
            .bind(b)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(name, "Pat", "B's profile is unchanged");
}

#[tokio::test]
async fn with_no_user_set_nothing_is_visible() {
    let db = TestDb::new().await;
    user_with_data(&db.pool).await;
    let mut tx = db.pool.begin().await.unwrap();
    sqlx::query("SET LOCAL ROLE mingus_app")
        .execute(&mut *tx)
        .await
        .unwrap();
    for table in USER_TABLES.iter().chain(&["users"]) {
        let count: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                .fetch_one(&mut *tx)
                .await
                .unwrap();
        assert_eq!(count, 0, "{table} is empty without app.user_id");
    }
    let tiers: i64 = sqlx::query_scalar("SELECT count(*) FROM pricing_tiers")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(tiers, 3, "the public catalogue stays readable");
    tx.rollback().await.unwrap();

    // The setting is transaction-local: the next transaction on the pool is the owner again.
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM user_profiles")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(count, 1);
}

#[tokio::test]
async fn the_application_role_cannot_bypass_rls() {
    let db = TestDb::new().await;
    let (bypass, superuser): (bool, bool) =
        sqlx::query_as("SELECT rolbypassrls, rolsuper FROM pg_roles WHERE rolname = $1")
            .bind(APP_ROLE)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!(!bypass && !superuser);
}
