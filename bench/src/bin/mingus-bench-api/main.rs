//! `mingus-bench-api`: the `/v1` API's throughput and latency at 64 concurrent connections, beside
//! `GET /health/live` (the HTTP floor: no authentication, no database, no Redis) measured the same way
//! in the same run, closed-loop (saturation), then open-loop at `--rate` (10,000/s by default: the
//! latency at the target rate). With `--via-nginx …` (`deploy/production/ci/bench-proxied.sh`),
//! the route is also measured through nginx and PgBouncer in every run, and the ratios printed.
//! Release mode: `cargo run --release -p mingus-bench --bin mingus-bench-api -- features` (or `-- reports`,
//! `-- usage`).

mod features;
mod reports;
mod usage;
mod users;

use clap::{Parser, Subcommand};
use mingus_bench::{Figures, ProxyArgs, Report, Request, Scratch, Target, load};

/// The platform's allocator, as every binary's (why: `api/src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(about = "Benchmarks /v1 routes against GET /health/live", version)]
struct Args {
    #[command(subcommand)]
    route: Route,
    /// Requests per run.
    #[arg(long, default_value_t = 50_000, global = true)]
    requests: usize,
    /// Concurrent connections.
    #[arg(long, default_value_t = 64, global = true)]
    connections: usize,
    /// Runs (medians are reported).
    #[arg(long, default_value_t = 3, global = true)]
    runs: usize,
    /// Users the requests are spread over.
    #[arg(long, default_value_t = 200, global = true)]
    users: usize,
    /// Also send the route's requests open-loop at this many per second: the latency that traffic
    /// sees, rather than the latency at saturation (default: 10,000 for `features`, none for `reports`).
    #[arg(long, global = true)]
    rate: Option<f64>,
    #[command(flatten)]
    proxy: ProxyArgs,
}

#[derive(Debug, Subcommand)]
enum Route {
    /// `GET /v1/features/{feature}` with the entitlement cache warm.
    Features {
        /// The features requested in rotation (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = features::DEFAULT_FEATURES)]
        features: Vec<String>,
    },
    /// `POST /v1/reports`: a new report per request (stored, usage consumed, job enqueued).
    Reports,
    /// `POST /v1/usage/{metric}`: a new Idempotency-Key per request (the metered-usage consume), then a
    /// contention check: `--contention` concurrent consumes of one user's limit of 50 grant exactly 50.
    Usage {
        #[arg(long, default_value_t = 2_000)]
        contention: usize,
    },
}

/// The API's settings for the benchmark: a JWT secret, and a user rate limit no run reaches (the
/// limiter still runs: its Redis call is part of every request's cost).
pub const JWT_SECRET: &str = "bench-jwt-secret-of-at-least-32-bytes!!";
const SETTINGS: &[(&str, &str)] = &[
    ("MINGUS_JWT_SECRET", JWT_SECRET),
    ("MINGUS_USER_RATE_LIMIT_PER_HOUR", "1000000"),
];

/// Builds a run's requests, given their count.
type Prepare<'a> = dyn Fn(usize) -> Vec<Request> + 'a;

/// One line per run and a summary table of medians.
struct Table {
    name: String,
    figures: Figures,
}

impl Table {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            figures: Figures::default(),
        }
    }

    fn add(&mut self, report: &Report) -> anyhow::Result<()> {
        println!(
            "  {:<28} {:>8.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  ({} requests, {} errors)",
            self.name, report.rate, report.p50_ms, report.p99_ms, report.requests, report.errors
        );
        anyhow::ensure!(
            report.errors == 0,
            "{}: {} requests failed (first status {:?})",
            self.name,
            report.errors,
            report.first_error
        );
        self.figures.add(report);
        Ok(())
    }

    fn row(&self, connections: usize) {
        println!(
            "| {}, {connections} connections | {:.0} req/s | {:.2} ms | {:.2} ms |",
            self.name,
            self.figures.rate(),
            self.figures.p50(),
            self.figures.p99()
        );
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let pool = args.proxy.pool();
    let mut settings = SETTINGS.to_vec();
    if args.proxy.enabled() {
        settings.push(("DATABASE_MAX_CONNECTIONS", pool.as_str()));
    }
    let scratch = Scratch::create(&settings).await?;
    let result = run(&args, &scratch).await;
    scratch.destroy().await;
    result
}

/// The route's measurements on one target: closed-loop, and open-loop at the rate when there is one.
struct Side {
    target: Target,
    measured: Table,
    paced: Table,
}

impl Side {
    fn new(target: Target, name: &str, at: &str) -> Self {
        Self {
            target,
            measured: Table::new(name),
            paced: Table::new(&format!("{name}{at}")),
        }
    }

