//! Dead letters: listing, a job's whole story, retry (one and many) and delete.

use mingus_common::jobs::catalog::BenchNoop;
use mingus_common::jobs::{Job, outbox};
use mingus_common::queue::Queue;
use mingus_tests::wait::until;
use mingus_tests::{TestApp, TestWorker};
use reqwest::{Method, StatusCode};
use serde_json::json;
use uuid::Uuid;

use super::{LIMIT, bench, call, dies_once, enqueuer, get, wait_dead, wait_state};

#[tokio::test]
async fn a_dead_job_shows_every_attempt_and_a_retry_runs_its_next_life() {
    let app = TestApp::spawn().await;
    let enqueuer = enqueuer(&app).await;
    // Backed by an outbox row, like business jobs: the retry must re-open it.
    let job_id = Uuid::now_v7();
    let mut tx = app.db.pool.begin().await.unwrap();
    let envelope = outbox::stage(&mut tx, &dies_once(), job_id).await.unwrap();
    tx.commit().await.unwrap();
    assert!(outbox::push_after_commit(&app.db.pool, &enqueuer, &[envelope]).await);
    let worker = TestWorker::spawn(app.config.clone(), &[Queue::Bench]).await;
    wait_dead(&app, 1).await;

    let dead = get(&app, "/ops/dead?queue=bench").await;
    assert_eq!(dead["items"].as_array().unwrap().len(), 1, "{dead}");
    assert_eq!(dead["items"][0]["job_id"], job_id.to_string());
    assert_eq!(dead["items"][0]["attempts"], 3);
    assert!(
        dead["items"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("fail generation 0")
    );
    assert_eq!(get(&app, "/ops/dead?queue=email").await["items"], json!([]));
    assert_eq!(bench(&app).await["dead"], 1);

    let max = BenchNoop::SPEC.max_attempts as usize;
    let job = until(LIMIT, "every attempt in the ledger", || async {
        let job = get(&app, &format!("/ops/jobs/{job_id}")).await;
        (job["attempts"].as_array().unwrap().len() == max).then_some(job)
    })
    .await;
    assert_eq!(job["state"], "dead");
    assert_eq!(job["kind"], "bench.noop");
    assert_eq!(job["args"], json!({ "fail_generations": 1 }));
    let attempts = job["attempts"].as_array().unwrap();
    for (i, attempt) in attempts.iter().enumerate() {
        assert_eq!(attempt["attempt"], i as i64 + 1);
        assert!(
            attempt["error"].as_str().unwrap().contains("asked to fail"),
            "{attempt}"
        );
        assert!(attempt["worker"].as_str().unwrap().starts_with("bench@"));
        assert!(attempt["started_at"].is_string() && attempt["finished_at"].is_string());
    }
    assert_eq!(attempts[2]["status"], "dead");

    let (status, body) = call(
        &app,
        Method::POST,
        &format!("/ops/jobs/{job_id}/retry"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["generation"], 1);
    let (again, body) = call(
        &app,
        Method::POST,
        &format!("/ops/jobs/{job_id}/retry"),
        None,
    )
    .await;
    assert_eq!(
        (again, body["error"]["code"].clone()),
        (StatusCode::CONFLICT, json!("not_dead"))
    );
    let done = wait_state(&app, job_id, "succeeded").await;
    assert_eq!(done["attempts"].as_array().unwrap().len(), max + 1);
    assert_eq!(done["generation"], 1);
    assert_eq!(get(&app, "/ops/dead").await["items"], json!([]));
    let outcome: (Option<String>, i32) = sqlx::query_as(
        "SELECT outcome, (args->>'generation')::int FROM job_outbox WHERE job_id = $1",
    )
    .bind(job_id)
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(outcome, (Some("succeeded".into()), 1));

    let unknown = Uuid::new_v4();
    let (status, body) = call(
        &app,
        Method::POST,
        &format!("/ops/jobs/{unknown}/retry"),
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (StatusCode::NOT_FOUND, json!("not_found"))
    );
    worker.stop().await.unwrap();
}

#[tokio::test]
async fn deleting_a_dead_job_forgets_it_and_completes_its_outbox_row() {
    let app = TestApp::spawn().await;
    let enqueuer = enqueuer(&app).await;
    let job_id = Uuid::now_v7();
    let job = BenchNoop {
        fail_permanently: true,
        ..Default::default()
    };
    let mut tx = app.db.pool.begin().await.unwrap();
    let envelope = outbox::stage(&mut tx, &job, job_id).await.unwrap();
    tx.commit().await.unwrap();
    assert!(outbox::push_after_commit(&app.db.pool, &enqueuer, &[envelope]).await);
    let worker = TestWorker::spawn(app.config.clone(), &[Queue::Bench]).await;
    wait_dead(&app, 1).await;

    let (status, body) = call(&app, Method::DELETE, &format!("/ops/jobs/{job_id}"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(get(&app, "/ops/dead").await["items"], json!([]));
    let outcome: Option<String> =
        sqlx::query_scalar("SELECT outcome FROM job_outbox WHERE job_id = $1")
            .bind(job_id)
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(outcome.as_deref(), Some("deleted"));
    assert_eq!(
        get(&app, &format!("/ops/jobs/{job_id}")).await["state"],
        "deleted"
    );
    let (again, _) = call(&app, Method::DELETE, &format!("/ops/jobs/{job_id}"), None).await;
    assert_eq!(again, StatusCode::CONFLICT);
    let (retry, _) = call(
        &app,
        Method::POST,
        &format!("/ops/jobs/{job_id}/retry"),
        None,
    )
    .await;
    assert_eq!(retry, StatusCode::CONFLICT);
    let (unknown, _) = call(
        &app,
        Method::DELETE,
        &format!("/ops/jobs/{}", Uuid::new_v4()),
        None,
    )
    .await;
    assert_eq!(unknown, StatusCode::NOT_FOUND);
    worker.stop().await.unwrap();
}

#[tokio::test]
async fn bulk_retry_revives_every_matching_dead_job() {
    let app = TestApp::spawn().await;
    let enqueuer = enqueuer(&app).await;
    let worker = TestWorker::spawn(app.config.clone(), &[Queue::Bench]).await;
    let ids = enqueuer
        .enqueue_many(&[dies_once(), dies_once(), dies_once()])
        .await
        .unwrap();
    wait_dead(&app, 3).await;

    let (status, body) = call(
        &app,
        Method::POST,
        "/ops/dead/retry",
        Some(json!({ "queue": "email" })),
    )
    .await;
    assert_eq!(
        (status, body["retried"].clone()),
        (StatusCode::OK, json!(0))
    );
    let (status, body) = call(
        &app,
        Method::POST,
        "/ops/dead/retry",
        Some(json!({ "queue": "bench", "kind": "bench.noop" })),
    )
    .await;
    assert_eq!(
        (status, body["retried"].clone()),
        (StatusCode::OK, json!(3)),
        "{body}"
    );
    for id in ids {
        wait_state(&app, id, "succeeded").await;
    }
    assert_eq!(bench(&app).await["dead"], 0);
    let (status, body) = call(&app, Method::POST, "/ops/dead/retry", Some(json!({}))).await;
    assert_eq!(
        (status, body["retried"].clone()),
        (StatusCode::OK, json!(0))
    );
    worker.stop().await.unwrap();
}
