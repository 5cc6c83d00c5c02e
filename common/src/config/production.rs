//! Production refuses to start on a missing secret or an insecure setting, and names the variable.

use secrecy::ExposeSecret;

use super::{Config, ConfigError, Needs};

const MIN_SECRET_LEN: usize = 32;

pub(super) fn check(config: &Config, needs: Needs) -> Result<(), ConfigError> {
    if needs.http_secrets {
        check_http_secrets(config)?;
    }
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
    if needs.smtp {
        check_smtp(config)?;
    }
    if needs.email_links {
        check_email_links(config)?;
    }
    if config.email.pause_after_accept.is_some() {
        return Err(ConfigError::insecure(
            "MINGUS_EMAIL_TEST_PAUSE_AFTER_ACCEPT_MS",
            "a test knob",
        ));
    }
    Ok(())
}

/// The secrets of the HTTP surface: webhook signatures, `/v1` tokens, the operator token.
fn check_http_secrets(config: &Config) -> Result<(), ConfigError> {
    if config.stripe_webhook_secrets.is_empty() {
        return Err(ConfigError::Missing("STRIPE_WEBHOOK_SECRETS"));
    }
    if let Some(bad) = config
        .stripe_webhook_secrets
        .iter()
        .find(|s| !s.expose_secret().starts_with("whsec_"))
    {
        let shown: String = bad.expose_secret().chars().take(3).collect();
        return Err(ConfigError::invalid(
            "STRIPE_WEBHOOK_SECRETS",
            format!("entry starting {shown:?}… is not a whsec_ secret"),
        ));
    }
    let jwt = config
        .jwt_secret
        .as_ref()
        .ok_or(ConfigError::Missing("MINGUS_JWT_SECRET"))?;
    if jwt.expose_secret().len() < MIN_SECRET_LEN {
        return Err(ConfigError::insecure(
            "MINGUS_JWT_SECRET",
            format!("shorter than {MIN_SECRET_LEN} bytes"),
        ));
    }
    let admin = config
        .admin_token
        .as_ref()
        .ok_or(ConfigError::Missing("MINGUS_ADMIN_TOKEN"))?;
    if admin.expose_secret().len() < MIN_SECRET_LEN {
        return Err(ConfigError::insecure(
            "MINGUS_ADMIN_TOKEN",
            format!("shorter than {MIN_SECRET_LEN} characters"),
        ));
    }
    Ok(())
}

fn check_smtp(config: &Config) -> Result<(), ConfigError> {
    let smtp = config.smtp_url.expose_secret();
    // Plain smtp:// is fine to a local relay or when STARTTLS is enforced with ?tls=required.
    if smtp.starts_with("smtp://") && !smtp.contains("tls=required") && !points_at_loopback(smtp) {
        return Err(ConfigError::insecure(
            "SMTP_URL",
            "plain smtp:// to a remote host; use smtps:// or smtp://…?tls=required",
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
    if unsubscribe.expose_secret().len() < MIN_SECRET_LEN {
        return Err(ConfigError::insecure(
            "MINGUS_UNSUBSCRIBE_SECRET",
            format!("shorter than {MIN_SECRET_LEN} bytes"),
        ));
    }
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

/// True when the URL's host is a loopback address (plain SMTP to a local relay is acceptable).
fn points_at_loopback(url: &str) -> bool {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let host_port = after_scheme
        .rsplit_once('@')
        .map_or(after_scheme, |(_, rest)| rest);
    let host = host_port.split(['/', '?']).next().unwrap_or_default();
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    matches!(host, "127.0.0.1" | "localhost" | "[::1]")
}
