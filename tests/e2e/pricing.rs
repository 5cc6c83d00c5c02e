use mingus_tests::TestDb;
use rust_decimal::Decimal;
use serde_json::{Value, json};

#[tokio::test]
async fn the_three_tiers_are_seeded_exactly() {
    let db = TestDb::new().await;
    let rows: Vec<(String, String, Decimal, Decimal, Value, Value, bool)> = sqlx::query_as(
        "SELECT tier_name, display_name, monthly_price, annual_price, features, limits, is_active
         FROM pricing_tiers ORDER BY monthly_price",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let expected = [
        (
            "essentials",
            "Essentials",
            "10.00",
            "100.00",
            json!({"basic_analytics": "basic", "goal_setting": "unlimited", "email_support": "basic", "mobile_app_access": "unlimited"}),
            json!({"health_checkins_per_month": 4, "financial_reports_per_month": 2, "goal_tracking": 3, "ai_insights_per_month": 0,
                "custom_reports": 0, "custom_reports_per_month": 0, "team_members": 0, "api_access": false}),
        ),
        (
            "professional",
            "Professional",
            "29.00",
            "290.00",
            json!({"basic_analytics": "premium", "goal_setting": "unlimited", "email_support": "priority", "mobile_app_access": "unlimited",
                "advanced_ai_insights": "premium", "career_risk_management": "unlimited", "custom_reports": "premium", "portfolio_optimization": "unlimited"}),
            json!({"health_checkins_per_month": 12, "financial_reports_per_month": 10, "goal_tracking": 10, "ai_insights_per_month": 50,
                "custom_reports_per_month": 5, "team_members": 0, "api_access": false}),
        ),
        (
            "executive",
            "Executive",
            "99.00",
            "990.00",
            json!({"basic_analytics": "unlimited", "goal_setting": "unlimited", "email_support": "dedicated", "mobile_app_access": "unlimited",
                "advanced_ai_insights": "unlimited", "career_risk_management": "unlimited", "custom_reports": "unlimited",
                "portfolio_optimization": "unlimited", "dedicated_account_manager": true, "custom_integrations": "unlimited",
                "advanced_security": true, "team_management": "unlimited", "api_access": "unlimited"}),
            json!({"health_checkins_per_month": -1, "financial_reports_per_month": -1, "goal_tracking": -1, "ai_insights_per_month": -1,
                "custom_reports_per_month": -1, "team_members": 10, "api_calls_per_hour": 10000}),
        ),
    ];
    assert_eq!(rows.len(), 3);
    for (row, (name, display, monthly, annual, features, limits)) in rows.iter().zip(expected) {
        assert_eq!(row.0, name);
        assert_eq!(row.1, display);
        assert_eq!(row.2, monthly.parse::<Decimal>().unwrap(), "{name} monthly");
        assert_eq!(row.3, annual.parse::<Decimal>().unwrap(), "{name} annual");
        assert_eq!(row.4, features, "{name} features");
        assert_eq!(row.5, limits, "{name} limits");
        assert!(row.6, "{name} active");
    }
}

#[tokio::test]
async fn tier_feature_values_map_onto_access_levels() {
    let db = TestDb::new().await;
    let levels: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT t.tier_name::text, f.key, mingus_access_level(f.value)::text
         FROM pricing_tiers t, jsonb_each(t.features) f ORDER BY 1, 2",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let level = |tier: &str, feature: &str| {
        levels
            .iter()
            .find(|(t, f, _)| t == tier && f == feature)
            .map(|(_, _, l)| l.as_str())
            .unwrap()
    };
    assert_eq!(level("professional", "email_support"), "premium");
    assert_eq!(level("executive", "email_support"), "unlimited");
    assert_eq!(level("executive", "advanced_security"), "unlimited");
    assert_eq!(level("essentials", "basic_analytics"), "basic");
    for (_, _, l) in &levels {
        assert!(
            ["none", "basic", "premium", "unlimited"].contains(&l.as_str()),
            "{l} fits feature_access"
        );
    }
}
