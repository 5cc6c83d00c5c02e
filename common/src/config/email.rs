//! E-mail settings: the SMTP server (`SMTP_URL`, parsed and validated here), the sender, the pool and
//! timeouts, the base URLs of the links in e-mails, the unsubscribe secret and the delivery lease.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::ConfigError;
use super::parse::Vars;

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// `smtp://host` — no TLS (a local relay or test server only; refused to remote hosts in production).
    Plain,
    /// `smtp://host?tls=opportunistic` — STARTTLS when the server offers it.
    StartTlsOpportunistic,
    /// `smtp://host?tls=required` — STARTTLS or fail.
    StartTlsRequired,
    /// `smtps://host` — TLS from the first byte (port 465).
    ImplicitTls,
}

/// `SMTP_URL` taken apart: `smtp[s]://[user[:password]@]host[:port][/ehlo-name][?tls=required|opportunistic]`.
#[derive(Debug, Clone)]
pub struct SmtpServer {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    /// User name and password (percent-decoded).
    pub credentials: Option<(String, SecretString)>,
    /// The name we announce in EHLO (default: this machine's host name).
    pub hello_name: Option<String>,
}

/// Everything the e-mail sender and the e-mail templates need.
#[derive(Debug, Clone)]
pub struct EmailConfig {
    pub smtp: SmtpServer,
    /// `MAIL_FROM` parsed (`Name <address>` or a bare address).
    pub from: lettre::message::Mailbox,
    /// The domain of `MAIL_FROM`: the right-hand side of every Message-ID we mint.
    pub from_domain: String,
    /// At most this many SMTP connections at once (and kept open between messages).
    pub pool_size: u32,
    /// TCP connect, TLS handshake, greeting, EHLO, STARTTLS and AUTH together.
    pub connect_timeout: Duration,
    /// The message transaction (MAIL FROM … the reply to the end of DATA), and the liveness check of a
    /// pooled connection.
    pub command_timeout: Duration,
    /// A PEM file of extra CA certificates to trust (a private relay's CA; the tests' own server).
    pub tls_ca_file: Option<String>,
    /// Base URL of this API as recipients reach it (the unsubscribe link points here).
    pub public_url: String,
    /// Base URL of the Mingus web app (the other links in e-mails point there).
    pub app_url: String,
    /// Signs unsubscribe links. Missing in development: non-transactional e-mails cannot be sent.
    pub unsubscribe_secret: Option<SecretString>,
    /// How long a claimed delivery belongs to the job that claimed it; a crashed sender's delivery is
    /// claimed again after this. Longer than the connect and command timeouts together.
    pub lease: Duration,
    /// Test knob (refused in production): sleep this long after the server accepted a message and
    /// before the delivery is marked `sent`, so a test can kill the worker inside that window.
    pub pause_after_accept: Option<Duration>,
}

pub(super) fn parse(
    vars: &Vars<'_>,
    smtp_url: &SecretString,
    mail_from: &str,
    production: bool,
) -> Result<EmailConfig, ConfigError> {
    let smtp = parse_smtp_url(smtp_url.expose_secret())
        .map_err(|reason| ConfigError::invalid("SMTP_URL", reason))?;
    let from: lettre::message::Mailbox = mail_from
        .parse()
        .map_err(|e| ConfigError::invalid("MAIL_FROM", format!("not a mailbox: {e}")))?;
    let from_domain = from.email.domain().to_owned();
    let dev = !production;
    let config = EmailConfig {
        smtp,
        from,
        from_domain,
        pool_size: vars.parse("SMTP_POOL_SIZE", 10)?,
        connect_timeout: vars.seconds("SMTP_CONNECT_TIMEOUT_SECS", 10)?,
        command_timeout: vars.seconds("SMTP_COMMAND_TIMEOUT_SECS", 30)?,
        tls_ca_file: vars.optional_string("SMTP_TLS_CA_FILE"),
        public_url: base_url(
            vars,
            "MINGUS_PUBLIC_URL",
            dev.then_some("http://127.0.0.1:8080"),
        )?,
        app_url: base_url(
            vars,
            "MINGUS_APP_URL",
            dev.then_some("http://127.0.0.1:3000"),
        )?,
        unsubscribe_secret: vars.optional_secret("MINGUS_UNSUBSCRIBE_SECRET")?,
        lease: vars.seconds("MINGUS_EMAIL_LEASE_SECS", 120)?,
        pause_after_accept: match vars.parse("MINGUS_EMAIL_TEST_PAUSE_AFTER_ACCEPT_MS", 0u64)? {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        },
    };
    if config.pool_size == 0 || config.pool_size > 1_000 {
        return Err(ConfigError::invalid(
            "SMTP_POOL_SIZE",
            "must be between 1 and 1000",
        ));
    }
    for (name, value) in [
        ("SMTP_CONNECT_TIMEOUT_SECS", config.connect_timeout),
        ("SMTP_COMMAND_TIMEOUT_SECS", config.command_timeout),
    ] {
        if value.is_zero() {
            return Err(ConfigError::invalid(name, "must be at least 1"));
        }
    }
    if config.lease <= config.connect_timeout + config.command_timeout {
        return Err(ConfigError::invalid(
            "MINGUS_EMAIL_LEASE_SECS",
            format!(
                "must exceed SMTP_CONNECT_TIMEOUT_SECS + SMTP_COMMAND_TIMEOUT_SECS ({} s), or a slow send \
                 could be claimed by a second job while it is still talking to the server",
                (config.connect_timeout + config.command_timeout).as_secs()
            ),
        ));
    }
    Ok(config)
}

