//! Prometheus metrics of the API: HTTP requests by matched route template, and the queue gauges sampled
//! when `/metrics` is scraped.
//!
//! Each [`AppState`] owns its recorder and records through it (`metrics::with_local_recorder`), never
//! through the process-global one: tests run many API instances in one process, and a global recorder
//! can be installed only once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use mingus_common::queue::Queue;

use crate::ops::queues::{dead_counts, redis_depths};
use crate::state::AppState;

const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Histogram samples are folded into their buckets on a scrape or on upkeep; upkeep runs every this many
/// requests so an API nobody scrapes does not accumulate samples.
const UPKEEP_EVERY: u64 = 4_096;

/// How long a scrape waits for Redis and PostgreSQL before it renders without the queue gauges.
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(2);

pub struct ApiMetrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    requests: AtomicU64,
}

impl ApiMetrics {
    pub fn new() -> Arc<Self> {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("mingus_http_request_duration_seconds".into()),
                DURATION_BUCKETS,
            )
            .expect("the bucket list is not empty")
            .build_recorder();
        let handle = recorder.handle();
        let metrics = ApiMetrics {
            recorder,
            handle,
            requests: AtomicU64::new(0),
        };
        metrics.with(|| {
            metrics::describe_counter!(
                "mingus_http_requests_total",
                "HTTP requests by matched route template, method and status"
            );
            metrics::describe_histogram!(
                "mingus_http_request_duration_seconds",
                metrics::Unit::Seconds,
                "HTTP request latency by matched route template"
            );
            metrics::describe_gauge!("mingus_queue_waiting", "Jobs waiting in the active list");
            metrics::describe_gauge!(
                "mingus_queue_delayed",
                "Jobs scheduled for later (retries, run-at, paused)"
            );
            metrics::describe_gauge!("mingus_queue_dead", "Open dead letters");
            metrics::describe_gauge!(
                "mingus_queue_oldest_age_seconds",
                "Age of the oldest waiting job"
            );
            metrics::describe_gauge!(
                "mingus_queue_paused",
                "1 while an operator has paused the queue"
            );
        });
        Arc::new(metrics)
    }

    /// Runs `f` with this instance's recorder as the recorder of the `metrics` macros.
    fn with<T>(&self, f: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(&self.recorder, f)
    }

    fn request_finished(&self, route: String, method: String, status: u16, elapsed: Duration) {
        self.with(|| {
            let labels = [
                ("route", route.clone()),
                ("method", method),
                ("status", status.to_string()),
            ];
            metrics::counter!("mingus_http_requests_total", &labels).increment(1);
            metrics::histogram!("mingus_http_request_duration_seconds", "route" => route)
                .record(elapsed.as_secs_f64());
        });
        if self.requests.fetch_add(1, Ordering::Relaxed) % UPKEEP_EVERY == UPKEEP_EVERY - 1 {
            self.handle.run_upkeep();
        }
    }
}

/// Middleware: counts and times every request under its route template (`/ops/jobs/{job_id}`, never the
/// raw path, which would make one series per job id). Unmatched paths share one label.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    state
        .metrics
        .request_finished(route, method, response.status().as_u16(), started.elapsed());
    response
}

/// `GET /metrics`: the Prometheus text format; queue gauges are sampled now (bounded), and left out when
/// Redis or PostgreSQL does not answer in time.
pub async fn render(State(state): State<AppState>) -> Response {
    let sample = async {
        let depths = redis_depths(&state.enqueuer).await;
        let dead = dead_counts(&state.db).await;
        (depths, dead)
    };
    match tokio::time::timeout(SAMPLE_TIMEOUT, sample).await {
        Ok((depths, dead)) => state.metrics.with(|| {
            if let Ok(depths) = depths {
                let now_ms = chrono::Utc::now().timestamp_millis();
                for depth in depths {
                    let queue = depth.queue.name();
                    metrics::gauge!("mingus_queue_waiting", "queue" => queue)
                        .set(depth.waiting as f64);
                    metrics::gauge!("mingus_queue_delayed", "queue" => queue)
                        .set(depth.delayed as f64);
                    metrics::gauge!("mingus_queue_paused", "queue" => queue).set(if depth.paused {
                        1.0
                    } else {
                        0.0
                    });
                    let age = depth
                        .oldest_pushed_ms
                        .map(|ms| (now_ms - ms).max(0) as f64 / 1000.0)
                        .unwrap_or(0.0);
                    metrics::gauge!("mingus_queue_oldest_age_seconds", "queue" => queue).set(age);
                }
            }
            if let Ok(dead) = dead {
                for queue in Queue::ALL {
                    let count = dead.get(&queue).copied().unwrap_or(0);
                    metrics::gauge!("mingus_queue_dead", "queue" => queue.name()).set(count as f64);
                }
            }
        }),
        Err(_) => tracing::warn!("queue gauges not sampled: Redis or PostgreSQL too slow"),
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.handle.render() + &mingus_common::process_metrics::render("mingus-api"),
    )
        .into_response()
}
