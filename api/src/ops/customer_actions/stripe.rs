//! Replaying the customer's failed Stripe events: the `failed` events about their Stripe customers and
//! subscriptions (the ones their page lists), each through `stripe_api::replay`, the replay of
//! `POST /ops/stripe-events/{id}/replay` and `mingus-admin stripe replay` (reset to `received`, a new
//! processing job staged in the outbox, pushed after commit).
//!
//! Idempotent by nature: a replayed event is no longer `failed`, so a repeat finds nothing to replay.
//! The replay spans a transaction per event and a push, so its audit row is written right after, with
//! the outcome (`failed` when an event's replay errored after others may have been replayed).

use axum::extract::{Path, State};
use axum::{Extension, Json};
use mingus_common::stripe_api::{self, ReplayFilter};
use serde_json::{Value, json};

use super::{Change, answer, begin, entry};
use crate::error::ApiError;
use crate::ops::actions::CUSTOMER_STRIPE_REPLAY;
use crate::ops::actor::Actor;
use crate::ops::customers::EVENTS_OF_USER;
use crate::ops::{audit, db_error};
use crate::state::AppState;

/// The most events one request replays (oldest first); `truncated` says more remain.
const MAX_EVENTS: i64 = 100;

/// `POST /ops/customers/{id}/stripe-events/replay`.
pub async fn replay(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(raw): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (user, mut tx) = begin(&state, &raw).await?;
    let mut failed: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "{EVENTS_OF_USER}
         SELECT id FROM events_of_user WHERE status = 'failed' ORDER BY received_at, id LIMIT $2"
    )))
    .bind(user)
    .bind(MAX_EVENTS + 1)
    .fetch_all(&mut *tx)
    .await
    .map_err(db_error)?;
    // The replay runs transactions of its own; nothing is held meanwhile.
    tx.commit().await.map_err(db_error)?;
    let truncated = failed.len() as i64 > MAX_EVENTS;
    failed.truncate(MAX_EVENTS as usize);
    let mut replayed = Vec::new();
    let mut failure = None;
    for id in &failed {
        // `status: failed` re-checks that the event is still failed when the replay reads it.
        let filter = ReplayFilter {
            id: Some(id.clone()),
            status: Some("failed".to_owned()),
            limit: 1,
            ..ReplayFilter::default()
        };
        match stripe_api::replay(&state.db, &state.enqueuer, &filter).await {
            Ok(report) if report.replayed > 0 => replayed.push(id.clone()),
            Ok(_) => {}
            Err(err) => {
                failure = Some(format!("replaying {id}: {err:#}"));
                break;
            }
        }
    }
    let change = Change {
        changed: !replayed.is_empty(),
        before: json!({ "failed": failed }),
        after: json!({ "replayed": replayed, "truncated": truncated }),
    };
    audit::record_after(
        &state,
        &actor,
        CUSTOMER_STRIPE_REPLAY,
        entry(user, &change, failure.clone()),
    )
    .await;
    if let Some(failure) = failure {
        return Err(ApiError::Internal(anyhow::anyhow!(failure)));
    }
    tracing::info!(%user, replayed = replayed.len(), operator = %actor.name,
        "a customer's failed stripe events replayed by an operator");
    Ok(Json(
        answer(&state, CUSTOMER_STRIPE_REPLAY, user, change).await,
    ))
}
