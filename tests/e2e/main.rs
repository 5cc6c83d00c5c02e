//! All end-to-end tests, in one binary so they link once.

mod fixtures;

mod constraints;
mod health;
mod jobs;
mod migrations;
mod partitions;
mod pricing;
mod resilience;
mod retention;
mod rls;
