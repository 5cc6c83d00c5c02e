//! The JSON summary: per endpoint latency percentiles, throughput and errors from Goose's metrics, the
//! database and queue figures, and PASS/FAIL against the seed's three numbers and the issue's targets.

use std::collections::BTreeMap;

use goose::metrics::GooseMetrics;
use serde::Serialize;

use crate::database::{QueueLatency, Statements};
use crate::rates::Allocation;
use crate::sampler::ProcessSeries;
use crate::timeline::Point;

#[derive(Debug, Clone, Serialize)]
pub struct Endpoint {
    pub name: String,
    pub requests: usize,
    pub errors: usize,
    pub p50_ms: usize,
    pub p95_ms: usize,
    pub p99_ms: usize,
    pub max_ms: usize,
    pub status_codes: BTreeMap<u16, usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub target: String,
    pub measured: String,
    /// "PASS", "FAIL" or "NOT MEASURED".
    pub verdict: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub users: usize,
    pub pace: f64,
    pub duration_secs: usize,
    pub allocation: Allocation,
    pub target: String,
    pub machine: String,
    pub requests: usize,
    pub errors: usize,
    pub error_rate: f64,
    pub throughput_per_sec: f64,
    pub p95_ms: usize,
    pub p99_ms: usize,
    pub endpoints: Vec<Endpoint>,
    /// Goose iterations per scenario: ticks, each of which calls with probability tick ÷ mean wait (the
    /// requests per scenario are in `endpoints`: each scenario has endpoints of its own).
    pub scenario_ticks: BTreeMap<String, usize>,
    pub reports_requested: usize,
    pub reports_ready: usize,
    pub database: Statements,
    /// `stripe_events` by status at the end (the stream's events as the worker left them).
    pub stripe_events: BTreeMap<String, i64>,
    pub queues: Vec<QueueLatency>,
    pub seed_checks: Vec<Check>,
    pub issue_checks: Vec<Check>,
    pub timeline: Vec<Point>,
    pub processes: Vec<ProcessSeries>,
}

/// Percentile of a Goose histogram (response time in ms → count).
fn histogram_percentile(times: &BTreeMap<usize, usize>, total: usize, q: f64) -> usize {
    let wanted = ((q * total as f64).ceil() as usize).max(1);
    let mut seen = 0;
    for (ms, count) in times {
        seen += count;
        if seen >= wanted {
            return *ms;
        }
    }
    times.keys().next_back().copied().unwrap_or(0)
}

pub fn endpoints(metrics: &GooseMetrics) -> (Vec<Endpoint>, BTreeMap<usize, usize>) {
    let mut all = BTreeMap::new();
    let mut list: Vec<Endpoint> = metrics
        .requests
        .iter()
        .map(|(key, aggregate)| {
            let data = &aggregate.raw_data;
            for (ms, count) in &data.times {
                *all.entry(*ms).or_insert(0) += count;
            }
            Endpoint {
                name: key.clone(),
                requests: aggregate.success_count + aggregate.fail_count,
                errors: aggregate.fail_count,
                p50_ms: histogram_percentile(&data.times, data.counter, 0.50),
                p95_ms: histogram_percentile(&data.times, data.counter, 0.95),
                p99_ms: histogram_percentile(&data.times, data.counter, 0.99),
                max_ms: data.maximum_time,
                status_codes: aggregate
                    .status_code_counts
                    .iter()
                    .map(|(k, v)| (*k, *v))
                    .collect(),
            }
        })
        .collect();
    list.sort_by(|a, b| a.name.cmp(&b.name));
    (list, all)
}

pub fn overall_percentile(all: &BTreeMap<usize, usize>, q: f64) -> usize {
    histogram_percentile(all, all.values().sum(), q)
}

fn check(name: &str, target: &str, measured: String, pass: Option<bool>) -> Check {
    let verdict = match pass {
        Some(true) => "PASS",
        Some(false) => "FAIL",
        None => "NOT MEASURED",
    };
    Check {
        name: name.into(),
        target: target.into(),
        measured,
        verdict,
    }
}

/// The seed's three numbers, and the issue's tighter ones (ten times better, every endpoint).
pub fn verdicts(summary: &Summary, all: &BTreeMap<usize, usize>) -> (Vec<Check>, Vec<Check>) {
    let under = |limit: usize| -> f64 {
        let total: usize = all.values().sum();
        if total == 0 {
            return 0.0;
        }
        all.range(..limit).map(|(_, c)| c).sum::<usize>() as f64 / total as f64
    };
    let db = match &summary.database {
        Statements::Measured {
            share_under_100ms,
            p95_mean_ms,
            ..
        } => Some((*share_under_100ms, *p95_mean_ms)),
        Statements::NotAvailable { .. } => None,
    };
    let share_200 = under(200);
    let seed = vec![
        check(
            "95 % of requests < 200 ms",
            "≥ 95 %",
            format!("{:.2} % (p95 {} ms)", share_200 * 100.0, summary.p95_ms),
            Some(summary.requests > 0 && share_200 >= 0.95),
        ),
        check(
            "95 % of queries < 100 ms",
            "≥ 95 %",
            db.map_or("not available".into(), |d| format!("{:.2} %", d.0 * 100.0)),
            db.map(|d| d.0 >= 0.95),
        ),
        check(
            "error rate < 0.1 %",
            "< 0.1 %",
            format!("{:.3} %", summary.error_rate * 100.0),
            Some(summary.requests > 0 && summary.error_rate < 0.001),
        ),
    ];
    let worst_p95 = summary
        .endpoints
        .iter()
        .map(|e| e.p95_ms)
        .max()
        .unwrap_or(0);
    let worst_p99 = summary
        .endpoints
        .iter()
        .map(|e| e.p99_ms)
        .max()
        .unwrap_or(0);
    let issue = vec![
        check(
            "every endpoint p95 ≤ 20 ms",
            "≤ 20 ms",
            format!("worst {worst_p95} ms"),
            Some(summary.requests > 0 && worst_p95 <= 20),
        ),
        check(
            "every endpoint p99 ≤ 50 ms",
            "≤ 50 ms",
            format!("worst {worst_p99} ms"),
            Some(summary.requests > 0 && worst_p99 <= 50),
        ),
        check(
            "database p95 ≤ 5 ms",
            "≤ 5 ms",
            db.map_or("not available".into(), |d| format!("{:.2} ms", d.1)),
            db.map(|d| d.1 <= 5.0),
        ),
        check(
            "0 errors",
            "0",
            summary.errors.to_string(),
            Some(summary.requests > 0 && summary.errors == 0),
        ),
    ];
    (seed, issue)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_percentiles() {
        let times: BTreeMap<usize, usize> = [(1, 90), (10, 5), (300, 5)].into();
        assert_eq!(histogram_percentile(&times, 100, 0.5), 1);
        assert_eq!(histogram_percentile(&times, 100, 0.95), 10);
        assert_eq!(histogram_percentile(&times, 100, 0.99), 300);
    }
}
