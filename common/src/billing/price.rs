//! A Stripe price → our tier, billing cycle and plan price.
//!
//! Tier lookup, first match wins: `STRIPE_PRICE_TIERS` by price id, then by lookup key; a lookup key of
//! the form `<tier>_…` (`professional_monthly`); `price.metadata.tier`; the expanded product's
//! `metadata.tier`. A price none of these name is a permanent error (a configuration problem for an
//! operator, not something a retry fixes).

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::Value;

use super::{BillingError, money};
use crate::config::stripe::StripeConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tier {
    Essentials,
    Professional,
    Executive,
}

impl Tier {
    pub const ALL: [Tier; 3] = [Tier::Essentials, Tier::Professional, Tier::Executive];

    pub const fn as_str(self) -> &'static str {
        match self {
            Tier::Essentials => "essentials",
            Tier::Professional => "professional",
            Tier::Executive => "executive",
        }
    }
}

impl FromStr for Tier {
    type Err = BillingError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Tier::ALL
            .into_iter()
            .find(|tier| tier.as_str() == s)
            .ok_or_else(|| BillingError::UnknownPrice(format!("unknown tier {s:?}")))
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BillingCycle {
    Monthly,
    Annual,
}

impl BillingCycle {
    pub const ALL: [BillingCycle; 2] = [BillingCycle::Monthly, BillingCycle::Annual];

    /// `monthly` or `annual`.
    pub fn from_name(name: &str) -> Option<Self> {
        BillingCycle::ALL
            .into_iter()
            .find(|cycle| cycle.as_str() == name)
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            BillingCycle::Monthly => "monthly",
            BillingCycle::Annual => "annual",
        }
    }
}

/// What a subscription's price means for us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub price_id: String,
    pub tier: Tier,
    pub cycle: BillingCycle,
    /// `unit_amount` in major units of `currency`.
    pub amount: Decimal,
    /// Upper-case ISO code.
    pub currency: String,
}

fn tier_of(price: &Value, config: &StripeConfig) -> Option<Tier> {
    let id = price["id"].as_str();
    let lookup_key = price["lookup_key"].as_str();
    let configured = [id, lookup_key]
        .into_iter()
        .flatten()
        .find_map(|key| config.price_tiers.get(key));
    if let Some(tier) = configured {
        return tier.parse().ok();
    }
    let by_prefix = lookup_key.and_then(|key| {
        Tier::ALL.into_iter().find(|tier| {
            key.strip_prefix(tier.as_str())
                .is_some_and(|rest| rest.starts_with('_'))
        })
    });
    by_prefix
        .or_else(|| {
            price["metadata"]["tier"]
                .as_str()
                .and_then(|t| t.parse().ok())
        })
        .or_else(|| {
            price["product"]["metadata"]["tier"]
                .as_str()
                .and_then(|t| t.parse().ok())
        })
}

fn cycle_of(price: &Value) -> Result<BillingCycle, BillingError> {
    // A legacy `plan` object carries the interval at the top level.
    let recurring = if price["recurring"].is_object() {
        &price["recurring"]
    } else {
        price
    };
    let interval = recurring["interval"].as_str().unwrap_or_default();
    let count = recurring["interval_count"].as_i64().unwrap_or(1);
    match (interval, count) {
        ("month", 1) => Ok(BillingCycle::Monthly),
        ("year", 1) | ("month", 12) => Ok(BillingCycle::Annual),
        _ => Err(BillingError::UnknownPrice(format!(
            "price {} recurs every {count} {interval:?}: only monthly and annual plans exist",
            price["id"].as_str().unwrap_or("?")
        ))),
    }
}

