//! The configuration parser (`mingus_common::Config::from_vars`), fed fuzzed values for the real
//! variable names, in development and in production (`MINGUS_ENV=production`).
//!
//! Input: lines of `NAME=value`. A name of the list below is used as written, as is any
//! `MINGUS_SCHEDULE_…` name (per-schedule overrides are open-ended); any other name picks one of the
//! list (by a hash of its bytes), so every mutation still sets a real variable. `*_FILE` variables are
//! left out on purpose: their value is a path the parser reads, and a fuzzer must not read files.
//!
//! Checks: never panics, in either environment; an error names a variable (a non-empty name that its
//! message contains, and that is a real variable: one of the list, or one the input set).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mingus_common::Config;
use mingus_common::config::{ConfigError, Needs};

/// Every variable `Config` reads (common/src/config/*.rs), except the `*_FILE` ones.
const NAMES: &[&str] = &[
    "MINGUS_ENV",
    "DATABASE_URL",
    "DATABASE_MAX_CONNECTIONS",
    "DATABASE_MIN_CONNECTIONS",
    "DATABASE_ACQUIRE_TIMEOUT_SECS",
    "DATABASE_API_ACQUIRE_TIMEOUT_MS",
    "DATABASE_MAX_LIFETIME_SECS",
    "DATABASE_IDLE_TIMEOUT_SECS",
    "DATABASE_TEST_BEFORE_ACQUIRE",
    "PGHOST",
    "PGHOSTADDR",
    "PGSSLMODE",
    "REDIS_URL",
    "REDIS_KEY_PREFIX",
    "REDIS_RESPONSE_TIMEOUT_MS",
    "REDIS_CONNECT_TIMEOUT_MS",
    "SMTP_URL",
    "SMTP_POOL_SIZE",
    "SMTP_CONNECT_TIMEOUT_SECS",
    "SMTP_COMMAND_TIMEOUT_SECS",
    "MAIL_FROM",
    "MINGUS_ALLOW_PLAINTEXT_TO",
    "MINGUS_API_ADDR",
    "MINGUS_OPS_ADDR",
    "MINGUS_OPS_PUBLIC",
    "MINGUS_TRUSTED_PROXIES",
    "MINGUS_OPS_PROXY_USER_HEADER",
    "MINGUS_OPS_PROXY_ADDRS",
    "MINGUS_WORKER_METRICS_ADDR",
    "MINGUS_SCHEDULER_METRICS_ADDR",
    "STRIPE_WEBHOOK_SECRETS",
    "STRIPE_API_KEY",
    "STRIPE_API_BASE",
    "STRIPE_MODE",
    "STRIPE_PRICE_TIERS",
    "STRIPE_GRACE_PERIOD_SECS",
    "STRIPE_SIGNATURE_TOLERANCE_SECS",
    "MINGUS_JWT_SECRET",
    "MINGUS_JWT_AUDIENCE",
    "MINGUS_JWT_JWKS_URL",
    "MINGUS_JWT_USER_ROLES",
    "MINGUS_ADMIN_TOKEN",
    "MINGUS_UNSUBSCRIBE_SECRET",
    "MINGUS_PUBLIC_URL",
    "MINGUS_APP_URL",
    "MINGUS_CORS_ORIGINS",
    "MINGUS_EMAIL_LEASE_SECS",
    "MINGUS_EMAIL_TEST_PAUSE_AFTER_ACCEPT_MS",
    "MINGUS_USER_RATE_LIMIT_PER_HOUR",
    "LOG_FORMAT",
    "MINGUS_SHUTDOWN_TIMEOUT",
    "MINGUS_HTTP_REQUEST_TIMEOUT_SECS",
    "MINGUS_WORKER_POLL_MS",
    "MINGUS_WORKER_HEARTBEAT_SECS",
    "MINGUS_WORKER_MISSED_HEARTBEATS",
    "MINGUS_WORKER_FETCH_BATCH",
    "MINGUS_WORKER_CONCURRENCY",
    "MINGUS_QUEUE_CONCURRENCY",
    "MINGUS_QUEUE_TIMEOUT_SECS",
    "MINGUS_RETENTION_FINISHED_MAX",
    "MINGUS_RETENTION_FINISHED_SECS",
    "MINGUS_RETENTION_LEDGER_SECS",
    "MINGUS_OUTBOX_STALE_SECS",
    "MINGUS_ANALYTICS_SHARDS",
    "MINGUS_SCHEDULER_INTERVAL_MS",
    "MINGUS_SCHEDULE_RETENTION",
    "MINGUS_SCHEDULE_RETENTION_TZ",
    "MINGUS_SCHEDULE_RETENTION_ENABLED",
    "MINGUS_SCHEDULE_OUTBOX_SWEEP",
    "MINGUS_SCHEDULE_OUTBOX_SWEEP_TZ",
    "MINGUS_SCHEDULE_OUTBOX_SWEEP_ENABLED",
    "MINGUS_SCHEDULE_ANALYTICS_ROLLUP",
    "MINGUS_SCHEDULE_NIGHTLY_BACKUP",
];

const SCHEDULE_PREFIX: &str = "MINGUS_SCHEDULE_";

fn name_of(raw: &str) -> String {
    if NAMES.contains(&raw) || (raw.starts_with(SCHEDULE_PREFIX) && !raw.ends_with("_FILE")) {
        return raw.to_owned();
    }
    let hash = raw.bytes().fold(0usize, |h, b| {
        h.wrapping_mul(31).wrapping_add(usize::from(b))
    });
    NAMES[hash % NAMES.len()].to_owned()
}

fn check(result: Result<Config, ConfigError>, vars: &[(String, String)]) {
    let Err(err) = result else {
        return;
    };
    let variable = err.variable();
    assert!(!variable.is_empty(), "an error names no variable: {err}");
    assert!(
        err.to_string().contains(variable),
        "the message does not name {variable}: {err}"
    );
    assert!(
        NAMES.contains(&variable) || vars.iter().any(|(name, _)| name == variable),
        "the error names {variable:?}, which is neither a known variable nor one that was set: {err}"
    );
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let vars: Vec<(String, String)> = text
        .lines()
        .map(|line| {
            let (name, value) = line.split_once('=').unwrap_or((line, ""));
            (name_of(name), value.to_owned())
        })
        .collect();
    // As given (MINGUS_ENV may be fuzzed too), then forced to each environment (the last value wins).
    check(Config::from_vars(vars.clone()), &vars);
    for environment in ["development", "production"] {
        let mut forced = vars.clone();
        forced.push(("MINGUS_ENV".into(), environment.into()));
        check(Config::from_vars(forced.clone()), &forced);
    }
    // A process that needs less (production refuses fewer missing settings).
    let needs = [Needs::API, Needs::WORKER, Needs::SCHEDULER, Needs::DATABASE][data.len() % 4];
    let mut forced = vars.clone();
    forced.push(("MINGUS_ENV".into(), "production".into()));
    check(Config::from_vars_for(forced.clone(), needs), &forced);
});
