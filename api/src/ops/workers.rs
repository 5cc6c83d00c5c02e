//! `GET /ops/workers`: every worker registered in a queue's `workers` set, how many jobs it holds, and
//! whether its heartbeat is older than the orphan window (it stopped or died; apalis-redis never removes
//! a stopped worker, NOTES-apalis defect 4, so stale entries stay until a live worker reaps them).

use axum::Json;
use axum::extract::State;
use chrono::{TimeZone, Utc};
use serde_json::{Value, json};

use super::queues::redis_depths;
use super::redis_error;
use crate::error::ApiError;
use crate::state::AppState;

/// Splits `queue@host:pid:hex` into host and pid; other shapes keep only the name.
fn parse_name(name: &str) -> (Option<&str>, Option<u32>) {
    let Some((_, rest)) = name.split_once('@') else {
        return (None, None);
    };
    let mut parts = rest.rsplitn(3, ':');
    let _suffix = parts.next();
    let pid = parts.next().and_then(|p| p.parse().ok());
    let host = parts.next();
    match (host, pid) {
        (Some(host), Some(pid)) => (Some(host), Some(pid)),
        _ => (None, None),
    }
}

pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let depths = redis_depths(&state.enqueuer).await.map_err(redis_error)?;
    let window = state.config.jobs.orphan_window().as_secs_f64();
    let now = Utc::now().timestamp_millis() as f64 / 1000.0;
    let mut workers = Vec::new();
    for depth in &depths {
        for ((name, heartbeat), busy) in depth.workers.iter().zip(&depth.busy) {
            let (host, pid) = parse_name(name);
            let age = (now - heartbeat).max(0.0);
            let last = Utc
                .timestamp_millis_opt((heartbeat * 1000.0) as i64)
                .single();
            workers.push(json!({
                "name": name,
                "queue": depth.queue.name(),
                "host": host,
                "pid": pid,
                "busy": busy,
                "last_heartbeat": last,
                "heartbeat_age_secs": (age * 10.0).round() / 10.0,
                "stale": age > window,
            }));
        }
    }
    Ok(Json(json!({
        "workers": workers,
        "orphan_window_secs": window,
    })))
}

#[cfg(test)]
mod tests {
    use super::parse_name;

    #[test]
    fn worker_names_split_into_host_and_pid() {
        assert_eq!(
            parse_name("bench@web-1:4242:0a1b2c3d"),
            (Some("web-1"), Some(4242))
        );
        assert_eq!(parse_name("email@host:x:ff"), (None, None));
        assert_eq!(parse_name("plain"), (None, None));
    }
}
