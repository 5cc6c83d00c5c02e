//! Searching the ledger (`job_runs`) and one job's whole story: arguments, every attempt, dead letter,
//! outbox row.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::types::Json as SqlJson;
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use super::{db_error, job_id, kind_param, pagination, query, queue_param};
use crate::error::ApiError;
use crate::state::AppState;

const RUN_COLUMNS: &str =
    "id, job_id, task_id, queue, kind, attempt, max_attempts, status, error, worker,
    enqueued_at, started_at, finished_at, duration_ms, args_summary";

/// One execution, as the ledger recorded it.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct RunRow {
    id: i64,
    job_id: Uuid,
    task_id: String,
    queue: String,
    kind: String,
    attempt: i32,
    max_attempts: i32,
    status: String,
    error: Option<String>,
    worker: String,
    enqueued_at: DateTime<Utc>,
    started_at: DateTime<Utc>,
    finished_at: DateTime<Utc>,
    duration_ms: f64,
    args_summary: String,
    /// The life this attempt belonged to (0 until an operator retries the dead job).
    #[sqlx(skip)]
    generation: Option<u32>,
}

/// The generation a task id was minted for: task ids are the job id XOR'd with the generation (bits
/// 96..) and the attempt (bits 64..), see `Envelope::task_id`.
fn generation_of(task_id: &str, job_id: Uuid) -> Option<u32> {
    let salt = ulid::Ulid::from_string(task_id).ok()?.0 ^ job_id.as_u128();
    u32::try_from(salt >> 96).ok()
}

#[derive(Debug, Deserialize)]
pub struct SearchQuery {
    queue: Option<String>,
    kind: Option<String>,
    status: Option<String>,
    job_id: Option<String>,
    q: Option<String>,
    page: Option<String>,
    per_page: Option<String>,
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// `%`, `_` and `\` match themselves in the search text.
fn like_pattern(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// `GET /ops/jobs`: the ledger, newest first, filtered and paginated.
pub async fn search(
    State(state): State<AppState>,
    params: Result<Query<SearchQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let params = query(params)?;
    let (page, per_page) = pagination(non_empty(&params.page), non_empty(&params.per_page))?;
    let mut sql: QueryBuilder<Postgres> =
        QueryBuilder::new(format!("SELECT {RUN_COLUMNS} FROM job_runs WHERE true"));
    if let Some(raw) = non_empty(&params.queue) {
        sql.push(" AND queue = ")
            .push_bind(queue_param(raw)?.name());
    }
    if let Some(raw) = non_empty(&params.kind) {
        sql.push(" AND kind = ").push_bind(kind_param(raw)?);
    }
    if let Some(raw) = non_empty(&params.status) {
        if !matches!(raw, "succeeded" | "retrying" | "dead") {
            return Err(ApiError::bad_request(
                "invalid_status",
                "status must be one of succeeded, retrying, dead",
            ));
        }
        sql.push(" AND status = ").push_bind(raw.to_owned());
    }
    if let Some(raw) = non_empty(&params.job_id) {
        sql.push(" AND job_id = ").push_bind(job_id(raw)?);
    }
    if let Some(text) = non_empty(&params.q) {
        if text.chars().count() > 200 {
            return Err(ApiError::bad_request(
                "invalid_query",
                "q is at most 200 characters",
            ));
        }
        let pattern = like_pattern(text);
        sql.push(" AND (args_summary ILIKE ")
            .push_bind(pattern.clone())
            .push(" ESCAPE '\\' OR error ILIKE ")
            .push_bind(pattern)
            .push(" ESCAPE '\\')");
    }
    sql.push(" ORDER BY finished_at DESC, id DESC LIMIT ")
        .push_bind(per_page + 1)
        .push(" OFFSET ")
        .push_bind((page - 1) * per_page);
    let items: Vec<RunRow> = sql
        .build_query_as()
        .fetch_all(&state.db)
        .await
        .map_err(db_error)?;
    Ok(Json(super::paged(items, page, per_page)))
}

/// The executions of `job_ids`, newest first, at most `limit` (the customer page's jobs).
pub(super) async fn runs_of(
    db: &sqlx::PgPool,
    job_ids: &[Uuid],
    limit: i64,
) -> Result<Vec<RunRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {RUN_COLUMNS} FROM job_runs WHERE job_id = ANY($1) ORDER BY finished_at DESC, id DESC LIMIT $2"
    );
    let mut runs: Vec<RunRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(job_ids)
        .bind(limit)
        .fetch_all(db)
        .await?;
    for run in &mut runs {
        run.generation = generation_of(&run.task_id, run.job_id);
    }
    Ok(runs)
}

#[derive(Debug, sqlx::FromRow)]
struct DeadRow {
    queue: String,
    kind: String,
    args: SqlJson<Value>,
    attempts: i32,
    generation: i32,
    last_error: String,
    died_at: DateTime<Utc>,
    retried_at: Option<DateTime<Utc>>,
}

#[derive(Debug, sqlx::FromRow)]
struct OutboxRow {
    queue: String,
    kind: String,
    args: SqlJson<Value>,
    created_at: DateTime<Utc>,
    last_pushed_at: Option<DateTime<Utc>>,
    push_count: i32,
    completed_at: Option<DateTime<Utc>>,
    outcome: Option<String>,
}

