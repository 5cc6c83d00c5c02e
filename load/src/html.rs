//! The report page: one self-contained HTML file (inline SVG and CSS, nothing fetched: the network may
//! be closed), with the verdicts, the endpoint table and the charts over time. A few lines of inline
//! script count the charts the browser actually laid out (a series with a non-empty box) into
//! `body[data-charts-drawn]`, so a headless browser can tell a drawn page from a broken one.

use std::fmt::Write;

use crate::summary::{Check, Summary};

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 200.0;
const PAD: f64 = 40.0;
const COLOURS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf",
];

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A line chart of several series of (x, y) points, axes labelled with their maxima.
fn line_chart(id: &str, title: &str, unit: &str, series: &[(String, Vec<(f64, f64)>)]) -> String {
    let x_max = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.0))
        .fold(1.0_f64, f64::max);
    let y_max = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.1))
        .fold(1.0_f64, f64::max)
        * 1.1;
    let x = |v: f64| PAD + v / x_max * (WIDTH - 2.0 * PAD);
    let y = |v: f64| HEIGHT - PAD + -(v / y_max) * (HEIGHT - 2.0 * PAD);
    let mut svg = format!(
        r#"<figure><figcaption>{title}</figcaption><svg class="chart" data-chart="{id}" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{title}">"#
    );
    let _ = write!(
        svg,
        r##"<line x1="{PAD}" y1="{b}" x2="{r}" y2="{b}" stroke="#888"/><line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{b}" stroke="#888"/><text x="4" y="{PAD}" font-size="10">{ymax:.0} {unit}</text><text x="{r}" y="{t}" font-size="10" text-anchor="end">{x_max:.0} s</text>"##,
        b = HEIGHT - PAD,
        r = WIDTH - PAD,
        t = HEIGHT - PAD + 14.0,
        ymax = y_max
    );
    for (i, (name, points)) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let path: Vec<String> = points
            .iter()
            .map(|(px, py)| format!("{:.1},{:.1}", x(*px), y(*py)))
            .collect();
        let _ = write!(
            svg,
            r#"<polyline class="series" fill="none" stroke="{colour}" stroke-width="1.5" points="{}"/><text x="{}" y="{}" font-size="10" fill="{colour}">{}</text>"#,
            path.join(" "),
            PAD + 4.0 + 110.0 * i as f64,
            PAD - 8.0,
            escape(name)
        );
    }
    svg.push_str("</svg></figure>");
    svg
}

/// A bar chart (one bar per label).
fn bar_chart(id: &str, title: &str, unit: &str, bars: &[(String, f64)]) -> String {
    let y_max = bars.iter().map(|b| b.1).fold(1.0_f64, f64::max) * 1.1;
    let slot = (WIDTH - 2.0 * PAD) / bars.len().max(1) as f64;
    let mut svg = format!(
        r##"<figure><figcaption>{title}</figcaption><svg class="chart" data-chart="{id}" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{title}"><line x1="{PAD}" y1="{b}" x2="{r}" y2="{b}" stroke="#888"/>"##,
        b = HEIGHT - PAD,
        r = WIDTH - PAD
    );
    for (i, (label, value)) in bars.iter().enumerate() {
        let h = (value / y_max * (HEIGHT - 2.0 * PAD)).max(1.0);
        let left = PAD + slot * i as f64 + slot * 0.15;
        let _ = write!(
            svg,
            r##"<rect class="series" x="{left:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="#1f77b4"/><text x="{:.1}" y="{:.1}" font-size="10" text-anchor="middle">{} ({value:.0} {unit})</text>"##,
            HEIGHT - PAD - h,
            slot * 0.7,
            left + slot * 0.35,
            HEIGHT - PAD + 14.0,
            escape(label)
        );
    }
    svg.push_str("</svg></figure>");
    svg
}

fn checks_table(title: &str, checks: &[Check]) -> String {
    let mut html = format!(
        "<h2>{title}</h2><table><tr><th>check</th><th>target</th><th>measured</th><th>verdict</th></tr>"
    );
    for c in checks {
        let _ = write!(
            html,
            r#"<tr><td>{}</td><td>{}</td><td>{}</td><td class="{}">{}</td></tr>"#,
            escape(&c.name),
            escape(&c.target),
            escape(&c.measured),
            c.verdict.to_lowercase().replace(' ', "-"),
            c.verdict
        );
    }
    html.push_str("</table>");
    html
}

