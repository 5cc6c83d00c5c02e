//! Dead letters: list, retry one or many, delete.
//!
//! A retry claims the dead letter (`retried_at`) in one short statement, re-opens the outbox row with the
//! new envelope, then pushes (no network call inside a transaction); a failed push undoes the claim. The
//! new life starts at attempt 1 with `generation + 1`, so its task ids are new and Redis does not drop it.

use std::collections::BTreeMap;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use mingus_common::jobs::{Envelope, catalog, outbox};
use mingus_common::queue::Queue;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::types::Json as SqlJson;
use uuid::Uuid;

use super::actor::Actor;
use super::{
    actions, audit, db_error, job_id, json, kind_param, pagination, query, queue_param, redis_error,
};
use crate::error::ApiError;
use crate::state::AppState;

/// Dead letters claimed and pushed per round of a bulk retry, and the most rounds one request runs.
const BATCH: i64 = 500;
const MAX_ROUNDS: usize = 200;

#[derive(Debug, Deserialize)]
pub struct DeadQuery {
    queue: Option<String>,
    kind: Option<String>,
    page: Option<String>,
    per_page: Option<String>,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub(super) struct DeadItem {
    job_id: Uuid,
    queue: String,
    kind: String,
    attempts: i32,
    max_attempts: i32,
    generation: i32,
    last_error: String,
    enqueued_at: DateTime<Utc>,
    died_at: DateTime<Utc>,
    summary: Option<String>,
}

const DEAD_COLUMNS: &str =
    "job_id, queue, kind, attempts, max_attempts, generation, last_error, enqueued_at, died_at,
     args->>'summary' AS summary";

/// The open dead letters of `job_ids`, most recent first, at most `limit` (the customer page's).
pub(super) async fn open_letters_of(
    db: &sqlx::PgPool,
    job_ids: &[Uuid],
    limit: i64,
) -> Result<Vec<DeadItem>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {DEAD_COLUMNS} FROM job_dead_letters
         WHERE retried_at IS NULL AND job_id = ANY($1) ORDER BY died_at DESC, job_id LIMIT $2"
    )))
    .bind(job_ids)
    .bind(limit)
    .fetch_all(db)
    .await
}

fn filters(
    queue: Option<&str>,
    kind: Option<&str>,
) -> Result<(Option<String>, Option<String>), ApiError> {
    let queue = match queue.map(str::trim).filter(|q| !q.is_empty()) {
        Some(raw) => Some(queue_param(raw)?.name().to_owned()),
        None => None,
    };
    let kind = match kind.map(str::trim).filter(|k| !k.is_empty()) {
        Some(raw) => Some(kind_param(raw)?),
        None => None,
    };
    Ok((queue, kind))
}

/// `GET /ops/dead?queue=&kind=`: open dead letters, most recent first.
pub async fn list(
    State(state): State<AppState>,
    params: Result<Query<DeadQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let params = query(params)?;
    let (page, per_page) = pagination(params.page.as_deref(), params.per_page.as_deref())?;
    let (queue, kind) = filters(params.queue.as_deref(), params.kind.as_deref())?;
    let items: Vec<DeadItem> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {DEAD_COLUMNS} FROM job_dead_letters
         WHERE retried_at IS NULL AND ($1::text IS NULL OR queue = $1) AND ($2::text IS NULL OR kind = $2)
         ORDER BY died_at DESC, job_id LIMIT $3 OFFSET $4"
    )))
    .bind(queue)
    .bind(kind)
    .bind(per_page + 1)
    .bind((page - 1) * per_page)
    .fetch_all(&state.db)
    .await
    .map_err(db_error)?;
    Ok(Json(super::paged(items, page, per_page)))
}

fn known_kinds() -> Vec<&'static str> {
    catalog::SPECS.iter().map(|s| s.kind).collect()
}

/// The first attempt of the dead job's next life.
fn revived(envelope: Envelope) -> Envelope {
    Envelope {
        attempt: 1,
        generation: envelope.generation + 1,
        enqueued_at: Utc::now(),
        ..envelope
    }
}

/// Why a job id could not be claimed: 404 when nothing knows it, 409 otherwise.
async fn not_claimable(state: &AppState, id: Uuid) -> ApiError {
    type Row = (String, Option<DateTime<Utc>>);
    let row: Result<Option<Row>, _> =
        sqlx::query_as("SELECT kind, retried_at FROM job_dead_letters WHERE job_id = $1")
            .bind(id)
            .fetch_optional(&state.db)
            .await;
    match row {
        Err(err) => db_error(err),
        Ok(Some((kind, None))) => ApiError::conflict(
            "unknown_kind",
            format!("no worker runs job kind {kind:?}; it cannot be retried"),
        ),
        Ok(Some((_, Some(_)))) => {
            ApiError::conflict("not_dead", format!("job {id} was already retried"))
        }
        Ok(None) => {
            let known: Result<bool, _> = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM job_runs WHERE job_id = $1)
                     OR EXISTS (SELECT 1 FROM job_outbox WHERE job_id = $1)",
            )
            .bind(id)
            .fetch_one(&state.db)
            .await;
            match known {
                Err(err) => db_error(err),
                Ok(true) => ApiError::conflict("not_dead", format!("job {id} is not dead")),
                Ok(false) => ApiError::not_found(format!("no job {id}")),
            }
        }
    }
}

