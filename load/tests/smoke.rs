//! A short run of the real tool against the real platform (PostgreSQL, Redis, api, worker, scheduler):
//! every scenario made requests, nothing failed, the summary has its fields and verdicts, and the
//! report draws its charts in a real headless Chromium. About 40 s: 20 s of load from 40 users at pace
//! 720 (every user calls on every tick) plus set-up.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const CHROMIUM: &str = "/usr/bin/chromium";

fn run_tool(report_dir: &Path) -> Value {
    // The api, worker and scheduler binaries, built once as the other end-to-end tests build them.
    let bin_dir = mingus_tests::binary("mingus-api")
        .parent()
        .expect("a directory")
        .to_path_buf();
    let output = Command::new(env!("CARGO_BIN_EXE_mingus-load"))
        .args([
            "--users",
            "40",
            "--duration",
            "20s",
            // At this pace every user calls on every tick, report sessions included (5 calls × 288 s ÷
            // 720 = one tick): every scenario and each of its endpoints is reached in 20 s, not by luck.
            "--pace",
            "720",
            "--hatch-rate",
            "40",
        ])
        .arg("--bin-dir")
        .arg(&bin_dir)
        .arg("--report-dir")
        .arg(report_dir)
        .env("TEST_DATABASE_URL", mingus_tests::database_server_url())
        .env("TEST_REDIS_URL", mingus_tests::redis_url())
        .output()
        .expect("mingus-load runs");
    assert!(
        output.status.success(),
        "mingus-load failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let text =
        std::fs::read_to_string(report_dir.join("summary.json")).expect("summary.json written");
    serde_json::from_str(&text).expect("summary.json is JSON")
}

/// The page as Chromium laid it out (its DOM after the inline script ran).
fn rendered_dom(page: &Path) -> String {
    assert!(
        Path::new(CHROMIUM).exists(),
        "Chromium is needed: apt-get install chromium (deploy/local/test.sh does)"
    );
    let profile = tempdir("chromium-profile");
    let output = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
        ])
        .args([
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    let _ = std::fs::remove_dir_all(&profile);
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn tempdir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "mingus-load-{what}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_short_run_reaches_every_scenario_without_errors_and_reports_it() {
    let report_dir = tempdir("report");
    let summary = run_tool(&report_dir);

    for scenario in [
        "browser",
        "executive",
        "reporter",
        "checkin",
        "operator",
        "stripe",
    ] {
        let ticks = summary["scenario_ticks"][scenario].as_u64().unwrap_or(0);
        assert!(
            ticks > 0,
            "scenario {scenario} never ran: {}",
            summary["scenario_ticks"]
        );
    }
    // Each scenario's own endpoints (browser: analytics; executive: API keys and the team; reporter:
    // reports; checkin: usage; operator: /ops; stripe: the webhook) were called.
    let endpoints = summary["endpoints"].as_array().expect("endpoints");
    for name in [
        "GET /v1/features",
        "GET /v1/analytics",
        "POST /v1/api-keys",
        "GET /v1/team/members",
        "GET /v1/team/analytics",
        "POST /v1/reports",
        "GET /v1/reports/{id}",
        "POST /v1/usage/{metric}",
        "GET /ops/queues",
        "POST /webhooks/stripe",
    ] {
        let endpoint = endpoints
            .iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("no requests to {name}"));
        assert!(endpoint["requests"].as_u64().unwrap() > 0, "{endpoint}");
        for field in ["p50_ms", "p95_ms", "p99_ms", "max_ms"] {
            assert!(endpoint[field].is_u64(), "{name} has no {field}");
        }
    }
    assert_eq!(
        summary["errors"],
        0,
        "errors: {}",
        serde_json::to_string_pretty(endpoints).unwrap()
    );
    assert!(
        summary["requests"].as_u64().unwrap() > 100,
        "{}",
        summary["requests"]
    );
    assert!(summary["throughput_per_sec"].as_f64().unwrap() > 0.0);
    // Reports went through the worker: requested, generated, downloaded.
    assert!(
        summary["reports_ready"].as_u64().unwrap() > 0,
        "no report became ready"
    );
    assert!(
        summary["queues"]
            .as_array()
            .unwrap()
            .iter()
            .any(|q| q["queue"] == "reports"),
        "{}",
        summary["queues"]
    );
    // The seed's three checks and the issue's four, each with a verdict.
    let verdicts = |key: &str| {
        summary[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["verdict"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(verdicts("seed_checks").len(), 3);
    assert_eq!(verdicts("issue_checks").len(), 4);
    assert_eq!(
        summary["seed_checks"][2]["verdict"], "PASS",
        "error rate check: {}",
        summary["seed_checks"][2]
    );
    assert!(
        ["measured", "not_available"].contains(&summary["database"]["status"].as_str().unwrap())
    );
    // CPU and memory of the three processes and the tool, sampled over time.
    let processes = summary["processes"].as_array().unwrap();
    for name in [
        "mingus-api",
        "mingus-worker",
        "mingus-scheduler",
        "mingus-load",
    ] {
        let series = processes
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no samples of {name}"));
        let samples = series["samples"].as_array().unwrap();
        assert!(samples.len() >= 10, "{name}: {} samples", samples.len());
        assert!(
            samples.iter().all(|s| s["rss_mb"].as_f64().unwrap() > 1.0),
            "{name}"
        );
    }
    assert!(summary["timeline"].as_array().unwrap().len() >= 4);

    let dom = rendered_dom(&report_dir.join("report.html"));
    for chart in ["latency", "throughput", "errors", "cpu", "rss", "queues"] {
        assert!(
            dom.contains(&format!(r#"data-chart="{chart}""#)),
            "chart {chart} missing from the page"
        );
    }
    assert!(
        dom.contains(r#"data-charts-drawn="6""#),
        "Chromium did not draw the six charts: {}",
        dom.lines().find(|l| l.contains("<body")).unwrap_or("")
    );
    let _ = std::fs::remove_dir_all(&report_dir);
}
