//! The e-mail jobs: `email.send` (one delivery) and `email.reminder_sweep` (every minute).
//!
//! Sending one delivery: claim it with a lease (one autocommit `UPDATE`), render, send over SMTP with no
//! transaction open, then mark it `sent` with its Message-ID. A duplicate job finds it `sent` and does
//! nothing; one that finds a live lease retries later. A crash between the server's acceptance and the
//! mark leaves the delivery `sending`; once the lease expires the re-run job claims it again and sends
//! it again with the same Message-ID (at most one duplicate per crash, which receivers can drop).

use chrono::Utc;
use mingus_common::email::deliveries::{self, Claimed, NotClaimed, Unsent};
use mingus_common::email::smtp::SendError;
use mingus_common::email::templates::{self, RenderInput};
use mingus_common::email::{Template, message, reminders, unsubscribe};
use mingus_common::jobs::Envelope;
use mingus_common::jobs::email_jobs::SendEmail;

use super::Handler;
use crate::context::{JobContext, JobError};
use mingus_common::jobs::email_jobs::ReminderSweep;

impl Handler for SendEmail {
    async fn run(ctx: &JobContext, envelope: &Envelope, job: Self) -> Result<(), JobError> {
        let email = &ctx.config.email;
        let claimed =
            match deliveries::claim(&ctx.db, job.delivery_id, email.lease, envelope.generation)
                .await?
            {
                Ok(claimed) => claimed,
                Err(NotClaimed::Leased { until }) => {
                    return Err(JobError::Retryable(anyhow::anyhow!(
                        "delivery {} is being sent by another job (lease until {until})",
                        job.delivery_id
                    )));
                }
                Err(state) => {
                    tracing::debug!(delivery_id = %job.delivery_id, ?state, "nothing to send");
                    crate::metrics::email_outcome("-", "skipped");
                    return Ok(());
                }
            };
        let result = deliver(ctx, &claimed).await;
        let template = claimed.template.as_str();
        match result {
            Ok(Delivered::Sent) => {
                crate::metrics::email_outcome(template, "sent");
                Ok(())
            }
            Ok(Delivered::Suppressed) => {
                deliveries::mark_unsent(
                    &ctx.db,
                    &claimed,
                    Unsent::Suppressed,
                    "the recipient unsubscribed or no longer has an account",
                )
                .await?;
                crate::metrics::email_outcome(template, "suppressed");
                Ok(())
            }
            Err(Failure::Unrecorded(err)) => Err(JobError::Retryable(anyhow::anyhow!(
                "delivery {} was accepted by the SMTP server but could not be marked sent ({err}); \
             it is sent again (same Message-ID) once its lease expires",
                claimed.id
            ))),
            Err(Failure::Send(SendError::Permanent(reason))) => {
                deliveries::mark_unsent(&ctx.db, &claimed, Unsent::Failed, &reason).await?;
                crate::metrics::email_outcome(template, "failed");
                Err(JobError::Permanent(anyhow::anyhow!(
                    "delivery {} failed: {reason}",
                    claimed.id
                )))
            }
            Err(Failure::Send(SendError::Transient(reason))) => {
                let last = envelope.attempt >= envelope.max_attempts;
                let (outcome, note) = if last {
                    (
                        Unsent::Failed,
                        format!("gave up after {} attempts: {reason}", envelope.attempt),
                    )
                } else {
                    (Unsent::Retry, reason.clone())
                };
                deliveries::mark_unsent(&ctx.db, &claimed, outcome, &note).await?;
                crate::metrics::email_outcome(template, if last { "failed" } else { "retry" });
                Err(JobError::Retryable(anyhow::anyhow!(
                    "delivery {} not sent: {reason}",
                    claimed.id
                )))
            }
        }
    }
}

enum Delivered {
    Sent,
    Suppressed,
}

enum Failure {
    Send(SendError),
    /// The server accepted the message but the mark failed: the row keeps its lease, untouched.
    Unrecorded(sqlx::Error),
}

impl From<SendError> for Failure {
    fn from(err: SendError) -> Self {
        Failure::Send(err)
    }
}

/// Renders, sends and marks one claimed delivery. Nothing here holds a database transaction.
async fn deliver(ctx: &JobContext, claimed: &Claimed) -> Result<Delivered, Failure> {
    let email = &ctx.config.email;
    let template: Template = claimed
        .template
        .parse()
        .map_err(|e| SendError::Permanent(format!("{e}")))?;
    let category = template.category();
    let unsubscribe_url = if category.is_optional() {
        if claimed.suppressed.iter().any(|c| c == category.name()) {
            return Ok(Delivered::Suppressed);
        }
        // The account was deleted since (user_id set NULL): nobody to remind.
        let Some(user_id) = claimed.user_id else {
            return Ok(Delivered::Suppressed);
        };
        let Some(secret) = &email.unsubscribe_secret else {
            return Err(Failure::Send(SendError::Permanent(
                "a non-transactional e-mail needs an unsubscribe link, and \
                 MINGUS_UNSUBSCRIBE_SECRET is not configured"
                    .into(),
            )));
        };
        Some(unsubscribe::link(
            &email.public_url,
            secret,
            user_id,
            category,
        ))
    } else {
        None
    };
    let rendered = templates::render(&RenderInput {
        template,
        data: &claimed.data.0,
        first_name: claimed.first_name.as_deref(),
        timezone: claimed.timezone.as_deref(),
        app_url: &email.app_url,
        unsubscribe_url: unsubscribe_url.as_deref(),
    })
    .map_err(|e| SendError::Permanent(format!("template {template} does not render: {e:#}")))?;
    let built = message::build(
        &message::Envelope {
            delivery_id: claimed.id,
            from: &email.from,
            from_domain: &email.from_domain,
            to: &claimed.recipient,
            unsubscribe_url: unsubscribe_url.as_deref(),
            template: template.name(),
        },
        &rendered,
    )
    .map_err(|e| SendError::Permanent(e.to_string()))?;
    let accepted = ctx.mailer.send(&built).await?;
    tracing::debug!(delivery_id = %claimed.id, reply = %accepted.reply, "accepted by the SMTP server");
    if let Some(pause) = email.pause_after_accept {
        // Test knob (refused in production): widens the window between acceptance and the mark.
        tokio::time::sleep(pause).await;
    }
    let message_id = message::message_id(claimed.id, &email.from_domain);
    // The server has the message: failing to record it must not send it again at once. The error
    // surfaces as a retry; the next attempt finds the lease and waits for it to expire.
    deliveries::mark_sent(&ctx.db, claimed.id, &message_id)
        .await
        .map_err(Failure::Unrecorded)?;
    Ok(Delivered::Sent)
}

impl Handler for ReminderSweep {
    async fn run(ctx: &JobContext, _: &Envelope, _: Self) -> Result<(), JobError> {
        let report = reminders::sweep(&ctx.db, Some(&ctx.enqueuer), Utc::now()).await?;
        if report != reminders::SweepReport::default() {
            tracing::info!(?report, "reminder sweep done");
        }
        Ok(())
    }
}
