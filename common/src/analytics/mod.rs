//! Analytics: the daily `user_analytics` rollup, monthly partition maintenance, and the synthetic data
//! generator used by tests, benchmarks and demos.
//!
//! - [`rollup`] computes one day of `user_analytics` for a shard of users in one set-based statement
//!   (`INSERT … SELECT … ON CONFLICT (user_id, date) DO UPDATE`), idempotently;
//! - the same computation written plainly in Rust for one user, the yardstick of the property test and
//!   the "naive per-user loop" of the benchmark, is `mingus_bench::analytics_reference` (not shipped);
//! - [`partitions`] premakes and retires the monthly partitions of the tables registered in
//!   `partitioned_tables`, moving rows out of a default partition when their month gets its own;
//! - [`generate`] fills a database with realistic users and activity at a given scale.
//!
//! The formulas and choices are documented in docs/analytics.md ("Analytics and partitions").

pub mod generate;
pub mod partitions;
pub mod rollup;
pub mod stage;

pub use rollup::{RollupReport, Shard, ShardError};
