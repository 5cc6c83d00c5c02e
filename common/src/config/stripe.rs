//! Stripe settings beyond the secrets: the mode events must match, the price → tier mapping, grace.

use std::collections::HashMap;
use std::time::Duration;

use super::ConfigError;
use super::parse::Vars;

/// Test-mode and live-mode events have different secrets; an event of the other mode is quarantined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StripeMode {
    Test,
    Live,
}

#[derive(Debug, Clone)]
pub struct StripeConfig {
    pub mode: StripeMode,
    /// Price id or lookup key → tier name (`essentials`, `professional`, `executive`). Prices not listed
    /// here are matched by a lookup key of the form `<tier>_<anything>` or `metadata.tier`.
    pub price_tiers: HashMap<String, String>,
    /// How long a past-due subscription keeps access.
    pub grace_period: Duration,
    /// Accepted age of a webhook's signed timestamp.
    pub signature_tolerance: Duration,
}

const TIERS: [&str; 3] = ["essentials", "professional", "executive"];

pub(super) fn parse(vars: &Vars<'_>, production: bool) -> Result<StripeConfig, ConfigError> {
    let mode = vars.parse_with(
        "STRIPE_MODE",
        if production {
            StripeMode::Live
        } else {
            StripeMode::Test
        },
        |raw| match raw.to_ascii_lowercase().as_str() {
            "test" => Ok(StripeMode::Test),
            "live" => Ok(StripeMode::Live),
            other => Err(format!("expected test or live, got {other:?}")),
        },
    )?;
    let price_tiers = vars.map("STRIPE_PRICE_TIERS", |tier| {
        if TIERS.contains(&tier) {
            Ok(tier.to_owned())
        } else {
            Err(format!("unknown tier {tier:?}"))
        }
    })?;
    Ok(StripeConfig {
        mode,
        price_tiers,
        grace_period: vars.seconds("STRIPE_GRACE_PERIOD_SECS", 7 * 24 * 3600)?,
        signature_tolerance: vars.seconds("STRIPE_SIGNATURE_TOLERANCE_SECS", 300)?,
    })
}
