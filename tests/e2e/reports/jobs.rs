//! The `report.generate` job with a real worker: ready reports hold exactly what `kinds::compute`
//! returns and download with their content type and file name, with one `report_ready` e-mail; reports
//! that cannot be computed end `failed` with a reason and give their usage back; redelivered jobs leave
//! final reports alone; a job Redis lost is pushed again by the outbox sweep.

use mingus_common::jobs::report_jobs::GenerateReport;
use mingus_common::jobs::{Envelope, Job};
use mingus_common::queue::Queue;
use mingus_tests::wait::until;
use mingus_tests::{TestApp, TestWorker};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use super::{
    LIMIT, body, enqueuer, expected, final_status, get, last_month, lose_report_jobs, post, usage,
    user_on,
};

/// Some data of every kind for `user`, so a computed report has something in it.
async fn some_data(pool: &PgPool, user: Uuid) {
    crate::fixtures::profile(pool, user).await;
    let yesterday = chrono::Utc::now().date_naive() - chrono::Days::new(1);
    crate::fixtures::checkin(pool, user, yesterday).await;
}

/// Makes every computation fail for good: the role reports are computed as may read no table.
async fn forbid_reads(pool: &PgPool) {
    sqlx::query("REVOKE SELECT ON ALL TABLES IN SCHEMA public FROM mingus_app")
        .execute(pool)
        .await
        .unwrap();
}

/// Runs one more `report.generate` job for the report (a redelivery) and waits for its ledger row.
async fn redeliver(app: &TestApp, report_id: Uuid) {
    let job_id = Uuid::now_v7();
    let envelope = Envelope::new(&GenerateReport { report_id }, job_id).unwrap();
    enqueuer(app)
        .await
        .push(&[envelope], None, None)
        .await
        .unwrap();
    until(LIMIT, "the redelivered job to run", || async {
        let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM job_runs WHERE job_id = $1")
            .bind(job_id)
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
        (runs > 0).then_some(())
    })
    .await;
}

async fn deliveries(pool: &PgPool, report_id: Uuid) -> Vec<(Option<Uuid>, String, Value)> {
    sqlx::query_as("SELECT user_id, template, data FROM email_deliveries WHERE dedupe_key = $1")
        .bind(format!("report_ready:{report_id}"))
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_report_that_cannot_be_computed_fails_with_a_reason_and_gives_its_unit_back() {
    let app = TestApp::spawn().await;
    let user = user_on(&app, Some("professional")).await;
    forbid_reads(&app.db.pool).await;
    let (start, end) = last_month();
    let custom =
        json!({"kind": "custom", "period_start": start, "period_end": end, "format": "csv"});
    let ids = [
        post(&app, user, &body("financial"), None).await.id(),
        post(&app, user, &custom, None).await.id(),
    ];
    assert_eq!(
        usage(&app.db.pool, user, "financial_reports_per_month").await,
        1
    );
    assert_eq!(
        usage(&app.db.pool, user, "custom_reports_per_month").await,
        1
    );

    let worker = TestWorker::spawn(app.config.clone(), &[Queue::Reports]).await;
    for id in ids {
        assert_eq!(final_status(&app.db.pool, id).await, "failed");
        let view = get(&app, user, &format!("/v1/reports/{id}")).await.json();
        assert_eq!(view["status"], "failed");
        let reason = view["failure_reason"].as_str().expect("a failure reason");
        assert!(!reason.is_empty());
        assert!(
            view["finished_at"].is_string() && view["started_at"].is_string(),
            "{view}"
        );
        assert_eq!(view["download_url"], Value::Null);
        let download = get(&app, user, &format!("/v1/reports/{id}/download")).await;
        assert_eq!(download.status, StatusCode::CONFLICT, "{}", download.text);
        assert_eq!(download.code(), "report_failed");
        assert_eq!(download.json()["error"]["failure_reason"], reason);
        assert!(
            deliveries(&app.db.pool, id).await.is_empty(),
            "no e-mail for a failed report"
        );
    }
    assert_eq!(
        usage(&app.db.pool, user, "financial_reports_per_month").await,
        0,
        "refunded"
    );
    assert_eq!(
        usage(&app.db.pool, user, "custom_reports_per_month").await,
        0,
        "refunded"
    );
    until(
        LIMIT,
        "both failures among the dead letters (seen in /ops)",
        || async {
            let dead: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM job_dead_letters WHERE kind = $1 AND job_id = ANY($2)",
            )
            .bind(GenerateReport::SPEC.kind)
            .bind(&ids[..])
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
            (dead == 2).then_some(())
        },
    )
    .await;

    // A redelivered job finds the report final: no second refund, nothing changes.
    sqlx::query("UPDATE usage_counters SET used = 1 WHERE user_id = $1")
        .bind(user)
        .execute(&app.db.pool)
        .await
        .unwrap();
    let before: (String, Option<chrono::DateTime<chrono::Utc>>, i32) =
        sqlx::query_as("SELECT status, finished_at, attempts FROM reports WHERE id = $1")
            .bind(ids[0])
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    redeliver(&app, ids[0]).await;
    let after: (String, Option<chrono::DateTime<chrono::Utc>>, i32) =
        sqlx::query_as("SELECT status, finished_at, attempts FROM reports WHERE id = $1")
            .bind(ids[0])
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(after, before);
    assert_eq!(
        usage(&app.db.pool, user, "financial_reports_per_month").await,
        1,
        "no second refund"
    );
    worker.stop().await.unwrap();
}

