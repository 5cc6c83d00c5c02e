//! The append-only audit log of `/ops` actions (`ops_audit_log`): who, what, target, before/after,
//! when, request id. The table refuses UPDATE, DELETE and TRUNCATE to every role (a trigger) and the API
//! role holds only INSERT and SELECT on it (migration …60, `mingus-admin create-roles`).
//!
//! When a row is written:
//! - an action that is one database transaction (deleting a dead job) writes its row in that
//!   transaction, so the change and its record commit or vanish together;
//! - an action that ends in Redis or spans several transactions (pause/resume, retries, replays, running
//!   a schedule) writes its row right after, with the outcome: `ok`, or `failed` with the error when it
//!   may have changed something (a push that failed after its claim, a Redis command that timed out);
//! - a request refused before it changes anything (a viewer acting, bad input, unknown target,
//!   conflict) writes nothing: it is answered with a typed 4xx and logged.
//!
//! Read with `GET /ops/audit` (newest first) and export with `GET /ops/audit/export?from=&to=`
//! (JSON lines, oldest first).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::PgExecutor;

use super::actions::Action;
use super::actor::Actor;
use super::{db_error, pagination, query};
use crate::error::ApiError;
use crate::state::AppState;

/// Rows one export answers at most (`x-mingus-truncated: true` says there were more: narrow the range).
const EXPORT_MAX_ROWS: i64 = 100_000;
/// The widest range one export covers.
const EXPORT_MAX_DAYS: i64 = 366;

/// What one action did, for its audit row.
#[derive(Debug, Default)]
pub struct Entry {
    pub target: Option<String>,
    pub before: Option<Value>,
    pub after: Option<Value>,
    /// `Some(error)` when the action failed after it may have changed something.
    pub failure: Option<String>,
}

/// Writes one audit row. Pass the action's transaction when it has one.
pub async fn record(
    executor: impl PgExecutor<'_>,
    actor: &Actor,
    action: Action,
    entry: Entry,
) -> sqlx::Result<()> {
    let (outcome, after) = match entry.failure {
        None => ("ok", entry.after),
        Some(error) => {
            let mut after = entry.after.unwrap_or_else(|| json!({}));
            after["error"] = json!(error);
            ("failed", Some(after))
        }
    };
    sqlx::query(
        "INSERT INTO ops_audit_log (actor, operator_id, actor_role, action, target, before, after, outcome, request_id, client_ip)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::text::inet)",
    )
    .bind(&actor.name)
    .bind(actor.operator_id)
    .bind(actor.role.name())
    .bind(action.name)
    .bind(entry.target)
    .bind(entry.before)
    .bind(after)
    .bind(outcome)
    .bind(&actor.request_id)
    .bind(actor.client_ip.map(|ip| ip.to_string()))
    .execute(executor)
    .await?;
    Ok(())
}

/// Writes the row of an action that already happened outside the database (Redis, several
/// transactions). If the database refuses now, the action cannot be undone: the entry goes to the error
/// log in full, and the operator still gets the action's answer.
pub async fn record_after(state: &AppState, actor: &Actor, action: Action, entry: Entry) {
    let summary = format!("{entry:?}");
    if let Err(err) = record(&state.db, actor, action, entry).await {
        tracing::error!(error = %err, actor = %actor.name, action = action.name, entry = %summary,
            "could not write the audit row of an operator action");
    }
}

#[derive(Debug, Serialize, sqlx::FromRow)]
struct Row {
    id: i64,
    at: DateTime<Utc>,
    actor: String,
    actor_role: String,
    action: String,
    target: Option<String>,
    before: Option<Value>,
    after: Option<Value>,
    outcome: String,
    request_id: Option<String>,
    client_ip: Option<String>,
}

const COLUMNS: &str = "id, at, actor, actor_role, action, target, before, after, outcome, request_id, host(client_ip) AS client_ip";

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    from: Option<String>,
    to: Option<String>,
    actor: Option<String>,
    action: Option<String>,
    page: Option<String>,
    per_page: Option<String>,
}

/// An instant from the query string: RFC 3339, or a date (its midnight UTC).
fn instant(raw: Option<&str>, name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
    let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    if let Ok(at) = DateTime::parse_from_rfc3339(raw) {
        return Ok(Some(at.with_timezone(&Utc)));
    }
    if let Ok(date) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        return Ok(Some(date.and_time(chrono::NaiveTime::MIN).and_utc()));
    }
    Err(ApiError::bad_request(
        "invalid_time",
        format!("{name} must be an RFC 3339 time (2026-12-01T00:00:00Z) or a date (2026-12-01)"),
    ))
}

