//! Typed configuration, parsed once from the environment at start-up.
//!
//! Every binary calls [`Config::from_env`] once and passes the result around as `Arc<Config>`; no feature
//! code reads environment variables. Parsing works on any iterator of `(name, value)` pairs, so tests build
//! configurations without touching the process environment.
//!
//! Non-secret settings have development defaults. Secrets (`secrecy::SecretString`) are never defaulted:
//! in development a missing secret disables the feature that needs it (with a warning at start-up), in
//! production ([`Environment::Production`]) it stops the process with a message naming the variable.

pub mod email;
pub mod frontend;
mod listen;
mod parse;
mod production;
mod scheduler;
mod secrets;
mod source;
pub mod stripe;
mod transport;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use secrecy::SecretString;

pub use listen::{ListenAddr, ListenConfig, OpsProxy};
pub use parse::ConfigError;
use parse::Vars;
pub use scheduler::{ScheduleOverride, SchedulerConfig};
pub use source::{Needs, SECRET_FILES};

/// Which rules apply: development defaults, or production's refusal of missing secrets and insecure settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// PostgreSQL pool settings. The defaults mirror the seed's SQLAlchemy pool (20 base + 30 overflow = 50,
/// pre-ping, recycle after 1800 s, 30 s checkout timeout); sqlx has no "overflow", so the ceiling is
/// `max_connections` and connections above `min_connections` are closed after `idle_timeout`.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub url: SecretString,
    pub max_connections: u32,
    pub min_connections: u32,
    pub acquire_timeout: Duration,
    /// `DATABASE_API_ACQUIRE_TIMEOUT_MS`: the API's own checkout wait. A request is answered while its
    /// client waits: with the database down or saturated, a quick 503 with `Retry-After` beats holding
    /// every request for the workers' 30 s (whose jobs can wait).
    pub api_acquire_timeout: Duration,
    pub max_lifetime: Duration,
    pub idle_timeout: Duration,
    pub test_before_acquire: bool,
}

/// Redis connection settings for the job queues and caches.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    pub url: SecretString,
    /// Prefix of every key we write (queues, caches, locks), so several deployments or test runs can share
    /// one Redis without seeing each other.
    pub key_prefix: String,
    /// Per-command response timeout. redis-rs defaults to 500 ms, which under load marks apalis storage as
    /// dead (NOTES-apalis defect 10), so ours is several seconds.
    pub response_timeout: Duration,
    pub connection_timeout: Duration,
}

/// Worker and job-runtime settings (see the configuration table in docs/operating.md).
#[derive(Debug, Clone)]
pub struct JobsConfig {
    /// How often an idle worker looks for work (apalis-redis otherwise waits for its 30 s heartbeat).
    pub poll_interval: Duration,
    /// Worker heartbeat; a worker silent for `heartbeat × missed_heartbeats` is dead and its jobs re-run.
    pub heartbeat: Duration,
    pub missed_heartbeats: usize,
    /// Jobs fetched per round trip.
    pub fetch_batch: usize,
    /// Concurrent jobs per queue when not overridden.
    pub default_concurrency: usize,
    /// Per-queue overrides, from `MINGUS_QUEUE_CONCURRENCY="email=20,reports=4"`.
    pub concurrency: HashMap<String, usize>,
    /// Per-queue timeout overrides, from `MINGUS_QUEUE_TIMEOUT_SECS="reports=600"`.
    pub timeouts: HashMap<String, Duration>,
    /// Where a worker serves `/health/*` and `/metrics`; `None` disables it.
    pub metrics_addr: Option<ListenAddr>,
    /// Finished jobs kept in Redis: at most this many per queue, and none older than `finished_max_age`.
    pub finished_max_count: usize,
    pub finished_max_age: Duration,
    /// Ledger rows older than this are deleted by the retention job.
    pub ledger_retention: Duration,
    /// An outbox row not completed and not pushed for this long is pushed again.
    pub outbox_stale_after: Duration,
    /// Shard jobs per day of the `user_analytics` rollup (`MINGUS_ANALYTICS_SHARDS`, 1–1024).
    pub analytics_shards: u32,
    /// The currency `/ops/business` reports in by default (`MINGUS_REPORTING_CURRENCY`, ISO code; other
    /// currencies are shown beside it, never converted).
    pub reporting_currency: String,
}

