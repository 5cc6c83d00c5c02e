//! The per-subscription ordering guard: Stripe delivers events more than once and in any order, and
//! `event.created` has one-second resolution.
//!
//! Each subscription row keeps the `(stripe_event_at, stripe_status_rank)` of the last Stripe state
//! applied to it. An incoming state `(event.created, rank)` is applied when it is **not older** in that
//! lexicographic order: a strictly later second always wins (so a strictly newer event may revive a
//! cancelled subscription), and within one second the later stage of the life wins (incomplete <
//! trialing < active < past_due < unpaid/paused < canceled/incomplete_expired), which also keeps a
//! terminal state terminal against anything of the same second. Equal keys are applied (two distinct
//! events of the same second and rank: the one processed last wins) — except for
//! `customer.subscription.created`, which never overrides an equal stored key: a late `created` after
//! an `updated` of the same second changes nothing. (An event is never applied twice: the event row is
//! marked processed in the same transaction.)
//!
//! The subscription upsert evaluates the same rule in SQL (`mingus_guard_allows`, migration
//! `…14_stripe_apply`) under the row lock it takes; a test holds the two to the same answers.

use chrono::{DateTime, Utc};

use super::StripeStatus;

/// The guard key of a Stripe subscription state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct GuardKey {
    pub at: DateTime<Utc>,
    pub rank: i16,
}

impl GuardKey {
    pub fn new(at: DateTime<Utc>, status: StripeStatus) -> Self {
        GuardKey {
            at,
            rank: status.rank(),
        }
    }

    /// The stored key of a row; `None` when no Stripe state has been applied yet.
    pub fn stored(at: Option<DateTime<Utc>>, rank: Option<i16>) -> Option<Self> {
        at.map(|at| GuardKey {
            at,
            rank: rank.unwrap_or(i16::MIN),
        })
    }
}

/// Whether the incoming state may replace the stored one.
pub fn should_apply(stored: Option<GuardKey>, incoming: GuardKey, is_creation_event: bool) -> bool {
    match stored {
        None => true,
        Some(stored) if is_creation_event => incoming > stored,
        Some(stored) => incoming >= stored,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(second: i64, status: StripeStatus) -> GuardKey {
        GuardKey::new(
            DateTime::from_timestamp(1_800_000_000 + second, 0).unwrap(),
            status,
        )
    }

    #[test]
    fn newer_seconds_win_and_older_ones_are_dropped() {
        let stored = Some(key(10, StripeStatus::Active));
        assert!(should_apply(
            stored,
            key(11, StripeStatus::Incomplete),
            false
        ));
        assert!(!should_apply(stored, key(9, StripeStatus::Canceled), false));
        assert!(should_apply(None, key(0, StripeStatus::Active), true));
    }

    #[test]
    fn the_same_second_is_ordered_by_rank_not_dropped() {
        let stored = Some(key(10, StripeStatus::Incomplete));
        assert!(should_apply(stored, key(10, StripeStatus::Active), false));
        let stored = Some(key(10, StripeStatus::Active));
        assert!(!should_apply(
            stored,
            key(10, StripeStatus::Incomplete),
            false
        ));
        assert!(
            should_apply(stored, key(10, StripeStatus::Active), false),
            "equal keys apply"
        );
    }

    #[test]
    fn a_late_created_event_changes_nothing_and_terminal_states_stay_terminal() {
        let stored = Some(key(10, StripeStatus::Active));
        assert!(!should_apply(stored, key(10, StripeStatus::Active), true));
        assert!(!should_apply(stored, key(9, StripeStatus::Trialing), true));
        let cancelled = Some(key(10, StripeStatus::Canceled));
        for status in StripeStatus::ALL.into_iter().filter(|s| !s.is_terminal()) {
            assert!(!should_apply(cancelled, key(10, status), false), "{status}");
            assert!(
                should_apply(cancelled, key(11, status), false),
                "revived by a newer {status}"
            );
        }
    }
}