    async fn measure(
        &mut self,
        args: &Args,
        prepare: &Prepare<'_>,
        rate: Option<f64>,
    ) -> anyhow::Result<()> {
        let report = load::run(&self.target, prepare(args.requests), args.connections).await?;
        self.measured.add(&report)?;
        if let Some(rate) = rate {
            let report =
                load::run_at_rate(&self.target, prepare(args.requests), args.connections, rate)
                    .await?;
            self.paced.add(&report)?;
        }
        Ok(())
    }
}

async fn run(args: &Args, scratch: &Scratch) -> anyhow::Result<()> {
    let tokens = users::executives(scratch, args.users).await?;
    let (name, prepare): (&str, Box<Prepare<'_>>) = match &args.route {
        Route::Features { features } => (
            "GET /v1/features/{feature}",
            Box::new(|n| features::requests(&tokens, features, n)),
        ),
        Route::Reports => (
            "POST /v1/reports",
            Box::new(|n| reports::requests(&tokens, n)),
        ),
        Route::Usage { .. } => (
            "POST /v1/usage/{metric}",
            Box::new(|n| usage::requests(&tokens, n)),
        ),
    };
    let rate = args.rate.or(match args.route {
        Route::Features { .. } => Some(10_000.0),
        Route::Usage { .. } => Some(5_000.0),
        Route::Reports => None,
    });
    let at = format!(" at {} req/s", rate.unwrap_or(0.0));
    let direct = Target::http(&scratch.base_url)?;
    let mut sides = vec![Side::new(direct.clone(), name, &at)];
    if args.proxy.enabled() {
        sides[0].target = args.proxy.start_direct(scratch).await?;
        println!("{}", args.proxy.describe());
        let proxied = args.proxy.start(scratch).await?;
        sides.push(Side::new(
            proxied,
            &format!("{name} via nginx + PgBouncer"),
            &at,
        ));
    }
    // Warm-up: fills the entitlement caches, the pools and the catalogue, on every side.
    for side in &sides {
        load::run(&side.target, prepare(args.users * 4), args.connections).await?;
    }
    let mut floor = Table::new("GET /health/live");
    let mut paced_floor = Table::new(&format!("GET /health/live{at}"));
    for run in 1..=args.runs {
        println!("run {run}:");
        let health = (0..args.requests)
            .map(|_| Request::get("/health/live"))
            .collect();
        floor.add(&load::run(&direct, health, args.connections).await?)?;
        if let Some(rate) = rate {
            let health = (0..args.requests)
                .map(|_| Request::get("/health/live"))
                .collect();
            paced_floor.add(&load::run_at_rate(&direct, health, args.connections, rate).await?)?;
        }
        // The sides take turns going first, so a drift of the machine's load favours neither.
        let count = sides.len();
        for turn in 0..count {
            sides[(turn + run) % count]
                .measure(args, prepare.as_ref(), rate)
                .await?;
        }
    }
    if let Route::Reports = args.route {
        let per_run = args.requests * if rate.is_some() { 2 } else { 1 };
        let sent = sides.len() * (args.users * 4 + args.runs * per_run);
        reports::verify(scratch, sent).await?;
    }
    if let Route::Usage { contention } = args.route {
        let per_run = args.requests * if rate.is_some() { 2 } else { 1 };
        let sent = sides.len() * (args.users * 4 + args.runs * per_run);
        usage::verify(scratch, sent).await?;
        let token = users::on_tier(scratch, 1, "professional").await?.remove(0);
        let granted =
            usage::contention(scratch, &direct, &token, contention, args.connections).await?;
        println!(
            "contention: {contention} concurrent consumes of one user's ai_insights_per_month (limit 50) over {} connections: {granted} granted, {} refused with 429",
            args.connections,
            contention - granted
        );
    }
    println!();
    println!(
        "| route (median of {} runs) | throughput | p50 | p99 |",
        args.runs
    );
    println!("|---|---|---|---|");
    floor.row(args.connections);
    for side in &sides {
        side.measured.row(args.connections);
    }
    if rate.is_some() {
        paced_floor.row(args.connections);
        for side in &sides {
            side.paced.row(args.connections);
        }
    }
    println!(
        "| {name} / health floor | {:.0}% | | |",
        100.0 * sides[0].measured.figures.rate() / floor.figures.rate()
    );
    if let [direct, proxied] = &sides[..] {
        println!(
            "| via nginx + PgBouncer / direct | {:.0}% | {:.2}× | {:.2}× |",
            100.0 * proxied.measured.figures.rate() / direct.measured.figures.rate(),
            proxied.measured.figures.p50() / direct.measured.figures.p50(),
            proxied.measured.figures.p99() / direct.measured.figures.p99(),
        );
        if rate.is_some() {
            println!(
                "| via nginx + PgBouncer / direct{at} | | {:.2}× | {:.2}× |",
                proxied.paced.figures.p50() / direct.paced.figures.p50(),
                proxied.paced.figures.p99() / direct.paced.figures.p99(),
            );
        }
    }
    Ok(())
}