/// Gives claimed dead letters back (their push failed).
async fn unclaim(state: &AppState, envelopes: &[Envelope]) {
    let ids: Vec<Uuid> = envelopes.iter().map(|e| e.job_id).collect();
    let result =
        sqlx::query("UPDATE job_dead_letters SET retried_at = NULL WHERE job_id = ANY($1)")
            .bind(&ids)
            .execute(&state.db)
            .await;
    let outboxed = sqlx::query(
        "UPDATE job_outbox SET completed_at = now(), outcome = 'dead' WHERE job_id = ANY($1) AND completed_at IS NULL",
    )
    .bind(&ids)
    .execute(&state.db)
    .await;
    if let Err(err) = result.and(outboxed) {
        tracing::error!(error = %err, jobs = ids.len(), "could not release dead letters after a failed push");
    }
}

/// `POST /ops/jobs/{job_id}/retry`.
pub async fn retry(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(raw): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = job_id(&raw)?;
    let claimed: Option<(SqlJson<Envelope>,)> = sqlx::query_as(
        "UPDATE job_dead_letters SET retried_at = now()
         WHERE job_id = $1 AND retried_at IS NULL AND kind = ANY($2) RETURNING args",
    )
    .bind(id)
    .bind(known_kinds())
    .fetch_optional(&state.db)
    .await
    .map_err(db_error)?;
    let Some((SqlJson(envelope),)) = claimed else {
        return Err(not_claimable(&state, id).await);
    };
    let before = json!({ "dead": true, "queue": envelope.queue, "kind": envelope.kind, "generation": envelope.generation });
    let envelope = revived(envelope);
    // The outbox row follows the new life, so a sweep re-pushes this generation, not the dead one.
    let reopened = sqlx::query("UPDATE job_outbox SET args = $2 WHERE job_id = $1")
        .bind(id)
        .bind(SqlJson(&envelope))
        .execute(&state.db)
        .await
        .map_err(db_error)?;
    if reopened.rows_affected() > 0 {
        outbox::reopen(&state.db, id).await.map_err(db_error)?;
    }
    if let Err(err) = state
        .enqueuer
        .push(std::slice::from_ref(&envelope), None, None)
        .await
    {
        unclaim(&state, std::slice::from_ref(&envelope)).await;
        let entry = audit::Entry {
            target: Some(id.to_string()),
            before: Some(before),
            after: Some(json!({ "dead": true, "claim": "undone" })),
            failure: Some(format!("push failed: {err:#}")),
        };
        audit::record_after(&state, &actor, actions::JOB_RETRY, entry).await;
        return Err(redis_error(err));
    }
    let entry = audit::Entry {
        target: Some(id.to_string()),
        before: Some(before),
        after: Some(json!({ "dead": false, "generation": envelope.generation })),
        failure: None,
    };
    audit::record_after(&state, &actor, actions::JOB_RETRY, entry).await;
    tracing::info!(job_id = %id, generation = envelope.generation, operator = %actor.name, "dead job retried by an operator");
    Ok(Json(json!({
        "job_id": id,
        "queue": envelope.queue,
        "kind": envelope.kind,
        "generation": envelope.generation,
        "retried": true,
    })))
}

