//! `mingus-load`: the acceptance load test of issue 23. See docs/load-test.md.

mod args;
mod database;
mod html;
mod platform;
mod rates;
mod run;
mod sampler;
mod scenarios;
mod stripe_stream;
mod summary;
mod timeline;

use std::path::Path;

use anyhow::Context;
use clap::Parser;
use serde_json::json;

use crate::args::Args;
use crate::platform::Platform;
use crate::summary::Summary;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.report_dir)
        .with_context(|| format!("create {}", args.report_dir.display()))?;
    if args.find_capacity {
        find_capacity(&args).await
    } else {
        single(&args).await
    }
}

/// One run at --users.
async fn single(args: &Args) -> anyhow::Result<()> {
    let users = args.users as usize;
    let summary = with_platform(args, users).await?;
    write(&args.report_dir, "", &summary)?;
    print_verdicts(&summary);
    Ok(())
}

/// Starts the platform for `users`, runs, and always stops it (database dropped, processes ended).
async fn with_platform(args: &Args, users: usize) -> anyhow::Result<Summary> {
    eprintln!("mingus-load: preparing {users} users and the platform");
    let mut platform = Platform::start(args, users).await?;
    eprintln!(
        "mingus-load: {} ready; running for {:?}",
        platform.base_url, args.duration
    );
    // Ctrl-C or SIGTERM still ends the processes and drops the database before exiting.
    let result = tokio::select! {
        result = run::run(args, &platform, users) => result,
        _ = interrupted() => Err(anyhow::anyhow!("interrupted: the run was stopped before it ended")),
    };
    platform.stop().await;
    result
}

async fn interrupted() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        },
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn passes_capacity(summary: &Summary) -> bool {
    summary.requests > 0 && summary.p95_ms <= 200 && summary.error_rate <= 0.001
}

/// Doubles the users from --users, at most --max-steps runs, until p95 > 200 ms or errors > 0.1 %.
async fn find_capacity(args: &Args) -> anyhow::Result<()> {
    let mut users = args.users as usize;
    let mut steps = Vec::new();
    let mut largest_passing = None;
    for step in 0..args.max_steps {
        let summary = with_platform(args, users).await?;
        write(&args.report_dir, &format!("step{step}-"), &summary)?;
        let pass = passes_capacity(&summary);
        steps.push(
            json!({"users": users, "p95_ms": summary.p95_ms, "error_rate": summary.error_rate,
                          "throughput_per_sec": summary.throughput_per_sec, "pass": pass}),
        );
        eprintln!(
            "mingus-load: {users} users: p95 {} ms, errors {:.3} % → {}",
            summary.p95_ms,
            summary.error_rate * 100.0,
            if pass { "pass" } else { "fail" }
        );
        if !pass {
            break;
        }
        largest_passing = Some(users);
        users *= 2;
    }
    let capacity = json!({"largest_passing_users": largest_passing, "criterion": "p95 <= 200 ms and errors <= 0.1 %", "steps": steps});
    std::fs::write(
        args.report_dir.join("capacity.json"),
        serde_json::to_string_pretty(&capacity)?,
    )?;
    println!("{}", serde_json::to_string_pretty(&capacity)?);
    Ok(())
}

fn write(dir: &Path, prefix: &str, summary: &Summary) -> anyhow::Result<()> {
    std::fs::write(
        dir.join(format!("{prefix}summary.json")),
        serde_json::to_string_pretty(summary)?,
    )?;
    std::fs::write(
        dir.join(format!("{prefix}report.html")),
        html::render(summary),
    )?;
    Ok(())
}

fn print_verdicts(summary: &Summary) {
    println!(
        "{} users, {} s: {} requests ({:.1}/s), {} errors, p95 {} ms, p99 {} ms",
        summary.users,
        summary.duration_secs,
        summary.requests,
        summary.throughput_per_sec,
        summary.errors,
        summary.p95_ms,
        summary.p99_ms
    );
    for check in summary.seed_checks.iter().chain(&summary.issue_checks) {
        println!(
            "  {:<32} {:<13} {:<28} {}",
            check.name, check.target, check.measured, check.verdict
        );
    }
}
