use mingus_common::reports::ReportKind;
use mingus_tests::TestDb;
use serde_json::{Value, json};

use super::{GOAL, NewGoal, goal, report, spec, user};

pub(crate) const RAINY_DAY: NewGoal<'static> = NewGoal {
    title: "Emergency fund, \"rainy day\"\nfund",
    category: "emergency_fund",
    target_amount: Some("6000"),
    current_amount: "3000",
    progress: "50",
    // 90 of its 365 days have passed on 2024-03-31: expected 24.657… %.
    target_date: Some("2024-12-31"),
    created_at: "2024-01-01T00:00:00Z",
    completed_at: None,
    abandoned_at: None,
};

fn row(
    id: uuid::Uuid,
    g: NewGoal,
    status: &str,
    progress: &str,
    expected: Value,
    on_track: Value,
) -> Value {
    json!({
        "id": id,
        "title": g.title,
        "category": g.category,
        "status": status,
        "target_amount": g.target_amount.map(|a| format!("{a}.00")),
        "current_amount": format!("{}.00", g.current_amount),
        "progress_percentage": progress,
        "target_date": g.target_date,
        "created_at": g.created_at,
        "completed_at": g.completed_at.filter(|t| *t < "2024-04-01"),
        "abandoned_at": g.abandoned_at,
        "expected_progress_percentage": expected,
        "on_track": on_track,
    })
}

/// March 2024: the goals alive at some moment of it, with their state at its end.
#[tokio::test]
async fn goals_alive_in_the_period_with_status_progress_and_on_track() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let me = user(pool, None).await;
    let other = user(pool, None).await;
    let overdue = NewGoal {
        title: "Overdue",
        category: "savings",
        target_amount: Some("1000"),
        current_amount: "900",
        progress: "90",
        target_date: Some("2024-03-30"),
        created_at: "2024-01-02T00:00:00Z",
        ..GOAL
    };
    let abandoned = NewGoal {
        title: "Abandoned in March",
        category: "investment",
        target_amount: Some("10000"),
        current_amount: "100",
        progress: "1",
        created_at: "2024-01-15T00:00:00Z",
        abandoned_at: Some("2024-03-05T00:00:00Z"),
        ..GOAL
    };
    let run = NewGoal {
        title: "Run a 10k",
        category: "wellness",
        progress: "80",
        target_date: Some("2024-03-20"),
        created_at: "2024-02-01T00:00:00Z",
        completed_at: Some("2024-03-15T08:00:00Z"),
        ..GOAL
    };
    let completed_later = NewGoal {
        title: "Completed in April",
        category: "retirement",
        target_amount: Some("50000"),
        current_amount: "50000",
        progress: "100",
        created_at: "2024-02-10T00:00:00Z",
        completed_at: Some("2024-04-02T00:00:00Z"),
        ..GOAL
    };
    // 21 of its 30 days have passed on 2024-03-31: expected 70 %, it has 25 %.
    let card = NewGoal {
        title: "Pay off card",
        category: "debt_payoff",
        target_amount: Some("2000"),
        current_amount: "500",
        progress: "25",
        target_date: Some("2024-04-09"),
        created_at: "2024-03-10T12:00:00Z",
        ..GOAL
    };
    let last_instant = NewGoal {
        title: "Last instant",
        created_at: "2024-03-31T23:59:59Z",
        ..GOAL
    };
    let ids = [
        goal(pool, me, RAINY_DAY).await,
        goal(pool, me, overdue).await,
        goal(pool, me, abandoned).await,
        goal(pool, me, run).await,
        goal(pool, me, completed_later).await,
        goal(pool, me, card).await,
        goal(pool, me, last_instant).await,
    ];
    // Outside: completed the instant before March, created the instant after it, another user's.
    let done_before = NewGoal {
        created_at: "2024-01-01T00:00:00Z",
        completed_at: Some("2024-02-29T23:59:59Z"),
        ..GOAL
    };
    goal(pool, me, done_before).await;
    goal(
        pool,
        me,
        NewGoal {
            created_at: "2024-04-01T00:00:00Z",
            ..GOAL
        },
    )
    .await;
    goal(
        pool,
        other,
        NewGoal {
            created_at: "2024-03-05T00:00:00Z",
            ..GOAL
        },
    )
    .await;

    let content = report(
        pool,
        me,
        &spec(ReportKind::Goals, "2024-03-01", "2024-03-31"),
    )
    .await
    .unwrap();
    let null = Value::Null;
    let rows = json!([
        row(
            ids[0],
            RAINY_DAY,
            "active",
            "50.00",
            json!("24.66"),
            json!(true)
        ),
        row(
            ids[1],
            overdue,
            "active",
            "90.00",
            json!("100.00"),
            json!(false)
        ),
        row(
            ids[2],
            abandoned,
            "abandoned",
            "1.00",
            null.clone(),
            null.clone()
        ),
        row(
            ids[3],
            run,
            "completed",
            "100.00",
            null.clone(),
            json!(true)
        ),
        row(
            ids[4],
            completed_later,
            "active",
            "100.00",
            null.clone(),
            null.clone()
        ),
        row(
            ids[5],
            card,
            "active",
            "25.00",
            json!("70.00"),
            json!(false)
        ),
        row(ids[6], last_instant, "active", "0.00", null.clone(), null),
    ]);
    assert_eq!(
        content,
        json!({
            "schema_version": 1,
            "kind": "goals",
            "period": {"start": "2024-03-01", "end": "2024-03-31", "days": 31},
            "timezone": "UTC",
            "total_goals": 7,
            "by_status": {"active": 5, "completed": 1, "abandoned": 1},
            "by_category": {
                "savings": 1, "debt_payoff": 1, "emergency_fund": 1, "investment": 1,
                "retirement": 1, "wellness": 1, "other": 1,
            },
            "created_in_period": 2,
            "completed_in_period": 1,
            "abandoned_in_period": 1,
            // (50 + 90 + 100 + 100 + 25 + 0) / 6, the abandoned goal left out.
            "average_progress_percentage": "60.83",
            "on_track": 2,
            "off_track": 2,
            // 6000 + 1000 + 50000 + 2000 and 3000 + 900 + 50000 + 500.
            "total_target_amount": "59000.00",
            "total_current_amount": "54400.00",
            "goals": rows,
        })
    );
}

#[tokio::test]
async fn no_goals_gives_zero_counts_and_null_average() {
    let db = TestDb::new().await;
    let me = user(&db.pool, None).await;
    let content = report(
        &db.pool,
        me,
        &spec(ReportKind::Goals, "2024-03-01", "2024-03-31"),
    )
    .await
    .unwrap();
    assert_eq!(content["total_goals"], 0);
    assert_eq!(
        content["by_status"],
        json!({"active": 0, "completed": 0, "abandoned": 0})
    );
    assert_eq!(content["average_progress_percentage"], json!(null));
    assert_eq!(content["total_target_amount"], "0.00");
    assert_eq!(content["goals"], json!([]));
}
