//! How production reaches PostgreSQL and Redis: over TLS that checks the server's certificate, unless the
//! server is on this machine (a loopback address, a unix socket) or the operator named its host in
//! `MINGUS_ALLOW_PLAINTEXT_TO`.
//!
//! Both URLs carry the password of their server, and the traffic is every user's financial data: in clear
//! text, anyone on the path between the hosts reads both. TLS that is merely attempted (libpq's default
//! `sslmode=prefer`) or not verified (`sslmode=require`, `rediss://…#insecure`) does not help against
//! someone who can rewrite that traffic, so only `verify-full`/`verify-ca` and `rediss://` count.
//!
//! The opt-out is a list of hosts rather than a switch: a private network an operator trusts is a fact
//! about particular hosts, and a switch would also cover the next host someone points a URL at.

use std::net::IpAddr;

use secrecy::ExposeSecret;

use super::parse::Vars;
use super::{Config, ConfigError, Needs};

/// The opt-out: comma-separated host names or addresses that may be reached without verified TLS.
pub(super) const ALLOW_PLAINTEXT_TO: &str = "MINGUS_ALLOW_PLAINTEXT_TO";

pub(super) fn check(config: &Config, vars: &Vars<'_>, needs: Needs) -> Result<(), ConfigError> {
    let allowed = allowed_hosts(vars)?;
    check_database(config.database.url.expose_secret(), vars, &allowed)?;
    if needs.redis {
        check_redis(config.redis.url.expose_secret(), &allowed)?;
    }
    Ok(())
}

/// True for a server on this machine: 127.0.0.0/8, ::1 (also as ::ffff:127.x), `localhost`, or a unix
/// socket path (PostgreSQL's `host=/var/run/postgresql`).
pub(super) fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.starts_with('/')
        || host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

fn allowed_hosts(vars: &Vars<'_>) -> Result<Vec<String>, ConfigError> {
    let Some(raw) = vars.optional_string(ALLOW_PLAINTEXT_TO) else {
        return Ok(Vec::new());
    };
    super::parse::list_items(&raw)
        .map(|entry| {
            let host = entry.trim_start_matches('[').trim_end_matches(']');
            let is_name = host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
            if host.parse::<IpAddr>().is_ok() || (is_name && !host.is_empty()) {
                Ok(host.to_ascii_lowercase())
            } else {
                Err(ConfigError::invalid(
                    ALLOW_PLAINTEXT_TO,
                    format!("{entry:?} is not a host name or address (name each host; no ports, ranges or wildcards)"),
                ))
            }
        })
        .collect()
}

fn is_allowed(host: &str, allowed: &[String]) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let address = host.parse::<IpAddr>().ok();
    allowed.iter().any(|entry| match address {
        Some(ip) => entry.parse::<IpAddr>() == Ok(ip),
        None => entry.eq_ignore_ascii_case(host.trim_end_matches('.')),
    })
}

/// The host sqlx will connect to and the TLS mode it will use, worked out the way sqlx does: the URL's
/// host, overridden by `host=`/`hostaddr=` in the query (the last one wins); without a host, `PGHOSTADDR`
/// or `PGHOST`, else a local socket or `localhost`. The mode: the last `sslmode=`, else `PGSSLMODE`, else
/// `prefer`.
fn check_database(raw: &str, vars: &Vars<'_>, allowed: &[String]) -> Result<(), ConfigError> {
    const NAME: &str = "DATABASE_URL";
    // Only the parser's reason is shown: the URL itself holds the password.
    let url =
        url::Url::parse(raw).map_err(|e| ConfigError::invalid(NAME, format!("not a URL: {e}")))?;
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        return Err(ConfigError::invalid(
            NAME,
            format!("scheme {:?}: expected postgres or postgresql", url.scheme()),
        ));
    }
    let mut host = url.host_str().filter(|h| !h.is_empty()).map(|h| {
        percent_encoding::percent_decode_str(h)
            .decode_utf8_lossy()
            .into_owned()
    });
    let mut mode = None;
    for (key, value) in url.query_pairs() {
        match key.as_ref() {
            "host" | "hostaddr" => host = Some(value.into_owned()),
            "sslmode" | "ssl-mode" => mode = Some(value.to_ascii_lowercase()),
            _ => {}
        }
    }
    let host = host
        .or_else(|| vars.optional_string("PGHOSTADDR"))
        .or_else(|| vars.optional_string("PGHOST"))
        .unwrap_or_else(|| "localhost".to_owned());
    let from_environment = mode.is_none();
    let mode = mode
        .or_else(|| {
            vars.optional_string("PGSSLMODE")
                .map(|m| m.to_ascii_lowercase())
        })
        .unwrap_or_else(|| "prefer".to_owned());
    if !matches!(
        mode.as_str(),
        "disable" | "allow" | "prefer" | "require" | "verify-ca" | "verify-full"
    ) {
        return Err(ConfigError::invalid(
            NAME,
            format!(
                "sslmode={mode:?}: expected disable, allow, prefer, require, verify-ca or verify-full"
            ),
        ));
    }
    if matches!(mode.as_str(), "verify-full" | "verify-ca")
        || is_loopback(&host)
        || is_allowed(&host, allowed)
    {
        return Ok(());
    }
    let what = match mode.as_str() {
        "require" => {
            "sslmode=require encrypts but does not check the server's certificate".to_owned()
        }
        _ if from_environment => format!(
            "no sslmode in the URL (sslmode={mode}: falls back to clear text when TLS fails)"
        ),
        _ => format!("sslmode={mode} may send the password and data in clear text"),
    };
    Err(ConfigError::insecure(
        NAME,
        format!(
            "{what}, to {host}, which is not this machine: add sslmode=verify-full (or verify-ca), \
             or name {host} in {ALLOW_PLAINTEXT_TO} if it is on a private network you trust"
        ),
    ))
}

fn check_redis(raw: &str, allowed: &[String]) -> Result<(), ConfigError> {
    const NAME: &str = "REDIS_URL";
    let url =
        url::Url::parse(raw).map_err(|e| ConfigError::invalid(NAME, format!("not a URL: {e}")))?;
    let tls = match url.scheme() {
        // A unix socket never leaves the machine.
        "unix" | "redis+unix" | "valkey+unix" => return Ok(()),
        "rediss" | "valkeys" => true,
        "redis" | "valkey" => false,
        other => {
            return Err(ConfigError::invalid(
                NAME,
                format!("scheme {other:?}: expected redis, rediss or redis+unix"),
            ));
        }
    };
    let host = url.host_str().unwrap_or_default().to_owned();
    if is_loopback(&host) || is_allowed(&host, allowed) {
        return Ok(());
    }
    let what = match (tls, url.fragment()) {
        (true, Some("insecure")) => "rediss://…#insecure does not check the server's certificate",
        (true, _) => return Ok(()),
        (false, _) => "plain redis:// sends the password and every job in clear text",
    };
    Err(ConfigError::insecure(
        NAME,
        format!(
            "{what}, to {host}, which is not this machine: use rediss://, or name {host} in \
             {ALLOW_PLAINTEXT_TO} if it is on a private network you trust"
        ),
    ))
}
