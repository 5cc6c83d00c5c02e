use mingus_common::reports::ReportKind;
use mingus_tests::TestDb;
use serde_json::json;

use super::{checkin, report, spec, user};

/// 2024-02-26 … 2024-03-04 (8 days across the leap day): check-ins on days 0, 3 and 7 (the period's
/// last day counts), none of the neighbours' or another user's.
#[tokio::test]
async fn the_summary_averages_trends_and_weeks_of_the_periods_checkins() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let me = user(pool, Some("Asia/Tokyo")).await;
    let other = user(pool, None).await;
    checkin(
        pool,
        me,
        "2024-02-25",
        [10, 1, 1],
        Some("1.00"),
        Some(500),
        Some(500),
    )
    .await;
    checkin(
        pool,
        me,
        "2024-02-26",
        [6, 4, 5],
        Some("7.50"),
        Some(30),
        Some(10),
    )
    .await;
    checkin(
        pool,
        me,
        "2024-02-29",
        [4, 6, 7],
        Some("8.00"),
        None,
        Some(20),
    )
    .await;
    checkin(pool, me, "2024-03-04", [2, 8, 9], None, Some(60), None).await;
    checkin(
        pool,
        me,
        "2024-03-05",
        [10, 1, 1],
        Some("1.00"),
        Some(500),
        Some(500),
    )
    .await;
    checkin(
        pool,
        other,
        "2024-02-27",
        [1, 10, 10],
        Some("12.00"),
        Some(900),
        Some(900),
    )
    .await;

    let content = report(
        pool,
        me,
        &spec(ReportKind::Health, "2024-02-26", "2024-03-04"),
    )
    .await
    .unwrap();
    // Trends: x = day in the period, slope = (nΣxy − ΣxΣy) / (nΣx² − (Σx)²), times 7.
    // stress (0,6) (3,4) (7,2): (3·26 − 10·12) / (3·58 − 10²) = −42/74 per day → −3.97297… per week;
    // energy and mood rise by the same +42/74; sleep (0,7.5) (3,8): 0.5/3 per day → 1.1666…;
    // activity (0,30) (7,60): 30 per week; mindfulness (0,10) (3,20): 70/3 = 23.333….
    assert_eq!(
        content,
        json!({
            "schema_version": 1,
            "kind": "health",
            "period": {"start": "2024-02-26", "end": "2024-03-04", "days": 8},
            "timezone": "Asia/Tokyo",
            "checkins": 3,
            "days_in_period": 8,
            "checkin_rate": "0.3750",
            "first_checkin": "2024-02-26",
            "last_checkin": "2024-03-04",
            "average": {
                "stress_level": "4.00",
                "energy_level": "6.00",
                "mood_rating": "7.00",
                "sleep_hours": "7.75",
                "physical_activity_minutes": "45.00",
                "mindfulness_minutes": "15.00",
            },
            "total": {"physical_activity_minutes": 90, "mindfulness_minutes": 30},
            "trend_per_week": {
                "stress_level": "-3.9730",
                "energy_level": "3.9730",
                "mood_rating": "3.9730",
                "sleep_hours": "1.1667",
                "physical_activity_minutes": "30.0000",
                "mindfulness_minutes": "23.3333",
            },
            "weekly": [
                {
                    "week_start": "2024-02-26", "week_end": "2024-03-03", "checkins": 2,
                    "stress_level": "5.00", "energy_level": "5.00", "mood_rating": "6.00",
                    "sleep_hours": "7.75", "physical_activity_minutes": "30.00",
                    "mindfulness_minutes": "15.00",
                },
                {
                    "week_start": "2024-03-04", "week_end": "2024-03-04", "checkins": 1,
                    "stress_level": "2.00", "energy_level": "8.00", "mood_rating": "9.00",
                    "sleep_hours": null, "physical_activity_minutes": "60.00",
                    "mindfulness_minutes": null,
                },
            ],
        })
    );
}

#[tokio::test]
async fn a_period_without_checkins_has_empty_weeks_and_null_averages() {
    let db = TestDb::new().await;
    let me = user(&db.pool, None).await;
    let content = report(
        &db.pool,
        me,
        &spec(ReportKind::Health, "2024-01-01", "2024-01-10"),
    )
    .await
    .unwrap();
    let nulls = json!({
        "stress_level": null, "energy_level": null, "mood_rating": null,
        "sleep_hours": null, "physical_activity_minutes": null, "mindfulness_minutes": null,
    });
    let week = |start: &str, end: &str| {
        let mut week = nulls.clone();
        week["week_start"] = json!(start);
        week["week_end"] = json!(end);
        week["checkins"] = json!(0);
        week
    };
    assert_eq!(content["checkins"], 0);
    assert_eq!(content["days_in_period"], 10);
    assert_eq!(content["checkin_rate"], "0.0000");
    assert_eq!(content["first_checkin"], json!(null));
    assert_eq!(content["last_checkin"], json!(null));
    assert_eq!(content["average"], nulls);
    assert_eq!(content["trend_per_week"], nulls);
    assert_eq!(
        content["total"],
        json!({"physical_activity_minutes": 0, "mindfulness_minutes": 0})
    );
    assert_eq!(
        content["weekly"],
        json!([
            week("2024-01-01", "2024-01-07"),
            week("2024-01-08", "2024-01-10")
        ])
    );
}

/// A single check-in has no trend (one point defines no slope), and a one-day period is one week.
#[tokio::test]
async fn one_checkin_has_averages_but_no_trend() {
    let db = TestDb::new().await;
    let me = user(&db.pool, None).await;
    checkin(
        &db.pool,
        me,
        "2024-12-31",
        [3, 7, 8],
        Some("6.25"),
        None,
        None,
    )
    .await;
    let content = report(
        &db.pool,
        me,
        &spec(ReportKind::Health, "2024-12-31", "2024-12-31"),
    )
    .await
    .unwrap();
    assert_eq!(content["checkin_rate"], "1.0000");
    assert_eq!(content["average"]["sleep_hours"], "6.25");
    assert_eq!(content["trend_per_week"]["stress_level"], json!(null));
    assert_eq!(content["weekly"].as_array().unwrap().len(), 1);
}