impl JobsConfig {
    /// The orphan window: how long a killed worker's jobs wait before another worker re-runs them.
    pub fn orphan_window(&self) -> Duration {
        self.heartbeat * self.missed_heartbeats as u32
    }
}

/// The whole configuration of a Mingus process.
#[derive(Debug, Clone)]
pub struct Config {
    pub environment: Environment,
    pub api_addr: SocketAddr,
    /// The operator and probe listeners, and the trusted proxies.
    pub listen: ListenConfig,
    pub database: DatabaseConfig,
    pub redis: RedisConfig,
    /// Several secrets are accepted during a rotation.
    pub stripe_webhook_secrets: Vec<SecretString>,
    pub stripe_api_key: Option<SecretString>,
    pub stripe_api_base: String,
    pub stripe: stripe::StripeConfig,
    pub smtp_url: SecretString,
    pub mail_from: String,
    /// SMTP, sender, links, unsubscribe and lease settings (`SMTP_URL` and `MAIL_FROM` parsed).
    pub email: email::EmailConfig,
    pub jwt_secret: Option<SecretString>,
    /// The `/v1` API: JWT audience and the per-user rate limit (`MINGUS_JWT_AUDIENCE`, …).
    pub frontend: frontend::FrontendConfig,
    pub admin_token: Option<SecretString>,
    pub log_format: LogFormat,
    /// How long a stopping process waits for in-flight work before it exits.
    pub shutdown_timeout: Duration,
    /// Per-request timeout of the HTTP server.
    pub http_request_timeout: Duration,
    pub jobs: JobsConfig,
    /// The cron scheduler: loop interval and overrides of the cron table (`MINGUS_SCHEDULE_*`).
    pub scheduler: SchedulerConfig,
}

