//! PostgreSQL: the pool, migrations, and user-scoped transactions under row-level security.
//!
//! Roles (created by the first migration, see `migrations/README.md`):
//! - the **owner** role that runs migrations also serves workers: tables do not `FORCE` row-level
//!   security, so the owner sees every row (workers act for all users);
//! - `mingus_app` (`NOLOGIN`, no `BYPASSRLS`) is what the API switches to for user-scoped queries with
//!   [`begin_as_user`]: `SET LOCAL ROLE mingus_app` plus the transaction-local `app.user_id` setting that
//!   the policies (through `auth.uid()`) compare with each row's `user_id`.

use secrecy::ExposeSecret;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use std::str::FromStr;
use uuid::Uuid;

use crate::config::DatabaseConfig;

/// Every migration of `migrations/`, embedded at compile time.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// The role user-scoped API queries run as; row-level security applies to it.
pub const APP_ROLE: &str = "mingus_app";

/// Connections idle for longer than this are pinged before use (when pre-ping is on).
const PRE_PING_AFTER_IDLE: std::time::Duration = std::time::Duration::from_secs(10);

fn pool_options(config: &DatabaseConfig) -> PgPoolOptions {
    let options = PgPoolOptions::new()
        .max_connections(config.max_connections)
        .min_connections(config.min_connections)
        .acquire_timeout(config.acquire_timeout)
        .max_lifetime(config.max_lifetime)
        .idle_timeout(config.idle_timeout)
        // sqlx's own test pings on every checkout: a full round trip on every hot path.
        .test_before_acquire(false);
    if !config.test_before_acquire {
        return options;
    }
    // The seed's pre-ping, where it pays off: a connection that sat idle (and may have been cut by a
    // firewall, PgBouncer or a restart) is pinged; one returned a moment ago is used as is.
    options.before_acquire(|conn, meta| {
        Box::pin(async move {
            if meta.idle_for > PRE_PING_AFTER_IDLE {
                sqlx::Connection::ping(conn).await?;
            }
            Ok(true)
        })
    })
}

/// The URL's options, except that a loopback server is reached without TLS unless the URL names an
/// `sslmode`. libpq's (and sqlx's) default `prefer` encrypts even loopback traffic when the server has
/// TLS on: that costs CPU on both ends for nothing, and sqlx (which never sets TCP_NODELAY) then sends a
/// statement larger than one TLS record in two writes, the second held back by Nagle until PostgreSQL's
/// delayed ACK — a measured 40 ms stall on every multi-row insert over ~16 KiB.
pub fn connect_options_from_url(url: &str) -> Result<PgConnectOptions, sqlx::Error> {
    let options = PgConnectOptions::from_str(url)?;
    let names_sslmode = url.contains("sslmode=");
    let loopback = matches!(
        options.get_host(),
        "localhost" | "127.0.0.1" | "::1" | "[::1]"
    );
    Ok(if loopback && !names_sslmode {
        options.ssl_mode(PgSslMode::Disable)
    } else {
        options
    })
}

fn connect_options(config: &DatabaseConfig) -> Result<PgConnectOptions, sqlx::Error> {
    connect_options_from_url(config.url.expose_secret())
}

/// A pool that connects on first use, so a process can start (and report unhealthy) while the database
/// is down, instead of crash-looping.
pub fn lazy_pool(config: &DatabaseConfig) -> Result<PgPool, sqlx::Error> {
    Ok(pool_options(config).connect_lazy_with(connect_options(config)?))
}

/// A pool that has proved it can connect.
pub async fn connect(config: &DatabaseConfig) -> Result<PgPool, sqlx::Error> {
    pool_options(config)
        .connect_with(connect_options(config)?)
        .await
}

/// Whether `err` is worth trying again as it is: PostgreSQL could not be reached or used right now,
/// or the statement lost a race it may win next time. The one answer for the API (a 503 with
/// `Retry-After`) and for jobs (a retry with backoff): no connection in time, a connection lost or
/// garbled mid-query, the server shutting down or starting (SQLSTATE classes 08 and 57), out of
/// resources such as connections or disk (53), a system error (58), a serialization failure or
/// deadlock (40). Anything else is a bug or a bad statement, and trying again changes nothing.
pub fn is_transient(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            ["08", "40", "53", "57", "58"]
                .iter()
                .any(|class| code.starts_with(class))
        }),
        _ => false,
    }
}

/// Whether any cause in `err`'s chain is a transient database error ([`is_transient`]).
pub fn any_transient(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<sqlx::Error>()
            .is_some_and(is_transient)
    })
}

/// Takes the transaction-scoped advisory lock named `key` (hashed to 64 bits by PostgreSQL): transactions
/// naming the same key take turns until commit or rollback.
pub async fn advisory_xact_lock(conn: &mut PgConnection, key: &str) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(key)
        .execute(conn)
        .await
        .map(|_| ())
}

/// Begins a transaction in which row-level security restricts every user-owned table to `user_id`.
/// Both settings are transaction-local, so nothing leaks to the next user of the pooled connection.
pub async fn begin_as_user(
    pool: &PgPool,
    user_id: Uuid,
) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT set_config('role', $1, true), set_config('app.user_id', $2, true)")
        .bind(APP_ROLE)
        .bind(user_id.to_string())
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_trouble_is_transient_and_a_bad_statement_is_not() {
        assert!(is_transient(&sqlx::Error::PoolTimedOut));
        assert!(is_transient(&sqlx::Error::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset
        ))));
        assert!(!is_transient(&sqlx::Error::RowNotFound));
        assert!(!is_transient(&sqlx::Error::ColumnNotFound("x".into())));
        let wrapped = anyhow::Error::new(sqlx::Error::PoolClosed).context("loading the report");
        assert!(any_transient(&wrapped));
        assert!(!any_transient(&anyhow::anyhow!("a bug")));
    }
}
