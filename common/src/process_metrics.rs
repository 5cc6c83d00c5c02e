//! The `process_*` metrics Prometheus client libraries export (CPU, memory, file descriptors, start
//! time) and `mingus_build_info`, appended to every process's `/metrics`. Read from `/proc/self` when
//! scraped; on a system without it only the build info is written.

use std::fmt::Write;

/// Clock ticks per second of `/proc/self/stat`'s CPU times: `sysconf(_SC_CLK_TCK)`, which is 100 on
/// every Linux architecture we run on (asking libc would need `unsafe`, which our crates forbid).
const CLOCK_TICKS: f64 = 100.0;

/// The Prometheus text of the process and build metrics of `service` (e.g. `mingus-worker`).
pub fn render(service: &str) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: f64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    };
    if let Some(stat) = Stat::read() {
        metric(
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            stat.cpu_seconds,
        );
        metric(
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            stat.virtual_bytes,
        );
        if let Some(start) = stat.start_time() {
            metric(
                "process_start_time_seconds",
                "gauge",
                "Start time of the process since unix epoch in seconds.",
                start,
            );
        }
    }
    if let Some(rss) = resident_bytes() {
        metric(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            rss,
        );
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        metric(
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            fds.count() as f64,
        );
    }
    let _ = writeln!(
        out,
        "# HELP mingus_build_info The running build: service and version (always 1).\n\
         # TYPE mingus_build_info gauge\n\
         mingus_build_info{{service=\"{service}\",version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    out
}

/// What `/proc/self/stat` says.
struct Stat {
    cpu_seconds: f64,
    virtual_bytes: f64,
    /// Clock ticks after boot.
    start_ticks: f64,
}

impl Stat {
    fn read() -> Option<Stat> {
        Stat::parse(&std::fs::read_to_string("/proc/self/stat").ok()?)
    }

    /// The fields after the command name, which is in parentheses and may itself hold spaces or ')'.
    fn parse(stat: &str) -> Option<Stat> {
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // Numbered as in proc(5), which counts from 1 with pid and comm first: utime is field 14.
        let field = |n: usize| fields.get(n - 3)?.parse::<f64>().ok();
        Some(Stat {
            cpu_seconds: (field(14)? + field(15)?) / CLOCK_TICKS,
            start_ticks: field(22)?,
            virtual_bytes: field(23)?,
        })
    }

    fn start_time(&self) -> Option<f64> {
        let boot = std::fs::read_to_string("/proc/stat").ok()?;
        let btime = boot
            .lines()
            .find_map(|l| l.strip_prefix("btime "))?
            .trim()
            .parse::<f64>()
            .ok()?;
        Some(btime + self.start_ticks / CLOCK_TICKS)
    }
}

/// `VmRSS` of `/proc/self/status`, in bytes (exact, unlike pages × an assumed page size).
fn resident_bytes() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_is_read_past_a_command_name_with_spaces_and_parentheses() {
        let line = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0 \
                    123456 987654321 2500 18446744073709551615";
        let stat = Stat::parse(line).unwrap();
        assert_eq!(stat.cpu_seconds, 3.0, "(250 + 50) ticks at 100 per second");
        assert_eq!(stat.start_ticks, 123_456.0);
        assert_eq!(stat.virtual_bytes, 987_654_321.0);
        assert!(Stat::parse("garbage").is_none());
    }

    #[test]
    fn this_process_reports_its_own_figures_and_the_build() {
        let text = render("mingus-test");
        for name in [
            "process_cpu_seconds_total ",
            "process_resident_memory_bytes ",
            "process_open_fds ",
            "process_start_time_seconds ",
        ] {
            assert!(
                text.lines().any(|l| l.starts_with(name)),
                "{name} in {text}"
            );
        }
        let rss: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            rss > 1_000_000.0,
            "a test process uses more than 1 MB: {rss}"
        );
        assert!(text.contains("mingus_build_info{service=\"mingus-test\",version=\""));
    }
}
