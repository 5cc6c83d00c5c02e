#![doc = include_str!("../README.md")]
//!
//! Support for the benchmarks: a scratch database and Redis prefix for the job-runtime, Stripe,
//! analytics and e-mail benchmarks, whose workers run as child processes ([`BenchEnv`]); one with an
//! in-process API for the API benchmarks (`mingus-bench-ingest`, `mingus-bench-api`, [`Scratch`]), a lean HTTP/1.1 load generator ([`load`]), and
//! API instances behind the production proxies for the comparison with them ([`ProxyArgs`]).

pub mod analytics_reference;
mod bench_env;
mod figures;
pub mod load;
mod proxied;
mod scratch;
pub mod stats;

pub use bench_env::BenchEnv;
pub use figures::Figures;
pub use load::{Report, Request, Target};
pub use proxied::ProxyArgs;
pub use scratch::Scratch;

/// The median of `values` (the upper one of an even count).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// `url` with `sslmode=disable` unless it names an sslmode: the transport the API's pool uses on
/// loopback (`db::connect_options_from_url`), so baselines like pgbench pay what the API pays.
pub fn with_sslmode_disable(url: &str) -> String {
    if url.contains("sslmode=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&sslmode=disable")
    } else {
        format!("{url}?sslmode=disable")
    }
}
