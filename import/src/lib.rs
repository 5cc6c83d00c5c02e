#![doc = include_str!("../README.md")]

pub mod apply;
mod checkins;
pub mod fingerprint;
pub mod fixture;
pub mod ids;
mod load;
mod reconcile;
pub mod report;
pub mod rollback;
pub mod row;
pub mod run;
pub mod source;
pub mod source_schema;
pub mod spec;
mod stage;
pub mod transform;
pub mod verify;

pub use rollback::{RolledBack, rollback};
pub use run::{ImportOptions, ImportSummary, Outcome, TableCounts, ensure_migrated, import};
pub use verify::{Verification, verify};
