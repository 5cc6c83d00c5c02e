//! A worker process serves Prometheus metrics of the jobs it ran, and its health probes.

use std::time::Duration;

use mingus_common::jobs::EnqueueOptions;
use mingus_common::jobs::catalog::BenchNoop;
use mingus_tests::wait::until;
use mingus_tests::{JobEnv, WorkerProcess};

#[tokio::test]
async fn a_worker_process_exposes_job_counters_and_duration_histograms() {
    let env = JobEnv::new().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let _worker = WorkerProcess::start(&env, "bench", &[("MINGUS_WORKER_METRICS_ADDR", &addr)]);
    for job in [
        BenchNoop::default(),
        BenchNoop::default(),
        BenchNoop {
            fail_permanently: true,
            ..Default::default()
        },
    ] {
        env.enqueuer
            .enqueue(&job, EnqueueOptions::default())
            .await
            .unwrap();
    }
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/metrics");
    let text = until(
        Duration::from_secs(60),
        "metrics with three processed jobs",
        || async {
            let text = client.get(&url).send().await.ok()?.text().await.ok()?;
            text.lines()
                .any(|l| {
                    l.starts_with("mingus_jobs_processed_total{")
                        && l.contains("queue=\"bench\"")
                        && l.ends_with(" 3")
                })
                .then_some(text)
        },
    )
    .await;
    assert!(
        text.lines()
            .any(|l| l.starts_with("mingus_jobs_dead_total{") && l.ends_with(" 1")),
        "{text}"
    );
    assert!(
        text.contains("mingus_job_duration_seconds_bucket{"),
        "{text}"
    );
    assert!(
        text.contains("mingus_queue_waiting{queue=\"bench\"}"),
        "{text}"
    );
    // The same listener answers the probes a supervisor or load balancer asks.
    for path in ["/health/live", "/health/ready"] {
        let response = client
            .get(format!("http://{addr}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["status"], "healthy", "{path}: {body}");
        assert_eq!(body["service"], "mingus-worker", "{path}: {body}");
    }
}
