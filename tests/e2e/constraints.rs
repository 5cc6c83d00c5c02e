//! Every CHECK constraint rejects a bad value (naming the constraint) and accepts a good one.

use mingus_tests::TestDb;
use sqlx::PgPool;
use uuid::Uuid;

use crate::fixtures;

/// (table, column, bad value, good value, constraint). Values are SQL literals.
const CASES: &[(&str, &str, &str, &str, &str)] = &[
    (
        "subscriptions",
        "plan_tier",
        "'platinum'",
        "'executive'",
        "valid_plan_tier",
    ),
    (
        "subscriptions",
        "status",
        "'expired'",
        "'past_due'",
        "valid_status",
    ),
    (
        "subscriptions",
        "billing_cycle",
        "'yearly'",
        "'annual'",
        "valid_billing_cycle",
    ),
    (
        "subscriptions",
        "plan_price",
        "-0.01",
        "990.00",
        "valid_plan_price",
    ),
    (
        "subscriptions",
        "stripe_status",
        "'gone'",
        "'incomplete_expired'",
        "valid_stripe_status",
    ),
    (
        "billing_history",
        "status",
        "'settled'",
        "'refunded'",
        "valid_status",
    ),
    ("billing_history", "amount", "-1.00", "0.00", "valid_amount"),
    (
        "billing_history",
        "currency",
        "'usd'",
        "'EUR'",
        "valid_currency",
    ),
    (
        "feature_access",
        "access_level",
        "'gold'",
        "'premium'",
        "valid_access_level",
    ),
    (
        "feature_access",
        "granted_by",
        "'stripe'",
        "'promotion'",
        "valid_granted_by",
    ),
    (
        "pricing_tiers",
        "tier_name",
        "'platinum'",
        "'professional'",
        "valid_tier_name",
    ),
    (
        "user_profiles",
        "gender",
        "'unknown'",
        "'non_binary'",
        "valid_gender",
    ),
    (
        "user_profiles",
        "zip_code",
        "'1234'",
        "'12345-6789'",
        "valid_zip_code",
    ),
    (
        "user_profiles",
        "zip_code",
        "'12345-67'",
        "'02139'",
        "valid_zip_code",
    ),
    (
        "user_profiles",
        "relationship_status",
        "'complicated'",
        "'domestic_partnership'",
        "valid_relationship_status",
    ),
    (
        "user_profiles",
        "education_level",
        "''",
        "'masters'",
        "valid_education_level",
    ),
    (
        "user_profiles",
        "monthly_income",
        "1000000.01",
        "1000000.00",
        "chk_monthly_income",
    ),
    (
        "user_profiles",
        "monthly_income",
        "-0.01",
        "0.00",
        "chk_monthly_income",
    ),
    (
        "user_analytics",
        "financial_health_score",
        "101",
        "100",
        "valid_financial_health_score",
    ),
    (
        "user_analytics",
        "financial_health_score",
        "-1",
        "0",
        "valid_financial_health_score",
    ),
    (
        "user_analytics",
        "savings_rate",
        "100.01",
        "100.00",
        "valid_savings_rate",
    ),
    (
        "user_analytics",
        "average_stress_level",
        "0",
        "1",
        "valid_stress_level",
    ),
    (
        "user_analytics",
        "average_energy_level",
        "11",
        "10",
        "valid_energy_level",
    ),
    (
        "user_analytics",
        "average_mood_rating",
        "0",
        "5",
        "valid_mood_rating",
    ),
    (
        "user_analytics",
        "goals_progress_percentage",
        "100.5",
        "42.5",
        "valid_goals_progress",
    ),
    (
        "user_health_checkins",
        "stress_level",
        "0",
        "1",
        "valid_stress_level",
    ),
    (
        "user_health_checkins",
        "stress_level",
        "11",
        "10",
        "valid_stress_level",
    ),
    (
        "user_health_checkins",
        "energy_level",
        "11",
        "10",
        "valid_energy_level",
    ),
    (
        "user_health_checkins",
        "mood_rating",
        "0",
        "1",
        "valid_mood_rating",
    ),
    (
        "financial_questionnaire_submissions",
        "risk_tolerance",
        "11",
        "7",
        "valid_risk_tolerance",
    ),
    (
        "financial_questionnaire_submissions",
        "financial_health_level",
        "'meh'",
        "'good'",
        "valid_financial_health_level",
    ),
    (
        "reminder_schedules",
        "frequency",
        "'hourly'",
        "'weekly'",
        "valid_frequency",
    ),
    (
        "reminder_schedules",
        "reminder_type",
        "'spam'",
        "'goal_review'",
        "valid_reminder_type",
    ),
    (
        "verification_analytics",
        "event_type",
        "'hack'",
        "'verify_success'",
        "valid_event_type",
    ),
    ("team_members", "role", "'owner'", "'admin'", "valid_role"),
    (
        "team_members",
        "status",
        "'removed'",
        "'declined'",
        "valid_status",
    ),
    (
        "api_keys",
        "rate_limit_per_hour",
        "0",
        "5000",
        "valid_rate_limit",
    ),
];