pub fn render(summary: &Summary) -> String {
    let t = &summary.timeline;
    let pick = |f: fn(&crate::timeline::Point) -> f64| {
        t.iter()
            .map(|p| (p.t_secs as f64, f(p)))
            .collect::<Vec<_>>()
    };
    let mut charts = vec![
        line_chart(
            "latency",
            "Latency percentiles over time (all endpoints)",
            "ms",
            &[
                ("p50".into(), pick(|p| p.p50_ms as f64)),
                ("p95".into(), pick(|p| p.p95_ms as f64)),
                ("p99".into(), pick(|p| p.p99_ms as f64)),
            ],
        ),
        line_chart(
            "throughput",
            "Throughput",
            "req/s",
            &[("requests/s".into(), pick(|p| p.requests_per_sec))],
        ),
        line_chart(
            "errors",
            "Errors per window",
            "errors",
            &[("errors".into(), pick(|p| p.errors as f64))],
        ),
    ];
    let cpu: Vec<(String, Vec<(f64, f64)>)> = summary
        .processes
        .iter()
        .map(|p| {
            (
                p.name.clone(),
                p.samples
                    .iter()
                    .map(|s| (s.t_secs, s.cpu_percent))
                    .collect(),
            )
        })
        .collect();
    let rss: Vec<(String, Vec<(f64, f64)>)> = summary
        .processes
        .iter()
        .map(|p| {
            (
                p.name.clone(),
                p.samples.iter().map(|s| (s.t_secs, s.rss_mb)).collect(),
            )
        })
        .collect();
    charts.push(line_chart(
        "cpu",
        "CPU per process (% of one core)",
        "%",
        &cpu,
    ));
    charts.push(line_chart("rss", "Resident memory per process", "MB", &rss));
    let queues: Vec<(String, f64)> = summary
        .queues
        .iter()
        .map(|q| (q.queue.clone(), q.p95_ms))
        .collect();
    charts.push(bar_chart("queues", "Queue enqueue→done p95", "ms", &queues));

    let mut endpoints = String::from(
        "<table><tr><th>endpoint</th><th>requests</th><th>errors</th><th>p50</th><th>p95</th><th>p99</th><th>max</th><th>status codes</th></tr>",
    );
    for e in &summary.endpoints {
        let _ = write!(
            endpoints,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&e.name),
            e.requests,
            e.errors,
            e.p50_ms,
            e.p95_ms,
            e.p99_ms,
            e.max_ms,
            escape(&format!("{:?}", e.status_codes))
        );
    }
    endpoints.push_str("</table>");
    let database = escape(&serde_json::to_string(&summary.database).unwrap_or_default());
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Mingus load test: {users} users</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:70em}}table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:2px 6px;text-align:right}}td:first-child{{text-align:left}}.pass{{color:#2a2}}.fail{{color:#c22}}figure{{display:inline-block;margin:1em}}figcaption{{font-weight:bold}}</style></head>
<body><h1>Mingus load test: {users} users, {duration} s, pace {pace}</h1>
<p>Target: {target}. Machine: {machine}.</p>
<p>{requests} requests, {errors} errors ({rate:.3} %), {tput:.1} requests/s, p95 {p95} ms, p99 {p99} ms; reports requested {rr}, ready {rd}.</p>
{seed}{issue}
<h2>Charts</h2>{charts}
<h2>Endpoints</h2>{endpoints}
<h2>Database statements</h2><p><code>{database}</code></p>
<script>
document.body.dataset.chartsDrawn = [...document.querySelectorAll('svg.chart')].filter(chart =>
  [...chart.querySelectorAll('.series')].some(s => {{ const b = s.getBBox(); return b.width > 0 || b.height > 0; }})).length;
</script>
</body></html>
"#,
        users = summary.users,
        duration = summary.duration_secs,
        pace = summary.pace,
        target = escape(&summary.target),
        machine = escape(&summary.machine),
        requests = summary.requests,
        errors = summary.errors,
        rate = summary.error_rate * 100.0,
        tput = summary.throughput_per_sec,
        p95 = summary.p95_ms,
        p99 = summary.p99_ms,
        rr = summary.reports_requested,
        rd = summary.reports_ready,
        seed = checks_table("The seed's numbers", &summary.seed_checks),
        issue = checks_table("Issue 23's targets", &summary.issue_checks),
        charts = charts.join("\n"),
    )
}
