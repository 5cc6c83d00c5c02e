//! The dependency checks behind every process's health probes (the API's `/health/*`, the worker's and
//! the scheduler's probe listener). Each check is bounded by [`CHECK_TIMEOUT`], so a probe answers within
//! two seconds whether the dependency is up, refusing connections, or silently dropping packets. What
//! went wrong is logged, never put in the body: probes are often reachable by more people than logs.

use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use serde::Serialize;
use sqlx::PgPool;

pub const CHECK_TIMEOUT: Duration = Duration::from_millis(1500);

/// One dependency's state as a probe reports it.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub status: &'static str,
    pub latency_ms: f64,
}

impl Check {
    pub fn healthy(&self) -> bool {
        self.status == "healthy"
    }
}

async fn timed<F, E>(dependency: &'static str, probe: F) -> Check
where
    F: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let started = Instant::now();
    let outcome = tokio::time::timeout(CHECK_TIMEOUT, probe).await;
    let latency_ms = (started.elapsed().as_secs_f64() * 1000.0 * 100.0).round() / 100.0;
    let error = match outcome {
        Ok(Ok(())) => None,
        Ok(Err(err)) => Some(err.to_string()),
        Err(_) => Some(format!("no answer within {} ms", CHECK_TIMEOUT.as_millis())),
    };
    if let Some(error) = &error {
        tracing::warn!(dependency, error, "health check failed");
    }
    Check {
        status: if error.is_none() {
            "healthy"
        } else {
            "unhealthy"
        },
        latency_ms,
    }
}

/// `SELECT 1` through the pool.
pub async fn database(pool: &PgPool) -> Check {
    timed("database", async {
        sqlx::query("SELECT 1").execute(pool).await.map(|_| ())
    })
    .await
}

/// `PING` on the shared Redis connection.
pub async fn cache(redis: &ConnectionManager) -> Check {
    let mut redis = redis.clone();
    timed("cache", async move {
        redis::cmd("PING")
            .query_async::<String>(&mut redis)
            .await
            .map(|_| ())
    })
    .await
}
