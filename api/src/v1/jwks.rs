//! The token issuer's JSON Web Key Set (`MINGUS_JWT_JWKS_URL`), for ES256 and RS256 user tokens:
//! Supabase and most identity providers now sign with asymmetric keys and publish the public halves.
//!
//! Keys are cached by `kid` and refreshed every [`REFRESH_EVERY`]. A token naming a `kid` the cache
//! lacks makes one fetch (a key rotation), at most once per [`MIN_REFETCH`] so a flood of tokens with
//! made-up `kid`s cannot turn into a flood of fetches. When the issuer cannot be reached, the keys
//! already cached keep working; with none cached, a user token cannot be checked (503).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::JwkSet;
use tokio::sync::RwLock;
use url::Url;

/// How long a fetched key set is used before it is fetched again.
pub const REFRESH_EVERY: Duration = Duration::from_secs(600);
/// The least time between two fetches, whatever tokens arrive.
pub const MIN_REFETCH: Duration = Duration::from_secs(30);
/// One fetch's budget: a request waiting on it waits at most this long.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Far above a real key set (a few keys of a few hundred bytes).
const MAX_BODY: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("the token names no key of the issuer's key set (kid)")]
    UnknownKey,
    #[error("the issuer's key set cannot be fetched: {0}")]
    Unavailable(String),
}

pub struct Jwks {
    url: Url,
    client: reqwest::Client,
    cache: RwLock<Cache>,
}

#[derive(Default)]
struct Cache {
    keys: HashMap<String, DecodingKey>,
    fetched_at: Option<Instant>,
    attempted_at: Option<Instant>,
}

impl Cache {
    fn fresh(&self) -> bool {
        self.fetched_at
            .is_some_and(|at| at.elapsed() < REFRESH_EVERY)
    }
}

impl Jwks {
    pub fn new(url: Url) -> Self {
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a TLS client with default settings builds");
        Jwks {
            url,
            client,
            cache: RwLock::new(Cache::default()),
        }
    }

    /// The key named `kid`, from the cache or after one fetch (see the module).
    pub async fn key(&self, kid: &str) -> Result<DecodingKey, JwksError> {
        {
            let cache = self.cache.read().await;
            if cache.fresh()
                && let Some(key) = cache.keys.get(kid)
            {
                return Ok(key.clone());
            }
        }
        let mut cache = self.cache.write().await;
        // Another request may have fetched while this one waited for the lock.
        let recently = cache
            .attempted_at
            .is_some_and(|at| at.elapsed() < MIN_REFETCH);
        let usable = cache.fresh() && cache.keys.contains_key(kid);
        if !(recently || usable) {
            cache.attempted_at = Some(Instant::now());
            match self.fetch().await {
                Ok(keys) => {
                    cache.keys = keys;
                    cache.fetched_at = Some(Instant::now());
                }
                Err(reason) if cache.keys.is_empty() => return Err(JwksError::Unavailable(reason)),
                Err(reason) => {
                    tracing::warn!(url = %self.url, %reason, "JWKS refresh failed; the cached keys stay in use");
                }
            }
        }
        match cache.keys.get(kid) {
            Some(key) => Ok(key.clone()),
            None if cache.keys.is_empty() && cache.fetched_at.is_none() => Err(
                JwksError::Unavailable("no key set has been fetched yet".into()),
            ),
            None => Err(JwksError::UnknownKey),
        }
    }

    /// The set's usable keys by `kid` (keys without one, or of a kind we cannot use, are skipped).
    async fn fetch(&self) -> Result<HashMap<String, DecodingKey>, String> {
        let response = self
            .client
            .get(self.url.clone())
            .send()
            .await
            .map_err(|err| err.to_string())?;
        if !response.status().is_success() {
            return Err(format!("status {}", response.status()));
        }
        let body = response.bytes().await.map_err(|err| err.to_string())?;
        if body.len() > MAX_BODY {
            return Err(format!("the key set is {} bytes", body.len()));
        }
        let set: JwkSet = serde_json::from_slice(&body).map_err(|err| err.to_string())?;
        let keys: HashMap<String, DecodingKey> = set
            .keys
            .iter()
            .filter_map(|jwk| {
                let kid = jwk.common.key_id.clone()?;
                let key = DecodingKey::from_jwk(jwk).ok()?;
                Some((kid, key))
            })
            .collect();
        tracing::info!(url = %self.url, keys = keys.len(), "JWKS fetched");
        Ok(keys)
    }
}
