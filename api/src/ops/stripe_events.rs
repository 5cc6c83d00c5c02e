//! Stored Stripe events (`stripe_events`, the webhook inbox): list and filter them, read one with its
//! payload and error, replay one or every failed one.
//!
//! Replays go through `mingus_common::stripe_api::replay`, the same function `mingus-admin stripe
//! replay` uses: each event is reset to `received` and gets a new processing job whose `job_outbox` row
//! is written in the same transaction, then pushed. When Redis does not take the push the event is still
//! re-staged and the outbox sweep pushes it later, so the answer is 202 either way; `redis_reachable`
//! says which of the two is happening.

use std::time::Duration;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use mingus_common::stripe_api::{self, PROTECTED, ReplayFilter, ReplayReport, STATUSES};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::types::Json as SqlJson;
use uuid::Uuid;

use super::actor::Actor;
use super::{actions, audit, db_error, json as json_body, pagination, query};
use crate::error::ApiError;
use crate::state::AppState;

/// Counts stop at this many rows per status (the dashboard asks every two seconds and processed events
/// are never pruned): a count equal to it means "at least".
const COUNT_CAP: i64 = 10_000;
/// The raw body of an unparseable delivery is shown up to this many characters.
const RAW_BODY_SHOWN: usize = 64 * 1024;
/// How long the answer of a replay waits for Redis to say whether it is there.
const PING_BUDGET: Duration = Duration::from_secs(1);

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    status: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    page: Option<String>,
    per_page: Option<String>,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
struct EventItem {
    id: String,
    #[serde(rename = "type")]
    #[sqlx(rename = "type")]
    kind: String,
    api_version: Option<String>,
    livemode: bool,
    created: Option<DateTime<Utc>>,
    received_at: DateTime<Utc>,
    status: String,
    attempts: i32,
    last_error: Option<String>,
    processed_at: Option<DateTime<Utc>>,
    /// What a `received` event is parked on (`customer:…`, `subscription:…`, `invoice:…`): applying
    /// that re-drives it at once (worker/src/stripe/waits.rs).
    waits_for: Option<String>,
}

