//! The jobs and dead letters that concern one customer, for their page.
//!
//! A job concerns a customer through the row it works on, and those rows name their job: an e-mail's
//! `email.send` jobs have the delivery id as job id, a report's `report.generate` job the report id, and
//! a Stripe event records the job that processes it (`stripe_events.job_id`, the latest replay's). So
//! the customer's job ids are read from their own rows (bounded, newest first), and the ledger and the
//! dead letters are then read by job id with the helpers `/ops/jobs` and `/ops/dead` use — an index
//! look-up each, never a scan of the job tables' arguments. Sweeps that touch many users (trial expiry,
//! renewals) are not listed: their jobs concern everyone.

use serde_json::{Value, json};
use uuid::Uuid;

use super::customers::EVENTS_OF_USER;
use super::{db_error, dead, jobs};
use crate::error::ApiError;
use crate::state::AppState;

/// Rows of each kind whose jobs are looked up, newest first.
const SOURCES_LIMIT: i64 = 200;
/// Executions and dead letters shown, newest first.
const SHOWN: i64 = 50;

/// `{"jobs": [...], "dead_letters": [...]}` of the user.
pub(super) async fn of_customer(state: &AppState, user: Uuid) -> Result<Value, ApiError> {
    let job_ids: Vec<Uuid> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "{EVENTS_OF_USER}
         (SELECT id FROM email_deliveries WHERE user_id = $1 ORDER BY created_at DESC LIMIT $2)
         UNION ALL (SELECT id FROM reports WHERE user_id = $1 ORDER BY created_at DESC LIMIT $2)
         UNION ALL (SELECT job_id FROM events_of_user WHERE job_id IS NOT NULL
                    ORDER BY received_at DESC LIMIT $2)"
    )))
    .bind(user)
    .bind(SOURCES_LIMIT)
    .fetch_all(&state.db)
    .await
    .map_err(db_error)?;
    let (runs, letters) = tokio::try_join!(
        jobs::runs_of(&state.db, &job_ids, SHOWN),
        dead::open_letters_of(&state.db, &job_ids, SHOWN),
    )
    .map_err(db_error)?;
    Ok(json!({ "jobs": runs, "dead_letters": letters }))
}
