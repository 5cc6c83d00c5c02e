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
    describe();
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

/// One attempt's end: `mingus_jobs_total{queue, kind, outcome}` (one counter, Oban's and Sidekiq's
/// shape: attempts are its sum, failures the `retried` and `dead` outcomes) and its duration.
pub fn job_finished(queue: &'static str, kind: &str, status: RunStatus, elapsed: Duration) {
    let outcome = match status {
        RunStatus::Succeeded => "succeeded",
        RunStatus::Retrying => "retried",
        RunStatus::Dead => "dead",
    };
    metrics::counter!("mingus_jobs_total", "queue" => queue, "kind" => kind.to_owned(), "outcome" => outcome)
        .increment(1);
    metrics::histogram!("mingus_job_duration_seconds", "queue" => queue, "kind" => kind.to_owned())
        .record(elapsed.as_secs_f64());
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

/// HELP text of the worker's metrics. Queue depths are not among them: the API alone exports those
/// (`mingus_queue_*`, sampled when scraped), so a sum over processes never counts a queue twice.
fn describe() {
    metrics::describe_counter!(
        "mingus_jobs_total",
        "Job attempts finished, by queue, kind and outcome (succeeded, retried, dead)"
    );
    metrics::describe_histogram!(
        "mingus_job_duration_seconds",
        metrics::Unit::Seconds,
        "Job attempt duration by queue and kind"
    );
    metrics::describe_counter!(
        "mingus_emails_total",
        "E-mail jobs by template and outcome (sent, retry, failed, suppressed, skipped)"
    );
}