fn non_empty(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

fn invalid_status(raw: &str) -> ApiError {
    ApiError::bad_request(
        "invalid_status",
        format!(
            "unknown status {raw:?}: one of {} (several may be given, comma-separated)",
            STATUSES.join(", ")
        ),
    )
}

/// One status, or several comma-separated (`failed,unparseable`); unknown ones → 400.
fn statuses_param(raw: &str) -> Result<Vec<String>, ApiError> {
    let mut statuses = Vec::new();
    for part in raw.split(',').map(str::trim) {
        if !STATUSES.contains(&part) {
            return Err(invalid_status(part));
        }
        if !statuses.iter().any(|s| s == part) {
            statuses.push(part.to_owned());
        }
    }
    Ok(statuses)
}

/// A Stripe event type (`invoice.payment_failed`): letters, digits, '.', '_', at most 100 characters.
fn type_param(raw: &str) -> Result<String, ApiError> {
    let valid = !raw.is_empty()
        && raw.len() <= 100
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_'));
    if valid {
        Ok(raw.to_owned())
    } else {
        Err(ApiError::bad_request(
            "invalid_type",
            "type must be a Stripe event type: 1–100 letters, digits, '.' and '_'",
        ))
    }
}

/// A stored event id: Stripe's `evt_…`, or the ids we mint for verified bodies that did not parse
/// (`unparseable:<sha256>`) and for reconciliation (`reconcile:<subscription>:<unix time>`).
fn event_id(raw: &str) -> Result<String, ApiError> {
    let word = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    let valid = raw.len() <= 255
        && if let Some(rest) = raw.strip_prefix("evt_") {
            word(rest)
        } else if let Some(digest) = raw.strip_prefix("unparseable:") {
            digest.len() == 64 && digest.chars().all(|c| c.is_ascii_hexdigit())
        } else if let Some(rest) = raw.strip_prefix("reconcile:") {
            rest.rsplit_once(':').is_some_and(|(sub, at)| {
                word(sub) && !at.is_empty() && at.chars().all(|c| c.is_ascii_digit())
            })
        } else {
            false
        };
    if valid {
        Ok(raw.to_owned())
    } else {
        Err(ApiError::bad_request(
            "invalid_event_id",
            "event id must be evt_ followed by letters, digits and '_' (or an unparseable:/reconcile: id)",
        ))
    }
}

/// An optional JSON body: none (no content type) is the defaults.
fn optional_json<T: Default>(body: Result<Option<Json<T>>, JsonRejection>) -> Result<T, ApiError> {
    json_body(body.map(|b| b.unwrap_or_else(|| Json(T::default()))))
}

fn unknown_event(id: &str) -> ApiError {
    ApiError::client(
        StatusCode::NOT_FOUND,
        "unknown_event",
        format!("no stored Stripe event {id}"),
    )
}

/// Why an event of a protected status is not replayed without `force`.
fn protected(id: &str, status: &str) -> ApiError {
    let why = if status == "unparseable" {
        "its body did not parse as an event, so there is no payload to apply"
    } else {
        "its livemode is not this deployment's Stripe mode, so it must not be applied"
    };
    ApiError::conflict(
        "protected_status",
        format!(
            "event {id} is {status}: {why}; processing would refuse it again. Send {{\"force\": true}} to replay it anyway"
        ),
    )
}

/// A replay failed in the library: the database is the only thing it can fail on (a failed push is
/// left to the outbox sweep).
fn replay_error(err: anyhow::Error) -> ApiError {
    match err.downcast::<sqlx::Error>() {
        Ok(db) => db_error(db),
        Err(other) => ApiError::Internal(other),
    }
}

/// Whether Redis answers now (bounded), so a replay's answer can say whether its jobs were pushed or
/// wait for the outbox sweep.
async fn redis_reachable(state: &AppState) -> bool {
    let mut redis = state.redis.clone();
    let ping = redis::cmd("PING");
    let answer = tokio::time::timeout(PING_BUDGET, ping.query_async::<String>(&mut redis)).await;
    matches!(answer, Ok(Ok(_)))
}

async fn replay_answer(state: &AppState, report: ReplayReport, mut body: Value) -> Value {
    let reachable = redis_reachable(state).await;
    body["replayed"] = json!(report.replayed);
    body["skipped_protected"] = json!(report.skipped_protected);
    body["truncated"] = json!(report.truncated);
    body["redis_reachable"] = json!(reachable);
    if !reachable {
        body["note"] = json!(
            "Redis did not answer: the events are reset to received and their jobs are staged in the outbox; \
             the outbox sweep pushes them once Redis is back"
        );
    }
    body
}

/// `GET /ops/stripe-events?status=&type=&page=&per_page=`: newest first, without payloads, with the
/// count of every status (for the type filter, not the status one).
pub async fn list(
    State(state): State<AppState>,
    params: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let params = query(params)?;
    let (page, per_page) = pagination(
        non_empty(params.page.as_deref()),
        non_empty(params.per_page.as_deref()),
    )?;
    let statuses = non_empty(params.status.as_deref())
        .map(statuses_param)
        .transpose()?;
    let kind = non_empty(params.kind.as_deref())
        .map(type_param)
        .transpose()?;
    let items = sqlx::query_as::<_, EventItem>(
        "SELECT id, type, api_version, livemode, created, received_at, status, attempts, last_error, processed_at,
                CASE WHEN status = 'received' THEN waits_for END AS waits_for
         FROM stripe_events
         WHERE ($1::text[] IS NULL OR status = ANY($1)) AND ($2::text IS NULL OR type = $2)
         ORDER BY received_at DESC, id LIMIT $3 OFFSET $4",
    )
    .bind(&statuses)
    .bind(&kind)
    .bind(per_page + 1)
    .bind((page - 1) * per_page)
    .fetch_all(&state.db);
    let counts = sqlx::query_as::<_, (String, i64)>(
        "SELECT s.status,
                (SELECT count(*) FROM (SELECT 1 FROM stripe_events e
                                       WHERE e.status = s.status AND ($1::text IS NULL OR e.type = $1)
                                       LIMIT $3) capped)
         FROM unnest($2::text[]) AS s(status)",
    )
    .bind(&kind)
    .bind(&STATUSES[..])
    .bind(COUNT_CAP)
    .fetch_all(&state.db);
    let drift = mingus_common::billing::drift::latest(&state.db);
    let (mut items, counts, drift) = tokio::try_join!(items, counts, drift).map_err(db_error)?;
    let has_more = items.len() as i64 > per_page;
    items.truncate(per_page as usize);
    let counts: serde_json::Map<String, Value> = counts
        .into_iter()
        .map(|(status, n)| (status, json!(n)))
        .collect();
    Ok(Json(json!({
        "items": items,
        "counts": counts,
        "counts_capped_at": COUNT_CAP,
        // The latest nightly drift report of each source (`local`, `stripe`): 0 drifts expected.
        "drift": drift,
        "page": page,
        "per_page": per_page,
        "has_more": has_more,
    })))
}

#[derive(Debug, sqlx::FromRow)]
struct EventRow {
    id: String,
    #[sqlx(rename = "type")]
    kind: String,
    api_version: Option<String>,
    livemode: bool,
    created: Option<DateTime<Utc>>,
    object_id: Option<String>,
    object_type: Option<String>,
    payload: Option<SqlJson<Value>>,
    raw_body: Option<String>,
    received_at: DateTime<Utc>,
    status: String,
    attempts: i32,
    last_error: Option<String>,
    processed_at: Option<DateTime<Utc>>,
    job_id: Option<Uuid>,
    waits_for: Option<String>,
    order_decision: Option<String>,
}

#[derive(Debug, sqlx::FromRow)]
struct JobRow {
    outbox_completed_at: Option<DateTime<Utc>>,
    outbox_outcome: Option<String>,
    outbox_pushes: Option<i32>,
    has_outbox: bool,
    run_status: Option<String>,
    run_attempt: Option<i32>,
    run_error: Option<String>,
    run_finished_at: Option<DateTime<Utc>>,
}

/// The processing job as the outbox and the ledger's latest attempt tell it (`GET /ops/jobs/{id}` has
/// the whole story).
async fn job_summary(state: &AppState, job_id: Uuid) -> Result<Value, ApiError> {
    let row: JobRow = sqlx::query_as(
        "SELECT o.completed_at AS outbox_completed_at, o.outcome AS outbox_outcome,
                o.push_count AS outbox_pushes, o.job_id IS NOT NULL AS has_outbox,
                r.status AS run_status, r.attempt AS run_attempt, r.error AS run_error,
                r.finished_at AS run_finished_at
         FROM (SELECT $1::uuid AS job_id) j
         LEFT JOIN job_outbox o ON o.job_id = j.job_id
         LEFT JOIN LATERAL (SELECT status, attempt, error, finished_at FROM job_runs
                            WHERE job_id = j.job_id ORDER BY finished_at DESC, id DESC LIMIT 1) r ON true",
    )
    .bind(job_id)
    .fetch_one(&state.db)
    .await
    .map_err(db_error)?;
    let job_state = match (row.outbox_outcome.as_deref(), row.run_status.as_deref()) {
        (Some("deleted"), _) => "deleted",
        (_, Some(status)) => status,
        // The worker completes the outbox row before the ledger row is written.
        (Some(outcome), None) => outcome,
        (None, None) if row.has_outbox && row.outbox_completed_at.is_none() => "pending",
        _ => "unknown",
    };
    Ok(json!({
        "job_id": job_id,
        "state": job_state,
        "outbox_pushes": row.outbox_pushes,
        "last_attempt": row.run_status.as_ref().map(|status| json!({
            "status": status,
            "attempt": row.run_attempt,
            "error": row.run_error,
            "finished_at": row.run_finished_at,
        })),
    }))
}

/// `GET /ops/stripe-events/{id}`: the stored event with its payload (or, for an unparseable
/// delivery, the start of its raw body), its error and its processing job.
pub async fn detail(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = event_id(&raw)?;
    let row: Option<EventRow> = sqlx::query_as(
        "SELECT id, type, api_version, livemode, created, object_id, object_type, payload,
                CASE WHEN payload IS NULL THEN raw_body END AS raw_body,
                received_at, status, attempts, last_error, processed_at, job_id,
                CASE WHEN status = 'received' THEN waits_for END AS waits_for, order_decision
         FROM stripe_events WHERE id = $1",
    )
    .bind(&id)
    .fetch_optional(&state.db)
    .await
    .map_err(db_error)?;
    let Some(row) = row else {
        return Err(unknown_event(&id));
    };
    let job = match row.job_id {
        Some(job_id) => Some(job_summary(&state, job_id).await?),
        None => None,
    };
    let raw_body_truncated = row
        .raw_body
        .as_ref()
        .is_some_and(|b| b.chars().nth(RAW_BODY_SHOWN).is_some());
    let raw_body = row
        .raw_body
        .map(|body| body.chars().take(RAW_BODY_SHOWN).collect::<String>());
    Ok(Json(json!({
        "id": row.id,
        "type": row.kind,
        "api_version": row.api_version,
        "livemode": row.livemode,
        "created": row.created,
        "object_id": row.object_id,
        "object_type": row.object_type,
        "received_at": row.received_at,
        "status": row.status,
        "attempts": row.attempts,
        "last_error": row.last_error,
        "processed_at": row.processed_at,
        "waits_for": row.waits_for,
        // How a subscription state was ordered against the stored one (worker/src/stripe/subscription.rs).
        "order_decision": row.order_decision,
        "protected": PROTECTED.contains(&row.status.as_str()),
        "payload": row.payload.map(|p| p.0),
        "raw_body": raw_body,
        "raw_body_truncated": raw_body_truncated,
        "job": job,
    })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayOne {
    #[serde(default)]
    force: bool,
}

/// `POST /ops/stripe-events/{id}/replay` (optional JSON `{"force": bool}`): 202 with the replay report.
pub async fn replay_one(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(raw): Path<String>,
    body: Result<Option<Json<ReplayOne>>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = event_id(&raw)?;
    let force = optional_json(body)?.force;
    let status: Option<String> =
        sqlx::query_scalar("SELECT status FROM stripe_events WHERE id = $1")
            .bind(&id)
            .fetch_optional(&state.db)
            .await
            .map_err(db_error)?;
    let Some(status) = status else {
        return Err(unknown_event(&id));
    };
    if PROTECTED.contains(&status.as_str()) && !force {
        return Err(protected(&id, &status));
    }
    let filter = ReplayFilter {
        id: Some(id.clone()),
        force,
        limit: 1,
        ..ReplayFilter::default()
    };
    let report = stripe_api::replay(&state.db, &state.enqueuer, &filter).await;
    let entry = audit::Entry {
        target: Some(id.clone()),
        before: Some(json!({ "status": status })),
        after: report
            .as_ref()
            .ok()
            .map(|r| json!({ "replayed": r.replayed, "force": force })),
        failure: report.as_ref().err().map(|err| format!("{err:#}")),
    };
    // A replay the locked re-check skipped (the status changed to a protected one meanwhile) changed
    // nothing and is answered 409 below: no row.
    if report.as_ref().map_or(true, |r| r.replayed > 0) {
        audit::record_after(&state, &actor, actions::STRIPE_EVENT_REPLAY, entry).await;
    }
    let report = report.map_err(replay_error)?;
    // Changed between the look-up and the replay's own (locked) check.
    let now: Option<(String, Option<Uuid>)> =
        sqlx::query_as("SELECT status, job_id FROM stripe_events WHERE id = $1")
            .bind(&id)
            .fetch_optional(&state.db)
            .await
            .map_err(db_error)?;
    let Some((now_status, job_id)) = now else {
        return Err(unknown_event(&id));
    };
    if report.replayed == 0 {
        return Err(protected(&id, &now_status));
    }
    tracing::info!(event_id = %id, force, operator = %actor.name, "stripe event replayed by an operator");
    let body = json!({ "id": id, "status": now_status, "job_id": job_id });
    Ok((
        StatusCode::ACCEPTED,
        Json(replay_answer(&state, report, body).await),
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayMany {
    status: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    force: bool,
}

/// `POST /ops/stripe-events/replay` (optional JSON `{"status": "failed", "type"?, "force"?}`, status
/// `failed` by default): replays every matching event, oldest first, up to the library's cap.
pub async fn replay_many(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    body: Result<Option<Json<ReplayMany>>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let request = optional_json(body)?;
    let status = non_empty(request.status.as_deref()).unwrap_or("failed");
    if !STATUSES.contains(&status) {
        return Err(invalid_status(status));
    }
    if PROTECTED.contains(&status) && !request.force {
        return Err(ApiError::conflict(
            "protected_status",
            format!(
                "{status} events are not replayed without {{\"force\": true}}: processing refuses them again \
                 (unparseable ones have no payload, quarantined ones are of the other Stripe mode)"
            ),
        ));
    }
    let kind = non_empty(request.kind.as_deref())
        .map(type_param)
        .transpose()?;
    let filter = ReplayFilter {
        status: Some(status.to_owned()),
        kind: kind.clone(),
        force: request.force,
        ..ReplayFilter::default()
    };
    let report = stripe_api::replay(&state.db, &state.enqueuer, &filter).await;
    let entry = audit::Entry {
        target: Some(format!(
            "status={status} type={}",
            kind.as_deref().unwrap_or("*")
        )),
        before: None,
        after: report.as_ref().ok().map(|r| {
            json!({ "replayed": r.replayed, "skipped_protected": r.skipped_protected,
                    "truncated": r.truncated, "force": request.force })
        }),
        failure: report.as_ref().err().map(|err| format!("{err:#}")),
    };
    audit::record_after(&state, &actor, actions::STRIPE_EVENTS_REPLAY, entry).await;
    let report = report.map_err(replay_error)?;
    tracing::info!(
        status,
        kind = kind.as_deref(),
        replayed = report.replayed,
        truncated = report.truncated,
        operator = %actor.name,
        "stripe events replayed by an operator"
    );
    let body = json!({ "status": status, "type": kind });
    Ok((
        StatusCode::ACCEPTED,
        Json(replay_answer(&state, report, body).await),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_of_every_stored_kind_are_accepted_and_others_refused() {
        let digest = "ab".repeat(32);
        for ok in [
            "evt_1PgafmB7WZ01zgkW",
            "evt_test_webhook",
            &format!("unparseable:{digest}"),
            "reconcile:sub_123:1790000000",
        ] {
            assert_eq!(event_id(ok).unwrap(), ok);
        }
        for bad in [
            "",
            "evt_",
            "evt_a-b",
            "evt_a b",
            "cus_123",
            "unparseable:xyz",
            "reconcile:sub_1:",
            "reconcile:sub 1:17",
            &format!("evt_{}", "a".repeat(252)),
        ] {
            assert!(event_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn statuses_and_types_are_validated() {
        assert_eq!(
            statuses_param("failed, quarantined,failed").unwrap(),
            ["failed", "quarantined"]
        );
        assert!(statuses_param("failed,dead").is_err());
        assert!(type_param("invoice.payment_failed").is_ok());
        assert!(type_param("invoice.*").is_err());
        assert!(type_param(&"a".repeat(101)).is_err());
    }
}