/// A short free-text filter (actor or action name): at most 100 characters.
fn text_filter(raw: Option<&str>, name: &str) -> Result<Option<String>, ApiError> {
    match raw.map(str::trim).filter(|r| !r.is_empty()) {
        None => Ok(None),
        Some(value) if value.chars().count() <= 100 => Ok(Some(value.to_owned())),
        Some(_) => Err(ApiError::bad_request(
            "invalid_filter",
            format!("{name} must be at most 100 characters"),
        )),
    }
}

fn ordered(from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> Result<(), ApiError> {
    match (from, to) {
        (Some(from), Some(to)) if from >= to => Err(ApiError::bad_request(
            "invalid_range",
            "from must be before to",
        )),
        _ => Ok(()),
    }
}

/// `GET /ops/audit?from=&to=&actor=&action=&page=&per_page=`: newest first.
pub async fn list(
    State(state): State<AppState>,
    params: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let params = query(params)?;
    let (page, per_page) = pagination(params.page.as_deref(), params.per_page.as_deref())?;
    let from = instant(params.from.as_deref(), "from")?;
    let to = instant(params.to.as_deref(), "to")?;
    ordered(from, to)?;
    let actor = text_filter(params.actor.as_deref(), "actor")?;
    let action = text_filter(params.action.as_deref(), "action")?;
    let items: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM ops_audit_log
         WHERE ($1::timestamptz IS NULL OR at >= $1) AND ($2::timestamptz IS NULL OR at < $2)
           AND ($3::text IS NULL OR actor = $3) AND ($4::text IS NULL OR action = $4)
         ORDER BY at DESC, id DESC LIMIT $5 OFFSET $6"
    )))
    .bind(from)
    .bind(to)
    .bind(actor)
    .bind(action)
    .bind(per_page + 1)
    .bind((page - 1) * per_page)
    .fetch_all(&state.db)
    .await
    .map_err(db_error)?;
    Ok(Json(super::paged(items, page, per_page)))
}

#[derive(Debug, Deserialize)]
pub struct ExportQuery {
    from: Option<String>,
    to: Option<String>,
}

/// `GET /ops/audit/export?from=&to=`: the rows with `from <= at < to` as JSON lines, oldest first, as a
/// download. Both bounds are required, at most [`EXPORT_MAX_DAYS`] apart.
pub async fn export(
    State(state): State<AppState>,
    params: Result<Query<ExportQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let params = query(params)?;
    let (Some(from), Some(to)) = (
        instant(params.from.as_deref(), "from")?,
        instant(params.to.as_deref(), "to")?,
    ) else {
        return Err(ApiError::bad_request(
            "invalid_range",
            "an export needs from and to (RFC 3339 times or dates)",
        ));
    };
    ordered(Some(from), Some(to))?;
    if to - from > chrono::Duration::days(EXPORT_MAX_DAYS) {
        return Err(ApiError::bad_request(
            "invalid_range",
            format!("an export covers at most {EXPORT_MAX_DAYS} days"),
        ));
    }
    let mut rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM ops_audit_log WHERE at >= $1 AND at < $2 ORDER BY at, id LIMIT $3"
    )))
    .bind(from)
    .bind(to)
    .bind(EXPORT_MAX_ROWS + 1)
    .fetch_all(&state.db)
    .await
    .map_err(db_error)?;
    let truncated = rows.len() as i64 > EXPORT_MAX_ROWS;
    rows.truncate(EXPORT_MAX_ROWS as usize);
    let mut body = String::new();
    for row in &rows {
        body.push_str(&serde_json::to_string(row).map_err(anyhow::Error::from)?);
        body.push('\n');
    }
    let file = format!(
        "attachment; filename=\"ops-audit-{}-{}.jsonl\"",
        from.format("%Y%m%dT%H%M%SZ"),
        to.format("%Y%m%dT%H%M%SZ")
    );
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    if let Ok(value) = HeaderValue::from_str(&file) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    headers.insert(
        "x-mingus-truncated",
        HeaderValue::from_static(if truncated { "true" } else { "false" }),
    );
    Ok(response)
}
