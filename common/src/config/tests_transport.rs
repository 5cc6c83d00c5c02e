//! Production reaches PostgreSQL and Redis over verified TLS, unless the server is on this machine or its
//! host is named in `MINGUS_ALLOW_PLAINTEXT_TO`.

use super::tests::{production, with};
use super::*;

const PASSWORD: &str = "s3cret-pw";

/// The production settings with each of `extra` set (replacing the value there).
fn production_with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    extra
        .iter()
        .fold(production(), |vars, (name, value)| with(&vars, name, value))
}

fn refused(extra: &[(&'static str, &'static str)], variable: &str) -> String {
    let err = Config::from_vars(production_with(extra)).unwrap_err();
    assert_eq!(err.variable(), variable, "{extra:?}: {err}");
    let shown = err.to_string();
    assert!(
        matches!(err, ConfigError::Insecure { .. }),
        "{extra:?}: {shown}"
    );
    assert!(
        !shown.contains(PASSWORD),
        "the message leaks the password: {shown}"
    );
    shown
}

#[test]
fn a_remote_database_without_verified_tls_is_refused_by_name_without_the_password() {
    for url in [
        "postgres://app:s3cret-pw@db.internal/mingus?sslmode=disable",
        // No sslmode: libpq's and sqlx's default `prefer` falls back to clear text.
        "postgres://app:s3cret-pw@db.internal/mingus",
        "postgres://app:s3cret-pw@db.internal/mingus?sslmode=prefer",
        "postgres://app:s3cret-pw@db.internal/mingus?sslmode=allow",
        // Encrypted, but anyone in the middle can present a certificate of their own.
        "postgresql://app:s3cret-pw@10.0.0.5:5432/mingus?sslmode=require",
        // sqlx applies the query in order: the last sslmode wins.
        "postgres://app:s3cret-pw@db.internal/mingus?sslmode=verify-full&sslmode=disable",
        // host= and hostaddr= in the query override the URL's host.
        "postgres://app:s3cret-pw@127.0.0.1/mingus?host=db.internal",
        "postgres://app:s3cret-pw@localhost/mingus?hostaddr=10.1.2.3",
    ] {
        let shown = refused(&[("DATABASE_URL", url)], "DATABASE_URL");
        assert!(
            shown.contains("MINGUS_ALLOW_PLAINTEXT_TO"),
            "{url}: {shown}"
        );
        assert!(shown.contains("verify-full"), "{url}: {shown}");
    }
}

#[test]
fn the_database_may_be_local_or_reached_with_a_checked_certificate() {
    for url in [
        "postgres://app:pw@db.internal/mingus?sslmode=verify-full",
        "postgres://app:pw@db.internal/mingus?sslmode=VERIFY-CA",
        "postgres://app:pw@db.internal/mingus?ssl-mode=verify-full",
        "postgres://app:pw@127.0.0.1:6432/mingus",
        "postgres://app:pw@127.8.9.10:6432/mingus?sslmode=disable",
        "postgres://app:pw@localhost/mingus",
        "postgres://app:pw@[::1]:5432/mingus",
        // Unix sockets: the documented `host=` form and a percent-encoded path as the host.
        "postgres:///mingus?host=/var/run/postgresql",
        "postgres://%2Fvar%2Frun%2Fpostgresql/mingus",
        // No host at all: sqlx picks a local socket or localhost.
        "postgres:///mingus",
        // A remote URL host overridden by a local socket.
        "postgres://app:pw@db.internal/mingus?host=/var/run/postgresql",
    ] {
        Config::from_vars(production_with(&[("DATABASE_URL", url)]))
            .unwrap_or_else(|e| panic!("{url}: {e}"));
    }
}

#[test]
fn the_libpq_variables_sqlx_reads_count_where_the_url_leaves_them_out() {
    // PGSSLMODE sets the mode when the URL names none.
    Config::from_vars(production_with(&[
        ("DATABASE_URL", "postgres://app:pw@db.internal/mingus"),
        ("PGSSLMODE", "verify-full"),
    ]))
    .unwrap();
    // ...but not when the URL names one.
    refused(
        &[
            (
                "DATABASE_URL",
                "postgres://app:pw@db.internal/mingus?sslmode=disable",
            ),
            ("PGSSLMODE", "verify-full"),
        ],
        "DATABASE_URL",
    );
    // A URL without a host goes where PGHOST says.
    refused(
        &[
            ("DATABASE_URL", "postgres:///mingus"),
            ("PGHOST", "db.internal"),
        ],
        "DATABASE_URL",
    );
}

