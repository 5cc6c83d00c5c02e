#![doc = include_str!("../README.md")]

pub mod analytics;
pub mod batching;
pub mod billing;
pub mod cache;
pub mod config;
pub mod cron;
pub mod db;
pub mod email;
pub mod entitlements;
pub mod health;
pub mod jobs;
pub mod probe;
pub mod queue;
pub mod reports;
pub mod seed;
pub mod shutdown;
pub mod stripe_api;
pub mod telemetry;

pub use config::Config;

/// mimalloc instead of glibc's malloc in every binary of the platform (each links this crate): a `/v1`
/// request makes a few hundred small allocations, and glibc's `malloc`/`free` were ~12 % of the API's
/// CPU in a profile of `GET /v1/features/{feature}`; swapping the allocator raised that route's
/// throughput by ~70 % in one benchmark run (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
