//! Every kind of dirt the fixture carries ends as documented: repaired (with a `repaired` line in the
//! report) or rejected (with a `rejected` line), never dropped silently.

use mingus_import::row::{Action, Finding};
use mingus_import::spec::CREATED_PROFILE_CODE;
use mingus_tests::TestDb;
use rust_decimal::Decimal;
use uuid::Uuid;

use super::{Scratch, id_of, import_ok, options, small_fixture};

fn finding<'a>(findings: &'a [Finding], table: &str, rowid: i64, column: &str) -> &'a Finding {
    findings
        .iter()
        .find(|f| f.table == table && f.source_rowid == rowid && f.column == column)
        .unwrap_or_else(|| panic!("no finding for {table} rowid {rowid} {column}"))
}

const USERS: u8 = 1;

#[tokio::test]
async fn e_mails_are_case_folded_duplicates_merged_and_invalid_ones_rejected() {
    let db = TestDb::new().await;
    let scratch = Scratch::new();
    let summary = import_ok(&db.pool, &options(&small_fixture(&scratch), &scratch)).await;
    let batch = summary.batch;

    // Users 6 and 7 differ only in case: 6 keeps the address, 7 is rejected and its rows merged.
    let kept: String = sqlx::query_scalar("SELECT email FROM users WHERE id = $1")
        .bind(id_of(batch, USERS, 6))
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(kept, kept.to_lowercase());
    let dup = finding(&summary.findings, "users", 7, "email");
    assert_eq!(dup.action, Action::Rejected);
    assert!(
        dup.reason.contains("duplicate of users rowid 6"),
        "{}",
        dup.reason
    );
    let absent: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)")
        .bind(id_of(batch, USERS, 7))
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!(!absent);
    let events: i64 =
        sqlx::query_scalar("SELECT count(*) FROM verification_analytics WHERE user_id = $1")
            .bind(id_of(batch, USERS, 6))
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!(events > 30, "user 7's events merged into user 6: {events}");
    // The merged user's second profile and same-day check-ins cannot both stay.
    let profile = finding(&summary.findings, "user_profiles", 7, "user_id");
    assert!(
        profile.reason.contains("already has a profile"),
        "{}",
        profile.reason
    );
    assert!(
        summary
            .findings
            .iter()
            .any(|f| f.table == "user_health_checkins"
                && f.reason.contains("already has a check-in for that day"))
    );

    // User 13's address has no @: rejected, and its rows with it.
    let bad = finding(&summary.findings, "users", 13, "email");
    assert_eq!(bad.action, Action::Rejected);
    assert!(bad.reason.contains("not an e-mail address"));
    assert!(
        summary
            .findings
            .iter()
            .any(|f| f.table == "reminder_schedules"
                && f.reason == "its user (users rowid 13) was rejected")
    );

    // NULL is_active (user 4) gets the default, reported; 'yes' (user 5) is true.
    let active: Vec<bool> =
        sqlx::query_scalar("SELECT is_active FROM users WHERE id = ANY($1) ORDER BY id")
            .bind(vec![id_of(batch, USERS, 4), id_of(batch, USERS, 5)])
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(active, [true, true]);
    assert_eq!(
        finding(&summary.findings, "users", 4, "is_active").action,
        Action::Repaired
    );
}

async fn profile_value(db: &TestDb, batch: Uuid, user: i64, column: &str) -> Option<String> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT {column}::text FROM user_profiles WHERE user_id = $1"
    )))
    .bind(id_of(batch, USERS, user))
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn profiles_get_zip_codes_money_and_check_lists_repaired_or_nulled() {
    let db = TestDb::new().await;
    let scratch = Scratch::new();
    let summary = import_ok(&db.pool, &options(&small_fixture(&scratch), &scratch)).await;
    let b = summary.batch;
    // ZIP codes: lost leading zero, trailing hyphen, ZIP+4, garbage, an INTEGER.
    assert_eq!(
        profile_value(&db, b, 1, "zip_code").await.as_deref(),
        Some("01234")
    );
    assert_eq!(
        profile_value(&db, b, 2, "zip_code").await.as_deref(),
        Some("12345")
    );
    assert_eq!(
        profile_value(&db, b, 3, "zip_code").await.as_deref(),
        Some("12345-6789")
    );
    assert_eq!(profile_value(&db, b, 4, "zip_code").await, None);
    assert_eq!(
        profile_value(&db, b, 6, "zip_code").await.as_deref(),
        Some("02134")
    );
    assert_eq!(
        finding(&summary.findings, "user_profiles", 4, "zip_code").action,
        Action::Repaired
    );
    // Money: rounding, a negative and a billion (outside the CHECK: NULL, reported), text with $ and ,.
    assert_eq!(
        profile_value(&db, b, 5, "monthly_income").await.as_deref(),
        Some("52000.00")
    );
    assert_eq!(profile_value(&db, b, 6, "monthly_income").await, None);
    assert_eq!(profile_value(&db, b, 16, "monthly_income").await, None);
    assert_eq!(
        profile_value(&db, b, 11, "monthly_income").await.as_deref(),
        Some("4500.00")
    );
    let negative = finding(&summary.findings, "user_profiles", 6, "monthly_income");
    assert_eq!(
        (negative.value.as_str(), negative.action),
        ("-5", Action::Repaired)
    );
    // Check lists: normalised when only case or separators differ, NULL otherwise.
    assert_eq!(
        profile_value(&db, b, 2, "gender").await.as_deref(),
        Some("female")
    );
    assert_eq!(
        profile_value(&db, b, 4, "gender").await.as_deref(),
        Some("non_binary")
    );
    assert_eq!(profile_value(&db, b, 3, "gender").await, None);
    assert_eq!(profile_value(&db, b, 3, "relationship_status").await, None);
    assert_eq!(profile_value(&db, b, 6, "education_level").await, None);
    assert_eq!(
        finding(&summary.findings, "user_profiles", 6, "education_level").value,
        "PhD"
    );
    // User 20 had no profile: it gets an empty one, counted apart.
    let created: bool = sqlx::query_scalar(
        "SELECT NOT is_complete AND monthly_income IS NULL FROM user_profiles WHERE id = $1",
    )
    .bind(id_of(b, CREATED_PROFILE_CODE, 20))
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(created);
    assert_eq!(summary.created_profiles, 1);
}

