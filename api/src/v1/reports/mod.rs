//! Reports: `POST /v1/reports` ([`create`]), `GET /v1/reports` (newest first, keyset-paginated),
//! `GET /v1/reports/{id}` (status), `GET /v1/reports/{id}/download` (the file once `ready`).
//!
//! Creating needs `reports:write` and, acting for a team owner, the editor role; reading needs
//! `reports:read` and the viewer role. A report of another account is 404, like one that does not exist.

pub mod create;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use mingus_common::reports::{Period, ReportFormat, ReportKind, ReportSpec};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use uuid::Uuid;

pub use create::create;

use super::{PathParam, Principal, Scope, TeamRole, db_error};
use crate::error::ApiError;
use crate::state::AppState;

const DEFAULT_PAGE: i64 = 20;
const MAX_PAGE: i64 = 100;

pub(crate) fn status_url(id: Uuid) -> String {
    format!("/v1/reports/{id}")
}

fn download_url(id: Uuid) -> String {
    format!("/v1/reports/{id}/download")
}

/// An error object with extra fields: `{"error": {code, message, ...details}}`.
pub(crate) fn error_with(
    status: StatusCode,
    code: &str,
    message: impl Into<String>,
    details: Map<String, Value>,
) -> Response {
    error_with_code(status, code.to_owned(), message, details)
}

pub(crate) fn error_with_code(
    status: StatusCode,
    code: String,
    message: impl Into<String>,
    details: Map<String, Value>,
) -> Response {
    let mut error = Map::new();
    error.insert("code".into(), json!(code));
    error.insert("message".into(), json!(message.into()));
    error.extend(details);
    (status, Json(json!({ "error": error }))).into_response()
}

/// A report as `GET /v1/reports/{id}` and the listing show it.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct ReportView {
    id: Uuid,
    kind: String,
    format: String,
    period_start: NaiveDate,
    period_end: NaiveDate,
    sections: Vec<String>,
    status: String,
    failure_reason: Option<String>,
    requested_by: Option<Uuid>,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    #[sqlx(skip)]
    status_url: String,
    #[sqlx(skip)]
    download_url: Option<String>,
}

impl ReportView {
    fn with_links(mut self) -> Self {
        self.status_url = status_url(self.id);
        self.download_url = (self.status == "ready").then(|| download_url(self.id));
        self
    }
}

const VIEW_COLUMNS: &str = "id, kind, format, period_start, period_end, sections, status, \
                            failure_reason, requested_by, created_at, started_at, finished_at";

fn not_found() -> ApiError {
    ApiError::not_found("no such report")
}

pub async fn get_one(
    State(state): State<AppState>,
    principal: Principal,
    PathParam(id): PathParam<Uuid>,
) -> Result<Json<ReportView>, ApiError> {
    principal.require(Scope::ReportsRead)?;
    let owner = principal.account(TeamRole::Viewer)?;
    let view: Option<ReportView> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {VIEW_COLUMNS} FROM reports WHERE id = $1 AND user_id = $2"
    )))
    .bind(id)
    .bind(owner)
    .fetch_optional(&state.db)
    .await
    .map_err(db_error)?;
    view.map(|v| Json(v.with_links())).ok_or_else(not_found)
}

#[derive(Debug, Deserialize)]
pub struct ListParams {
    limit: Option<i64>,
    /// The `next_cursor` of the previous page: the id of its last (oldest) report.
    cursor: Option<Uuid>,
}

/// `{"reports": [...], "next_cursor": id | null}`, newest first (ids are UUIDv7: id order is creation
/// order), `limit` 1–100 (default 20).
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Scope::ReportsRead)?;
    let owner = principal.account(TeamRole::Viewer)?;
    let Query(params) = params
        .map_err(|rejection| ApiError::bad_request("invalid_query", rejection.body_text()))?;
    let limit = params.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("limit must be between 1 and {MAX_PAGE}"),
        ));
    }
    let mut rows: Vec<ReportView> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {VIEW_COLUMNS} FROM reports
         WHERE user_id = $1 AND ($2::uuid IS NULL OR id < $2)
         ORDER BY id DESC LIMIT $3"
    )))
    .bind(owner)
    .bind(params.cursor)
    .bind(limit + 1)
    .fetch_all(&state.db)
    .await
    .map_err(db_error)?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = more.then(|| rows.last().map(|r| r.id)).flatten();
    let reports: Vec<ReportView> = rows.into_iter().map(ReportView::with_links).collect();
    Ok(Json(
        json!({ "reports": reports, "next_cursor": next_cursor }),
    ))
}

#[derive(sqlx::FromRow)]
struct Download {
    status: String,
    failure_reason: Option<String>,
    kind: String,
    format: String,
    period_start: NaiveDate,
    period_end: NaiveDate,
    /// The JSON document (pretty-printed) or the CSV file.
    body: Option<String>,
}

/// The file of a `ready` report; 409 `report_not_ready` (with `status`, `Retry-After`) while it is
/// queued or running, 409 `report_failed` (with `failure_reason`) when it failed.
pub async fn download(
    State(state): State<AppState>,
    principal: Principal,
    PathParam(id): PathParam<Uuid>,
) -> Result<Response, ApiError> {
    principal.require(Scope::ReportsRead)?;
    let owner = principal.account(TeamRole::Viewer)?;
    let row: Option<Download> = sqlx::query_as(
        "SELECT status, failure_reason, kind, format, period_start, period_end,
                CASE WHEN status <> 'ready' THEN NULL
                     WHEN format = 'csv' THEN rendered
                     ELSE jsonb_pretty(content) || E'\\n' END AS body
         FROM reports WHERE id = $1 AND user_id = $2",
    )
    .bind(id)
    .bind(owner)
    .fetch_optional(&state.db)
    .await
    .map_err(db_error)?;
    let row = row.ok_or_else(not_found)?;
    match row.status.as_str() {
        "ready" => {}
        "failed" => {
            let mut details = Map::new();
            details.insert("status".into(), json!("failed"));
            details.insert("failure_reason".into(), json!(row.failure_reason));
            return Ok(error_with(
                StatusCode::CONFLICT,
                "report_failed",
                "the report failed and has no file; request a new one",
                details,
            ));
        }
        status => {
            let mut details = Map::new();
            details.insert("status".into(), json!(status));
            let mut response = error_with(
                StatusCode::CONFLICT,
                "report_not_ready",
                "the report is not ready yet; poll its status_url",
                details,
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
            return Ok(response);
        }
    }
    let (Some(kind), Some(format), Some(body)) = (
        ReportKind::parse(&row.kind),
        ReportFormat::parse(&row.format),
        row.body,
    ) else {
        return Err(ApiError::Internal(anyhow::anyhow!(
            "ready report {id} has no file or an unknown kind/format"
        )));
    };
    let spec = ReportSpec {
        kind,
        format,
        period: Period {
            start: row.period_start,
            end: row.period_end,
        },
        sections: Vec::new(),
    };
    let disposition = format!("attachment; filename=\"{}\"", spec.file_name());
    // Excel opens a CSV file as the system's legacy code page unless it starts with a UTF-8 byte order
    // mark (accents and currency signs in goal titles came out garbled); every other reader skips it.
    // Added on the way out: the stored file is the writer's RFC 4180 text.
    let body = match format {
        ReportFormat::Csv => format!("\u{FEFF}{body}"),
        _ => body,
    };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(response)
}
