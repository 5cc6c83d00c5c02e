//! The raw Redis baseline: `redis-benchmark -t lpush,rpop -n 200000 -c 50 -q` against the same server.

use std::process::{Command, Stdio};

/// Requests per second of LPUSH and RPOP, or why there are none.
pub struct Baseline {
    pub lpush: f64,
    pub rpop: f64,
}

pub fn run(redis_url: &str) -> Result<Baseline, String> {
    let (host, port) = host_port(redis_url);
    let output = Command::new("redis-benchmark")
        .args(["-h", &host, "-p", &port.to_string()])
        .args(["-t", "lpush,rpop", "-n", "200000", "-c", "50", "-q"])
        .stdin(Stdio::null())
        .output()
        .map_err(|err| {
            format!("redis-benchmark not runnable ({err}); install it with `apt-get install redis-tools`")
        })?;
    if !output.status.success() {
        return Err(format!(
            "redis-benchmark failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let lpush = parse(&text, "LPUSH").ok_or("no LPUSH figure in redis-benchmark output")?;
    let rpop = parse(&text, "RPOP").ok_or("no RPOP figure in redis-benchmark output")?;
    Ok(Baseline { lpush, rpop })
}

fn host_port(url: &str) -> (String, u16) {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    match host_port.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() => (host.to_owned(), port.parse().unwrap_or(6379)),
        _ if host_port.is_empty() => ("127.0.0.1".to_owned(), 6379),
        _ => (host_port.to_owned(), 6379),
    }
}

/// `LPUSH: 61050.06 requests per second, p50=0.415 msec` (progress lines end in `\r`).
fn parse(text: &str, command: &str) -> Option<f64> {
    text.split(['\r', '\n'])
        .filter_map(|line| line.trim().strip_prefix(command)?.strip_prefix(':'))
        .filter(|rest| rest.contains("requests per second"))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .next_back()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_quiet_output_and_urls() {
        let text = "LPUSH: rps=0.0 (overall: nan) avg_msec=nan (overall: nan)\r\
                    LPUSH: 61050.06 requests per second, p50=0.415 msec\n\
                    RPOP: 58823.53 requests per second, p50=0.423 msec\n";
        assert_eq!(parse(text, "LPUSH"), Some(61050.06));
        assert_eq!(parse(text, "RPOP"), Some(58823.53));
        assert_eq!(
            host_port("redis://127.0.0.1:6380/0"),
            ("127.0.0.1".into(), 6380)
        );
        assert_eq!(host_port("redis://localhost"), ("localhost".into(), 6379));
    }
}
