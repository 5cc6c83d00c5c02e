//! `mingus-bench-ingest`: signed Stripe webhooks per second and latency at 64 concurrent connections
//! (verify + store + enqueue), beside the single-row insert TPS `pgbench` reaches on the same database in
//! the same run; with `--via-nginx …` (`deploy/production/ci/bench-proxied.sh`) also through nginx and
//! PgBouncer in every run, and the ratio printed. Release mode: `cargo run --release -p mingus-bench --bin mingus-bench-ingest`.

mod load;
mod setup;

use std::time::Duration;

use clap::Parser;
use mingus_bench::{Figures, ProxyArgs, Scratch, Target, median};

/// The platform's allocator, as every binary's (why: `api/src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    #[command(flatten)]
    proxy: ProxyArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let scratch = setup::create(&args.proxy).await?;
    let result = run(&args, &scratch).await;
    scratch.destroy().await;
    result
}

async fn run(args: &Args, scratch: &Scratch) -> anyhow::Result<()> {
    let mut sides = vec![("", Target::http(&scratch.base_url)?, Figures::default())];
    if args.proxy.enabled() {
        sides[0].1 = args.proxy.start_direct(scratch).await?;
        println!("{}", args.proxy.describe());
        let target = args.proxy.start(scratch).await?;
        sides.push(("via nginx + PgBouncer ", target, Figures::default()));
    }
    let mut pgbench = Vec::new();
    for run in 1..=args.runs {
        let tps = setup::pgbench(
            scratch,
            args.connections,
            Duration::from_secs(args.pgbench_seconds),
        )?;
        pgbench.push(tps);
        print!("run {run}: pgbench {tps:>8.0} tps");
        // The sides take turns going first, so a drift of the machine's load favours neither.
        let count = sides.len();
        for turn in 0..count {
            let side = (turn + run) % count;
            let (label, target, figures) = &mut sides[side];
            let report = load::run(
                scratch,
                target,
                args.events,
                args.connections,
                &format!("{run}_{side}"),
            )
            .await?;
            print!(
                " | ingest {label}{:>8.0} events/s  p50 {:>6.2} ms  p99 {:>6.2} ms ({} errors)",
                report.rate, report.p50_ms, report.p99_ms, report.errors
            );
            anyhow::ensure!(
                report.errors == 0,
                "{} requests failed (first status {:?})",
                report.errors,
                report.first_error
            );
            figures.add(&report);
        }
        println!();
    }
    let tps = median(pgbench);
    let rate = sides[0].2.rate();
    println!();
    println!("| metric (median of {} runs) | value |", args.runs);
    println!("|---|---|");
    println!(
        "| pgbench single-row INSERT, {} clients | {tps:.0} tps |",
        args.connections
    );
    for (label, _, figures) in &sides {
        println!(
            "| webhook ingest {label}(verify + store + enqueue), {} connections | {:.0} events/s |",
            args.connections,
            figures.rate()
        );
    }
    println!("| ingest / pgbench | {:.0}% |", 100.0 * rate / tps);
    for (label, _, figures) in &sides {
        println!(
            "| ingest latency {label}p50 / p99 | {:.2} ms / {:.2} ms |",
            figures.p50(),
            figures.p99()
        );
    }
    if let [_, (_, _, proxied)] = &sides[..] {
        println!(
            "| ingest via nginx + PgBouncer / direct | {:.0}% |",
            100.0 * proxied.rate() / rate
        );
    }
    Ok(())
}
