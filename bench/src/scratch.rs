//! A scratch database (migrated) and Redis key prefix of the benchmark's own, with an in-process API
//! serving them; [`Scratch::destroy`] drops both.

use std::sync::Arc;

use anyhow::Context;
use mingus_common::Config;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection};

pub struct Scratch {
    pub base_url: String,
    pub database_url: String,
    pub prefix: String,
    pub config: Arc<Config>,
    pub pool: sqlx::PgPool,
    server_url: String,
    database: String,
    redis_url: String,
    /// The configuration's variables, for [`Scratch::spawn_api`].
    vars: Vec<(String, String)>,
}

/// The server's maintenance database: `DATABASE_URL` with its database replaced by `postgres`.
fn server_url() -> String {
    std::env::var("DATABASE_URL")
        .ok()
        .and_then(|url| {
            url.rsplit_once('/')
                .map(|(head, _)| format!("{head}/postgres"))
        })
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// An in-process API with `config` on `listener`, for the rest of the benchmark's life.
fn serve(listener: tokio::net::TcpListener, config: Arc<Config>) -> anyhow::Result<()> {
    let state = mingus_api::build_state(config)?;
    tokio::spawn(async move {
        let _ = mingus_api::serve(listener, state, std::future::pending()).await;
    });
    Ok(())
}

impl Scratch {
    /// Creates the database and starts the API with `settings` added to its configuration.
    pub async fn create(settings: &[(&str, &str)]) -> anyhow::Result<Self> {
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
        let prefix = format!("bench{suffix}");
        let redis_url =
            std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let mut vars = vec![
            ("DATABASE_URL", database_url.as_str()),
            ("REDIS_URL", redis_url.as_str()),
            ("REDIS_KEY_PREFIX", prefix.as_str()),
            ("DATABASE_MAX_CONNECTIONS", "32"),
            ("RUST_LOG", "warn"),
        ];
        vars.extend_from_slice(settings);
        let vars: Vec<(String, String)> = vars
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let config = Arc::new(Config::from_vars(vars.clone())?);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base_url = format!("http://{}", listener.local_addr()?);
        serve(listener, config.clone())?;
        Ok(Scratch {
            base_url,
            database_url,
            prefix,
            config,
            pool,
            server_url,
            database,
            redis_url,
            vars,
        })
    }

    /// The scratch database's name.
    pub fn database_name(&self) -> &str {
        &self.database
    }

    /// Another API instance on `listener`, configured as the first with `overrides` on top (the same
    /// database name and Redis prefix unless overridden).
    pub fn spawn_api(
        &self,
        listener: tokio::net::TcpListener,
        overrides: &[(&str, &str)],
    ) -> anyhow::Result<()> {
        let mut vars = self.vars.clone();
        vars.extend(
            overrides
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        serve(listener, Arc::new(Config::from_vars(vars)?))
    }

    /// Drops the database and the Redis keys under the prefix (`{prefix}:…` and `{prefix}_entitlements:…`).
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
        let Ok(client) = redis::Client::open(self.redis_url.as_str()) else {
            return;
        };
        let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
            return;
        };
        let _ = mingus_common::cache::delete_prefix(&mut conn, &self.prefix).await;
    }
}
