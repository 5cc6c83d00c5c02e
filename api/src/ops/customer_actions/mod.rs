//! The customer page's actions (issue 25): each a `POST /ops/customers/{id}/…`, listed with its role in
//! [`super::actions`] (support: they act on one customer whose problem is in front of the operator).
//!
//! Every action
//! - answers 404 `unknown_customer` for a user that does not exist, and a typed 4xx (400 bad input,
//!   404 unknown target, 409 a state the action must not touch) that changes and records nothing;
//! - is idempotent: sending the same request again leaves the same state and answers `"changed":
//!   false` (a natural key makes a repeat recognisable where the action is not idempotent by itself:
//!   the trial's expected end, the resend's original delivery);
//! - writes exactly one audit row per 2xx answer, target = the user id, `before`/`after` as JSON and
//!   `after.changed`; the ones that are one transaction write it in that transaction (the change and
//!   its record commit together), the Stripe replay (several transactions and a push) right after;
//! - evicts the user's cached entitlements after its commit, so `/v1/features` answers from the new
//!   state at once (`cache_evicted` says whether Redis took the eviction; if not, the cache's TTL
//!   bounds the staleness).

mod access;
mod email;
mod promotions;
mod stripe;
mod trial;
mod usage;

pub use access::recompute;
pub use email::resend;
pub use promotions::{grant, revoke};
pub use stripe::replay;
pub use trial::extend;
pub use usage::reset;

use axum::Json;
use serde_json::{Value, json};
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use super::actions::Action;
use super::actor::Actor;
use super::customers::{unknown_customer, user_id};
use super::{audit, db_error};
use crate::error::ApiError;
use crate::state::AppState;

/// What one action found and left.
struct Change {
    changed: bool,
    before: Value,
    after: Value,
}

/// Parses the customer id of the path and begins the action's transaction with the user row held
/// (`FOR KEY SHARE`: the user cannot be deleted under the action, nothing else waits).
async fn begin(
    state: &AppState,
    raw_id: &str,
) -> Result<(Uuid, Transaction<'static, Postgres>), ApiError> {
    let id = user_id(raw_id)?;
    let mut tx = state.db.begin().await.map_err(db_error)?;
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM users WHERE id = $1 FOR KEY SHARE")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
    if exists.is_none() {
        return Err(unknown_customer(id));
    }
    Ok((id, tx))
}

/// Writes the audit row in the action's transaction, commits, evicts the user's cached entitlements
/// and answers.
async fn finish(
    state: &AppState,
    actor: &Actor,
    action: Action,
    user: Uuid,
    mut tx: Transaction<'static, Postgres>,
    change: Change,
) -> Result<Json<Value>, ApiError> {
    let entry = entry(user, &change, None);
    audit::record(&mut *tx, actor, action, entry)
        .await
        .map_err(db_error)?;
    tx.commit().await.map_err(db_error)?;
    Ok(Json(answer(state, action, user, change).await))
}

fn entry(user: Uuid, change: &Change, failure: Option<String>) -> audit::Entry {
    let mut after = change.after.clone();
    if let Value::Object(map) = &mut after {
        map.insert("changed".into(), json!(change.changed));
    } else {
        after = json!({ "value": after, "changed": change.changed });
    }
    audit::Entry {
        target: Some(user.to_string()),
        before: Some(change.before.clone()),
        after: Some(after),
        failure,
    }
}

/// Evicts, then the answer every action gives.
async fn answer(state: &AppState, action: Action, user: Uuid, change: Change) -> Value {
    let evicted = match state.entitlements.invalidate(user).await {
        Ok(()) => true,
        Err(err) => {
            tracing::warn!(error = %err, %user, action = action.name,
                "cannot evict cached entitlements after a customer action (they expire within the TTL)");
            false
        }
    };
    json!({
        "customer": user,
        "action": action.name,
        "changed": change.changed,
        "before": change.before,
        "after": change.after,
        "cache_evicted": evicted,
    })
}
