//! Queue figures, pause/resume, workers, schedules and `/metrics`.

use std::time::Duration;

use mingus_common::jobs::EnqueueOptions;
use mingus_common::jobs::catalog::BenchNoop;
use mingus_common::queue::Queue;
use mingus_tests::wait::{count, until};
use mingus_tests::{TestApp, TestWorker};
use reqwest::{Method, StatusCode};
use serde_json::json;
use uuid::Uuid;

use super::{LIMIT, bench, call, enqueuer, get};

#[tokio::test]
async fn queue_figures_follow_enqueued_and_drained_jobs() {
    let app = TestApp::spawn().await;
    let enqueuer = enqueuer(&app).await;
    let jobs: Vec<BenchNoop> = (0..5).map(|_| BenchNoop::default()).collect();
    enqueuer.enqueue_many(&jobs).await.unwrap();
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    let options = EnqueueOptions {
        run_at: Some(later),
        ..Default::default()
    };
    enqueuer
        .enqueue(&BenchNoop::default(), options)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let before = bench(&app).await;
    assert_eq!(before["waiting"], 5, "{before}");
    assert_eq!(before["delayed"], 1);
    assert_eq!(before["in_flight"], 0);
    assert_eq!(before["dead"], 0);
    assert_eq!(before["paused"], false);
    let age = before["oldest_waiting_age_secs"].as_f64().unwrap();
    assert!((1.0..60.0).contains(&age), "{before}");
    assert_eq!(before["last_5m"]["processed"], 0);

    let worker = TestWorker::spawn(app.config.clone(), &[Queue::Bench]).await;
    let after = until(LIMIT, "the queue drained and counted", || async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let q = bench(&app).await;
        (q["waiting"] == 0 && q["last_5m"]["processed"] == 5).then_some(q)
    })
    .await;
    assert_eq!(after["delayed"], 1);
    assert!(after["oldest_waiting_age_secs"].is_null());
    assert_eq!(after["last_60m"]["processed"], 5);
    assert_eq!(after["last_5m"]["failure_rate"], 0.0);
    assert_eq!(after["workers"], 1);
    let stats = get(&app, "/ops/stats?queue=bench").await;
    let minutes = stats["minutes"].as_array().unwrap();
    assert_eq!(minutes.len(), 60);
    let total: i64 = minutes
        .iter()
        .map(|m| m["succeeded"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 5);
    worker.stop().await.unwrap();
}

#[tokio::test]
async fn a_paused_queue_holds_its_jobs_until_resumed() {
    let app = TestApp::spawn().await;
    let enqueuer = enqueuer(&app).await;
    let worker = TestWorker::spawn(app.config.clone(), &[Queue::Bench]).await;
    let (status, body) = call(&app, Method::POST, "/ops/queues/bench/pause", None).await;
    assert_eq!(
        (status, body["paused"].clone()),
        (StatusCode::OK, json!(true))
    );
    let jobs: Vec<BenchNoop> = (0..3).map(|_| BenchNoop::default()).collect();
    enqueuer.enqueue_many(&jobs).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        count(&app.db.pool, "SELECT count(*) FROM job_runs").await,
        0,
        "paused jobs ran"
    );
    let held = bench(&app).await;
    assert_eq!(
        (
            held["paused"].clone(),
            held["waiting"].clone(),
            held["delayed"].clone()
        ),
        (json!(true), json!(0), json!(3))
    );

    let (status, _) = call(&app, Method::POST, "/ops/queues/bench/resume", None).await;
    assert_eq!(status, StatusCode::OK);
    until(LIMIT, "the held jobs to run", || async {
        (count(
            &app.db.pool,
            "SELECT count(*) FROM job_runs WHERE status = 'succeeded'",
        )
        .await
            == 3)
            .then_some(())
    })
    .await;
    assert_eq!(bench(&app).await["paused"], false);
    worker.stop().await.unwrap();
}

