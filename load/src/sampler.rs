//! CPU and resident memory of the processes we started (and of the load generator itself), read from
//! `/proc/<pid>/stat` and `/proc/<pid>/status` every second while the run lasts.

use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;

#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub t_secs: f64,
    /// Percent of one core since the previous sample.
    pub cpu_percent: f64,
    pub rss_mb: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProcessSeries {
    pub name: String,
    pub pid: u32,
    pub samples: Vec<Sample>,
}

/// Clock ticks per second of `/proc/<pid>/stat`; 100 on every Linux we run on (USER_HZ).
const TICKS_PER_SEC: f64 = 100.0;

fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: fields are counted after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Samples `processes` once a second until `stop` changes (and at most `limit`).
pub async fn run(
    processes: Vec<(String, u32)>,
    mut stop: watch::Receiver<bool>,
    limit: Duration,
) -> Vec<ProcessSeries> {
    let started = Instant::now();
    let mut series: Vec<ProcessSeries> = processes
        .iter()
        .map(|(name, pid)| ProcessSeries {
            name: name.clone(),
            pid: *pid,
            samples: Vec::new(),
        })
        .collect();
    let mut last: Vec<Option<(u64, Instant)>> = processes
        .iter()
        .map(|(_, pid)| cpu_ticks(*pid).map(|t| (t, Instant::now())))
        .collect();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    while started.elapsed() < limit {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        for (i, one) in series.iter_mut().enumerate() {
            let (Some(ticks), Some(rss)) = (cpu_ticks(one.pid), rss_kb(one.pid)) else {
                continue;
            };
            let now = Instant::now();
            let cpu_percent = match last[i] {
                Some((before, at)) => {
                    (ticks.saturating_sub(before) as f64 / TICKS_PER_SEC)
                        / now.duration_since(at).as_secs_f64()
                        * 100.0
                }
                None => 0.0,
            };
            last[i] = Some((ticks, now));
            one.samples.push(Sample {
                t_secs: started.elapsed().as_secs_f64(),
                cpu_percent,
                rss_mb: rss as f64 / 1024.0,
            });
        }
    }
    series
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_process_has_cpu_time_and_memory() {
        let pid = std::process::id();
        let spin = Instant::now();
        let mut x = 0u64;
        while spin.elapsed() < Duration::from_millis(50) {
            x = x.wrapping_add(1);
        }
        assert!(x > 0);
        assert!(cpu_ticks(pid).is_some());
        assert!(
            rss_kb(pid).unwrap() > 1000,
            "a test binary is larger than 1 MB resident"
        );
    }
}
