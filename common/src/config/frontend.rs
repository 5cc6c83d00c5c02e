//! Settings of the frontend API (`/v1`): the audience user tokens must carry and the hourly rate limit of
//! calls made with a user token (API keys carry their own limit, and their tier's).

use super::ConfigError;
use super::parse::{Vars, list_items};

/// Supabase issues user tokens with `aud = "authenticated"`.
pub const DEFAULT_JWT_AUDIENCE: &str = "authenticated";
/// Supabase's role claim of a signed-in user. `anon` (the public key) and `service_role` (the backend's
/// key) are not users and may not act as one.
pub const DEFAULT_JWT_USER_ROLES: &str = "authenticated";
/// One call a second on average, with the whole hour's budget available as a burst.
pub const DEFAULT_USER_RATE_LIMIT_PER_HOUR: u32 = 3_600;
/// The same ceiling as `api_keys.rate_limit_per_hour`'s CHECK.
pub const MAX_RATE_LIMIT_PER_HOUR: u32 = 1_000_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontendConfig {
    /// `MINGUS_JWT_AUDIENCE`: the `aud` a user token must name (one of them, when it is a list).
    pub jwt_audience: String,
    /// `MINGUS_JWT_USER_ROLES`: comma-separated `role` claims that may act as the user in `sub`
    /// (a token without `role` counts as `authenticated`).
    pub jwt_user_roles: Vec<String>,
    /// `MINGUS_USER_RATE_LIMIT_PER_HOUR`: calls per user and hour made with a user token (JWT).
    pub user_rate_limit_per_hour: u32,
    /// `MINGUS_CORS_ORIGINS`: comma-separated origins (`https://app.example.com`) whose pages may call
    /// `/v1` from the browser; empty (the default) answers no cross-origin request.
    pub cors_origins: Vec<String>,
    /// `MINGUS_JWT_JWKS_URL`: the JSON Web Key Set of the token issuer (Supabase:
    /// `https://<project>.supabase.co/auth/v1/.well-known/jwks.json`); ES256 and RS256 user tokens are
    /// verified with its keys (by `kid`). Unset: HS256 with `MINGUS_JWT_SECRET` only.
    pub jwt_jwks_url: Option<url::Url>,
}

pub(super) fn parse(vars: &Vars<'_>) -> Result<FrontendConfig, ConfigError> {
    let jwt_audience = vars.string("MINGUS_JWT_AUDIENCE", DEFAULT_JWT_AUDIENCE)?;
    if jwt_audience.chars().any(char::is_whitespace) {
        return Err(ConfigError::invalid(
            "MINGUS_JWT_AUDIENCE",
            "must not contain spaces",
        ));
    }
    let jwt_user_roles: Vec<String> =
        list_items(&vars.string("MINGUS_JWT_USER_ROLES", DEFAULT_JWT_USER_ROLES)?)
            .map(str::to_owned)
            .collect();
    if jwt_user_roles.is_empty() {
        return Err(ConfigError::invalid(
            "MINGUS_JWT_USER_ROLES",
            "names no role: no user token could act",
        ));
    }
    if let Some(role) = jwt_user_roles
        .iter()
        .find(|role| matches!(role.as_str(), "anon" | "service_role"))
    {
        return Err(ConfigError::invalid(
            "MINGUS_JWT_USER_ROLES",
            format!("{role:?} is not a signed-in user's role"),
        ));
    }
    let user_rate_limit_per_hour = vars.parse(
        "MINGUS_USER_RATE_LIMIT_PER_HOUR",
        DEFAULT_USER_RATE_LIMIT_PER_HOUR,
    )?;
    if !(1..=MAX_RATE_LIMIT_PER_HOUR).contains(&user_rate_limit_per_hour) {
        return Err(ConfigError::invalid(
            "MINGUS_USER_RATE_LIMIT_PER_HOUR",
            format!("must be between 1 and {MAX_RATE_LIMIT_PER_HOUR}"),
        ));
    }
    let cors_origins = list_items(&vars.string("MINGUS_CORS_ORIGINS", "")?)
        .map(|origin| {
            origin_valid(origin).then(|| origin.to_owned()).ok_or_else(|| {
                ConfigError::invalid(
                    "MINGUS_CORS_ORIGINS",
                    format!(
                        "{origin:?} is not an origin: scheme and host (and port), no path, no wildcard"
                    ),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let jwt_jwks_url = vars
        .optional_string("MINGUS_JWT_JWKS_URL")
        .filter(|url| !url.trim().is_empty())
        .map(|raw| {
            let url = url::Url::parse(raw.trim())
                .map_err(|err| ConfigError::invalid("MINGUS_JWT_JWKS_URL", err.to_string()))?;
            match url.scheme() {
                "https" | "http" if url.host().is_some() => Ok(url),
                _ => Err(ConfigError::invalid(
                    "MINGUS_JWT_JWKS_URL",
                    "must be an http(s) URL with a host",
                )),
            }
        })
        .transpose()?;
    Ok(FrontendConfig {
        jwt_audience,
        jwt_user_roles,
        user_rate_limit_per_hour,
        cors_origins,
        jwt_jwks_url,
    })
}

/// `scheme://host[:port]` exactly as a browser sends it in `Origin`: http or https, a host of letters,
/// digits, dots and hyphens (or a bracketed IPv6 address), no path, no trailing slash and no `*` (a
/// wildcard would let any site's scripts call the API with a user's token they obtained).
fn origin_valid(origin: &str) -> bool {
    let Some((scheme, rest)) = origin.split_once("://") else {
        return false;
    };
    if !matches!(scheme, "http" | "https") || rest.is_empty() {
        return false;
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || rest.starts_with('[') => (host, Some(port)),
        _ => (rest, None),
    };
    let host_ok = if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        inner.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
    };
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
    host_ok && port_ok
}

#[cfg(test)]
mod tests {
    use super::origin_valid;

    #[test]
    fn origins_are_scheme_host_and_port_only() {
        for ok in [
            "https://app.mingus.com",
            "http://localhost:5173",
            "https://[::1]:8443",
            "http://127.0.0.1:3000",
        ] {
            assert!(origin_valid(ok), "{ok}");
        }
        for bad in [
            "*",
            "https://*.mingus.com",
            "app.mingus.com",
            "https://app.mingus.com/",
            "https://app.mingus.com/path",
            "ftp://app.mingus.com",
            "https://app.mingus.com:0",
            "https://app.mingus.com:99999",
            "https://",
        ] {
            assert!(!origin_valid(bad), "{bad}");
        }
    }
}
