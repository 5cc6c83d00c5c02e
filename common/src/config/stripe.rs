//! Stripe settings beyond the secrets: the mode events must match, the price ↔ plan mappings, trials,
//! grace.

use std::collections::HashMap;
use std::time::Duration;

use super::ConfigError;
use super::parse::Vars;
use crate::billing::{BillingCycle, Tier};

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
    /// here are matched by a lookup key of the form `<tier>_<anything>` or `metadata.tier`. Every price
    /// of [`StripeConfig::prices`] is in here too (its tier), so a price configured once is recognised
    /// both ways.
    pub price_tiers: HashMap<String, String>,
    /// The price a new checkout or a plan change asks Stripe for, per tier and cycle
    /// (`STRIPE_PRICES`). A plan missing here cannot be bought through the API.
    pub prices: HashMap<(Tier, BillingCycle), String>,
    /// Trial days of a first subscription per tier (`STRIPE_TRIAL_DAYS`); a tier missing here has none.
    pub trial_days: HashMap<Tier, u32>,
    /// How long a past-due subscription keeps access.
    pub grace_period: Duration,
    /// Accepted age of a webhook's signed timestamp.
    pub signature_tolerance: Duration,
}

impl StripeConfig {
    /// The configured price of a plan.
    pub fn price_of(&self, tier: Tier, cycle: BillingCycle) -> Option<&str> {
        self.prices.get(&(tier, cycle)).map(String::as_str)
    }
}

/// Stripe's longest trial (`trial_period_days` ≤ 730).
const MAX_TRIAL_DAYS: u32 = 730;

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
    let mut price_tiers = vars.map("STRIPE_PRICE_TIERS", |tier| {
        tier_named(tier).map(|tier| tier.as_str().to_owned())
    })?;
    let prices = prices(vars)?;
    for ((tier, _), price) in &prices {
        match price_tiers.get(price) {
            Some(other) if other != tier.as_str() => {
                return Err(ConfigError::invalid(
                    "STRIPE_PRICES",
                    format!("{price} is {tier} here but {other} in STRIPE_PRICE_TIERS"),
                ));
            }
            _ => price_tiers.insert(price.clone(), tier.as_str().to_owned()),
        };
    }
    let trial_days = vars
        .map("STRIPE_TRIAL_DAYS", |days| {
            let days: u32 = days.parse().map_err(|e| format!("{days:?}: {e}"))?;
            if days > MAX_TRIAL_DAYS {
                return Err(format!(
                    "{days} days: Stripe allows at most {MAX_TRIAL_DAYS}"
                ));
            }
            Ok(days)
        })?
        .into_iter()
        .map(|(tier, days)| {
            tier_named(&tier)
                .map(|tier| (tier, days))
                .map_err(|reason| ConfigError::invalid("STRIPE_TRIAL_DAYS", reason))
        })
        .collect::<Result<_, _>>()?;
    Ok(StripeConfig {
        mode,
        price_tiers,
        prices,
        trial_days,
        grace_period: vars.seconds("STRIPE_GRACE_PERIOD_SECS", 7 * 24 * 3600)?,
        signature_tolerance: vars.seconds("STRIPE_SIGNATURE_TOLERANCE_SECS", 300)?,
    })
}

/// `STRIPE_PRICES=essentials:monthly=price_…,essentials:annual=price_…,…`: price ids (not lookup
/// keys: a Checkout Session's line item and a subscription item take an id).
fn prices(vars: &Vars<'_>) -> Result<HashMap<(Tier, BillingCycle), String>, ConfigError> {
    let name = "STRIPE_PRICES";
    vars.map(name, |price| {
        if price.starts_with("price_") && price.len() > "price_".len() {
            Ok(price.to_owned())
        } else {
            Err(format!("expected a price id (price_…), got {price:?}"))
        }
    })?
    .into_iter()
    .map(|(plan, price)| {
        let (tier, cycle) = plan.split_once(':').ok_or_else(|| {
            ConfigError::invalid(name, format!("expected tier:cycle=price_…, got {plan:?}"))
        })?;
        let tier = tier_named(tier.trim()).map_err(|reason| ConfigError::invalid(name, reason))?;
        let cycle = BillingCycle::from_name(cycle.trim()).ok_or_else(|| {
            ConfigError::invalid(name, format!("unknown cycle {cycle:?} (monthly or annual)"))
        })?;
        Ok(((tier, cycle), price))
    })
    .collect()
}

fn tier_named(name: &str) -> Result<Tier, String> {
    Tier::ALL
        .into_iter()
        .find(|tier| tier.as_str() == name)
        .ok_or_else(|| format!("unknown tier {name:?}"))
}
