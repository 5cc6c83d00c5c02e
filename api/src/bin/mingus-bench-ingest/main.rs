//! `mingus-bench-ingest`: signed Stripe webhooks per second and latency at 64 concurrent connections
//! (verify + store + enqueue), beside the single-row insert TPS `pgbench` reaches on the same database in
//! the same run. Release mode: `cargo run --release -p mingus-api --bin mingus-bench-ingest`.

mod load;
mod setup;

use std::time::Duration;

use clap::Parser;
use mingus_api::bench::median;

#[derive(Debug, Parser)]
#[command(about = "Benchmarks POST /webhooks/stripe against pgbench", version)]
struct Args {
    /// Events per run.
    #[arg(long, default_value_t = 20_000)]
    events: usize,
    /// Concurrent connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Runs (medians are reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Seconds per pgbench run.
    #[arg(long, default_value_t = 10)]
    pgbench_seconds: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let scratch = setup::create().await?;
    let mut pgbench = Vec::new();
    let mut rates = Vec::new();
    let mut p50s = Vec::new();
    let mut p99s = Vec::new();
    let result: anyhow::Result<()> = async {
        for run in 1..=args.runs {
            let tps = setup::pgbench(&scratch, args.connections, Duration::from_secs(args.pgbench_seconds))?;
            let report = load::run(&scratch, args.events, args.connections, run).await?;
            println!(
                "run {run}: pgbench {tps:>8.0} tps | ingest {:>8.0} events/s  p50 {:>6.2} ms  p99 {:>6.2} ms  ({} events, {} errors)",
                report.rate, report.p50_ms, report.p99_ms, report.requests, report.errors
            );
            anyhow::ensure!(report.errors == 0, "{} requests failed", report.errors);
            pgbench.push(tps);
            rates.push(report.rate);
            p50s.push(report.p50_ms);
            p99s.push(report.p99_ms);
        }
        let (tps, rate) = (median(pgbench.clone()), median(rates.clone()));
        println!();
        println!("| metric (median of {} runs) | value |", args.runs);
        println!("|---|---|");
        println!("| pgbench single-row INSERT, {} clients | {tps:.0} tps |", args.connections);
        println!("| webhook ingest (verify + store + enqueue), {} connections | {rate:.0} events/s |", args.connections);
        println!("| ingest / pgbench | {:.0}% |", 100.0 * rate / tps);
        println!("| ingest latency p50 / p99 | {:.2} ms / {:.2} ms |", median(p50s.clone()), median(p99s.clone()));
        Ok(())
    }
    .await;
    scratch.destroy().await;
    result
}
