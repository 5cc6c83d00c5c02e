//! Promotions and admin grants end: once expired, the trial sweep recomputes the user's access, which
//! deletes the grant and gives the feature back to the tier at the tier's level (or takes it away when
//! the tier does not include it). Before, the expired row kept the feature refused until revoked.

use mingus_tests::JobEnv;
use mingus_worker::billing_sweeps::run_trial_expiry;
use uuid::Uuid;

use super::{DAY, T, at, local};

async fn grants(env: &JobEnv, user: Uuid) -> Vec<(String, String, String)> {
    sqlx::query_as(
        "SELECT feature_name::text, access_level::text, granted_by::text FROM feature_access
         WHERE user_id = $1 AND feature_name IN ('basic_analytics', 'api_access') ORDER BY feature_name",
    )
    .bind(user)
    .fetch_all(&env.db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn an_expired_promotion_gives_the_feature_back_to_the_plan_at_the_next_sweep() {
    let env = JobEnv::new().await;
    let pool = &env.db.pool;
    let (_, user) = local(
        &env,
        "active",
        "monthly",
        (T - DAY, T + 30 * DAY),
        None,
        false,
    )
    .await;
    // Professional includes basic_analytics (premium), not api_access. Promote both until T + 1 day.
    sqlx::query(
        "UPDATE feature_access SET access_level = 'unlimited', granted_by = 'promotion', expires_at = $2
         WHERE user_id = $1 AND feature_name = 'basic_analytics'",
    )
    .bind(user)
    .bind(at(T + DAY))
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO feature_access (user_id, feature_name, access_level, expires_at, granted_by)
         VALUES ($1, 'api_access', 'unlimited', $2, 'admin')",
    )
    .bind(user)
    .bind(at(T + DAY))
    .execute(pool)
    .await
    .unwrap();
    let promoted = grants(&env, user).await;

    let report = run_trial_expiry(pool, at(T)).await.unwrap();
    assert_eq!(report.grants_ended, 0, "in force");
    assert_eq!(grants(&env, user).await, promoted);

    let report = run_trial_expiry(pool, at(T + DAY + 60)).await.unwrap();
    assert_eq!(report.grants_ended, 1);
    let s = |f: &str, l: &str, by: &str| (f.to_owned(), l.to_owned(), by.to_owned());
    assert_eq!(
        grants(&env, user).await,
        [s("basic_analytics", "premium", "subscription")],
        "the plan's level is back; the feature the plan lacks is gone"
    );
    let report = run_trial_expiry(pool, at(T + DAY + 120)).await.unwrap();
    assert_eq!(report.grants_ended, 0, "once");
}
