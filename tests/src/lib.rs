#![doc = include_str!("../README.md")]

mod app;
mod database;
mod env;
pub mod frontend;
pub mod openapi;
mod process;
pub mod smtp;
pub mod stripe;
pub mod stripe_server;
pub mod wait;
mod worker;

pub use app::{TestApp, delete_redis_prefix, test_config};
pub use database::TestDb;
pub use env::JobEnv;
pub use process::WorkerProcess;
pub use smtp::{Mail, SmtpServer, Tls};
pub use worker::{RedisServer, TestWorker, binary};

/// Where the test PostgreSQL server is (any database on it; tests create their own).
pub fn database_server_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Where the test Redis is.
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Logs are silent unless `TEST_LOG` is set.
pub fn init_logging() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("info,sqlx=warn")
            .with_test_writer()
            .try_init();
    }
}
