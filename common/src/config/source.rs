//! Where the variables come from: the process environment (refusing non-UTF-8 values with the variable's
//! name instead of panicking, as `std::env::vars` would) and secret files named by `*_FILE` variables,
//! the way systemd's `LoadCredential=`, Docker and Kubernetes secrets hand secrets to a process without
//! putting them in its environment (where `/proc/<pid>/environ` and crash reports would show them).

use std::collections::HashMap;

use super::ConfigError;

/// Every secret, and the variable that may name a file holding it instead.
pub const SECRET_FILES: [(&str, &str); 8] = [
    ("DATABASE_URL", "DATABASE_URL_FILE"),
    ("REDIS_URL", "REDIS_URL_FILE"),
    ("SMTP_URL", "SMTP_URL_FILE"),
    ("STRIPE_WEBHOOK_SECRETS", "STRIPE_WEBHOOK_SECRETS_FILE"),
    ("STRIPE_API_KEY", "STRIPE_API_KEY_FILE"),
    ("MINGUS_JWT_SECRET", "MINGUS_JWT_SECRET_FILE"),
    ("MINGUS_ADMIN_TOKEN", "MINGUS_ADMIN_TOKEN_FILE"),
    (
        "MINGUS_UNSUBSCRIBE_SECRET",
        "MINGUS_UNSUBSCRIBE_SECRET_FILE",
    ),
];

/// The process environment as UTF-8 pairs. A variable whose name or value is not UTF-8 is an error that
/// names it (lossily), whichever variable it is: a process must not start on an environment it misreads.
pub fn process_environment() -> Result<HashMap<String, String>, ConfigError> {
    let mut map = HashMap::new();
    for (name, value) in std::env::vars_os() {
        let shown = name.to_string_lossy().into_owned();
        let name = name
            .into_string()
            .map_err(|_| ConfigError::NotUnicode(shown.clone()))?;
        let value = value
            .into_string()
            .map_err(|_| ConfigError::NotUnicode(shown))?;
        map.insert(name, value);
    }
    Ok(map)
}

/// Replaces each `X_FILE` of [`SECRET_FILES`] by `X` holding the file's content (one trailing line break
/// removed, as `echo` and editors leave one). Setting both `X` and `X_FILE` is refused: which one wins
/// would be a guess.
pub fn resolve_secret_files(map: &mut HashMap<String, String>) -> Result<(), ConfigError> {
    for (name, file_variable) in SECRET_FILES {
        let Some(path) = map.get(file_variable).map(|p| p.trim().to_owned()) else {
            continue;
        };
        if path.is_empty() {
            continue;
        }
        if map.get(name).is_some_and(|v| !v.trim().is_empty()) {
            return Err(ConfigError::invalid(
                file_variable,
                format!("{name} is set as well; set one of the two"),
            ));
        }
        let bytes = std::fs::read(&path)
            .map_err(|e| ConfigError::invalid(file_variable, format!("cannot read {path}: {e}")))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| ConfigError::invalid(file_variable, format!("{path} is not UTF-8")))?;
        let secret = text
            .strip_suffix("\r\n")
            .or_else(|| text.strip_suffix('\n'))
            .unwrap_or(&text);
        if secret.trim().is_empty() {
            return Err(ConfigError::invalid(
                file_variable,
                format!("{path} is empty"),
            ));
        }
        map.insert(name.to_owned(), secret.to_owned());
        map.remove(file_variable);
    }
    Ok(())
}

/// Which settings a process uses. Production refuses a missing secret only where the process needs it:
/// `mingus-admin migrate` runs with nothing but `DATABASE_URL`, the scheduler without the HTTP secrets. A
/// setting a process does not need takes its development default, which that process never uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    /// `REDIS_URL`.
    pub redis: bool,
    /// `SMTP_URL` and `MAIL_FROM` (sending e-mail).
    pub smtp: bool,
    /// `STRIPE_WEBHOOK_SECRETS`, `MINGUS_JWT_SECRET`, `MINGUS_ADMIN_TOKEN` (serving HTTP).
    pub http_secrets: bool,
    /// `MINGUS_UNSUBSCRIBE_SECRET`, `MINGUS_PUBLIC_URL`, `MINGUS_APP_URL` (links in e-mails and the
    /// unsubscribe page).
    pub email_links: bool,
}

impl Needs {
    /// Everything: what tests and a single all-in-one process use.
    pub const ALL: Needs = Needs {
        redis: true,
        smtp: true,
        http_secrets: true,
        email_links: true,
    };
    /// `mingus-api`: webhooks, the `/v1` API, `/ops`, the unsubscribe page; it sends no e-mail.
    pub const API: Needs = Needs {
        smtp: false,
        ..Needs::ALL
    };
    /// `mingus-worker`: sends e-mail, talks to Stripe; serves no authenticated HTTP.
    pub const WORKER: Needs = Needs {
        http_secrets: false,
        ..Needs::ALL
    };
    /// `mingus-scheduler`: enqueues jobs.
    pub const SCHEDULER: Needs = Needs {
        redis: true,
        smtp: false,
        http_secrets: false,
        email_links: false,
    };
    /// `mingus-admin` commands that touch only the database (migrations, partitions, demo data).
    pub const DATABASE: Needs = Needs {
        redis: false,
        ..Needs::SCHEDULER
    };
}
