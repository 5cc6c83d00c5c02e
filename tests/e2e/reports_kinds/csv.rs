use mingus_common::reports::{ReportFormat, ReportKind, kinds};
use mingus_tests::TestDb;

use super::goals::RAINY_DAY;
use super::{goal, report, spec, submission, user};

/// The whole file for one goal whose title holds a comma, quotes and a line break.
#[tokio::test]
async fn a_goals_report_as_csv_is_exact_and_quotes_what_it_must() {
    let db = TestDb::new().await;
    let me = user(&db.pool, None).await;
    let id = goal(&db.pool, me, RAINY_DAY).await;
    let mut csv_spec = spec(ReportKind::Goals, "2024-03-01", "2024-03-31");
    csv_spec.format = ReportFormat::Csv;
    let content = report(&db.pool, me, &csv_spec).await.unwrap();
    let csv = kinds::to_csv(&csv_spec, &content).unwrap();
    let head = [
        "section,subject,metric,value",
        "report,summary,kind,goals",
        "report,summary,schema_version,1",
        "report,summary,timezone,UTC",
        "report,period,days,31",
        "report,period,end,2024-03-31",
        "report,period,start,2024-03-01",
        "goals,summary,abandoned_in_period,0",
        "goals,summary,average_progress_percentage,50.00",
        "goals,summary,completed_in_period,0",
        "goals,summary,created_in_period,0",
        "goals,summary,off_track,0",
        "goals,summary,on_track,1",
        "goals,summary,total_current_amount,3000.00",
        "goals,summary,total_goals,1",
        "goals,summary,total_target_amount,6000.00",
        "goals,by_category,debt_payoff,0",
        "goals,by_category,emergency_fund,1",
        "goals,by_category,investment,0",
        "goals,by_category,other,0",
        "goals,by_category,retirement,0",
        "goals,by_category,savings,0",
        "goals,by_category,wellness,0",
        "goals,by_status,abandoned,0",
        "goals,by_status,active,1",
        "goals,by_status,completed,0",
    ];
    let id_text = id.to_string();
    let goal_rows = [
        ("abandoned_at", ""),
        ("category", "emergency_fund"),
        ("completed_at", ""),
        ("created_at", "2024-01-01T00:00:00Z"),
        ("current_amount", "3000.00"),
        ("expected_progress_percentage", "24.66"),
        ("id", id_text.as_str()),
        ("on_track", "true"),
        ("progress_percentage", "50.00"),
        ("status", "active"),
        ("target_amount", "6000.00"),
        ("target_date", "2024-12-31"),
        // Quoted: it holds a comma, quotes (doubled) and a line break (kept as is).
        ("title", "\"Emergency fund, \"\"rainy day\"\"\nfund\""),
    ];
    let mut expected = head.join("\r\n");
    for (metric, value) in goal_rows {
        expected.push_str(&format!("\r\ngoals,goals[{id}],{metric},{value}"));
    }
    expected.push_str("\r\n");
    assert_eq!(csv, expected);
}

/// A custom report is one file: one header, the envelope, then each section's rows under its name.
#[tokio::test]
async fn a_custom_report_as_csv_has_one_header_and_each_sections_rows() {
    let db = TestDb::new().await;
    let me = user(&db.pool, None).await;
    submission(
        &db.pool,
        me,
        "2024-06-10T09:00:00Z",
        ["5000", "3500", "0", "0", "0"],
        None,
    )
    .await;
    let mut custom = spec(ReportKind::Custom, "2024-06-01", "2024-06-30");
    custom.sections = vec![ReportKind::Goals, ReportKind::Financial];
    let content = report(&db.pool, me, &custom).await.unwrap();
    let csv = kinds::to_csv(&custom, &content).unwrap();
    let lines: Vec<&str> = csv.split("\r\n").collect();
    assert_eq!(lines[0], "section,subject,metric,value");
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("section,")).count(),
        1
    );
    assert!(lines.contains(&"report,summary,kind,custom"));
    assert!(lines.contains(&"financial,summary,submissions,1"));
    assert!(lines.contains(&"financial,latest,savings_rate,0.3000"));
    assert!(lines.contains(&"financial,monthly[2024-06],monthly_income,5000.00"));
    assert!(lines.contains(&"goals,summary,total_goals,0"));
    assert!(!lines.iter().any(|l| l.starts_with("health,")));
    assert_eq!(lines.last(), Some(&""), "every record ends with CRLF");
    assert!(
        lines[1..lines.len() - 1]
            .iter()
            .all(|l| l.split(',').count() == 4),
        "no field here needs quoting, so every record has four plain fields"
    );

    // Content of another kind than the spec's is refused rather than mislabelled.
    let goals_spec = spec(ReportKind::Goals, "2024-06-01", "2024-06-30");
    assert!(kinds::to_csv(&goals_spec, &content).is_err());
}

/// A goal title that a spreadsheet would run as a formula reaches the CSV as text (`'` first).
#[tokio::test]
async fn a_formula_in_a_goal_title_is_neutralised_in_the_csv() {
    let db = TestDb::new().await;
    let me = user(&db.pool, None).await;
    let formula = super::NewGoal {
        title: "=HYPERLINK(\"http://evil.example\",\"Pay off card\")",
        ..RAINY_DAY
    };
    let id = goal(&db.pool, me, formula).await;
    let mut csv_spec = spec(ReportKind::Goals, "2024-03-01", "2024-03-31");
    csv_spec.format = ReportFormat::Csv;
    let content = report(&db.pool, me, &csv_spec).await.unwrap();
    assert_eq!(
        content["goals"][0]["title"], formula.title,
        "the JSON keeps the title as written"
    );
    let csv = kinds::to_csv(&csv_spec, &content).unwrap();
    let title_row = format!(
        "\r\ngoals,goals[{id}],title,\"'=HYPERLINK(\"\"http://evil.example\"\",\"\"Pay off card\"\")\"\r\n"
    );
    assert!(csv.contains(&title_row), "{csv}");
}