/// One valid row in every constrained table, all owned by one user; returns the user.
async fn rows(pool: &PgPool) -> Uuid {
    let user = fixtures::user(pool).await;
    fixtures::profile(pool, user).await;
    let subscription = fixtures::subscription(pool, user).await;
    fixtures::checkin(pool, user, chrono::Utc::now().date_naive()).await;
    sqlx::query("INSERT INTO billing_history (subscription_id, user_id, amount, status, transaction_id) VALUES ($2, $1, 29.00, 'paid', 'in_1')")
        .bind(user)
        .bind(subscription)
        .execute(pool)
        .await
        .unwrap();
    let statements = [
        "INSERT INTO feature_access (user_id, feature_name, access_level) VALUES ($1, 'custom_reports', 'basic')",
        "INSERT INTO user_analytics (user_id, date) VALUES ($1, current_date)",
        "INSERT INTO financial_questionnaire_submissions (user_id, monthly_income, monthly_expenses) VALUES ($1, 5000, 3500)",
        "INSERT INTO reminder_schedules (user_id, reminder_type, scheduled_date) VALUES ($1, 'health_checkin', now())",
        "INSERT INTO verification_analytics (user_id, event_type) VALUES ($1, 'send_code')",
        "INSERT INTO team_members (team_owner_id, member_email, role) VALUES ($1, 'mate@example.com', 'viewer')",
        "INSERT INTO api_keys (user_id, key_name, key_prefix, api_key_hash) VALUES ($1, 'ci', 'mk_live_ab', 'hash-1')",
    ];
    for statement in statements {
        sqlx::query(statement)
            .bind(user)
            .execute(pool)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
    user
}

fn update(table: &str, column: &str, value: &str, user: Uuid) -> String {
    let filter = match table {
        "pricing_tiers" => "tier_name = 'professional'".to_owned(),
        "team_members" => format!("team_owner_id = '{user}'"),
        _ => format!("user_id = '{user}'"),
    };
    format!("UPDATE {table} SET {column} = {value} WHERE {filter}")
}

#[tokio::test]
async fn every_check_constraint_rejects_bad_rows_and_accepts_good_ones() {
    let db = TestDb::new().await;
    let user = rows(&db.pool).await;
    for &(table, column, bad, good, constraint) in CASES {
        let err = sqlx::query(sqlx::AssertSqlSafe(update(table, column, bad, user)))
            .execute(&db.pool)
            .await
            .expect_err(&format!("{table}.{column} = {bad} must be rejected"));
        let db_err = err
            .as_database_error()
            .unwrap_or_else(|| panic!("{table}.{column}: {err}"));
        assert_eq!(
            db_err.code().as_deref(),
            Some("23514"),
            "{table}.{column} = {bad}: {db_err}"
        );
        assert_eq!(
            db_err.constraint(),
            Some(constraint),
            "{table}.{column} = {bad}"
        );

        let changed = sqlx::query(sqlx::AssertSqlSafe(update(table, column, good, user)))
            .execute(&db.pool)
            .await
            .unwrap_or_else(|e| panic!("{table}.{column} = {good} must be accepted: {e}"))
            .rows_affected();
        assert_eq!(changed, 1, "{table}.{column} = {good} updated one row");
    }
}

#[tokio::test]
async fn unique_keys_hold() {
    let db = TestDb::new().await;
    let user = rows(&db.pool).await;
    let duplicates = [
        (
            "INSERT INTO feature_access (user_id, feature_name, access_level) VALUES ($1, 'custom_reports', 'premium')",
            "idx_feature_access_user_feature",
        ),
        (
            "INSERT INTO users (email) SELECT upper(email) FROM users WHERE id = $1",
            "ix_users_email",
        ),
        (
            "INSERT INTO user_analytics (user_id, date) VALUES ($1, current_date)",
            "uq_user_analytics_user_date",
        ),
        (
            "INSERT INTO api_keys (user_id, key_name, key_prefix, api_key_hash) VALUES ($1, 'again', 'mk_live_cd', 'hash-1')",
            "idx_api_keys_hash",
        ),
        (
            "INSERT INTO team_members (team_owner_id, member_email, role) VALUES ($1, 'MATE@example.com', 'editor')",
            "idx_team_members_owner_email",
        ),
    ];
    for (statement, constraint) in duplicates {
        let err = sqlx::query(statement)
            .bind(user)
            .execute(&db.pool)
            .await
            .expect_err(statement);
        let db_err = err.as_database_error().unwrap();
        assert_eq!(
            db_err.code().as_deref(),
            Some("23505"),
            "{statement}: {db_err}"
        );
        // On a partitioned table PostgreSQL names the partition's index, which starts with the partition's name.
        let violated = db_err.constraint().unwrap_or_default();
        assert!(
            violated == constraint
                || (constraint.starts_with("uq_user_analytics")
                    && violated.starts_with("user_analytics_p")),
            "{statement}: violated {violated:?}, expected {constraint}"
        );
    }
    // A replayed payment never adds a second billing row.
    let err = sqlx::query(
        "INSERT INTO billing_history (subscription_id, user_id, amount, status, transaction_id)
         SELECT subscription_id, user_id, amount, status, transaction_id FROM billing_history WHERE user_id = $1",
    )
    .bind(user)
    .execute(&db.pool)
    .await
    .expect_err("duplicate transaction id");
    assert_eq!(
        err.as_database_error().unwrap().constraint(),
        Some("idx_billing_history_transaction_id")
    );
}
