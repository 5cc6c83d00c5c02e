use super::*;

fn dev() -> Vec<(&'static str, &'static str)> {
    Vec::new()
}

pub(super) fn production() -> Vec<(&'static str, &'static str)> {
    vec![
        ("MINGUS_ENV", "production"),
        (
            "DATABASE_URL",
            "postgres://app:db-pw@db.internal/mingus?sslmode=verify-full",
        ),
        ("REDIS_URL", "rediss://:cache-pw@cache.internal:6380"),
        ("SMTP_URL", "smtps://mailer:pw@smtp.example.com:465"),
        ("MAIL_FROM", "Mingus <no-reply@mingus.app>"),
        (
            "STRIPE_WEBHOOK_SECRETS",
            "whsec_5c1e9a7f03d2b8e4,whsec_d94b2e6a1f07c358",
        ),
        ("MINGUS_JWT_SECRET", "0123456789abcdef0123456789abcdef-jwt"),
        (
            "MINGUS_ADMIN_TOKEN",
            "0123456789abcdef0123456789abcdef-admin",
        ),
        (
            "MINGUS_UNSUBSCRIBE_SECRET",
            "0123456789abcdef0123456789abcdef-unsub",
        ),
        ("MINGUS_PUBLIC_URL", "https://api.mingus.app"),
        ("MINGUS_APP_URL", "https://app.mingus.app/"),
    ]
}

pub(super) fn without<'a>(
    vars: &[(&'static str, &'a str)],
    name: &str,
) -> Vec<(&'static str, &'a str)> {
    vars.iter().copied().filter(|(k, _)| *k != name).collect()
}

pub(super) fn with<'a>(
    vars: &[(&'static str, &'a str)],
    name: &'static str,
    value: &'a str,
) -> Vec<(&'static str, &'a str)> {
    let mut out = without(vars, name);
    out.push((name, value));
    out
}

#[test]
fn development_defaults_match_the_seed_pool_and_local_services() {
    let config = Config::from_vars(dev()).unwrap();
    assert_eq!(config.environment, Environment::Development);
    assert_eq!(config.api_addr.to_string(), "127.0.0.1:8080");
    assert_eq!(config.database.max_connections, 50);
    assert_eq!(config.database.acquire_timeout, Duration::from_secs(30));
    assert_eq!(config.database.max_lifetime, Duration::from_secs(1800));
    assert!(config.database.test_before_acquire);
    assert_eq!(config.log_format, LogFormat::Pretty);
    assert_eq!(config.shutdown_timeout, Duration::from_secs(30));
    assert!(config.stripe_webhook_secrets.is_empty());
    assert_eq!(
        config.missing_optional_secrets(),
        [
            "STRIPE_WEBHOOK_SECRETS",
            "MINGUS_JWT_SECRET",
            "MINGUS_ADMIN_TOKEN",
            "MINGUS_UNSUBSCRIBE_SECRET"
        ]
    );
    assert_eq!(config.email.smtp.port, 2525);
    assert_eq!(config.email.from_domain, "mingus.local");
    assert_eq!(config.email.public_url, "http://127.0.0.1:8080");
    assert_eq!(config.email.lease, Duration::from_secs(120));
    assert_eq!(config.email.pool_size, 10);
}

#[test]
fn a_complete_production_configuration_is_accepted() {
    let config = Config::from_vars(production()).unwrap();
    assert_eq!(config.environment, Environment::Production);
    assert_eq!(config.email.smtp.port, 465);
    assert_eq!(config.email.from_domain, "mingus.app");
    assert_eq!(config.email.app_url, "https://app.mingus.app");
    assert_eq!(config.stripe_webhook_secrets.len(), 2);
    assert_eq!(config.log_format, LogFormat::Json);
    assert!(config.missing_optional_secrets().is_empty());
}

#[test]
fn production_refuses_each_missing_secret_and_names_it() {
    for name in [
        "DATABASE_URL",
        "REDIS_URL",
        "SMTP_URL",
        "MAIL_FROM",
        "STRIPE_WEBHOOK_SECRETS",
        "MINGUS_JWT_SECRET",
        "MINGUS_ADMIN_TOKEN",
        "MINGUS_UNSUBSCRIBE_SECRET",
        "MINGUS_PUBLIC_URL",
        "MINGUS_APP_URL",
    ] {
        let err = Config::from_vars(without(&production(), name)).unwrap_err();
        assert_eq!(err.variable(), name, "{err}");
        assert!(
            err.to_string().contains(name),
            "message must name {name}: {err}"
        );
    }
}

