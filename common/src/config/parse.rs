//! Small parsing helpers that turn raw variables into typed values with messages naming the variable.

use std::collections::HashMap;
use std::fmt::Display;
use std::str::FromStr;
use std::time::Duration;

use secrecy::SecretString;

use super::{Environment, LogFormat};

/// Why the configuration could not be built. The message always names the variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("missing required environment variable {0}")]
    Missing(&'static str),
    #[error("failed to parse {name}: {reason}")]
    Invalid { name: &'static str, reason: String },
    #[error("insecure setting {name} refused in production: {reason}")]
    Insecure { name: &'static str, reason: String },
    #[error("environment variable {0} is not valid UTF-8")]
    NotUnicode(String),
}

impl ConfigError {
    pub fn invalid(name: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            name,
            reason: reason.into(),
        }
    }

    pub fn insecure(name: &'static str, reason: impl Into<String>) -> Self {
        Self::Insecure {
            name,
            reason: reason.into(),
        }
    }

    /// The variable this error is about.
    pub fn variable(&self) -> &str {
        match self {
            Self::Missing(name) | Self::Invalid { name, .. } | Self::Insecure { name, .. } => name,
            Self::NotUnicode(name) => name,
        }
    }
}

pub(super) struct Vars<'a> {
    map: &'a HashMap<String, String>,
}

impl<'a> Vars<'a> {
    pub fn new(map: &'a HashMap<String, String>) -> Self {
        Self { map }
    }

    /// The trimmed value, treating an empty variable as unset (as shells and compose files often leave them).
    fn get(&self, name: &str) -> Option<&'a str> {
        self.map
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    pub fn parse<T>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        self.parse_with(name, default, |raw| {
            raw.parse::<T>().map_err(|e| e.to_string())
        })
    }

    pub fn parse_with<T>(
        &self,
        name: &'static str,
        default: T,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => parse(raw).map_err(|reason| ConfigError::invalid(name, reason)),
        }
    }

    pub fn seconds(&self, name: &'static str, default: u64) -> Result<Duration, ConfigError> {
        self.parse(name, default).map(Duration::from_secs)
    }

    pub fn millis(&self, name: &'static str, default: u64) -> Result<Duration, ConfigError> {
        self.parse(name, default).map(Duration::from_millis)
    }

    pub fn string(&self, name: &'static str, default: &str) -> Result<String, ConfigError> {
        Ok(self.get(name).unwrap_or(default).to_owned())
    }

    pub fn string_or_dev_default(
        &self,
        name: &'static str,
        dev: Option<&str>,
    ) -> Result<String, ConfigError> {
        self.get(name)
            .or(dev)
            .map(str::to_owned)
            .ok_or(ConfigError::Missing(name))
    }

    /// A connection URL: it may carry a password, so it is kept secret. Development has a local default.
    pub fn secret_or_dev_default(
        &self,
        name: &'static str,
        dev: Option<&str>,
    ) -> Result<SecretString, ConfigError> {
        self.string_or_dev_default(name, dev)
            .map(SecretString::from)
    }

    /// `a=1,b=2` into a map, values parsed by `parse`.
    pub fn map<T>(
        &self,
        name: &'static str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<HashMap<String, T>, ConfigError> {
        let Some(raw) = self.get(name) else {
            return Ok(HashMap::new());
        };
        list_items(raw)
            .map(|item| {
                let (key, value) = item.split_once('=').ok_or_else(|| {
                    ConfigError::invalid(name, format!("expected name=value, got {item:?}"))
                })?;
                let value = parse(value.trim())
                    .map_err(|reason| ConfigError::invalid(name, format!("{key}: {reason}")))?;
                Ok((key.trim().to_owned(), value))
            })
            .collect()
    }

    pub fn optional_string(&self, name: &'static str) -> Option<String> {
        self.get(name).map(str::to_owned)
    }

    pub fn optional_secret(&self, name: &'static str) -> Result<Option<SecretString>, ConfigError> {
        Ok(self.get(name).map(SecretString::from))
    }

    pub fn secret_list(&self, name: &'static str) -> Result<Vec<SecretString>, ConfigError> {
        let Some(raw) = self.get(name) else {
            return Ok(Vec::new());
        };
        raw.split(',')
            .map(str::trim)
            .map(|item| {
                if item.is_empty() {
                    Err(ConfigError::invalid(name, "contains an empty entry"))
                } else {
                    Ok(SecretString::from(item))
                }
            })
            .collect()
    }
}

pub(super) fn environment(raw: &str) -> Result<Environment, String> {
    match raw.to_ascii_lowercase().as_str() {
        "development" | "dev" => Ok(Environment::Development),
        "production" | "prod" => Ok(Environment::Production),
        other => Err(format!("expected development or production, got {other:?}")),
    }
}

pub(super) fn log_format(raw: &str) -> Result<LogFormat, String> {
    match raw.to_ascii_lowercase().as_str() {
        "pretty" | "text" => Ok(LogFormat::Pretty),
        "json" => Ok(LogFormat::Json),
        other => Err(format!("expected pretty or json, got {other:?}")),
    }
}

pub(super) fn boolean(raw: &str) -> Result<bool, String> {
    match raw.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        other => Err(format!("expected true or false, got {other:?}")),
    }
}

pub(super) fn optional_addr(raw: &str) -> Result<Option<std::net::SocketAddr>, String> {
    match raw.to_ascii_lowercase().as_str() {
        "off" | "none" | "disabled" => Ok(None),
        _ => raw
            .parse()
            .map(Some)
            .map_err(|e| format!("{e} (or \"off\")")),
    }
}

/// The entries of a comma-separated list: trimmed, empty ones skipped (`a, b,` is `a` and `b`).
pub fn list_items(raw: &str) -> impl Iterator<Item = &str> {
    raw.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
}