#[tokio::test]
async fn workers_listing_shows_a_running_worker_as_live() {
    let app = TestApp::spawn().await;
    let worker = TestWorker::spawn(app.config.clone(), &[Queue::Bench]).await;
    let listed = until(LIMIT, "the worker to register", || async {
        let body = get(&app, "/ops/workers").await;
        let workers = body["workers"].as_array().unwrap().clone();
        (!workers.is_empty()).then_some(workers)
    })
    .await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let w = &listed[0];
    assert_eq!(w["queue"], "bench");
    assert_eq!(w["pid"], std::process::id());
    assert_eq!(w["stale"], false);
    assert_eq!(w["busy"], 0);
    assert!(w["name"].as_str().unwrap().starts_with("bench@"));
    assert!(w["heartbeat_age_secs"].as_f64().unwrap() < 30.0);
    worker.stop().await.unwrap();
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_without_auth() {
    let app = TestApp::spawn().await;
    let ids = [Uuid::new_v4(), Uuid::new_v4()];
    for id in ids {
        let (status, _) = call(&app, Method::GET, &format!("/ops/jobs/{id}"), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    assert_eq!(app.get("/health/live").await.status(), StatusCode::OK);
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    let line = |needle: &[&str]| {
        text.lines()
            .find(|l| needle.iter().all(|n| l.contains(n)))
            .map(str::to_owned)
    };
    let detail = line(&[
        "mingus_http_requests_total{",
        r#"route="/ops/jobs/{job_id}""#,
        r#"status="404""#,
    ])
    .unwrap_or_else(|| panic!("no counter for the job route:\n{text}"));
    assert!(detail.ends_with(" 2"), "{detail}");
    assert!(
        line(&[
            "mingus_http_requests_total{",
            r#"route="/health/live""#,
            r#"method="GET""#,
            r#"status="200""#
        ])
        .is_some()
    );
    assert!(
        line(&[
            "mingus_http_request_duration_seconds_bucket{",
            r#"route="/health/live""#
        ])
        .is_some()
    );
    assert!(
        line(&[r#"mingus_queue_waiting{queue="bench"} 0"#]).is_some(),
        "{text}"
    );
    assert!(line(&[r#"mingus_queue_dead{queue="bench"} 0"#]).is_some());
    assert!(
        ids.iter().all(|id| !text.contains(&id.to_string())),
        "raw paths must not become labels"
    );
}

#[tokio::test]
async fn schedules_are_listed_and_can_be_run_now() {
    let app = TestApp::spawn().await;
    let listed = get(&app, "/ops/schedules").await;
    let schedules = listed["schedules"].as_array().unwrap().clone();
    let expected = mingus_common::cron::CronTable::defaults();
    assert_eq!(schedules.len(), expected.names().len(), "{listed}");
    let name = schedules[0]["name"].as_str().unwrap().to_owned();
    assert!(schedules[0]["last_run"].is_null() && schedules[0]["next_tick"]["at"].is_string());

    let (status, body) = call(
        &app,
        Method::POST,
        &format!("/ops/schedules/{name}/run"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["run"]["manual"], true);
    let runs = count(
        &app.db.pool,
        &format!("SELECT count(*) FROM cron_runs WHERE schedule = '{name}' AND manual"),
    )
    .await;
    assert_eq!(runs, 1);
    let after = get(&app, "/ops/schedules").await;
    let mine = after["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name.as_str())
        .unwrap()
        .clone();
    assert_eq!(
        (
            mine["last_run"]["manual"].clone(),
            mine["last_run"]["job_id"].clone()
        ),
        (json!(true), body["run"]["job_id"].clone())
    );

    let (status, body) = call(
        &app,
        Method::POST,
        "/ops/schedules/no_such_schedule/run",
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (StatusCode::NOT_FOUND, json!("unknown_schedule"))
    );
    let refused = app
        .client
        .post(app.url(&format!("/ops/schedules/{name}/run")))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
}
