//! Billing e-mails as `email_deliveries` rows (sent later by the e-mail workers). Each logical e-mail
//! has a dedupe key, so a replayed event or a sweep that runs twice never queues it twice.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

/// Template names of the billing e-mails.
pub mod templates {
    pub const TRIAL_ENDING: &str = "trial_ending";
    pub const PAYMENT_FAILED: &str = "payment_failed";
    pub const PAYMENT_ACTION_REQUIRED: &str = "payment_action_required";
    pub const SUBSCRIPTION_CANCELLED: &str = "subscription_cancelled";
    pub const RENEWAL_REMINDER: &str = "renewal_reminder";
}

/// Dedupe keys. `subscription` is the Stripe subscription id, or our id for a subscription without one.
pub mod keys {
    use chrono::{DateTime, Utc};

    fn day(at: DateTime<Utc>) -> String {
        at.format("%Y-%m-%d").to_string()
    }

    pub fn trial_ending(subscription: &str, trial_end: DateTime<Utc>) -> String {
        format!("trial_ending:{subscription}:{}", day(trial_end))
    }

    pub fn dunning(invoice: &str, attempt: i64) -> String {
        format!("dunning:{invoice}:{attempt}")
    }

    pub fn payment_action_required(invoice: &str, attempt: i64) -> String {
        format!("payment_action_required:{invoice}:{attempt}")
    }

    pub fn subscription_cancelled(subscription: &str) -> String {
        format!("subscription_cancelled:{subscription}")
    }

    pub fn renewal_reminder(subscription: &str, period_end: DateTime<Utc>) -> String {
        format!("renewal_reminder:{subscription}:{}", day(period_end))
    }
}

/// One e-mail to queue for a user (sent to the user's address).
#[derive(Debug, Clone)]
pub struct BillingEmail {
    pub user_id: Uuid,
    pub template: &'static str,
    pub data: Value,
    pub dedupe_key: String,
    pub scheduled_for: DateTime<Utc>,
}

/// Queues the e-mail unless one with its dedupe key exists; true when this call queued it.
pub async fn queue(conn: &mut PgConnection, email: &BillingEmail) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO email_deliveries (user_id, template, recipient, data, dedupe_key, scheduled_for)
         SELECT id, $2, email, $3, $4, $5 FROM users WHERE id = $1
         ON CONFLICT (dedupe_key) DO NOTHING",
    )
    .bind(email.user_id)
    .bind(email.template)
    .bind(sqlx::types::Json(&email.data))
    .bind(&email.dedupe_key)
    .bind(email.scheduled_for)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_the_day_and_attempt() {
        let at = DateTime::from_timestamp(1_796_083_200, 0).unwrap();
        assert_eq!(
            keys::trial_ending("sub_9", at),
            "trial_ending:sub_9:2026-12-01"
        );
        assert_eq!(keys::dunning("in_123", 2), "dunning:in_123:2");
        assert_eq!(
            keys::renewal_reminder("sub_9", at),
            "renewal_reminder:sub_9:2026-12-01"
        );
    }
}
