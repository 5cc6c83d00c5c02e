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
pub mod process_metrics;
pub mod queue;
pub mod reports;
pub mod revenue;
pub mod seed;
pub mod shutdown;
pub mod stripe_api;
pub mod telemetry;
pub mod text;

pub use config::Config;
