//! `GET /ops/db`: the admin token, and every part of the payload against what the database holds.

use chrono::{Datelike, Months, NaiveDate, Utc};
use mingus_tests::TestApp;
use reqwest::StatusCode;
use serde_json::Value;

use crate::fixtures;

async fn ops_db(app: &TestApp, query: &str) -> (StatusCode, Value) {
    let token = "test-admin-token-0123456789abcdef01234567";
    let response = app
        .client
        .get(app.url(&format!("/ops/db{query}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Whether this server preloads pg_stat_statements (then the migration created the extension).
async fn statements_preloaded(app: &TestApp) -> bool {
    sqlx::query_scalar(
        "SELECT 'pg_stat_statements' = ANY (string_to_array(replace(current_setting('shared_preload_libraries'), ' ', ''), ','))",
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn ops_db_needs_the_admin_token() {
    let app = TestApp::spawn().await;
    let response = app.get("/ops/db").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let (status, body) = ops_db(&app, "?long_running_secs=0").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "invalid_long_running_secs");
}

#[tokio::test]
async fn ops_db_reports_connections_sizes_partitions_locks_and_statements() {
    let app = TestApp::spawn().await;
    let user = fixtures::user(&app.db.pool).await;
    // Two rows far in the future: the default partitions hold them.
    let far = {
        let today = Utc::now().date_naive();
        NaiveDate::from_ymd_opt(today.year(), today.month(), 1).unwrap() + Months::new(40)
    };
    fixtures::checkin(&app.db.pool, user, far).await;
    sqlx::query("INSERT INTO user_analytics (user_id, date) VALUES ($1, $2)")
        .bind(user)
        .bind(far)
        .execute(&app.db.pool)
        .await
        .unwrap();
    // A transaction that stays open, and a writer waiting behind its lock.
    let mut holder = app.db.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE reminder_schedules IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *holder)
        .await
        .unwrap();
    let pool = app.db.pool.clone();
    let waiter = tokio::spawn(async move {
        sqlx::query("INSERT INTO reminder_schedules (user_id, reminder_type, scheduled_date) VALUES ($1, 'custom', now())")
            .bind(user)
            .execute(&pool)
            .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;

    let (status, db) = ops_db(&app, "?long_running_secs=1").await;
    assert_eq!(status, StatusCode::OK, "{db}");
    assert_eq!(db["database"]["name"], app.db.name.as_str());
    let states = db["connections"]["by_state"].as_array().unwrap();
    assert!(states.iter().any(|s| s["state"] == "active"), "{states:?}");
    assert!(
        states.iter().any(|s| s["state"] == "idle in transaction"),
        "{states:?}"
    );
    assert!(db["connections"]["max_connections"].as_i64().unwrap() > 0);
    assert!(db["pool"]["max"].as_u64().unwrap() >= 1);
    assert!(db["pool"]["size"].as_u64().unwrap() >= db["pool"]["idle"].as_u64().unwrap());
    let ratio = db["cache_hit_ratio"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&ratio));

    let tables = db["tables"].as_array().unwrap();
    let analytics = tables
        .iter()
        .find(|t| t["table"] == "user_analytics")
        .unwrap();
    assert_eq!(analytics["partitioned"], true);
    assert!(
        analytics["total_bytes"].as_i64().unwrap() > 0,
        "partitions are summed"
    );
    assert!(
        tables
            .iter()
            .all(|t| !t["table"].as_str().unwrap().contains("_p20")),
        "partitions fold into their parent"
    );
    assert!(!db["indexes"].as_array().unwrap().is_empty());

    let partitions = db["partitions"].as_array().unwrap();
    let default = |table: &str| {
        partitions
            .iter()
            .find(|p| p["partition"] == format!("{table}_default").as_str())
            .unwrap()
            .clone()
    };
    for table in ["user_analytics", "user_health_checkins"] {
        let d = default(table);
        assert_eq!(
            (
                d["default"].as_bool(),
                d["rows"].as_i64(),
                d["rows_exact"].as_bool()
            ),
            (Some(true), Some(1), Some(true))
        );
        assert_eq!(d["policy"]["premake_months"], 3);
    }
    assert_eq!(default("activity_events")["rows"], 0);
    let month = partitions
        .iter()
        .find(|p| p["table"] == "activity_events" && p["default"] == false)
        .unwrap();
    assert!(
        month["bounds"].as_str().unwrap().contains("00:00:00+00"),
        "bounds shown in UTC: {month}"
    );

    let long = db["long_running_transactions"].as_array().unwrap();
    assert!(
        long.iter().any(|t| t["query"]
            .as_str()
            .unwrap_or("")
            .contains("LOCK TABLE reminder_schedules")),
        "{long:?}"
    );
    let locks = db["waiting_locks"].as_array().unwrap();
    let waiting = locks
        .iter()
        .find(|l| l["relation"] == "reminder_schedules")
        .expect("the waiting insert");
    assert_eq!(waiting["mode"], "RowExclusiveLock");
    assert_eq!(waiting["blocked_by"].as_array().unwrap().len(), 1);

    let statements = &db["slow_statements"];
    if statements_preloaded(&app).await {
        assert_eq!(statements["available"], true, "{statements}");
        assert_eq!(statements["reason"], Value::Null);
        let items = statements["items"].as_array().unwrap();
        assert!(!items.is_empty(), "this test's own statements are there");
        assert!(
            items
                .iter()
                .all(|s| s["calls"].as_i64().unwrap() >= 1 && s["mean_ms"].is_number())
        );
    } else {
        assert_eq!(statements["available"], false);
        assert!(
            statements["reason"]
                .as_str()
                .unwrap()
                .contains("pg_stat_statements"),
            "{statements}"
        );
        assert_eq!(statements["items"], serde_json::json!([]));
    }
    holder.rollback().await.unwrap();
    waiter.await.unwrap().unwrap();
}

/// The extension installed without its library preloaded (what `CREATE EXTENSION` allows on a server
/// that does not preload it): the field says why it is unavailable, and the rest of the page stands.
#[tokio::test]
async fn slow_statements_say_why_they_are_unavailable_when_the_library_is_not_loaded() {
    let app = TestApp::spawn().await;
    if statements_preloaded(&app).await {
        let (_, db) = ops_db(&app, "").await;
        assert_eq!(db["slow_statements"]["available"], true);
        return;
    }
    sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .execute(&app.db.pool)
        .await
        .unwrap();
    let (status, db) = ops_db(&app, "").await;
    assert_eq!(status, StatusCode::OK);
    let statements = &db["slow_statements"];
    assert_eq!(statements["available"], false);
    assert!(
        statements["reason"]
            .as_str()
            .unwrap()
            .contains("shared_preload_libraries"),
        "{statements}"
    );
    assert!(!db["tables"].as_array().unwrap().is_empty());
}
