//! Health probes. Each dependency check is bounded by [`CHECK_TIMEOUT`], so a probe answers within two
//! seconds whether the dependency is up, refusing connections, or silently dropping packets.

use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};

use crate::state::AppState;

const CHECK_TIMEOUT: Duration = Duration::from_millis(1500);

#[derive(Debug, Serialize)]
struct Check {
    status: &'static str,
    latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl Check {
    fn healthy(&self) -> bool {
        self.status == "healthy"
    }
}

async fn timed<F, E>(probe: F) -> Check
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
    Check {
        status: if error.is_none() {
            "healthy"
        } else {
            "unhealthy"
        },
        latency_ms,
        error,
    }
}

async fn check_database(state: &AppState) -> Check {
    timed(async { sqlx::query("SELECT 1").execute(&state.db).await.map(|_| ()) }).await
}

async fn check_cache(state: &AppState) -> Check {
    let mut redis = state.redis.clone();
    timed(async move {
        redis::cmd("PING")
            .query_async::<String>(&mut redis)
            .await
            .map(|_| ())
    })
    .await
}

fn respond(healthy: bool, mut body: Value) -> (StatusCode, Json<Value>) {
    body["status"] = json!(if healthy { "healthy" } else { "unhealthy" });
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

pub async fn live() -> (StatusCode, Json<Value>) {
    respond(
        true,
        json!({ "service": "mingus-api", "version": env!("CARGO_PKG_VERSION") }),
    )
}

pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let (database, cache) = tokio::join!(check_database(&state), check_cache(&state));
    let healthy = database.healthy() && cache.healthy();
    respond(
        healthy,
        json!({ "checks": { "database": database, "cache": cache } }),
    )
}

pub async fn database(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let check = check_database(&state).await;
    respond(check.healthy(), json!({ "check": check }))
}

pub async fn cache(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let check = check_cache(&state).await;
    respond(check.healthy(), json!({ "check": check }))
}
