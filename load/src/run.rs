//! One measured run: the users attack for the duration while the sampler watches the processes; then
//! the database and the ledger are read and the summary is built.

use std::sync::atomic::Ordering;
use std::time::Duration;

use goose::config::{GooseConfiguration, GooseDefault, GooseDefaultType as _};
use goose::prelude::*;
use gumdrop::Options;
use tokio::sync::watch;

use crate::args::Args;
use crate::database;
use crate::platform::Platform;
use crate::rates::Allocation;
use crate::sampler;
use crate::scenarios;
use crate::summary::{self, Summary};
use crate::timeline;

/// What the machine was doing, for the report: load average and the core count.
fn machine_state() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "{cores} cores, load average {} at the end of the run",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    )
}

pub async fn run(args: &Args, platform: &Platform, users: usize) -> anyhow::Result<Summary> {
    let allocation = Allocation::for_users(users);
    let shared = scenarios::install(
        platform.population.clone(),
        platform.secrets.clone(),
        args.pace,
    );
    // Goose reads its own command line unless given a configuration: ours is clap's, so it gets none.
    let configuration = GooseConfiguration::parse_args_default::<&str>(&[])
        .map_err(|e| anyhow::anyhow!("goose configuration: {e}"))?;
    let mut attack = GooseAttack::initialize_with_config(configuration)?;
    for scenario in scenarios::all(&allocation, users, args.pace)? {
        attack = attack.register_scenario(scenario);
    }
    let attack = attack
        .set_default(GooseDefault::Host, platform.base_url.as_str())?
        .set_default(GooseDefault::Users, allocation.total())?
        .set_default(
            GooseDefault::HatchRate,
            args.hatch_rate.to_string().as_str(),
        )?
        .set_default(GooseDefault::RunTime, args.duration.as_secs() as usize)?
        .set_default(GooseDefault::NoTelnet, true)?
        .set_default(GooseDefault::NoWebSocket, true)?
        .set_default(GooseDefault::NoPrintMetrics, true)?
        .set_default(GooseDefault::Quiet, 1)?
        // Keep what happens while users start (API keys are created then), as the timeline does.
        .set_default(GooseDefault::NoResetMetrics, true)?
        .set_default(GooseDefault::Timeout, "30")?;
    let mut watched = platform.processes.clone();
    watched.push(("mingus-load".into(), std::process::id()));
    let (stop, stopped) = watch::channel(false);
    let limit = args.duration + Duration::from_secs(600);
    let sampling = tokio::spawn(sampler::run(watched, stopped, limit));
    let before = database::snapshot(&platform.pool).await;
    let since = chrono::Utc::now();
    timeline::start();
    let metrics = attack.execute().await?;
    let points = timeline::finish();
    let _ = stop.send(true);
    let processes = sampling.await?;
    let statements = match (before, database::snapshot(&platform.pool).await) {
        (Ok(before), Ok(after)) => database::delta(&before, &after),
        (Err(reason), _) | (_, Err(reason)) => database::Statements::NotAvailable { reason },
    };
    let queues = database::queue_latency(&platform.pool, since).await?;
    let (endpoints, all) = summary::endpoints(&metrics);
    let requests: usize = endpoints.iter().map(|e| e.requests).sum();
    let errors: usize = endpoints.iter().map(|e| e.errors).sum();
    let duration_secs = metrics.duration.max(1);
    let mut summary = Summary {
        users,
        pace: args.pace,
        duration_secs,
        allocation,
        target: platform.base_url.clone(),
        machine: machine_state(),
        requests,
        errors,
        error_rate: if requests == 0 {
            0.0
        } else {
            errors as f64 / requests as f64
        },
        throughput_per_sec: requests as f64 / duration_secs as f64,
        p95_ms: summary::overall_percentile(&all, 0.95),
        p99_ms: summary::overall_percentile(&all, 0.99),
        endpoints,
        scenario_ticks: metrics
            .scenarios
            .iter()
            .map(|s| (s.name.clone(), s.counter))
            .collect(),
        reports_requested: shared.reports_requested.load(Ordering::Relaxed),
        reports_ready: shared.reports_ready.load(Ordering::Relaxed),
        database: statements,
        stripe_events: database::stripe_outcomes(&platform.pool).await?,
        queues,
        seed_checks: Vec::new(),
        issue_checks: Vec::new(),
        timeline: points,
        processes,
    };
    let (seed, issue) = summary::verdicts(&summary, &all);
    summary.seed_checks = seed;
    summary.issue_checks = issue;
    Ok(summary)
}