#[test]
fn production_refuses_insecure_settings() {
    let cases = [
        ("MINGUS_JWT_SECRET", "short"),
        ("MINGUS_ADMIN_TOKEN", "admin"),
        ("STRIPE_API_KEY", "sk_test_123"),
        ("STRIPE_API_BASE", "http://api.stripe.com"),
        ("SMTP_URL", "smtp://user:pw@smtp.example.com:587"),
        ("STRIPE_WEBHOOK_SECRETS", "whsec_ok,not-a-secret"),
        ("MINGUS_UNSUBSCRIBE_SECRET", "short"),
        ("MINGUS_PUBLIC_URL", "http://api.mingus.app"),
        ("MINGUS_APP_URL", "http://app.mingus.app"),
        ("MINGUS_EMAIL_TEST_PAUSE_AFTER_ACCEPT_MS", "500"),
    ];
    for (name, value) in cases {
        let err = Config::from_vars(with(&production(), name, value)).unwrap_err();
        assert_eq!(err.variable(), name, "{err}");
    }
    // STARTTLS enforced and local relays are fine.
    Config::from_vars(with(
        &production(),
        "SMTP_URL",
        "smtp://u:p@smtp.example.com:587?tls=required",
    ))
    .unwrap();
    Config::from_vars(with(&production(), "SMTP_URL", "smtp://127.0.0.1:25")).unwrap();
}

#[test]
fn bad_values_name_the_variable() {
    let cases = [
        ("DATABASE_MAX_CONNECTIONS", "many"),
        ("DATABASE_MAX_CONNECTIONS", "0"),
        ("MINGUS_API_ADDR", "localhost"),
        ("MINGUS_ENV", "staging"),
        ("LOG_FORMAT", "xml"),
        ("MINGUS_SHUTDOWN_TIMEOUT", "-1"),
        ("DATABASE_TEST_BEFORE_ACQUIRE", "maybe"),
        ("STRIPE_WEBHOOK_SECRETS", "whsec_a,,whsec_b"),
        ("SMTP_URL", "smtp://host?tls=sometimes"),
        ("SMTP_URL", "imap://host"),
        ("MAIL_FROM", "not an address"),
        ("SMTP_POOL_SIZE", "0"),
        ("SMTP_COMMAND_TIMEOUT_SECS", "0"),
        ("MINGUS_EMAIL_LEASE_SECS", "30"),
        ("MINGUS_PUBLIC_URL", "ftp://example.com"),
        ("MINGUS_APP_URL", "/relative"),
        ("MINGUS_REPORTING_CURRENCY", "dollars"),
        ("MINGUS_REPORTING_CURRENCY", "U$D"),
    ];
    for (name, value) in cases {
        let err = Config::from_vars([(name, value)]).unwrap_err();
        assert_eq!(err.variable(), name, "{name}={value}: {err}");
    }
    let config = Config::from_vars([("MINGUS_REPORTING_CURRENCY", "eur")]).unwrap();
    assert_eq!(config.jobs.reporting_currency, "EUR");
    let err = Config::from_vars([("DATABASE_MIN_CONNECTIONS", "60")]).unwrap_err();
    assert_eq!(err.variable(), "DATABASE_MIN_CONNECTIONS");
}

#[test]
fn secrets_never_appear_in_debug_output() {
    let config = Config::from_vars(production()).unwrap();
    let shown = format!("{config:?}");
    for secret in [
        "whsec_5c1e9a7f03d2b8e4",
        "0123456789abcdef0123456789abcdef-jwt",
        "db-pw",
        "cache-pw",
        "mailer:pw",
        "app@db.internal",
    ] {
        assert!(!shown.contains(secret), "debug output leaks {secret}");
    }
}

