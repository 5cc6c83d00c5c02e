#![doc = include_str!("README.md")]

pub mod access;
pub mod drift;
pub mod email;
pub mod guard;
pub mod money;
pub mod objects;
pub mod price;
pub mod status;

pub use guard::{GuardKey, should_apply};
pub use objects::Event;
pub use price::{BillingCycle, Plan, Tier, resolve_plan};
pub use rust_decimal::Decimal;
pub use status::{LocalStatus, StripeStatus};

/// A Stripe object we cannot apply, whatever the retry: the event is marked failed for an operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BillingError {
    #[error("invalid Stripe object: {0}")]
    Invalid(String),
    #[error("{0}")]
    UnknownPrice(String),
}
