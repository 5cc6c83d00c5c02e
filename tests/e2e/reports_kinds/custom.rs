use mingus_common::reports::ReportKind;
use mingus_tests::TestDb;
use serde_json::Value;

use super::{checkin, report, spec, submission, user};

/// The body of a standard report: its content without the envelope.
fn body(mut content: Value) -> Value {
    let map = content.as_object_mut().unwrap();
    for key in ["schema_version", "kind", "period", "timezone"] {
        map.remove(key);
    }
    content
}

#[tokio::test]
async fn a_custom_report_holds_each_picked_kinds_body_once() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let me = user(pool, Some("Europe/Paris")).await;
    let other = user(pool, None).await;
    submission(
        pool,
        me,
        "2024-06-10T09:00:00Z",
        ["5000", "3500", "100", "0", "700"],
        Some(80),
    )
    .await;
    submission(
        pool,
        other,
        "2024-06-10T09:00:00Z",
        ["1", "1", "0", "0", "0"],
        None,
    )
    .await;
    checkin(
        pool,
        me,
        "2024-06-01",
        [3, 7, 8],
        Some("7.00"),
        Some(20),
        None,
    )
    .await;
    checkin(
        pool,
        me,
        "2024-06-30",
        [5, 5, 6],
        Some("6.00"),
        None,
        Some(15),
    )
    .await;
    checkin(pool, other, "2024-06-15", [9, 1, 1], None, None, None).await;

    let mut custom = spec(ReportKind::Custom, "2024-06-01", "2024-06-30");
    custom.sections = vec![
        ReportKind::Health,
        ReportKind::Financial,
        ReportKind::Health,
    ];
    let content = report(pool, me, &custom).await.unwrap();
    assert_eq!(content["kind"], "custom");
    assert_eq!(content["timezone"], "Europe/Paris");
    assert_eq!(content["period"]["days"], 30);
    let sections = content["sections"].as_object().unwrap();
    assert_eq!(sections.keys().collect::<Vec<_>>(), ["financial", "health"]);
    for kind in [ReportKind::Financial, ReportKind::Health] {
        let alone = report(pool, me, &spec(kind, "2024-06-01", "2024-06-30"))
            .await
            .unwrap();
        assert_eq!(
            sections[kind.name()],
            body(alone),
            "{} section",
            kind.name()
        );
    }
    assert_eq!(sections["financial"]["latest"]["savings_rate"], "0.3000");
    assert_eq!(sections["health"]["checkins"], 2);
    assert_eq!(
        sections["health"]["trend_per_week"]["stress_level"],
        "0.4828"
    ); // 2 over 29 days × 7
    assert_eq!(
        content.as_object().unwrap().len(),
        5,
        "envelope + sections, nothing else"
    );
}

#[tokio::test]
async fn a_custom_report_without_sections_or_of_itself_is_refused() {
    let db = TestDb::new().await;
    let me = user(&db.pool, None).await;
    let mut custom = spec(ReportKind::Custom, "2024-06-01", "2024-06-30");
    let empty = report(&db.pool, me, &custom).await.unwrap_err();
    assert!(
        empty.to_string().contains("at least one section"),
        "{empty:#}"
    );
    custom.sections = vec![ReportKind::Goals, ReportKind::Custom];
    let nested = report(&db.pool, me, &custom).await.unwrap_err();
    assert!(
        nested.to_string().contains("section of itself"),
        "{nested:#}"
    );
    // A period that ends before it starts is refused too.
    let backwards = report(
        &db.pool,
        me,
        &spec(ReportKind::Goals, "2024-06-30", "2024-06-01"),
    )
    .await
    .unwrap_err();
    assert!(
        backwards.to_string().contains("after it ends"),
        "{backwards:#}"
    );
}
