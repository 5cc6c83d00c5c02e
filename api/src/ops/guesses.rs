//! Bounds how fast anyone can guess the admin token. A failed attempt (login form or bearer header)
//! already waits [`super::auth`]'s delay, but concurrent requests made that delay no bound at all (a
//! probe reached ~90 guesses a second). Here each client address gets [`ALLOWED`] failures per
//! [`WINDOW`]; past that, its attempts are refused with 429 and `Retry-After` without looking at the
//! token, so a right guess in the lockout is worth nothing either. A correct token never counts and
//! never clears anything: a locked-out address waits out its window like everyone else.
//!
//! Per process and in memory, like Sidekiq's and Oban Web's own login throttles: with a random token of
//! 32+ characters (production refuses less) this caps the rate of a hopeless search, it does not make
//! a weak token safe.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const WINDOW: Duration = Duration::from_secs(300);
pub const ALLOWED: u32 = 20;
/// Addresses remembered at most; beyond it, windows that have ended are forgotten first.
const CAPACITY: usize = 10_000;

/// When a client's window started and how many attempts failed in it.
type Window = (Instant, u32);

/// Failed attempts of each client address in its current window.
#[derive(Clone, Default)]
pub struct Guesses {
    by_client: Arc<Mutex<HashMap<Option<IpAddr>, Window>>>,
}

impl Guesses {
    /// `Some(wait)` when `client` has used up its failures and must wait that long.
    pub fn locked_out(&self, client: Option<IpAddr>, now: Instant) -> Option<Duration> {
        let by_client = self.by_client.lock().unwrap_or_else(|p| p.into_inner());
        let (started, failures) = by_client.get(&client)?;
        let ends = *started + WINDOW;
        (*failures >= ALLOWED && now < ends).then(|| ends - now)
    }

    /// Counts one failed attempt of `client`.
    pub fn failed(&self, client: Option<IpAddr>, now: Instant) {
        let mut by_client = self.by_client.lock().unwrap_or_else(|p| p.into_inner());
        if by_client.len() >= CAPACITY {
            by_client.retain(|_, (started, _)| now < *started + WINDOW);
        }
        let entry = by_client.entry(client).or_insert((now, 0));
        if now >= entry.0 + WINDOW {
            *entry = (now, 0);
        }
        entry.1 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_locked_out_after_its_failures_until_the_window_ends() {
        let guesses = Guesses::default();
        let attacker = Some("203.0.113.7".parse().unwrap());
        let other = Some("198.51.100.1".parse().unwrap());
        let start = Instant::now();
        for _ in 0..ALLOWED - 1 {
            guesses.failed(attacker, start);
        }
        assert_eq!(guesses.locked_out(attacker, start), None);
        guesses.failed(attacker, start);
        let wait = guesses.locked_out(attacker, start + Duration::from_secs(10));
        assert_eq!(wait, Some(WINDOW - Duration::from_secs(10)));
        assert_eq!(
            guesses.locked_out(other, start),
            None,
            "others are not affected"
        );
        assert_eq!(guesses.locked_out(attacker, start + WINDOW), None);
        // A new window starts from zero.
        guesses.failed(attacker, start + WINDOW);
        assert_eq!(guesses.locked_out(attacker, start + WINDOW), None);
    }
}
