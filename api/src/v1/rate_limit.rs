//! Distributed rate limits: one Lua script per request checks and counts every bucket that applies, in
//! Redis, atomically, so any number of API instances share the same counters.
//!
//! **Fixed windows of one hour, opened by a bucket's first call** (not aligned to the clock): exact,
//! one key per bucket, and the reset time is simply the key's TTL. The cost is the usual fixed-window
//! burst: up to twice the limit across a window boundary, which is acceptable for hourly quotas (a
//! sliding log would need one sorted-set entry per call, 10,000 for an Executive tier).
//!
//! Buckets (keys under `REDIS_KEY_PREFIX`):
//! - `{prefix}:ratelimit:user:{user_id}` — calls with a user token, `MINGUS_USER_RATE_LIMIT_PER_HOUR`;
//! - `{prefix}:ratelimit:key:{key_id}` — calls with one API key, its `rate_limit_per_hour`;
//! - `{prefix}:ratelimit:tier:{user_id}` — calls with any of a user's API keys, the tier's
//!   `limits.api_calls_per_hour` (Executive: 10,000; absent or -1: no tier bucket).
//!
//! Redis down or slow (over [`TIMEOUT`]): the request is let through without rate-limit headers and a
//! warning is logged at most every [`WARN_EVERY`] — rate limits protect capacity, and refusing every
//! request because the limiter is down would turn a Redis outage into an API outage.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use redis::Script;
use redis::aio::ConnectionManager;
use uuid::Uuid;

pub const WINDOW: Duration = Duration::from_secs(3600);
const TIMEOUT: Duration = Duration::from_millis(500);
const WARN_EVERY: i64 = 10;

static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("rate_limit.lua")));

pub const LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
pub const REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
pub const RESET: HeaderName = HeaderName::from_static("ratelimit-reset");
pub const POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// One counter and its hourly limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    pub key: String,
    pub limit: u64,
}

impl Bucket {
    pub fn user(prefix: &str, user_id: Uuid, limit: u64) -> Self {
        Self {
            key: format!("{prefix}:ratelimit:user:{user_id}"),
            limit,
        }
    }

    pub fn api_key(prefix: &str, key_id: Uuid, limit: u64) -> Self {
        Self {
            key: format!("{prefix}:ratelimit:key:{key_id}"),
            limit,
        }
    }

    pub fn tier(prefix: &str, user_id: Uuid, limit: u64) -> Self {
        Self {
            key: format!("{prefix}:ratelimit:tier:{user_id}"),
            limit,
        }
    }
}

/// The outcome for the request, reported on the most constrained bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub admitted: bool,
    pub limit: u64,
    pub remaining: u64,
    /// Seconds until the reported bucket's window ends.
    pub reset_secs: u64,
    /// When refused: seconds until every exhausted bucket has room again.
    pub retry_after_secs: u64,
}

impl Decision {
    fn from_counts(admitted: bool, buckets: &[Bucket], raw: &[i64]) -> Option<Self> {
        let states: Vec<(u64, u64, u64)> = buckets
            .iter()
            .zip(raw.chunks_exact(2))
            .map(|(bucket, pair)| {
                let count = u64::try_from(pair[0]).unwrap_or(0);
                let reset = u64::try_from(pair[1]).unwrap_or(0).div_ceil(1000);
                (bucket.limit, bucket.limit.saturating_sub(count), reset)
            })
            .collect();
        // The bucket closest to its limit; on a tie, the one that resets last.
        let &(limit, remaining, reset_secs) = states
            .iter()
            .min_by_key(|(_, remaining, reset)| (*remaining, std::cmp::Reverse(*reset)))?;
        let retry_after_secs = states
            .iter()
            .filter(|(_, remaining, _)| *remaining == 0)
            .map(|(_, _, reset)| *reset)
            .max()
            .unwrap_or(0)
            .max(1);
        Some(Self {
            admitted,
            limit,
            remaining,
            reset_secs,
            retry_after_secs,
        })
    }

    /// `RateLimit-Limit`, `-Remaining`, `-Reset` (seconds), `RateLimit-Policy`, and `Retry-After` on a refusal.
    pub fn apply(&self, headers: &mut HeaderMap) {
        headers.insert(LIMIT, HeaderValue::from(self.limit));
        headers.insert(REMAINING, HeaderValue::from(self.remaining));
        headers.insert(RESET, HeaderValue::from(self.reset_secs));
        if let Ok(policy) = HeaderValue::from_str(&format!("{};w={}", self.limit, WINDOW.as_secs()))
        {
            headers.insert(POLICY, policy);
        }
        if !self.admitted {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from(self.retry_after_secs),
            );
        }
    }
}

/// The limiter of one API process.
#[derive(Clone)]
pub struct RateLimiter {
    redis: ConnectionManager,
    last_warning: std::sync::Arc<AtomicI64>,
}

impl RateLimiter {
    pub fn new(redis: ConnectionManager) -> Self {
        Self {
            redis,
            last_warning: Default::default(),
        }
    }

    /// Counts the call in every bucket if all have room. `None` when Redis could not answer (fail open).
    pub async fn admit(&self, buckets: &[Bucket]) -> Option<Decision> {
        if buckets.is_empty() {
            return None;
        }
        let mut invocation = SCRIPT.prepare_invoke();
        invocation.arg(WINDOW.as_millis() as u64);
        for bucket in buckets {
            invocation.key(&bucket.key).arg(bucket.limit);
        }
        let mut redis = self.redis.clone();
        let answer =
            tokio::time::timeout(TIMEOUT, invocation.invoke_async::<Vec<i64>>(&mut redis)).await;
        match answer {
            Ok(Ok(raw)) if raw.len() == 1 + 2 * buckets.len() => {
                Decision::from_counts(raw[0] == 1, buckets, &raw[1..])
            }
            Ok(Ok(raw)) => {
                self.warn(&format!("unexpected reply of {} values", raw.len()));
                None
            }
            Ok(Err(err)) => {
                self.warn(&err.to_string());
                None
            }
            Err(_) => {
                self.warn("timed out");
                None
            }
        }
    }

    fn warn(&self, reason: &str) {
        let now = chrono::Utc::now().timestamp();
        let last = self.last_warning.load(Ordering::Relaxed);
        if now - last >= WARN_EVERY
            && self
                .last_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                reason,
                "rate limiter unavailable: letting /v1 requests through unlimited"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buckets() -> Vec<Bucket> {
        let id = Uuid::nil();
        vec![Bucket::api_key("p", id, 5), Bucket::tier("p", id, 10_000)]
    }

    #[test]
    fn the_most_constrained_bucket_is_reported() {
        let decision =
            Decision::from_counts(true, &buckets(), &[4, 1_200_000, 100, 3_599_000]).unwrap();
        assert_eq!(
            (decision.limit, decision.remaining, decision.reset_secs),
            (5, 1, 1200)
        );
        let refused = Decision::from_counts(false, &buckets(), &[5, 10, 100, 3_599_000]).unwrap();
        assert_eq!((refused.remaining, refused.retry_after_secs), (0, 1));
        let mut headers = HeaderMap::new();
        refused.apply(&mut headers);
        assert_eq!(headers[header::RETRY_AFTER], "1");
        assert_eq!(headers[LIMIT], "5");
        assert_eq!(headers[POLICY], "5;w=3600");
    }

    #[test]
    fn keys_live_under_the_prefix() {
        let id = Uuid::nil();
        assert_eq!(
            Bucket::user("t1", id, 1).key,
            format!("t1:ratelimit:user:{id}")
        );
    }
}
