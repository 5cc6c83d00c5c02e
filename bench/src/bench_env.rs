//! The benchmark's own database and Redis namespace, removed again at the end.

use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail};
use mingus_common::db::MIGRATOR;
use mingus_common::jobs::{Enqueuer, QueueKeys};
use mingus_common::queue::Queue;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};

/// Refuses anything but the loopback interface: the benchmark floods what it talks to.
fn require_loopback(what: &str, host: &str) -> anyhow::Result<()> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if matches!(host, "127.0.0.1" | "localhost" | "::1") {
        Ok(())
    } else {
        bail!("{what} must point at 127.0.0.1 (got host {host:?}): the benchmark only runs locally")
    }
}

fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(end) = host_port.find(']') {
        return &host_port[..=end];
    }
    host_port.split(':').next().unwrap_or("")
}

pub struct BenchEnv {
    pub db_name: String,
    pub db_url: String,
    pub redis_url: String,
    pub prefix: String,
    pub pool: PgPool,
    pub enqueuer: Enqueuer,
    pub keys: QueueKeys,
    server: PgConnectOptions,
}

impl BenchEnv {
    /// Creates and migrates `mingus_bench_<random>` and picks a fresh Redis key prefix.
    pub async fn create() -> anyhow::Result<Self> {
        let server_url = std::env::var("TEST_DATABASE_URL")
            .or_else(|_| std::env::var("DATABASE_URL"))
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let redis_url = std::env::var("TEST_REDIS_URL")
            .or_else(|_| std::env::var("REDIS_URL"))
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        require_loopback("TEST_DATABASE_URL/DATABASE_URL", url_host(&server_url))?;
        require_loopback("TEST_REDIS_URL/REDIS_URL", url_host(&redis_url))?;

        let server = PgConnectOptions::from_str(&server_url).context("database URL")?;
        let suffix = &uuid::Uuid::new_v4().simple().to_string()[..12];
        let db_name = format!("mingus_bench_{suffix}");
        let mut admin = connect_admin(&server).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db_name}")))
            .execute(&mut admin)
            .await
            .context("CREATE DATABASE")?;
        admin.close().await.ok();
        let (head, _) = server_url
            .split('?')
            .next()
            .unwrap_or(&server_url)
            .rsplit_once('/')
            .context("the database URL has no /database path")?;
        let db_url = format!("{head}/{db_name}");
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(server.clone().database(&db_name))
            .await
            .context("connect to the benchmark database")?;
        let mut env_guard = PartialEnv {
            server: server.clone(),
            db_name: db_name.clone(),
            armed: true,
        };
        tokio::time::timeout(Duration::from_secs(300), MIGRATOR.run(&pool))
            .await
            .context("migrations timed out")?
            .context("migrations")?;

        let client = redis::Client::open(redis_url.as_str())?;
        let redis = ConnectionManager::new_with_config(
            client,
            ConnectionManagerConfig::new()
                .set_response_timeout(Some(Duration::from_secs(10)))
                .set_connection_timeout(Some(Duration::from_secs(2))),
        )
        .await
        .context("connect to Redis")?;
        let prefix = format!("mbench{suffix}");
        let enqueuer = Enqueuer::new(redis, prefix.clone());
        let keys = enqueuer.keys(Queue::Bench);
        env_guard.armed = false;
        Ok(BenchEnv {
            db_name,
            db_url,
            redis_url,
            prefix,
            pool,
            enqueuer,
            keys,
            server,
        })
    }

    pub fn redis(&self) -> ConnectionManager {
        self.enqueuer.connection()
    }

    /// Empties the namespace and the ledger between measurements.
    pub async fn reset(&self) -> anyhow::Result<()> {
        self.delete_prefix().await?;
        sqlx::query("TRUNCATE job_runs, job_dead_letters")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Deletes every key under the prefix (`mingus_common::cache::delete_prefix`: the job keys and the
    /// entitlement cache's `{prefix}_entitlements:…`) and our entry in apalis' global list.
    pub async fn delete_prefix(&self) -> anyhow::Result<()> {
        let mut conn = self.redis();
        mingus_common::cache::delete_prefix(&mut conn, &self.prefix).await?;
        redis::cmd("ZREM")
            .arg("core:apalis:queues:list")
            .arg(self.keys.workers())
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    /// Drops the database and the Redis keys.
    pub async fn destroy(self) -> anyhow::Result<()> {
        let redis_result = self.delete_prefix().await;
        self.pool.close().await;
        drop_database(&self.server, &self.db_name).await?;
        redis_result
    }
}

async fn connect_admin(server: &PgConnectOptions) -> anyhow::Result<PgConnection> {
    tokio::time::timeout(
        Duration::from_secs(30),
        server.clone().database("postgres").connect(),
    )
    .await
    .context("connecting to PostgreSQL timed out")?
    .context("connect to PostgreSQL")
}

async fn drop_database(server: &PgConnectOptions, name: &str) -> anyhow::Result<()> {
    let mut admin = connect_admin(server).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await?;
    admin.close().await.ok();
    Ok(())
}

/// Drops a database whose set-up failed half-way.
struct PartialEnv {
    server: PgConnectOptions,
    db_name: String,
    armed: bool,
}

impl Drop for PartialEnv {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let server = self.server.clone();
        let name = self.db_name.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(drop_database(&server, &name)).ok()
        })
        .join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_parsed_and_only_loopback_is_accepted() {
        assert_eq!(
            url_host("postgres://postgres@127.0.0.1:5432/postgres"),
            "127.0.0.1"
        );
        assert_eq!(url_host("redis://127.0.0.1:6379"), "127.0.0.1");
        assert_eq!(url_host("redis://:pw@localhost/0"), "localhost");
        assert_eq!(url_host("postgres://u:p@[::1]:5432/db"), "[::1]");
        assert!(require_loopback("x", url_host("redis://[::1]:6379")).is_ok());
        assert!(require_loopback("x", url_host("redis://10.0.0.5:6379")).is_err());
    }

    /// `destroy` leaves nothing of the benchmark in Redis: the job keys (`{prefix}:…`) and the entitlement
    /// cache's (`{prefix}_entitlements:…`, which the Stripe benchmark creates), and nobody else's keys.
    #[tokio::test]
    async fn destroy_deletes_every_key_of_the_prefix_and_no_other() -> anyhow::Result<()> {
        let env = BenchEnv::create().await?;
        let mut conn = env.redis();
        let ours = [
            format!("{}:bench:active", env.prefix),
            format!("{}_entitlements:gen:{}", env.prefix, uuid::Uuid::new_v4()),
        ];
        let neighbour = format!("x{}_entitlements:gen:other", env.prefix);
        for key in ours.iter().chain([&neighbour]) {
            redis::cmd("SET")
                .arg(key)
                .arg(1)
                .arg("EX")
                .arg(600)
                .query_async::<()>(&mut conn)
                .await?;
        }
        env.destroy().await?;
        for key in &ours {
            let left: bool = redis::cmd("EXISTS").arg(key).query_async(&mut conn).await?;
            assert!(!left, "{key} survived destroy()");
        }
        let kept: bool = redis::cmd("EXISTS")
            .arg(&neighbour)
            .query_async(&mut conn)
            .await?;
        redis::cmd("DEL")
            .arg(&neighbour)
            .query_async::<()>(&mut conn)
            .await?;
        assert!(kept, "destroy() deleted a key outside its prefix");
        Ok(())
    }
}