#[tokio::test]
async fn rows_of_missing_users_nulls_json_text_and_dates_follow_the_rules() {
    let db = TestDb::new().await;
    let scratch = Scratch::new();
    let summary = import_ok(&db.pool, &options(&small_fixture(&scratch), &scratch)).await;
    let b = summary.batch;
    // Rows pointing at users that never existed.
    for table in ["user_health_checkins", "verification_analytics"] {
        assert!(summary.findings.iter().any(|f| f.table == table
            && f.action == Action::Rejected
            && f.reason.starts_with("users rowid 999")
            && f.reason.ends_with("does not exist")));
    }
    // NULL where PostgreSQL requires a value and there is no default: rejected.
    let stress = finding(&summary.findings, "user_health_checkins", 3, "stress_level");
    assert_eq!(stress.action, Action::Rejected);
    assert!(
        stress
            .reason
            .contains("NULL where PostgreSQL requires a value")
    );
    // Invalid JSON where there is a default: the default, reported with the original text.
    let goals = finding(
        &summary.findings,
        "financial_questionnaire_submissions",
        3,
        "financial_goals",
    );
    assert_eq!(goals.action, Action::Repaired);
    assert!(goals.value.contains("oops"));
    let stored: String = sqlx::query_scalar(
        "SELECT financial_goals::text FROM financial_questionnaire_submissions WHERE id = $1",
    )
    .bind(id_of(b, 4, 3))
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(stored, "[]");
    // A questionnaire income of -5 or 1e9 is NOT NULL without default: the row is rejected.
    for user in [8, 9] {
        let first_of_user = (user - 1) * 12 + 1;
        let f = finding(
            &summary.findings,
            "financial_questionnaire_submissions",
            first_of_user,
            "monthly_income",
        );
        assert_eq!(f.action, Action::Rejected, "{f:?}");
    }
    // Emoji pass; NUL bytes go, reported.
    let emoji: i64 =
        sqlx::query_scalar("SELECT count(*) FROM user_health_checkins WHERE notes LIKE '%😀🙏%'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!(emoji > 0);
    let nul = finding(&summary.findings, "user_health_checkins", 5, "notes");
    assert_eq!(
        (nul.action, nul.reason.as_str()),
        (Action::Repaired, "NUL bytes removed")
    );
    let pasted: String = sqlx::query_scalar("SELECT notes FROM user_health_checkins WHERE id = $1")
        .bind(id_of(b, 3, 5))
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!(pasted.ends_with("(pasted)") && !pasted.contains('\0'));
    // Four date shapes in checkin_date (rows 1, 2, 4, 7 of user 1: US, ISO with offset, plain, unix
    // seconds): each is the day as written.
    let days: Vec<String> = sqlx::query_scalar(
        "SELECT checkin_date::text FROM user_health_checkins WHERE id = ANY($1) ORDER BY checkin_date",
    )
    .bind(vec![id_of(b, 3, 1), id_of(b, 3, 2), id_of(b, 3, 4), id_of(b, 3, 7)])
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        days,
        ["2025-01-01", "2025-01-02", "2025-01-04", "2025-01-07"]
    );
    // Instants: US date (user 1), +02:00 (user 2), unix seconds (user 3), SQLAlchemy text (user 5).
    let created: Vec<String> = sqlx::query_scalar(
        "SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') FROM users
         WHERE id = ANY($1) ORDER BY created_at",
    )
    .bind(vec![
        id_of(b, USERS, 1),
        id_of(b, USERS, 2),
        id_of(b, USERS, 3),
        id_of(b, USERS, 5),
    ])
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        created,
        [
            "2024-01-01 00:00",
            "2024-01-01 09:14",
            "2024-01-01 09:21",
            "2024-01-01 09:35"
        ]
    );
    // Money rounding: expenses stored as x.xx1 round half away from zero to two places.
    let expenses: Decimal = sqlx::query_scalar(
        "SELECT monthly_expenses FROM financial_questionnaire_submissions WHERE id = $1",
    )
    .bind(id_of(b, 4, 1))
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(expenses.scale(), 2);
    // Nothing is dropped silently: read = rejected + imported for every table.
    for t in &summary.tables {
        assert_eq!(t.read, t.rejected + t.imported, "{t:?}");
        let rejected_lines = summary
            .findings
            .iter()
            .filter(|f| f.table == t.table && f.action == Action::Rejected)
            .map(|f| f.source_rowid)
            .collect::<std::collections::BTreeSet<_>>()
            .len() as u64;
        assert_eq!(rejected_lines, t.rejected, "{}", t.table);
    }
    // The report files hold the same lines.
    let (csv, json) = summary.report.clone().unwrap();
    let csv = std::fs::read_to_string(csv).unwrap();
    assert_eq!(csv.lines().count(), summary.findings.len() + 1);
    let json: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    assert_eq!(json.len(), summary.findings.len());
}