impl Config {
    /// Parses the process environment for a process that uses everything. Call once, at start-up.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_for(Needs::ALL)
    }

    /// Parses the process environment for a process that uses `needs` (each binary passes its own).
    pub fn from_env_for(needs: Needs) -> Result<Self, ConfigError> {
        Self::from_vars_for(source::process_environment()?, needs)
    }

    /// Parses the given variables as if they were the environment.
    pub fn from_vars<I, K, V>(vars: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self::from_vars_for(vars, Needs::ALL)
    }

    /// Parses the given variables for a process that uses `needs`; `*_FILE` secrets are read here.
    pub fn from_vars_for<I, K, V>(vars: I, needs: Needs) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let mut map: HashMap<String, String> = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        source::resolve_secret_files(&mut map)?;
        let vars = Vars::new(&map);
        let environment =
            vars.parse_with("MINGUS_ENV", Environment::Development, parse::environment)?;
        let dev = environment == Environment::Development;
        // A setting this process does not use takes the development default (never used by it).
        let default_if = |needed: bool, default: &'static str| (dev || !needed).then_some(default);
        // Parsed in the order of the contract, so a missing variable is named in that order too.
        let database = DatabaseConfig {
            url: vars.secret_or_dev_default(
                "DATABASE_URL",
                dev.then_some("postgres://postgres@127.0.0.1:5432/mingus"),
            )?,
            max_connections: vars.parse("DATABASE_MAX_CONNECTIONS", 50)?,
            min_connections: vars.parse("DATABASE_MIN_CONNECTIONS", 2)?,
            acquire_timeout: vars.seconds("DATABASE_ACQUIRE_TIMEOUT_SECS", 30)?,
            api_acquire_timeout: vars.millis("DATABASE_API_ACQUIRE_TIMEOUT_MS", 2000)?,
            max_lifetime: vars.seconds("DATABASE_MAX_LIFETIME_SECS", 1800)?,
            idle_timeout: vars.seconds("DATABASE_IDLE_TIMEOUT_SECS", 600)?,
            test_before_acquire: vars.parse_with(
                "DATABASE_TEST_BEFORE_ACQUIRE",
                true,
                parse::boolean,
            )?,
        };
        let redis = RedisConfig {
            url: vars.secret_or_dev_default(
                "REDIS_URL",
                default_if(needs.redis, "redis://127.0.0.1:6379"),
            )?,
            key_prefix: vars.string("REDIS_KEY_PREFIX", "mingus")?,
            response_timeout: vars.millis("REDIS_RESPONSE_TIMEOUT_MS", 5_000)?,
            connection_timeout: vars.millis("REDIS_CONNECT_TIMEOUT_MS", 2_000)?,
        };
        let smtp_url = vars
            .secret_or_dev_default("SMTP_URL", default_if(needs.smtp, "smtp://127.0.0.1:2525"))?;
        let mail_from = vars.string_or_dev_default(
            "MAIL_FROM",
            default_if(needs.smtp, "Mingus <no-reply@mingus.local>"),
        )?;
        let email = email::parse(&vars, &smtp_url, &mail_from, !dev && needs.email_links)?;
        let config = Config {
            environment,
            api_addr: vars.parse(
                "MINGUS_API_ADDR",
                "127.0.0.1:8080".parse().expect("valid default"),
            )?,
            listen: listen::parse(&vars, dev)?,
            database,
            redis,
            stripe_webhook_secrets: vars.secret_list("STRIPE_WEBHOOK_SECRETS")?,
            stripe_api_key: vars.optional_secret("STRIPE_API_KEY")?,
            stripe_api_base: vars.string("STRIPE_API_BASE", "https://api.stripe.com")?,
            stripe: stripe::parse(&vars, !dev)?,
            smtp_url,
            mail_from,
            email,
            jwt_secret: vars.optional_secret("MINGUS_JWT_SECRET")?,
            frontend: frontend::parse(&vars)?,
            admin_token: vars.optional_secret("MINGUS_ADMIN_TOKEN")?,
            log_format: vars.parse_with(
                "LOG_FORMAT",
                if dev {
                    LogFormat::Pretty
                } else {
                    LogFormat::Json
                },
                parse::log_format,
            )?,
            shutdown_timeout: vars.seconds("MINGUS_SHUTDOWN_TIMEOUT", 30)?,
            http_request_timeout: vars.seconds("MINGUS_HTTP_REQUEST_TIMEOUT_SECS", 15)?,
            jobs: JobsConfig {
                poll_interval: vars.millis("MINGUS_WORKER_POLL_MS", 50)?,
                heartbeat: vars.seconds("MINGUS_WORKER_HEARTBEAT_SECS", 5)?,
                missed_heartbeats: vars.parse("MINGUS_WORKER_MISSED_HEARTBEATS", 6)?,
                fetch_batch: vars.parse("MINGUS_WORKER_FETCH_BATCH", 100)?,
                default_concurrency: vars.parse("MINGUS_WORKER_CONCURRENCY", 50)?,
                concurrency: vars.map("MINGUS_QUEUE_CONCURRENCY", |v| {
                    v.parse::<usize>().map_err(|e| e.to_string())
                })?,
                timeouts: vars.map("MINGUS_QUEUE_TIMEOUT_SECS", |v| {
                    v.parse::<u64>()
                        .map(Duration::from_secs)
                        .map_err(|e| e.to_string())
                })?,
                metrics_addr: listen::probe(&vars, "MINGUS_WORKER_METRICS_ADDR", "127.0.0.1:9091")?,
                finished_max_count: vars.parse("MINGUS_RETENTION_FINISHED_MAX", 100_000)?,
                finished_max_age: vars.seconds("MINGUS_RETENTION_FINISHED_SECS", 24 * 3600)?,
                ledger_retention: vars.seconds("MINGUS_RETENTION_LEDGER_SECS", 30 * 24 * 3600)?,
                outbox_stale_after: vars.seconds("MINGUS_OUTBOX_STALE_SECS", 120)?,
                analytics_shards: vars.parse("MINGUS_ANALYTICS_SHARDS", 4)?,
                reporting_currency: vars
                    .string("MINGUS_REPORTING_CURRENCY", "USD")?
                    .to_ascii_uppercase(),
            },
            scheduler: scheduler::parse(&map)?,
        };
        config.validate(&vars, needs)?;
        Ok(config)
    }

    fn validate(&self, vars: &Vars<'_>, needs: Needs) -> Result<(), ConfigError> {
        let db = &self.database;
        if db.max_connections == 0 {
            return Err(ConfigError::invalid(
                "DATABASE_MAX_CONNECTIONS",
                "must be at least 1",
            ));
        }
        if db.min_connections > db.max_connections {
            return Err(ConfigError::invalid(
                "DATABASE_MIN_CONNECTIONS",
                format!(
                    "{} exceeds DATABASE_MAX_CONNECTIONS ({})",
                    db.min_connections, db.max_connections
                ),
            ));
        }
        let jobs = &self.jobs;
        if jobs.poll_interval.is_zero() || jobs.poll_interval > Duration::from_secs(5) {
            return Err(ConfigError::invalid(
                "MINGUS_WORKER_POLL_MS",
                "must be between 1 and 5000",
            ));
        }
        if jobs.fetch_batch == 0 {
            return Err(ConfigError::invalid(
                "MINGUS_WORKER_FETCH_BATCH",
                "must be at least 1",
            ));
        }
        if !(1..=crate::analytics::rollup::MAX_SHARDS).contains(&jobs.analytics_shards) {
            return Err(ConfigError::invalid(
                "MINGUS_ANALYTICS_SHARDS",
                "must be between 1 and 1024",
            ));
        }
        let currency = &jobs.reporting_currency;
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(ConfigError::invalid(
                "MINGUS_REPORTING_CURRENCY",
                "must be a three-letter ISO currency code such as USD",
            ));
        }
        if jobs.missed_heartbeats == 0 || jobs.heartbeat.is_zero() {
            return Err(ConfigError::invalid(
                "MINGUS_WORKER_MISSED_HEARTBEATS",
                "heartbeat and count must be positive",
            ));
        }
        let overrides = [
            (
                "MINGUS_QUEUE_CONCURRENCY",
                jobs.concurrency.keys().collect::<Vec<_>>(),
            ),
            ("MINGUS_QUEUE_TIMEOUT_SECS", jobs.timeouts.keys().collect()),
        ];
        for (variable, names) in overrides {
            if let Some(name) = names
                .into_iter()
                .find(|n| n.parse::<crate::queue::Queue>().is_err())
            {
                return Err(ConfigError::invalid(
                    variable,
                    format!("unknown queue {name:?}"),
                ));
            }
        }
        if self.redis.key_prefix.is_empty() || self.redis.key_prefix.contains(char::is_whitespace) {
            return Err(ConfigError::invalid(
                "REDIS_KEY_PREFIX",
                "must be non-empty and without spaces",
            ));
        }
        if self.environment == Environment::Production {
            production::check(self, vars, needs)?;
        }
        Ok(())
    }

    /// Names of the secrets that are missing; in development the features that need them are disabled.
    pub fn missing_optional_secrets(&self) -> Vec<&'static str> {
        let mut missing = Vec::new();
        if self.stripe_webhook_secrets.is_empty() {
            missing.push("STRIPE_WEBHOOK_SECRETS");
        }
        if self.jwt_secret.is_none() {
            missing.push("MINGUS_JWT_SECRET");
        }
        if self.admin_token.is_none() {
            missing.push("MINGUS_ADMIN_TOKEN");
        }
        if self.email.unsubscribe_secret.is_none() {
            missing.push("MINGUS_UNSUBSCRIBE_SECRET");
        }
        missing
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod tests_deployment;

#[cfg(test)]
mod tests_secrets;

#[cfg(test)]
mod tests_smtp;

#[cfg(test)]
mod tests_transport;

#[cfg(test)]
mod tests_stripe_prices;
