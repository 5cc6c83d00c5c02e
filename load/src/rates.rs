//! The seed's traffic, per user, and how many simulated users play each part.
//!
//! The seed projects for 1,000 users: 50,000–100,000 API calls a day, 2,000–5,000 financial reports a
//! month, 200–400 health check-ins a day. We take the top of each range and a peak factor of 3 (the
//! busiest hour carries three times the day's average hour: usage concentrated in the evening of US
//! time zones). So one user at peak makes 100 × 3 = 300 calls per day-equivalent, one call every
//! 86,400 / 300 = 288 s; reports are 5,000 / 30 × 3 = 500 per day-equivalent for 1,000 users and
//! check-ins 400 × 3 = 1,200. A report session is five calls (create, three polls, download), so report
//! sessions are 2,500 of the 300,000 calls (0.8 % of the users), check-ins 1,200 (0.4 %). Executive
//! users (10 %, the tier mix we generate) use API keys and team endpoints; the rest browse features,
//! usage and analytics with their JWT. Two operators keep `/ops` open (a refresh every 10 s, as the
//! dashboard does) and one stream replays Stripe's events for renewals at the same compressed clock.
//! `--pace` divides every wait: pace 1 is the seed at peak; a smoke uses 100+ to see every scenario.

/// The seed's top-of-range API calls per user per day.
pub const CALLS_PER_USER_PER_DAY: f64 = 100.0;
/// Busiest hour ÷ average hour.
pub const PEAK_FACTOR: f64 = 3.0;
/// The tier mix of the generated users (per mille): essentials, professional, executive.
pub const TIER_MIX: [(&str, u32); 3] = [
    ("essentials", 600),
    ("professional", 300),
    ("executive", 100),
];
/// An operator's dashboard refresh.
pub const OPERATOR_REFRESH_SECS: f64 = 10.0;
/// Stripe events per day for 1,000 users: ~33 renewals a day (monthly plans), ~4 events each, plus new
/// subscriptions, failures and cancellations: ~200, ×3 at peak.
pub const STRIPE_EVENTS_PER_DAY_PER_1000: f64 = 200.0 * PEAK_FACTOR;

/// Seconds between two calls of one user at pace 1.
pub fn seconds_per_call() -> f64 {
    86_400.0 / (CALLS_PER_USER_PER_DAY * PEAK_FACTOR)
}

/// How many simulated users play each part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Allocation {
    pub browsers: usize,
    pub executives: usize,
    pub reporters: usize,
    pub checkins: usize,
    pub operators: usize,
    pub stripe: usize,
}

impl Allocation {
    /// Splits `users` by the shares above; every part gets at least one user (two operators), so a small
    /// run still exercises every scenario. The parts add up to `users`.
    pub fn for_users(users: usize) -> Self {
        let share = |per_mille: f64| ((users as f64 * per_mille / 1000.0).round() as usize).max(1);
        let operators = 2;
        let stripe = 1;
        let executives = share(100.0);
        let reporters = share(8.0);
        let checkins = share(4.0);
        let browsers = users
            .saturating_sub(operators + stripe + executives + reporters + checkins)
            .max(1);
        Self {
            browsers,
            executives,
            reporters,
            checkins,
            operators,
            stripe,
        }
    }

    pub fn total(&self) -> usize {
        self.browsers
            + self.executives
            + self.reporters
            + self.checkins
            + self.operators
            + self.stripe
    }
}

/// A user wakes at most this often (seconds) to decide whether to call.
pub const TICK_SECS: f64 = 2.0;

/// (tick, mean seconds between calls) of a user whose iteration makes `calls` calls: the tick is never
/// longer than the mean, so the probability tick ÷ mean stays ≤ 1.
pub fn tick_and_mean(pace: f64, calls: f64) -> (f64, f64) {
    let mean = calls * seconds_per_call() / pace;
    (TICK_SECS.min(mean), mean)
}

/// Goose's wait range between two ticks (±50 % jitter, so users do not tick in step).
pub fn tick_wait(pace: f64, calls: f64) -> (f64, f64) {
    let (tick, _) = tick_and_mean(pace, calls);
    (tick * 0.5, tick * 1.5)
}

/// The Stripe stream's wait: its events for `users` users spread over the day, compressed by pace.
pub fn stripe_wait(users: usize, pace: f64) -> (f64, f64) {
    let per_day = STRIPE_EVENTS_PER_DAY_PER_1000 * users as f64 / 1000.0;
    let mean = 86_400.0 / per_day.max(1.0) / pace;
    (mean * 0.5, mean * 1.5)
}

/// Operators refresh at wall-clock speed (a person watching); pace does not change them.
pub fn operator_wait() -> (f64, f64) {
    (OPERATOR_REFRESH_SECS * 0.8, OPERATOR_REFRESH_SECS * 1.2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thousand_users_split_as_the_seed_says() {
        let a = Allocation::for_users(1000);
        assert_eq!(a.total(), 1000);
        assert_eq!(
            (a.executives, a.reporters, a.checkins, a.operators, a.stripe),
            (100, 8, 4, 2, 1)
        );
        // 1,000 users × one call per 288 s ≈ 3.5 calls/s: 100,000 a day at three times the mean.
        assert!((1000.0 / seconds_per_call() - 3.47).abs() < 0.01);
    }

    #[test]
    fn ticks_never_exceed_the_mean_wait() {
        assert_eq!(tick_and_mean(1.0, 1.0), (2.0, 288.0));
        let (tick, mean) = tick_and_mean(1000.0, 1.0);
        assert!(tick <= mean && (mean - 0.288).abs() < 1e-9);
    }

    #[test]
    fn small_runs_keep_every_part() {
        let a = Allocation::for_users(50);
        assert_eq!(a.total(), 50);
        assert!(a.reporters >= 1 && a.checkins >= 1 && a.executives >= 1 && a.browsers >= 1);
    }
}
