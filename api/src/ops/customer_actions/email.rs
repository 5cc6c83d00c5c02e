//! Resending one of the customer's e-mails: a new delivery of the same template, data and recipient,
//! linked to the original (`resent_from`), queued through the outbox like every delivery
//! (`email::deliveries::queue`: the row and its `email.send` job's outbox row in one statement, pushed
//! after commit, swept if the push fails).
//!
//! Idempotent by the original: the new delivery's dedupe key is `resend:<original id>`, so resending
//! the same delivery again answers the delivery the first resend made. To send once more, resend that
//! one. Refused: a delivery still on its way (`queued`, `sending`), a template the sender no longer
//! knows, and a recipient who unsubscribed from the template's category (409 `recipient_suppressed`).

use std::str::FromStr;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use mingus_common::email::Template;
use mingus_common::email::deliveries::{self, NewDelivery, Queued};
use mingus_common::jobs::outbox;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Change, answer, begin, entry};
use crate::error::ApiError;
use crate::ops::actions::CUSTOMER_EMAIL_RESEND;
use crate::ops::actor::Actor;
use crate::ops::{audit, db_error};
use crate::state::AppState;

#[derive(Debug, sqlx::FromRow)]
struct Original {
    template: String,
    recipient: String,
    data: sqlx::types::Json<Value>,
    status: String,
    suppressed: bool,
}

fn conflict(code: &'static str, message: String) -> ApiError {
    ApiError::conflict(code, message)
}

/// `POST /ops/customers/{id}/emails/{delivery_id}/resend`.
pub async fn resend(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path((raw, raw_delivery)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let original_id = Uuid::parse_str(raw_delivery.trim()).map_err(|_| {
        ApiError::bad_request(
            "invalid_delivery_id",
            "a delivery is named by its id (a UUID)",
        )
    })?;
    let (user, mut tx) = begin(&state, &raw).await?;
    let original: Option<Original> = sqlx::query_as(
        "SELECT d.template::text AS template, d.recipient::text AS recipient, d.data, d.status::text AS status,
                EXISTS (SELECT 1 FROM email_suppressions s WHERE s.user_id = d.user_id
                        AND s.category = $3) AS suppressed
         FROM email_deliveries d WHERE d.id = $1 AND d.user_id = $2",
    )
    .bind(original_id)
    .bind(user)
    // Only optional categories can be suppressed (`Category::is_optional`); today: reminders.
    .bind(mingus_common::email::Category::Reminders.name())
    .fetch_optional(&mut *tx)
    .await
    .map_err(db_error)?;
    let Some(original) = original else {
        return Err(ApiError::client(
            StatusCode::NOT_FOUND,
            "unknown_delivery",
            format!("the customer has no e-mail delivery {original_id}"),
        ));
    };
    if matches!(original.status.as_str(), "queued" | "sending") {
        return Err(conflict(
            "delivery_in_flight",
            format!(
                "delivery {original_id} is {}: it has not finished yet",
                original.status
            ),
        ));
    }
    let Ok(template) = Template::from_str(&original.template) else {
        return Err(conflict(
            "unknown_template",
            format!(
                "no e-mail template {:?} is sent any more",
                original.template
            ),
        ));
    };
    let category = template.category();
    if original.status == "suppressed" || (category.is_optional() && original.suppressed) {
        return Err(conflict(
            "recipient_suppressed",
            format!(
                "the customer unsubscribed from {} e-mails; it is not sent again",
                category.name()
            ),
        ));
    }
    let dedupe_key = format!("resend:{original_id}");
    let resent_id = deliveries::delivery_id(&dedupe_key);
    let queued = deliveries::queue(
        &mut tx,
        &NewDelivery {
            user_id: Some(user),
            recipient: Some(original.recipient.clone()),
            template,
            data: original.data.0.clone(),
            dedupe_key,
            scheduled_for: Utc::now(),
        },
    )
    .await
    .map_err(db_error)?;
    let (changed, envelope) = match queued {
        Queued::Staged(envelope) => (true, Some(envelope)),
        Queued::Scheduled => (true, None),
        Queued::Duplicate => (false, None),
        // Checked above under the same transaction; only a concurrent unsubscribe lands here.
        Queued::Suppressed => {
            return Err(conflict(
                "recipient_suppressed",
                "the customer unsubscribed meanwhile".to_owned(),
            ));
        }
        Queued::NoRecipient => return Err(super::unknown_customer(user)),
    };
    if changed {
        sqlx::query("UPDATE email_deliveries SET resent_from = $2 WHERE id = $1")
            .bind(resent_id)
            .bind(original_id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
    }
    let (status, created_at): (String, DateTime<Utc>) =
        sqlx::query_as("SELECT status::text, created_at FROM email_deliveries WHERE id = $1")
            .bind(resent_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error)?;
    let change = Change {
        changed,
        before: json!({ "delivery_id": original_id, "template": original.template,
                        "recipient": original.recipient, "status": original.status }),
        after: json!({ "delivery_id": resent_id, "resent_from": original_id, "status": status,
                       "created_at": created_at }),
    };
    audit::record(
        &mut *tx,
        &actor,
        CUSTOMER_EMAIL_RESEND,
        entry(user, &change, None),
    )
    .await
    .map_err(db_error)?;
    tx.commit().await.map_err(db_error)?;
    // After commit; a failed push is left to the outbox sweep.
    if let Some(envelope) = envelope {
        outbox::push_after_commit(&state.db, &state.enqueuer, &[envelope]).await;
    }
    Ok(Json(
        answer(&state, CUSTOMER_EMAIL_RESEND, user, change).await,
    ))
}
