//! Production refuses to start on a missing secret or an insecure setting, and names the variable.

use secrecy::ExposeSecret;

use super::email::SmtpSecurity;
use super::parse::Vars;
use super::secrets::{self, WEBHOOK_PREFIX};
use super::{Config, ConfigError, Needs, transport};

pub(super) fn check(config: &Config, vars: &Vars<'_>, needs: Needs) -> Result<(), ConfigError> {
    if needs.http_secrets {
        check_http_secrets(config)?;
    }
    transport::check(config, vars, needs)?;
    super::listen::check_production(&config.listen)?;
    if let Some(key) = &config.stripe_api_key
        && key.expose_secret().starts_with("sk_test_")
    {
        return Err(ConfigError::insecure(
            "STRIPE_API_KEY",
            "a test-mode key in production",
        ));
    }
    if !config.stripe_api_base.starts_with("https://") {
        return Err(ConfigError::insecure("STRIPE_API_BASE", "must use https"));
    }
    // The keys that authenticate every user: fetched over anything but TLS, they could be swapped.
    if let Some(url) = &config.frontend.jwt_jwks_url
        && url.scheme() != "https"
    {
        return Err(ConfigError::insecure(
            "MINGUS_JWT_JWKS_URL",
            "must use https",
        ));
    }
    if needs.smtp {
        check_smtp(config)?;
    }
    if needs.email_links {
        check_email_links(config)?;
    }
    secrets::check_all_different(&needed_secrets(config, needs))?;
    if config.email.pause_after_accept.is_some() {
        return Err(ConfigError::insecure(
            "MINGUS_EMAIL_TEST_PAUSE_AFTER_ACCEPT_MS",
            "a test knob",
        ));
    }
    Ok(())
}

/// The secrets this process uses, in the order of the contract (the later of two equal ones is named).
fn needed_secrets(config: &Config, needs: Needs) -> Vec<(&'static str, &str)> {
    let mut out = Vec::new();
    if needs.http_secrets {
        for (name, secret) in [
            ("MINGUS_JWT_SECRET", &config.jwt_secret),
            ("MINGUS_ADMIN_TOKEN", &config.admin_token),
        ] {
            if let Some(secret) = secret {
                out.push((name, secret.expose_secret()));
            }
        }
        for secret in &config.stripe_webhook_secrets {
            out.push(("STRIPE_WEBHOOK_SECRETS", secret.expose_secret()));
        }
    }
    if needs.email_links
        && let Some(secret) = &config.email.unsubscribe_secret
    {
        out.push(("MINGUS_UNSUBSCRIBE_SECRET", secret.expose_secret()));
    }
    out
}

/// The secrets of the HTTP surface: webhook signatures, `/v1` tokens, the operator token.
fn check_http_secrets(config: &Config) -> Result<(), ConfigError> {
    if config.stripe_webhook_secrets.is_empty() {
        return Err(ConfigError::Missing("STRIPE_WEBHOOK_SECRETS"));
    }
    if let Some(bad) = config
        .stripe_webhook_secrets
        .iter()
        .find(|s| !s.expose_secret().starts_with(WEBHOOK_PREFIX))
    {
        let shown: String = bad.expose_secret().chars().take(3).collect();
        return Err(ConfigError::invalid(
            "STRIPE_WEBHOOK_SECRETS",
            format!("entry starting {shown:?}… is not a whsec_ secret"),
        ));
    }
    for (position, secret) in config.stripe_webhook_secrets.iter().enumerate() {
        let random_part = &secret.expose_secret()[WEBHOOK_PREFIX.len()..];
        secrets::check_variety(random_part).map_err(|reason| {
            ConfigError::insecure(
                "STRIPE_WEBHOOK_SECRETS",
                format!("entry {}: {reason}", position + 1),
            )
        })?;
    }
    // User tokens need a way to be checked: the HS256 secret, the issuer's key set, or both.
    match &config.jwt_secret {
        Some(jwt) => secrets::check_strength("MINGUS_JWT_SECRET", jwt.expose_secret(), "bytes")?,
        None if config.frontend.jwt_jwks_url.is_some() => {}
        None => return Err(ConfigError::Missing("MINGUS_JWT_SECRET")),
    }
    let admin = config
        .admin_token
        .as_ref()
        .ok_or(ConfigError::Missing("MINGUS_ADMIN_TOKEN"))?;
    secrets::check_strength("MINGUS_ADMIN_TOKEN", admin.expose_secret(), "characters")
}

fn check_smtp(config: &Config) -> Result<(), ConfigError> {
    // Judged on the parsed URL, not its text: "tls=required" written anywhere else (in the password, in
    // the path) must not pass for STARTTLS.
    let smtp = &config.email.smtp;
    let secured = matches!(
        smtp.security,
        SmtpSecurity::StartTlsRequired | SmtpSecurity::ImplicitTls
    );
    // Clear text (or STARTTLS that a man in the middle can strip) is fine to a relay on this machine.
    if !secured && !transport::is_loopback(&smtp.host) {
        return Err(ConfigError::insecure(
            "SMTP_URL",
            "no enforced TLS to a remote host; use smtps:// or smtp://…?tls=required",
        ));
    }
    Ok(())
}

/// What links in e-mails and the unsubscribe page are built from.
fn check_email_links(config: &Config) -> Result<(), ConfigError> {
    let email = &config.email;
    let unsubscribe = email
        .unsubscribe_secret
        .as_ref()
        .ok_or(ConfigError::Missing("MINGUS_UNSUBSCRIBE_SECRET"))?;
    secrets::check_strength(
        "MINGUS_UNSUBSCRIBE_SECRET",
        unsubscribe.expose_secret(),
        "bytes",
    )?;
    for (name, url) in [
        ("MINGUS_PUBLIC_URL", &email.public_url),
        ("MINGUS_APP_URL", &email.app_url),
    ] {
        if url.is_empty() {
            return Err(ConfigError::Missing(name));
        }
        if !url.starts_with("https://") {
            return Err(ConfigError::insecure(
                name,
                "links in e-mails must use https",
            ));
        }
    }
    Ok(())
}
