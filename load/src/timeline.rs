//! Requests over time: every response's latency and outcome, in windows of a few seconds, for the
//! report's charts (Goose's own metrics are totals per endpoint).

use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;

/// Width of one window of the charts.
pub const WINDOW_SECS: u64 = 5;

struct Recorder {
    started: Instant,
    windows: Vec<Window>,
}

#[derive(Default, Clone)]
struct Window {
    latencies_ms: Vec<u64>,
    errors: u64,
}

static RECORDER: Mutex<Option<Recorder>> = Mutex::new(None);

/// Starts a new timeline (each run has its own).
pub fn start() {
    *RECORDER.lock().expect("not poisoned") = Some(Recorder {
        started: Instant::now(),
        windows: Vec::new(),
    });
}

pub fn record(_name: &str, latency_ms: u64, ok: bool) {
    let mut guard = RECORDER.lock().expect("not poisoned");
    let Some(recorder) = guard.as_mut() else {
        return;
    };
    let index = (recorder.started.elapsed().as_secs() / WINDOW_SECS) as usize;
    if recorder.windows.len() <= index {
        recorder.windows.resize(index + 1, Window::default());
    }
    let window = &mut recorder.windows[index];
    window.latencies_ms.push(latency_ms);
    if !ok {
        window.errors += 1;
    }
}

/// One window as the report shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    pub t_secs: u64,
    pub requests_per_sec: f64,
    pub errors: u64,
    pub p50_ms: u64,
    pub p95_ms: u64,
    pub p99_ms: u64,
}

/// Ends the timeline and summarises its windows.
pub fn finish() -> Vec<Point> {
    let Some(recorder) = RECORDER.lock().expect("not poisoned").take() else {
        return Vec::new();
    };
    recorder
        .windows
        .into_iter()
        .enumerate()
        .map(|(i, mut window)| {
            window.latencies_ms.sort_unstable();
            Point {
                t_secs: i as u64 * WINDOW_SECS,
                requests_per_sec: window.latencies_ms.len() as f64 / WINDOW_SECS as f64,
                errors: window.errors,
                p50_ms: percentile(&window.latencies_ms, 0.50),
                p95_ms: percentile(&window.latencies_ms, 0.95),
                p99_ms: percentile(&window.latencies_ms, 0.99),
            }
        })
        .collect()
}

/// The nearest-rank percentile of sorted values (0 for none).
pub fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&values, 0.95), 95);
        assert_eq!(percentile(&values, 0.5), 50);
        assert_eq!(percentile(&[7], 0.99), 7);
        assert_eq!(percentile(&[], 0.5), 0);
    }
}