/// Where the job stands, from what the three tables say.
fn job_state(dead: Option<&DeadRow>, outbox: Option<&OutboxRow>, runs: &[RunRow]) -> &'static str {
    if let Some(dead) = dead {
        match dead.retried_at {
            None => return "dead",
            Some(retried) if runs.iter().all(|r| r.started_at < retried) => return "retried",
            Some(_) => {}
        }
    }
    match (runs.last().map(|r| r.status.as_str()), outbox) {
        (_, Some(o)) if o.outcome.as_deref() == Some("deleted") => "deleted",
        (Some("succeeded"), _) => "succeeded",
        (Some("retrying"), _) => "retrying",
        // Died, and its dead letter is gone: an operator deleted it.
        (Some(_), _) => "deleted",
        (None, Some(o)) if o.completed_at.is_none() => "pending",
        (None, _) => "unknown",
    }
}

/// `GET /ops/jobs/{job_id}`.
pub async fn detail(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = job_id(&raw)?;
    let dead = sqlx::query_as::<_, DeadRow>(
        "SELECT queue, kind, args, attempts, generation, last_error, died_at, retried_at
         FROM job_dead_letters WHERE job_id = $1",
    )
    .bind(id)
    .fetch_optional(&state.db);
    let outbox = sqlx::query_as::<_, OutboxRow>(
        "SELECT queue, kind, args, created_at, last_pushed_at, push_count, completed_at, outcome
         FROM job_outbox WHERE job_id = $1",
    )
    .bind(id)
    .fetch_optional(&state.db);
    let runs_sql = format!(
        "SELECT {RUN_COLUMNS} FROM job_runs WHERE job_id = $1 ORDER BY started_at, id LIMIT 500"
    );
    let runs = sqlx::query_as::<_, RunRow>(sqlx::AssertSqlSafe(runs_sql))
        .bind(id)
        .fetch_all(&state.db);
    let (dead, outbox, mut runs) = tokio::try_join!(dead, outbox, runs).map_err(db_error)?;
    for run in &mut runs {
        run.generation = generation_of(&run.task_id, run.job_id);
    }
    if dead.is_none() && outbox.is_none() && runs.is_empty() {
        return Err(ApiError::not_found(format!("no job {id}")));
    }
    // The envelope (dead letter first: it is the latest life) carries the arguments and generation.
    let envelope = dead
        .as_ref()
        .map(|d| &d.args.0)
        .or(outbox.as_ref().map(|o| &o.args.0));
    let queue = dead
        .as_ref()
        .map(|d| d.queue.clone())
        .or(outbox.as_ref().map(|o| o.queue.clone()))
        .or(runs.first().map(|r| r.queue.clone()));
    let kind = dead
        .as_ref()
        .map(|d| d.kind.clone())
        .or(outbox.as_ref().map(|o| o.kind.clone()))
        .or(runs.first().map(|r| r.kind.clone()));
    // The current life: the newest of what the envelopes, the dead letter and the ledger say.
    let generation = [
        dead.as_ref()
            .map(|d| d.generation + i32::from(d.retried_at.is_some())),
        envelope
            .and_then(|e| e["generation"].as_i64())
            .map(|g| g as i32),
        runs.iter()
            .filter_map(|r| r.generation)
            .max()
            .map(|g| g as i32),
    ]
    .into_iter()
    .flatten()
    .max()
    .unwrap_or(0);
    let summary = envelope
        .and_then(|e| e.get("summary").cloned())
        .or(runs.last().map(|r| json!(r.args_summary)));
    Ok(Json(json!({
        "job_id": id,
        "queue": queue,
        "kind": kind,
        "state": job_state(dead.as_ref(), outbox.as_ref(), &runs),
        "summary": summary,
        "args": envelope.and_then(|e| e.get("args").cloned()),
        "generation": generation,
        "dead_letter": dead.as_ref().map(|d| json!({
            "attempts": d.attempts,
            "generation": d.generation,
            "last_error": d.last_error,
            "died_at": d.died_at,
            "retried_at": d.retried_at,
        })),
        "outbox": outbox.as_ref().map(|o| json!({
            "created_at": o.created_at,
            "last_pushed_at": o.last_pushed_at,
            "push_count": o.push_count,
            "completed_at": o.completed_at,
            "outcome": o.outcome,
        })),
        "attempts": runs,
    })))
}

#[cfg(test)]
mod tests {
    use mingus_common::jobs::Envelope;
    use mingus_common::jobs::catalog::BenchNoop;

    use super::*;

    #[test]
    fn the_generation_is_read_back_from_a_task_id() {
        let envelope = Envelope::new(&BenchNoop::default(), Uuid::now_v7()).unwrap();
        let revived = Envelope {
            generation: 3,
            ..envelope.next_attempt()
        };
        assert_eq!(generation_of(&envelope.task_id(), envelope.job_id), Some(0));
        assert_eq!(generation_of(&revived.task_id(), revived.job_id), Some(3));
        assert_eq!(generation_of("not-a-ulid", envelope.job_id), None);
    }

    #[test]
    fn search_text_matches_wildcards_literally() {
        assert_eq!(like_pattern(r"100%_\"), r"%100\%\_\\%");
    }
}
