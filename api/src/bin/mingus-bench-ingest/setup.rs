//! A database and Redis namespace of the benchmark's own, an in-process API, and pgbench.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use mingus_common::Config;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection};

pub const SECRET: &str = "whsec_bench_secret";

pub struct Bench {
    pub base_url: String,
    pub database_url: String,
    server_url: String,
    database: String,
    prefix: String,
    redis_url: String,
    pub pool: sqlx::PgPool,
}

fn server_url() -> String {
    std::env::var("DATABASE_URL")
        .ok()
        .and_then(|url| {
            url.rsplit_once('/')
                .map(|(head, _)| format!("{head}/postgres"))
        })
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn with_sslmode_disable(url: &str) -> String {
    if url.contains("sslmode=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&sslmode=disable")
    } else {
        format!("{url}?sslmode=disable")
    }
}

impl Bench {
    pub async fn create() -> anyhow::Result<Self> {
        let server_url = server_url();
        let suffix = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
        let database = format!("mingus_bench_{suffix}");
        let mut admin = PgConnection::connect(&server_url)
            .await
            .context("connect to PostgreSQL")?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}")))
            .execute(&mut admin)
            .await?;
        admin.close().await?;
        let database_url = format!("{}/{database}", server_url.rsplit_once('/').unwrap().0);
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .connect(&database_url)
            .await?;
        mingus_common::db::MIGRATOR.run(&pool).await?;
        sqlx::query("CREATE TABLE pgbench_insert (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, payload JSONB NOT NULL, created_at TIMESTAMPTZ NOT NULL DEFAULT now())")
            .execute(&pool)
            .await?;
        let prefix = format!("bench{suffix}");
        let redis_url =
            std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let config = Arc::new(Config::from_vars([
            ("DATABASE_URL", database_url.as_str()),
            ("REDIS_URL", redis_url.as_str()),
            ("REDIS_KEY_PREFIX", prefix.as_str()),
            ("STRIPE_WEBHOOK_SECRETS", SECRET),
            ("DATABASE_MAX_CONNECTIONS", "32"),
            ("RUST_LOG", "warn"),
        ])?);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base_url = format!("http://{}", listener.local_addr()?);
        let state = mingus_api::build_state(config)?;
        tokio::spawn(async move {
            let _ = mingus_api::serve(listener, state, std::future::pending()).await;
        });
        Ok(Bench {
            base_url,
            database_url,
            server_url,
            database,
            prefix,
            redis_url,
            pool,
        })
    }

    /// pgbench's TPS for a single-row JSONB insert with `clients` connections for `duration`.
    pub fn pgbench(&self, clients: usize, duration: Duration) -> anyhow::Result<f64> {
        let script = std::env::temp_dir().join(format!("{}-insert.sql", self.database));
        std::fs::write(
            &script,
            "INSERT INTO pgbench_insert (payload) VALUES ('{\"id\":\"evt_x\",\"type\":\"invoice.paid\"}');\n",
        )?;
        let output = Command::new("pgbench")
            .args([
                "-n",
                "-c",
                &clients.to_string(),
                "-j",
                "2",
                "-T",
                &duration.as_secs().to_string(),
                "-f",
            ])
            .arg(&script)
            // The transport the API's pool uses on loopback (`db::connect_options_from_url`: no TLS).
            .arg(with_sslmode_disable(&self.database_url))
            .output()
            .context("pgbench is installed (postgresql-contrib)")?;
        let _ = std::fs::remove_file(&script);
        let text = String::from_utf8_lossy(&output.stdout);
        text.lines()
            .find(|l| l.starts_with("tps = "))
            .and_then(|l| l["tps = ".len()..].split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .with_context(|| {
                format!(
                    "no tps in pgbench output: {text} {}",
                    String::from_utf8_lossy(&output.stderr)
                )
            })
    }

    pub async fn destroy(&self) {
        self.pool.close().await;
        if let Ok(mut admin) = PgConnection::connect(&self.server_url).await {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.database
            )))
            .execute(&mut admin)
            .await;
        }
        if let Ok(client) = redis::Client::open(self.redis_url.as_str())
            && let Ok(mut conn) = client.get_multiplexed_async_connection().await
        {
            let mut cursor: u64 = 0;
            for _ in 0..100_000 {
                let Ok((next, keys)): redis::RedisResult<(u64, Vec<String>)> = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(format!("{}:*", self.prefix))
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(&mut conn)
                    .await
                else {
                    break;
                };
                if !keys.is_empty() {
                    let _: redis::RedisResult<()> =
                        redis::cmd("DEL").arg(keys).query_async(&mut conn).await;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
    }
}
