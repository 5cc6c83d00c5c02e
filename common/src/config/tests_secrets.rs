//! Production refuses secrets that are long but not generated, and secrets shared between two uses.

use super::tests::{production, with};
use super::*;

/// Refused with `variable` named, as insecure, and without `secret` in the message.
fn assert_refused(vars: Vec<(&'static str, &str)>, variable: &str, secret: &str) -> String {
    let err = Config::from_vars(vars).unwrap_err();
    let shown = err.to_string();
    assert_eq!(err.variable(), variable, "{shown}");
    assert!(matches!(err, ConfigError::Insecure { .. }), "{shown}");
    assert!(
        !shown.contains(secret),
        "the message leaks the secret: {shown}"
    );
    shown
}

/// A secret as `deploy/local/dev-env.sh` and the CI scripts make one: 32 random bytes as hex.
fn generated() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

#[test]
fn long_secrets_with_too_little_variety_are_refused_by_name() {
    let weak = [
        "a".repeat(32),
        "ab".repeat(20),
        // Eight different characters, but one block written four times.
        "abcdefgh".repeat(4),
        "mingus-admin-token-".repeat(2),
        // Seven different characters, no repetition of a block.
        "0123456012345601234560123456012345600".to_owned(),
    ];
    for name in [
        "MINGUS_JWT_SECRET",
        "MINGUS_ADMIN_TOKEN",
        "MINGUS_UNSUBSCRIBE_SECRET",
    ] {
        for secret in &weak {
            let vars = with(&production(), name, secret);
            let shown = assert_refused(vars, name, secret);
            assert!(shown.contains("not a generated secret"), "{shown}");
        }
    }
}

#[test]
fn a_webhook_secret_is_judged_by_its_part_after_whsec() {
    let weak = format!("whsec_{}", "0".repeat(32));
    let list = format!("whsec_5c1e9a7f03d2b8e4,{weak}");
    let shown = assert_refused(
        with(&production(), "STRIPE_WEBHOOK_SECRETS", &list),
        "STRIPE_WEBHOOK_SECRETS",
        &weak,
    );
    assert!(shown.contains("entry 2"), "{shown}");
    // Stripe's own secrets (32 characters of letters and digits after the prefix) pass.
    let stripe_like = "whsec_G7kq2ZpX9vLw4TnB8cRf1mJd6sHy3aQe";
    let config =
        Config::from_vars(with(&production(), "STRIPE_WEBHOOK_SECRETS", stripe_like)).unwrap();
    assert_eq!(config.stripe_webhook_secrets.len(), 1);
}

#[test]
fn two_secrets_with_the_same_value_are_refused_naming_both() {
    let shared = generated();
    let cases = [
        ("MINGUS_JWT_SECRET", "MINGUS_ADMIN_TOKEN"),
        ("MINGUS_JWT_SECRET", "MINGUS_UNSUBSCRIBE_SECRET"),
        ("MINGUS_ADMIN_TOKEN", "MINGUS_UNSUBSCRIBE_SECRET"),
    ];
    for (first, second) in cases {
        let vars = with(&with(&production(), first, &shared), second, &shared);
        let shown = assert_refused(vars, second, &shared);
        assert!(shown.contains(first), "{shown}");
    }
    // A webhook secret's random part reused as the admin token.
    let webhook = format!("whsec_{shared}");
    let vars = with(
        &with(&production(), "MINGUS_ADMIN_TOKEN", &shared),
        "STRIPE_WEBHOOK_SECRETS",
        &webhook,
    );
    let shown = assert_refused(vars, "STRIPE_WEBHOOK_SECRETS", &shared);
    assert!(shown.contains("MINGUS_ADMIN_TOKEN"), "{shown}");
    // One webhook secret listed twice.
    let twice = format!("{webhook},{webhook}");
    let shown = assert_refused(
        with(&production(), "STRIPE_WEBHOOK_SECRETS", &twice),
        "STRIPE_WEBHOOK_SECRETS",
        &shared,
    );
    assert!(shown.contains("twice"), "{shown}");
}

#[test]
fn secrets_made_the_way_the_deployment_scripts_make_them_pass() {
    // dev-env.sh and ci/systemd-units.sh: `head -c 32 /dev/urandom | od …` (64 hex digits), the webhook
    // secret as whsec_ and the same; docs/production.md: `openssl rand -hex 32`, the same shape.
    for _ in 0..200 {
        let (jwt, admin, unsubscribe) = (generated(), generated(), generated());
        let webhooks = format!("whsec_{},whsec_{}", generated(), generated());
        let vars = [
            ("MINGUS_JWT_SECRET", jwt.as_str()),
            ("MINGUS_ADMIN_TOKEN", admin.as_str()),
            ("MINGUS_UNSUBSCRIBE_SECRET", unsubscribe.as_str()),
            ("STRIPE_WEBHOOK_SECRETS", webhooks.as_str()),
        ]
        .into_iter()
        .fold(production(), |vars, (name, value)| with(&vars, name, value));
        Config::from_vars(vars).unwrap();
    }
    // 128 random bits as 32 hex digits (`openssl rand -hex 16`) pass too.
    for _ in 0..200 {
        let short = uuid::Uuid::new_v4().simple().to_string();
        Config::from_vars(with(&production(), "MINGUS_ADMIN_TOKEN", &short)).unwrap();
    }
}

#[test]
fn each_process_judges_the_secrets_it_uses() {
    let jwt = generated();
    // The admin token equal to the JWT secret: the API, which uses both, refuses.
    let vars = with(&production(), "MINGUS_JWT_SECRET", &jwt);
    let vars = with(&vars, "MINGUS_ADMIN_TOKEN", &jwt);
    let err = Config::from_vars_for(vars.clone(), Needs::API).unwrap_err();
    assert_eq!(err.variable(), "MINGUS_ADMIN_TOKEN");
    // The worker serves no authenticated HTTP and never reads either.
    Config::from_vars_for(vars, Needs::WORKER).unwrap();
    // Development keeps its freedom.
    Config::from_vars([
        ("MINGUS_JWT_SECRET", "a".repeat(32)),
        ("MINGUS_ADMIN_TOKEN", "a".repeat(32)),
    ])
    .unwrap();
}