#[test]
fn a_remote_redis_without_tls_is_refused_by_name_without_the_password() {
    for url in [
        "redis://:s3cret-pw@cache.internal:6379",
        "redis://mingus:s3cret-pw@10.0.0.9:6379/0",
        "valkey://:s3cret-pw@cache.internal",
        // redis-rs skips certificate checks with this fragment.
        "rediss://:s3cret-pw@cache.internal:6380/#insecure",
    ] {
        let shown = refused(&[("REDIS_URL", url)], "REDIS_URL");
        assert!(
            shown.contains("MINGUS_ALLOW_PLAINTEXT_TO"),
            "{url}: {shown}"
        );
    }
}

#[test]
fn redis_may_be_local_or_reached_over_tls() {
    for url in [
        "rediss://:pw@cache.internal:6380",
        "redis://:pw@127.0.0.1:6379",
        "redis://localhost:6379",
        "redis://[::1]:6379",
        "redis+unix:///run/redis/redis.sock",
        "unix:///run/redis/redis.sock",
    ] {
        Config::from_vars(production_with(&[("REDIS_URL", url)]))
            .unwrap_or_else(|e| panic!("{url}: {e}"));
    }
}

#[test]
fn hosts_named_in_the_opt_out_may_be_reached_in_clear_text_and_no_others() {
    let allow = ("MINGUS_ALLOW_PLAINTEXT_TO", "DB.internal, 10.0.0.9");
    let config = Config::from_vars(production_with(&[
        allow,
        (
            "DATABASE_URL",
            "postgres://app:pw@db.internal/mingus?sslmode=disable",
        ),
        ("REDIS_URL", "redis://:pw@10.0.0.9:6379"),
    ]))
    .unwrap();
    assert_eq!(config.environment, Environment::Production);
    refused(
        &[
            allow,
            ("DATABASE_URL", "postgres://app:pw@db2.internal/mingus"),
        ],
        "DATABASE_URL",
    );
    refused(
        &[allow, ("REDIS_URL", "redis://:pw@10.0.0.10:6379")],
        "REDIS_URL",
    );
}

#[test]
fn the_opt_out_takes_only_host_names_and_addresses() {
    for entry in ["*", "10.0.0.0/8", "db.internal:5432", "db internal"] {
        let err = Config::from_vars(production_with(&[
            ("MINGUS_ALLOW_PLAINTEXT_TO", entry),
            ("DATABASE_URL", "postgres://app:pw@db.internal/mingus"),
        ]))
        .unwrap_err();
        assert_eq!(
            err.variable(),
            "MINGUS_ALLOW_PLAINTEXT_TO",
            "{entry}: {err}"
        );
    }
}

#[test]
fn transport_rules_follow_what_each_process_uses_and_stay_out_of_development() {
    // The migrate unit uses no Redis: an insecure REDIS_URL left in its environment does not stop it.
    let vars = [
        ("MINGUS_ENV", "production"),
        (
            "DATABASE_URL",
            "postgres://app:pw@db.internal/mingus?sslmode=verify-full",
        ),
        ("REDIS_URL", "redis://:pw@cache.internal:6379"),
    ];
    Config::from_vars_for(vars, Needs::DATABASE).unwrap();
    let err = Config::from_vars_for(vars, Needs::SCHEDULER).unwrap_err();
    assert_eq!(err.variable(), "REDIS_URL");
    // The database check applies to every process, the migrate unit included.
    let err = Config::from_vars_for(
        [
            ("MINGUS_ENV", "production"),
            ("DATABASE_URL", "postgres://app:pw@db.internal/mingus"),
        ],
        Needs::DATABASE,
    )
    .unwrap_err();
    assert_eq!(err.variable(), "DATABASE_URL");
    // Development connects to whatever it is given.
    Config::from_vars([
        ("DATABASE_URL", "postgres://app:pw@db.internal/mingus"),
        ("REDIS_URL", "redis://cache.internal:6379"),
    ])
    .unwrap();
}

#[test]
fn a_database_url_that_sqlx_would_misread_is_refused_in_production() {
    for url in [
        "postgres://app:pw@db.internal/mingus?sslmode=verify",
        "mysql://app:pw@127.0.0.1/mingus",
        "db.internal:5432",
    ] {
        let err = Config::from_vars(production_with(&[("DATABASE_URL", url)])).unwrap_err();
        assert_eq!(err.variable(), "DATABASE_URL", "{url}: {err}");
        assert!(!err.to_string().contains(":pw@"), "{err}");
    }
}
