use mingus_common::db::begin_as_user;
use mingus_common::reports::{ReportKind, kinds};
use mingus_tests::TestDb;
use serde_json::json;

use super::{report, spec, submission, user};

/// February 2024 (29 days): submissions on its first and last instants count, the ones a second
/// outside do not, and another user's never do.
#[tokio::test]
async fn the_summary_covers_the_periods_submissions_of_the_user_only() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let me = user(pool, None).await;
    let other = user(pool, Some("UTC")).await;
    let huge = ["999999.00", "1.00", "0", "0", "0"];
    submission(pool, me, "2024-01-31T23:59:59Z", huge, Some(10)).await;
    submission(
        pool,
        me,
        "2024-02-01T00:00:00Z",
        ["4000", "3000", "10000", "24000", "6000"],
        Some(60),
    )
    .await;
    submission(
        pool,
        me,
        "2024-02-29T23:59:59Z",
        ["5000", "3500", "12000", "30000", "7000"],
        Some(70),
    )
    .await;
    submission(pool, me, "2024-03-01T00:00:00Z", huge, Some(10)).await;
    submission(pool, other, "2024-02-15T12:00:00Z", huge, Some(10)).await;

    let content = report(
        pool,
        me,
        &spec(ReportKind::Financial, "2024-02-01", "2024-02-29"),
    )
    .await
    .unwrap();
    let latest = json!({
        "monthly_income": "5000.00",
        "monthly_expenses": "3500.00",
        "monthly_savings": "1500.00",
        "current_savings": "12000.00",
        "total_debt": "30000.00",
        "emergency_fund": "7000.00",
        // 1500 / 5000; 30000 / (12 × 5000); 7000 / 3500.
        "savings_rate": "0.3000",
        "debt_to_income": "0.5000",
        "emergency_fund_months": "2.00",
        "financial_health_score": 70,
        "financial_health_level": "good",
    });
    let mut month = latest.clone();
    month["month"] = json!("2024-02");
    month["submissions"] = json!(2);
    let mut closing = latest;
    closing["submitted_at"] = json!("2024-02-29T23:59:59Z");
    assert_eq!(
        content,
        json!({
            "schema_version": 1,
            "kind": "financial",
            "period": {"start": "2024-02-01", "end": "2024-02-29", "days": 29},
            "timezone": "UTC",
            "submissions": 2,
            "latest": closing,
            "average": {
                "monthly_income": "4500.00",
                "monthly_expenses": "3250.00",
                "monthly_savings": "1250.00",
                "current_savings": "11000.00",
                "total_debt": "27000.00",
                "emergency_fund": "6500.00",
                // 2500 / 9000 = 0.27777… rounds up; 54000 / (12 × 9000); 13000 / 6500.
                "savings_rate": "0.2778",
                "debt_to_income": "0.5000",
                "emergency_fund_months": "2.00",
                "financial_health_score": "65.00",
            },
            "monthly": [month],
        })
    );
}

