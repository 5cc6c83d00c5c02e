//! Billing e-mails as `email_deliveries` rows (sent later by the e-mail workers). Each logical e-mail
//! has a dedupe key, so a replayed event or a sweep that runs twice never queues it twice. The row and
//! its `email.send` job's outbox row are written in one statement on the caller's connection (the
//! outbox rule, `crate::email::deliveries::queue`); callers that can push after commit use
//! [`queue_staged`], the others leave the push to the e-mail sweep (within a minute).

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::email::Template;
use crate::email::deliveries::{self, NewDelivery, Queued};

/// Template names of the billing e-mails.
pub mod templates {
    pub const TRIAL_ENDING: &str = "trial_ending";
    pub const TRIAL_ENDED: &str = "trial_ended";
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

    pub fn trial_ended(subscription: &str) -> String {
        format!("trial_ended:{subscription}")
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

/// Queues the e-mail (and stages its job) unless one with its dedupe key exists; true when this call
/// queued it.
pub async fn queue(conn: &mut PgConnection, email: &BillingEmail) -> Result<bool, sqlx::Error> {
    Ok(queue_staged(conn, email).await?.inserted())
}

/// [`queue`], returning what was written: push `Queued::Staged`'s envelope after commit.
pub async fn queue_staged(
    conn: &mut PgConnection,
    email: &BillingEmail,
) -> Result<Queued, sqlx::Error> {
    let template: Template = email
        .template
        .parse()
        .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    deliveries::queue(
        conn,
        &NewDelivery {
            user_id: Some(email.user_id),
            recipient: None,
            template,
            data: email.data.clone(),
            dedupe_key: email.dedupe_key.clone(),
            scheduled_for: email.scheduled_for,
        },
    )
    .await
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
