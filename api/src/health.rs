//! Health probes. `/health/ready` is what a load balancer asks: ready while PostgreSQL answers, since
//! the API keeps working without Redis (webhooks are stored and reach the queue through the outbox;
//! entitlements fall back to the database), so Redis down makes it `degraded`, still 200. The checks
//! live in `mingus_common::health`; bodies carry statuses and latencies, never error text.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use mingus_common::health::{self, Check};
use serde_json::{Value, json};

use crate::state::AppState;

fn respond(status: &'static str, mut body: Value) -> (StatusCode, Json<Value>) {
    body["status"] = json!(status);
    let code = if status == "unhealthy" {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (code, Json(body))
}

fn verdict(check: &Check) -> &'static str {
    if check.healthy() {
        "healthy"
    } else {
        "unhealthy"
    }
}

pub async fn live() -> (StatusCode, Json<Value>) {
    respond(
        "healthy",
        json!({ "service": "mingus-api", "version": env!("CARGO_PKG_VERSION") }),
    )
}

pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let (database, cache) = tokio::join!(health::database(&state.db), health::cache(&state.redis));
    let status = match (database.healthy(), cache.healthy()) {
        (false, _) => "unhealthy",
        (true, false) => "degraded",
        (true, true) => "healthy",
    };
    respond(
        status,
        json!({ "checks": { "database": database, "cache": cache } }),
    )
}

pub async fn database(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let check = health::database(&state.db).await;
    respond(verdict(&check), json!({ "check": check }))
}

pub async fn cache(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let check = health::cache(&state.redis).await;
    respond(verdict(&check), json!({ "check": check }))
}