/// The period's days are the user's own (New York: UTC−5 in March until the 10th, then UTC−4); each
/// month shows its latest submission; zero income gives null ratios, spending over income a negative
/// savings rate.
#[tokio::test]
async fn days_and_months_are_the_users_own_and_zero_income_gives_null_ratios() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let me = user(pool, Some("America/New_York")).await;
    // 2024-02-29 23:30 in New York: before the period.
    submission(
        pool,
        me,
        "2024-03-01T04:30:00Z",
        ["9000", "1", "0", "0", "0"],
        None,
    )
    .await;
    // 2024-03-01 00:00 in New York: the first instant of the period.
    submission(
        pool,
        me,
        "2024-03-01T05:00:00Z",
        ["3000", "3000", "0", "0", "0"],
        None,
    )
    .await;
    // 2024-03-31 23:30 in New York (already April in UTC): March's latest.
    submission(
        pool,
        me,
        "2024-04-01T03:30:00Z",
        ["2000", "2500", "0", "0", "1000"],
        None,
    )
    .await;
    // 2024-04-30 23:59:59 in New York: the last instant of the period.
    submission(
        pool,
        me,
        "2024-05-01T03:59:59Z",
        ["0", "1000", "0", "0", "3000"],
        None,
    )
    .await;
    // 2024-05-01 00:00 in New York: after it.
    submission(
        pool,
        me,
        "2024-05-01T04:00:00Z",
        ["9000", "1", "0", "0", "0"],
        None,
    )
    .await;

    let content = report(
        pool,
        me,
        &spec(ReportKind::Financial, "2024-03-01", "2024-04-30"),
    )
    .await
    .unwrap();
    assert_eq!(content["timezone"], "America/New_York");
    assert_eq!(content["period"]["days"], 61);
    assert_eq!(content["submissions"], 3);
    let march = json!({
        "month": "2024-03", "submissions": 2,
        "monthly_income": "2000.00", "monthly_expenses": "2500.00", "monthly_savings": "-500.00",
        "current_savings": "0.00", "total_debt": "0.00", "emergency_fund": "1000.00",
        "savings_rate": "-0.2500", "debt_to_income": "0.0000", "emergency_fund_months": "0.40",
        "financial_health_score": null, "financial_health_level": null,
    });
    let april = json!({
        "month": "2024-04", "submissions": 1,
        "monthly_income": "0.00", "monthly_expenses": "1000.00", "monthly_savings": "-1000.00",
        "current_savings": "0.00", "total_debt": "0.00", "emergency_fund": "3000.00",
        "savings_rate": null, "debt_to_income": null, "emergency_fund_months": "3.00",
        "financial_health_score": null, "financial_health_level": null,
    });
    assert_eq!(content["monthly"], json!([march, april]));
    assert_eq!(content["latest"]["submitted_at"], "2024-05-01T03:59:59Z");
    assert_eq!(content["latest"]["savings_rate"], json!(null));
    assert_eq!(content["latest"]["monthly_income"], "0.00");
    assert_eq!(
        content["average"],
        json!({
            // 5000 / 3, 6500 / 3, 4000 / 3, rounded half up.
            "monthly_income": "1666.67",
            "monthly_expenses": "2166.67",
            "monthly_savings": "-500.00",
            "current_savings": "0.00",
            "total_debt": "0.00",
            "emergency_fund": "1333.33",
            // (5000 − 6500) / 5000; 0 / (12 × 5000 / 3); 4000 / 6500 = 0.615…
            "savings_rate": "-0.3000",
            "debt_to_income": "0.0000",
            "emergency_fund_months": "0.62",
            "financial_health_score": null,
        })
    );
}

#[tokio::test]
async fn a_period_without_submissions_gives_nulls_not_an_error() {
    let db = TestDb::new().await;
    let me = user(&db.pool, None).await;
    submission(
        &db.pool,
        me,
        "2023-12-31T23:59:59Z",
        ["5000", "3500", "0", "0", "0"],
        Some(50),
    )
    .await;
    let content = report(
        &db.pool,
        me,
        &spec(ReportKind::Financial, "2024-01-01", "2024-01-31"),
    )
    .await
    .unwrap();
    let nulls = json!({
        "monthly_income": null, "monthly_expenses": null, "monthly_savings": null,
        "current_savings": null, "total_debt": null, "emergency_fund": null,
        "savings_rate": null, "debt_to_income": null, "emergency_fund_months": null,
        "financial_health_score": null,
    });
    let mut latest = nulls.clone();
    latest["financial_health_level"] = json!(null);
    latest["submitted_at"] = json!(null);
    assert_eq!(content["submissions"], 0);
    assert_eq!(content["latest"], latest);
    assert_eq!(content["average"], nulls);
    assert_eq!(content["monthly"], json!([]));
}

/// Row-level security, not only the queries' own filter, keeps another user's data out: computed in a
/// transaction scoped to one user but asked for another's id, the report finds nothing.
#[tokio::test]
async fn row_level_security_hides_another_users_rows_even_when_asked_for_them() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let me = user(pool, None).await;
    let other = user(pool, None).await;
    submission(
        pool,
        other,
        "2024-02-10T12:00:00Z",
        ["5000", "3500", "0", "0", "0"],
        None,
    )
    .await;
    let february = spec(ReportKind::Financial, "2024-02-01", "2024-02-29");

    let mut tx = begin_as_user(pool, me).await.unwrap();
    let leaked = kinds::compute(&mut tx, other, &february).await.unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(leaked["submissions"], 0);
    assert_eq!(leaked["latest"]["monthly_income"], json!(null));

    // The same call in the owner's own scope sees the submission: the data is there.
    let own = report(pool, other, &february).await.unwrap();
    assert_eq!(own["submissions"], 1);
}
