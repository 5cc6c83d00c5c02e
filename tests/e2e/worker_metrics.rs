//! A worker process serves Prometheus metrics of the jobs it ran (one `mingus_jobs_total` by outcome,
//! with HELP text), its process metrics and build, and its health probes. Queue depths are the API's.

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
        "metrics with two succeeded jobs and a dead one",
        || async {
            let text = client.get(&url).send().await.ok()?.text().await.ok()?;
            let count = |outcome: &str| {
                text.lines().any(|l| {
                    l.starts_with("mingus_jobs_total{")
                        && l.contains("queue=\"bench\"")
                        && l.contains(&format!("outcome=\"{outcome}\""))
                        && l.ends_with(if outcome == "dead" { " 1" } else { " 2" })
                })
            };
            (count("succeeded") && count("dead")).then_some(text)
        },
    )
    .await;
    assert!(
        !text.contains("outcome=\"retried\""),
        "a permanent failure is not retried: {text}"
    );
    assert!(text.contains("# HELP mingus_jobs_total "), "{text}");
    assert!(
        text.contains("mingus_job_duration_seconds_bucket{"),
        "{text}"
    );
    assert!(
        !text.contains("mingus_queue_waiting"),
        "queue depths come from the API alone: {text}"
    );
    for line in [
        "process_resident_memory_bytes ",
        "process_cpu_seconds_total ",
        "process_open_fds ",
    ] {
        assert!(text.lines().any(|l| l.starts_with(line)), "{line}: {text}");
    }
    assert!(
        text.contains("mingus_build_info{service=\"mingus-worker\",version=\""),
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
