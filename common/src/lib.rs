#![doc = include_str!("../README.md")]

pub mod cache;
pub mod config;
pub mod db;
pub mod jobs;
pub mod queue;
pub mod seed;
pub mod shutdown;
pub mod telemetry;

pub use config::Config;