/// An absolute http(s) base URL without a trailing slash. Missing in production: empty here, and the
/// production check names the variable (after the checks of the secrets, whose errors come first).
fn base_url(vars: &Vars<'_>, name: &'static str, dev: Option<&str>) -> Result<String, ConfigError> {
    let Ok(raw) = vars.string_or_dev_default(name, dev) else {
        return Ok(String::new());
    };
    let parsed = url::Url::parse(&raw).map_err(|e| ConfigError::invalid(name, e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(ConfigError::invalid(
            name,
            "expected an absolute http(s) URL",
        ));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(ConfigError::invalid(
            name,
            "a base URL has no query or fragment",
        ));
    }
    Ok(raw.trim_end_matches('/').to_owned())
}

/// Parses `SMTP_URL` (the forms lettre's `from_url` knows, checked strictly). Anything we would otherwise
/// ignore or misread is an error in every environment: `smtp://host/tls=required` once meant clear text
/// announced as EHLO "tls=required".
pub fn parse_smtp_url(raw: &str) -> Result<SmtpServer, String> {
    let url = url::Url::parse(raw).map_err(|e| format!("not a URL: {e}"))?;
    if url.fragment().is_some() {
        return Err(
            "a '#' part is not an option: options go after '?' (e.g. ?tls=required)".into(),
        );
    }
    let mut tls = None;
    for (key, value) in url.query_pairs() {
        match key.as_ref() {
            "tls" if tls.is_none() => tls = Some(value.into_owned()),
            "tls" => return Err("option tls given twice".into()),
            other => return Err(format!("unknown option {other:?} (the only option is tls)")),
        }
    }
    let (security, default_port) = match (url.scheme(), tls.as_deref()) {
        ("smtp", None) => (SmtpSecurity::Plain, 25),
        ("smtp", Some("required")) => (SmtpSecurity::StartTlsRequired, 587),
        ("smtp", Some("opportunistic")) => (SmtpSecurity::StartTlsOpportunistic, 587),
        ("smtps", None) => (SmtpSecurity::ImplicitTls, 465),
        ("smtps", Some(_)) => return Err("smtps:// takes no tls parameter".into()),
        ("smtp", Some(other)) => {
            return Err(format!("tls={other:?}: expected required or opportunistic"));
        }
        (scheme, _) => return Err(format!("scheme {scheme:?}: expected smtp or smtps")),
    };
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or("no host")?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| "credentials are not UTF-8 after percent-decoding".to_owned())
    };
    let credentials = match (url.username(), url.password()) {
        ("", None) => None,
        (user, Some(password)) => Some((decode(user)?, SecretString::from(decode(password)?))),
        (_, None) => return Err("a user name without a password".into()),
    };
    Ok(SmtpServer {
        host,
        port: url.port().unwrap_or(default_port),
        security,
        credentials,
        hello_name: hello_name(url.path())?,
    })
}

/// The URL's path is the EHLO name and nothing else: `/mail.example.com`, or empty.
fn hello_name(path: &str) -> Result<Option<String>, String> {
    let name = path.strip_prefix('/').unwrap_or(path);
    if name.is_empty() {
        return Ok(None);
    }
    // An option written where the EHLO name goes (`/tls=required`, `/?tls=…` percent-encoded, a second
    // path segment) would otherwise be announced to the server and the option silently dropped.
    if name.contains(['=', '/', '?', '&']) || name.contains("%3F") || name.contains("%3f") {
        return Err(format!(
            "the path is the EHLO name, and {name:?} is not one: options go after '?' \
             (e.g. smtp://host:587?tls=required)"
        ));
    }
    let is_hostname = name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if !is_hostname {
        return Err(format!(
            "EHLO name {name:?} (the path) is not a host name: letters, digits, hyphens and dots"
        ));
    }
    Ok(Some(name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls_name_plain_starttls_and_implicit_tls() {
        let plain = parse_smtp_url("smtp://127.0.0.1:2525").unwrap();
        assert_eq!(
            (plain.host.as_str(), plain.port, plain.security),
            ("127.0.0.1", 2525, SmtpSecurity::Plain)
        );
        assert!(plain.credentials.is_none());
        let starttls =
            parse_smtp_url("smtp://mailer:p%40ss@smtp.example.com?tls=required").unwrap();
        assert_eq!(starttls.port, 587);
        assert_eq!(starttls.security, SmtpSecurity::StartTlsRequired);
        let (user, password) = starttls.credentials.unwrap();
        assert_eq!(
            (user.as_str(), password.expose_secret()),
            ("mailer", "p@ss")
        );
        let opportunistic = parse_smtp_url("smtp://relay:2587?tls=opportunistic").unwrap();
        assert_eq!(opportunistic.security, SmtpSecurity::StartTlsOpportunistic);
        let implicit = parse_smtp_url("smtps://u:p@smtp.example.com/mingus.app").unwrap();
        assert_eq!(
            (implicit.port, implicit.security),
            (465, SmtpSecurity::ImplicitTls)
        );
        assert_eq!(implicit.hello_name.as_deref(), Some("mingus.app"));
        assert_eq!(parse_smtp_url("smtp://[::1]:25").unwrap().host, "::1");
    }

    #[test]
    fn bad_smtp_urls_are_refused_with_a_reason() {
        for bad in [
            "mail.example.com",
            "http://mail.example.com",
            "smtp://host?tls=maybe",
            "smtps://host?tls=required",
            "smtp://host?timeout=3",
            "smtp://user@host",
        ] {
            assert!(parse_smtp_url(bad).is_err(), "{bad} must be refused");
        }
    }
}
