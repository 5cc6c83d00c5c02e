//! Evicting cached entitlements after a commit that changed a user's access (the worker's Stripe
//! processing and billing sweeps). The handle carries its own Redis connection and key prefix, so every
//! writer evicts under the prefix it was configured with — a process may host several (the test binary
//! runs many in-process workers, each with its own prefix).

use redis::aio::ConnectionManager;
use uuid::Uuid;

use super::cache::Cache;

/// Deletes cached entitlement snapshots (and bumps their generations) under one key prefix.
#[derive(Clone)]
pub struct Evictor {
    cache: Cache,
}

impl Evictor {
    pub fn new(redis: ConnectionManager, key_prefix: &str) -> Self {
        Evictor {
            cache: Cache::new(redis, key_prefix),
        }
    }

    /// Evicts the users' snapshots in the background, after the commit that changed their access. A
    /// failed eviction is logged: the TTL bounds the staleness it leaves.
    pub fn after_commit(&self, user_ids: &[Uuid]) {
        if user_ids.is_empty() {
            return;
        }
        tracing::debug!(users = user_ids.len(), "entitlements changed");
        let (cache, users) = (self.cache.clone(), user_ids.to_vec());
        tokio::spawn(async move {
            for user_id in users {
                if let Err(err) = cache.invalidate(user_id).await {
                    tracing::warn!(error = %err, %user_id, "cannot evict cached entitlements (they expire within the TTL)");
                }
            }
        });
    }
}