/// Posts `request_body`, lets the worker finish it, and checks it against `kinds::compute`: `ready` with
/// the same content, the download's headers and body, one e-mail. Returns the report id.
async fn ready_report(app: &TestApp, user: Uuid, request_body: &Value) -> Uuid {
    let id = post(app, user, request_body, None).await.id();
    let status = final_status(&app.db.pool, id).await;
    let (spec, outcome) = expected(&app.db.pool, user, request_body).await;
    let reason: Option<String> =
        sqlx::query_scalar("SELECT failure_reason FROM reports WHERE id = $1")
            .bind(id)
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    let (content, csv) = outcome.unwrap_or_else(|e| {
        panic!("kinds::compute fails for {request_body} ({e}); the report is {status}: {reason:?}")
    });
    assert_eq!(status, "ready", "{reason:?}");
    let stored: (Value, Option<String>) =
        sqlx::query_as("SELECT content, rendered FROM reports WHERE id = $1")
            .bind(id)
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(stored, (content.clone(), csv.clone()), "stored = computed");

    let view = get(app, user, &format!("/v1/reports/{id}")).await.json();
    assert_eq!(view["download_url"], format!("/v1/reports/{id}/download"));
    let download = get(app, user, &format!("/v1/reports/{id}/download")).await;
    assert_eq!(download.status, StatusCode::OK, "{}", download.text);
    let (start, end) = (spec.period.start, spec.period.end);
    let (kind, ext) = (spec.kind.name(), spec.format.name());
    assert_eq!(
        download.header("content-disposition"),
        Some(format!("attachment; filename=\"mingus-{kind}-{start}-{end}.{ext}\"").as_str())
    );
    match csv {
        Some(csv) => {
            assert_eq!(
                download.header("content-type"),
                Some("text/csv; charset=utf-8")
            );
            // A UTF-8 byte order mark first (for Excel), then the stored file as it is.
            assert_eq!(download.text, format!("\u{FEFF}{csv}"));
        }
        None => {
            assert_eq!(
                download.header("content-type"),
                Some("application/json; charset=utf-8")
            );
            assert_eq!(download.json(), content);
        }
    }
    let mails = deliveries(&app.db.pool, id).await;
    assert_eq!(mails.len(), 1, "one report_ready e-mail");
    assert_eq!(mails[0].0, Some(user), "to the requester");
    assert_eq!(mails[0].1, "report_ready");
    assert_eq!(mails[0].2["report_id"], id.to_string());
    assert_eq!(mails[0].2["report_name"], spec.title());
    id
}

#[tokio::test]
async fn ready_reports_hold_what_compute_returns_and_download_as_json_and_csv() {
    let app = TestApp::spawn().await;
    let user = user_on(&app, Some("professional")).await;
    some_data(&app.db.pool, user).await;
    let worker = TestWorker::spawn(app.config.clone(), &[Queue::Reports]).await;
    let (start, end) = last_month();
    let json_report = ready_report(&app, user, &body("financial")).await;
    let csv = json!({"kind": "health", "period_start": start, "period_end": end, "format": "csv"});
    ready_report(&app, user, &csv).await;
    let custom = json!({"kind": "custom", "period_start": start, "period_end": end,
                        "sections": ["goals", "financial"]});
    ready_report(&app, user, &custom).await;
    assert_eq!(
        usage(&app.db.pool, user, "financial_reports_per_month").await,
        2,
        "kept"
    );

    // A redelivered job leaves a ready report (and its e-mail) alone.
    let before: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT finished_at FROM reports WHERE id = $1")
            .bind(json_report)
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    redeliver(&app, json_report).await;
    let after: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT finished_at FROM reports WHERE id = $1")
            .bind(json_report)
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(after, before);
    assert_eq!(deliveries(&app.db.pool, json_report).await.len(), 1);
    worker.stop().await.unwrap();
}

#[tokio::test]
async fn a_report_whose_job_redis_lost_is_completed_after_the_outbox_sweep() {
    let app = TestApp::spawn().await;
    let user = user_on(&app, Some("executive")).await;
    let request_body = body("goals");
    let id = post(&app, user, &request_body, None).await.id();
    lose_report_jobs(&app).await;

    let enqueuer = enqueuer(&app).await;
    let swept =
        mingus_common::jobs::outbox::sweep(&app.db.pool, &enqueuer, std::time::Duration::ZERO, 100)
            .await
            .unwrap();
    assert_eq!(swept.revived, 1, "the lost job is pushed again");
    let worker = TestWorker::spawn(app.config.clone(), &[Queue::Reports]).await;
    let status = final_status(&app.db.pool, id).await;
    // Whatever the computation gives today, the report reached it: ready with its content, or failed.
    let (_, outcome) = expected(&app.db.pool, user, &request_body).await;
    match outcome {
        Ok((content, _)) => {
            assert_eq!(status, "ready");
            let stored: Value = sqlx::query_scalar("SELECT content FROM reports WHERE id = $1")
                .bind(id)
                .fetch_one(&app.db.pool)
                .await
                .unwrap();
            assert_eq!(stored, content);
        }
        Err(_) => assert_eq!(status, "failed"),
    }
    until(LIMIT, "the outbox row to be settled", || async {
        let completed: bool =
            sqlx::query_scalar("SELECT completed_at IS NOT NULL FROM job_outbox WHERE job_id = $1")
                .bind(id)
                .fetch_one(&app.db.pool)
                .await
                .unwrap();
        completed.then_some(())
    })
    .await;
    worker.stop().await.unwrap();
}
