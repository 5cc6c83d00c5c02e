use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use chrono::{DateTime, Utc};
use mingus_common::config::stripe::StripeMode;
use mingus_common::jobs::catalog::ProcessStripeEvent;
use mingus_common::jobs::{Envelope, outbox};
// Shared with `mingus-admin stripe fetch-undelivered`, so a fetched event and its later delivery map to
// the same processing job.
use mingus_common::stripe_api::{EVENT_JOB_NAMESPACE, is_event, strip_nul};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::signature;
use crate::error::ApiError;
use crate::state::AppState;

/// How long the database part of a delivery may take before we answer 503 (Stripe waits ~10 s at most).
const DATABASE_BUDGET: Duration = Duration::from_secs(5);
/// How long we try to push the job; past it the outbox sweep pushes it.
const PUSH_BUDGET: Duration = Duration::from_millis(1_000);

/// What we keep of a delivery.
struct Incoming {
    id: String,
    kind: String,
    api_version: Option<String>,
    livemode: bool,
    created: Option<DateTime<Utc>>,
    object_id: Option<String>,
    object_type: Option<String>,
    payload: Option<Value>,
    raw_body: Option<String>,
    status: &'static str,
}

fn client(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::client(status, code, message)
}

pub async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type
        .to_ascii_lowercase()
        .starts_with("application/json")
    {
        return Err(client(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "expected application/json",
        ));
    }
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => client(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the body exceeds 1 MiB",
        ),
        status => client(status, "bad_body", rejection.body_text()),
    })?;
    let config = &state.config;
    if config.stripe_webhook_secrets.is_empty() {
        return Err(ApiError::client(
            StatusCode::SERVICE_UNAVAILABLE,
            "webhooks_not_configured",
            "STRIPE_WEBHOOK_SECRETS is not set",
        ));
    }
    let header_value = headers
        .get("stripe-signature")
        .map(|v| v.to_str().unwrap_or("\u{fffd}"));
    signature::verify(
        header_value,
        &body,
        &config.stripe_webhook_secrets,
        config.stripe.signature_tolerance,
        Utc::now().timestamp(),
    )
    .map_err(|err| client(StatusCode::BAD_REQUEST, err.code(), err.to_string()))?;

    let incoming = classify(&body, config.stripe.mode);
    let (inserted, envelope) = tokio::time::timeout(DATABASE_BUDGET, store(&state, &incoming))
        .await
        .map_err(|_| ApiError::Unavailable("database did not answer in time".into()))?
        .map_err(|err| ApiError::Unavailable(format!("database: {err:#}")))?;
    if let Some(envelope) = envelope {
        // Redis down or slow: the committed outbox row gets the job pushed by the sweep.
        let pushed = tokio::time::timeout(
            PUSH_BUDGET,
            outbox::push_after_commit(&state.db, &state.enqueuer, &[envelope]),
        )
        .await;
        if !matches!(pushed, Ok(true)) {
            tracing::warn!(event_id = %incoming.id, "event stored, job not pushed yet; the outbox sweep will push it");
        }
    }
    Ok(Json(json!({
        "received": true,
        "id": incoming.id,
        "status": incoming.status,
        "duplicate": !inserted,
    })))
}

/// Reads what we index from a verified body; anything that is not an event object is `unparseable`.
fn classify(body: &[u8], mode: StripeMode) -> Incoming {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let event = parsed.as_ref().filter(|v| is_event(v));
    let Some(event) = event else {
        let digest = hex::encode(Sha256::digest(body));
        return Incoming {
            id: format!("unparseable:{digest}"),
            kind: String::new(),
            api_version: None,
            livemode: false,
            created: None,
            object_id: None,
            object_type: None,
            payload: None,
            // TEXT cannot hold NUL: keep everything else, lossily decoded.
            raw_body: Some(String::from_utf8_lossy(body).replace('\0', "\u{fffd}")),
            status: "unparseable",
        };
    };
    let livemode = event["livemode"].as_bool().unwrap_or(false);
    let expected = mode == StripeMode::Live;
    Incoming {
        id: event["id"]
            .as_str()
            .unwrap_or_default()
            .chars()
            .take(255)
            .collect(),
        kind: event["type"]
            .as_str()
            .unwrap_or_default()
            .chars()
            .take(100)
            .collect(),
        api_version: event["api_version"]
            .as_str()
            .map(|s| s.chars().take(50).collect()),
        livemode,
        created: event["created"]
            .as_i64()
            .and_then(|t| DateTime::from_timestamp(t, 0)),
        object_id: event["data"]["object"]["id"]
            .as_str()
            .map(|s| s.chars().take(255).collect()),
        object_type: event["data"]["object"]["object"]
            .as_str()
            .map(|s| s.chars().take(100).collect()),
        payload: parsed.clone().map(strip_nul),
        raw_body: None,
        status: if livemode == expected {
            "received"
        } else {
            "quarantined"
        },
    }
}

/// Inserts the event if absent and, for a new processable one, its outbox row — in one statement (one
/// round trip, atomic without an explicit transaction).
async fn store(state: &AppState, incoming: &Incoming) -> anyhow::Result<(bool, Option<Envelope>)> {
    let envelope = if incoming.status == "received" {
        let job_id = Uuid::new_v5(&EVENT_JOB_NAMESPACE, incoming.id.as_bytes());
        Some(outbox::prepare(
            &ProcessStripeEvent {
                event_id: incoming.id.clone(),
            },
            job_id,
        )?)
    } else {
        None
    };
    let sql = format!(
        "WITH event AS (
             INSERT INTO stripe_events (id, type, api_version, livemode, created, object_id, object_type, payload, raw_body, status, job_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (id) DO NOTHING
             RETURNING job_id
         ), staged AS (
             INSERT INTO job_outbox {}
             SELECT job_id, $12, $13, $14, $15, $16 FROM event WHERE job_id IS NOT NULL
         )
         SELECT count(*) FROM event",
        outbox::OUTBOX_COLUMNS
    );
    let inserted: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(&incoming.id)
        .bind(&incoming.kind)
        .bind(&incoming.api_version)
        .bind(incoming.livemode)
        .bind(incoming.created)
        .bind(&incoming.object_id)
        .bind(&incoming.object_type)
        .bind(incoming.payload.as_ref().map(sqlx::types::Json))
        .bind(&incoming.raw_body)
        .bind(incoming.status)
        .bind(envelope.as_ref().map(|e| e.job_id))
        .bind(envelope.as_ref().map(|e| e.queue.name()))
        .bind(envelope.as_ref().map(|e| e.kind.clone()))
        .bind(envelope.as_ref().map(sqlx::types::Json))
        .bind(envelope.as_ref().map(|e| e.max_attempts as i32))
        .bind(envelope.as_ref().map(|e| e.enqueued_at))
        .fetch_one(&state.db)
        .await?;
    let inserted = inserted == 1;
    Ok((inserted, envelope.filter(|_| inserted)))
}
