//! A verified user token names its user in `sub`, but the `users` row is written by the sign-up flow,
//! not by the identity provider: a token can arrive before its row exists (a sign-up still in
//! progress) or after the row is gone (a deleted user whose token has not expired). Such a caller gets
//! a 403 `user_not_provisioned` on every `/v1` route, rather than a 500 from whichever query first
//! misses the row. We refuse instead of creating the row from the token's claims: the row carries
//! the e-mail and profile the sign-up flow owns, and a token alone would make a half-made user.
//!
//! Users seen recently are remembered for [`REMEMBER_FOR`], so the hot path (feature checks) costs a
//! map lookup, not a query; a deleted user is refused at most that long after the deletion.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use uuid::Uuid;

/// How long a user found in `users` is taken as present without asking again.
pub const REMEMBER_FOR: Duration = Duration::from_secs(60);
/// More users than this seen within [`REMEMBER_FOR`] and the memory starts over (a bound, not a cache
/// policy: at the seed's scale it is never reached).
const CAPACITY: usize = 100_000;

#[derive(Clone)]
pub struct ProvisionedUsers {
    db: PgPool,
    seen: Arc<Mutex<HashMap<Uuid, Instant>>>,
}

impl ProvisionedUsers {
    pub fn new(db: PgPool) -> Self {
        Self {
            db,
            seen: Arc::default(),
        }
    }

    /// Whether `user_id` has a `users` row (remembered for [`REMEMBER_FOR`] when it has).
    pub async fn exists(&self, user_id: Uuid, now: Instant) -> Result<bool, sqlx::Error> {
        if self.remembered(user_id, now) {
            return Ok(true);
        }
        let found: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)")
            .bind(user_id)
            .fetch_one(&self.db)
            .await?;
        if found {
            let mut seen = self
                .seen
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            if seen.len() >= CAPACITY {
                seen.clear();
            }
            seen.insert(user_id, now);
        }
        Ok(found)
    }

    fn remembered(&self, user_id: Uuid, now: Instant) -> bool {
        let seen = self
            .seen
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        seen.get(&user_id)
            .is_some_and(|at| now.saturating_duration_since(*at) < REMEMBER_FOR)
    }
}
