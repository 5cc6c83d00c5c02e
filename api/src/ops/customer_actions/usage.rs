//! Resetting one usage counter of the current usage period to zero (a support gesture: "your reports
//! this month did not work, here they are again"). Only metrics counted per period can be reset: a
//! cap's usage is the rows that exist (goals, team members) and a rate is the limiter's.
//!
//! Idempotent by nature: a counter at zero (or not opened yet) is left alone. The period is the
//! user's current one by the database's rule (`mingus_usage_period` of `mingus_usage_anchor`), the
//! one consumes count in. Keys of `usage_events` stay: a replayed consume still does not count twice.

use axum::extract::{Path, State};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use mingus_common::entitlements::metrics::{self, Kind};
use serde_json::{Value, json};

use super::{Change, begin, finish};
use crate::error::ApiError;
use crate::ops::actions::CUSTOMER_USAGE_RESET;
use crate::ops::actor::Actor;
use crate::ops::db_error;
use crate::state::AppState;

/// `POST /ops/customers/{id}/usage/{metric}/reset`.
pub async fn reset(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path((raw, metric)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let resettable: Vec<&str> = metrics::METRICS
        .iter()
        .filter(|(_, kind, _)| *kind == Kind::PerPeriod)
        .map(|(name, _, _)| *name)
        .collect();
    let Some(metric) = resettable.iter().copied().find(|m| *m == metric.trim()) else {
        return Err(ApiError::bad_request(
            "invalid_metric",
            format!(
                "only a metric counted per usage period can be reset: one of {}",
                resettable.join(", ")
            ),
        ));
    };
    let (user, mut tx) = begin(&state, &raw).await?;
    let (period_start, period_end): (DateTime<Utc>, DateTime<Utc>) = sqlx::query_as(
        "SELECT period_start, period_end FROM mingus_usage_period(mingus_usage_anchor($1, now()), now())",
    )
    .bind(user)
    .fetch_one(&mut *tx)
    .await
    .map_err(db_error)?;
    // The old count, read under the row lock the update takes.
    let used: Option<i64> = sqlx::query_scalar(
        "WITH old AS (
             SELECT id, used FROM usage_counters
             WHERE user_id = $1 AND metric = $2 AND period_start = $3 FOR UPDATE)
         UPDATE usage_counters c SET used = 0, updated_at = now()
         FROM old WHERE c.id = old.id AND old.used > 0
         RETURNING old.used",
    )
    .bind(user)
    .bind(metric)
    .bind(period_start)
    .fetch_optional(&mut *tx)
    .await
    .map_err(db_error)?;
    let period = json!({ "start": period_start, "end": period_end });
    let change = Change {
        changed: used.is_some(),
        before: json!({ "metric": metric, "period": period, "used": used.unwrap_or(0) }),
        after: json!({ "metric": metric, "period": period, "used": 0 }),
    };
    finish(&state, &actor, CUSTOMER_USAGE_RESET, user, tx, change).await
}