#[test]
fn job_settings_parse_per_queue_overrides_and_reject_unknown_queues() {
    let config = Config::from_vars([
        ("MINGUS_QUEUE_CONCURRENCY", "email=20, reports=4"),
        ("MINGUS_QUEUE_TIMEOUT_SECS", "reports=600"),
        ("MINGUS_WORKER_METRICS_ADDR", "off"),
    ])
    .unwrap();
    assert_eq!(config.jobs.concurrency["email"], 20);
    assert_eq!(config.jobs.concurrency["reports"], 4);
    assert_eq!(config.jobs.timeouts["reports"], Duration::from_secs(600));
    assert!(config.jobs.metrics_addr.is_none());
    assert!(
        config.jobs.orphan_window() <= Duration::from_secs(60),
        "default orphan window is at most 60 s"
    );
    let err = Config::from_vars([("MINGUS_QUEUE_CONCURRENCY", "mail=2")]).unwrap_err();
    assert_eq!(err.variable(), "MINGUS_QUEUE_CONCURRENCY");
    let err = Config::from_vars([("MINGUS_QUEUE_TIMEOUT_SECS", "reports")]).unwrap_err();
    assert_eq!(err.variable(), "MINGUS_QUEUE_TIMEOUT_SECS");
}

#[test]
fn an_unknown_queue_in_timeouts_names_its_own_variable() {
    let err = Config::from_vars([("MINGUS_QUEUE_TIMEOUT_SECS", "mail=2")]).unwrap_err();
    assert_eq!(err.variable(), "MINGUS_QUEUE_TIMEOUT_SECS");
}

#[test]
fn frontend_api_settings_default_to_supabase_tokens_and_validate_the_user_rate_limit() {
    let config = Config::from_vars(dev()).unwrap();
    assert_eq!(config.frontend.jwt_audience, "authenticated");
    assert_eq!(config.frontend.user_rate_limit_per_hour, 3_600);
    let config = Config::from_vars([
        ("MINGUS_JWT_AUDIENCE", "mingus-web"),
        ("MINGUS_USER_RATE_LIMIT_PER_HOUR", "120"),
    ])
    .unwrap();
    assert_eq!(config.frontend.jwt_audience, "mingus-web");
    assert_eq!(config.frontend.user_rate_limit_per_hour, 120);
    for (name, value) in [
        ("MINGUS_USER_RATE_LIMIT_PER_HOUR", "0"),
        ("MINGUS_USER_RATE_LIMIT_PER_HOUR", "1000001"),
        ("MINGUS_USER_RATE_LIMIT_PER_HOUR", "-5"),
        ("MINGUS_USER_RATE_LIMIT_PER_HOUR", "lots"),
        ("MINGUS_JWT_AUDIENCE", "two words"),
    ] {
        let err = Config::from_vars([(name, value)]).unwrap_err();
        assert_eq!(err.variable(), name, "{name}={value}: {err}");
    }
}

#[test]
fn a_jwks_url_is_an_https_url_in_production_and_can_stand_in_for_the_jwt_secret() {
    const JWKS: &str = "https://project.supabase.co/auth/v1/.well-known/jwks.json";
    let config = Config::from_vars(with(&production(), "MINGUS_JWT_JWKS_URL", JWKS)).unwrap();
    assert_eq!(
        config.frontend.jwt_jwks_url.as_ref().map(|u| u.as_str()),
        Some(JWKS)
    );
    // The key set alone is enough to check user tokens; neither is refused.
    let without_secret = without(&production(), "MINGUS_JWT_SECRET");
    Config::from_vars(with(&without_secret, "MINGUS_JWT_JWKS_URL", JWKS)).unwrap();
    for (value, production_only) in [
        ("http://issuer.example/jwks.json", true),
        ("ftp://issuer.example/jwks.json", false),
        ("not a url", false),
        ("file:///etc/jwks.json", false),
    ] {
        let err = Config::from_vars(with(&production(), "MINGUS_JWT_JWKS_URL", value)).unwrap_err();
        assert_eq!(err.variable(), "MINGUS_JWT_JWKS_URL", "{value}: {err}");
        let in_development = Config::from_vars(with(&dev(), "MINGUS_JWT_JWKS_URL", value));
        assert_eq!(in_development.is_ok(), production_only, "{value}");
    }
    let unset = Config::from_vars(dev()).unwrap();
    assert_eq!(unset.frontend.jwt_jwks_url, None);
}
