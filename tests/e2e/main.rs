//! All end-to-end tests, in one binary so they link once.

mod fixtures;

mod analytics;
mod billing_lifecycle;
mod constraints;
mod dashboard;
mod dashboard_customer;
mod deployment;
mod email;
mod entitlements;
mod health;
mod jobs;
mod migrations;
mod openapi;
mod ops;
mod partitions;
mod partitions_maintenance;
mod pricing;
mod production_redis;
mod reports;
mod reports_kinds;
mod resilience;
mod retention;
mod revenue;
mod rls;
mod scheduler;
mod sqlite_import;
mod stripe_cli;
mod stripe_processing;
mod text_input;
mod v1;
mod webhooks;
mod worker_metrics;
