use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use chrono::{DateTime, Utc};
use mingus_common::config::stripe::StripeMode;
// Shared with `mingus-admin stripe fetch-undelivered`, so a fetched event and its later delivery map to
// the same processing job.
use mingus_common::stripe_api::{EVENT_JOB_NAMESPACE, is_event, strip_nul};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::batch::EventRow;
use super::signature;
use crate::error::ApiError;
use crate::state::AppState;

/// How long the database part of a delivery may take before we answer 503 (Stripe waits ~10 s at most).
const DATABASE_BUDGET: Duration = Duration::from_secs(5);

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

    let row = classify(&body, config.stripe.mode)
        .with_job(&EVENT_JOB_NAMESPACE)
        .map_err(ApiError::Internal)?;
    let (id, status) = (row.id.clone(), row.status);
    let stored = tokio::time::timeout(DATABASE_BUDGET, state.ingest.store(row))
        .await
        .map_err(|_| ApiError::Unavailable("database did not answer in time".into()))?
        .map_err(|err| ApiError::Unavailable(format!("database: {err:#}")))?;
    if stored.inserted && !stored.pushed {
        // Redis down or slow: the committed outbox row gets the job pushed by the sweep.
        tracing::warn!(event_id = %id, "event stored, job not pushed yet; the outbox sweep will push it");
    }
    Ok(Json(json!({
        "received": true,
        "id": id,
        "status": status,
        "duplicate": !stored.inserted,
    })))
}

/// Reads what we index from a verified body. Anything that is not an event object, or whose fields we
/// index do not fit their columns (an id with NUL, which PostgreSQL cannot store, or longer than 255
/// characters, which a cut would merge with another event sharing its prefix), is stored whole as
/// `unparseable` under the digest of its bytes: a record for operators, answered once with 200 so
/// Stripe stops retrying, and never mistaken for — or deduplicated against — another event.
fn classify(body: &[u8], mode: StripeMode) -> EventRow {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let Some(owned) = parsed.filter(is_event) else {
        return unparseable(body);
    };
    let event = &owned;
    let (Some(id), Some(kind), Some(api_version), Some(object_id), Some(object_type)) = (
        indexed(&event["id"], 255).flatten(),
        indexed(&event["type"], 100),
        indexed(&event["api_version"], 50),
        indexed(&event["data"]["object"]["id"], 255),
        indexed(&event["data"]["object"]["object"], 100),
    ) else {
        return unparseable(body);
    };
    let livemode = event["livemode"].as_bool().unwrap_or(false);
    let expected = mode == StripeMode::Live;
    EventRow {
        id,
        kind: kind.unwrap_or_default(),
        api_version,
        livemode,
        created: event["created"]
            .as_i64()
            .and_then(|t| DateTime::from_timestamp(t, 0)),
        object_id,
        object_type,
        // The verified body itself is the payload (no re-serialisation); JSONB cannot hold NUL, so a body
        // that escapes one is rebuilt without it.
        payload: Some(if contains(body, br"\u0000") {
            serde_json::to_string(&strip_nul(owned)).unwrap_or_default()
        } else {
            String::from_utf8_lossy(body).into_owned()
        }),
        raw_body: None,
        status: if livemode == expected {
            "received"
        } else {
            "quarantined"
        },
        envelope: None,
    }
}

/// An indexed string field: `Some(None)` when absent or not a string, `Some(Some(text))` when it fits
/// its column, `None` when it cannot be stored as it is (NUL, or more than `max` characters).
fn indexed(value: &Value, max: usize) -> Option<Option<String>> {
    let Some(text) = value.as_str() else {
        return Some(None);
    };
    (!text.contains('\0') && text.chars().count() <= max).then(|| Some(text.to_owned()))
}

/// A verified body we do not index, kept for operators under the digest of its exact bytes.
fn unparseable(body: &[u8]) -> EventRow {
    let digest = hex::encode(Sha256::digest(body));
    EventRow {
        id: format!("unparseable:{digest}"),
        kind: String::new(),
        api_version: None,
        livemode: false,
        created: None,
        object_id: None,
        object_type: None,
        payload: None,
        // TEXT cannot hold NUL: keep everything else, lossily decoded (the id's digest is of the bytes).
        raw_body: Some(String::from_utf8_lossy(body).replace('\0', "\u{fffd}")),
        status: "unparseable",
        envelope: None,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
