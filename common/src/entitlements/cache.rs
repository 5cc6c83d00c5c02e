//! The Redis cache of entitlement snapshots.
//!
//! Keys (under `REDIS_KEY_PREFIX`, `mingus` by default, so `mingus_entitlements:…` as the seed had it):
//! `<prefix>_entitlements:<user>` holds the JSON snapshot (TTL ≤ 300 s), `<prefix>_entitlements:gen:<user>`
//! a per-user generation and `<prefix>_entitlements:epoch` a global one.
//!
//! Invalidation bumps the user's generation and deletes the snapshot; a snapshot computed from the
//! database is stored only if the generation (and the epoch) are still the ones read *before* the
//! database was read, so a computation that raced with a change can never put the old state back.
//! The epoch invalidates every snapshot at once (`Entitlements::invalidate_all`, after a `pricing_tiers`
//! change).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use redis::Script;
use redis::aio::ConnectionManager;
use uuid::Uuid;

use super::Snapshot;

/// Seconds a snapshot may be served (the seed's TTL).
pub const TTL_SECS: i64 = 300;

/// How long a generation outlives its last bump: far longer than any snapshot computation.
const GENERATION_TTL_SECS: i64 = 3600;

/// Stores ARGV[3] in KEYS[1] for ARGV[4] seconds if the generation KEYS[2] is still ARGV[1] and the
/// epoch KEYS[3] still ARGV[2] ('' = unset).
static STORE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local generation = redis.call('GET', KEYS[2]) or ''
        local epoch = redis.call('GET', KEYS[3]) or ''
        if generation == ARGV[1] and epoch == ARGV[2] then
            redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[4])
            return 1
        end
        return 0
        ",
    )
});

/// The cached value: the snapshot and the epoch it was computed in.
#[derive(serde::Serialize, serde::Deserialize)]
struct Cached {
    epoch: String,
    snapshot: Snapshot,
}

/// What a read found: a snapshot still valid for its epoch, and the versions a fresh one must be
/// stored under.
pub(super) struct Read {
    pub snapshot: Option<Arc<Snapshot>>,
    pub generation: String,
    pub epoch: String,
}

#[derive(Clone)]
pub(super) struct Cache {
    redis: ConnectionManager,
    prefix: String,
    parsed: Arc<Mutex<Parsed>>,
}

/// Users whose parsed snapshot this process remembers before it starts over.
const PARSED_CAPACITY: usize = 10_000;

/// The last value read for each user and what it parsed to. Redis stays the source of truth — every
/// read still fetches the value — but an unchanged value (byte for byte) is not parsed again: parsing
/// (~2.6 KiB, a score of timestamps) was the largest cost of a cached feature check.
type Parsed = HashMap<Uuid, (String, Option<Arc<Decoded>>)>;

/// A parsed [`Cached`], its snapshot shared.
struct Decoded {
    epoch: String,
    snapshot: Arc<Snapshot>,
}

impl Cache {
    pub fn new(redis: ConnectionManager, key_prefix: &str) -> Self {
        Cache {
            redis,
            prefix: format!("{key_prefix}_entitlements"),
            parsed: Default::default(),
        }
    }

    pub fn snapshot_key(&self, user_id: Uuid) -> String {
        format!("{}:{user_id}", self.prefix)
    }

    fn generation_key(&self, user_id: Uuid) -> String {
        format!("{}:gen:{user_id}", self.prefix)
    }

    fn epoch_key(&self) -> String {
        format!("{}:epoch", self.prefix)
    }

    /// One round trip: the snapshot, the user's generation and the epoch.
    pub async fn read(&self, user_id: Uuid) -> redis::RedisResult<Read> {
        let mut redis = self.redis.clone();
        let (value, generation, epoch): (Option<String>, Option<String>, Option<String>) =
            redis::cmd("MGET")
                .arg(self.snapshot_key(user_id))
                .arg(self.generation_key(user_id))
                .arg(self.epoch_key())
                .query_async(&mut redis)
                .await?;
        let epoch = epoch.unwrap_or_default();
        let snapshot = value
            .and_then(|json| self.parse(user_id, json))
            .filter(|cached| cached.epoch == epoch)
            .map(|cached| cached.snapshot.clone());
        Ok(Read {
            snapshot,
            generation: generation.unwrap_or_default(),
            epoch,
        })
    }

    /// The snapshot this process last parsed for the user (whatever its age), if any.
    pub fn remembered(&self, user_id: Uuid) -> Option<Arc<Snapshot>> {
        let parsed = self.parsed.lock().ok()?;
        let (_, decoded) = parsed.get(&user_id)?;
        decoded.as_ref().map(|d| d.snapshot.clone())
    }

    /// `json` parsed, or the earlier parse of the same text for this user; `None` if it does not parse.
    fn parse(&self, user_id: Uuid, json: String) -> Option<Arc<Decoded>> {
        let remembered = self
            .parsed
            .lock()
            .ok()
            .and_then(|parsed| match parsed.get(&user_id) {
                Some((text, cached)) if *text == json => Some(cached.clone()),
                _ => None,
            });
        if let Some(cached) = remembered {
            return cached;
        }
        let cached = serde_json::from_str::<Cached>(&json).ok().map(|cached| {
            Arc::new(Decoded {
                epoch: cached.epoch,
                snapshot: Arc::new(cached.snapshot),
            })
        });
        if let Ok(mut parsed) = self.parsed.lock() {
            if parsed.len() >= PARSED_CAPACITY {
                parsed.clear();
            }
            parsed.insert(user_id, (json, cached.clone()));
        }
        cached
    }

    /// Stores `snapshot` unless the user's entitlements were invalidated since `read`.
    pub async fn store(
        &self,
        user_id: Uuid,
        read: &Read,
        snapshot: &Snapshot,
        ttl_secs: i64,
    ) -> anyhow::Result<bool> {
        let value = serde_json::to_string(&Cached {
            epoch: read.epoch.clone(),
            snapshot: snapshot.clone(),
        })?;
        let mut redis = self.redis.clone();
        let stored: i64 = STORE
            .key(self.snapshot_key(user_id))
            .key(self.generation_key(user_id))
            .key(self.epoch_key())
            .arg(&read.generation)
            .arg(&read.epoch)
            .arg(value)
            .arg(ttl_secs.clamp(1, TTL_SECS))
            .invoke_async(&mut redis)
            .await?;
        Ok(stored == 1)
    }

    /// Forgets the user's snapshot, and refuses snapshots computed before now.
    pub async fn invalidate(&self, user_id: Uuid) -> redis::RedisResult<()> {
        let generation = self.generation_key(user_id);
        let mut redis = self.redis.clone();
        redis::pipe()
            .atomic()
            .incr(&generation, 1)
            .ignore()
            .expire(&generation, GENERATION_TTL_SECS)
            .ignore()
            .del(self.snapshot_key(user_id))
            .ignore()
            .query_async::<()>(&mut redis)
            .await
    }

    /// Forgets every user's snapshot.
    pub async fn invalidate_all(&self) -> redis::RedisResult<()> {
        let mut redis = self.redis.clone();
        redis::cmd("INCR")
            .arg(self.epoch_key())
            .query_async::<i64>(&mut redis)
            .await
            .map(drop)
    }
}