/// Resolves a price object (`items.data[0].price`, or a legacy `plan`).
pub fn resolve_plan(price: &Value, config: &StripeConfig) -> Result<Plan, BillingError> {
    let price_id = price["id"]
        .as_str()
        .ok_or_else(|| BillingError::Invalid("the subscription item has no price id".into()))?;
    let tier = tier_of(price, config).ok_or_else(|| {
        BillingError::UnknownPrice(format!(
            "price {price_id} (lookup key {:?}) maps to no tier: set STRIPE_PRICE_TIERS, a <tier>_… lookup key or metadata.tier",
            price["lookup_key"].as_str()
        ))
    })?;
    let cycle = cycle_of(price)?;
    let currency = price["currency"]
        .as_str()
        .and_then(money::currency_code)
        .ok_or_else(|| BillingError::Invalid(format!("price {price_id} has no valid currency")))?;
    let minor = price["unit_amount"]
        .as_i64()
        .or_else(|| price["amount"].as_i64())
        .or_else(|| {
            price["unit_amount_decimal"]
                .as_str()
                .and_then(|s| s.parse::<i64>().ok())
        })
        .ok_or_else(|| BillingError::Invalid(format!("price {price_id} has no unit amount")))?;
    Ok(Plan {
        price_id: price_id.to_owned(),
        tier,
        cycle,
        amount: money::from_minor(minor, &currency),
        currency,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::config::stripe::StripeMode;

    fn config(pairs: &[(&str, &str)]) -> StripeConfig {
        StripeConfig {
            mode: StripeMode::Test,
            price_tiers: pairs
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect::<HashMap<_, _>>(),
            prices: HashMap::new(),
            trial_days: HashMap::new(),
            grace_period: Duration::from_secs(7 * 86_400),
            signature_tolerance: Duration::from_secs(300),
        }
    }

    fn price(
        lookup_key: Value,
        metadata: Value,
        interval: &str,
        amount: i64,
        currency: &str,
    ) -> Value {
        json!({"id": "price_1", "lookup_key": lookup_key, "metadata": metadata, "currency": currency,
               "unit_amount": amount, "recurring": {"interval": interval, "interval_count": 1}})
    }

    #[test]
    fn tiers_come_from_config_then_lookup_key_then_metadata() {
        let p = price(
            json!("professional_monthly"),
            json!({"tier": "executive"}),
            "month",
            2900,
            "usd",
        );
        let by_config = resolve_plan(&p, &config(&[("price_1", "essentials")])).unwrap();
        assert_eq!(by_config.tier, Tier::Essentials);
        let by_lookup_key_config =
            resolve_plan(&p, &config(&[("professional_monthly", "executive")])).unwrap();
        assert_eq!(by_lookup_key_config.tier, Tier::Executive);
        let by_prefix = resolve_plan(&p, &config(&[])).unwrap();
        assert_eq!(by_prefix.tier, Tier::Professional);
        assert_eq!(by_prefix.cycle, BillingCycle::Monthly);
        assert_eq!(by_prefix.amount.to_string(), "29.00");
        assert_eq!(by_prefix.currency, "USD");
        let by_metadata = price(
            Value::Null,
            json!({"tier": "executive"}),
            "year",
            99_000,
            "jpy",
        );
        let plan = resolve_plan(&by_metadata, &config(&[])).unwrap();
        assert_eq!(
            (plan.tier, plan.cycle),
            (Tier::Executive, BillingCycle::Annual)
        );
        assert_eq!(plan.amount.to_string(), "99000");
    }

    #[test]
    fn unknown_prices_and_intervals_are_refused() {
        let unknown = price(json!("gold_monthly"), json!({}), "month", 100, "usd");
        assert!(matches!(
            resolve_plan(&unknown, &config(&[])),
            Err(BillingError::UnknownPrice(_))
        ));
        let weekly = price(json!("essentials_weekly"), json!({}), "week", 100, "usd");
        assert!(matches!(
            resolve_plan(&weekly, &config(&[])),
            Err(BillingError::UnknownPrice(_))
        ));
        let prefix_only = price(json!("essentialsplus"), json!({}), "month", 100, "usd");
        assert!(resolve_plan(&prefix_only, &config(&[])).is_err());
    }
}
