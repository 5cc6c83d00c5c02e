//! Prometheus metrics of the workers (served with the probes on `MINGUS_WORKER_METRICS_ADDR`).

use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use mingus_common::jobs::ledger::RunStatus;

const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// Installs the process-wide recorder; the probe listener renders it. Histograms are drained by an
/// upkeep task every five seconds (what the exporter's own listener would do).
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("duration_seconds".into()), DURATION_BUCKETS)?
        .install_recorder()?;
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

pub fn job_finished(queue: &'static str, kind: &str, status: RunStatus, elapsed: Duration) {
    let labels = [("queue", queue.to_owned()), ("kind", kind.to_owned())];
    metrics::counter!("mingus_jobs_processed_total", &labels).increment(1);
    match status {
        RunStatus::Succeeded => {}
        RunStatus::Retrying => {
            metrics::counter!("mingus_jobs_failed_total", &labels).increment(1);
            metrics::counter!("mingus_jobs_retried_total", &labels).increment(1);
        }
        RunStatus::Dead => {
            metrics::counter!("mingus_jobs_failed_total", &labels).increment(1);
            metrics::counter!("mingus_jobs_dead_total", &labels).increment(1);
        }
    }
    metrics::histogram!("mingus_job_duration_seconds", &labels).record(elapsed.as_secs_f64());
}

/// One e-mail job's outcome: `sent`, `retry`, `failed`, `suppressed`, or `skipped` (a duplicate job, a
/// delivery already final).
pub fn email_outcome(template: &str, outcome: &'static str) {
    let labels = [
        ("template", template.to_owned()),
        ("outcome", outcome.to_owned()),
    ];
    metrics::counter!("mingus_emails_total", &labels).increment(1);
}

/// Queue depth and oldest-waiting-job age, sampled by the worker's promoter loop.
pub fn queue_gauges(queue: &'static str, waiting: u64, delayed: u64, oldest_age: Duration) {
    metrics::gauge!("mingus_queue_waiting", "queue" => queue).set(waiting as f64);
    metrics::gauge!("mingus_queue_delayed", "queue" => queue).set(delayed as f64);
    metrics::gauge!("mingus_queue_oldest_age_seconds", "queue" => queue)
        .set(oldest_age.as_secs_f64());
}
