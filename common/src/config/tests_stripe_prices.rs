//! `STRIPE_PRICES` and `STRIPE_TRIAL_DAYS`: parsed into typed maps, and every mistake named.

use super::*;
use crate::billing::{BillingCycle, Tier};

fn parse(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::from_vars(vars.iter().copied())
}

#[test]
fn prices_and_trials_are_typed_and_prices_also_name_their_tier() {
    let config = parse(&[
        (
            "STRIPE_PRICES",
            "essentials:monthly=price_em, executive:annual = price_xa",
        ),
        ("STRIPE_PRICE_TIERS", "legacy_price=professional"),
        ("STRIPE_TRIAL_DAYS", "essentials=14,professional=7"),
    ])
    .unwrap();
    let stripe = &config.stripe;
    assert_eq!(
        stripe.price_of(Tier::Essentials, BillingCycle::Monthly),
        Some("price_em")
    );
    assert_eq!(
        stripe.price_of(Tier::Executive, BillingCycle::Annual),
        Some("price_xa")
    );
    assert_eq!(
        stripe.price_of(Tier::Executive, BillingCycle::Monthly),
        None
    );
    // The webhook side recognises a configured price without repeating it in STRIPE_PRICE_TIERS.
    assert_eq!(stripe.price_tiers["price_xa"], "executive");
    assert_eq!(stripe.price_tiers["legacy_price"], "professional");
    assert_eq!(stripe.trial_days[&Tier::Essentials], 14);
    assert!(!stripe.trial_days.contains_key(&Tier::Executive));
}

#[test]
fn mistakes_name_the_variable() {
    for (name, value) in [
        ("STRIPE_PRICES", "gold:monthly=price_1"),
        ("STRIPE_PRICES", "essentials:weekly=price_1"),
        ("STRIPE_PRICES", "essentials=price_1"),
        ("STRIPE_PRICES", "essentials:monthly=essentials_monthly"),
        ("STRIPE_TRIAL_DAYS", "essentials=many"),
        ("STRIPE_TRIAL_DAYS", "essentials=731"),
        ("STRIPE_TRIAL_DAYS", "gold=14"),
    ] {
        let err = parse(&[(name, value)]).unwrap_err();
        assert_eq!(err.variable(), name, "{value}: {err}");
    }
    let conflict = parse(&[
        ("STRIPE_PRICES", "essentials:monthly=price_1"),
        ("STRIPE_PRICE_TIERS", "price_1=executive"),
    ])
    .unwrap_err();
    assert_eq!(conflict.variable(), "STRIPE_PRICES");
    assert!(
        conflict.to_string().contains("STRIPE_PRICE_TIERS"),
        "{conflict}"
    );
}
