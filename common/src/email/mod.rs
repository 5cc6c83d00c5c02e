//! E-mail: deliveries as rows first and jobs second, templates, unsubscribe links, reminders, SMTP.
//!
//! - [`deliveries`]: an `email_deliveries` row per logical e-mail, unique by its dedupe key, written
//!   together with its `email.send` job's outbox row in one statement (the outbox rule); the lease-based
//!   claim and the marks the sender writes (`sending` → `sent` | `queued` again | `failed`).
//! - [`templates`]: one minijinja environment with a text and an HTML template per [`Template`],
//!   embedded in the binary; HTML is auto-escaped.
//! - [`message`]: the MIME message (multipart/alternative), its Message-ID derived from the delivery id
//!   and, for non-transactional e-mails, the unsubscribe link and `List-Unsubscribe` headers.
//! - [`unsubscribe`]: HMAC-signed unsubscribe tokens and the `email_suppressions` table.
//! - [`reminders`]: the minute sweep over `reminder_schedules` and the recurrence arithmetic in the
//!   user's time zone.
//! - [`smtp`]: the sender — lettre's SMTP client with a bounded connection pool of our own, connect
//!   and command timeouts, and the transient/permanent classification of failures.

pub mod deliveries;
pub mod message;
pub mod reminders;
pub mod smtp;
pub mod templates;
pub mod unsubscribe;

use std::fmt;
use std::str::FromStr;

/// Which e-mails a recipient can opt out of. Transactional ones (billing, invitations, reports) are
/// always sent; the others carry an unsubscribe link and are `suppressed` for users who used it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    Transactional,
    Reminders,
}

impl Category {
    pub const fn name(self) -> &'static str {
        match self {
            Category::Transactional => "transactional",
            Category::Reminders => "reminders",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "transactional" => Some(Category::Transactional),
            "reminders" => Some(Category::Reminders),
            _ => None,
        }
    }

    /// True when the recipient may unsubscribe from this category.
    pub const fn is_optional(self) -> bool {
        !matches!(self, Category::Transactional)
    }
}

/// Every e-mail we send. The name is `email_deliveries.template`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Template {
    TrialEnding,
    TrialEnded,
    PaymentFailed,
    PaymentActionRequired,
    RenewalReminder,
    SubscriptionCancelled,
    TeamInvitation,
    ReportReady,
    ReminderHealthCheckin,
    ReminderFinancialQuestionnaire,
    ReminderGoalReview,
    ReminderBudgetReview,
    ReminderCustom,
}

impl Template {
    pub const ALL: [Template; 13] = [
        Template::TrialEnding,
        Template::TrialEnded,
        Template::PaymentFailed,
        Template::PaymentActionRequired,
        Template::RenewalReminder,
        Template::SubscriptionCancelled,
        Template::TeamInvitation,
        Template::ReportReady,
        Template::ReminderHealthCheckin,
        Template::ReminderFinancialQuestionnaire,
        Template::ReminderGoalReview,
        Template::ReminderBudgetReview,
        Template::ReminderCustom,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Template::TrialEnding => "trial_ending",
            Template::TrialEnded => "trial_ended",
            Template::PaymentFailed => "payment_failed",
            Template::PaymentActionRequired => "payment_action_required",
            Template::RenewalReminder => "renewal_reminder",
            Template::SubscriptionCancelled => "subscription_cancelled",
            Template::TeamInvitation => "team_invitation",
            Template::ReportReady => "report_ready",
            Template::ReminderHealthCheckin => "reminder_health_checkin",
            Template::ReminderFinancialQuestionnaire => "reminder_financial_questionnaire",
            Template::ReminderGoalReview => "reminder_goal_review",
            Template::ReminderBudgetReview => "reminder_budget_review",
            Template::ReminderCustom => "reminder_custom",
        }
    }

    pub const fn category(self) -> Category {
        match self {
            Template::ReminderHealthCheckin
            | Template::ReminderFinancialQuestionnaire
            | Template::ReminderGoalReview
            | Template::ReminderBudgetReview
            | Template::ReminderCustom => Category::Reminders,
            _ => Category::Transactional,
        }
    }

    /// The template of a `reminder_schedules.reminder_type`.
    pub fn for_reminder(reminder_type: &str) -> Option<Self> {
        match reminder_type {
            "health_checkin" => Some(Template::ReminderHealthCheckin),
            "financial_questionnaire" => Some(Template::ReminderFinancialQuestionnaire),
            "goal_review" => Some(Template::ReminderGoalReview),
            "budget_review" => Some(Template::ReminderBudgetReview),
            "custom" => Some(Template::ReminderCustom),
            _ => None,
        }
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown e-mail template {0:?}")]
pub struct UnknownTemplate(pub String);

impl FromStr for Template {
    type Err = UnknownTemplate;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Template::ALL
            .into_iter()
            .find(|t| t.name() == name)
            .ok_or_else(|| UnknownTemplate(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_names_round_trip_and_billing_names_match() {
        for template in Template::ALL {
            assert_eq!(template.name().parse::<Template>().unwrap(), template);
        }
        use crate::billing::email::templates as billing;
        for name in [
            billing::TRIAL_ENDING,
            billing::TRIAL_ENDED,
            billing::PAYMENT_FAILED,
            billing::PAYMENT_ACTION_REQUIRED,
            billing::SUBSCRIPTION_CANCELLED,
            billing::RENEWAL_REMINDER,
        ] {
            let template: Template = name.parse().unwrap();
            assert_eq!(template.category(), Category::Transactional);
        }
        assert_eq!(
            Template::for_reminder("goal_review").unwrap().category(),
            Category::Reminders
        );
        assert!("nope".parse::<Template>().is_err());
    }
}
