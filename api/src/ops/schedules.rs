//! The cron table as operators see it (`GET /ops/schedules`) and running a schedule now
//! (`POST /ops/schedules/{name}/run`), through `mingus_common::cron`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::Utc;
use mingus_common::cron::{self, CronTable, TriggerError};
use serde_json::{Value, json};

use super::actor::Actor;
use super::{actions, audit, db_error, redis_error};
use crate::error::ApiError;
use crate::state::AppState;

/// The table this deployment runs: the built-in schedules with the `MINGUS_SCHEDULE_*` overrides.
/// Built per request: a handful of parsed expressions, and always what the configuration says.
fn table(state: &AppState) -> CronTable {
    CronTable::from_config(&state.config.scheduler)
}

/// `GET /ops/schedules`: every schedule, its latest run (and that job's outcome) and its next tick.
pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let schedules = cron::schedule_status(&state.db, &table(&state), Utc::now())
        .await
        .map_err(db_error)?;
    Ok(Json(json!({ "schedules": schedules })))
}

/// `POST /ops/schedules/{name}/run`: a manual run now (disabled schedules too); the next scheduled
/// tick still runs.
pub async fn run(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let table = table(&state);
    if table.get(&name).is_none() {
        return Err(ApiError::client(
            StatusCode::NOT_FOUND,
            "unknown_schedule",
            format!(
                "no schedule named {:?}; known: {}",
                name.chars().take(100).collect::<String>(),
                table.names().join(", ")
            ),
        ));
    }
    let result = cron::trigger_now(&state.db, &state.enqueuer, &table, &name).await;
    let (after, failure) = match &result {
        Ok(run) => (Some(json!({ "run": run })), None),
        Err(TriggerError::UnknownSchedule(_)) => {
            return Err(ApiError::not_found("no such schedule"));
        }
        Err(err) => (None, Some(err.to_string())),
    };
    let entry = audit::Entry {
        target: Some(name.clone()),
        before: None,
        after,
        failure,
    };
    audit::record_after(&state, &actor, actions::SCHEDULE_RUN, entry).await;
    match result {
        Ok(run) => {
            tracing::info!(schedule = %name, job_id = %run.job_id, operator = %actor.name, "schedule run by an operator");
            Ok(Json(json!({ "run": run })))
        }
        Err(TriggerError::UnknownSchedule(_)) => Err(ApiError::not_found("no such schedule")),
        Err(TriggerError::Database(err)) => Err(db_error(err)),
        Err(TriggerError::Job(err)) => Err(redis_error(err)),
    }
}
