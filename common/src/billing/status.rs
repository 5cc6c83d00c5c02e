//! Stripe subscription statuses, our local status for each, and the rank the ordering guard uses.

use std::fmt;
use std::str::FromStr;

use super::BillingError;

/// A Stripe subscription status (kept raw in `subscriptions.stripe_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StripeStatus {
    Incomplete,
    Trialing,
    Active,
    PastDue,
    Unpaid,
    Paused,
    Canceled,
    IncompleteExpired,
}

/// `subscriptions.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LocalStatus {
    Trial,
    Active,
    PastDue,
    Cancelled,
}

impl StripeStatus {
    pub const ALL: [StripeStatus; 8] = [
        StripeStatus::Incomplete,
        StripeStatus::Trialing,
        StripeStatus::Active,
        StripeStatus::PastDue,
        StripeStatus::Unpaid,
        StripeStatus::Paused,
        StripeStatus::Canceled,
        StripeStatus::IncompleteExpired,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            StripeStatus::Incomplete => "incomplete",
            StripeStatus::Trialing => "trialing",
            StripeStatus::Active => "active",
            StripeStatus::PastDue => "past_due",
            StripeStatus::Unpaid => "unpaid",
            StripeStatus::Paused => "paused",
            StripeStatus::Canceled => "canceled",
            StripeStatus::IncompleteExpired => "incomplete_expired",
        }
    }

    /// The mapping of NOTES-stripe (the one dj-stripe and Pay use).
    pub const fn local(self) -> LocalStatus {
        match self {
            StripeStatus::Trialing => LocalStatus::Trial,
            StripeStatus::Active => LocalStatus::Active,
            StripeStatus::PastDue
            | StripeStatus::Unpaid
            | StripeStatus::Incomplete
            | StripeStatus::Paused => LocalStatus::PastDue,
            StripeStatus::Canceled | StripeStatus::IncompleteExpired => LocalStatus::Cancelled,
        }
    }

    /// Where a status sits in a subscription's life. Orders same-second events: a later state of the
    /// same second has a higher rank. Terminal states have the highest.
    pub const fn rank(self) -> i16 {
        match self {
            StripeStatus::Incomplete => 0,
            StripeStatus::Trialing => 1,
            StripeStatus::Active => 2,
            StripeStatus::PastDue => 3,
            StripeStatus::Unpaid | StripeStatus::Paused => 4,
            StripeStatus::Canceled | StripeStatus::IncompleteExpired => 5,
        }
    }

    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            StripeStatus::Canceled | StripeStatus::IncompleteExpired
        )
    }

    /// Whether the status grants access at all (past_due only during the grace period).
    pub const fn may_grant_access(self) -> bool {
        matches!(
            self,
            StripeStatus::Trialing | StripeStatus::Active | StripeStatus::PastDue
        )
    }
}

impl LocalStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            LocalStatus::Trial => "trial",
            LocalStatus::Active => "active",
            LocalStatus::PastDue => "past_due",
            LocalStatus::Cancelled => "cancelled",
        }
    }
}

impl FromStr for StripeStatus {
    type Err = BillingError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StripeStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| BillingError::Invalid(format!("unknown subscription status {s:?}")))
    }
}

impl fmt::Display for StripeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_as_the_notes_say() {
        let expected = [
            ("trialing", "trial", 1),
            ("active", "active", 2),
            ("past_due", "past_due", 3),
            ("unpaid", "past_due", 4),
            ("incomplete", "past_due", 0),
            ("canceled", "cancelled", 5),
            ("incomplete_expired", "cancelled", 5),
            ("paused", "past_due", 4),
        ];
        for (stripe, local, rank) in expected {
            let status: StripeStatus = stripe.parse().unwrap();
            assert_eq!(status.local().as_str(), local, "{stripe}");
            assert_eq!(status.rank(), rank, "{stripe}");
            assert_eq!(status.to_string(), stripe);
        }
        assert!("cancelled".parse::<StripeStatus>().is_err());
        assert!(StripeStatus::Canceled.is_terminal() && !StripeStatus::Unpaid.is_terminal());
        assert!(
            !StripeStatus::Unpaid.may_grant_access() && StripeStatus::PastDue.may_grant_access()
        );
    }
}
