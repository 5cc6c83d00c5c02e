//! Reports whose job ended without recording an outcome do not stay `running`: a job that dies (here its
//! last attempt times out, outside the handler's own guard) fails its report at once with the job's error
//! and gives the unit back; a report whose job ended while nothing settled it (a worker that died in
//! between) is failed by the minute outbox sweep.

use mingus_common::jobs::Envelope;
use mingus_common::queue::Queue;
use mingus_tests::wait::until;
use mingus_tests::{TestApp, TestWorker};
use sqlx::PgPool;
use uuid::Uuid;

use super::{LIMIT, body, enqueuer, final_status, lose_report_jobs, post, usage, user_on};

const METRIC: &str = "financial_reports_per_month";

async fn status_and_reason(pool: &PgPool, id: Uuid) -> (String, Option<String>) {
    sqlx::query_as("SELECT status, failure_reason FROM reports WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// The job's outbox envelope, as its last attempt.
async fn last_attempt(pool: &PgPool, id: Uuid) -> Envelope {
    let sqlx::types::Json(envelope): sqlx::types::Json<Envelope> =
        sqlx::query_scalar("SELECT args FROM job_outbox WHERE job_id = $1")
            .bind(id)
            .fetch_one(pool)
            .await
            .unwrap();
    Envelope {
        attempt: envelope.max_attempts,
        ..envelope
    }
}

#[tokio::test]
async fn a_report_whose_last_attempt_times_out_fails_with_the_error_and_gives_its_unit_back() {
    let app = TestApp::spawn_with(&[("MINGUS_QUEUE_TIMEOUT_SECS", "reports=1")]).await;
    let pool = &app.db.pool;
    let user = user_on(&app, Some("professional")).await;
    let id = post(&app, user, &body("financial"), None).await.id();
    assert_eq!(usage(pool, user, METRIC).await, 1);
    lose_report_jobs(&app).await;

    // The claim waits on this lock, so the attempt outlives its 1 s timeout whatever the machine's speed.
    let mut lock = pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM reports WHERE id = $1 FOR UPDATE")
        .bind(id)
        .execute(&mut *lock)
        .await
        .unwrap();
    enqueuer(&app)
        .await
        .push(&[last_attempt(pool, id).await], None, None)
        .await
        .unwrap();
    let worker = TestWorker::spawn(app.config.clone(), &[Queue::Reports]).await;
    crate::fixtures::dead_letter(pool, id).await;
    lock.rollback().await.unwrap();

    assert_eq!(final_status(pool, id).await, "failed");
    let (_, reason) = status_and_reason(pool, id).await;
    let reason = reason.expect("a failure reason");
    assert!(reason.starts_with("gave up: timed out"), "{reason}");
    assert_eq!(usage(pool, user, METRIC).await, 0, "the unit is given back");
    until(LIMIT, "the outbox row to be settled as dead", || async {
        let outcome: Option<String> =
            sqlx::query_scalar("SELECT outcome FROM job_outbox WHERE job_id = $1")
                .bind(id)
                .fetch_one(pool)
                .await
                .unwrap();
        (outcome.as_deref() == Some("dead")).then_some(())
    })
    .await;
    worker.stop().await.unwrap();
}

/// Makes report `id` look like one whose worker died: `running`, its job's outbox row completed as dead
/// `ago` ago, nothing recorded.
async fn orphan(pool: &PgPool, id: Uuid, ago: &str) {
    sqlx::query("UPDATE reports SET status = 'running', started_at = now() WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await
        .unwrap();
    crate::fixtures::job_ended(pool, id, ago).await;
}

async fn finished_at(pool: &PgPool, id: Uuid) -> chrono::DateTime<chrono::Utc> {
    sqlx::query_scalar("SELECT finished_at FROM reports WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Runs one outbox sweep job.
async fn sweep_once(app: &TestApp) {
    crate::fixtures::outbox_sweep_job(&app.db.pool, &enqueuer(app).await).await;
}

#[tokio::test]
async fn the_outbox_sweep_fails_reports_whose_job_ended_without_an_outcome_once() {
    let app = TestApp::spawn().await;
    let pool = &app.db.pool;
    let user = user_on(&app, Some("professional")).await;
    let old = post(&app, user, &body("financial"), None).await.id();
    let recent = post(&app, user, &body("goals"), None).await.id();
    lose_report_jobs(&app).await;
    orphan(pool, old, "2 minutes").await;
    orphan(pool, recent, "0 seconds").await;
    assert_eq!(usage(pool, user, METRIC).await, 2);

    let worker = TestWorker::spawn(app.config.clone(), &[Queue::Maintenance]).await;
    sweep_once(&app).await;
    let (status, reason) = status_and_reason(pool, old).await;
    assert_eq!(status, "failed");
    assert_eq!(
        reason.as_deref(),
        Some("the report's job ended (dead) without recording a result")
    );
    assert_eq!(
        status_and_reason(pool, recent).await.0,
        "running",
        "a job that ended moments ago may still be settling its report"
    );
    assert_eq!(usage(pool, user, METRIC).await, 1, "the orphan's unit back");

    let before = finished_at(pool, old).await;
    sweep_once(&app).await;
    assert_eq!(finished_at(pool, old).await, before, "failed once");
    assert_eq!(usage(pool, user, METRIC).await, 1, "no second refund");
    worker.stop().await.unwrap();
}
