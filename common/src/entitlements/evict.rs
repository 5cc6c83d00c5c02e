//! Evicting cached entitlements after a commit that changed a user's access, from code that holds no
//! Redis handle (`billing::access::invalidate_entitlement_cache`, called by the Stripe processor and the
//! billing sweeps): the process installs one evictor with its Redis connection and key prefix at start.

use std::sync::OnceLock;

use redis::aio::ConnectionManager;
use uuid::Uuid;

use super::cache::Cache;

static EVICTOR: OnceLock<Cache> = OnceLock::new();

/// Installs the process's evictor (the first call wins: one Redis prefix per process).
pub fn install(redis: ConnectionManager, key_prefix: &str) {
    let _ = EVICTOR.set(Cache::new(redis, key_prefix));
}

/// Evicts the users' snapshots in the background. Without an installed evictor (tools, tests that call
/// billing code directly) the snapshots expire within the TTL. A failed eviction is logged: the TTL
/// bounds the staleness it leaves.
pub fn after_commit(user_ids: &[Uuid]) {
    let Some(cache) = EVICTOR.get() else {
        return;
    };
    if user_ids.is_empty() {
        return;
    }
    let (cache, users) = (cache.clone(), user_ids.to_vec());
    tokio::spawn(async move {
        for user_id in users {
            if let Err(err) = cache.invalidate(user_id).await {
                tracing::warn!(error = %err, %user_id, "cannot evict cached entitlements (they expire within the TTL)");
            }
        }
    });
}