/// `DELETE /ops/jobs/{job_id}`: forgets a dead job (its ledger rows stay as history).
pub async fn delete(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(raw): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = job_id(&raw)?;
    let mut tx = state.db.begin().await.map_err(db_error)?;
    let deleted: Option<Value> = sqlx::query_scalar(
        "DELETE FROM job_dead_letters WHERE job_id = $1 AND retried_at IS NULL
         RETURNING jsonb_build_object('queue', queue, 'kind', kind, 'attempts', attempts,
                                      'generation', generation, 'last_error', last_error, 'died_at', died_at)",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await
    .map_err(db_error)?;
    let Some(before) = deleted else {
        drop(tx);
        return Err(match not_claimable(&state, id).await {
            ApiError::Client {
                code: "unknown_kind",
                ..
            } => changed_meanwhile(id),
            other => other,
        });
    };
    sqlx::query(
        "UPDATE job_outbox SET outcome = 'deleted', completed_at = coalesce(completed_at, now()) WHERE job_id = $1",
    )
    .bind(id)
    .execute(&mut *tx)
    .await
    .map_err(db_error)?;
    let entry = audit::Entry {
        target: Some(id.to_string()),
        before: Some(before),
        after: None,
        failure: None,
    };
    audit::record(&mut *tx, &actor, actions::JOB_DELETE, entry)
        .await
        .map_err(db_error)?;
    tx.commit().await.map_err(db_error)?;
    tracing::info!(job_id = %id, operator = %actor.name, "dead job deleted by an operator");
    Ok(Json(json!({ "job_id": id, "deleted": true })))
}

/// The dead letter came back (the retried job died again) between the delete and the diagnosis.
fn changed_meanwhile(id: Uuid) -> ApiError {
    ApiError::conflict("not_dead", format!("job {id} changed meanwhile; reload"))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryFilter {
    queue: Option<String>,
    kind: Option<String>,
}

/// `POST /ops/dead/retry` `{queue?, kind?}`: retries every matching dead letter that died before the
/// request (one that dies again meanwhile is not retried twice). Returns how many.
pub async fn retry_all(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    body: Result<Json<RetryFilter>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let filter = json(body)?;
    let (queue, kind) = filters(filter.queue.as_deref(), filter.kind.as_deref())?;
    let target = format!(
        "queue={} kind={}",
        queue.as_deref().unwrap_or("*"),
        kind.as_deref().unwrap_or("*")
    );
    let result = retry_matching(&state, queue.as_deref(), kind.as_deref()).await;
    let (retried, failure) = match &result {
        Ok(retried) => (*retried, None),
        Err((retried, err)) => (*retried, Some(format!("{err}"))),
    };
    let entry = audit::Entry {
        target: Some(target),
        before: None,
        after: Some(json!({ "retried": retried })),
        failure,
    };
    // Recorded even when nothing matched: the operator asked, and the row says it found nothing.
    audit::record_after(&state, &actor, actions::DEAD_RETRY_ALL, entry).await;
    let retried = result.map_err(|(_, err)| err)?;
    tracing::info!(retried, ?queue, ?kind, operator = %actor.name, "dead jobs retried by an operator");
    Ok(Json(json!({ "retried": retried })))
}

/// Claims and pushes the matching dead letters in batches; on failure, how many were retried before.
async fn retry_matching(
    state: &AppState,
    queue: Option<&str>,
    kind: Option<&str>,
) -> Result<usize, (usize, ApiError)> {
    let started = Utc::now();
    let kinds = known_kinds();
    let mut retried = 0usize;
    for _ in 0..MAX_ROUNDS {
        let claimed: Vec<(SqlJson<Envelope>,)> = sqlx::query_as(
            "UPDATE job_dead_letters SET retried_at = now()
             WHERE job_id IN (
                 SELECT job_id FROM job_dead_letters
                 WHERE retried_at IS NULL AND died_at <= $1 AND kind = ANY($2)
                   AND ($3::text IS NULL OR queue = $3) AND ($4::text IS NULL OR kind = $4)
                 ORDER BY died_at LIMIT $5 FOR UPDATE SKIP LOCKED)
             RETURNING args",
        )
        .bind(started)
        .bind(&kinds)
        .bind(queue)
        .bind(kind)
        .bind(BATCH)
        .fetch_all(&state.db)
        .await
        .map_err(|err| (retried, db_error(err)))?;
        if claimed.is_empty() {
            break;
        }
        let envelopes: Vec<Envelope> = claimed.into_iter().map(|(e,)| revived(e.0)).collect();
        let ids: Vec<Uuid> = envelopes.iter().map(|e| e.job_id).collect();
        let args: Vec<SqlJson<&Envelope>> = envelopes.iter().map(SqlJson).collect();
        sqlx::query(
            "UPDATE job_outbox o SET args = u.args, completed_at = NULL, outcome = NULL, last_pushed_at = now()
             FROM UNNEST($1::uuid[], $2::jsonb[]) AS u(job_id, args) WHERE o.job_id = u.job_id",
        )
        .bind(&ids)
        .bind(&args)
        .execute(&state.db)
        .await
        .map_err(|err| (retried, db_error(err)))?;
        let mut by_queue: BTreeMap<Queue, Vec<Envelope>> = BTreeMap::new();
        for envelope in envelopes {
            by_queue.entry(envelope.queue).or_default().push(envelope);
        }
        let mut groups = by_queue.into_values();
        while let Some(group) = groups.next() {
            if let Err(err) = state.enqueuer.push(&group, None, None).await {
                let rest: Vec<Envelope> = std::iter::once(group).chain(groups).flatten().collect();
                unclaim(state, &rest).await;
                tracing::warn!(retried, "bulk retry stopped: push failed");
                return Err((retried, redis_error(err)));
            }
            retried += group.len();
        }
    }
    Ok(retried)
}
